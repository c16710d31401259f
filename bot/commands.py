"""The command grammar shared by every chat platform.

`parse(text)` turns what follows `/incident` into one frozen dataclass per command, or raises
`UsageError` whose message is the usage line of the nearest command. Names (severities,
statuses, roles...) are checked against the catalog later by the service; this module knows
only the shape of each command.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

# --- due dates ------------------------------------------------------------------------------

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
_WEEKDAY_ALIASES = {d[:3]: i for i, d in enumerate(WEEKDAYS)} | {
    d: i for i, d in enumerate(WEEKDAYS)
}
_RELATIVE_RE = re.compile(r"^in\s+(\d+)\s*(m|min|mins|minutes?|h|hrs?|hours?|d|days?|w|weeks?)$")
END_OF_DAY = time(17, 0, tzinfo=UTC)  # a date without a time means the end of the working day


@dataclass(frozen=True)
class DueSpec:
    """A due date as written; `resolve(now)` gives the moment it means."""

    text: str

    def resolve(self, now: datetime) -> datetime:
        return parse_due(self.text, now)


def parse_due(text: str, now: datetime) -> datetime:
    """Return the UTC datetime `text` means relative to `now`, or raise ValueError."""
    t = text.strip().lower()
    if t in ("today", "eod"):
        end = datetime.combine(now.date(), END_OF_DAY)
        # Late in the day "today" still means before midnight, never a time already gone.
        return end if end > now else datetime.combine(now.date(), time(23, 59, tzinfo=UTC))
    if t == "tomorrow":
        return datetime.combine(now.date() + timedelta(days=1), END_OF_DAY)
    if t in _WEEKDAY_ALIASES:
        ahead = (_WEEKDAY_ALIASES[t] - now.weekday()) % 7 or 7
        return datetime.combine(now.date() + timedelta(days=ahead), END_OF_DAY)
    m = _RELATIVE_RE.match(t)
    if m:
        n, unit = int(m.group(1)), m.group(2)[0]
        step = {
            "m": timedelta(minutes=1),
            "h": timedelta(hours=1),
            "d": timedelta(days=1),
            "w": timedelta(weeks=1),
        }[unit]
        return now + n * step
    try:
        if len(t) == 10:
            return datetime.combine(date.fromisoformat(t), END_OF_DAY)
        parsed = datetime.fromisoformat(text.strip().upper().replace(" ", "T"))
    except ValueError:
        raise ValueError(
            f'invalid date "{text}": use 2026-12-01, 2026-12-01T15:00, today, tomorrow, '
            "a weekday, or in 3h / in 2d / in 1w"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


# --- commands -------------------------------------------------------------------------------


class UsageError(ValueError):
    """A malformed command; the message is short and shows the right usage."""


@dataclass(frozen=True, kw_only=True)
class Command:
    incident: int | None = None  # "#42" right after /incident; otherwise from the channel


@dataclass(frozen=True, kw_only=True)
class Declare(Command):
    description: str
    type: str | None = None


@dataclass(frozen=True, kw_only=True)
class ListIncidents(Command):
    include_closed: bool = False


@dataclass(frozen=True, kw_only=True)
class Show(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class Help(Command):
    topic: str | None = None


@dataclass(frozen=True, kw_only=True)
class SetStatus(Command):
    status: str


@dataclass(frozen=True, kw_only=True)
class SetSeverity(Command):
    severity: str


@dataclass(frozen=True, kw_only=True)
class SetPriority(Command):
    priority: str


@dataclass(frozen=True, kw_only=True)
class AssignRole(Command):
    role: str
    user: str


@dataclass(frozen=True, kw_only=True)
class SetField(Command):
    field: str
    value: str


@dataclass(frozen=True, kw_only=True)
class SetTitle(Command):
    title: str


@dataclass(frozen=True, kw_only=True)
class SetSummary(Command):
    summary: str


@dataclass(frozen=True, kw_only=True)
class StatusUpdate(Command):
    text: str


@dataclass(frozen=True, kw_only=True)
class AddKeyEvent(Command):
    text: str


@dataclass(frozen=True, kw_only=True)
class AddNote(Command):
    text: str


@dataclass(frozen=True, kw_only=True)
class ShowTimeline(Command):
    key_only: bool = False


@dataclass(frozen=True, kw_only=True)
class Acknowledge(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class Resolve(Command):
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class Reopen(Command):
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class ActionAdd(Command):
    text: str
    assignee: str | None = None
    due: DueSpec | None = None


@dataclass(frozen=True, kw_only=True)
class ActionList(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class ActionDone(Command):
    number: int


@dataclass(frozen=True, kw_only=True)
class ActionEdit(Command):
    number: int
    text: str | None = None
    assignee: str | None = None
    due: DueSpec | None = None


@dataclass(frozen=True, kw_only=True)
class RunbookList(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class RunbookRun(Command):
    name: str


@dataclass(frozen=True, kw_only=True)
class RunbookStatus(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class Page(Command):
    target: str


@dataclass(frozen=True, kw_only=True)
class Postmortem(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class CatchUp(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class MirrorTo(Command):
    platform: str


@dataclass(frozen=True, kw_only=True)
class ShowReminders(Command):
    pass


# --- grammar --------------------------------------------------------------------------------

USAGE: dict[str, str] = {
    "declare": "/incident declare [type=<type>] <what is happening>",
    "list": "/incident list [open|all]",
    "show": "/incident show [<number>]",
    "help": "/incident help [<command>]",
    "status": "/incident status <status>",
    "severity": "/incident severity <sev>",
    "priority": "/incident priority <p>",
    "assign": "/incident assign <role> <@user>",
    "set": "/incident set <field> <value>",
    "title": "/incident title <text>",
    "summary": "/incident summary <text>",
    "update": "/incident update <text>   (status update to stakeholders)",
    "event": "/incident event <text>   (key event)",
    "note": "/incident note <text>   (timeline note)",
    "timeline": "/incident timeline [key]",
    "catchup": "/incident catchup   (summary of the timeline so far, citing its entries)",
    "ack": "/incident ack",
    "resolve": "/incident resolve [<text>]",
    "reopen": "/incident reopen [<text>]",
    "action": (
        "/incident action add <text> [@user] [due <date>] | action list | action done <n> | "
        "action edit <n> [<text>] [@user] [due <date>]"
    ),
    "runbook": "/incident runbook list | runbook run <name> | runbook status",
    "page": "/incident page <policy|@user>",
    "postmortem": "/incident postmortem",
    "mirror": "/incident mirror <slack|discord>",
    "reminders": "/incident reminders   (what Opsroom will nudge about, and when)",
}

HELP_TEXT = (
    "Commands (inside an incident channel the incident is implied; elsewhere put #<number> "
    "right after /incident):\n" + "\n".join(f"  {u}" for u in USAGE.values())
)

# A person: "@name" (console), "<@U123>" / "<@U123|name>" (Slack), "<@123>" / "<@!123>" (Discord).
# "<@&123>" is a Discord role, not a person, so it is not a mention here.
_MENTION_RE = re.compile(r"^(@[\w.\-]+|<@!?[A-Za-z0-9]+(?:\|[^>]*)?>)$")
_INCIDENT_RE = re.compile(r"^#([0-9]+)$")


def is_mention(token: str) -> bool:
    return bool(_MENTION_RE.match(token))


def _usage(name: str, problem: str | None = None) -> UsageError:
    prefix = f"{problem}. " if problem else ""
    return UsageError(f"{prefix}Usage: {USAGE[name]}")


def _need_text(name: str, rest: str) -> str:
    if not rest:
        raise _usage(name, "missing text")
    return rest


def _one_word(name: str, rest: str, what: str) -> str:
    words = rest.split()
    if len(words) != 1:
        raise _usage(name, f"expected one {what}" if words else f"missing {what}")
    return words[0].lower()


def _none(name: str, rest: str) -> None:
    if rest:
        raise _usage(name, f'unexpected "{rest}"')


MAX_NUMBER = 2**31 - 1  # incident and action numbers are 32-bit integers in the database


def _is_number(text: str) -> bool:
    """ASCII digits within the database's range ("²" is a digit to str.isdigit, not to int)."""
    return text.isascii() and text.isdigit() and len(text) <= 10 and 1 <= int(text) <= MAX_NUMBER


def _number(name: str, token: str) -> int:
    n = token.lstrip("#")
    if not _is_number(n):
        raise _usage(name, f'"{token}" is not a number')
    return int(n)


_DATE_WORDS = frozenset({"today", "tomorrow", "eod", "next", *_WEEKDAY_ALIASES})
_DATE_START = re.compile(r"^(\d{4}-|in\s+\d)")


def _looks_like_date(expr: str) -> bool:
    """Meant as a date: one word ("due never"), a date-like start ("due 2026-13-01",
    "due in 3 fortnights") or a short phrase starting with a date word ("due next week")."""
    words = expr.lower().split()
    if len(words) <= 1 or _DATE_START.match(expr.lower()):
        return True
    return len(words) <= 3 and words[0] in _DATE_WORDS


def _split_action_tail(rest: str) -> tuple[str, str | None, DueSpec | None]:
    """Split '<text> [@user] [due <date>]' into its parts."""
    text, due = rest, None
    # The text may itself say "due" ("chase the due invoices due friday"): the due date is the
    # rightmost "due <date>" that parses; if none does, the rightmost date-like one is reported,
    # and "due to the cache change" stays part of the text.
    problem: ValueError | None = None
    for m in reversed(list(re.finditer(r"(?:^|(?<=\s))due\s+(?=\S)", rest, re.IGNORECASE))):
        expr = rest[m.end() :].strip()
        try:
            parse_due(expr, datetime.now(UTC))
        except ValueError as exc:
            if _looks_like_date(expr):  # "due someday-ish" is a mistake; "due to ..." is prose
                problem = problem or exc
            continue
        due, text = DueSpec(expr), rest[: m.start()].strip()
        break
    else:
        if problem is not None:
            raise UsageError(str(problem)) from None
    assignee = None
    words = text.split()
    if words and is_mention(words[-1]):
        assignee, text = words[-1], " ".join(words[:-1])
    return text, assignee, due


def _parse_action(rest: str) -> Command:
    sub, _, tail = rest.partition(" ")
    sub, tail = sub.lower(), tail.strip()
    if sub == "add":
        text, assignee, due = _split_action_tail(tail)
        if not text:
            raise _usage("action", "missing action item text")
        return ActionAdd(text=text, assignee=assignee, due=due)
    if sub == "list":
        _none("action", tail)
        return ActionList()
    if sub in ("done", "edit"):
        number_token, _, changes = tail.partition(" ")
        if not number_token:
            raise _usage("action", "missing action item number")
        number = _number("action", number_token)
        if sub == "done":
            _none("action", changes.strip())
            return ActionDone(number=number)
        text, assignee, due = _split_action_tail(changes.strip())
        if not (text or assignee or due):
            raise _usage("action", "nothing to change")
        return ActionEdit(number=number, text=text or None, assignee=assignee, due=due)
    raise _usage("action", f'unknown action command "{sub}"' if sub else "missing action command")


def _parse_runbook(rest: str) -> Command:
    sub, _, tail = rest.partition(" ")
    sub, tail = sub.lower(), tail.strip()
    if sub == "list":
        _none("runbook", tail)
        return RunbookList()
    if sub == "status":
        _none("runbook", tail)
        return RunbookStatus()
    if sub == "run":
        return RunbookRun(name=_one_word("runbook", tail, "runbook name"))
    raise _usage(
        "runbook", f'unknown runbook command "{sub}"' if sub else "missing runbook command"
    )


def _parse_declare(rest: str) -> Command:
    type_ = None
    m = re.match(r"^type=(\S*)\s*", rest, flags=re.IGNORECASE)
    if m:
        if not m.group(1):
            raise _usage("declare", "missing type after type=")
        type_, rest = m.group(1).lower(), rest[m.end() :]
    return Declare(description=_need_text("declare", rest.strip()), type=type_)


def _parse_list(rest: str) -> Command:
    scope = rest.lower()
    if scope not in ("", "open", "all"):
        raise _usage("list", f'unknown scope "{rest}"')
    return ListIncidents(include_closed=scope == "all")


def _parse_show(rest: str) -> Command:
    if not rest:
        return Show()
    return Show(incident=_number("show", _one_word("show", rest, "incident number")))


def _parse_assign(rest: str) -> Command:
    words = rest.split()
    if len(words) != 2:
        raise _usage("assign", "expected a role and a person")
    if not is_mention(words[1]):
        raise _usage("assign", f'"{words[1]}" is not a person (write @name)')
    return AssignRole(role=words[0].lower(), user=words[1])


def _parse_set(rest: str) -> Command:
    field, _, value = rest.partition(" ")
    if not field or not value.strip():
        raise _usage("set", "expected a field and a value")
    return SetField(field=field.lower(), value=value.strip())


def _parse_timeline(rest: str) -> Command:
    if rest.lower() not in ("", "key"):
        raise _usage("timeline", f'unknown option "{rest}"')
    return ShowTimeline(key_only=rest.lower() == "key")


def _parse_help(rest: str) -> Command:
    topic = _ALIASES.get(rest.lower(), rest.lower()) or None
    if topic and topic not in USAGE:
        raise UsageError(f'no command "{rest}".{_nearest(topic)}')
    return Help(topic=topic)


def _nearest(name: str) -> str:
    close = difflib.get_close_matches(name, list(USAGE), n=1, cutoff=0.6)
    return f" Did you mean: {USAGE[close[0]]}" if close else " Try /incident help."


def _bare(name: str, rest: str, command: type[Command]) -> Command:
    """A command that takes no words after its name."""
    _none(name, rest)
    return command()


_PARSERS: dict[str, Callable[[str], Command]] = {
    "declare": _parse_declare,
    "list": _parse_list,
    "show": _parse_show,
    "help": _parse_help,
    "status": lambda r: SetStatus(status=_one_word("status", r, "status")),
    "severity": lambda r: SetSeverity(severity=_one_word("severity", r, "severity")),
    "priority": lambda r: SetPriority(priority=_one_word("priority", r, "priority")),
    "assign": _parse_assign,
    "set": _parse_set,
    "title": lambda r: SetTitle(title=_need_text("title", r)),
    "summary": lambda r: SetSummary(summary=_need_text("summary", r)),
    "update": lambda r: StatusUpdate(text=_need_text("update", r)),
    "event": lambda r: AddKeyEvent(text=_need_text("event", r)),
    "note": lambda r: AddNote(text=_need_text("note", r)),
    "timeline": _parse_timeline,
    "catchup": lambda r: _bare("catchup", r, CatchUp),
    "ack": lambda r: _bare("ack", r, Acknowledge),
    "resolve": lambda r: Resolve(text=r),
    "reopen": lambda r: Reopen(text=r),
    "action": _parse_action,
    "runbook": _parse_runbook,
    "page": lambda r: Page(target=_need_text("page", r)),
    "postmortem": lambda r: _bare("postmortem", r, Postmortem),
    "mirror": lambda r: MirrorTo(platform=_one_word("mirror", r, "platform")),
    "reminders": lambda r: _bare("reminders", r, ShowReminders),
}
_ALIASES = {
    "sev": "severity",
    "acknowledge": "ack",
    "notes": "note",
    "actions": "action",
    "ls": "list",
    "events": "event",
    "declared": "declare",
    "new": "declare",
    "catch-up": "catchup",
}


def parse(text: str) -> Command:
    """Return the command `text` (what follows `/incident`) asks for, or raise UsageError."""
    text = text.strip()
    if text.lower().startswith("/incident"):
        text = text[len("/incident") :].strip()
    incident = None
    first, _, rest = text.partition(" ")
    m = _INCIDENT_RE.match(first)
    if m:
        if not _is_number(m.group(1)):
            raise UsageError(f'"{first}" is not an incident number')
        incident = int(m.group(1))
        first, _, rest = rest.strip().partition(" ")
    if not first:
        if incident is not None:
            return Show(incident=incident)
        raise UsageError(HELP_TEXT)
    name = _ALIASES.get(first.lower(), first.lower())
    parser = _PARSERS.get(name)
    if parser is None:
        raise UsageError(f'unknown command "{first}".{_nearest(name)}')
    command: Command = parser(rest.strip())
    if incident is not None:
        if command.incident is not None and command.incident != incident:
            raise _usage(name, "two incident numbers given")
        command = _with_incident(command, incident)
    return command


def _with_incident(command: Command, incident: int) -> Command:
    from dataclasses import replace

    return replace(command, incident=incident)


def button_command(action: str, value: str) -> Command | None:
    """The command a summary or action-item button stands for (see `bot.render.Button`):
    "ack" / "resolve" / "reopen" on "42", "action_done" on "42:3". None for anything else,
    including "key_event", which needs the person to type the event first."""
    number, _, item = value.partition(":")
    if not _is_number(number):
        return None
    incident = int(number)
    if action == "ack":
        return Acknowledge(incident=incident)
    if action == "resolve":
        return Resolve(incident=incident)
    if action == "reopen":
        return Reopen(incident=incident)
    if action == "action_done" and _is_number(item):
        return ActionDone(incident=incident, number=int(item))
    return None
