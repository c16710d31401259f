"""SqlStore: the `Store` port on SQLAlchemy async sessions (SQLite or PostgreSQL)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    String,
    and_,
    bindparam,
    cast,
    delete,
    exists,
    func,
    insert,
    or_,
    text,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased, make_transient_to_detached
from sqlmodel import col, select

from bot.models import (
    OPEN_STATUS_SQL,
    ActionItem,
    ActionStatus,
    Alert,
    ChannelLink,
    Delivery,
    DeliveryAction,
    DeliveryState,
    EntryKind,
    Escalation,
    InboundEvent,
    Incident,
    IncidentCounter,
    Job,
    JobState,
    Lease,
    Notice,
    OncallOverride,
    Person,
    Postmortem,
    RunbookRun,
    RunState,
    Status,
    TimelineEntry,
)
from bot.ports import Finished, LeaseTake
from storage import claims
from storage.claims import claim
from storage.reads import ReadQueries

# The lookups made for every command and every delivery, built once. Building a select and
# computing its cache key costs about as much Python time as running it; recording a timeline
# entry got ~15% faster with these prebuilt (see bench/timeline.py).
# The incident whose channel or thread this is, with all its links, in one round trip: the
# links are what recording an entry needs next.
# The channel, else the thread: two index lookups (uq_link_channel, ix_link_thread); an OR of
# the two columns would scan every link.
_OWNER = func.coalesce(
    select(col(ChannelLink.incident_id))
    .where(
        col(ChannelLink.platform) == bindparam("platform"),
        col(ChannelLink.channel_id) == bindparam("channel_id"),
    )
    .limit(1)
    .scalar_subquery(),
    select(col(ChannelLink.incident_id))
    .where(
        col(ChannelLink.platform) == bindparam("platform"),
        col(ChannelLink.thread_id) == bindparam("channel_id"),
    )
    .limit(1)
    .scalar_subquery(),
)
_INCIDENT_FOR_CHANNEL = (
    select(Incident, ChannelLink)
    .join(ChannelLink, col(ChannelLink.incident_id) == col(Incident.id))
    .where(col(Incident.id) == _OWNER)
    .order_by(col(ChannelLink.id))
    .with_for_update(of=Incident)  # see SqlUnit.incident
)
_LINKS = (
    select(ChannelLink)
    .where(col(ChannelLink.incident_id) == bindparam("incident_id"))
    .order_by(col(ChannelLink.id))
)
# The first rows of every delivery queue: one queue per channel link, with its announcements
# in a queue of their own. A window, not a global LIMIT, so a channel with thousands of rows
# waiting (a long outage) can never hide another incident's deliveries.
# The pending rows come from the partial index ix_delivery_queue_pending alone; selecting every
# column in the window (instead of joining back) never touches the sent rows.
_PENDING = col(Delivery.state) == DeliveryState.PENDING
_QUEUE = (col(Delivery.link_id), col(Delivery.action) == DeliveryAction.ANNOUNCE)
_QUEUE_RANK = (
    select(
        Delivery,
        func.row_number().over(partition_by=_QUEUE, order_by=col(Delivery.id)).label("rank"),
    )
    .where(_PENDING)
    .subquery()
)
_RANKED = aliased(Delivery, _QUEUE_RANK)
_PENDING_DELIVERIES = (
    select(_RANKED)
    .where(_QUEUE_RANK.c.rank <= bindparam("per_queue"))
    .order_by(_QUEUE_RANK.c.id)
)
# When the soonest queue head is due: a queue waits on its head, so only heads count.
_NEXT_DUE = select(func.min(col(Delivery.next_attempt_at))).where(
    col(Delivery.id).in_(select(func.min(col(Delivery.id))).where(_PENDING).group_by(*_QUEUE))
)
_ANY_PENDING = select(exists().where(_PENDING))
_LATER_SUMMARY_REFRESH = select(
    exists().where(
        col(Delivery.link_id) == bindparam("link_id"),
        col(Delivery.action) == DeliveryAction.REFRESH_SUMMARY,
        col(Delivery.state) == DeliveryState.PENDING,
        col(Delivery.id) > bindparam("delivery_id"),
    )
)
# A delivery with everything sending it needs, in one round trip.
_TO_SEND = (
    select(Delivery, ChannelLink, Incident, TimelineEntry)
    .join(ChannelLink, col(ChannelLink.id) == col(Delivery.link_id))
    .join(Incident, col(Incident.id) == col(Delivery.incident_id))
    .outerjoin(TimelineEntry, col(TimelineEntry.id) == col(Delivery.entry_id))
    .where(col(Delivery.id).in_(bindparam("ids", expanding=True)), _PENDING)
    .order_by(col(Delivery.id))
)
_DELIVERY = Delivery.__table__  # type: ignore[attr-defined]
_FINISH = (
    _DELIVERY.update()
    .where(_DELIVERY.c.id == bindparam("did"))
    .values(state=bindparam("st"), message_id=bindparam("mid"), last_error=bindparam("note"),
            sent_at=bindparam("at"), attempts=_DELIVERY.c.attempts + 1)
)
# The same UPDATE for PostgreSQL, run on its own (autocommit: one round trip, no BEGIN and
# COMMIT), turning `synchronous_commit` off for its own transaction: set_config(..., true) is
# local to the statement's implicit transaction and still in force when that commits (the row is
# found by its key first; the condition runs for the row found). SqlStore.record_outcomes says
# what that costs and why.
_FINISH_NO_FLUSH_WAIT = _FINISH.where(
    func.set_config("synchronous_commit", "off", True).is_not(None)
)


class SqlUnit(ReadQueries):
    """One transaction on one session; implements `bot.ports.Unit`."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._links: dict[int, list[ChannelLink]] = {}  # per incident, read once per unit

    async def add(self, obj: Any) -> None:
        if isinstance(obj, ChannelLink):
            self._links.pop(obj.incident_id, None)
        self.session.add(obj)
        await self.session.flush()

    async def refresh(self, row: Any) -> None:
        await self.session.refresh(row)

    async def append(self, entry: TimelineEntry) -> None:
        # A Core INSERT: the timeline is append-only, so the ORM's change tracking buys nothing.
        result = await self.session.execute(_APPEND_ENTRY, entry.model_dump(exclude={"id"}))
        entry.id = result.scalar_one()

    async def queue(self, deliveries: Sequence[Delivery]) -> None:
        if not deliveries:
            return
        # One multi-row INSERT; the ORM would send one per row to fetch each new id.
        rows = [d.model_dump(exclude={"id"}) for d in deliveries]
        await self.session.execute(insert(Delivery), rows)

    async def next_incident_number(self) -> int:
        result = await self.session.execute(
            update(IncidentCounter)
            .where(col(IncidentCounter.id) == 1)
            .values(value=col(IncidentCounter.value) + 1)
            .returning(col(IncidentCounter.value))
        )
        return int(result.scalar_one())

    # Incidents are read FOR UPDATE: a change reads, checks and writes the row, and two changes
    # at once (two people, two platforms, two processes) must not overwrite each other. On
    # SQLite the store's write queue already runs one unit at a time (FOR UPDATE is omitted).
    async def incident(self, number: int) -> Incident | None:
        result = await self.session.execute(
            select(Incident).where(col(Incident.number) == number).with_for_update()
        )
        return result.scalar_one_or_none()

    async def incident_by_id(self, incident_id: int) -> Incident | None:
        return await self.session.get(Incident, incident_id, with_for_update=True)

    async def incident_for_channel(self, platform: str, channel_id: str) -> Incident | None:
        rows = (
            await self.session.execute(
                _INCIDENT_FOR_CHANNEL, {"platform": platform, "channel_id": channel_id}
            )
        ).all()
        if not rows:
            return None
        incident = rows[0][0]
        assert incident.id is not None
        self._links[incident.id] = [link for _, link in rows]
        return incident

    async def incidents(self, *, include_closed: bool) -> list[Incident]:
        query = select(Incident).order_by(col(Incident.number).desc())
        if not include_closed:
            query = query.where(col(Incident.status).not_in([s for s in Status if not s.is_open]))
        return list((await self.session.execute(query)).scalars())

    async def incident_list_page(
        self,
        *,
        include_closed: bool,
        limit: int,
        offset: int = 0,
        severity: str | None = None,
        incident_type: str | None = None,
        person: str | None = None,
        roles: Sequence[str] = (),
    ) -> tuple[list[Incident], int]:
        where: list[Any] = []
        if not include_closed:
            where.append(text(OPEN_STATUS_SQL))  # as ix_incident_open_number says it
        if severity is not None:
            where.append(col(Incident.severity) == severity)
        if incident_type is not None:
            where.append(col(Incident.type) == incident_type)
        if person is not None:
            roles_col = col(Incident.roles)
            where.append(or_(*(roles_col[r].as_string() == person for r in roles)))
        page = select(Incident).where(*where).order_by(col(Incident.number).desc())
        rows = list((await self.session.execute(page.limit(limit).offset(offset))).scalars())
        if offset == 0 and len(rows) < limit:
            return rows, len(rows)  # all of them: no count needed
        total = (await self.session.execute(
            select(func.count()).select_from(Incident).where(*where))).scalar_one()
        return rows, int(total)

    async def open_incident_choices(self, typed: str, *, limit: int) -> list[Incident]:
        query = select(Incident).where(text(OPEN_STATUS_SQL))
        if typed:
            pattern = typed.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(or_(
                cast(col(Incident.number), String).like(f"{pattern}%", escape="\\"),
                func.lower(col(Incident.title)).like(f"%{pattern}%", escape="\\"),
            ))
        query = query.order_by(col(Incident.number).desc()).limit(limit)
        return list((await self.session.execute(query)).scalars())

    async def timeline_list_page(
        self, incident_id: int, *, key_only: bool, limit: int, offset: int = 0
    ) -> tuple[list[TimelineEntry], int]:
        where: list[Any] = [
            col(TimelineEntry.incident_id) == incident_id,
            col(TimelineEntry.deleted) == False,  # noqa: E712
        ]
        if key_only:
            where.append(col(TimelineEntry.kind) == EntryKind.KEY_EVENT)
        newest = (
            select(TimelineEntry)
            .where(*where)
            .order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc())
            .limit(limit)
            .offset(offset)
        )
        rows = list((await self.session.execute(newest)).scalars())
        rows.reverse()
        if offset == 0 and len(rows) < limit:
            return rows, len(rows)
        total = (await self.session.execute(
            select(func.count()).select_from(TimelineEntry).where(*where))).scalar_one()
        return rows, int(total)

    async def timeline(
        self, incident_id: int, *, key_only: bool = False, include_deleted: bool = False
    ) -> list[TimelineEntry]:
        query = select(TimelineEntry).where(col(TimelineEntry.incident_id) == incident_id)
        if key_only:
            query = query.where(col(TimelineEntry.kind) == EntryKind.KEY_EVENT)
        if not include_deleted:
            query = query.where(col(TimelineEntry.deleted) == False)  # noqa: E712
        query = query.order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))
        return list((await self.session.execute(query)).scalars())

    async def entry(self, entry_id: int) -> TimelineEntry | None:
        return await self.session.get(TimelineEntry, entry_id)

    async def entry_by_external(self, source: str, external_id: str) -> TimelineEntry | None:
        result = await self.session.execute(
            select(TimelineEntry).where(
                col(TimelineEntry.source) == source,
                col(TimelineEntry.external_id) == external_id,
            )
        )
        return result.scalar_one_or_none()

    async def posted_entry(self, link_id: int, message_id: str) -> TimelineEntry | None:
        result = await self.session.execute(_POSTED_ENTRY, {"link_id": link_id, "mid": message_id})
        return result.scalars().first()

    async def action_items(self, incident_id: int) -> list[ActionItem]:
        result = await self.session.execute(
            select(ActionItem)
            .where(col(ActionItem.incident_id) == incident_id)
            .order_by(col(ActionItem.number))
        )
        return list(result.scalars())

    async def action_item(self, incident_id: int, number: int) -> ActionItem | None:
        result = await self.session.execute(
            select(ActionItem).where(
                col(ActionItem.incident_id) == incident_id,
                col(ActionItem.number) == number,
            )
        )
        return result.scalar_one_or_none()

    async def links(self, incident_id: int) -> list[ChannelLink]:
        if incident_id not in self._links:
            result = await self.session.execute(_LINKS, {"incident_id": incident_id})
            self._links[incident_id] = list(result.scalars())
        return list(self._links[incident_id])

    async def link(self, link_id: int) -> ChannelLink | None:
        return await self.session.get(ChannelLink, link_id)

    async def link_for_channel(self, platform: str, channel_id: str) -> ChannelLink | None:
        result = await self.session.execute(
            select(ChannelLink).where(
                col(ChannelLink.platform) == platform, col(ChannelLink.channel_id) == channel_id
            )
        )
        return result.scalar_one_or_none()

    async def take_lease(
        self, name: str, *, holder: str, now: datetime, ttl: timedelta
    ) -> LeaseTake:
        before = (
            await self.session.execute(
                select(col(Lease.claimed_by), col(Lease.claimed_until)).where(
                    col(Lease.name) == name
                )
            )
        ).first()
        if not await claims.take_lease(self.session, name, holder=holder, now=now, ttl=ttl):
            # Held by a process of this host that is gone (kill -9, then a restart): taken
            # over now rather than when the lease expires; the caller rechecks its head.
            if before is None or not claims.holder_gone(str(before[0]), me=holder):
                return LeaseTake.BUSY
            await claims.drop_lease(self.session, name, holder=str(before[0]))
            if not await claims.take_lease(self.session, name, holder=holder, now=now, ttl=ttl):
                return LeaseTake.BUSY
            return LeaseTake.TAKEN_OVER
        if before is None or before[0] is None:
            return LeaseTake.TAKEN
        return LeaseTake.HELD if before[0] == holder else LeaseTake.TAKEN_OVER

    async def drop_lease(self, name: str, *, holder: str) -> None:
        await claims.drop_lease(self.session, name, holder=holder)

    async def open_links(self, platform: str) -> list[ChannelLink]:
        result = await self.session.execute(
            select(ChannelLink)
            .where(
                col(ChannelLink.platform) == platform,
                col(ChannelLink.channel_id).is_not(None),
            )
            .order_by(col(ChannelLink.id))
        )
        return list(result.scalars())

    async def event_seen(self, platform: str, key: str) -> bool:
        query = select(
            exists().where(
                col(InboundEvent.platform) == platform,
                col(InboundEvent.event_key) == key,
            )
        )
        return bool((await self.session.execute(query)).scalar())

    async def claim_event(self, platform: str, key: str) -> bool:
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        result = await self.session.execute(
            insert(InboundEvent)
            .values(platform=platform, event_key=key)
            .on_conflict_do_nothing(index_elements=["platform", "event_key"])
            .returning(col(InboundEvent.id))
        )
        return result.scalar_one_or_none() is not None

    async def next_delivery_due(self) -> datetime | None:
        return (await self.session.execute(_NEXT_DUE)).scalar_one_or_none()

    async def any_pending(self) -> bool:
        return bool((await self.session.execute(_ANY_PENDING)).scalar())

    async def pending_deliveries(self, *, per_queue: int) -> list[Delivery]:
        result = await self.session.execute(_PENDING_DELIVERIES, {"per_queue": per_queue})
        return list(result.scalars())

    async def delivery(self, delivery_id: int) -> Delivery | None:
        return await self.session.get(Delivery, delivery_id)

    async def has_later_summary_refresh(self, delivery: Delivery) -> bool:
        result = await self.session.execute(
            _LATER_SUMMARY_REFRESH, {"link_id": delivery.link_id, "delivery_id": delivery.id}
        )
        return bool(result.scalar())

    async def deliveries_to_send(
        self, ids: Sequence[int]
    ) -> list[tuple[Delivery, ChannelLink, Incident, TimelineEntry | None]]:
        if not ids:
            return []
        result = await self.session.execute(_TO_SEND, {"ids": list(ids)})
        return [(d, link, incident, entry) for d, link, incident, entry in result.all()]

    async def finish_deliveries(self, done: Sequence[Finished]) -> None:
        if done:
            await self.session.execute(_FINISH, _finish_rows(done))

    # --- jobs ---------------------------------------------------------------------------

    def _insert(self) -> Any:
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        return pg_insert if dialect == "postgresql" else sqlite_insert

    async def prune_jobs(self, *, before: datetime, limit: int) -> int:
        finished = [JobState.DONE, JobState.CANCELLED, JobState.FAILED]
        # A cancelled job has no finished_at: its creation time stands in.
        old = (
            select(col(Job.id))
            .where(
                col(Job.state).in_(finished),
                func.coalesce(col(Job.finished_at), col(Job.created_at)) < before,
            )
            .limit(limit)
        )
        result = await self.session.execute(
            delete(Job).where(col(Job.id).in_(old)).execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def prune_deliveries(self, *, before: datetime, limit: int) -> int:
        maps_a_post = and_(
            col(Delivery.action) == DeliveryAction.POST_ENTRY,
            col(Delivery.message_id).is_not(None),
        )
        old = (
            select(col(Delivery.id))
            .where(
                col(Delivery.state) != DeliveryState.PENDING,
                func.coalesce(col(Delivery.sent_at), col(Delivery.created_at)) < before,
                ~maps_a_post,
            )
            .limit(limit)
        )
        result = await self.session.execute(
            delete(Delivery)
            .where(col(Delivery.id).in_(old))
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def notice_by_key(self, key: str) -> Notice | None:
        found = await self.session.execute(select(Notice).where(col(Notice.key) == key))
        return found.scalars().first()

    async def notice(self, notice_id: int) -> Notice | None:
        return await self.session.get(Notice, notice_id)

    async def pending_notices(self, *, limit: int) -> list[Notice]:
        found = await self.session.execute(
            select(Notice)
            .where(col(Notice.state) == DeliveryState.PENDING)
            .order_by(col(Notice.id))
            .limit(limit)
        )
        return list(found.scalars())

    async def next_notice_due(self) -> datetime | None:
        found = await self.session.execute(
            select(func.min(col(Notice.next_attempt_at))).where(
                col(Notice.state) == DeliveryState.PENDING
            )
        )
        return found.scalar_one_or_none()

    async def prune_notices(self, *, before: datetime, limit: int) -> int:
        old = (
            select(col(Notice.id))
            .where(
                col(Notice.state) != DeliveryState.PENDING,
                func.coalesce(col(Notice.sent_at), col(Notice.created_at)) < before,
            )
            .limit(limit)
        )
        result = await self.session.execute(
            delete(Notice).where(col(Notice.id).in_(old)).execution_options(
                synchronize_session=False
            )
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def schedule(self, job: Job, *, move: bool = False) -> None:
        stmt = self._insert()(Job).values(**job.model_dump(exclude={"id"}))
        again = [JobState.CANCELLED, JobState.PENDING] if move else [JobState.CANCELLED]
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["key"],
                set_={
                    "due_at": stmt.excluded.due_at,
                    "payload": stmt.excluded.payload,
                    "state": JobState.PENDING,
                    "attempts": 0,
                    "claimed_by": None,
                    "claimed_until": None,
                    "last_error": None,
                    "finished_at": None,
                },
                where=col(Job.state).in_(again),
            )
        )

    async def cancel_jobs(
        self,
        *,
        now: datetime,
        incident_id: int | None = None,
        key: str | None = None,
        prefix: str | None = None,
        keep: Sequence[str] = (),
    ) -> int:
        if key is None and prefix is None:
            raise ValueError("cancel_jobs needs a key or a key prefix")
        where = [col(Job.state) == JobState.PENDING]
        if incident_id is not None:
            where.append(col(Job.incident_id) == incident_id)
        if key is not None:
            where.append(col(Job.key) == key)
        if prefix is not None:
            where.append(col(Job.key).startswith(prefix, autoescape=True))
        if keep:
            where.append(col(Job.key).not_in(list(keep)))
        result = await self.session.execute(
            update(Job)
            .where(*where)
            .values(
                state=JobState.CANCELLED, finished_at=now, claimed_by=None, claimed_until=None
            )
            .execution_options(synchronize_session=False)
        )
        return int(getattr(result, "rowcount", 0) or 0)

    async def pending_jobs(self, incident_id: int) -> list[Job]:
        result = await self.session.execute(
            select(Job)
            .where(
                col(Job.incident_id) == incident_id,
                col(Job.state).in_([JobState.PENDING, JobState.RUNNING]),
            )
            .order_by(col(Job.due_at), col(Job.id))
        )
        return list(result.scalars())

    async def jobs(self, *, states: Sequence[JobState], limit: int) -> list[Job]:
        result = await self.session.execute(
            select(Job)
            .where(col(Job.state).in_(list(states)))
            .order_by(col(Job.due_at), col(Job.id))
            .limit(limit)
        )
        return list(result.scalars())

    async def claim_jobs(
        self, *, holder: str, now: datetime, ttl: timedelta, limit: int
    ) -> list[Job]:
        ids = await claim(
            self.session,
            Job,
            ready=or_(
                and_(col(Job.state) == JobState.PENDING, col(Job.due_at) <= now),
                col(Job.state) == JobState.RUNNING,
            ),
            order_by=[col(Job.due_at), col(Job.id)],
            limit=limit,
            holder=holder,
            now=now,
            ttl=ttl,
        )
        if not ids:
            return []
        # Attempts are counted when claimed, so a job whose handler kills the process every
        # time still runs out of attempts.
        result = await self.session.execute(
            update(Job)
            .where(col(Job.id).in_(ids))
            .values(state=JobState.RUNNING, attempts=col(Job.attempts) + 1)
            .returning(Job)
            .execution_options(populate_existing=True)
        )
        return sorted(result.scalars(), key=lambda j: (j.due_at, j.id or 0))

    async def locked_job(self, job_id: int) -> Job | None:
        return await self.session.get(
            Job, job_id, with_for_update=True, populate_existing=True
        )

    async def next_job_at(self) -> datetime | None:
        free = (
            await self.session.execute(
                select(col(Job.due_at))
                .where(col(Job.state) == JobState.PENDING, col(Job.claimed_until).is_(None))
                .order_by(col(Job.state), col(Job.due_at))
                .limit(1)
            )
        ).scalar_one_or_none()
        held = (
            await self.session.execute(
                select(func.min(col(Job.claimed_until))).where(
                    col(Job.claimed_until).is_not(None),
                    col(Job.state).in_([JobState.PENDING, JobState.RUNNING]),
                )
            )
        ).scalar_one_or_none()
        times = [t for t in (free, held) if t is not None]
        return min(times) if times else None

    async def overdue_action_items(self, now: datetime) -> list[ActionItem]:
        result = await self.session.execute(
            select(ActionItem)
            .where(
                col(ActionItem.status) == ActionStatus.OPEN,
                col(ActionItem.due_at).is_not(None),
                col(ActionItem.due_at) < now,
            )
            .order_by(col(ActionItem.incident_id), col(ActionItem.number))
        )
        return list(result.scalars())

    # --- postmortems (bot/postmortem.py) ----------------------------------------------------

    async def postmortems(self, incident_id: int) -> list[Postmortem]:
        result = await self.session.execute(
            select(Postmortem)
            .where(col(Postmortem.incident_id) == incident_id)
            .order_by(col(Postmortem.version))
        )
        return list(result.scalars())

    async def postmortem(self, postmortem_id: int) -> Postmortem | None:
        return await self.session.get(Postmortem, postmortem_id)


    # --- alerts ---------------------------------------------------------------------------

    async def lock_name(self, name: str) -> None:
        if self.session.bind is not None and self.session.bind.dialect.name == "postgresql":
            await self.session.execute(
                text("SELECT pg_advisory_xact_lock(:key, hashtext(:name))"),
                {"key": _ALERT_LOCK_KEY, "name": name},
            )

    async def record_alert(self, alert: Alert) -> tuple[Alert, bool]:
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        stmt = _RECORD_ALERT.get(dialect)
        if stmt is None:
            # Built once per dialect: a statement made with .values() each time is compiled
            # each time, which cost more than running it.
            insert_ = self._insert()(Alert)
            stmt = _RECORD_ALERT[dialect] = insert_.on_conflict_do_update(
                index_elements=["source", "fingerprint", "starts_at", "status"],
                set_={
                    "count": col(Alert.count) + 1,
                    "last_received_at": insert_.excluded.last_received_at,
                },
            ).returning(*Alert.__table__.columns)  # type: ignore[attr-defined]
        result = await self.session.execute(stmt, alert.model_dump(exclude={"id"}))
        values = dict(result.one()._mapping)
        # The row as stored, tracked without reading it again: what the caller changes on it
        # (its incident, storm) is flushed as an UPDATE.
        stored = Alert.model_validate(values)
        make_transient_to_detached(stored)
        row = await self.session.merge(stored, load=False)
        return row, values["count"] == 1

    async def latest_alert(self, source: str, fingerprint: str) -> Alert | None:
        result = await self.session.execute(
            select(Alert)
            .where(col(Alert.source) == source, col(Alert.fingerprint) == fingerprint)
            .order_by(col(Alert.id).desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def alert_event(
        self, source: str, fingerprint: str, starts_at: datetime, status: str
    ) -> Alert | None:
        result = await self.session.execute(
            select(Alert).where(
                col(Alert.source) == source,
                col(Alert.fingerprint) == fingerprint,
                col(Alert.starts_at) == starts_at,
                col(Alert.status) == status,
            )
        )
        return result.scalar_one_or_none()

    async def alert_group_incident(self, group_key: str) -> tuple[Incident, bool] | None:
        result = await self.session.execute(
            select(Incident, col(Alert.storm))
            .join(Alert, col(Alert.incident_id) == col(Incident.id))
            .where(col(Alert.group_key) == group_key, _OPEN_INCIDENT)
            .order_by(col(Alert.id).desc())
            .limit(1)
            .with_for_update(of=Incident)
        )
        row = result.first()
        return None if row is None else (row[0], bool(row[1]))

    async def new_alert_groups(self, route: str, since: datetime) -> int:
        result = await self.session.execute(
            select(func.count()).where(
                col(Alert.route) == route,
                col(Alert.first_received_at) >= since,
                col(Alert.new_group) == True,  # noqa: E712
            )
        )
        return int(result.scalar_one())

    async def storm_incident(self, route: str) -> Incident | None:
        result = await self.session.execute(
            select(Incident)
            .join(Alert, col(Alert.incident_id) == col(Incident.id))
            .where(col(Alert.route) == route, col(Alert.storm) == True, _OPEN_INCIDENT)  # noqa: E712
            .order_by(col(Alert.id).desc())
            .limit(1)
            .with_for_update(of=Incident)
        )
        return result.scalars().first()

    async def firing_alerts(self, incident_id: int) -> int:
        resolved = aliased(Alert)
        result = await self.session.execute(
            select(func.count()).where(
                col(Alert.incident_id) == incident_id,
                col(Alert.status) == "firing",
                ~exists().where(
                    col(resolved.source) == col(Alert.source),
                    col(resolved.fingerprint) == col(Alert.fingerprint),
                    col(resolved.starts_at) == col(Alert.starts_at),
                    col(resolved.status) == "resolved",
                ),
            )
        )
        return int(result.scalar_one())

    async def alerts(self, incident_id: int) -> list[Alert]:
        result = await self.session.execute(
            select(Alert).where(col(Alert.incident_id) == incident_id).order_by(col(Alert.id))
        )
        return list(result.scalars())

    async def alert(self, alert_id: int, *, lock: bool = False) -> Alert | None:
        query = select(Alert).where(col(Alert.id) == alert_id)
        if lock:
            query = query.with_for_update()
        result = await self.session.execute(query.execution_options(populate_existing=True))
        return result.scalar_one_or_none()

    async def triage_hold(self, group_key: str) -> Alert | None:
        resolved = aliased(Alert)
        result = await self.session.execute(
            select(Alert)
            .where(
                col(Alert.group_key) == group_key,
                col(Alert.status) == "firing",
                or_(
                    col(Alert.triage) == "pending",
                    and_(
                        col(Alert.triage) == "ignored",
                        ~exists().where(
                            col(resolved.source) == col(Alert.source),
                            col(resolved.fingerprint) == col(Alert.fingerprint),
                            col(resolved.starts_at) == col(Alert.starts_at),
                            col(resolved.status) == "resolved",
                        ),
                    ),
                ),
            )
            # Pending first: a new alert waits with the post still open.
            .order_by((col(Alert.triage) == "pending").desc(), col(Alert.id))
            .limit(1)
        )
        return result.scalars().first()

    async def triaged_with(self, alert_id: int) -> list[Alert]:
        result = await self.session.execute(
            select(Alert)
            .where(col(Alert.triage_of) == alert_id)
            .order_by(col(Alert.id))
            .execution_options(populate_existing=True)
        )
        return list(result.scalars())

    async def pending_triage(self, *, limit: int) -> list[Alert]:
        result = await self.session.execute(
            select(Alert)
            .where(col(Alert.triage) == "pending", col(Alert.triage_of).is_(None))
            .order_by(col(Alert.id))
            .limit(limit)
        )
        return list(result.scalars())


    # --- runbook runs (bot/runbooks.py) ----------------------------------------------------

    async def runs(self, incident_id: int) -> list[RunbookRun]:
        result = await self.session.execute(
            select(RunbookRun)
            .where(col(RunbookRun.incident_id) == incident_id)
            .order_by(col(RunbookRun.number))
        )
        return list(result.scalars())

    async def run_by_id(self, run_id: int) -> RunbookRun | None:
        return await self.session.get(
            RunbookRun, run_id, with_for_update=True, populate_existing=True
        )

    async def runnable_runs(self, limit: int) -> list[RunbookRun]:
        result = await self.session.execute(
            select(RunbookRun)
            .where(col(RunbookRun.state) == RunState.RUNNING)
            .order_by(col(RunbookRun.updated_at), col(RunbookRun.id))
            .limit(limit)
        )
        return list(result.scalars())

    async def posted_message(self, link_id: int, entry_id: int) -> str | None:
        result = await self.session.execute(
            select(col(Delivery.message_id)).where(
                col(Delivery.link_id) == link_id,
                col(Delivery.entry_id) == entry_id,
                col(Delivery.action) == DeliveryAction.POST_ENTRY,
                col(Delivery.message_id).is_not(None),
            )
        )
        return result.scalars().first()

    # --- people and on-call (bot/people.py, bot/oncall.py) -----------------------------------

    async def learn_person(self, platform: str, user_id: str, name: str, now: datetime) -> None:
        dialect = self.session.bind.dialect.name if self.session.bind else "sqlite"
        insert_ = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert_(Person).values(platform=platform, user_id=user_id, name=name, seen_at=now)
        await self.session.execute(
            stmt.on_conflict_do_update(
                index_elements=["platform", "user_id"],
                set_={"name": name, "seen_at": now},
                where=col(Person.name) != name,
            )
        )

    async def people_seen(self, accounts: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        if not accounts:
            return {}
        ids = [uid for _, uid in accounts]
        result = await self.session.execute(select(Person).where(col(Person.user_id).in_(ids)))
        wanted = set(accounts)
        return {
            (p.platform, p.user_id): p.name
            for p in result.scalars()
            if (p.platform, p.user_id) in wanted
        }

    async def all_people_seen(self) -> list[Person]:
        result = await self.session.execute(select(Person).order_by(col(Person.id)))
        return list(result.scalars())

    async def overrides(
        self, schedule: str | None, *, ending_after: datetime
    ) -> list[OncallOverride]:
        query = select(OncallOverride).where(
            col(OncallOverride.end_at) > ending_after, col(OncallOverride.removed).is_(False)
        )
        if schedule is not None:
            query = query.where(col(OncallOverride.schedule) == schedule)
        result = await self.session.execute(query.order_by(col(OncallOverride.start_at)))
        return list(result.scalars())

    async def override(self, override_id: int) -> OncallOverride | None:
        return await self.session.get(OncallOverride, override_id)

    async def escalation(self, escalation_id: int) -> Escalation | None:
        return await self.session.get(Escalation, escalation_id, populate_existing=True)

    async def escalations(
        self, incident_id: int | None = None, *, active: bool = True
    ) -> list[Escalation]:
        query = select(Escalation)
        if incident_id is not None:
            query = query.where(col(Escalation.incident_id) == incident_id)
        if active:
            query = query.where(col(Escalation.state) == "active")
        result = await self.session.execute(query.order_by(col(Escalation.id)))
        return list(result.scalars())


# Uses ix_delivery_message (link_id, message_id): one index probe however long the incident.

_RECORD_ALERT: dict[str, Any] = {}
_ALERT_LOCK_KEY = 7_315_013  # advisory-lock namespace of alert routes (see lock_name)
_OPEN_INCIDENT = col(Incident.status).not_in([s for s in Status if not s.is_open])


_POSTED_ENTRY = (
    select(TimelineEntry)
    .join(Delivery, col(Delivery.entry_id) == col(TimelineEntry.id))
    .where(
        col(Delivery.link_id) == bindparam("link_id"),
        col(Delivery.message_id) == bindparam("mid"),
        col(Delivery.action) == DeliveryAction.POST_ENTRY,
    )
    .limit(1)
)
_APPEND_ENTRY = insert(TimelineEntry).returning(col(TimelineEntry.id))
_IN_UNIT: ContextVar[bool] = ContextVar("opsroom_in_unit", default=False)
# The session of an enclosing `SqlStore.transaction(ambient=True)`: units opened inside it are
# savepoints of that one transaction. Tasks started inside inherit it: start none there.
_AMBIENT: ContextVar[AsyncSession | None] = ContextVar("opsroom_ambient", default=None)


def _finish_rows(done: Sequence[Finished]) -> list[dict[str, Any]]:
    return [{"did": f.delivery_id, "st": f.state, "mid": f.message_id, "note": f.note,
             "at": f.at} for f in done]


class SqlStore:
    """The `Store` port: `async with store.unit() as u:` is one committed transaction."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._serial = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def unit(self) -> AsyncIterator[SqlUnit]:
        ambient = _AMBIENT.get()
        if ambient is not None:
            # Inside an ambient transaction: this unit's changes commit, or not, with it.
            async with ambient.begin_nested():
                yield SqlUnit(ambient)
            return
        async with self.transaction() as session:
            yield SqlUnit(session)

    async def record_outcomes(self, done: Sequence[Finished]) -> None:
        """The mirror's outcomes (message ids) in one UPDATE on a plain connection (no ORM
        session: this runs once per message sent, so its overhead is the mirror's ceiling).

        On PostgreSQL this one transaction commits with `synchronous_commit` off: the commit is
        ordered and atomic like any other and visible at once, and it survives this process
        dying (kill -9 included), but PostgreSQL returns before its WAL reaches the disk, so a
        crash of the PostgreSQL server itself (or its host) can lose the outcomes committed in
        the last ~0.6 s (3 x `wal_writer_delay`). Those deliveries are then pending again and
        are sent a second time: Discord answers a repeat within minutes with the message it
        already made (the post's nonce), Slack shows a duplicate of each. Nothing is ever lost:
        timeline entries, inbox rows and every other commit stay synchronous, and any of them
        flushes the WAL, outcomes before it included. Waiting for the disk here made the
        commit, not the platform, the ceiling of one channel's rate (README, "Scale").
        """
        if not done:
            return
        rows = _finish_rows(done)
        if _AMBIENT.get() is not None:  # inside a larger transaction: commit with it
            async with self.unit() as u:
                await u.finish_deliveries(done)
            return
        if self.engine.dialect.name == "postgresql":
            async with self.engine.connect() as conn:
                conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(_FINISH_NO_FLUSH_WAIT, rows)
            return
        async with self._connection() as conn:
            await conn.execute(_FINISH, rows)

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[AsyncConnection]:
        """One transaction on a plain connection, committed when the block ends."""
        if self._serial is None:
            async with self.engine.begin() as conn:
                yield conn
            return
        if _IN_UNIT.get():
            raise RuntimeError("a unit was opened inside another unit on SQLite: it would deadlock")
        token = _IN_UNIT.set(True)
        try:
            async with self._serial, self.engine.begin() as conn:
                yield conn
        finally:
            _IN_UNIT.reset(token)

    @asynccontextmanager
    async def transaction(self, *, ambient: bool = False) -> AsyncIterator[AsyncSession]:
        """One transaction on a session of its own, committed when the block ends.

        With `ambient`, every `unit()` opened inside the block (by the service, say) is a
        savepoint of this transaction: the inbox worker applies a row's effects and marks the
        row applied in one commit this way (see adapters/inbox.py).
        """
        if self._serial is None:
            async with self._sessions() as session, session.begin():
                outer = _AMBIENT.set(session) if ambient else None
                try:
                    yield session
                finally:
                    if outer is not None:
                        _AMBIENT.reset(outer)
            return
        # SQLite has one writer at a time and hands its lock to whichever waiter polls first;
        # queueing here instead is fair (first come, first served) and wastes no polling sleeps.
        if _IN_UNIT.get():
            raise RuntimeError("a unit was opened inside another unit on SQLite: it would deadlock")
        token = _IN_UNIT.set(True)
        try:
            async with self._serial, self._sessions() as session, session.begin():
                inner = _AMBIENT.set(session) if ambient else None
                try:
                    yield session
                finally:
                    if inner is not None:
                        _AMBIENT.reset(inner)
        finally:
            _IN_UNIT.reset(token)
