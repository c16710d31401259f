"""DiscordChat: the ChatPort on Discord's REST API, through the discord.py client's `http`.

Only REST is used (no gateway cache is needed), so deliveries keep flowing while the gateway
reconnects. discord.py already waits out ordinary 429s; a wait longer than the client's
`max_ratelimit_timeout`, a 429 it gave up on, a 5xx and a network error become `RetryLater`,
which the mirror retries after the delay (everything else it retries with backoff).
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import discord
from discord.http import handle_message_parameters

from adapters.discord.embeds import render, user_id
from bot.ports import ChannelNameTaken, CreatedChannel, DeliveryRejected, RetryLater
from bot.render import Message

logger = logging.getLogger(__name__)

TEXT, CATEGORY, ANNOUNCEMENT = 0, 4, 5
MEMBER_OVERWRITE, ROLE_OVERWRITE = 1, 0
CHANNEL_NAME_LIMIT = 100
TOPIC_LIMIT = 1024
THREAD_ARCHIVE_MINUTES = 10080  # a week: the longest Discord allows
UNKNOWN_MEMBER, THREAD_EXISTS, THREAD_ARCHIVED = 10007, 160004, 50083

VIEW = discord.Permissions(view_channel=True).value
# What a responder gets in a private incident channel.
MEMBER_ALLOW = discord.Permissions(
    view_channel=True, send_messages=True, read_message_history=True, add_reactions=True,
    send_messages_in_threads=True, embed_links=True, attach_files=True).value
# What the bot keeps for itself there, so a private channel never locks it out.
BOT_ALLOW = MEMBER_ALLOW | discord.Permissions(
    manage_channels=True, manage_messages=True, manage_permissions=True, manage_threads=True,
    create_public_threads=True, pin_messages=True).value
SPEAK = discord.Permissions(send_messages=True, send_messages_in_threads=True,
                            add_reactions=True, create_public_threads=True).value
ALLOWED_MENTIONS = discord.AllowedMentions(everyone=False, roles=False, users=True,
                                           replied_user=False)


def _retry_after(exc: discord.HTTPException) -> float:
    """Seconds to wait after a 429: the bucket's reset (sub-second), else Retry-After."""
    headers = getattr(exc.response, "headers", None) or {}
    for name in ("X-RateLimit-Reset-After", "Retry-After"):
        try:
            return max(0.0, float(headers[name]))
        except (KeyError, ValueError):
            continue
    return 1.0


@asynccontextmanager
async def _api(what: str) -> AsyncIterator[None]:
    """Turn Discord's transient failures into RetryLater and its refusals into DeliveryRejected."""
    try:
        yield
    except discord.RateLimited as exc:
        raise RetryLater(f"Discord rate limit on {what}", exc.retry_after) from None
    except discord.DiscordServerError as exc:
        raise RetryLater(f"Discord {exc.status} on {what}", 1.0) from None
    except discord.HTTPException as exc:
        if exc.status == 429:  # discord.py gave up after its own retries
            raise RetryLater(f"Discord rate limit on {what}", _retry_after(exc)) from None
        if 400 <= exc.status < 500:  # forbidden, unknown channel, too long: retrying cannot help
            raise DeliveryRejected(f"Discord {exc.status} on {what}: {exc.text}") from None
        raise
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise RetryLater(f"Discord unreachable on {what} ({type(exc).__name__})", 1.0) from None


class DiscordChat:
    """The outbound chat actions on one bot's guild(s).

    `guild_id` is where channels go when a link names no guild (an incident mirrored here from
    another platform); without it, the one guild the bot is in.
    """

    platform = "discord"

    def __init__(self, client: discord.Client, *, category: str = "Incidents",
                 guild_id: int | None = None) -> None:
        self.client = client
        self.category = category
        self.guild_id = guild_id
        self._categories: dict[int, int] = {}
        self._category_lock = asyncio.Lock()
        self._threads: dict[str, str] = {}  # channel id -> timeline thread id
        self._invited: dict[str, set[int]] = {}  # channel id -> users invited (for its thread)
        self._topics: dict[str, str] = {}  # channel id -> topic still to set (rate limited)
        self._topic_tasks: dict[str, asyncio.Task[None]] = {}

    @property
    def http(self) -> discord.http.HTTPClient:
        if self.client.user is None:  # not logged in yet: nothing can be sent
            raise RetryLater("Discord client is not logged in yet", 1.0)
        return self.client.http

    def _guild(self, workspace: str) -> int:
        if workspace:
            return int(workspace)
        if self.guild_id is not None:
            return self.guild_id
        guilds = self.client.guilds
        if len(guilds) == 1:
            return guilds[0].id
        if not guilds:
            raise RetryLater("Discord guilds are not known yet (gateway not ready)", 2.0)
        raise RuntimeError("the bot is in several guilds: set DISCORD_GUILD_ID")

    # --- channels -----------------------------------------------------------------------

    async def create_channel(self, *, name: str, private: bool, workspace: str) -> CreatedChannel:
        http = self.http
        guild = self._guild(workspace)
        name = name[:CHANNEL_NAME_LIMIT]
        async with _api("create_channel"):
            channels = await http.get_all_guild_channels(guild)
            if any(c["type"] in (TEXT, ANNOUNCEMENT) and c["name"] == name for c in channels):
                raise ChannelNameTaken(name)
            category = await self._category(guild, channels)
            overwrites: list[dict[str, Any]] = []
            if private:
                me = self.client.user
                assert me is not None
                overwrites = [
                    {"id": str(guild), "type": ROLE_OVERWRITE, "allow": "0", "deny": str(VIEW)},
                    {"id": str(me.id), "type": MEMBER_OVERWRITE, "allow": str(BOT_ALLOW),
                     "deny": "0"},
                ]
            created = await http.create_channel(
                guild, discord.ChannelType.text.value, name=name, parent_id=category,
                permission_overwrites=overwrites)
        return CreatedChannel(id=str(created["id"]), name=str(created["name"]))

    async def _category(self, guild: int, channels: list[Any]) -> int:
        """The id of the catalog's category, created the first time it is missing."""
        async with self._category_lock:  # two incidents opening at once make one category
            known = self._categories.get(guild)
            if known is not None and any(int(c["id"]) == known for c in channels):
                return known
            found = next((c for c in channels if c["type"] == CATEGORY
                          and c["name"].lower() == self.category.lower()), None)
            if found is None:
                found = await self.http.create_channel(
                    guild, discord.ChannelType.category.value, name=self.category)
                logger.info("discord: created category %r in guild %s", self.category, guild)
            self._categories[guild] = int(found["id"])
            return int(found["id"])

    async def invite(self, *, channel_id: str, users: Sequence[str]) -> None:
        ids = [uid for uid in (user_id(u) for u in users) if uid is not None]
        if not ids:
            return
        http = self.http
        self._invited.setdefault(channel_id, set()).update(ids)
        async with _api("invite"):
            channel = await http.get_channel(channel_id)
            if _is_private(channel):
                for uid in ids:
                    await http.edit_channel_permissions(channel_id, uid, str(MEMBER_ALLOW), "0",
                                                        MEMBER_OVERWRITE)
            thread = self._thread_of(channel_id)
            if thread is not None:
                await self._add_to_thread(thread, ids)

    async def _add_to_thread(self, thread_id: str, ids: Sequence[int]) -> None:
        for uid in ids:
            try:
                await self.http.add_user_to_thread(thread_id, uid)
            except discord.NotFound as exc:
                if exc.code != UNKNOWN_MEMBER:
                    raise
                logger.info("discord: user %s is not in the guild; not added to %s", uid,
                            thread_id)

    def _thread_of(self, channel_id: str) -> str | None:
        known = self._threads.get(channel_id)
        if known is not None:
            return known
        channel = self.client.get_channel(int(channel_id))
        threads = getattr(channel, "threads", None) or []
        return next((str(t.id) for t in threads if t.name == "Timeline"), None)

    # --- messages -----------------------------------------------------------------------

    async def post(self, *, channel_id: str, message: Message, thread_id: str | None = None,
                   key: str | None = None, recheck: bool = False) -> str:
        http = self.http
        target = thread_id or channel_id  # a Discord thread is a channel of its own
        # The key goes out as an enforced nonce: Discord answers a repeat within a few minutes
        # with the message it already created, so `recheck` needs nothing more here.
        with handle_message_parameters(**render(message).kwargs(), nonce=key,
                                       allowed_mentions=ALLOWED_MENTIONS) as params:
            async with _api("post"):
                try:
                    sent = await http.send_message(target, params=params)
                except discord.HTTPException as exc:
                    if exc.code != THREAD_ARCHIVED:
                        raise
                    # an idle week archives the thread; sending reopens it
                    await http.edit_channel(target, archived=False)
                    sent = await http.send_message(target, params=params)
        return str(sent["id"])

    async def update(self, *, channel_id: str, message_id: str, message: Message) -> None:
        http = self.http
        with handle_message_parameters(**render(message).kwargs(),
                                       allowed_mentions=ALLOWED_MENTIONS) as params:
            async with _api("update"):
                await http.edit_message(channel_id, message_id, params=params)

    async def pin(self, *, channel_id: str, message_id: str) -> None:
        http = self.http
        async with _api("pin"):
            await http.pin_message(channel_id, message_id)  # pinning twice is a no-op

    async def start_thread(self, *, channel_id: str, message_id: str, name: str) -> str:
        http = self.http
        async with _api("start_thread"):
            try:
                thread = await http.start_thread_with_message(
                    channel_id, message_id, name=name[:CHANNEL_NAME_LIMIT],
                    auto_archive_duration=THREAD_ARCHIVE_MINUTES)
                thread_id = str(thread["id"])
            except discord.HTTPException as exc:
                if exc.code != THREAD_EXISTS:
                    raise
                thread_id = message_id  # a retried step: the thread has the message's id
            self._threads[channel_id] = thread_id
            invited = sorted(self._invited.get(channel_id, ()))
            if invited:
                await self._add_to_thread(thread_id, invited)
        return thread_id

    # --- channel settings ---------------------------------------------------------------

    async def set_topic(self, *, channel_id: str, topic: str) -> None:
        """Set the topic; when Discord's 2-per-10-minutes edit limit says wait, the newest topic
        is set in the background once allowed, so the channel's messages are not held up."""
        http = self.http
        self._topics[channel_id] = topic[:TOPIC_LIMIT]
        if channel_id in self._topic_tasks:
            return  # a deferred edit is waiting; it will set this newest topic
        try:
            async with _api("set_topic"):
                await http.edit_channel(channel_id, topic=self._topics[channel_id])
            self._topics.pop(channel_id, None)
        except RetryLater as exc:
            task = asyncio.create_task(self._topic_later(channel_id, exc.retry_after))
            self._topic_tasks[channel_id] = task

    async def _topic_later(self, channel_id: str, delay: float) -> None:
        try:
            while channel_id in self._topics:
                await asyncio.sleep(delay)
                try:
                    async with _api("set_topic"):
                        await self.http.edit_channel(channel_id, topic=self._topics[channel_id])
                    self._topics.pop(channel_id, None)
                except RetryLater as exc:
                    delay = max(exc.retry_after, 1.0)
                except discord.HTTPException as exc:
                    logger.warning("discord: topic of %s not set: %s", channel_id, exc)
                    self._topics.pop(channel_id, None)
        finally:
            self._topic_tasks.pop(channel_id, None)

    async def rename(self, *, channel_id: str, name: str) -> None:
        http = self.http
        async with _api("rename"):
            await http.edit_channel(channel_id, name=name[:CHANNEL_NAME_LIMIT])

    async def archive(self, *, channel_id: str) -> None:
        """Discord has no channel archive: nobody may write any more, and the timeline thread
        is archived and locked. The history stays readable to whoever could read it."""
        http = self.http
        async with _api("archive"):
            channel = await http.get_channel(channel_id)
            guild = str(channel.get("guild_id") or self._guild(""))
            everyone = next((o for o in channel.get("permission_overwrites", [])
                             if o["id"] == guild), {"allow": "0", "deny": "0"})
            await http.edit_channel_permissions(
                channel_id, guild, str(int(everyone["allow"]) & ~SPEAK),
                str(int(everyone["deny"]) | SPEAK), ROLE_OVERWRITE)
            thread = self._thread_of(channel_id)
            if thread is not None:
                await http.edit_channel(thread, archived=True, locked=True)

    async def send_dm(self, *, user: str, message: Message) -> None:
        uid = user_id(user)
        if uid is None:
            return  # someone on another platform
        http = self.http
        async with _api("send_dm"):
            dm = await http.start_private_message(uid)
            with handle_message_parameters(**render(message).kwargs(),
                                           allowed_mentions=ALLOWED_MENTIONS) as params:
                await http.send_message(dm["id"], params=params)

    async def upload_file(
        self, *, channel_id: str, filename: str, content: bytes, title: str, comment: str
    ) -> str:
        """The file as an attachment of one message whose content is `comment`."""
        http = self.http
        file = discord.File(io.BytesIO(content), filename=filename, description=title[:1024])
        with handle_message_parameters(content=comment[:2000], file=file,
                                       allowed_mentions=ALLOWED_MENTIONS) as params:
            async with _api("upload_file"):
                sent = await http.send_message(channel_id, params=params)
        return str(sent["id"])

    async def find_own_channel(self, *, name: str, workspace: str) -> str | None:
        """A text channel called `name` in the bot's incident category (Discord records no
        channel creator; the category is the bot's own)."""
        http = self.http
        guild = self._guild(workspace)
        async with _api("find_channel"):
            channels = await http.get_all_guild_channels(guild)
        category = self._categories.get(guild) or next(
            (int(c["id"]) for c in channels
             if c["type"] == CATEGORY and c["name"].lower() == self.category.lower()), None)
        found = next((c for c in channels if c["type"] == TEXT and c["name"] == name
                      and category is not None and str(c.get("parent_id")) == str(category)),
                     None)
        return str(found["id"]) if found else None

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
        http = self.http
        wanted = name.lstrip("#").lower()
        async with _api("find_channel"):
            channels = await http.get_all_guild_channels(self._guild(workspace))
        found = next((c for c in channels if c["type"] in (TEXT, ANNOUNCEMENT)
                      and c["name"].lower() == wanted), None)
        return str(found["id"]) if found else None

    async def close(self) -> None:
        """Stop deferred topic edits (the mirror sets the topic again on the next change)."""
        for task in list(self._topic_tasks.values()):
            task.cancel()
        await asyncio.gather(*self._topic_tasks.values(), return_exceptions=True)


def _is_private(channel: Any) -> bool:
    guild = str(channel.get("guild_id", ""))
    return any(o["id"] == guild and int(o["deny"]) & VIEW
               for o in channel.get("permission_overwrites", []))


__all__ = ["DiscordChat"]
