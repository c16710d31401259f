"""The `/oncall` grammar, beside `/incident`'s (bot/commands.py), shared by every platform.

`parse_oncall(text)` turns what follows `/oncall` into one frozen dataclass, or raises
`UsageError` with the usage of the nearest subcommand. Schedule names are checked against the
catalog by the service; dates are checked for form here and resolved there (with its clock).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import timedelta

from bot.commands import Command, UsageError, is_mention, not_a_person
from bot.dates import FORMS as DATE_FORMS
from bot.dates import read_due
from bot.timing import parse_duration

MAX_DAYS = 90


@dataclass(frozen=True, kw_only=True)
class OncallWho(Command):
    schedule: str | None = None


@dataclass(frozen=True, kw_only=True)
class OncallSchedule(Command):
    schedule: str
    days: int = 7


@dataclass(frozen=True, kw_only=True)
class OncallOverride(Command):
    schedule: str
    person: str
    start: str | None = None  # as typed (bot/dates.py forms); None: now
    end: str | None = None
    length: timedelta | None = None  # "for 4h"


@dataclass(frozen=True, kw_only=True)
class OncallOverrides(Command):
    schedule: str | None = None


@dataclass(frozen=True, kw_only=True)
class OncallRemoveOverride(Command):
    id: int


@dataclass(frozen=True, kw_only=True)
class OncallHelp(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class OncallAck(Command):
    pass


ONCALL_USAGE: dict[str, str] = {
    "who": "/oncall who [<schedule>]   (who is on call now, and until when)",
    "schedule": "/oncall schedule <schedule> [<days>]   (the next shifts; 7 days unless given)",
    "override": (
        "/oncall override <schedule> @person <from> to <to> | @person for 4h | "
        "@person <from> for 4h"
    ),
    "overrides": "/oncall overrides [<schedule>]",
    "remove-override": "/oncall remove-override <id>",
    "ack": "/oncall ack   (acknowledge every page you have open)",
    "help": "/oncall help",
}
ONCALL_HELP = "On-call commands:\n" + "\n".join(f"  {u}" for u in ONCALL_USAGE.values())


def _usage(name: str, problem: str) -> UsageError:
    return UsageError(f"{problem}. Usage: {ONCALL_USAGE[name]}")


def _date(name: str, text: str) -> str:
    try:
        read_due(text)
    except ValueError as exc:
        raise UsageError(f"{exc}. Usage: {ONCALL_USAGE[name]}") from None
    return text


def _override(rest: str) -> OncallOverride:
    words = rest.split()
    if len(words) < 2:
        raise _usage("override", "expected a schedule and a person")
    schedule, person, tail = words[0].lower(), words[1], words[2:]
    if not is_mention(person):
        raise _usage("override", not_a_person(person))
    lowered = [w.lower() for w in tail]
    if "for" in lowered:
        i = lowered.index("for")
        text = " ".join(tail[i + 1 :])
        try:
            length = parse_duration(text)
        except ValueError as exc:
            raise _usage("override", str(exc)) from None
        start = " ".join(tail[:i]) or None
        if start is not None and start.lower() != "now":
            _date("override", start)
        else:
            start = None
        return OncallOverride(schedule=schedule, person=person, start=start, length=length)
    if "to" in lowered:
        i = lowered.index("to")
        start, end = " ".join(tail[:i]), " ".join(tail[i + 1 :])
        if not end:
            raise _usage("override", "missing the end after to")
    elif len(tail) == 2:
        start, end = tail
    else:
        raise _usage("override", "expected <from> to <to>, or for <duration>")
    begin = None if start.lower() in ("", "now") else _date("override", start)
    return OncallOverride(schedule=schedule, person=person, start=begin, end=_date("override", end))


def parse_oncall(text: str) -> Command:
    """The command `/oncall <text>` means; UsageError with the usage otherwise."""
    sub, _, rest = text.strip().partition(" ")
    sub, rest = sub.lower(), rest.strip()
    words = rest.split()
    if sub in ("", "help"):
        return OncallHelp()
    if sub == "ack":
        if rest:
            raise _usage("ack", f'unexpected "{rest}"')
        return OncallAck()
    if sub == "who":
        if len(words) > 1:
            raise _usage("who", f'unexpected "{rest}"')
        return OncallWho(schedule=words[0].lower() if words else None)
    if sub == "schedule":
        if not words or len(words) > 2:
            raise _usage("schedule", "expected a schedule name" if not words else "too many words")
        days = 7
        if len(words) == 2:
            token = words[1].lower().removesuffix("d").removesuffix("days")
            if not (token.isascii() and token.isdigit() and 1 <= int(token) <= MAX_DAYS):
                raise _usage("schedule", f'"{words[1]}" is not a number of days (1 to {MAX_DAYS})')
            days = int(token)
        return OncallSchedule(schedule=words[0].lower(), days=days)
    if sub == "override":
        return _override(rest)
    if sub == "overrides":
        if len(words) > 1:
            raise _usage("overrides", f'unexpected "{rest}"')
        return OncallOverrides(schedule=words[0].lower() if words else None)
    if sub in ("remove-override", "remove_override", "unoverride"):
        token = rest.lstrip("#")
        if not (token.isascii() and token.isdigit() and len(token) <= 9):
            raise _usage(
                "remove-override", f'"{rest}" is not an override id' if rest else "missing id"
            )
        return OncallRemoveOverride(id=int(token))
    close = difflib.get_close_matches(sub, list(ONCALL_USAGE), n=1, cutoff=0.6)
    hint = f" Did you mean: {ONCALL_USAGE[close[0]]}" if close else f"\n{ONCALL_HELP}"
    raise UsageError(f'unknown on-call command "{sub}".{hint}')


DATE_HELP = f"Times: now, {DATE_FORMS}."
