"""What every area's use cases share: recording an entry with its deliveries, finding the
incident a command is about, and checking names against the catalog.

The use cases live in one module per area (bot/lifecycle.py, bot/timeline.py, bot/actions.py,
...), each a class listing the commands it answers in READS and CHANGES; `IncidentService`
(bot/service.py) combines them behind its one `handle` entry point.
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from bot import commands as c
from bot import reminders, workflows
from bot.catalog import (
    ANYONE,
    ANYONE_IF_NO_COMMANDER,
    DECLARER,
    Catalog,
    CustomField,
    FieldKind,
    IncidentType,
)
from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    EntryKind,
    Incident,
    LinkState,
    TimelineEntry,
)
from bot.ports import (
    Actor,
    ChannelRef,
    Clock,
    Store,
    Suggester,
    Summarizer,
    Unit,
)
from bot.render import Message

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


_CHAT_ACCOUNTS = frozenset({"slack", "discord"})  # platforms whose user ids the bot learns names of
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


class ServiceBase:
    """The state and helpers every area uses; see bot/service.py for how areas are combined."""

    # The commands an area answers, by command class -> method name. READS run as
    # method(command, actor, where); CHANGES run inside one transaction as
    # method(unit, incident, command, actor), with the incident locked.
    READS: ClassVar[dict[type[c.Command], str]] = {}
    CHANGES: ClassVar[dict[type[c.Command], str]] = {}

    store: Store
    catalog: Catalog
    suggester: Suggester
    summarizer: Summarizer
    clock: Clock
    platforms: tuple[str, ...]
    not_people: set[str]
    _notify: Callable[[], None]

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
        if actor.platform in _CHAT_ACCOUNTS and actor.user_id and actor.name:
            # So this account can be shown by name where it has no account (bot/people.py).
            await u.learn_person(actor.platform, actor.user_id, actor.name, now)
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
        if self.catalog.workflows or self.catalog.runbooks:
            await workflows.after_record(u, self.catalog, incident, entry, self._record, now)
        return entry

    record = _record  # job handlers (bot/jobs.py) record the same way

    async def _on_declared(self, u: Unit, incident: Incident, actor: Actor) -> None:
        """Called in the transaction that declares `incident` (paging hooks in here)."""

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


