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
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

from bot import commands as c
from bot.catalog import CustomField, FieldKind
from bot.mirror import Mirror
from bot.ports import (
    Actor,
    ChannelNameTaken,
    ChannelRef,
    Clock,
    CreatedChannel,
    Store,
    Suggestion,
    SystemClock,
)
from bot.render import Message, emoji_name
from bot.service import IncidentService, Reply, ServiceError, coerce_field

logger = logging.getLogger(__name__)

PLATFORM = "console"
BOT_NAME = "opsroom"

CONSOLE_HELP = """Console commands:
  /incident ...            run an incident command (/incident help lists them)
  /oncall ...              who is on call, schedules, overrides (/oncall help lists them)
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

    def __init__(
        self,
        user: str,
        out: Callable[[str], None],
        clock: Clock | None = None,
        files_dir: Path | None = None,
    ) -> None:
        self.files_dir = files_dir  # where shared files are written (default: the data dir)
        self.user = user
        self.out = out
        self.clock: Clock = clock or SystemClock()
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
        m = ConsoleMessage(number, channel, author, text, self.clock.now(), thread)
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

    async def upload_file(
        self, *, channel_id: str, filename: str, content: bytes, title: str, comment: str
    ) -> str:
        """A terminal cannot show a file: it is written to disk and the channel says where."""
        if self.files_dir is None:
            from adapters.settings import user_data_dir

            self.files_dir = user_data_dir() / "files"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        path = self.files_dir / filename
        path.write_bytes(content)
        text = f"{comment}\nFile written to {path}"
        self._channel(channel_id)
        return self.message_id(self.add_message(channel_id, BOT_NAME, text))

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
        return name if name in self.channels else None

    async def find_own_channel(self, *, name: str, workspace: str) -> str | None:
        return None  # console channels live as long as this process: none left over to adopt

# --- reading lines -------------------------------------------------------------------------


class Interrupted(Exception):
    """Ctrl-C, SIGINT or SIGTERM: stop reading, finish what is in flight, leave."""


class LineReader(Protocol):
    async def read(self, prompt: str) -> str | None:
        """The next line without its newline; None at end of input (Ctrl-D). Raises
        Interrupted on Ctrl-C."""
        ...


class PipeReader:
    """Lines from a pipe, a file or any text stream (scripted sessions, tests).

    A daemon thread does the blocking reads, so a signal never waits for the next line, and
    `readline()` on a pipe has no length limit (a terminal's cooked mode cuts lines at 4 KB;
    terminals get PromptReader instead)."""

    def __init__(self, stream: TextIO, *, prompts: TextIO | None = None) -> None:
        self.stream = stream
        self.prompts = prompts  # where prompts are written; None for a pipe (nobody reads them)
        self._queue: asyncio.Queue[str | None] | None = None
        self._ended = False

    def _start(self) -> asyncio.Queue[str | None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def pump() -> None:
            while True:
                try:
                    line = self.stream.readline()
                except (OSError, ValueError):  # closed under us
                    line = ""
                try:
                    loop.call_soon_threadsafe(queue.put_nowait, line if line else None)
                except RuntimeError:  # the loop is gone: the session ended
                    return
                if not line:
                    return

        threading.Thread(target=pump, name="console-stdin", daemon=True).start()
        return queue

    async def read(self, prompt: str) -> str | None:
        if self._ended:
            return None
        if self._queue is None:
            self._queue = self._start()
        if self.prompts is not None and prompt:
            self.prompts.write(prompt)
            self.prompts.flush()
        line = await self._queue.get()
        if line is None:
            self._ended = True
            return None
        return line.removesuffix("\n").removesuffix("\r")


class PromptReader:
    """A terminal through prompt_toolkit: line editing, history (kept in `history`) and
    completion of console commands, /incident subcommands and open incident numbers."""

    def __init__(
        self, *, history: Path | None, completer: Any, prompts: TextIO | None = None
    ) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.history import FileHistory, History, InMemoryHistory
        from prompt_toolkit.output import create_output

        kept: History = InMemoryHistory()
        if history is not None:
            try:
                history.parent.mkdir(parents=True, exist_ok=True)
                history.touch(exist_ok=True)
                kept = FileHistory(str(history))
            except OSError as exc:  # a read-only home: history for this session only
                logger.warning("console history not kept: %s: %s", history, exc.strerror)
        # `prompts`: the terminal to draw on when stdout is not one (`opsroom shell | tee`).
        output = create_output(stdout=prompts) if prompts is not None else None
        self.session: Any = PromptSession(
            history=kept, completer=completer, complete_while_typing=False, output=output
        )

    async def read(self, prompt: str) -> str | None:
        try:
            line: str = await self.session.prompt_async(prompt)
        except EOFError:
            return None
        except KeyboardInterrupt:
            raise Interrupted from None
        return line


_CONSOLE_VERBS = ("/incident", "/join", "/channels", "/react", "/unreact", "/history", "/help",
                  "/quit", "/oncall")


def subcommand_words(usage: dict[str, str] | None = None) -> dict[str, list[str]]:
    """Each /incident subcommand and the words that may follow it (`action` -> add, list...),
    read from the grammar's usage lines so completion follows the grammar."""
    usage = usage if usage is not None else c.USAGE
    words: dict[str, list[str]] = {}
    for name, line in usage.items():
        found = re.findall(rf"(?:^|\|)\s*(?:/incident )?{re.escape(name)} ([a-z]+)\b", line)
        words[name] = list(dict.fromkeys(found))
    if "help" in words:
        words["help"] = [n for n in usage if n != "help"]
    return words


class ConsoleCompleter:
    """prompt_toolkit completion for the console: what can come next on the line."""

    def __init__(
        self, *, incidents: Callable[[], Iterable[int]], channels: Callable[[], Iterable[str]]
    ) -> None:
        self.incidents = incidents
        self.channels = channels
        self.subcommands = subcommand_words()

    def candidates(self, before: str) -> tuple[str, list[str]]:
        """The word being typed and what it may become, for the text before the cursor."""
        parts = before.split(" ")
        word, done = parts[-1], [p for p in parts[:-1] if p]
        if not done:
            return word, [v for v in _CONSOLE_VERBS if v.startswith(word)]
        if done[0] == "/join" and len(done) == 1:
            return word, [f"#{n}" for n in self.channels() if f"#{n}".startswith(word)]
        if done[0] != "/incident":
            return word, []
        rest = done[1:]
        if rest and rest[0].startswith("#"):
            rest = rest[1:]  # "/incident #42 ..." names the incident, then the command
        elif not rest and word.startswith("#"):
            return word, [f"#{n}" for n in self.incidents() if f"#{n}".startswith(word)]
        if not rest:
            names = list(self.subcommands)
            if not done[1:]:
                names += [f"#{n}" for n in self.incidents()]
            return word, [n for n in names if n.startswith(word)]
        if len(rest) == 1:
            return word, [w for w in self.subcommands.get(rest[0], []) if w.startswith(word)]
        return word, []

    def get_completions(self, document: Any, complete_event: Any) -> Iterable[Any]:
        from prompt_toolkit.completion import Completion

        word, options = self.candidates(document.text_before_cursor)
        for option in options:
            yield Completion(option, start_position=-len(word))


def prompt_completer(completer: ConsoleCompleter) -> Any:
    from prompt_toolkit.completion import Completer

    class _Adapter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterable[Any]:
            return completer.get_completions(document, complete_event)

    return _Adapter()


_KEEP, _CLEAR, _ENDED = object(), object(), object()


def _one_of(values: Sequence[str]) -> str:
    values = list(values)
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def _check_title(value: str) -> str:
    if not value.strip():
        raise ServiceError("the title must not be empty")
    return value.strip()


def _check_name(what: str, value: str, names: Sequence[str]) -> str:
    if value.lower() not in names:
        raise ServiceError(f'unknown {what} "{value}": use {_one_of(names)}')
    return value.lower()


def _shown(value: Any) -> str:
    if value is None:
        return ""
    return ", ".join(str(v) for v in value) if isinstance(value, list) else str(value)


def _field_hint(f: CustomField) -> str:
    kind = {
        FieldKind.SELECT: f"one of {_one_of(f.choices)}" if f.choices else "",
        FieldKind.MULTI_SELECT: f"any of {', '.join(f.choices)}, comma-separated",
        FieldKind.NUMBER: "a number",
        FieldKind.USER: "a person, @name",
        FieldKind.TEXT: "text",
    }[f.kind]
    return kind + ("; required before resolve" if f.required else "")


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
        reader: LineReader,
        interactive: bool,
    ) -> None:
        self.service = service
        self.mirror = mirror
        self.store = store
        self.chat = chat
        self.reader = reader
        self.interactive = interactive
        self.current = "general"
        self.open_incidents: list[int] = []  # for completion; refreshed before each prompt
        self._stop = asyncio.Event()
        self.actor = Actor(
            platform=PLATFORM, user_id=chat.user, name=chat.user, mention=chat.mention
        )

    def stop(self) -> None:
        """Ask the session to leave (SIGINT, SIGTERM): the line being handled finishes, a
        pending prompt is abandoned, then the mirror delivers what is queued."""
        self._stop.set()

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
        """The next line (None at end of input); raises Interrupted once the session is asked
        to stop, even while waiting for someone to type."""
        if self._stop.is_set():
            raise Interrupted
        reading = asyncio.ensure_future(self.reader.read(prompt))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({reading, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not reading.done():
            reading.cancel()
            await asyncio.gather(reading, return_exceptions=True)
            raise Interrupted
        line = reading.result()
        # NUL bytes go at the edge: PostgreSQL refuses them in text.
        return None if line is None else line.replace("\x00", "")

    async def run(self) -> None:
        await self.restore()
        self.chat.out(
            f"Opsroom console chat: you are @{self.chat.user} in #general. "
            "Type /help for console commands, /incident help for incident commands."
        )
        while not self._stop.is_set():
            if isinstance(self.reader, PromptReader):
                await self.refresh_completion()
            try:
                line = await self.readline(f"#{self.current}> ")
            except Interrupted:
                break
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
            except Interrupted:
                break
            except Exception:  # one bad line must not end the session
                logger.exception("console: %r failed", line)
                self.reply("That failed on our side (see the log); nothing else was lost.")
        await self.settle()

    async def refresh_completion(self) -> None:
        try:
            async with self.store.unit() as u:
                incidents = await u.incidents(include_closed=False)
            self.open_incidents = sorted(i.number for i in incidents)
        except Exception:  # completion is a convenience; the next command will say what failed
            logger.debug("console: cannot list open incidents for completion", exc_info=True)

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
        elif line == "/oncall" or line.startswith("/oncall "):
            text = line[len("/oncall") :].strip()
            result = await self.service.handle_oncall_text(
                text, actor=self.actor, where=self.where()
            )
            self.reply(result.text)
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
            try:
                raw = await self.readline("Create it? [Y]es / [e]dit / [n]o: ")
            except Interrupted:
                self.reply("Not declared.")
                raise
            if raw is None:
                self.reply("Cancelled (end of input): not declared.")
                return
            answer = raw.strip().lower()
            if answer in ("n", "no"):
                self.reply("Not declared.")
                return
            if answer in ("e", "edit"):
                await self.edit(suggestion)
                self.reply("Now:\n" + describe(suggestion))
                continue
            if answer not in ("", "y", "yes"):
                self.reply(
                    f'"{raw.strip()}" is not an answer here: y, yes or Enter creates it, '
                    "e edits the fields, n (or Ctrl-D) cancels."
                )
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
        """Ask for each field in turn (Enter keeps it), refusing a bad value as it is typed."""
        catalog = self.service.catalog
        steps: list[tuple[str, str, Callable[[str], Any]]] = [
            ("title", "", _check_title),
            ("type", f"one of {_one_of(catalog.type_names)}",
             lambda v: _check_name("incident type", v, catalog.type_names)),
            ("severity", f"one of {_one_of(catalog.severity_names)}",
             lambda v: _check_name("severity", v, catalog.severity_names)),
            ("priority", f"one of {_one_of(catalog.priority_names)}",
             lambda v: _check_name("priority", v, catalog.priority_names)),
        ]
        for name, hint, check in steps:
            value = await self.ask(name, getattr(s, name), hint, check)
            if value is _ENDED:
                return
            if value is not _KEEP and value != getattr(s, name):
                setattr(s, name, value)
                s.sources[name] = "person"
                if name == "type":
                    self.drop_foreign_fields(s)
        itype = catalog.incident_type(s.type)
        for definition in itype.fields if itype else []:
            current = s.custom_fields.get(definition.name)
            value = await self.ask(
                definition.name,
                _shown(current),
                _field_hint(definition),
                lambda v, d=definition: coerce_field(d, v),
                clearable=True,
            )
            if value is _ENDED:
                return
            if value is _CLEAR:
                s.custom_fields.pop(definition.name, None)
                s.sources.pop(definition.name, None)
            elif value is not _KEEP:
                s.custom_fields[definition.name] = value
                s.sources[definition.name] = "person"

    async def ask(
        self,
        name: str,
        current: str,
        hint: str,
        check: Callable[[str], Any],
        *,
        clearable: bool = False,
    ) -> Any:
        """One field: the checked value, _KEEP (Enter), _CLEAR ("-") or _ENDED (Ctrl-D)."""
        shown_hint = f" ({hint}{'; - clears it' if clearable and current else ''})" if hint else ""
        while True:
            raw = await self.readline(f"  {name} [{current}]{shown_hint}: ")
            if raw is None:
                self.reply("Editing stopped (end of input); the fields so far are kept.")
                return _ENDED
            raw = raw.strip()
            if not raw:
                return _KEEP
            if clearable and raw == "-":
                return _CLEAR
            try:
                return check(raw)
            except ServiceError as exc:
                self.reply(f"{exc}; try again (Enter keeps {current or 'it empty'}).")

    def drop_foreign_fields(self, s: Suggestion) -> None:
        """A new type keeps only the custom fields it defines (declare refuses the others)."""
        itype = self.service.catalog.incident_type(s.type)
        known = {f.name for f in itype.fields} if itype else set()
        dropped = [name for name in s.custom_fields if name not in known]
        for name in dropped:
            del s.custom_fields[name]
            s.sources.pop(name, None)
        if dropped:
            self.reply(f"{', '.join(dropped)}: not a field of type {s.type}, so left out.")

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
