"""The console chat: a local workspace in the terminal, and a ChatPort for it.

You are one user (named from $USER). There is #general and every channel the bot creates.
Every line the bot prints is tagged with its channel; every message gets a number so you can
react to it (`/react 12 pushpin`). It reads a pipe as well as a terminal, so scripted sessions
(`opsroom shell < demo.txt`) work; only at a terminal does declare stop to ask before creating.
"""

from __future__ import annotations

import asyncio
import getpass
import logging
import os
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from bot import commands as c
from bot.mirror import Mirror
from bot.ports import Actor, ChannelNameTaken, ChannelRef, CreatedChannel, Store, Suggestion
from bot.render import Message, emoji_name
from bot.service import IncidentService, Reply, ServiceError

logger = logging.getLogger(__name__)

PLATFORM = "console"
BOT_NAME = "opsroom"

CONSOLE_HELP = """Console commands:
  /incident ...            run an incident command (/incident help lists them)
  /join #channel           switch channel        /channels   list channels
  > text                   reply in this channel's timeline thread (a timeline entry)
  /react <n> pushpin       react to message n (📌 records it as a key event); /unreact <n> pushpin
  /history                 show this channel again  /quit   leave (Ctrl-D works too)
  anything else            a plain message in this channel"""


@dataclass
class ConsoleMessage:
    number: int  # what people see and type: 1, 2, 3... in this session
    channel: str
    author: str
    text: str
    at: datetime
    thread: str | None = None
    reactions: dict[str, set[str]] = field(default_factory=dict)


@dataclass
class ConsoleChannel:
    name: str
    private: bool = False
    members: list[str] = field(default_factory=list)
    topic: str = ""
    pins: list[int] = field(default_factory=list)
    thread: str | None = None  # the timeline thread id, "t<message number>"


class ConsoleChat:
    """The console workspace, and the ChatPort the mirror posts to it through."""

    platform = PLATFORM

    def __init__(self, user: str, out: Callable[[str], None]) -> None:
        self.user = user
        self.out = out
        self.channels: dict[str, ConsoleChannel] = {"general": ConsoleChannel("general")}
        self.messages: dict[int, ConsoleMessage] = {}
        self.joined: list[str] = []  # channels the user was added to since the last look
        self.session = uuid.uuid4().hex[:8]

    def message_id(self, m: ConsoleMessage) -> str:
        """The id the record keeps: unique across sessions, unlike the number people see."""
        return f"{self.session}-{m.number}"

    def find(self, message_id: str) -> ConsoleMessage | None:
        """A message of this session by its id; None for one from an earlier session."""
        session, _, number = message_id.rpartition("-")
        if session != self.session or not number.isdigit():
            return None
        return self.messages.get(int(number))

    @property
    def mention(self) -> str:
        return f"@{self.user}"

    # --- showing ----------------------------------------------------------------------

    def show(self, m: ConsoleMessage) -> None:
        where = f"#{m.channel}" + (" › thread" if m.thread else "")
        lines = m.text.splitlines() or [""]
        self.out(f"[{where}] ({m.number}) {m.author}: {lines[0]}")
        for line in lines[1:]:
            self.out(f"    {line}")

    def add_message(
        self, channel: str, author: str, text: str, thread: str | None = None, echo: bool = True
    ) -> ConsoleMessage:
        if channel not in self.channels:
            self.channels[channel] = ConsoleChannel(channel)
        number = len(self.messages) + 1
        m = ConsoleMessage(number, channel, author, text, datetime.now(UTC), thread)
        self.messages[number] = m
        if echo:
            self.show(m)
        return m

    def _channel(self, channel_id: str) -> ConsoleChannel:
        # Channels from an earlier session live in the database, not in this workspace.
        return self.channels.setdefault(channel_id, ConsoleChannel(channel_id))

    # --- ChatPort ---------------------------------------------------------------------

    async def create_channel(self, *, name: str, private: bool, workspace: str) -> CreatedChannel:
        if name in self.channels:
            raise ChannelNameTaken(name)
        self.channels[name] = ConsoleChannel(name, private=private)
        self.out(f"[#{name}] channel created{' (private)' if private else ''}")
        return CreatedChannel(id=name, name=name)

    async def invite(self, *, channel_id: str, users: Sequence[str]) -> None:
        channel = self._channel(channel_id)
        for user in users:
            if user not in channel.members:
                channel.members.append(user)
                if user == self.mention:
                    self.joined.append(channel_id)
        shown = ", ".join(users)
        if shown:
            self.out(f"[#{channel_id}] {shown} added to the channel")

    async def post(
        self,
        *,
        channel_id: str,
        message: Message,
        thread_id: str | None = None,
        key: str | None = None,
        recheck: bool = False,
    ) -> str:
        # The console is this process's own terminal: nothing was shown by a process that died.
        self._channel(channel_id)
        return self.message_id(self.add_message(channel_id, BOT_NAME, message.text, thread_id))

    async def update(self, *, channel_id: str, message_id: str, message: Message) -> None:
        m = self.find(message_id)
        if m is None:  # posted in an earlier session, so it has no number here
            self.out(f"[#{channel_id}] pinned summary updated (/incident show shows it)")
            return
        m.text = message.text
        self.out(f"[#{channel_id}] ({m.number}) updated")

    async def pin(self, *, channel_id: str, message_id: str) -> None:
        channel = self._channel(channel_id)
        m = self.find(message_id)
        if m is not None and m.number not in channel.pins:
            channel.pins.append(m.number)
            self.out(f"[#{channel_id}] ({m.number}) pinned")

    async def set_topic(self, *, channel_id: str, topic: str) -> None:
        self._channel(channel_id).topic = topic
        self.out(f"[#{channel_id}] topic: {topic}")

    async def start_thread(self, *, channel_id: str, message_id: str, name: str) -> str:
        thread = f"t{message_id}"
        self._channel(channel_id).thread = thread
        return thread

    async def rename(self, *, channel_id: str, name: str) -> None:
        self.out(f"[#{channel_id}] renamed to #{name}")

    async def archive(self, *, channel_id: str) -> None:
        self.out(f"[#{channel_id}] archived")

    async def send_dm(self, *, user: str, message: Message) -> None:
        self.out(f"[DM to {user}] {message.text}")

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
        return name if name in self.channels else None

    async def find_own_channel(self, *, name: str, workspace: str) -> str | None:
        return None  # console channels live as long as this process: none left over to adopt


def describe(s: Suggestion) -> str:
    shown = [
        ("title", s.title),
        ("type", s.type),
        ("severity", s.severity),
        ("priority", s.priority),
    ]
    shown += [
        (k, ", ".join(v) if isinstance(v, list) else str(v)) for k, v in s.custom_fields.items()
    ]
    lines = [f"  {k}: {v}   ({s.sources.get(k, 'heuristic')})" for k, v in shown]
    if s.note:
        lines.append(f"  note: {s.note}")
    return "\n".join(lines)


class ConsoleSession:
    """Reads lines, turns them into service calls, prints what the workspace shows."""

    def __init__(
        self,
        *,
        service: IncidentService,
        mirror: Mirror,
        store: Store,
        chat: ConsoleChat,
        stdin: TextIO,
        interactive: bool,
    ) -> None:
        self.service = service
        self.mirror = mirror
        self.store = store
        self.chat = chat
        self.stdin = stdin
        self.interactive = interactive
        self.current = "general"
        self.actor = Actor(
            platform=PLATFORM, user_id=chat.user, name=chat.user, mention=chat.mention
        )

    def reply(self, text: str) -> None:
        lines = text.splitlines() or [""]
        self.chat.out(f"(only you) {lines[0]}")
        for line in lines[1:]:
            self.chat.out(f"    {line}")

    async def restore(self) -> None:
        """Bring back the incident channels an earlier session created."""
        async with self.store.unit() as u:
            links = await u.open_links(PLATFORM)
        for link in links:
            if link.channel_id:
                self.chat.channels.setdefault(
                    link.channel_id, ConsoleChannel(link.channel_id, thread=link.thread_id)
                )

    async def readline(self, prompt: str = "") -> str | None:
        if self.interactive and prompt:
            sys.stdout.write(prompt)
            sys.stdout.flush()
        line = await asyncio.to_thread(self.stdin.readline)
        return None if line == "" else line.rstrip("\n")

    async def run(self) -> None:
        await self.restore()
        self.chat.out(
            f"Opsroom console chat: you are @{self.chat.user} in #general. "
            "Type /help for console commands, /incident help for incident commands."
        )
        while True:
            line = await self.readline(f"#{self.current}> ")
            if line is None:
                break
            line = line.strip()
            if not line or line.startswith("#!"):
                continue
            if line in ("/quit", "/exit"):
                break
            if not self.interactive:
                self.chat.out(f"#{self.current}> {line}")
            try:
                await self.handle(line)
            except Exception:  # one bad line must not end the session
                logger.exception("console: %r failed", line)
                self.reply("That failed on our side (see the log); nothing else was lost.")
        await self.settle()

    async def settle(self) -> None:
        """Let the mirror show what the last line changed before the next prompt."""
        if not await self.mirror.drain(timeout=5.0):
            self.chat.out("(opsroom) some channel updates are still pending; they will be retried")
        for channel in self.chat.joined:
            if channel != self.current:
                self.current = channel
                self.chat.out(f"(you are now in #{channel}; /join #general to go back)")
        self.chat.joined.clear()

    async def handle(self, line: str) -> None:
        if line.startswith("/incident"):
            await self.incident(line[len("/incident") :].strip())
        elif line.startswith(">"):
            await self.thread_reply(line[1:].strip())
        elif line.startswith(("/react ", "/unreact ")) or line in ("/react", "/unreact"):
            await self.react(line)
        elif line.startswith("/"):
            self.console_command(line)
        else:
            self.chat.add_message(self.current, self.chat.user, line)
        await self.settle()

    def where(self) -> ChannelRef:
        return ChannelRef(platform=PLATFORM, channel_id=self.current)

    async def incident(self, text: str) -> None:
        try:
            command = c.parse(text)
        except c.UsageError as exc:
            self.reply(str(exc))
            return
        if isinstance(command, c.Declare):
            await self.declare(command)
            return
        result = await self.service.handle(command, actor=self.actor, where=self.where())
        self.reply(result.text)

    async def declare(self, command: c.Declare) -> None:
        try:
            suggestion = await self.service.suggest(
                description=command.description, type_hint=command.type
            )
        except ServiceError as exc:
            self.reply(str(exc))
            return
        self.reply("Suggested fields:\n" + describe(suggestion))
        if not self.interactive:
            self.reply("Not at a terminal, so creating it as suggested.")
            result = await self.service.declare_suggested(
                suggestion, description=command.description, actor=self.actor, where=self.where()
            )
            self.reply(result.text)
            return
        while True:
            answer = (await self.readline("Create it? [Y]es / [e]dit / [n]o: ") or "y").lower()
            if answer.startswith("n"):
                self.reply("Not declared.")
                return
            if answer.startswith("e"):
                await self.edit(suggestion)
                self.reply("Now:\n" + describe(suggestion))
                continue
            try:
                result = await self.service.declare_suggested(
                    suggestion, description=command.description, actor=self.actor,
                    where=self.where(),
                )
            except ServiceError as exc:
                self.reply(f"{exc}; edit the fields and try again.")
                continue
            self.reply(result.text)
            return

    async def edit(self, s: Suggestion) -> None:
        for name in ("title", "type", "severity", "priority"):
            value = await self.readline(f"  {name} [{getattr(s, name)}]: ")
            if value:
                setattr(s, name, value.strip())
                s.sources[name] = "person"

    async def thread_reply(self, text: str) -> None:
        if not text:
            self.reply("Write the reply after the >, e.g. > restarted the pods")
            return
        channel = self.chat.channels[self.current]
        if channel.thread is None:
            self.reply(f"#{self.current} has no timeline thread; only incident channels do.")
            return
        m = self.chat.add_message(self.current, self.chat.user, text, thread=channel.thread)
        entry = await self.service.record_thread_message(
            where=ChannelRef(PLATFORM, self.current, thread_id=channel.thread),
            actor=self.actor,
            text=text,
            message_id=self.chat.message_id(m),
            occurred_at=m.at,
        )
        if entry is None:
            self.reply("This thread is not an incident timeline; nothing was recorded.")

    async def react(self, line: str) -> None:
        verb, *args = line.split()
        if len(args) != 2 or not args[0].isdigit():
            self.reply(f"Usage: {verb} <message number> <emoji>, e.g. {verb} 12 pushpin")
            return
        m = self.chat.messages.get(int(args[0]))
        if m is None:
            self.reply(f"no message ({args[0]}) in this session")
            return
        emoji = emoji_name(args[1])
        reactors = m.reactions.setdefault(emoji, set())
        where = ChannelRef(PLATFORM, m.channel, thread_id=m.thread)
        result: Reply | None
        if verb == "/react":
            reactors.add(self.chat.user)
            self.chat.out(f"[#{m.channel}] ({m.number}) :{emoji}: by @{self.chat.user}")
            result = await self.service.reaction_added(
                where=where,
                actor=self.actor,
                emoji=emoji,
                message_id=self.chat.message_id(m),
                text=m.text,
                author=m.author,
                occurred_at=m.at,
            )
        else:
            reactors.discard(self.chat.user)
            self.chat.out(f"[#{m.channel}] ({m.number}) :{emoji}: removed by @{self.chat.user}")
            result = await self.service.reaction_removed(
                where=where, actor=self.actor, emoji=emoji, message_id=self.chat.message_id(m)
            )
        if result is not None:
            self.reply(result.text)

    def console_command(self, line: str) -> None:
        verb, _, arg = line.partition(" ")
        if verb == "/join":
            name = arg.strip().lstrip("#")
            if name not in self.chat.channels:
                names = ", ".join(f"#{n}" for n in self.chat.channels)
                self.reply(f'no channel "#{name}": channels are {names}')
                return
            self.current = name
            self.reply(
                f"You are in #{name}."
                + (
                    f" Topic: {self.chat.channels[name].topic}"
                    if self.chat.channels[name].topic
                    else ""
                )
            )
        elif verb == "/channels":
            self.reply("Channels: " + ", ".join(f"#{n}" for n in self.chat.channels))
        elif verb == "/history":
            for m in self.chat.messages.values():
                if m.channel == self.current:
                    self.chat.show(m)
        elif verb == "/help":
            self.reply(CONSOLE_HELP)
        else:
            self.reply(f'unknown console command "{verb}". {CONSOLE_HELP}')


def console_user() -> str:
    name = os.environ.get("USER") or os.environ.get("USERNAME")
    if not name:
        try:
            name = getpass.getuser()
        except Exception:
            name = "you"
    return "".join(ch for ch in name if ch.isalnum() or ch in "._-") or "you"
