"""A recording ChatPort: keeps channels, messages, pins and topics in memory, per channel.

It fails on demand (`fail_next(n)`) the way a chat API does: the call raises and nothing of it
is kept, so the mirror's retries can be checked against what finally arrived.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.ports import ChannelNameTaken, CreatedChannel, DeliveryRejected, RetryLater
from bot.render import Message


class FakeChatDown(Exception):
    """The fake's stand-in for a chat API 5xx."""


@dataclass
class Posted:
    id: str
    text: str
    message: Message
    thread_id: str | None = None
    edits: int = 0
    key: str | None = None  # what the poster named it (Slack metadata, Discord nonce)
    file: tuple[str, bytes] | None = None  # (filename, content) of a shared file


@dataclass
class Channel:
    id: str
    name: str
    private: bool
    members: list[str] = field(default_factory=list)
    messages: list[Posted] = field(default_factory=list)
    pins: list[str] = field(default_factory=list)
    topic: str = ""
    archived: bool = False
    threads: dict[str, str] = field(default_factory=dict)  # thread id -> parent message id

    def thread(self, thread_id: str | None) -> list[Posted]:
        return [m for m in self.messages if m.thread_id == thread_id]


class RecordingChat:
    def __init__(self, platform: str = "console", channels: Sequence[str] = ("general",)) -> None:
        self.platform = platform
        self.channels: dict[str, Channel] = {}
        self.calls: list[str] = []
        self.dms: list[tuple[str, Message]] = []
        self._failures = 0
        self._rate_limits = 0
        self.down: set[str] = set()  # channel ids whose posts fail (an outage of one channel)
        self.refusing: set[str] = set()  # channel ids that refuse posts for good
        self.refuse_invites = False  # e.g. Slack's cant_invite for a guest account
        self._lose_answers = 0
        self.created: set[str] = set()  # ids of the channels the bot created
        self._ids = 0
        for name in channels:
            self._new_channel(name, private=False)

    # --- failure injection --------------------------------------------------------------

    def fail_next(self, n: int) -> None:
        """The next `n` calls raise FakeChatDown and change nothing."""
        self._failures = n

    def lose_answer_next(self, n: int) -> None:
        """The next `n` posts are kept but their answer is lost (a timeout after the platform
        accepted): the caller sees a failure although the message is there."""
        self._lose_answers = n

    def rate_limit_next(self, n: int) -> None:
        self._rate_limits = n

    def _call(self, name: str) -> None:
        self.calls.append(name)
        if self._rate_limits > 0:
            self._rate_limits -= 1
            raise RetryLater("rate limited", retry_after=0.01)
        if self._failures > 0:
            self._failures -= 1
            raise FakeChatDown(f"{name}: 503 service unavailable")

    def _next_id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}{self._ids}"

    def _new_channel(self, name: str, private: bool) -> Channel:
        channel = Channel(id=self._next_id("C"), name=name, private=private)
        self.channels[channel.id] = channel
        return channel

    # --- lookups for tests ----------------------------------------------------------------

    def by_name(self, name: str) -> Channel:
        return next(c for c in self.channels.values() if c.name == name)

    def texts(self, name: str, thread: bool = False) -> list[str]:
        channel = self.by_name(name)
        if thread:
            threads = list(channel.threads)
            return [m.text for m in channel.messages if m.thread_id in threads]
        return [m.text for m in channel.messages if m.thread_id is None]

    # --- ChatPort -------------------------------------------------------------------------

    async def create_channel(self, *, name: str, private: bool, workspace: str) -> CreatedChannel:
        self._call("create_channel")
        if any(c.name == name for c in self.channels.values()):
            raise ChannelNameTaken(name)
        channel = self._new_channel(name, private)
        self.created.add(channel.id)
        return CreatedChannel(id=channel.id, name=channel.name)

    async def invite(self, *, channel_id: str, users: Sequence[str]) -> None:
        self._call("invite")
        if self.refuse_invites:
            raise DeliveryRejected("cant_invite")
        members = self.channels[channel_id].members
        members.extend(u for u in users if u not in members)

    async def post(
        self,
        *,
        channel_id: str,
        message: Message,
        thread_id: str | None = None,
        key: str | None = None,
        recheck: bool = False,
    ) -> str:
        self._call("post")
        if channel_id in self.refusing:
            raise DeliveryRejected("not_in_channel")
        if self.channels[channel_id].archived:
            raise DeliveryRejected("is_archived")  # as Slack answers
        if channel_id in self.down:
            raise FakeChatDown(f"post to {channel_id}: 503 service unavailable")
        if recheck and key is not None:
            self.calls.append("recheck")
            found = next((m for m in self.channels[channel_id].messages if m.key == key), None)
            if found is not None:
                return found.id
        posted = Posted(id=self._next_id("M"), text=message.text, message=message,
                        thread_id=thread_id, key=key)
        self.channels[channel_id].messages.append(posted)
        if self._lose_answers > 0:
            self._lose_answers -= 1
            raise FakeChatDown(f"post to {channel_id}: timed out")
        return posted.id

    async def update(self, *, channel_id: str, message_id: str, message: Message) -> None:
        self._call("update")
        if self.channels[channel_id].archived:
            raise DeliveryRejected("is_archived")
        posted = next(m for m in self.channels[channel_id].messages if m.id == message_id)
        posted.text, posted.message, posted.edits = message.text, message, posted.edits + 1

    async def pin(self, *, channel_id: str, message_id: str) -> None:
        self._call("pin")
        pins = self.channels[channel_id].pins
        if message_id not in pins:
            pins.append(message_id)

    async def set_topic(self, *, channel_id: str, topic: str) -> None:
        self._call("set_topic")
        self.channels[channel_id].topic = topic

    async def start_thread(self, *, channel_id: str, message_id: str, name: str) -> str:
        self._call("start_thread")
        thread_id = f"T{message_id}"
        self.channels[channel_id].threads[thread_id] = message_id
        return thread_id

    async def rename(self, *, channel_id: str, name: str) -> None:
        self._call("rename")
        self.channels[channel_id].name = name

    async def archive(self, *, channel_id: str) -> None:
        self._call("archive")
        self.channels[channel_id].archived = True

    async def send_dm(self, *, user: str, message: Message) -> None:
        self._call("send_dm")
        self.dms.append((user, message))

    async def upload_file(
        self, *, channel_id: str, filename: str, content: bytes, title: str, comment: str
    ) -> str:
        self._call("upload_file")
        if self.channels[channel_id].archived:
            raise DeliveryRejected("is_archived")
        posted = Posted(id=self._next_id("F"), text=comment, message=Message(text=comment),
                        file=(filename, content))
        self.channels[channel_id].messages.append(posted)
        return posted.id

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
        self._call("find_channel")
        return next((c.id for c in self.channels.values() if c.name == name), None)

    async def find_own_channel(self, *, name: str, workspace: str) -> str | None:
        self._call("find_own_channel")
        return next((c.id for c in self.channels.values()
                     if c.name == name and c.id in self.created and not c.archived), None)
