"""IncidentService: one async method per use case.

Every change is written together with its timeline entry and the deliveries that mirror it to
each linked channel, in one transaction. The service never talks to chat itself; it returns a
`Reply` for the person who acted and wakes the mirror.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from bot import commands as c
from bot.ai import PlainSummarizer
from bot.catalog import (
    ANYONE,
    ANYONE_IF_NO_COMMANDER,
    DECLARER,
    Catalog,
    CustomField,
    FieldKind,
    IncidentType,
)
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
from bot.render import Message, action_line, entry_line, incident_line, short_id

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


TITLE_LIMIT = 200  # characters; longer titles do not fit a channel topic or an announcement
# Mentions that are never a person: the bot itself in the console (adapters add their bot's id).
NOT_PEOPLE = ("@opsroom",)


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


def coerce_field(field: CustomField, raw: Any, *, not_people: Collection[str] = ()) -> Any:
    """Return `raw` as the value `field` stores, or raise ServiceError naming the bad value.

    `not_people` are mentions (as `commands.person_key` writes them) a user field refuses.
    """
    if field.kind is FieldKind.NUMBER:
        try:
            number = float(str(raw).replace(",", ""))
        except ValueError:
            raise ServiceError(f'{field.name} must be a number, not "{raw}"') from None
        if not math.isfinite(number):
            raise ServiceError(f'{field.name} must be a finite number, not "{raw}"')
        if field.min is not None and number < field.min:
            least = int(field.min) if field.min.is_integer() else field.min
            raise ServiceError(f'{field.name} must be at least {least}, not "{raw}"')
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
        who = str(raw).strip()
        if not c.is_mention(who):
            raise ServiceError(f"{field.name} must be a person: {c.not_a_person(who)}")
        if c.person_key(who) in not_people:
            raise ServiceError(f'{field.name} must be a person, not the bot ("{who}")')
        return who
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
        not_people: Iterable[str] = NOT_PEOPLE,
    ) -> None:
        self.store = store
        self.not_people: set[str] = set()
        self.refuse_mentions(*not_people)
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
        }
        self._changes: dict[
            type[c.Command], Callable[[Unit, Incident, Any, Actor], Awaitable[Reply]]
        ] = {
            c.SetStatus: self._set_status,
            c.SetSeverity: self._set_severity,
            c.SetPriority: self._set_priority,
            c.AssignRole: self._assign,
            c.Unassign: self._unassign,
            c.ChangeType: self._change_type,
            c.Cancel: self._cancel,
            c.ActionReopen: self._action_reopen,
            c.ActionCancel: self._action_cancel,
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

    def refuse_mentions(self, *mentions: str) -> None:
        """Mentions that are not people (the bot's own, once an adapter knows it): refused as
        assignee, role holder and user field value."""
        self.not_people.update(c.person_key(m) for m in mentions if m)

    def _person(self, who: str, what: str) -> str:
        """`who` when it is one person; otherwise an error saying why not."""
        if not c.is_mention(who):
            raise ServiceError(f"{what} must be a person: {c.not_a_person(who)}")
        if c.person_key(who) in self.not_people:
            raise ServiceError(f'{what} must be a person, not the bot ("{who}")')
        return who

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

    async def handle_together(
        self, commands: Sequence[c.Command], *, actor: Actor, where: ChannelRef
    ) -> tuple[Reply, int | None]:
        """Run changes in one transaction, all or none (an API PATCH); returns the last reply,
        or the first refusal with the index of the command refused (nothing is then kept)."""
        replies: list[Reply] = []
        try:
            async with self.store.unit() as u:
                for command in commands:
                    change = self._changes.get(type(command))
                    if change is None:
                        raise ServiceError(f"{type(command).__name__} is not a change")
                    incident = await self._resolve_incident(u, command.incident, where)
                    replies.append(await change(u, incident, command, actor))
        except ServiceError as exc:  # the unit rolled back: nothing of the batch was kept
            return Reply(str(exc), ok=False), len(replies)
        self._notify()
        return (replies[-1] if replies else Reply("Nothing to change.")), None

    def _not_configured(self, command: c.Command) -> Reply:
        what = {
            c.RunbookList: "Runbooks arrive",
            c.RunbookRun: "Runbooks arrive",
            c.RunbookStatus: "Runbooks arrive",
            c.Page: "Paging arrives",
            c.Postmortem: "Postmortems arrive",
        }.get(type(command), "This command arrives")
        return Reply(f"{what} in a later version of Opsroom; nothing was done.", ok=False)

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
        return entry

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
            detail = c.DETAILS.get(cmd.topic, "").replace("{timezone}", self.catalog.timezone)
            return Reply(f"Usage: {c.USAGE[cmd.topic]}" + (f"\n{detail}" if detail else ""))
        return Reply(c.HELP_TEXT)

    async def _timeline(self, cmd: c.ShowTimeline, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            entries = await u.timeline(_id(incident), key_only=cmd.key_only)
        what = "Key events" if cmd.key_only else "Timeline"
        if not entries:
            return Reply(f"{what} of #{incident.number}: nothing yet.", incident=incident.number)
        lines = [f"{what} of #{incident.number} {incident.title}:"]
        now, tz = self.clock.now(), self.catalog.tz
        lines += [entry_line(e, now, tz) for e in entries]
        return Reply("\n".join(lines), incident=incident.number)

    async def _catchup(self, cmd: c.CatchUp, actor: Actor, where: ChannelRef) -> Reply:
        """Summarise the timeline so far; returns text whose every citation is a real entry."""
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            entries = await u.timeline(_id(incident))
        itype = self.catalog.incident_type(incident.type)
        # A type with AI off (security by default) never has its timeline sent to a model.
        summarizer = self.summarizer if itype is None or itype.ai else PlainSummarizer()
        text, removed = await summarizer.summarize(
            entries, incident=incident, now=self.clock.now(), tz=self.catalog.tz
        )
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
        lines = [f"Action items of #{incident.number}:"]
        lines += [action_line(a, now, self.catalog.tz) for a in items]
        return Reply("\n".join(lines), incident=incident.number)

    # --- changes ------------------------------------------------------------------------

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
            action_line(a, now)
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
        if cmd.assignee:
            self._person(cmd.assignee, "the assignee")
        now = self.clock.now()
        due = self._due(cmd.due, now) if cmd.due else None
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
            text=f"Action item added: {action_line(item, now, self.catalog.tz)}",
            data={"action_item": number, "event": "added"},
        )
        return Reply(f"Action item {number} added to #{inc.number}.", incident=inc.number)

    def _due(self, spec: c.DueSpec, now: datetime) -> datetime:
        """The moment `spec` means now, read in the catalog's time zone; refused when past."""
        try:
            return spec.resolve(now, self.catalog.tz)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None

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
            text=f"Action item done: {action_line(item, now, self.catalog.tz)}",
            data={"action_item": item.number, "event": "done"},
        )
        return Reply(f"Action item {item.number} of #{inc.number} is done.", incident=inc.number)

    async def _action_reopen(
        self, u: Unit, inc: Incident, cmd: c.ActionReopen, actor: Actor
    ) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if item.status is ActionStatus.OPEN:
            raise ServiceError(f"action item {item.number} is already open")
        now = self.clock.now()
        was = item.status
        item.status, item.completed_at, item.updated_at = ActionStatus.OPEN, None, now
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"Action item reopened (was {was.value}): {action_line(item, now)}",
            data={"action_item": item.number, "event": "reopened"},
        )
        return Reply(
            f"Action item {item.number} of #{inc.number} is open again.", incident=inc.number
        )

    async def _action_cancel(
        self, u: Unit, inc: Incident, cmd: c.ActionCancel, actor: Actor
    ) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if item.status is not ActionStatus.OPEN:
            raise ServiceError(f"action item {item.number} is already {item.status.value}")
        now = self.clock.now()
        item.status, item.updated_at = ActionStatus.CANCELLED, now
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"Action item cancelled: {action_line(item, now)}",
            data={"action_item": item.number, "event": "cancelled"},
        )
        return Reply(
            f"Action item {item.number} of #{inc.number} is cancelled "
            f"(/incident action reopen {item.number} undoes this).",
            incident=inc.number,
        )

    async def _action_edit(self, u: Unit, inc: Incident, cmd: c.ActionEdit, actor: Actor) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if cmd.assignee:
            self._person(cmd.assignee, "the assignee")
        now = self.clock.now()
        if cmd.text:
            item.text = cmd.text
        if cmd.assignee:
            item.assignee = cmd.assignee
        if cmd.due:
            item.due_at = self._due(cmd.due, now)
        item.updated_at = now
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"Action item edited: {action_line(item, now, self.catalog.tz)}",
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
        when there is none, or when the message is already a key event of this person's. A
        post of the bot's that shows a timeline entry records that entry's text with a
        reference to it (`data["ref_entry"]`); the pinned summary and the timeline thread's
        root are refused (ok=False) and nothing is recorded.
        """
        async with self.store.unit() as u:
            incident: Incident | None
            if incident_number is not None:
                incident = await self._resolve_incident(u, incident_number, where)
            else:
                incident = await u.incident_for_channel(where.platform, where.channel_id)
            if incident is None:
                return None
            link = next(
                (
                    link
                    for link in await u.links(_id(incident))
                    if link.platform == where.platform and link.channel_id == where.channel_id
                ),
                None,
            )
            ref: TimelineEntry | None = None
            if link is not None:
                refused = _not_a_key_event(link, message_id)
                if refused:
                    return Reply(refused, ok=False, incident=incident.number)
                # One of our own posts: the key event is the entry it shows, not its rendering.
                ref = await u.posted_entry(_id(link), message_id)
                if ref is not None and ref.kind is EntryKind.KEY_EVENT:
                    return Reply(
                        f"That post is key event {short_id(ref.id)} of #{incident.number} "
                        "already; nothing added.",
                        ok=False,
                        incident=incident.number,
                    )
                if ref is not None:
                    text, occurred_at = ref.text, ref.occurred_at
                    author = ref.author_name or "Opsroom"
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
                data: dict[str, Any] = {
                    "reactors": [actor.user_id],
                    "via": "reaction",
                    "message_id": message_id,
                    "marked_by": actor.name,
                }
                if ref is not None:
                    data["ref_entry"] = ref.id
                await self._record(
                    u,
                    incident,
                    kind=EntryKind.KEY_EVENT,
                    text=text,
                    actor=actor,
                    author_name=author or actor.name,
                    occurred_at=occurred_at,
                    external_id=external,
                    data=data,
                )
        self._notify()
        marked = f" (it records {short_id(ref.id)})" if ref is not None else ""
        return Reply(f"Key event added to #{incident.number}{marked}.", incident=incident.number)

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

    def _role(self, name: str) -> str:
        if name not in self.catalog.role_names:
            raise ServiceError(f'unknown role "{name}": use {_one_of(self.catalog.role_names)}')
        return name

    def _check_allowed(self, inc: Incident, actor: Actor, action: str, doing: str) -> None:
        """Raise unless the catalog's `permissions.<action>` lets `actor` do it to `inc`."""
        allowed: list[str] = getattr(self.catalog.permissions, action)
        me = c.person_key(actor.ref)
        for who in allowed:
            if who == ANYONE or (who == ANYONE_IF_NO_COMMANDER and inc.commander is None):
                return
            holder = inc.declared_by if who == DECLARER else inc.roles.get(who)
            if holder and c.person_key(holder) == me:
                return
        holders: dict[str, list[str]] = {}  # one person may be commander and declarer
        for who in allowed:
            if who == ANYONE_IF_NO_COMMANDER:
                continue
            holder = inc.declared_by if who == DECLARER else inc.roles.get(who)
            holders.setdefault(holder or "nobody now", []).append(who)
        people = [f"the {' and '.join(whos)} ({holder})" for holder, whos in holders.items()]
        also = ""
        if ANYONE_IF_NO_COMMANDER in allowed:
            also = " (anyone may while it has no commander)"
        if not people:
            raise ServiceError(f"Nobody may {doing} #{inc.number} while it has a commander.")
        raise ServiceError(f"Only {_one_of(people)} may {doing} #{inc.number}{also}.")

    def _field(self, itype: IncidentType, name: str) -> CustomField:
        definition = itype.field(name)
        if definition is None:
            names = [f.name for f in itype.fields]
            choices = f"use {_one_of(names)}" if names else "it has no custom fields"
            raise ServiceError(f'unknown field "{name}" for type {itype.name}: {choices}')
        return definition


def _not_a_key_event(link: ChannelLink, message_id: str) -> str | None:
    """Why a 📌 on `message_id` records nothing: the pinned summary and the timeline thread's
    root message are the bot's frame around the timeline, not events in it. None otherwise."""
    if message_id == link.summary_message_id:
        return (
            "The pinned summary is not a key event (it shows the incident as it stands); "
            "📌 a message or a timeline post, or use /incident event <text>."
        )
    # On Slack and Discord the thread is addressed by its root message's id.
    if message_id in (link.timeline_message_id, link.thread_id):
        return (
            "The timeline thread's first message is not a key event; 📌 a message or a "
            "timeline post, or use /incident event <text>."
        )
    return None


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
    """`name` when the catalog has it, or the one name a bare number stands for ("1" is sev1
    among sev1..sev4, p1 among p1..p4); otherwise an error naming it and the accepted ones."""
    name = name.lower()
    if name in names:
        return name
    if name.isascii() and name.isdigit() and len(name) <= 3:
        numbered = [n for n in names if re.fullmatch(rf"[a-z_-]*?0*{int(name)}", n)]
        if len(numbered) == 1:
            return numbered[0]
    raise ServiceError(f'unknown {what} "{name}": use {_one_of(names)}')


def _title(title: str) -> str:
    """A title stripped and checked: not empty, at most TITLE_LIMIT characters."""
    title = title.strip()
    if not title:
        raise ServiceError("the title must not be empty")
    if len(title) > TITLE_LIMIT:
        raise ServiceError(
            f"the title is {len(title)} characters; the limit is {TITLE_LIMIT} "
            "(put the details in the summary)"
        )
    return title


def _id(row: Incident | ChannelLink | TimelineEntry) -> int:
    assert row.id is not None, "row must be flushed before its id is used"
    return row.id


__all__ = ["SYSTEM", "IncidentService", "Reply", "ServiceError", "coerce_field"]
