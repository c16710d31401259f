"""The lifecycle of an incident: declare, status, severity and other fields, roles, type,
cancel, resolve and reopen."""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, ClassVar

from bot import commands as c
from bot import reminders
from bot.base import (
    _GONE,
    Reply,
    ServiceBase,
    ServiceError,
    _delivery,
    _id,
    _one_of,
    _title,
    coerce_field,
)
from bot.mirror import summary_for
from bot.models import (
    ActionStatus,
    DeliveryAction,
    EntryKind,
    Incident,
    LinkState,
    Status,
)
from bot.ports import (
    Actor,
    ChannelRef,
    Suggestion,
    Unit,
)
from bot.render import PAGE_SIZE, action_line, incident_line, paged

logger = logging.getLogger(__name__)


class Lifecycle(ServiceBase):
    """Declaring an incident and changing what it is."""

    READS: ClassVar[dict[type[c.Command], str]] = {
        c.Declare: "_declare_command",
        c.ListIncidents: "_list",
        c.Show: "_show",
        c.ShowReminders: "_reminders",
    }
    CHANGES: ClassVar[dict[type[c.Command], str]] = {
        c.SetStatus: "_set_status",
        c.SetSeverity: "_set_severity",
        c.SetPriority: "_set_priority",
        c.AssignRole: "_assign",
        c.Unassign: "_unassign",
        c.ChangeType: "_change_type",
        c.Cancel: "_cancel",
        c.SetField: "_set_field",
        c.SetTitle: "_set_title",
        c.SetSummary: "_set_summary",
        c.StatusUpdate: "_status_update",
        c.Acknowledge: "_ack",
        c.Resolve: "_resolve",
        c.Reopen: "_reopen",
        c.MirrorTo: "_mirror_to",
    }

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
        title = _title(title)
        fields = {}
        for name, raw in (custom_fields or {}).items():
            if raw in (None, "", []):
                continue
            definition = self._field(itype, name)
            fields[name] = coerce_field(definition, raw, not_people=self.not_people)
        if commander is not None:
            self._person(commander, "commander")
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
                # Until alerts are linked to incidents (their earliest start would be the
                # default), impact is known to start at the declare; /incident time corrects it.
                impact_started_at=now,
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
            await self._on_declared(u, incident, actor)
        self._notify()
        missing = [f.name for f in itype.fields if f.required and f.name not in fields]
        extra = f" Required before resolve: {', '.join(missing)}." if missing else ""
        return Reply(
            f"Declared incident #{number}: {title} ({itype.name} · {severity} · {priority}); "
            f"commander {lead}. Its channel is being created.{extra}",
            incident=number,
        )

    async def _list(self, cmd: c.ListIncidents, actor: Actor, where: ChannelRef) -> Reply:
        """Return one page (PAGE_SIZE, newest first) of the incidents matching the filters."""
        if cmd.severity is not None and self.catalog.severity(cmd.severity) is None:
            raise ServiceError(
                f'unknown filter "{cmd.severity}": use open, all, mine, type=<type>, '
                f"page <n> or a severity ({_one_of(self.catalog.severity_names)})"
            )
        if cmd.type is not None and self.catalog.incident_type(cmd.type) is None:
            raise ServiceError(
                f'unknown incident type "{cmd.type}": use {_one_of(self.catalog.type_names)}'
            )
        async with self.store.unit() as u:
            incidents, total = await u.incident_list_page(
                include_closed=cmd.include_closed,
                limit=PAGE_SIZE,
                offset=(cmd.page - 1) * PAGE_SIZE,
                severity=cmd.severity,
                incident_type=cmd.type,
                person=actor.ref if cmd.mine else None,
                roles=self.catalog.role_names,
            )
        shown = [
            *([cmd.severity] if cmd.severity else []),
            *(["mine"] if cmd.mine else []),
            *([f"type={cmd.type}"] if cmd.type else []),
        ]
        what = ("incidents" if cmd.include_closed else "open incidents") + (
            f" ({' '.join(shown)})" if shown else ""
        )
        if not incidents:
            if total:
                return Reply(f"No page {cmd.page}: {total} {what} fill {_pages(total)} page(s).")
            if cmd.include_closed and not shown:
                return Reply("No incidents yet.")
            return Reply(f"No {what}.")
        first = (cmd.page - 1) * PAGE_SIZE + 1
        head = f"All {what}" if cmd.include_closed else f"{what[0].upper()}{what[1:]}"
        if total > len(incidents):
            head += f", {first}-{first + len(incidents) - 1} of {total} (newest first)"
        head += ":"
        more = total - first + 1 - len(incidents)
        scope = ["all"] if cmd.include_closed else []
        command = " ".join(["/incident list", *scope, *shown, f"page {cmd.page + 1}"])
        foot = f"{more} more: {command}" if more > 0 else None
        return Reply(paged(head, [incident_line(i) for i in incidents], foot))

    async def _show(self, cmd: c.Show, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            message = await summary_for(u, incident, self.catalog, self.clock.now())
        return Reply(message.text, message=message, incident=incident.number)

    async def _reminders(self, cmd: c.ShowReminders, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            text = await reminders.describe(u, self.catalog, incident, self.clock.now())
        return Reply(text, incident=incident.number)

    async def _set_status(self, u: Unit, inc: Incident, cmd: c.SetStatus, actor: Actor) -> Reply:
        if cmd.status == Status.CANCELLED.value:
            raise ServiceError(
                f"to cancel #{inc.number}, use /incident cancel <reason> (it archives the channel)"
            )
        if cmd.status not in self.catalog.status_names:
            raise ServiceError(
                f'unknown status "{cmd.status}": use {_one_of(self.catalog.status_names)}'
            )
        new = Status(cmd.status)
        if new is Status.RESOLVED:
            return await self._resolve(u, inc, c.Resolve(), actor)
        if inc.status is Status.CANCELLED and new is Status.CLOSED:
            raise ServiceError(f"#{inc.number} is cancelled: reopen it before closing it")
        if not inc.status.is_open and new.is_open:
            return await self._reopen(u, inc, c.Reopen(), actor, to=new, explicit=True)
        if new is Status.CLOSED and inc.status.is_open:
            self._check_required(inc, "closed")
        return await self._move(u, inc, new, actor)

    async def _move(
        self, u: Unit, inc: Incident, new: Status, actor: Actor, note: str = "", after: str = ""
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
        text += after
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
        if not inc.status.is_open:
            raise ServiceError(f"#{inc.number} is {inc.status.value}: nothing to acknowledge")
        if inc.status is not Status.TRIGGERED:
            raise ServiceError(f"#{inc.number} is already acknowledged (status {inc.status.value})")
        await self._move(u, inc, Status.ACKNOWLEDGED, actor)
        commander = inc.commander
        if commander is None:
            # Someone has to run it: whoever picks up a commanderless incident does.
            await self._set_role(u, inc, actor, "commander", actor.ref)
            return Reply(
                f"Acknowledged #{inc.number}; you are its commander now.", incident=inc.number
            )
        if c.person_key(commander) == c.person_key(actor.ref):
            return Reply(f"Acknowledged #{inc.number}; you are the commander.", incident=inc.number)
        return Reply(
            f"Acknowledged #{inc.number}; {commander} is the commander.", incident=inc.number
        )

    async def _resolve(self, u: Unit, inc: Incident, cmd: c.Resolve, actor: Actor) -> Reply:
        if not inc.status.is_open:
            raise ServiceError(f"#{inc.number} is already {inc.status.value}")
        self._check_required(inc, "resolved")
        now = self.clock.now()
        still_open = [
            action_line(a, now, self.catalog.tz)
            for a in await u.action_items(_id(inc))
            if a.status is ActionStatus.OPEN
        ]
        listed = "\nOpen action items:\n" + "\n".join(still_open) if still_open else ""
        await self._move(u, inc, Status.RESOLVED, actor, note=cmd.text, after=listed)
        return Reply(f"Resolved #{inc.number}.{listed}", incident=inc.number)

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
        explicit: bool = False,
    ) -> Reply:
        if inc.status.is_open:
            raise ServiceError(f"#{inc.number} is not resolved (status {inc.status.value})")
        old = inc.status
        channels = ""
        if old is Status.CANCELLED:
            if not explicit:
                to = await self._status_before_cancel(u, inc)
            if await self._reopen_channels(u, inc):
                channels = " Its channel was archived: a new one is being created."
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
        return Reply(f"Reopened #{inc.number}; it is {to.value}.{channels}", incident=inc.number)

    async def _status_before_cancel(self, u: Unit, inc: Incident) -> Status:
        """Undoing a cancel goes back to where the incident was (investigating if unknown)."""
        for entry in reversed(await u.timeline(_id(inc))):
            if entry.kind is EntryKind.STATUS_CHANGE and entry.data.get("to") == "cancelled":
                before = entry.data.get("from")
                if before in {s.value for s in Status if s.is_open}:
                    return Status(before)
                break
        return Status.INVESTIGATING

    async def _reopen_channels(self, u: Unit, inc: Incident) -> bool:
        """A new channel on each platform whose channel a cancel archived (an archived channel
        cannot be written in); True when one was queued."""
        links = await u.links(_id(inc))
        live = {link.platform for link in links if link.state not in _GONE}
        archived = {
            link.platform: link.workspace for link in links if link.state is LinkState.ARCHIVED
        }
        people = list(dict.fromkeys([inc.declared_by, *inc.roles.values()]))
        wanted = [p for p in archived if p not in live and p in self.platforms]
        for platform in wanted:
            await self._add_link(u, inc, platform, archived[platform], people)
        return bool(wanted)

    async def _cancel(self, u: Unit, inc: Incident, cmd: c.Cancel, actor: Actor) -> Reply:
        if not inc.status.is_open:
            raise ServiceError(
                f"#{inc.number} is already cancelled"
                if inc.status is Status.CANCELLED
                else f"#{inc.number} is {inc.status.value}: only an open incident can be "
                "cancelled (reopen it first)"
            )
        self._check_allowed(inc, actor, "cancel", "cancel")
        old = inc.status
        inc.status = Status.CANCELLED
        await self._record(
            u,
            inc,
            kind=EntryKind.STATUS_CHANGE,
            text=f"Incident cancelled (was {old.value}): {cmd.reason}",
            actor=actor,
            announce=True,
            data={"from": old.value, "to": Status.CANCELLED.value},
        )
        # Queued after the entry's own posts, so each channel shows why before it is archived;
        # marked archived now, so nothing later is sent there and a reopen opens a new one.
        now = self.clock.now()
        outbox = []
        for link in await u.links(_id(inc)):
            if link.state in _GONE:
                continue
            link.state = LinkState.ARCHIVED
            outbox.append(_delivery(link, DeliveryAction.ARCHIVE_CHANNEL, now))
        await u.queue(outbox)
        return Reply(
            f"Cancelled #{inc.number}: {cmd.reason}. Its channel is being archived; "
            f"/incident #{inc.number} reopen undoes this.",
            incident=inc.number,
        )

    async def _change_type(self, u: Unit, inc: Incident, cmd: c.ChangeType, actor: Actor) -> Reply:
        new = self._type(cmd.type)
        if new.name == inc.type:
            raise ServiceError(f"#{inc.number} is already of type {new.name}")
        self._check_allowed(inc, actor, "type", "change the type of")
        if new.private and not inc.private:
            public = [link for link in await u.links(_id(inc)) if link.state not in _GONE]
            if public:
                raise ServiceError(
                    f"#{inc.number} cannot become {new.name}: {new.name} incidents are private "
                    f"and #{inc.number} has a public channel. Declare a new incident with "
                    f"/incident declare type={new.name} instead."
                )
        fields: dict[str, Any] = {}
        for name, value in inc.custom_fields.items():
            definition = new.field(name)
            if definition is None:
                fields[name] = value  # kept on the record, shown as extra
                continue
            try:
                fields[name] = coerce_field(definition, value, not_people=self.not_people)
            except ServiceError as exc:
                raise ServiceError(f"#{inc.number} cannot become {new.name}: {exc}") from None
        old = inc.type
        inc.type, inc.custom_fields = new.name, fields
        if new.private:
            inc.private = True  # a private type's channel is private (checked above)
        extra = [name for name in fields if new.field(name) is None]
        kept = f" (kept as extra: {', '.join(extra)})" if extra else ""
        await self._record(
            u,
            inc,
            kind=EntryKind.FIELD_CHANGE,
            text=f"Type changed from {old} to {new.name}{kept}",
            actor=actor,
            data={"field": "type", "from": old, "to": new.name, "extra": extra},
        )
        missing = [f.name for f in new.fields if f.required and f.name not in fields]
        required = f" Required before resolve: {', '.join(missing)}." if missing else ""
        return Reply(
            f"#{inc.number} is now of type {new.name}{kept}.{required}", incident=inc.number
        )

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
        return await self._field_change(u, inc, actor, "title", inc.title, _title(cmd.title))

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
        self._role(cmd.role)
        self._person(cmd.user, cmd.role)
        if inc.roles.get(cmd.role) == cmd.user:
            raise ServiceError(f"{cmd.user} is already {cmd.role} of #{inc.number}")
        await self._set_role(u, inc, actor, cmd.role, cmd.user)
        return Reply(f"{cmd.user} is now {cmd.role} of #{inc.number}.", incident=inc.number)

    async def _set_role(self, u: Unit, inc: Incident, actor: Actor, role: str, user: str) -> None:
        old = inc.roles.get(role)
        inc.roles = {**inc.roles, role: user}
        text = f"{user} is now {role}" + (f" (was {old})" if old else "")
        await self._record(
            u,
            inc,
            kind=EntryKind.ROLE_CHANGE,
            text=text,
            actor=actor,
            data={"role": role, "from": old, "to": user, "invite": user},
        )

    async def _unassign(self, u: Unit, inc: Incident, cmd: c.Unassign, actor: Actor) -> Reply:
        self._role(cmd.role)
        old = inc.roles.get(cmd.role)
        if old is None:
            raise ServiceError(f"#{inc.number} has no {cmd.role}")
        inc.roles = {role: who for role, who in inc.roles.items() if role != cmd.role}
        await self._record(
            u,
            inc,
            kind=EntryKind.ROLE_CHANGE,
            text=f"{old} is no longer {cmd.role}",
            actor=actor,
            data={"role": cmd.role, "from": old, "to": None},
        )
        return Reply(f"{old} is no longer {cmd.role} of #{inc.number}.", incident=inc.number)

    async def _set_field(self, u: Unit, inc: Incident, cmd: c.SetField, actor: Actor) -> Reply:
        itype = self._type(inc.type)
        definition = self._field(itype, cmd.field)
        value = coerce_field(definition, cmd.value, not_people=self.not_people)
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


def _suggestion_data(s: Suggestion | None) -> dict[str, Any]:
    """What the declare entry keeps of an AI suggestion: the model, endpoint and sources."""
    if s is None or not s.model:
        return {}
    return {
        "ai": {"model": s.model, "endpoint": s.endpoint, "sources": dict(s.sources), "note": s.note}
    }


def _pages(total: int) -> int:
    return -(-total // PAGE_SIZE)
