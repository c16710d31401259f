"""Claims: work any replica may do is done by one at a time, and never lost.

A claimable table has an integer `id`, `claimed_by` (who) and `claimed_until` (a lease expiry,
UTC). `claim` takes rows that are ready and free (never claimed, claim expired, or already
ours) in one statement, so two processes racing for the same rows get disjoint sets:

- PostgreSQL: `UPDATE ... WHERE id IN (SELECT ... FOR UPDATE SKIP LOCKED)`, so a racer skips
  rows another transaction is claiming instead of waiting for them;
- SQLite: the same conditional `UPDATE ... RETURNING`; `BEGIN IMMEDIATE` (storage/engine.py)
  already makes writers take turns, across processes sharing one file too.

A process that dies holding a claim loses it when `claimed_until` passes; the next claimer
takes the row over. Jobs are claimed per row; ordered queues (a channel's deliveries, a
channel's inbox) are claimed through a `Lease` row named after the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, or_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from bot.holders import holder_gone, holder_name
from bot.models import Lease

__all__ = ["holder_gone", "holder_id"]


def holder_id() -> str:
    """A name for this process's claims (bot.holders): host:pid:nonce."""
    return holder_name()


def _columns(table: Any) -> tuple[Any, Any, Any]:
    return col(table.id), col(table.claimed_by), col(table.claimed_until)


async def claim(
    session: AsyncSession,
    table: Any,
    *,
    ready: ColumnElement[bool],
    order_by: Sequence[Any],
    limit: int,
    holder: str,
    now: datetime,
    ttl: timedelta,
) -> list[int]:
    """Claim up to `limit` rows of `table` matching `ready` that no one else holds; return
    their ids (in no particular order). The claim lasts until `now + ttl`."""
    id_, claimed_by, claimed_until = _columns(table)
    free = or_(claimed_until.is_(None), claimed_until < now, claimed_by == holder)
    pick = select(id_).where(ready, free).order_by(*order_by).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    result = await session.execute(
        update(table)
        .where(id_.in_(pick.scalar_subquery()))
        .values(claimed_by=holder, claimed_until=now + ttl)
        .returning(id_)
        .execution_options(synchronize_session=False)
    )
    return [int(row) for row in result.scalars()]


async def renew(
    session: AsyncSession, table: Any, ids: Sequence[int], *, holder: str, until: datetime
) -> list[int]:
    """Extend our claims on `ids` to `until`; return the ids still ours (a claim that expired
    and was taken over is not renewed: its new holder does the work)."""
    if not ids:
        return []
    id_, claimed_by, _ = _columns(table)
    result = await session.execute(
        update(table)
        .where(id_.in_(list(ids)), claimed_by == holder)
        .values(claimed_until=until)
        .returning(id_)
        .execution_options(synchronize_session=False)
    )
    return [int(row) for row in result.scalars()]


async def release(session: AsyncSession, table: Any, ids: Sequence[int], *, holder: str) -> None:
    """Give up our claims on `ids` at once, so another process need not wait for them to expire."""
    if not ids:
        return
    id_, claimed_by, _ = _columns(table)
    await session.execute(
        update(table)
        .where(id_.in_(list(ids)), claimed_by == holder)
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )


async def take_lease(
    session: AsyncSession, name: str, *, holder: str, now: datetime, ttl: timedelta
) -> bool:
    """Hold the lease called `name` until `now + ttl` if it is free, expired or ours already."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(Lease).values(name=name).on_conflict_do_nothing(index_elements=["name"])
    )
    taken = await claim(
        session,
        Lease,
        ready=col(Lease.name) == name,
        order_by=(),
        limit=1,
        holder=holder,
        now=now,
        ttl=ttl,
    )
    return bool(taken)


async def drop_lease(session: AsyncSession, name: str, *, holder: str) -> None:
    """Release the lease called `name` if we hold it."""
    await session.execute(
        update(Lease)
        .where(col(Lease.name) == name, col(Lease.claimed_by) == holder)
        .values(claimed_by=None, claimed_until=None)
    )


async def lease_holder(session: AsyncSession, name: str, *, now: datetime) -> str | None:
    """Who holds the lease called `name` now (None when free or expired)."""
    row = (
        await session.execute(
            select(col(Lease.claimed_by), col(Lease.claimed_until)).where(col(Lease.name) == name)
        )
    ).first()
    if row is None or row[1] is None or row[1] <= now:
        return None
    return str(row[0])
