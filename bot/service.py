"""IncidentService: one async method per use case.

Every change is written together with its timeline entry and the deliveries that mirror it to
each linked channel, in one transaction. The service never talks to chat itself; it returns a
`Reply` for the person who acted and wakes the mirror.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot import commands as c
from bot import reminders
from bot.ai import PlainSummarizer
from bot.catalog import Catalog, CustomField, FieldKind, IncidentType
from bot.mirror import summary_for
from bot.models import (
    ActionItem,
    ActionStatus,
    ChannelLink,
    Delivery,
    DeliveryAction,
    EntryKind,
    Incident,
    LinkState,
    Status,
    TimelineEntry,
)
from bot.ports import (
    SYSTEM,
    Actor,
    ChannelRef,
    Clock,
    Store,
    Suggester,
    Suggestion,
    Summarizer,
    SystemClock,
    Unit,
)
from bot.render import Message, action_line, entry_line, incident_line

logger = logging.getLogger(__name__)


_GONE = frozenset({LinkState.FAILED, LinkState.ARCHIVED})  # channels nothing is sent to
_CHANGES_INCIDENT = frozenset(
    {
        EntryKind.STATUS_CHANGE,
        EntryKind.FIELD_CHANGE,
        EntryKind.ROLE_CHANGE,
        EntryKind.STATUS_UPDATE,
    }
)
# Entries whose change can schedule, move or cancel reminders (see bot/reminders.py).
_PLANS_REMINDERS = _CHANGES_INCIDENT | {EntryKind.SYSTEM, EntryKind.ACTION_ITEM}


class ServiceError(Exception):
    """A request that cannot be done as asked: the person sees the message; nothing changes."""


@dataclass(frozen=True)
class Reply:
    """What the person who acted sees (ephemeral where the platform allows)."""

    text: str
    ok: bool = True
    message: Message | None = None
    incident: int | None = None


def _one_of(values: Sequence[str]) -> str:
    values = list(values)
    if len(values) == 1:
        return values[0]
    return ", ".join(values[:-1]) + " or " + values[-1]


def coerce_field(field: CustomField, raw: Any) -> Any:
    """Return `raw` as the value `field` stores, or raise ServiceError naming the bad value."""
    if field.kind is FieldKind.NUMBER:
        try:
            number = float(str(raw).replace(",", ""))
        except ValueError:
            raise ServiceError(f'{field.name} must be a number, not "{raw}"') from None
        if not math.isfinite(number):
            raise ServiceError(f'{field.name} must be a finite number, not "{raw}"')
        return int(number) if number.is_integer() else number
    if field.kind is FieldKind.SELECT:
        choice = next((ch for ch in field.choices if ch.lower() == str(raw).strip().lower()), None)
        if choice is None:
            raise ServiceError(f'unknown {field.name} "{raw}": use {_one_of(field.choices)}')
        return choice
    if field.kind is FieldKind.MULTI_SELECT:
        items = raw if isinstance(raw, list) else [p for p in str(raw).split(",") if p.strip()]
        picked = []
        for item in items:
            choice = next(
                (ch for ch in field.choices if ch.lower() == str(item).strip().lower()), None
            )
            if choice is None:
                raise ServiceError(
                    f'unknown {field.name} "{str(item).strip()}": use {_one_of(field.choices)}'
                )
            if choice not in picked:
                picked.append(choice)
        if not picked:
            raise ServiceError(f"{field.name} needs at least one of {_one_of(field.choices)}")
        return picked
    if field.kind is FieldKind.USER:
        if not c.is_mention(str(raw).strip()):
            raise ServiceError(f'{field.name} must be a person (write @name), not "{raw}"')
        return str(raw).strip()
    text = str(raw).strip()
    if not text:
        raise ServiceError(f"{field.name} must not be empty")
    return text


class IncidentService:
    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        suggester: Suggester,
        clock: Clock | None = None,
        platforms: Sequence[str] = ("console",),
        notify: Callable[[], None] | None = None,
        summarizer: Summarizer | None = None,
    ) -> None:
        self.store = store
        self.catalog = catalog
        self.suggester = suggester
        self.summarizer: Summarizer = summarizer or PlainSummarizer()
        self.clock: Clock = clock or SystemClock()
        self.platforms = tuple(platforms)
        self._notify = notify or (lambda: None)
        self._handlers: dict[
            type[c.Command], Callable[[Any, Actor, ChannelRef], Awaitable[Reply]]
        ] = {
            c.Declare: self._declare_command,
            c.ListIncidents: self._list,
            c.Show: self._show,
            c.Help: self._help,
            c.ShowTimeline: self._timeline,
            c.CatchUp: self._catchup,
            c.ActionList: self._action_list,
            c.ShowReminders: self._reminders,
        }
        self._changes: dict[
            type[c.Command], Callable[[Unit, Incident, Any, Actor], Awaitable[Reply]]
        ] = {
            c.SetStatus: self._set_status,
            c.SetSeverity: self._set_severity,
            c.SetPriority: self._set_priority,
            c.AssignRole: self._assign,
            c.SetField: self._set_field,
            c.SetTitle: self._set_title,
            c.SetSummary: self._set_summary,
            c.StatusUpdate: self._status_update,
            c.AddKeyEvent: self._key_event,
            c.AddNote: self._note,
            c.Acknowledge: self._ack,
            c.Resolve: self._resolve,
            c.Reopen: self._reopen,
            c.ActionAdd: self._action_add,
            c.ActionDone: self._action_done,
            c.ActionEdit: self._action_edit,
            c.MirrorTo: self._mirror_to,
        }

    # --- entry points -------------------------------------------------------------------

    async def handle_text(self, text: str, *, actor: Actor, where: ChannelRef) -> Reply:
        """Parse `/incident` text and run it; a malformed command gets its usage, nothing else."""
        try:
            command = c.parse(text)
        except c.UsageError as exc:
            return Reply(str(exc), ok=False)
        return await self.handle(command, actor=actor, where=where)

    async def handle(self, command: c.Command, *, actor: Actor, where: ChannelRef) -> Reply:
        """Run one parsed command; errors come back as a Reply with ok=False and change nothing."""
        try:
            handler = self._handlers.get(type(command))
            if handler is not None:
                return await handler(command, actor, where)
            change = self._changes.get(type(command))
            if change is not None:
                return await self._change(command, actor, where, change)
            return self._not_configured(command)
        except ServiceError as exc:
            return Reply(str(exc), ok=False)
        except Exception:
            # A bug or an unreachable database: the person gets a short answer, never a trace,
            # and the transaction (if any) rolled back, so nothing half-done was kept.
            logger.exception("%s failed", type(command).__name__)
            return Reply(
                "Sorry, that failed on our side and nothing was changed; try again in a moment.",
                ok=False,
            )

    def _not_configured(self, command: c.Command) -> Reply:
        what = {
            c.RunbookList: "Runbooks are",
            c.RunbookRun: "Runbooks are",
            c.RunbookStatus: "Runbooks are",
            c.Page: "Paging is",
            c.Postmortem: "Postmortems are",
        }.get(type(command), "This command is")
        return Reply(f"{what} not configured yet in this Opsroom; nothing was done.", ok=False)

    async def _change(
        self,
        command: c.Command,
        actor: Actor,
        where: ChannelRef,
        fn: Callable[[Unit, Incident, Any, Actor], Awaitable[Reply]],
    ) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, command.incident, where)
            reply = await fn(u, incident, command, actor)
        self._notify()
        return reply

    async def _resolve_incident(self, u: Unit, number: int | None, where: ChannelRef) -> Incident:
        if number is not None:
            incident = await u.incident(number)
            if incident is None:
                raise ServiceError(f"no incident #{number}")
            return incident
        incident = await u.incident_for_channel(where.platform, where.channel_id)
        if incident is None:
            raise ServiceError(
                "no incident here: run this in an incident channel, or name the incident, "
                "e.g. /incident #42 status monitoring"
            )
        return incident

    # --- recording ----------------------------------------------------------------------

    async def _record(
        self,
        u: Unit,
        incident: Incident,
        *,
        kind: EntryKind,
        text: str,
        actor: Actor,
        data: dict[str, Any] | None = None,
        announce: bool = False,
        occurred_at: datetime | None = None,
        external_id: str | None = None,
        origin_link: int | None = None,
        author_name: str | None = None,
    ) -> TimelineEntry:
        """Append a timeline entry and queue its deliveries to every linked channel."""
        now = self.clock.now()
        if kind in _CHANGES_INCIDENT:
            incident.updated_at = now  # notes and key events leave the incident row alone
        entry = TimelineEntry(
            incident_id=_id(incident),
            kind=kind,
            text=text,
            author_id=actor.user_id,
            author_name=author_name or actor.name,
            source=actor.platform,
            external_id=external_id,
            data=data or {},
            occurred_at=occurred_at or now,
            created_at=now,
        )
        await u.append(entry)
        outbox: list[Delivery] = []
        for link in await u.links(_id(incident)):
            if link.state in _GONE:
                continue
            actions = [DeliveryAction.POST_ENTRY] if link.id != origin_link else []
            actions.append(DeliveryAction.REFRESH_SUMMARY)
            if announce:
                actions.append(DeliveryAction.ANNOUNCE)
            outbox += [_delivery(link, action, now, entry) for action in actions]
        await u.queue(outbox)
        if kind in _PLANS_REMINDERS:
            await reminders.after_change(u, self.catalog, incident, entry, actor.platform, now)
        return entry

    record = _record  # job handlers (bot/jobs.py) record the same way

    async def _refresh_only(self, u: Unit, incident: Incident) -> None:
        """Queue a summary refresh without a new entry (e.g. an edited timeline message)."""
        now = self.clock.now()
        await u.queue(
            [
                _delivery(link, DeliveryAction.REFRESH_SUMMARY, now)
                for link in await u.links(_id(incident))
                if link.state not in _GONE
            ]
        )

    # --- declare ------------------------------------------------------------------------

    async def suggest(self, *, description: str, type_hint: str | None = None) -> Suggestion:
        """Return suggested fields for a new incident described by `description`."""
        if type_hint is not None and self.catalog.incident_type(type_hint) is None:
            raise ServiceError(
                f'unknown incident type "{type_hint}": use {_one_of(self.catalog.type_names)}'
            )
        return await self.suggester.suggest(
            description=description, type_hint=type_hint, catalog=self.catalog
        )

    async def _declare_command(self, cmd: c.Declare, actor: Actor, where: ChannelRef) -> Reply:
        suggestion = await self.suggest(description=cmd.description, type_hint=cmd.type)
        return await self.declare_suggested(
            suggestion, description=cmd.description, actor=actor, where=where
        )

    async def declare_suggested(
        self, suggestion: Suggestion, *, description: str, actor: Actor, where: ChannelRef
    ) -> Reply:
        """Declare with every suggested field as it is; returns the reply naming the incident."""
        reply = await self.declare(
            actor=actor,
            where=where,
            description=description,
            title=suggestion.title,
            summary=suggestion.summary,
            type=suggestion.type,
            severity=suggestion.severity,
            priority=suggestion.priority,
            custom_fields=suggestion.custom_fields,
            suggested=suggestion,
        )
        if suggestion.note:  # which model filled the fields, or why none did
            reply = replace(reply, text=f"{reply.text}\n{suggestion.note}")
        return reply

    async def declare(
        self,
        *,
        actor: Actor,
        where: ChannelRef,
        description: str,
        title: str,
        type: str,
        severity: str,
        priority: str,
        summary: str = "",
        custom_fields: dict[str, Any] | None = None,
        commander: str | None = None,
        suggested: Suggestion | None = None,
    ) -> Reply:
        """Create an incident and queue its channel; returns a reply naming its number."""
        itype = self._type(type)
        severity, priority = self._severity(severity), self._priority(priority)
        title = title.strip()
        if not title:
            raise ServiceError("the title must not be empty")
        fields = {}
        for name, raw in (custom_fields or {}).items():
            if raw in (None, "", []):
                continue
            definition = self._field(itype, name)
            fields[name] = coerce_field(definition, raw)
        if commander is not None and not c.is_mention(commander):
            raise ServiceError(f'commander must be a person (write @name), not "{commander}"')
        lead = commander or actor.ref
        now = self.clock.now()
        async with self.store.unit() as u:
            number = await u.next_incident_number()
            incident = Incident(
                number=number,
                title=title,
                summary=summary.strip() or description.strip(),
                description=description.strip(),
                type=itype.name,
                severity=severity,
                priority=priority,
                status=Status.TRIGGERED,
                private=itype.private,
                roles={"commander": lead},
                custom_fields=fields,
                declared_by=actor.ref,
                declared_on=actor.platform,
                declared_at=now,
                updated_at=now,
            )
            await u.add(incident)
            invite = [actor.ref] + ([lead] if lead != actor.ref else [])
            await self._add_link(u, incident, where.platform, where.workspace, invite)
            for platform in itype.mirror_to:
                if platform in self.platforms and platform != where.platform:
                    await self._add_link(u, incident, platform)
            await self._record(
                u,
                incident,
                kind=EntryKind.SYSTEM,
                actor=actor,
                announce=True,
                text=(
                    f"Incident declared: {title} ({itype.name}, {severity.upper()}, "
                    f"{priority.upper()}), commander {lead}"
                ),
                data=_suggestion_data(suggested),
            )
        self._notify()
        missing = [f.name for f in itype.fields if f.required and f.name not in fields]
        extra = f" Required before resolve: {', '.join(missing)}." if missing else ""
        return Reply(
            f"Declared incident #{number}: {title} ({itype.name} · {severity} · {priority}); "
            f"commander {lead}. Its channel is being created.{extra}",
            incident=number,
        )

    # --- read-only ----------------------------------------------------------------------

    async def _list(self, cmd: c.ListIncidents, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incidents = await u.incidents(include_closed=cmd.include_closed)
        if not incidents:
            return Reply("No open incidents." if not cmd.include_closed else "No incidents yet.")
        head = "All incidents:" if cmd.include_closed else "Open incidents:"
        return Reply("\n".join([head] + [incident_line(i) for i in incidents]))

    async def _show(self, cmd: c.Show, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            message = await summary_for(u, incident, self.catalog, self.clock.now())
        return Reply(message.text, message=message, incident=incident.number)

    async def _help(self, cmd: c.Help, actor: Actor, where: ChannelRef) -> Reply:
        if cmd.topic:
            return Reply(f"Usage: {c.USAGE[cmd.topic]}")
        return Reply(c.HELP_TEXT)

    async def _timeline(self, cmd: c.ShowTimeline, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            entries = await u.timeline(_id(incident), key_only=cmd.key_only)
        what = "Key events" if cmd.key_only else "Timeline"
        if not entries:
            return Reply(f"{what} of #{incident.number}: nothing yet.", incident=incident.number)
        lines = [f"{what} of #{incident.number} {incident.title}:"]
        lines += [entry_line(e) for e in entries]
        return Reply("\n".join(lines), incident=incident.number)

    async def _catchup(self, cmd: c.CatchUp, actor: Actor, where: ChannelRef) -> Reply:
        """Summarise the timeline so far; returns text whose every citation is a real entry."""
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            entries = await u.timeline(_id(incident))
        itype = self.catalog.incident_type(incident.type)
        # A type with AI off (security by default) never has its timeline sent to a model.
        summarizer = self.summarizer if itype is None or itype.ai else PlainSummarizer()
        text, removed = await summarizer.summarize(entries)
        fixed = (
            f"\n({removed} citation{'s' if removed != 1 else ''} of entries that do not exist "
            "removed)"
            if removed
            else ""
        )
        return Reply(
            f"Catch-up on #{incident.number} {incident.title}:\n{text}{fixed}",
            incident=incident.number,
        )

    async def _action_list(self, cmd: c.ActionList, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            items = await u.action_items(_id(incident))
        if not items:
            return Reply(f"#{incident.number} has no action items.", incident=incident.number)
        now = self.clock.now()
        lines = [f"Action items of #{incident.number}:"] + [action_line(a, now) for a in items]
        return Reply("\n".join(lines), incident=incident.number)

    async def _reminders(self, cmd: c.ShowReminders, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            text = await reminders.describe(u, self.catalog, incident, self.clock.now())
        return Reply(text, incident=incident.number)

    # --- changes ------------------------------------------------------------------------

    async def _set_status(self, u: Unit, inc: Incident, cmd: c.SetStatus, actor: Actor) -> Reply:
        if cmd.status not in self.catalog.status_names:
            raise ServiceError(
                f'unknown status "{cmd.status}": use {_one_of(self.catalog.status_names)}'
            )
        new = Status(cmd.status)
        if new is Status.RESOLVED:
            return await self._resolve(u, inc, c.Resolve(), actor)
        if not inc.status.is_open and new.is_open:
            return await self._reopen(u, inc, c.Reopen(), actor, to=new)
        if new is Status.CLOSED and inc.status.is_open:
            self._check_required(inc, "closed")
        return await self._move(u, inc, new, actor)

    async def _move(
        self, u: Unit, inc: Incident, new: Status, actor: Actor, note: str = ""
    ) -> Reply:
        old = inc.status
        if new is old:
            raise ServiceError(f"#{inc.number} is already {old.value}")
        now = self.clock.now()
        inc.status = new
        if new is not Status.TRIGGERED and inc.acknowledged_at is None:
            inc.acknowledged_at = now
        if new in (Status.MONITORING, Status.RESOLVED, Status.CLOSED) and inc.mitigated_at is None:
            inc.mitigated_at = now
        if new in (Status.RESOLVED, Status.CLOSED) and inc.resolved_at is None:
            inc.resolved_at = now
        if new is Status.CLOSED:
            inc.closed_at = now
        text = f"Status changed from {old.value} to {new.value}" + (f": {note}" if note else "")
        announce = new in (Status.RESOLVED, Status.CLOSED)
        await self._record(
            u,
            inc,
            kind=EntryKind.STATUS_CHANGE,
            text=text,
            actor=actor,
            announce=announce,
            data={"from": old.value, "to": new.value},
        )
        return Reply(f"#{inc.number} is now {new.value}.", incident=inc.number)

    async def _ack(self, u: Unit, inc: Incident, cmd: c.Acknowledge, actor: Actor) -> Reply:
        if inc.status is not Status.TRIGGERED:
            raise ServiceError(f"#{inc.number} is already acknowledged (status {inc.status.value})")
        reply = await self._move(u, inc, Status.ACKNOWLEDGED, actor)
        return Reply(f"Acknowledged #{inc.number}; it is yours to run.", incident=reply.incident)

    async def _resolve(self, u: Unit, inc: Incident, cmd: c.Resolve, actor: Actor) -> Reply:
        if not inc.status.is_open:
            raise ServiceError(f"#{inc.number} is already {inc.status.value}")
        self._check_required(inc, "resolved")
        await self._move(u, inc, Status.RESOLVED, actor, note=cmd.text)
        return Reply(f"Resolved #{inc.number}.", incident=inc.number)

    def _check_required(self, inc: Incident, becoming: str) -> None:
        """Required custom fields must be set before an incident is resolved or closed."""
        itype = self.catalog.incident_type(inc.type)
        fields = itype.fields if itype else []
        missing = [f.name for f in fields if f.required and f.name not in inc.custom_fields]
        if missing:
            raise ServiceError(
                f"#{inc.number} cannot be {becoming} yet: set {', '.join(missing)} first "
                f"(/incident set {missing[0]} <value>)"
            )

    async def _reopen(
        self,
        u: Unit,
        inc: Incident,
        cmd: c.Reopen,
        actor: Actor,
        to: Status = Status.INVESTIGATING,
    ) -> Reply:
        if inc.status.is_open:
            raise ServiceError(f"#{inc.number} is not resolved (status {inc.status.value})")
        old = inc.status
        inc.status, inc.resolved_at, inc.closed_at = to, None, None
        text = f"Reopened (was {old.value}), now {to.value}" + (f": {cmd.text}" if cmd.text else "")
        await self._record(
            u,
            inc,
            kind=EntryKind.STATUS_CHANGE,
            text=text,
            actor=actor,
            announce=True,
            data={"from": old.value, "to": to.value},
        )
        return Reply(f"Reopened #{inc.number}; it is {to.value}.", incident=inc.number)

    async def _set_severity(
        self, u: Unit, inc: Incident, cmd: c.SetSeverity, actor: Actor
    ) -> Reply:
        new = self._severity(cmd.severity)
        return await self._field_change(u, inc, actor, "severity", inc.severity, new, announce=True)

    async def _set_priority(
        self, u: Unit, inc: Incident, cmd: c.SetPriority, actor: Actor
    ) -> Reply:
        new = self._priority(cmd.priority)
        return await self._field_change(u, inc, actor, "priority", inc.priority, new)

    async def _set_title(self, u: Unit, inc: Incident, cmd: c.SetTitle, actor: Actor) -> Reply:
        return await self._field_change(u, inc, actor, "title", inc.title, cmd.title.strip())

    async def _set_summary(self, u: Unit, inc: Incident, cmd: c.SetSummary, actor: Actor) -> Reply:
        return await self._field_change(u, inc, actor, "summary", inc.summary, cmd.summary.strip())

    async def _field_change(
        self,
        u: Unit,
        inc: Incident,
        actor: Actor,
        name: str,
        old: str,
        new: str,
        *,
        announce: bool = False,
    ) -> Reply:
        if old == new:
            raise ServiceError(f"#{inc.number} {name} is already {new}")
        setattr(inc, name, new)
        shown_old, shown_new = (
            (old.upper(), new.upper()) if name in ("severity", "priority") else (old, new)
        )
        text = (
            f"{name.capitalize()} changed from {shown_old} to {shown_new}"
            if name in ("severity", "priority")
            else f"{name.capitalize()} set to: {new}"
        )
        await self._record(
            u,
            inc,
            kind=EntryKind.FIELD_CHANGE,
            text=text,
            actor=actor,
            announce=announce,
            data={"field": name, "from": old, "to": new},
        )
        return Reply(f"#{inc.number} {name} is now {shown_new}.", incident=inc.number)

    async def _assign(self, u: Unit, inc: Incident, cmd: c.AssignRole, actor: Actor) -> Reply:
        if cmd.role not in self.catalog.role_names:
            raise ServiceError(f'unknown role "{cmd.role}": use {_one_of(self.catalog.role_names)}')
        if inc.roles.get(cmd.role) == cmd.user:
            raise ServiceError(f"{cmd.user} is already {cmd.role} of #{inc.number}")
        old = inc.roles.get(cmd.role)
        inc.roles = {**inc.roles, cmd.role: cmd.user}
        text = f"{cmd.user} is now {cmd.role}" + (f" (was {old})" if old else "")
        await self._record(
            u,
            inc,
            kind=EntryKind.ROLE_CHANGE,
            text=text,
            actor=actor,
            data={"role": cmd.role, "from": old, "to": cmd.user, "invite": cmd.user},
        )
        return Reply(f"{cmd.user} is now {cmd.role} of #{inc.number}.", incident=inc.number)

    async def _set_field(self, u: Unit, inc: Incident, cmd: c.SetField, actor: Actor) -> Reply:
        itype = self._type(inc.type)
        definition = self._field(itype, cmd.field)
        value = coerce_field(definition, cmd.value)
        old = inc.custom_fields.get(definition.name)
        if old == value:
            raise ServiceError(f"#{inc.number} {definition.name} is already {cmd.value}")
        inc.custom_fields = {**inc.custom_fields, definition.name: value}
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        await self._record(
            u,
            inc,
            kind=EntryKind.FIELD_CHANGE,
            actor=actor,
            text=f"{definition.display} set to {shown}",
            data={"field": definition.name, "from": old, "to": value},
        )
        return Reply(f"#{inc.number} {definition.name} is now {shown}.", incident=inc.number)

    async def _status_update(
        self, u: Unit, inc: Incident, cmd: c.StatusUpdate, actor: Actor
    ) -> Reply:
        inc.last_update_at = self.clock.now()
        await self._record(
            u, inc, kind=EntryKind.STATUS_UPDATE, text=cmd.text, actor=actor, announce=True
        )
        return Reply(
            f"Status update for #{inc.number} recorded and announced.", incident=inc.number
        )

    async def _key_event(self, u: Unit, inc: Incident, cmd: c.AddKeyEvent, actor: Actor) -> Reply:
        await self._record(u, inc, kind=EntryKind.KEY_EVENT, text=cmd.text, actor=actor)
        return Reply(f"Key event added to #{inc.number}.", incident=inc.number)

    async def _note(self, u: Unit, inc: Incident, cmd: c.AddNote, actor: Actor) -> Reply:
        await self._record(u, inc, kind=EntryKind.MESSAGE, text=cmd.text, actor=actor)
        return Reply(f"Note added to the timeline of #{inc.number}.", incident=inc.number)

    async def _mirror_to(self, u: Unit, inc: Incident, cmd: c.MirrorTo, actor: Actor) -> Reply:
        if cmd.platform not in self.platforms:
            raise ServiceError(
                f'"{cmd.platform}" is not configured here: configured platforms are '
                f"{_one_of(self.platforms)}"
            )
        links = [link for link in await u.links(_id(inc)) if link.platform == cmd.platform]
        if any(link.state not in _GONE for link in links):
            raise ServiceError(f"#{inc.number} already has a {cmd.platform} channel")
        for link in links:  # a channel the platform refused: retire it, try a new one
            link.state = LinkState.ARCHIVED
        await self._add_link(u, inc, cmd.platform)
        await self._record(
            u, inc, kind=EntryKind.SYSTEM, actor=actor, text=f"Mirrored to {cmd.platform}"
        )
        return Reply(f"#{inc.number} now has a {cmd.platform} channel too.", incident=inc.number)

    async def _add_link(
        self,
        u: Unit,
        incident: Incident,
        platform: str,
        workspace: str = "",
        invite: Sequence[str] = (),
    ) -> None:
        """Queue a channel for `incident` on `platform`; later entries are mirrored there too."""
        now = self.clock.now()
        link = ChannelLink(
            incident_id=_id(incident),
            platform=platform,
            workspace=workspace,
            invite=list(invite),
            created_at=now,
        )
        await u.add(link)
        await u.add(_delivery(link, DeliveryAction.OPEN_CHANNEL, now))

    # --- action items -------------------------------------------------------------------

    async def _action_add(self, u: Unit, inc: Incident, cmd: c.ActionAdd, actor: Actor) -> Reply:
        now = self.clock.now()
        due = cmd.due.resolve(now) if cmd.due else None
        number = max((a.number for a in await u.action_items(_id(inc))), default=0) + 1
        item = ActionItem(
            incident_id=_id(inc),
            number=number,
            text=cmd.text,
            assignee=cmd.assignee,
            due_at=due,
            created_by=actor.ref,
            created_at=now,
            updated_at=now,
        )
        await u.add(item)
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"Action item added: {action_line(item, now)}",
            data={"action_item": number, "event": "added"},
        )
        return Reply(f"Action item {number} added to #{inc.number}.", incident=inc.number)

    async def _action_item(self, u: Unit, inc: Incident, number: int) -> ActionItem:
        item = await u.action_item(_id(inc), number)
        if item is None:
            raise ServiceError(f"#{inc.number} has no action item {number}")
        return item

    async def _action_done(self, u: Unit, inc: Incident, cmd: c.ActionDone, actor: Actor) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if item.status is not ActionStatus.OPEN:
            raise ServiceError(f"action item {item.number} is already {item.status.value}")
        now = self.clock.now()
        item.status, item.completed_at, item.updated_at = ActionStatus.DONE, now, now
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"Action item done: {action_line(item, now)}",
            data={"action_item": item.number, "event": "done"},
        )
        return Reply(f"Action item {item.number} of #{inc.number} is done.", incident=inc.number)

    async def _action_edit(self, u: Unit, inc: Incident, cmd: c.ActionEdit, actor: Actor) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        now = self.clock.now()
        if cmd.text:
            item.text = cmd.text
        if cmd.assignee:
            item.assignee = cmd.assignee
        if cmd.due:
            item.due_at = cmd.due.resolve(now)
        item.updated_at = now
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"Action item edited: {action_line(item, now)}",
            data={"action_item": item.number, "event": "edited"},
        )
        return Reply(f"Action item {item.number} of #{inc.number} updated.", incident=inc.number)

    # --- inbound chat events --------------------------------------------------------------

    async def record_thread_message(
        self,
        *,
        where: ChannelRef,
        actor: Actor,
        text: str,
        message_id: str,
        occurred_at: datetime,
    ) -> TimelineEntry | None:
        """Record a reply in an incident's timeline thread; None when it is not one (or known)."""
        async with self.store.unit() as u:
            link = await self._thread_link(u, where)
            if link is None:
                return None
            external = f"{where.channel_id}:{message_id}"
            if await u.entry_by_external(where.platform, external) is not None:
                return None
            incident = await u.incident_by_id(link.incident_id)
            assert incident is not None
            entry = await self._record(
                u,
                incident,
                kind=EntryKind.MESSAGE,
                text=text,
                actor=actor,
                occurred_at=occurred_at,
                external_id=external,
                origin_link=link.id,
            )
        self._notify()
        return entry

    async def edit_thread_message(
        self, *, where: ChannelRef, message_id: str, text: str
    ) -> TimelineEntry | None:
        """Follow an edit of a recorded thread message; None when it was never recorded."""
        async with self.store.unit() as u:
            found = await self._locked_entry(u, where.platform, f"{where.channel_id}:{message_id}")
            if found is None or found[1].text == text:
                return None
            incident, entry = found
            entry.text, entry.edited_at = text, self.clock.now()
            await self._refresh_only(u, incident)
        self._notify()
        return entry

    async def delete_thread_message(
        self, *, where: ChannelRef, message_id: str
    ) -> TimelineEntry | None:
        """Mark a recorded thread message deleted; None when it was never recorded."""
        async with self.store.unit() as u:
            found = await self._locked_entry(u, where.platform, f"{where.channel_id}:{message_id}")
            if found is None or found[1].deleted:
                return None
            incident, entry = found
            entry.deleted, entry.edited_at = True, self.clock.now()
            await self._refresh_only(u, incident)
        self._notify()
        return entry

    async def reaction_added(
        self,
        *,
        where: ChannelRef,
        actor: Actor,
        emoji: str,
        message_id: str,
        text: str,
        author: str,
        occurred_at: datetime,
    ) -> Reply | None:
        """The key-event emoji on a message in an incident channel records it as a key event.

        Idempotent: the same reaction applied twice records one key event.
        """
        if emoji != self.catalog.key_event_emoji:
            return None
        return await self.key_event_from_message(
            where=where,
            actor=actor,
            message_id=message_id,
            text=text,
            author=author,
            occurred_at=occurred_at,
        )

    async def key_event_from_message(
        self,
        *,
        where: ChannelRef,
        actor: Actor,
        message_id: str,
        text: str,
        author: str,
        occurred_at: datetime,
        incident_number: int | None = None,
    ) -> Reply | None:
        """Record a chat message as a key event at its own time ("Add to timeline").

        The incident is the one whose channel the message is in, or `incident_number`. None
        when there is none, or when the message is already a key event of this person's.
        """
        async with self.store.unit() as u:
            incident: Incident | None
            if incident_number is not None:
                incident = await self._resolve_incident(u, incident_number, where)
            else:
                incident = await u.incident_for_channel(where.platform, where.channel_id)
            if incident is None:
                return None
            external = f"key:{where.channel_id}:{message_id}"
            entry = await u.entry_by_external(where.platform, external)
            if entry is not None:
                reactors = list(entry.data.get("reactors", []))
                if actor.user_id in reactors and not entry.deleted:
                    return None
                entry.data = {**entry.data, "reactors": sorted({*reactors, actor.user_id})}
                if not entry.deleted:
                    return None
                entry.deleted = False
                await self._record(
                    u,
                    incident,
                    kind=EntryKind.SYSTEM,
                    actor=actor,
                    text=f"Key event restored: {text[:200]}",
                )
            else:
                await self._record(
                    u,
                    incident,
                    kind=EntryKind.KEY_EVENT,
                    text=text,
                    actor=actor,
                    author_name=author or actor.name,
                    occurred_at=occurred_at,
                    external_id=external,
                    data={
                        "reactors": [actor.user_id],
                        "via": "reaction",
                        "message_id": message_id,
                        "marked_by": actor.name,
                    },
                )
        self._notify()
        return Reply(f"Key event added to #{incident.number}.", incident=incident.number)

    async def reaction_removed(
        self, *, where: ChannelRef, actor: Actor, emoji: str, message_id: str
    ) -> Reply | None:
        """Removing the last key-event reaction from a message removes its key event."""
        if emoji != self.catalog.key_event_emoji:
            return None
        async with self.store.unit() as u:
            found = await self._locked_entry(
                u, where.platform, f"key:{where.channel_id}:{message_id}"
            )
            if found is None or found[1].deleted:
                return None
            incident, entry = found
            reactors = [r for r in entry.data.get("reactors", []) if r != actor.user_id]
            entry.data = {**entry.data, "reactors": reactors}
            if reactors:
                return None
            entry.deleted, entry.edited_at = True, self.clock.now()
            await self._record(
                u,
                incident,
                kind=EntryKind.SYSTEM,
                actor=actor,
                text=f"Key event removed: {entry.text[:200]}",
                data={"removed_entry": entry.id},
            )
        self._notify()
        return Reply(f"Key event removed from #{incident.number}.", incident=incident.number)

    async def _locked_entry(
        self, u: Unit, source: str, external_id: str
    ) -> tuple[Incident, TimelineEntry] | None:
        """An entry by its platform id, read after taking its incident's lock.

        Every change locks the incident first; reading the entry again under that lock means
        two people un-pinning at once both count, and lock order is the same everywhere.
        """
        entry = await u.entry_by_external(source, external_id)
        if entry is None:
            return None
        incident = await u.incident_by_id(entry.incident_id)
        assert incident is not None
        await u.refresh(entry)
        return incident, entry

    async def _thread_link(self, u: Unit, where: ChannelRef) -> ChannelLink | None:
        """The link whose timeline thread `where` is in."""
        if where.thread_id is None:
            return None
        incident = await u.incident_for_channel(where.platform, where.channel_id)
        if incident is None:
            return None
        for link in await u.links(_id(incident)):
            if link.platform == where.platform and link.thread_id == where.thread_id:
                return link
        return None

    # --- catalog checks -----------------------------------------------------------------

    def _type(self, name: str) -> IncidentType:
        itype = self.catalog.incident_type(name)
        if itype is None:
            raise ServiceError(
                f'unknown incident type "{name}": use {_one_of(self.catalog.type_names)}'
            )
        return itype

    def _severity(self, name: str) -> str:
        return _named("severity", name, self.catalog.severity_names)

    def _priority(self, name: str) -> str:
        return _named("priority", name, self.catalog.priority_names)

    def _field(self, itype: IncidentType, name: str) -> CustomField:
        definition = itype.field(name)
        if definition is None:
            names = [f.name for f in itype.fields]
            choices = f"use {_one_of(names)}" if names else "it has no custom fields"
            raise ServiceError(f'unknown field "{name}" for type {itype.name}: {choices}')
        return definition


def _suggestion_data(s: Suggestion | None) -> dict[str, Any]:
    """What the declare entry keeps of an AI suggestion: the model, endpoint and sources."""
    if s is None or not s.model:
        return {}
    return {
        "ai": {"model": s.model, "endpoint": s.endpoint, "sources": dict(s.sources), "note": s.note}
    }


def _delivery(
    link: ChannelLink, action: DeliveryAction, now: datetime, entry: TimelineEntry | None = None
) -> Delivery:
    """An outbox row: `action` for `link`, due now."""
    return Delivery(
        incident_id=link.incident_id,
        link_id=_id(link),
        action=action,
        entry_id=entry.id if entry else None,
        next_attempt_at=now,
        created_at=now,
    )


def _named(what: str, name: str, names: Sequence[str]) -> str:
    """`name` when the catalog has it; otherwise an error naming it and the accepted ones."""
    name = name.lower()
    if name not in names:
        raise ServiceError(f'unknown {what} "{name}": use {_one_of(names)}')
    return name


def _id(row: Incident | ChannelLink | TimelineEntry) -> int:
    assert row.id is not None, "row must be flushed before its id is used"
    return row.id


__all__ = ["SYSTEM", "IncidentService", "Reply", "ServiceError", "coerce_field"]
