"""Read-only figures from the database for /metrics and `opsroom report`.

Every figure is computed by the database at the moment it is asked for, so any number of
replicas scraping one database report the same values and nothing is counted twice. Cancelled
incidents (declared by mistake) are left out of every figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlmodel import SQLModel, col

from bot.models import (
    ActionItem,
    ActionStatus,
    ChannelLink,
    Delivery,
    DeliveryState,
    Incident,
    Job,
    JobState,
    Status,
)
from bot.report import IncidentRow

# Histogram buckets (upper bounds, seconds): a minute to a week.
ACK_BUCKETS = (60.0, 300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0)
RESOLVE_BUCKETS = (300.0, 900.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0, 86400.0, 259200.0,
                   604800.0)

_OPEN = [s for s in Status if s.is_open]
_COUNTED = col(Incident.status) != Status.CANCELLED


@dataclass
class Histogram:
    """Cumulative counts per upper bound (the last is +Inf), the count and the sum."""

    buckets: list[tuple[float, int]]
    count: int
    total: float


@dataclass
class Snapshot:
    open_incidents: dict[tuple[str, str], int] = field(default_factory=dict)  # severity, status
    declared: dict[tuple[str, str], int] = field(default_factory=dict)  # type, severity
    time_to_acknowledge: Histogram | None = None
    time_to_resolve: Histogram | None = None
    jobs_pending: dict[str, int] = field(default_factory=dict)  # kind
    jobs_late: dict[str, int] = field(default_factory=dict)  # kind
    deliveries: dict[tuple[str, str], int] = field(default_factory=dict)  # platform, state
    alerts: dict[tuple[str, str], int] = field(default_factory=dict)  # source, status


def _seconds(conn: AsyncConnection, start: Any, end: Any) -> Any:
    """`end - start` in seconds, as this database computes it."""
    if conn.dialect.name == "postgresql":
        return sa.func.extract("epoch", end - start)
    return (sa.func.julianday(end) - sa.func.julianday(start)) * 86400.0


async def _histogram(
    conn: AsyncConnection, start: Any, end: Any, bounds: Sequence[float], *where: Any
) -> Histogram:
    secs = _seconds(conn, start, end)
    columns = [
        sa.func.coalesce(sa.func.sum(sa.case((secs <= bound, 1), else_=0)), 0) for bound in bounds
    ]
    query = sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(secs), 0.0), *columns).where(
        _COUNTED, end.is_not(None), *where
    )
    row = (await conn.execute(query)).one()
    count, total = int(row[0]), float(row[1])
    buckets = [(bound, int(n)) for bound, n in zip(bounds, row[2:], strict=True)]
    return Histogram([*buckets, (float("inf"), count)], count, total)


async def snapshot(engine: AsyncEngine, now: datetime) -> Snapshot:
    """Every database-derived figure /metrics shows, read in one connection."""
    snap = Snapshot()
    async with engine.connect() as conn:
        rows = await conn.execute(
            sa.select(col(Incident.severity), col(Incident.status), sa.func.count())
            .where(col(Incident.status).in_(_OPEN))
            .group_by(col(Incident.severity), col(Incident.status))
        )
        snap.open_incidents = {(sev, Status(st).value): n for sev, st, n in rows}
        rows = await conn.execute(
            sa.select(col(Incident.type), col(Incident.severity), sa.func.count())
            .where(_COUNTED)
            .group_by(col(Incident.type), col(Incident.severity))
        )
        snap.declared = {(t, sev): n for t, sev, n in rows}
        snap.time_to_acknowledge = await _histogram(
            conn, col(Incident.declared_at), col(Incident.acknowledged_at), ACK_BUCKETS
        )
        snap.time_to_resolve = await _histogram(
            conn, col(Incident.declared_at), col(Incident.resolved_at), RESOLVE_BUCKETS,
            col(Incident.status).in_([Status.RESOLVED, Status.CLOSED]),
        )
        pending = col(Job.state) == JobState.PENDING
        rows = await conn.execute(
            sa.select(
                col(Job.kind),
                sa.func.count(),
                sa.func.sum(sa.case((col(Job.due_at) < now, 1), else_=0)),
            )
            .where(pending)
            .group_by(col(Job.kind))
        )
        for kind, n, late in rows:
            snap.jobs_pending[kind] = int(n)
            snap.jobs_late[kind] = int(late or 0)
        rows = await conn.execute(
            sa.select(col(ChannelLink.platform), col(Delivery.state), sa.func.count())
            .join(ChannelLink, col(ChannelLink.id) == col(Delivery.link_id))
            .where(col(Delivery.state).in_([DeliveryState.PENDING, DeliveryState.FAILED]))
            .group_by(col(ChannelLink.platform), col(Delivery.state))
        )
        snap.deliveries = {(p, DeliveryState(s).value): n for p, s, n in rows}
        snap.alerts = await _alerts(conn)
    return snap


async def _alerts(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    """Alerts received by source and status, once the alerts area's `alert` table exists
    (it is built in parallel; until it lands this reports nothing)."""
    alert = SQLModel.metadata.tables.get("alert")
    if alert is None or "source" not in alert.c or "status" not in alert.c:
        return {}
    rows = await conn.execute(
        sa.select(alert.c.source, alert.c.status, sa.func.count()).group_by(
            alert.c.source, alert.c.status
        )
    )
    return {(str(src), str(st)): int(n) for src, st, n in rows}


async def incident_rows(engine: AsyncEngine, since: datetime) -> list[IncidentRow]:
    """The incidents declared since `since`, cancelled ones left out, oldest first."""
    query = (
        sa.select(
            col(Incident.number),
            col(Incident.type),
            col(Incident.severity),
            col(Incident.status),
            col(Incident.declared_at),
            col(Incident.acknowledged_at),
            col(Incident.resolved_at),
        )
        .where(_COUNTED, col(Incident.declared_at) >= since)
        .order_by(col(Incident.declared_at))
    )
    async with engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [
        IncidentRow(
            number=r[0],
            type=r[1],
            severity=r[2],
            status=Status(r[3]),
            declared_at=r[4],
            acknowledged_at=r[5],
            # A resolved_at left on a reopened incident would count a resolve undone since.
            resolved_at=r[6] if Status(r[3]) in (Status.RESOLVED, Status.CLOSED) else None,
        )
        for r in rows
    ]


async def action_counts(engine: AsyncEngine, now: datetime, since: datetime) -> tuple[int, int]:
    """Open and overdue action items of the incidents declared since `since` (not cancelled)."""
    query = (
        sa.select(
            sa.func.count(),
            sa.func.coalesce(
                sa.func.sum(
                    sa.case(
                        (sa.and_(col(ActionItem.due_at).is_not(None), col(ActionItem.due_at) < now),
                         1),
                        else_=0,
                    )
                ),
                0,
            ),
        )
        .join(Incident, col(Incident.id) == col(ActionItem.incident_id))
        .where(
            col(ActionItem.status) == ActionStatus.OPEN,
            _COUNTED,
            col(Incident.declared_at) >= since,
        )
    )
    async with engine.connect() as conn:
        row = (await conn.execute(query)).one()
    return int(row[0]), int(row[1])
