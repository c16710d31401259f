"""Read queries for the REST API and the web view (pages, filters, new entries), and API tokens.

A mixin of `SqlUnit`: these read without `FOR UPDATE` (nothing here is changed after reading),
and every list is one page at a time, so a database with 100,000 incidents or an incident with
thousands of entries is never read whole.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from bot.models import (
    ApiIdempotency,
    ApiToken,
    EntryKind,
    Incident,
    Status,
    TimelineEntry,
)


@dataclass(frozen=True)
class IncidentFilter:
    """Which incidents a list shows; empty tuples mean any."""

    statuses: Sequence[Status] = ()
    severities: Sequence[str] = ()
    types: Sequence[str] = ()
    since: datetime | None = None  # declared at or after
    until: datetime | None = None  # declared before
    include_private: bool = False


@dataclass(frozen=True)
class Report:
    """Counts for the reports page."""

    by_status: dict[str, int]
    by_severity: dict[str, int]
    by_type: dict[str, int]
    mean_resolve_seconds: dict[str, float]  # per severity, over resolved incidents


class ReadQueries:
    session: AsyncSession

    def _dialect(self) -> str:
        return self.session.bind.dialect.name if self.session.bind else "sqlite"

    # --- incidents ------------------------------------------------------------------------

    async def incident_view(self, number: int, *, include_private: bool) -> Incident | None:
        query = select(Incident).where(col(Incident.number) == number)
        if not include_private:
            query = query.where(col(Incident.private) == False)  # noqa: E712
        return (await self.session.execute(query)).scalar_one_or_none()

    async def incident_page(
        self, where: IncidentFilter, *, before: int | None, limit: int
    ) -> tuple[list[Incident], bool]:
        """Up to `limit` incidents numbered below `before`, newest first, and whether more
        follow. Walks the unique index on number: a page costs the same at any depth."""
        query = select(Incident).where(*_conditions(where))
        if before is not None:
            query = query.where(col(Incident.number) < before)
        query = query.order_by(col(Incident.number).desc()).limit(limit + 1)
        rows = list((await self.session.execute(query)).scalars())
        return rows[:limit], len(rows) > limit

    # --- timeline -------------------------------------------------------------------------

    async def timeline_page(
        self,
        incident_id: int,
        *,
        after: tuple[datetime, int] | None,
        limit: int,
        kinds: Sequence[EntryKind] = (),
    ) -> tuple[list[TimelineEntry], bool]:
        """Entries in timeline order (occurred_at, id) after the cursor, and whether more
        follow; ix_entry_incident_time serves the order and the cursor."""
        query = select(TimelineEntry).where(
            col(TimelineEntry.incident_id) == incident_id,
            col(TimelineEntry.deleted) == False,  # noqa: E712
        )
        if kinds:
            query = query.where(col(TimelineEntry.kind).in_(list(kinds)))
        if after is not None:
            at, entry_id = after
            query = query.where(
                (col(TimelineEntry.occurred_at) > at)
                | ((col(TimelineEntry.occurred_at) == at) & (col(TimelineEntry.id) > entry_id))
            )
        query = query.order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))
        rows = list((await self.session.execute(query.limit(limit + 1))).scalars())
        return rows[:limit], len(rows) > limit

    async def latest_entries(
        self, incident_id: int, *, limit: int
    ) -> tuple[list[TimelineEntry], bool]:
        """The last `limit` entries in timeline order, and whether earlier ones exist."""
        query = (
            select(TimelineEntry)
            .where(
                col(TimelineEntry.incident_id) == incident_id,
                col(TimelineEntry.deleted) == False,  # noqa: E712
            )
            .order_by(col(TimelineEntry.occurred_at).desc(), col(TimelineEntry.id).desc())
            .limit(limit + 1)
        )
        rows = list((await self.session.execute(query)).scalars())
        return rows[:limit][::-1], len(rows) > limit

    async def entries_since(
        self, incident_id: int, *, after_id: int, limit: int = 100
    ) -> list[TimelineEntry]:
        """Entries recorded after entry `after_id` (in the order they were recorded): what a
        page left open has not shown yet. Ids only grow, so this is the live stream's cursor."""
        query = (
            select(TimelineEntry)
            .where(
                col(TimelineEntry.incident_id) == incident_id,
                col(TimelineEntry.id) > after_id,
                col(TimelineEntry.deleted) == False,  # noqa: E712
            )
            .order_by(col(TimelineEntry.id))
            .limit(limit)
        )
        return list((await self.session.execute(query)).scalars())

    async def last_entry_id(self, incident_id: int) -> int:
        query = select(func.max(col(TimelineEntry.id))).where(
            col(TimelineEntry.incident_id) == incident_id
        )
        return int((await self.session.execute(query)).scalar_one_or_none() or 0)

    async def latest_entry_by(
        self, incident_id: int, *, author_id: str, kind: EntryKind
    ) -> TimelineEntry | None:
        query = (
            select(TimelineEntry)
            .where(
                col(TimelineEntry.incident_id) == incident_id,
                col(TimelineEntry.author_id) == author_id,
                col(TimelineEntry.kind) == kind,
            )
            .order_by(col(TimelineEntry.id).desc())
            .limit(1)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    # --- reports --------------------------------------------------------------------------

    async def report(self, where: IncidentFilter) -> Report:
        async def counts(column: Any) -> dict[str, int]:
            query = select(column, func.count()).where(*_conditions(where)).group_by(column)
            return {str(k): int(n) for k, n in (await self.session.execute(query)).all()}

        by_status = await counts(col(Incident.status))
        by_severity = await counts(col(Incident.severity))
        by_type = await counts(col(Incident.type))
        resolved = select(
            col(Incident.severity), col(Incident.declared_at), col(Incident.resolved_at)
        ).where(*_conditions(where), col(Incident.resolved_at).is_not(None))
        totals: dict[str, list[float]] = {}
        for severity, declared, done in (await self.session.execute(resolved)).all():
            if done is not None:
                totals.setdefault(severity, []).append((done - declared).total_seconds())
        mean = {s: sum(v) / len(v) for s, v in totals.items()}
        return Report(
            by_status={Status(k).value: v for k, v in by_status.items()},
            by_severity=by_severity,
            by_type=by_type,
            mean_resolve_seconds=mean,
        )

    # --- tokens ---------------------------------------------------------------------------

    async def token_by_hash(self, token_hash: str) -> ApiToken | None:
        query = select(ApiToken).where(
            col(ApiToken.token_hash) == token_hash, col(ApiToken.revoked_at).is_(None)
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def token_by_name(self, name: str) -> ApiToken | None:
        query = select(ApiToken).where(col(ApiToken.name) == name)
        return (await self.session.execute(query)).scalar_one_or_none()

    async def tokens(self) -> list[ApiToken]:
        query = select(ApiToken).order_by(col(ApiToken.id))
        return list((await self.session.execute(query)).scalars())

    async def revoke_token(self, name: str, *, now: datetime) -> bool:
        result = await self.session.execute(
            update(ApiToken)
            .where(col(ApiToken.name) == name, col(ApiToken.revoked_at).is_(None))
            .values(revoked_at=now)
            .returning(col(ApiToken.id))
        )
        return result.scalar_one_or_none() is not None

    # --- idempotency keys -----------------------------------------------------------------

    async def claim_idempotency_key(
        self, token_id: int, key: str, *, fingerprint: str, now: datetime
    ) -> bool:
        """True when this request is the first with `key` (it then declares); the unique
        constraint decides between two racing requests."""
        insert = pg_insert if self._dialect() == "postgresql" else sqlite_insert
        result = await self.session.execute(
            insert(ApiIdempotency)
            .values(token_id=token_id, key=key, fingerprint=fingerprint, created_at=now)
            .on_conflict_do_nothing(index_elements=["token_id", "key"])
            .returning(col(ApiIdempotency.id))
        )
        return result.scalar_one_or_none() is not None

    async def idempotency_key(self, token_id: int, key: str) -> ApiIdempotency | None:
        query = select(ApiIdempotency).where(
            col(ApiIdempotency.token_id) == token_id, col(ApiIdempotency.key) == key
        )
        return (await self.session.execute(query)).scalar_one_or_none()

    async def settle_idempotency_key(self, token_id: int, key: str, number: int | None) -> None:
        """Record the incident the key declared; None forgets the key (the declare failed, so
        a retry may try again)."""
        if number is None:
            row = await self.idempotency_key(token_id, key)
            if row is not None:
                await self.session.delete(row)
            return
        await self.session.execute(
            update(ApiIdempotency)
            .where(col(ApiIdempotency.token_id) == token_id, col(ApiIdempotency.key) == key)
            .values(incident_number=number)
        )


def _conditions(where: IncidentFilter) -> list[ColumnElement[bool]]:
    conds: list[ColumnElement[bool]] = []
    if where.statuses:
        conds.append(col(Incident.status).in_(list(where.statuses)))
    if where.severities:
        conds.append(col(Incident.severity).in_(list(where.severities)))
    if where.types:
        conds.append(col(Incident.type).in_(list(where.types)))
    if where.since is not None:
        conds.append(col(Incident.declared_at) >= where.since)
    if where.until is not None:
        conds.append(col(Incident.declared_at) < where.until)
    if not where.include_private:
        conds.append(col(Incident.private) == False)  # noqa: E712
    return conds
