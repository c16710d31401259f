"""Platform-neutral messages. Adapters turn a `Message` into Block Kit, a Discord embed, or text.

`Message.text` is always the complete plain-text version, so an adapter that shows only text
(the console, notifications) loses nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo

from bot.models import ActionItem, ActionStatus, EntryKind, Incident, Status, TimelineEntry

KEY_EVENT_QUOTE_LIMIT = 2000
# The longest message text the chat platforms we post to accept (Slack's chat.postMessage
# refuses more with msg_too_long); adapters with smaller limits cut further with `fit`.
TEXT_LIMIT = 40_000
CUT_NOTE = "… (cut: the full text is in /incident timeline)"

# Unicode reactions under the names the catalog uses (Slack's names), for the common markers.
EMOJI_NAMES = {
    "📌": "pushpin",
    "📍": "round_pushpin",
    "⭐": "star",
    "🔖": "bookmark",
    "📝": "memo",
    "✅": "white_check_mark",
    "🚨": "rotating_light",
    "❗": "exclamation",
    "👀": "eyes",
    "🔥": "fire",
    "⚠️": "warning",
    "⚠": "warning",
    "🗒️": "spiral_note_pad",
    "👍": "+1",
}


def emoji_name(emoji: str) -> str:
    """The catalog name of an emoji: "pushpin" for 📌 (or ":pushpin:"), others as they are."""
    emoji = emoji.strip()
    named = EMOJI_NAMES.get(emoji) or EMOJI_NAMES.get(emoji.replace("\ufe0f", ""))
    return named or emoji.strip(":")


@dataclass(frozen=True)
class Field:
    label: str
    value: str


@dataclass(frozen=True)
class Button:
    label: str
    action: str  # "ack", "resolve", "reopen", "key_event", "action_done", "runbook_check"...
    value: str  # what the action applies to: "42" (incident) or "42:3" (action item)
    style: str | None = None  # "primary" | "danger"


@dataclass(frozen=True)
class Message:
    text: str
    title: str | None = None
    fields: tuple[Field, ...] = ()
    sections: tuple[str, ...] = ()
    buttons: tuple[Button, ...] = ()
    context: str | None = None


def clip(text: str, limit: int = KEY_EVENT_QUOTE_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def fit(text: str, limit: int = TEXT_LIMIT) -> str:
    """`text` within `limit` characters: a longer one is cut and says where the rest is, so a
    long note is delivered shortened instead of refused for good."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(CUT_NOTE))].rstrip() + CUT_NOTE


# Answers that list things (`list`, `timeline`) fit every platform by construction, not by
# clipping the whole: Discord shows up to 4,096 characters in an embed description (content over
# 2,000 goes there) and Slack asks a message's text to stay within 4,000. A page has at most
# PAGE_SIZE lines; when they are longer than the room together, the longest are cut, each
# to the same length, so short lines stay whole.
REPLY_LIMIT = 4000
PAGE_SIZE = 50
EDGE_LIMIT = 200  # a page's head and foot


def paged(head: str, lines: list[str], foot: str | None) -> str:
    """`head`, `lines` and `foot` as one reply of at most REPLY_LIMIT characters."""
    edges = [clip(head, EDGE_LIMIT), *([clip(foot, EDGE_LIMIT)] if foot else [])]
    room = REPLY_LIMIT - sum(len(e) for e in edges) - len(lines) - len(edges)
    cap = _fair_cap(sorted(len(x) for x in lines), room)
    body = [clip(x, cap) for x in lines] if cap is not None else lines
    out = "\n".join([edges[0], *body, *edges[1:]])
    assert len(out) <= REPLY_LIMIT, len(out)  # _fair_cap guarantees it
    return out


def _fair_cap(lengths: list[int], room: int) -> int | None:
    """The longest a line may be so that all fit in `room`; None when all fit whole."""
    if sum(lengths) <= room:
        return None
    for i, length in enumerate(lengths):
        share = room // (len(lengths) - i)
        if length > share:
            return max(1, share)
        room -= length
    return None


def hhmm(moment: datetime, tz: tzinfo = UTC) -> str:
    return moment.astimezone(tz).strftime("%H:%M %Z")


def when(moment: datetime, now: datetime, tz: tzinfo = UTC) -> str:
    """A short time in `tz` (the catalog's zone) named by its zone, with the date when it is
    not today there and the year when it is not this year."""
    local, today = moment.astimezone(tz), now.astimezone(tz).date()
    if local.date() == today:
        return local.strftime("%H:%M %Z")
    if local.year == today.year:
        return local.strftime("%a %d %b %H:%M %Z")
    return local.strftime("%a %d %b %Y %H:%M %Z")


def short_id(entry_id: int | None) -> str:
    """How people see and cite a timeline entry: "e44" (its id; "#44" reads as an incident)."""
    return f"e{entry_id}"


def incident_ref(incident: Incident) -> str:
    return f"#{incident.number}"


def next_update_due(incident: Incident, cadence: timedelta | None) -> datetime | None:
    if not incident.status.is_open or cadence is None:
        return None
    return (incident.last_update_at or incident.declared_at) + cadence


def due_text(due: datetime, now: datetime, tz: tzinfo = UTC) -> str:
    return when(due, now, tz) + (" (overdue)" if due <= now else "")


def topic(incident: Incident, cadence: timedelta | None, now: datetime, tz: tzinfo = UTC) -> str:
    parts = [incident.severity.upper(), incident.status.value]
    parts.append(f"Commander {incident.commander}" if incident.commander else "No commander")
    due = next_update_due(incident, cadence)
    if due is not None:
        parts.append(f"next update due {due_text(due, now, tz)}")
    return " · ".join(parts)


def incident_line(incident: Incident) -> str:
    lead = f" · {incident.commander}" if incident.commander else ""
    return (
        f"#{incident.number} [{incident.severity} · {incident.priority} · "
        f"{incident.status.value}] {incident.title}{lead}"
    )


def action_line(item: ActionItem, now: datetime, tz: tzinfo = UTC) -> str:
    mark = {ActionStatus.OPEN: "[ ]", ActionStatus.DONE: "[x]", ActionStatus.CANCELLED: "[-]"}
    parts = [f"{mark[item.status]} {item.number}. {item.text}"]
    if item.assignee:
        parts.append(item.assignee)
    if item.due_at:
        overdue = item.status is ActionStatus.OPEN and item.due_at < now
        parts.append(("OVERDUE " if overdue else "due ") + when(item.due_at, now, tz))
    return " · ".join(parts)


_ENTRY_ICON = {
    EntryKind.MESSAGE: "💬",
    EntryKind.KEY_EVENT: "📌",
    EntryKind.STATUS_CHANGE: "🔄",
    EntryKind.FIELD_CHANGE: "✏️",
    EntryKind.ROLE_CHANGE: "👤",
    EntryKind.ACTION_ITEM: "☑️",
    EntryKind.STATUS_UPDATE: "📣",
    EntryKind.RUNBOOK: "📖",
    EntryKind.ALERT: "🔔",
    EntryKind.REMINDER: "⏰",
    EntryKind.SYSTEM: "ℹ️",
    EntryKind.PAGE: "📟",
}


def icon(kind: EntryKind) -> str:
    return _ENTRY_ICON[kind]


def entry_line(entry: TimelineEntry, now: datetime | None = None, tz: tzinfo = UTC) -> str:
    """One timeline entry as a line: short id, time (dated when not today), icon, author, text."""
    author = f"{entry.author_name}: " if entry.author_name else ""
    origin = f" (via {entry.source})" if entry.data.get("show_source") else ""
    deleted = " [deleted]" if entry.deleted else ""
    at = when(entry.occurred_at, now, tz) if now is not None else hhmm(entry.occurred_at, tz)
    ident = f"{short_id(entry.id)} " if entry.id is not None else ""
    return f"{ident}{at} {_ENTRY_ICON[entry.kind]} {author}{entry.text}{origin}{deleted}"


def entry_message(entry: TimelineEntry, incident: Incident, *, cross_platform: bool) -> Message:
    """A timeline entry as it is posted in an incident channel."""
    author = entry.author_name or "Opsroom"
    via = f" (from {entry.source})" if cross_platform else ""
    icon = _ENTRY_ICON[entry.kind]
    if entry.kind is EntryKind.KEY_EVENT:
        marked_by = entry.data.get("marked_by")
        marked = f" (marked by {marked_by})" if marked_by and marked_by != author else ""
        text = f"{icon} Key event by {author}{via}{marked}:\n> {clip(entry.text)}"
    elif entry.kind is EntryKind.MESSAGE:
        text = f"{icon} {author}{via}: {entry.text}"
    elif entry.kind is EntryKind.REMINDER:
        text = f"{icon} {entry.text}"  # the bot's own nudge: no "(Opsroom)" after it
    elif entry.kind is EntryKind.PAGE:
        text = entry.text  # each paging line starts with its own sign (📟, ⬆️, ✅, ⚠️)
    elif entry.kind is EntryKind.STATUS_UPDATE:
        head = f"Status update on #{incident.number} {incident.title} by {author}{via}"
        text = f"{icon} {head}:\n{entry.text}"
    else:
        # Who did it goes after the first line, not after a list that follows (resolve).
        first, newline, rest = entry.text.partition("\n")
        text = f"{icon} {first} ({author}{via}){newline}{rest}"
    buttons: tuple[Button, ...] = ()
    action_no = entry.data.get("action_item")
    if entry.kind is EntryKind.ACTION_ITEM and entry.data.get("event") == "added" and action_no:
        buttons = (Button("Done", "action_done", f"{incident.number}:{action_no}", "primary"),)
    if entry.kind is EntryKind.RUNBOOK:  # a run's progress: what it waits on, as buttons
        buttons = tuple(Button(**b) for b in entry.data.get("buttons", []))
    return Message(text=fit(text), buttons=buttons)


def direct_message(entry: TimelineEntry, incident: Incident) -> Message:
    """A timeline entry sent to a person directly: a page, with its Acknowledge button (the
    same message whether it goes as a delivery of the incident or as a notice)."""
    message = entry_message(entry, incident, cross_platform=False)
    if entry.data.get("page"):
        ack = Button("Acknowledge", "ack", str(incident.number), "primary")
        message = replace(message, buttons=(*message.buttons, ack))
    return message


def announcement(entry: TimelineEntry, incident: Incident, channel_name: str | None) -> Message:
    where = f" · #{channel_name}" if channel_name else ""
    head = f"[#{incident.number} {incident.title} · {incident.severity.upper()}{where}]"
    return Message(text=fit(f"{head} {entry.text}"))


def summary(
    incident: Incident,
    *,
    cadence: timedelta | None,
    actions: Sequence[ActionItem],
    key_events: Sequence[TimelineEntry],
    field_labels: dict[str, str],
    now: datetime,
    extra_fields: Collection[str] = (),
    tz: tzinfo = UTC,
    page_url: str | None = None,
    alerts_firing: int = 0,
) -> Message:
    """The pinned summary: the current state of the incident, edited in place on every change.

    `extra_fields` are custom fields the incident's type does not define (kept from the type it
    had before): shown apart, so nobody takes them for fields of this type.
    """
    title = f"#{incident.number} {incident.title}"
    fields = [
        Field("Status", incident.status.value),
        Field("Severity", incident.severity.upper()),
        Field("Priority", incident.priority.upper()),
        Field("Type", incident.type),
    ]
    fields += [Field(role.capitalize(), who) for role, who in incident.roles.items()]
    if alerts_firing or incident.declared_on == "alerts":
        fields.append(Field("Alerts firing", str(alerts_firing)))
    extras = []
    for name, value in incident.custom_fields.items():
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        if name in extra_fields:
            extras.append(f"{field_labels.get(name, name)}: {shown}")
        else:
            fields.append(Field(field_labels.get(name, name), shown))
    due = next_update_due(incident, cadence)
    if due is not None:
        fields.append(Field("Next update due", due_text(due, now, tz)))
    if incident.resolved_at is not None:
        fields.append(Field("Resolved", when(incident.resolved_at, now, tz)))

    sections = [f"Summary: {incident.summary or incident.description or '-'}"]
    if key_events:
        shown_events = key_events[-5:]
        lines = [f"{when(e.occurred_at, now, tz)} {clip(e.text, 200)}" for e in shown_events]
        sections.append("Key events:\n" + "\n".join(lines))
    if extras:
        sections.append(f"Extra (not fields of type {incident.type}): " + " · ".join(extras))
    open_items = [a for a in actions if a.status is ActionStatus.OPEN]
    if open_items:
        lines = [action_line(a, now, tz) for a in open_items]
        sections.append("Open action items:\n" + "\n".join(lines))
    if page_url:
        sections.append(f"Incident page: {page_url}")

    ref = str(incident.number)
    buttons: list[Button] = []
    if incident.status is Status.TRIGGERED:
        buttons.append(Button("Acknowledge", "ack", ref, "primary"))
    if incident.status.is_open:
        buttons.append(Button("Add key event", "key_event", ref))
        buttons.append(Button("Resolve", "resolve", ref, "danger"))
    else:
        buttons.append(Button("Reopen", "reopen", ref))

    text_lines = [f"📋 {title}"]
    text_lines += [f"{f.label}: {f.value}" for f in fields]
    text_lines += sections
    return Message(
        text=fit("\n".join(text_lines)),
        title=title,
        fields=tuple(fields),
        sections=tuple(sections),
        buttons=tuple(buttons),
        context=f"Declared {when(incident.declared_at, now, tz)} by {incident.declared_by}",
    )
