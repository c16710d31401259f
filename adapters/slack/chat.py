"""SlackChat: the ChatPort on Slack's Web API (slack_sdk AsyncWebClient)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, NoReturn

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import message_blocks
from bot.ports import ChannelNameTaken, CreatedChannel, DeliveryRejected, RetryLater
from bot.render import Message

logger = logging.getLogger(__name__)

_USER_ID = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
# Errors that mean "already done": a retried step must not fail forever on them.
_ALREADY = {"already_pinned", "already_in_channel", "cant_invite_self"}
# Errors no retry can cure (Slack answers them with HTTP 200 and ok: false): the mirror records
# the delivery as failed instead of retrying it for ever.
_PERMANENT = {
    "not_in_channel",
    "channel_not_found",
    "is_archived",
    "msg_too_long",
    "no_text",
    "too_long",
    "invalid_blocks",
    "invalid_blocks_format",
    "invalid_arguments",
    "cant_update_message",
    "edit_window_closed",
    "message_not_found",
    "restricted_action",
    "restricted_action_read_only_channel",
    "restricted_action_thread_only_channel",
    "restricted_action_non_threadable_channel",
    "cant_archive_general",
    "method_not_supported_for_channel_type",
    "name_taken",
    "invalid_name",
    "invalid_name_required",
    "invalid_name_maxlength",
    "invalid_name_specials",
    "invalid_name_punctuation",
    "user_not_found",
    "user_disabled",
    "cannot_dm_bot",
    "messages_tab_disabled",
}
# Errors about one person in conversations.invite: that person is skipped, the others invited.
_PERSON = {
    "cant_invite",
    "cant_invite_self",
    "user_not_found",
    "user_is_restricted",
    "user_is_ultra_restricted",
    "user_is_bot",
    "user_disabled",
    "not_in_channel",
    "ura_max_channels",
    "user_team_not_in_channel",
    "already_in_channel",
}
TOPIC_LIMIT = 250
# Message metadata naming the delivery a post carries out, so a re-send can find it first.
METADATA_EVENT = "opsroom_delivery"
RECHECK_DEPTH = 100  # recent messages searched for a post that may have gone out already


def user_id(mention: str) -> str | None:
    """The Slack user id in a mention like <@U123>, or None for other platforms' people."""
    m = _USER_ID.match(mention.strip())
    return m.group(1) if m else None


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def _reraise(exc: SlackApiError) -> NoReturn:
    """Re-raise a Web API error as the mirror understands it.

    429: RetryLater (wait as long as Slack says). An error no retry can cure: DeliveryRejected.
    Anything else (5xx, network trouble, errors that may pass) as it is: the mirror retries it.
    """
    status = exc.response.status_code if exc.response is not None else 0
    if status == 429:
        retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
        raise RetryLater(
            f"Slack rate limit ({_error(exc) or 'ratelimited'})", retry_after
        ) from None
    error = _error(exc)
    if status < 500 and error in _PERMANENT:
        raise DeliveryRejected(f"slack: {error}") from None
    raise exc


class SlackChat:
    platform = "slack"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client
        self._bot_user: str | None = None

    async def create_channel(self, *, name: str, private: bool, workspace: str) -> CreatedChannel:
        try:
            response = await self.client.conversations_create(name=name[:80], is_private=private)
        except SlackApiError as exc:
            if _error(exc) == "name_taken":
                raise ChannelNameTaken(name) from None
            _reraise(exc)
        channel = response["channel"]
        return CreatedChannel(id=channel["id"], name=channel["name"])

    async def invite(self, *, channel_id: str, users: Sequence[str]) -> None:
        ids = list(dict.fromkeys(uid for uid in (user_id(u) for u in users) if uid))
        if not ids:
            return
        try:
            await self.client.conversations_invite(channel=channel_id, users=",".join(ids))
        except SlackApiError as exc:
            error = _error(exc)
            if error in _ALREADY and len(ids) == 1:
                return
            if error not in _PERSON:
                _reraise(exc)
            if len(ids) == 1:
                # One person who cannot join must not keep the channel from opening.
                logger.warning("slack: could not invite %s to %s: %s", ids[0], channel_id, error)
                return
            # Slack refuses the whole call for one bad person: invite each one on their own.
            for uid in ids:
                await self.invite(channel_id=channel_id, users=[f"<@{uid}>"])

    async def post(
        self,
        *,
        channel_id: str,
        message: Message,
        thread_id: str | None = None,
        key: str | None = None,
        recheck: bool = False,
    ) -> str:
        try:
            if recheck and key is not None:
                found = await self._find_posted(channel_id, thread_id, key)
                if found is not None:
                    logger.info("slack: %s was posted already (%s); not sending again", key, found)
                    return found
            response = await self.client.chat_postMessage(
                channel=channel_id,
                text=message.text,
                blocks=message_blocks(message) or None,
                thread_ts=thread_id,
                unfurl_links=False,
                metadata=(
                    {"event_type": METADATA_EVENT, "event_payload": {"key": key}}
                    if key is not None
                    else None
                ),
            )
        except SlackApiError as exc:
            _reraise(exc)
        return str(response["ts"])

    async def _find_posted(self, channel_id: str, thread_id: str | None, key: str) -> str | None:
        """The ts of a recent message of ours carrying `key` in its metadata, if any."""
        if thread_id is not None:
            page = await self.client.conversations_replies(
                channel=channel_id, ts=thread_id, limit=RECHECK_DEPTH, include_all_metadata=True
            )
            # Replies come oldest first; a reply just posted is at the end of a long thread.
            messages = list(page.get("messages", []))[-RECHECK_DEPTH:]
        else:
            page = await self.client.conversations_history(
                channel=channel_id, limit=RECHECK_DEPTH, include_all_metadata=True
            )
            messages = list(page.get("messages", []))
        for m in messages:
            meta = m.get("metadata") or {}
            if (
                meta.get("event_type") == METADATA_EVENT
                and (meta.get("event_payload") or {}).get("key") == key
            ):
                return str(m["ts"])
        return None

    async def update(self, *, channel_id: str, message_id: str, message: Message) -> None:
        try:
            await self.client.chat_update(
                channel=channel_id,
                ts=message_id,
                text=message.text,
                blocks=message_blocks(message) or [],
            )
        except SlackApiError as exc:
            _reraise(exc)

    async def pin(self, *, channel_id: str, message_id: str) -> None:
        try:
            await self.client.pins_add(channel=channel_id, timestamp=message_id)
        except SlackApiError as exc:
            if _error(exc) in _ALREADY:
                return
            _reraise(exc)

    async def set_topic(self, *, channel_id: str, topic: str) -> None:
        try:
            await self.client.conversations_setTopic(channel=channel_id, topic=topic[:TOPIC_LIMIT])
        except SlackApiError as exc:
            _reraise(exc)

    async def start_thread(self, *, channel_id: str, message_id: str, name: str) -> str:
        return message_id  # a Slack thread is addressed by its parent message's ts

    async def rename(self, *, channel_id: str, name: str) -> None:
        try:
            await self.client.conversations_rename(channel=channel_id, name=name[:80])
        except SlackApiError as exc:
            _reraise(exc)

    async def archive(self, *, channel_id: str) -> None:
        try:
            await self.client.conversations_archive(channel=channel_id)
        except SlackApiError as exc:
            if _error(exc) == "already_archived":
                return
            _reraise(exc)

    async def send_dm(self, *, user: str, message: Message) -> None:
        uid = user_id(user)
        if uid is None:
            return
        try:
            opened = await self.client.conversations_open(users=uid)
            await self.client.chat_postMessage(
                channel=opened["channel"]["id"],
                text=message.text,
                blocks=message_blocks(message) or None,
            )
        except SlackApiError as exc:
            _reraise(exc)

    async def upload_file(
        self, *, channel_id: str, filename: str, content: bytes, title: str, comment: str
    ) -> str:
        # files.upload is retired: the SDK runs the external flow (files.getUploadURLExternal,
        # a POST of the bytes to the URL it gives, files.completeUploadExternal with the
        # channel and the comment).
        try:
            response = await self.client.files_upload_v2(
                channel=channel_id,
                filename=filename,
                content=content,
                title=title,
                initial_comment=comment,
            )
        except SlackApiError as exc:
            _reraise(exc)
        return str(response["files"][0]["id"])

    async def find_own_channel(self, *, name: str, workspace: str) -> str | None:
        found = await self._channel_named(name)
        if found is None:
            return None
        if self._bot_user is None:
            try:
                self._bot_user = str((await self.client.auth_test())["user_id"])
            except SlackApiError as exc:
                _reraise(exc)
        return str(found["id"]) if found.get("creator") == self._bot_user else None

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
        found = await self._channel_named(name)
        return str(found["id"]) if found is not None else None

    async def _channel_named(self, name: str) -> dict[str, Any] | None:
        cursor = None
        while True:
            try:
                page = await self.client.conversations_list(
                    types="public_channel,private_channel",
                    exclude_archived=True,
                    limit=200,
                    cursor=cursor,
                )
            except SlackApiError as exc:
                _reraise(exc)
            channels: list[dict[str, Any]] = page.get("channels", [])
            for channel in channels:
                if channel.get("name") == name.lstrip("#"):
                    return channel
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
