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
from datetime import UTC, datetime, tzinfo

from bot.dates import FORMS as DUE_FORMS
from bot.dates import looks_like_date, parse_due, read_due

# --- due dates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DueSpec:
    """A due date as written (its form already checked by `read_due`); `resolve(now, tz)`
    gives the moment it means, so the grammar itself never reads a clock."""

    text: str

    def resolve(self, now: datetime, tz: tzinfo = UTC) -> datetime:
        return parse_due(self.text, now, tz)


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
    severity: str | None = None  # checked against the catalog by the service
    mine: bool = False
    type: str | None = None
    page: int = 1


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
class Unassign(Command):
    role: str


@dataclass(frozen=True, kw_only=True)
class SetField(Command):
    field: str
    value: str


@dataclass(frozen=True, kw_only=True)
class SetTitle(Command):
    title: str


@dataclass(frozen=True, kw_only=True)
class ChangeType(Command):
    type: str


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
    page: int = 1


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
class Cancel(Command):
    reason: str


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
class ActionReopen(Command):
    number: int


@dataclass(frozen=True, kw_only=True)
class ActionCancel(Command):
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
class RunbookCancel(Command):
    run: int | None = None


@dataclass(frozen=True, kw_only=True)
class RunbookRetry(Command):
    run: int | None = None


@dataclass(frozen=True, kw_only=True)
class RunbookCheck(Command):
    item: int
    run: int | None = None
    skip: bool = False


@dataclass(frozen=True, kw_only=True)
class RunbookApprove(Command):
    run: int | None = None


@dataclass(frozen=True, kw_only=True)
class Page(Command):
    target: str
    message: str = ""


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


# The incident times `/incident time` corrects, in the order they must keep.
TIME_NAMES = ("impact_started", "declared", "acknowledged", "mitigated", "resolved", "closed")


@dataclass(frozen=True, kw_only=True)
class SetTime(Command):
    which: str  # one of TIME_NAMES
    when: str  # as written; read in the catalog timezone by the service


@dataclass(frozen=True, kw_only=True)
class Close(Command):
    force_reason: str | None = None  # `close force <reason>`: close despite open work
@dataclass(frozen=True, kw_only=True)
class ShowAlerts(Command):
    pass


@dataclass(frozen=True, kw_only=True)
class ShowTriage(Command):
    """`alerts triage`: the triage-mode alerts waiting for a decision."""


@dataclass(frozen=True, kw_only=True)
class AlertDeclare(Command):
    """`alerts declare <id>`: declare an incident from a triage alert."""

    alert: int


@dataclass(frozen=True, kw_only=True)
class AlertAttach(Command):
    """`alerts attach <id> #<n>`: add a triage alert to incident n (`incident`; in an incident
    channel, that incident)."""

    alert: int


@dataclass(frozen=True, kw_only=True)
class AlertIgnore(Command):
    """`alerts ignore <id>`: nothing to do; it stays quiet while it fires."""

    alert: int


# --- grammar --------------------------------------------------------------------------------

USAGE: dict[str, str] = {
    "declare": "/incident declare [type=<type>] <what is happening>",
    "list": "/incident list [open|all] [<sev>] [mine] [type=<type>] [page <n>]",
    "show": "/incident show [<number>]",
    "help": "/incident help [<command>]",
    "status": "/incident status <status>",
    "severity": "/incident severity <sev>",
    "priority": "/incident priority <p>",
    "assign": "/incident assign <role> <@user>",
    "unassign": "/incident unassign <role>",
    "set": "/incident set <field> <value>",
    "title": "/incident title <text>",
    "type": "/incident type <type>   (custom fields the new type lacks are kept as extra)",
    "summary": "/incident summary <text>",
    "update": "/incident update <text>   (status update to stakeholders)",
    "event": "/incident event <text>   (key event)",
    "note": "/incident note <text>   (timeline note)",
    "timeline": "/incident timeline [key] [page <n>]",
    "catchup": "/incident catchup   (summary of the timeline so far, citing its entries)",
    "ack": "/incident ack",
    "resolve": "/incident resolve [<text>]",
    "reopen": "/incident reopen [<text>]",
    "cancel": "/incident cancel <reason>   (declared by mistake: archived, undone by reopen)",
    "action": (
        "/incident action add <text> [@user] [due <date>] | action list | action done <n> | "
        "action edit <n> [<text>] [@user] [due <date>] | action reopen <n> | action cancel <n>"
    ),
    "runbook": (
        "/incident runbook list | runbook run <name> | runbook status | "
        "runbook cancel [<run>] | runbook retry [<run>] | runbook check [<run>] <n> | "
        "runbook skip [<run>] <n> | runbook approve [<run>]"
    ),
    "page": "/incident page <policy|@user> [message]",
    "postmortem": "/incident postmortem   (a new version of the postmortem, posted as a file)",
    "time": (
        "/incident time <impact_started|declared|acknowledged|mitigated|resolved|closed> <when>"
    ),
    "close": "/incident close [force <reason>]",
    "mirror": "/incident mirror <slack|discord>",
    "reminders": "/incident reminders   (what Opsroom will nudge about, and when)",
    "alerts": (
        "/incident alerts [triage | declare <alert> | attach <alert> #<n> | ignore <alert>]"
    ),
}

# What `/incident help <command>` says besides the usage line; "{timezone}" is the catalog's.
DETAILS: dict[str, str] = {
    "time": (
        "When: 14:05 (the latest 14:05 not in the future), yesterday 14:05, 2026-12-15 14:05, "
        "15 Dec 14:05, 20m ago, 2h ago; times are in {timezone}. The times keep their order: "
        "impact_started <= declared <= acknowledged <= mitigated <= resolved <= closed "
        "(impact may start before the declare)."
    ),
    "close": (
        "Closing needs every action item done or cancelled and a postmortem, unless the "
        "commander or declarer forces it: /incident close force <reason>."
    ),
    "action": (
        f"Due dates: {DUE_FORMS}, or any of them with a time (friday 3pm). A weekday is the "
        "next one, next friday is next week's, and a day already past this year is next "
        "year's. Dates without a time mean 17:00; times are in {timezone}."
    ),
}

HELP_TEXT = (
    "Commands (inside an incident channel the incident is implied; elsewhere put #<number> "
    "right after /incident):\n" + "\n".join(f"  {u}" for u in USAGE.values())
)

# A person: "@name" (console), "<@U123>" / "<@U123|name>" (Slack), "<@123>" / "<@!123>" (Discord).
# "<@&123>" is a Discord role, not a person, so it is not a mention here.
_MENTION_RE = re.compile(r"^(@[\w.\-]+|<@!?[A-Za-z0-9]+(?:\|[^>]*)?>)$")
_INCIDENT_RE = re.compile(r"^#([0-9]+)$")


# Mentions of many people at once: Slack's "<!here>" / "<!channel|@channel>", a Discord role
# "<@&123>", and "@here" / "@everyone" / "@channel" as typed anywhere.
_GROUP_RE = re.compile(
    r"^(@(?:here|everyone|channel)|<!(?:here|channel|everyone)(?:\|[^>]*)?>|<@&[0-9]+>)$",
    re.IGNORECASE,
)


def is_group_mention(token: str) -> bool:
    return bool(_GROUP_RE.match(token))


def is_mention(token: str) -> bool:
    """One person's mention ("@here" and other group mentions are not)."""
    return bool(_MENTION_RE.match(token)) and not is_group_mention(token)


_ID_MENTION_RE = re.compile(r"^<@!?([A-Za-z0-9]+)(?:\|[^>]*)?>$")


def person_key(mention: str) -> str:
    """One form per person, to compare mentions: "<@U1|bob>" and "<@!1>" become "<@U1>" and
    "<@1>"; "@Bob" becomes "@bob"."""
    mention = mention.strip()
    m = _ID_MENTION_RE.match(mention)
    return f"<@{m.group(1)}>" if m else mention.lower()


def not_a_person(token: str) -> str:
    """Why `token` cannot stand for a person, for an error message."""
    if is_group_mention(token):
        return f'"{token}" is a group mention, not a person (write @name)'
    return f'"{token}" is not a person (write @name)'


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


def _split_action_tail(rest: str) -> tuple[str, str | None, DueSpec | None]:
    """Split '<text> [@user] [due <date>]' into its parts; the person and the due date may
    come in either order ("x due friday @bob", "x @bob due friday")."""
    spans = [m.span() for m in re.finditer(r"\S+", rest)]
    words = [rest[a:b] for a, b in spans]
    end = len(words)
    assignee = None
    if end and is_mention(words[end - 1]):
        assignee, end = words[end - 1], end - 1
    # The text may itself say "due" ("chase the due invoices due friday"): the due date is the
    # rightmost "due <date>" that reads as one; if none does, the rightmost date-like one is
    # reported, and "due to the cache change" stays part of the text.
    due, problem = None, None
    for i in range(end - 2, -1, -1):
        if words[i].lower() != "due":
            continue
        expr = " ".join(words[i + 1 : end])
        try:
            read_due(expr)
        except ValueError as exc:
            if looks_like_date(expr):  # "due someday-ish" is a mistake; "due to ..." is prose
                problem = problem or exc
            continue
        due, end = DueSpec(expr), i
        break
    else:
        if problem is not None:
            raise UsageError(str(problem)) from None
    if assignee is None and end and is_mention(words[end - 1]):
        assignee, end = words[end - 1], end - 1
    for word in (words[end - 1] if end else "", words[-1] if words else ""):
        if is_group_mention(word):
            raise UsageError(f"{not_a_person(word)}: an action item is assigned to one person")
    text = rest[: spans[end - 1][1]].strip() if end else ""
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
    if sub in ("done", "edit", "reopen", "cancel"):
        number_token, _, changes = tail.partition(" ")
        if not number_token:
            raise _usage("action", "missing action item number")
        number = _number("action", number_token)
        one_number = {"done": ActionDone, "reopen": ActionReopen, "cancel": ActionCancel}
        if sub in one_number:
            _none("action", changes.strip())
            return one_number[sub](number=number)
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
    numbers = tail.split()
    for token in numbers:
        if not token.isdigit() or int(token) < 1:
            raise _usage("runbook", f'"{token}" is not a run or item number')
    ints = [int(t) for t in numbers]
    if sub in ("cancel", "retry", "approve"):
        if len(ints) > 1:
            raise _usage("runbook", f"runbook {sub} takes at most a run number")
        run = ints[0] if ints else None
        return {"cancel": RunbookCancel, "retry": RunbookRetry, "approve": RunbookApprove}[sub](
            run=run
        )
    if sub in ("check", "skip"):
        if not ints or len(ints) > 2:
            raise _usage("runbook", "missing checklist item number" if not ints else
                         f"runbook {sub} takes [<run>] <n>")
        return RunbookCheck(item=ints[-1], run=ints[0] if len(ints) == 2 else None,
                            skip=sub == "skip")
    raise _usage(
        "runbook", f'unknown runbook command "{sub}"' if sub else "missing runbook command"
    )


def _parse_page(rest: str) -> Command:
    target, _, message = rest.partition(" ")
    if is_group_mention(target):
        raise _usage("page", not_a_person(target))
    return Page(target=target if is_mention(target) else target.lower(), message=message.strip())


def _parse_declare(rest: str) -> Command:
    type_ = None
    m = re.match(r"^type=(\S*)\s*", rest, flags=re.IGNORECASE)
    if m:
        if not m.group(1):
            raise _usage("declare", "missing type after type=")
        type_, rest = m.group(1).lower(), rest[m.end() :]
    return Declare(description=_need_text("declare", rest.strip()), type=type_)


def _page(name: str, words: list[str]) -> tuple[list[str], int]:
    """`words` without a trailing "page <n>", and n (1 when absent)."""
    lowered = [w.lower() for w in words]
    if "page" not in lowered:
        return words, 1
    at = lowered.index("page")
    given = words[at + 1] if at + 1 < len(words) else ""
    if not given:
        raise _usage(name, "expected a page number after page")
    if not _is_number(given) or int(given) < 1:
        raise _usage(name, f'"{given}" is not a page number (1, 2, 3...)')
    return words[:at] + words[at + 2 :], int(given)


def _parse_list(rest: str) -> Command:
    words, page = _page("list", rest.split())
    scope: str | None = None
    severity = type_ = None
    mine = False
    for word in (w.lower() for w in words):
        if word in ("open", "all"):
            if scope is not None:
                raise _usage("list", f'"{word}" after "{scope}": give one of open or all')
            scope = word
        elif word == "mine":
            mine = True
        elif word.startswith("type="):
            if not word[5:]:
                raise _usage("list", "missing type after type=")
            type_ = word[5:]
        elif severity is None and re.fullmatch(r"[a-z0-9_-]+", word):
            severity = word
        else:
            raise _usage("list", f'unknown filter "{word}"')
    return ListIncidents(
        include_closed=scope == "all", severity=severity, mine=mine, type=type_, page=page
    )


def _parse_show(rest: str) -> Command:
    if not rest:
        return Show()
    return Show(incident=_number("show", _one_word("show", rest, "incident number")))


def _parse_assign(rest: str) -> Command:
    words = rest.split()
    if len(words) != 2:
        raise _usage("assign", "expected a role and a person")
    if not is_mention(words[1]):
        raise _usage("assign", not_a_person(words[1]))
    return AssignRole(role=words[0].lower(), user=words[1])


def _parse_set(rest: str) -> Command:
    field, _, value = rest.partition(" ")
    if not field or not value.strip():
        raise _usage("set", "expected a field and a value")
    return SetField(field=field.lower(), value=value.strip())


def _parse_timeline(rest: str) -> Command:
    words, page = _page("timeline", rest.split())
    option = " ".join(words)
    if option.lower() not in ("", "key"):
        raise _usage("timeline", f'unknown option "{option}"')
    return ShowTimeline(key_only=option.lower() == "key", page=page)


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
    "unassign": lambda r: Unassign(role=_one_word("unassign", r, "role")),
    "set": _parse_set,
    "title": lambda r: SetTitle(title=_need_text("title", r)),
    "type": lambda r: ChangeType(type=_one_word("type", r, "incident type")),
    "summary": lambda r: SetSummary(summary=_need_text("summary", r)),
    "update": lambda r: StatusUpdate(text=_need_text("update", r)),
    "event": lambda r: AddKeyEvent(text=_need_text("event", r)),
    "note": lambda r: AddNote(text=_need_text("note", r)),
    "timeline": _parse_timeline,
    "catchup": lambda r: _bare("catchup", r, CatchUp),
    "ack": lambda r: _bare("ack", r, Acknowledge),
    "resolve": lambda r: Resolve(text=r),
    "reopen": lambda r: Reopen(text=r),
    "cancel": lambda r: Cancel(reason=_need_text("cancel", r)),
    "action": _parse_action,
    "runbook": _parse_runbook,
    "page": lambda r: _parse_page(_need_text("page", r)),
    "postmortem": lambda r: _bare("postmortem", r, Postmortem),
    "mirror": lambda r: MirrorTo(platform=_one_word("mirror", r, "platform")),
    "reminders": lambda r: _bare("reminders", r, ShowReminders),
    "time": lambda r: _parse_time(r),
    "close": lambda r: _parse_close(r),
    "alerts": lambda r: _parse_alerts(r),
}


def _parse_alerts(rest: str) -> Command:
    sub, _, tail = rest.partition(" ")
    sub, words = sub.lower(), tail.split()
    if not sub:
        return ShowAlerts()
    if sub == "triage":
        _none("alerts", tail.strip())
        return ShowTriage()
    if sub not in ("declare", "attach", "ignore"):
        raise _usage("alerts", f'unknown alerts command "{sub}"')
    if not words:
        raise _usage("alerts", "missing alert number")
    alert = _number("alerts", words[0])
    if sub == "attach":
        if len(words) > 2:
            raise _usage("alerts", f'unexpected "{" ".join(words[2:])}"')
        if len(words) == 2:
            m = _INCIDENT_RE.match(words[1])
            if m is None or not _is_number(m.group(1)):
                raise _usage("alerts", f'"{words[1]}" is not an incident number (write #42)')
            return AlertAttach(alert=alert, incident=int(m.group(1)))
        return AlertAttach(alert=alert)
    _none("alerts", " ".join(words[1:]))
    return (AlertDeclare if sub == "declare" else AlertIgnore)(alert=alert)
def _parse_time(rest: str) -> Command:
    which, _, when = rest.partition(" ")
    which = which.lower().replace("-", "_")
    if not which:
        raise _usage("time", "missing which time")
    if which not in TIME_NAMES:
        raise _usage("time", f'unknown time "{which}": use {", ".join(TIME_NAMES)}')
    if not when.strip():
        raise _usage("time", f"missing when {which}")
    return SetTime(which=which, when=when.strip())


def _parse_close(rest: str) -> Command:
    if not rest:
        return Close()
    word, _, reason = rest.partition(" ")
    if word.lower() != "force":
        raise _usage("close", f'unexpected "{rest}"')
    if not reason.strip():
        raise _usage("close", "missing reason after force")
    return Close(force_reason=reason.strip())


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
    "alert": "alerts",
}


def parse(text: str) -> Command:
    """Return the command `text` (what follows `/incident`) asks for, or raise UsageError."""
    text = text.strip()
    if text.lower().startswith("/incident"):
        text = text[len("/incident") :].strip()
    incident = None
    first, _, rest = text.partition(" ")
    if first.startswith("#"):
        m = _INCIDENT_RE.match(first)
        if m is None or not _is_number(m.group(1)):
            raise UsageError(f'"{first}" is not an incident number (write #42)')
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


# The buttons of a triage post (bot/triage.py).
TRIAGE_ACTIONS = ("triage_declare", "triage_attach", "triage_ignore")


def button_command(action: str, value: str) -> Command | None:
    """The command a summary or action-item button stands for (see `bot.render.Button`):
    "ack" / "resolve" / "reopen" on "42", "action_done" on "42:3"; a triage post's
    "triage_declare" / "triage_ignore" on alert "17" and "triage_attach" on "17:42" (alert 17
    to #42). None for anything else, including "key_event", which needs the person to type the
    event first."""
    number, _, item = value.partition(":")
    if not _is_number(number):
        return None
    if action in TRIAGE_ACTIONS:
        alert = int(number)
        if action == "triage_attach":
            return AlertAttach(alert=alert, incident=int(item)) if _is_number(item) else None
        if item:
            return None
        return AlertDeclare(alert=alert) if action == "triage_declare" else AlertIgnore(alert=alert)
    incident = int(number)
    if action == "ack":
        return Acknowledge(incident=incident)
    if action == "resolve":
        return Resolve(incident=incident)
    if action == "reopen":
        return Reopen(incident=incident)
    if action == "action_done" and _is_number(item):
        return ActionDone(incident=incident, number=int(item))
    run, _, n = item.partition(":")  # a runbook's progress message: "42:2:3" is run 2, item 3
    if action == "runbook_check" and _is_number(run) and _is_number(n):
        return RunbookCheck(incident=incident, run=int(run), item=int(n))
    if action == "runbook_approve" and _is_number(run):
        return RunbookApprove(incident=incident, run=int(run))
    return None
