"""SlackChat: the ChatPort on Slack's Web API (slack_sdk AsyncWebClient)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.blocks import message_blocks
from bot.ports import ChannelNameTaken, CreatedChannel, RetryLater
from bot.render import Message

logger = logging.getLogger(__name__)

_USER_ID = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
# Errors that mean "already done": a retried step must not fail forever on them.
_ALREADY = {"already_pinned", "already_in_channel", "cant_invite_self", "not_in_channel"}
TOPIC_LIMIT = 250


def user_id(mention: str) -> str | None:
    """The Slack user id in a mention like <@U123>, or None for other platforms' people."""
    m = _USER_ID.match(mention.strip())
    return m.group(1) if m else None


def _error(exc: SlackApiError) -> str:
    return str(exc.response.get("error", "")) if exc.response is not None else ""


def _raise_retryable(exc: SlackApiError) -> None:
    status = exc.response.status_code if exc.response is not None else 0
    if status == 429:
        retry_after = float(exc.response.headers.get("Retry-After", "1") or 1)
        raise RetryLater(
            f"Slack rate limit ({_error(exc) or 'ratelimited'})", retry_after
        ) from None
    raise exc


class SlackChat:
    platform = "slack"

    def __init__(self, client: AsyncWebClient) -> None:
        self.client = client

    async def create_channel(self, *, name: str, private: bool, workspace: str) -> CreatedChannel:
        try:
            response = await self.client.conversations_create(name=name[:80], is_private=private)
        except SlackApiError as exc:
            if _error(exc) == "name_taken":
                raise ChannelNameTaken(name) from None
            _raise_retryable(exc)
            raise
        channel = response["channel"]
        return CreatedChannel(id=channel["id"], name=channel["name"])

    async def invite(self, *, channel_id: str, users: Sequence[str]) -> None:
        ids = [uid for uid in (user_id(u) for u in users) if uid]
        if not ids:
            return
        try:
            await self.client.conversations_invite(channel=channel_id, users=",".join(ids))
        except SlackApiError as exc:
            if _error(exc) in _ALREADY:
                return
            _raise_retryable(exc)

    async def post(self, *, channel_id: str, message: Message, thread_id: str | None = None) -> str:
        try:
            response = await self.client.chat_postMessage(
                channel=channel_id,
                text=message.text,
                blocks=message_blocks(message) or None,
                thread_ts=thread_id,
                unfurl_links=False,
            )
        except SlackApiError as exc:
            _raise_retryable(exc)
            raise
        return str(response["ts"])

    async def update(self, *, channel_id: str, message_id: str, message: Message) -> None:
        try:
            await self.client.chat_update(
                channel=channel_id,
                ts=message_id,
                text=message.text,
                blocks=message_blocks(message) or [],
            )
        except SlackApiError as exc:
            _raise_retryable(exc)

    async def pin(self, *, channel_id: str, message_id: str) -> None:
        try:
            await self.client.pins_add(channel=channel_id, timestamp=message_id)
        except SlackApiError as exc:
            if _error(exc) in _ALREADY:
                return
            _raise_retryable(exc)

    async def set_topic(self, *, channel_id: str, topic: str) -> None:
        try:
            await self.client.conversations_setTopic(channel=channel_id, topic=topic[:TOPIC_LIMIT])
        except SlackApiError as exc:
            _raise_retryable(exc)

    async def start_thread(self, *, channel_id: str, message_id: str, name: str) -> str:
        return message_id  # a Slack thread is addressed by its parent message's ts

    async def rename(self, *, channel_id: str, name: str) -> None:
        try:
            await self.client.conversations_rename(channel=channel_id, name=name[:80])
        except SlackApiError as exc:
            _raise_retryable(exc)

    async def archive(self, *, channel_id: str) -> None:
        try:
            await self.client.conversations_archive(channel=channel_id)
        except SlackApiError as exc:
            if _error(exc) == "already_archived":
                return
            _raise_retryable(exc)

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
            _raise_retryable(exc)

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
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
                _raise_retryable(exc)
                raise
            for channel in page.get("channels", []):
                if channel.get("name") == name.lstrip("#"):
                    return str(channel["id"])
            cursor = (page.get("response_metadata") or {}).get("next_cursor")
            if not cursor:
                return None
