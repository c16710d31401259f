"""The Discord edge: a discord.py client whose handlers translate Discord input into service calls.

The client is a `discord.AutoShardedClient`: it asks `GET {Route.BASE}/gateway/bot` for the
gateway URL, where a plain `discord.Client` would dial Discord's fixed gateway host, so
`DISCORD_API_URL` reaches a self-hosted or fake Discord end to end.

Inputs that change or read the record (commands, buttons, modal submissions, Create, and the
gateway's thread messages, edits, deletions and reactions) are stored in the durable inbox
(adapters/inbox.py) first; an interaction is then answered at once, within Discord's 3 seconds,
with a deferred "thinking" (or "queued, N ahead" when the inbox is far behind), and the inbox
worker applies it through `prepare` and answers through the interaction's webhook (valid 15
minutes). Interactions that only show something (the Quick Start review, the incident picker)
are answered directly: when that work is not done after `answer_within` seconds the interaction
is deferred and the answer follows. Gateway events are stored once per key (a message id); a
RESUME replay of a reaction, which has no id, finds its earlier effect in the record (the
service keys reactions on message id + user). The events of one channel are applied in the
order they were stored.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import aiohttp
import discord
from discord import app_commands
from discord.app_commands import Choice

from adapters.discord.chat import DiscordChat
from adapters.discord.commands import build_tree
from adapters.discord.embeds import clip, emoji_name, reply_kwargs
from adapters.discord.views import (
    Draft,
    IncidentButton,
    KeyEventModal,
    PickIncident,
    QuickStart,
    draft_embed,
)
from adapters.inbox import (
    Answer,
    Inbox,
    Receipt,
    Step,
    Transient,
    command_from_json,
    command_json,
    queued_note,
)
from bot import commands as c
from bot.catalog import Catalog, FieldKind
from bot.models import InboxItem
from bot.ports import Actor, ChannelRef, Store, Suggestion
from bot.service import IncidentService, Reply, ServiceError

logger = logging.getLogger(__name__)

PLATFORM = "discord"
DEFAULT_API_URL = "https://discord.com/api/v10"
ANSWER_WITHIN = 2.0  # seconds of work before deferring; Discord allows 3 for the first answer
INTERNAL_ERROR = "Opsroom could not do that because of an internal error (it is logged)."
NOT_STORED = ("Opsroom cannot take that just now (its database does not answer); nothing was "
              "done. Try again in a moment.")


def intents() -> discord.Intents:
    """Guilds, guild messages, message content (privileged) and guild reactions."""
    wanted = discord.Intents.none()
    wanted.guilds = True
    wanted.guild_messages = True
    wanted.message_content = True  # privileged: enable it in the Developer Portal
    wanted.guild_reactions = True
    return wanted


@dataclass(frozen=True)
class Screen:
    """An answer that is more than a reply: an embed with components (the Quick Start)."""

    content: str | None = None
    embed: discord.Embed | None = None
    view: discord.ui.View | None = None


class OpsroomClient(discord.AutoShardedClient):
    """The client; its event handlers hand over to the edge."""

    def __init__(self, edge: DiscordEdge, **options: Any) -> None:
        super().__init__(intents=intents(), **options)
        self.edge = edge

    def dispatch(self, event: str, /, *args: Any, **kwargs: Any) -> None:
        if event == "socket_event_type":  # every gateway dispatch, replays included
            self.edge.gateway_events += 1
        elif event == "shard_connect":  # a shard's READY was parsed (on_ready comes later)
            self.edge.shard_connected(args[0])
        super().dispatch(event, *args, **kwargs)

    async def on_ready(self) -> None:
        if self.user is not None:  # the bot is no person to assign things to
            self.edge.service.refuse_mentions(f"<@{self.user.id}>")
        self.edge.gateway_up("ready")

    async def on_resumed(self) -> None:
        self.edge.gateway_up("resumed")

    async def on_disconnect(self) -> None:
        self.edge.gateway_down()

    async def on_message(self, message: discord.Message) -> None:
        await self.edge.on_message(message)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        await self.edge.on_message_edit(payload)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.edge.on_message_delete(payload)

    async def on_raw_reaction_add(self, payload: discord.RawReactionActionEvent) -> None:
        await self.edge.on_reaction(payload, added=True)

    async def on_raw_reaction_remove(self, payload: discord.RawReactionActionEvent) -> None:
        await self.edge.on_reaction(payload, added=False)


class DiscordEdge:
    """The client, its command tree, and what the handlers share."""

    def __init__(
        self,
        *,
        service: IncidentService,
        store: Store,
        catalog: Catalog,
        token: str,
        inbox: Inbox,
        api_url: str = DEFAULT_API_URL,
        guild_id: int | None = None,
        answer_within: float = ANSWER_WITHIN,
        guild_ready_timeout: float = 2.0,
        gateway: bool = True,
    ) -> None:
        self.service = service
        self.store = store
        self.catalog = catalog
        self.token = token
        self.inbox = inbox
        self.api_url = api_url.rstrip("/")
        self.guild_id = guild_id
        self.answer_within = answer_within
        # False (DISCORD_GATEWAY=false): REST only, for a replica that posts the mirror's
        # messages while another replica holds the gateway and answers commands.
        self.gateway = gateway
        # Rate limits longer than a minute become RetryLater for the mirror instead of a wait.
        self.client = OpsroomClient(self, guild_ready_timeout=guild_ready_timeout,
                                    max_ratelimit_timeout=60.0)
        self.client.add_dynamic_items(IncidentButton)
        self.tree = build_tree(self)
        self.chat = DiscordChat(self.client, category=catalog.discord_category, guild_id=guild_id)
        self.gateway_events = 0  # gateway dispatches received (tests wait for the fake's count)
        self.synced = False
        self.gateway_ready = False
        self._shards: set[int] = set()
        self._guild_watch: asyncio.Task[None] | None = None
        self._readiness: Any = None
        self._runner: asyncio.Task[None] | None = None
        self._sync_task: asyncio.Task[None] | None = None
        self._busy = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._names: dict[int, str] = {}

    # --- lifecycle ----------------------------------------------------------------------

    async def start(self, readiness: Any = None) -> None:
        """Log in and connect in the background; `readiness` ("discord") is marked ready once
        the gateway is READY and the commands are synced."""
        self._readiness = readiness
        if readiness is not None:
            readiness.expect(PLATFORM)
        # discord.py builds every REST and webhook URL from this class attribute.
        discord.http.Route.BASE = self.api_url
        self._runner = asyncio.create_task(self._run(), name="opsroom-discord")

    async def _run(self) -> None:
        delay = 1.0
        while True:
            try:
                await self.client.login(self.token)
                break
            except discord.LoginFailure:
                logger.error("discord: the token was refused (check DISCORD_TOKEN)")
                return
            except (discord.DiscordServerError, aiohttp.ClientError, OSError) as exc:
                logger.warning("discord: login failed (%s); retrying in %.0fs",
                               type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
        if not self.gateway:
            logger.info("discord: REST only (DISCORD_GATEWAY=false): no gateway connection; "
                        "the gateway replica answers commands and syncs them")
            self._update_readiness()
            return
        self._sync_task = asyncio.create_task(self._sync(), name="opsroom-discord-sync")
        try:
            await self.client.connect(reconnect=True)
        except discord.PrivilegedIntentsRequired:
            logger.error("discord: the Message Content intent is not enabled for this bot: "
                         "enable it under Bot > Privileged Gateway Intents in the Developer Portal")
        except Exception:
            logger.exception("discord: the gateway connection ended")
        finally:
            self.gateway_down()

    async def _sync(self) -> None:
        """Register /incident and "Add to timeline": in DISCORD_GUILD_ID at once, else globally."""
        guild = discord.Object(id=self.guild_id) if self.guild_id else None
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        delay = 1.0
        while True:
            try:
                synced = await self.tree.sync(guild=guild)
                break
            except (discord.DiscordServerError, discord.RateLimited, aiohttp.ClientError,
                    OSError) as exc:
                logger.warning("discord: command sync failed (%s); retrying in %.0fs",
                               type(exc).__name__, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 60.0)
            except discord.HTTPException as exc:
                logger.error("discord: command sync refused: %s %s", exc.status, exc.text)
                return
        logger.info("discord: %d commands synced %s", len(synced),
                    f"to guild {self.guild_id}" if guild else "globally")
        self.synced = True
        self._update_readiness()

    def shard_connected(self, shard_id: int) -> None:
        """READY on a shard: ready as soon as every shard is and the guilds we need have
        arrived, instead of after discord.py's guild_ready_timeout of quiet."""
        self._shards.add(shard_id)
        if self._guild_watch is None or self._guild_watch.done():
            self._guild_watch = asyncio.create_task(self._watch_guilds(), name="opsroom-guilds")

    async def _watch_guilds(self) -> None:
        while not self.gateway_ready and not self.client.is_closed():
            wanted = [self.guild_id] if self.guild_id else [g.id for g in self.client.guilds]
            here = all((g := self.client.get_guild(i)) is not None and not g.unavailable
                       for i in wanted)
            if here and len(self._shards) >= (self.client.shard_count or 1):
                self.gateway_up("ready with its guilds")
                return
            await asyncio.sleep(0.02)

    def gateway_up(self, how: str) -> None:
        self.gateway_ready = True
        logger.info("discord: gateway %s", how)
        self._update_readiness()

    def gateway_down(self) -> None:
        self.gateway_ready = False
        self._shards.clear()
        self._update_readiness()

    def _update_readiness(self) -> None:
        if self._readiness is None:
            return
        if self.ready:
            self._readiness.mark_ready(PLATFORM)
        else:
            self._readiness.mark_down(PLATFORM)

    @property
    def ready(self) -> bool:
        if not self.gateway:
            return self.client.user is not None and not self.client.is_closed()
        return self.synced and self.gateway_ready and not self.client.is_closed()

    async def wait_ready(self, timeout: float = 10.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.ready:
            if self._runner is not None and self._runner.done():
                raise RuntimeError("discord: the client stopped before it was ready")
            if loop.time() > deadline:
                raise TimeoutError("discord: not ready in time")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        """Finish the handlers in flight, then close the gateway and the HTTP session."""
        try:
            await asyncio.wait_for(self.idle(), timeout=10.0)
        except TimeoutError:
            logger.warning("discord: stopping with handlers still running")
        await self.chat.close()
        if not self.client.is_closed():
            await self.client.close()
        for task in (self._sync_task, self._runner, self._guild_watch):
            if task is None:
                continue
            done, _ = await asyncio.wait({task}, timeout=5.0)
            if not done:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self.gateway_down()

    # --- bookkeeping --------------------------------------------------------------------

    @asynccontextmanager
    async def busy(self) -> AsyncIterator[None]:
        """Counts a handler in flight (stop and the tests wait for none)."""
        self._busy += 1
        self._idle.clear()
        try:
            yield
        finally:
            self._busy -= 1
            if self._busy == 0:
                self._idle.set()

    async def idle(self) -> None:
        await self._idle.wait()

    @property
    def in_flight(self) -> int:
        return self._busy

    def actor(self, user: discord.abc.User) -> Actor:
        self._names[user.id] = user.display_name
        return Actor(PLATFORM, str(user.id), user.display_name, f"<@{user.id}>")

    async def actor_by_id(self, user_id: int) -> Actor:
        name = self._names.get(user_id)
        if name is None:
            user = self.client.get_user(user_id)
            if user is None:
                try:
                    user = await self.client.fetch_user(user_id)
                except discord.HTTPException:
                    return Actor(PLATFORM, str(user_id), str(user_id), f"<@{user_id}>")
            return self.actor(user)
        return Actor(PLATFORM, str(user_id), name, f"<@{user_id}>")

    def where(self, channel: Any, guild_id: int | None) -> ChannelRef:
        """Where a command, reaction or context menu was used; in a thread, its channel."""
        guild = str(guild_id or "")
        parent = getattr(channel, "parent_id", None)
        if isinstance(channel, discord.Thread) and parent is not None:
            return ChannelRef(PLATFORM, str(parent), thread_id=str(channel.id), workspace=guild)
        return ChannelRef(PLATFORM, str(getattr(channel, "id", channel)), workspace=guild)

    def _thread_ref(self, channel_id: int, guild_id: int | None) -> ChannelRef:
        """A message in a thread: Discord threads are channels, so both ids are the thread's."""
        return ChannelRef(PLATFORM, str(channel_id), thread_id=str(channel_id),
                          workspace=str(guild_id or ""))

    def _maybe_thread(self, channel_id: int) -> bool:
        """False only for a channel known not to be a thread (no timeline there)."""
        channel = self.client.get_channel(channel_id)
        return channel is None or isinstance(channel, discord.Thread)

    async def _channel(self, channel_id: int) -> Any:
        channel = self.client.get_channel(channel_id)
        if channel is None:
            channel = await self.client.fetch_channel(channel_id)
        return channel

    # --- answering interactions ---------------------------------------------------------

    async def answer(self, interaction: discord.Interaction[Any],
                     work: Awaitable[Reply | Screen | None], *, update: bool = False) -> None:
        """Answer with what `work` gives, within Discord's 3 seconds (deferring when slow).

        `update` edits the message whose component was used instead of answering anew.
        """
        async with self.busy():
            task = asyncio.ensure_future(work)
            age = (discord.utils.utcnow() - interaction.created_at).total_seconds()
            budget = self.answer_within - min(max(age, 0.0), self.answer_within)
            if budget > 0:
                await asyncio.wait({task}, timeout=budget)
            if not task.done() and not interaction.response.is_done():
                if update:
                    await interaction.response.defer()
                else:
                    await interaction.response.defer(ephemeral=True, thinking=True)
            try:
                outcome = await task
            except (ServiceError, c.UsageError) as exc:
                outcome = Reply(str(exc), ok=False)
            except Exception:
                logger.exception("discord: interaction %s failed", interaction.id)
                outcome = Reply(INTERNAL_ERROR, ok=False)
            if outcome is None:
                outcome = Reply("Nothing to do.")
            await self.show(interaction, outcome, update=update)

    async def show(self, interaction: discord.Interaction[Any], outcome: Reply | Screen, *,
                   update: bool = False) -> None:
        """Send an answer: the first response, or the edit of a deferred one."""
        if isinstance(outcome, Screen):
            kwargs: dict[str, Any] = {"content": outcome.content, "embed": outcome.embed}
            if outcome.view is not None:
                kwargs["view"] = outcome.view
        else:
            kwargs = reply_kwargs(outcome.text, outcome.message)
        if update and isinstance(outcome, Reply) and not outcome.ok:
            update = False  # an error is told apart; the message clicked on stays as it was
        response = interaction.response
        if update:
            full = {"content": None, "embed": None, "view": None, **kwargs}
            if not response.is_done():
                await response.edit_message(**full)
            else:
                await interaction.edit_original_response(**full)
        elif not response.is_done():
            await response.send_message(ephemeral=True, **kwargs)
        elif response.type is discord.InteractionResponseType.deferred_channel_message:
            await interaction.edit_original_response(**{"content": None, **kwargs})
        else:
            await interaction.followup.send(ephemeral=True, **{k: v for k, v in kwargs.items()
                                                               if v is not None})

    async def failed(self, interaction: discord.Interaction[Any], error: Exception) -> None:
        """An error that escaped a command, modal or view: answered ephemeral."""
        original = getattr(error, "original", error)
        if isinstance(original, (c.UsageError, ServiceError)):
            text = str(original)
        elif isinstance(error, app_commands.TransformerError):
            text = f'"{error.value}" is not a valid {error.type.name.lower()}; nothing was changed.'
        elif isinstance(error, app_commands.CheckFailure):
            text = str(error) or "You cannot use this command here."
        else:
            logger.error("discord: interaction %s failed", interaction.id, exc_info=original)
            text = INTERNAL_ERROR
        async with self.busy():
            try:
                await self.show(interaction, Reply(text, ok=False))
            except discord.HTTPException as exc:  # e.g. the interaction expired meanwhile
                logger.warning("discord: could not tell about an error: %s", exc)

    async def run(self, interaction: discord.Interaction[Any], command: c.Command, *,
                  note: str = "") -> None:
        """A command from /incident (or a button, a modal): stored, then applied by the inbox
        worker where it was used; the answer is ephemeral (with `note` under a successful
        answer)."""
        actor = self.actor(interaction.user)
        where = self.where(interaction.channel or interaction.channel_id, interaction.guild_id)
        payload = {"command": command_json(command), "actor": _actor_json(actor),
                   "where": _where_json(where)}
        if note:
            payload["note"] = note
        await self.store_interaction(interaction, "command", where, payload)

    async def store_interaction(self, interaction: discord.Interaction[Any], kind: str,
                                where: ChannelRef, payload: dict[str, Any], *,
                                update: bool = False) -> Receipt:
        """Store an interaction in the inbox, then answer it within Discord's 3 seconds: a
        deferral the worker completes through the interaction's webhook (`update` edits the
        message whose component was used). A replay (the same interaction id) is not answered
        again."""
        async with self.busy():
            app_id = interaction.application_id or (self.client.application_id or 0)
            try:
                receipt = await self.inbox.put(
                    platform=PLATFORM, key=f"interaction:{interaction.id}",
                    queue=f"{PLATFORM}:{where.channel_id}", kind=kind,
                    payload={**payload, "update": update},
                    reply_to=f"{app_id}:{interaction.token}")
            except Exception as exc:
                logger.warning("discord: interaction %s not stored (%s)", interaction.id,
                               type(exc).__name__)
                await self.show(interaction, Reply(NOT_STORED, ok=False))
                return Receipt(new=False, ahead=0, behind=False)
            response = interaction.response
            if not receipt.new or response.is_done():
                return receipt
            if update:
                await response.defer()
            elif receipt.behind:
                await response.send_message(queued_note(receipt.ahead), ephemeral=True)
            else:
                await response.defer(ephemeral=True, thinking=True)
            return receipt

    # --- Quick Start --------------------------------------------------------------------

    async def quick_start(self, interaction: discord.Interaction[Any], description: str,
                          type_hint: str | None) -> None:
        actor = self.actor(interaction.user)
        where = self.where(interaction.channel or interaction.channel_id, interaction.guild_id)
        hint = type_hint.strip().lower() if type_hint else None

        async def review() -> Screen:
            suggestion = await self.service.suggest(description=description, type_hint=hint)
            draft = Draft.from_suggestion(suggestion, description=description, actor=actor,
                                          where=where)
            return Screen(embed=draft_embed(draft, self.catalog), view=QuickStart(self, draft))

        await self.answer(interaction, review())

    async def create_from_draft(self, interaction: discord.Interaction[Any],
                                review: QuickStart) -> None:
        draft = review.draft
        if draft.declared is not None:
            await self.show(interaction, Reply("This incident is already being declared.",
                                               ok=False))
            return
        draft.declared = 0  # a second click declares nothing
        review.stop()
        await self.store_interaction(
            interaction, "declare", draft.where,
            {"actor": _actor_json(self.actor(interaction.user)), "where": _where_json(draft.where),
             "description": draft.description, "title": draft.title, "type": draft.type,
             "severity": draft.severity, "priority": draft.priority, "summary": draft.summary,
             "custom_fields": draft.custom_fields,
             "suggested": dataclasses.asdict(draft.suggestion) if draft.suggestion else None},
            update=True)

    # --- buttons and modals -------------------------------------------------------------

    async def on_button(self, interaction: discord.Interaction[Any], action: str,
                        value: str) -> None:
        if action == "key_event" and value.isdigit():
            async with self.busy():
                await interaction.response.send_modal(KeyEventModal(self, int(value)))
            return
        command = c.button_command(action, value)
        if command is None:
            await self.show(interaction, Reply("That button is not understood.", ok=False))
            return
        await self.run(interaction, command)

    async def key_event_submitted(self, interaction: discord.Interaction[Any], number: int,
                                  text: str) -> None:
        if not text.strip():
            await self.show(interaction, Reply("Say what happened; nothing was added.", ok=False))
            return
        await self.run(interaction, c.AddKeyEvent(incident=number, text=text.strip()))

    # --- "Add to timeline" --------------------------------------------------------------

    async def add_to_timeline(self, interaction: discord.Interaction[Any],
                              message: discord.Message) -> None:
        """The message context menu: a key event at the message's own time. In an incident
        channel it is stored and applied; elsewhere the person picks the incident first."""
        actor = self.actor(interaction.user)
        where = self.where(message.channel, interaction.guild_id)
        carried = {"channel": where.channel_id, "thread": where.thread_id, "id": str(message.id),
                   "text": clip(_text(message), 4000), "author": message.author.display_name,
                   "at": message.created_at.isoformat(), "guild": where.workspace}
        async with self.store.unit() as u:
            here = await u.incident_for_channel(PLATFORM, where.channel_id)
            open_incidents = [] if here else await u.incidents(include_closed=False)
        if here is not None:
            await self.store_interaction(
                interaction, "key_event_message", where,
                {"carried": carried, "actor": _actor_json(actor), "number": None})
            return

        async def pick() -> Reply | Screen:
            if not open_incidents:
                return Reply("There is no open incident to add this message to.", ok=False)
            choices = [(i.number, i.title) for i in open_incidents]
            return Screen(content="Add this message to which incident?",
                          view=PickIncident(self, choices, carried))

        await self.answer(interaction, pick())

    async def timeline_picked(self, interaction: discord.Interaction[Any], number: int,
                              carried: dict[str, Any]) -> None:
        where = ChannelRef(PLATFORM, carried["channel"], thread_id=carried["thread"],
                           workspace=carried["guild"])
        await self.store_interaction(
            interaction, "key_event_message", where,
            {"carried": carried, "actor": _actor_json(self.actor(interaction.user)),
             "number": number}, update=True)

    # --- autocomplete -------------------------------------------------------------------

    async def complete_incident(self, interaction: discord.Interaction[Any],
                                current: str) -> list[Choice[int]]:
        wanted = current.strip().lstrip("#").lower()
        async with self.store.unit() as u:  # Discord shows at most 25 choices
            found = await u.open_incident_choices(wanted, limit=25)
        return [Choice(name=clip(f"#{i.number} {i.title}", 100), value=i.number) for i in found]

    async def complete_type(self, interaction: discord.Interaction[Any],
                            current: str) -> list[Choice[str]]:
        wanted = current.strip().lower()
        return [Choice(name=clip(f"{t.name}: {t.description}", 100), value=t.name)
                for t in self.catalog.incident_types if wanted in t.name][:25]

    async def _fields_here(self, interaction: discord.Interaction[Any]) -> list[Any]:
        """The custom fields of the incident named in the command or of this channel's."""
        number = getattr(interaction.namespace, "incident", None)
        where = self.where(interaction.channel or interaction.channel_id, interaction.guild_id)
        async with self.store.unit() as u:
            incident = await u.incident(int(number)) if number else \
                await u.incident_for_channel(PLATFORM, where.channel_id)
        if incident is not None:
            itype = self.catalog.incident_type(incident.type)
            return list(itype.fields) if itype else []
        seen: dict[str, Any] = {}
        for t in self.catalog.incident_types:
            for f in t.fields:
                seen.setdefault(f.name, f)
        return list(seen.values())

    async def complete_field(self, interaction: discord.Interaction[Any],
                             current: str) -> list[Choice[str]]:
        wanted = current.strip().lower()
        return [Choice(name=clip(f"{f.name}: {f.display}", 100), value=f.name)
                for f in await self._fields_here(interaction) if wanted in f.name][:25]

    async def complete_value(self, interaction: discord.Interaction[Any],
                             current: str) -> list[Choice[str]]:
        name = getattr(interaction.namespace, "field", None)
        field = next((f for f in await self._fields_here(interaction) if f.name == name), None)
        if field is None or field.kind not in (FieldKind.SELECT, FieldKind.MULTI_SELECT):
            return []
        wanted = current.strip().lower().split(",")[-1].strip()
        return [Choice(name=ch, value=ch) for ch in field.choices if wanted in ch.lower()][:25]

    # --- gateway events -----------------------------------------------------------------

    async def on_message(self, message: discord.Message) -> None:
        """A reply in an incident's timeline thread may become a timeline entry: stored."""
        async with self.busy():
            if message.author.bot or message.webhook_id is not None or message.guild is None:
                return  # ourselves, other bots and interaction answers are never entries
            if message.type not in (discord.MessageType.default, discord.MessageType.reply):
                return
            if not self._maybe_thread(message.channel.id):
                return
            text = _text(message)
            if not text:
                return
            where = self._thread_ref(message.channel.id, message.guild.id)
            await self._store_event(
                f"message:{message.id}", where.channel_id, "message",
                {"where": _where_json(where), "actor": _actor_json(self.actor(message.author)),
                 "text": text, "message_id": str(message.id),
                 "at": message.created_at.isoformat()})

    async def on_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        async with self.busy():
            author = payload.data.get("author") or {}
            if author.get("bot") or "content" not in payload.data:
                return  # our own edits (the summary), or an update that is not an edit
            if not self._maybe_thread(payload.channel_id):
                return
            where = self._thread_ref(payload.channel_id, payload.guild_id)
            edited = payload.data.get("edited_timestamp") or uuid.uuid4().hex
            await self._store_event(
                f"edit:{payload.message_id}:{edited}", where.channel_id, "edit",
                {"where": _where_json(where), "message_id": str(payload.message_id),
                 "text": _text(payload.message)})

    async def on_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        async with self.busy():
            if not self._maybe_thread(payload.channel_id):
                return
            where = self._thread_ref(payload.channel_id, payload.guild_id)
            await self._store_event(
                f"delete:{payload.channel_id}:{payload.message_id}", where.channel_id, "delete",
                {"where": _where_json(where), "message_id": str(payload.message_id)})

    def key_emoji(self, emoji: discord.PartialEmoji) -> str | None:
        """The catalog's key-event emoji name when this is it (📌 is "pushpin"), else None."""
        key = self.catalog.key_event_emoji
        return key if key in (emoji_name(emoji), emoji.name) else None

    async def on_reaction(self, payload: discord.RawReactionActionEvent, *, added: bool) -> None:
        """The key-event emoji records the message as a key event; removing it removes it."""
        async with self.busy():
            me = self.client.user
            if (me is not None and payload.user_id == me.id) or (
                    payload.member is not None and payload.member.bot):
                return
            emoji = self.key_emoji(payload.emoji)
            if emoji is None:
                return
            actor = self.actor(payload.member) if payload.member is not None else None
            # A reaction has no id: each is stored as it comes (a replay applies as a no-op).
            await self._store_event(
                f"reaction:{uuid.uuid4().hex}", str(payload.channel_id), "reaction",
                {"channel_id": str(payload.channel_id), "guild_id": payload.guild_id,
                 "message_id": str(payload.message_id), "user_id": str(payload.user_id),
                 "actor": _actor_json(actor) if actor else None, "emoji": emoji,
                 "added": added})

    async def _store_event(self, key: str, channel: str, kind: str,
                           payload: dict[str, Any]) -> None:
        await self.inbox.put(platform=PLATFORM, key=key, queue=f"{PLATFORM}:{channel}",
                             kind=kind, payload=payload)

    # --- apply: what the inbox worker does with a stored input ----------------------------

    async def prepare(self, item: InboxItem) -> Step | None:
        """The `Applier` half of this edge (see adapters/inbox.py)."""
        body = item.payload
        if item.kind == "command":
            command = command_from_json(body["command"])
            actor, where = _actor_from(body["actor"]), _where_from(body["where"])

            note = str(body.get("note") or "")

            async def run() -> Answer:
                reply = await self.service.handle(command, actor=actor, where=where)
                if note and reply.ok:
                    reply = replace(reply, text=f"{reply.text}\n{note}")
                return self._answer(item.reply_to, reply, update=False)

            return Step(run, alone=isinstance(command, c.CatchUp))
        if item.kind == "declare":
            return Step(lambda: self._declare(body, item.reply_to))
        if item.kind == "key_event_message":
            return Step(lambda: self._key_event_message(body, item.reply_to))
        if item.kind == "message":
            where, actor = _where_from(body["where"]), _actor_from(body["actor"])
            return Step(lambda: _nothing_to_say(self.service.record_thread_message(
                where=where, actor=actor, text=body["text"], message_id=body["message_id"],
                occurred_at=datetime.fromisoformat(body["at"]))))
        if item.kind == "edit":
            return Step(lambda: _nothing_to_say(self.service.edit_thread_message(
                where=_where_from(body["where"]), message_id=body["message_id"],
                text=body["text"])))
        if item.kind == "delete":
            return Step(lambda: _nothing_to_say(self.service.delete_thread_message(
                where=_where_from(body["where"]), message_id=body["message_id"])))
        if item.kind == "reaction":
            return await self._prepare_reaction(body)
        logger.warning("discord: inbox row %s of unknown kind %r skipped", item.id, item.kind)
        return None

    async def _prepare_reaction(self, body: dict[str, Any]) -> Step | None:
        channel_id, message_id = int(body["channel_id"]), int(body["message_id"])
        try:
            channel = await self._channel(channel_id)
            where = self.where(channel, body["guild_id"])
            actor = _actor_from(body["actor"]) if body.get("actor") else \
                await self.actor_by_id(int(body["user_id"]))
            if not body["added"]:
                return Step(lambda: _nothing_to_say(self.service.reaction_removed(
                    where=where, actor=actor, emoji=body["emoji"], message_id=str(message_id))))
            message = await channel.fetch_message(message_id)
        except discord.NotFound:
            logger.info("discord: reacted message %s in %s is gone", message_id, channel_id)
            return None
        except discord.DiscordServerError as exc:
            raise Transient(f"discord: {exc.status}") from None

        async def mark() -> None:
            reply = await self.service.reaction_added(
                where=where, actor=actor, emoji=body["emoji"], message_id=str(message_id),
                text=_text(message), author=message.author.display_name,
                occurred_at=message.created_at)
            if reply is not None and not reply.ok:
                # Outside an interaction Discord has no ephemeral message: say nothing.
                logger.info("discord: reaction on %s not recorded: %s", message_id, reply.text)

        return Step(mark)

    async def _declare(self, body: dict[str, Any], reply_to: str | None) -> Answer:
        suggested = body.get("suggested")
        try:
            reply = await self.service.declare(
                actor=_actor_from(body["actor"]), where=_where_from(body["where"]),
                description=body["description"], title=body["title"], type=body["type"],
                severity=body["severity"], priority=body["priority"], summary=body["summary"],
                custom_fields=body["custom_fields"],
                suggested=Suggestion(**suggested) if suggested else None)
        except ServiceError as exc:
            reply = Reply(str(exc), ok=False)
        return self._answer(reply_to, reply, update=True)

    async def _key_event_message(self, body: dict[str, Any], reply_to: str | None) -> Answer:
        carried, number = body["carried"], body.get("number")
        where = ChannelRef(PLATFORM, carried["channel"], thread_id=carried["thread"],
                           workspace=carried["guild"])
        try:
            reply = await self.service.key_event_from_message(
                where=where, actor=_actor_from(body["actor"]), message_id=carried["id"],
                text=carried["text"], author=carried["author"],
                occurred_at=datetime.fromisoformat(carried["at"]), incident_number=number)
        except ServiceError as exc:
            reply = Reply(str(exc), ok=False)
        if reply is None:
            reply = Reply("That message is already a key event.")
        return self._answer(reply_to, reply, update=bool(body.get("update")))

    def _answer(self, reply_to: str | None, reply: Reply, *, update: bool) -> Answer:
        async def send() -> None:
            if reply_to:
                await self.answer_later(reply_to, reply, update=update)

        return send

    async def answer_later(self, reply_to: str, outcome: Reply, *, update: bool) -> None:
        """Complete a stored interaction's answer through its webhook (no live Interaction is
        needed, so this works after a restart too, within the token's 15 minutes)."""
        app_id, token = reply_to.split(":", 1)
        # How Interaction.followup builds its webhook: the client's state, so embeds and
        # (stopped) button views are sent as for any interaction answer.
        hook = discord.Webhook.from_state(
            {"id": int(app_id), "type": 3, "token": token}, state=self.client._connection)
        kwargs = reply_kwargs(outcome.text, outcome.message)
        if update and outcome.ok:
            await hook.edit_message(
                "@original", **{"content": None, "embed": None, "view": None, **kwargs})
        elif update:  # an error is told apart; the message clicked on stays as it was
            await hook.send(ephemeral=True, **{k: v for k, v in kwargs.items() if v is not None})
        else:
            await hook.edit_message("@original", **{"content": None, **kwargs})


def _actor_json(actor: Actor) -> dict[str, str]:
    return dataclasses.asdict(actor)


def _actor_from(data: dict[str, Any]) -> Actor:
    return Actor(**data)


def _where_json(where: ChannelRef) -> dict[str, Any]:
    return dataclasses.asdict(where)


def _where_from(data: dict[str, Any]) -> ChannelRef:
    return ChannelRef(**data)


async def _nothing_to_say(work: Awaitable[object]) -> None:
    """Apply a gateway event's change; a gateway event gets no answer."""
    await work


def _text(message: discord.Message) -> str:
    """What a message says: its content, then its attachments' URLs."""
    parts = [message.content.strip()] if message.content.strip() else []
    parts += [a.url for a in message.attachments]
    if not parts:
        parts += [e.description for e in message.embeds if e.description]
    return "\n".join(parts)


__all__ = ["PLATFORM", "DiscordEdge", "Screen", "intents"]
