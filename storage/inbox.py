"""The inbox table: store acknowledged inputs, claim a queue's head, mark rows applied.

The rules that make it durable and ordered live in adapters/inbox.py; this module is the SQL.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import delete, func, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col, select

from bot.models import InboxItem, InboxState
from bot.ports import Unit
from bot.retention import PRUNE_HOOKS
from storage.claims import claim, release
from storage.store import SqlUnit

ERROR_MAX = 500  # characters of an error kept in last_error


@dataclass(frozen=True)
class NewItem:
    platform: str
    key: str
    queue: str
    kind: str
    payload: dict[str, Any]
    reply_to: str | None = None


@dataclass(frozen=True)
class Stored:
    """What `put` did with one item: `new` is False for a key stored before (a replay)."""

    new: bool
    ahead: int  # rows not yet applied that were stored before this one


async def put(session: AsyncSession, items: Sequence[NewItem], *, now: datetime) -> list[Stored]:
    """Insert `items` in one statement; a key already there (or twice in `items`) is kept once.
    Returns, per item, whether it is new and how many unapplied rows are ahead of it."""
    if not items:
        return []
    ahead = await pending_count(session)
    rows = [
        {
            "platform": i.platform,
            "key": i.key,
            "queue": i.queue,
            "kind": i.kind,
            "payload": i.payload,
            "reply_to": i.reply_to,
            "state": InboxState.PENDING,
            "received_at": now,
            "attempts": 0,
        }
        for i in items
    ]
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    result = await session.execute(
        insert(InboxItem)
        .values(rows)
        .on_conflict_do_nothing(index_elements=["platform", "key"])
        .returning(col(InboxItem.platform), col(InboxItem.key))
    )
    inserted = {(platform, key) for platform, key in result.all()}
    stored: list[Stored] = []
    for item in items:
        new = (item.platform, item.key) in inserted
        inserted.discard((item.platform, item.key))  # a second copy in the batch is a replay
        stored.append(Stored(new=new, ahead=ahead))
        ahead += new
    return stored


async def pending_count(session: AsyncSession) -> int:
    result = await session.execute(
        select(func.count())
        .select_from(InboxItem)
        .where(col(InboxItem.state) == InboxState.PENDING)
    )
    return int(result.scalar_one())


async def oldest_pending(session: AsyncSession) -> datetime | None:
    """When the oldest row not yet applied was received (None when every row is applied)."""
    result = await session.execute(
        select(col(InboxItem.received_at))
        .where(col(InboxItem.state) == InboxState.PENDING)
        .order_by(col(InboxItem.id))
        .limit(1)
    )
    return result.scalar_one_or_none()


async def pending_queues(
    session: AsyncSession, *, platforms: Sequence[str], limit: int
) -> list[str]:
    """Queues with rows to apply, the one waiting longest first."""
    first = func.min(col(InboxItem.id))
    result = await session.execute(
        select(col(InboxItem.queue))
        .where(
            col(InboxItem.state) == InboxState.PENDING,
            col(InboxItem.platform).in_(list(platforms)),
        )
        .group_by(col(InboxItem.queue))
        .order_by(first)
        .limit(limit)
    )
    return [str(q) for q in result.scalars()]


async def claim_head(
    session: AsyncSession,
    queue: str,
    *,
    holder: str,
    now: datetime,
    ttl: timedelta,
    limit: int,
) -> list[InboxItem]:
    """Claim the first `limit` unapplied rows of `queue`, in order. A row someone else still
    holds ends the claim there: nothing after it is taken, so the queue's order is kept."""
    head = list(
        (
            await session.execute(
                select(col(InboxItem.id))
                .where(col(InboxItem.queue) == queue, col(InboxItem.state) == InboxState.PENDING)
                .order_by(col(InboxItem.id))
                .limit(limit)
            )
        ).scalars()
    )
    if not head:
        return []
    got = set(
        await claim(
            session,
            InboxItem,
            ready=col(InboxItem.id).in_(head),
            order_by=[col(InboxItem.id)],
            limit=limit,
            holder=holder,
            now=now,
            ttl=ttl,
        )
    )
    prefix = []
    for item_id in head:
        if item_id not in got:
            break
        prefix.append(item_id)
    await release(session, InboxItem, sorted(got - set(prefix)), holder=holder)
    if not prefix:
        return []
    rows = await session.execute(
        select(InboxItem).where(col(InboxItem.id).in_(prefix)).order_by(col(InboxItem.id))
    )
    return list(rows.scalars())


async def mark_applied(
    session: AsyncSession, item_ids: Sequence[int], *, holder: str, now: datetime
) -> bool:
    """Mark rows we hold applied and forget where their answers go. False when any of them is
    no longer ours (our claim expired and another worker took it over): roll back then."""
    if not item_ids:
        return True
    result = await session.execute(
        update(InboxItem)
        .where(
            col(InboxItem.id).in_(list(item_ids)),
            col(InboxItem.claimed_by) == holder,
            col(InboxItem.state) == InboxState.PENDING,
        )
        .values(
            state=InboxState.APPLIED,
            applied_at=now,
            reply_to=None,
            claimed_until=None,
            attempts=col(InboxItem.attempts) + 1,
        )
        .returning(col(InboxItem.id))
        .execution_options(synchronize_session=False)
    )
    return len(result.all()) == len(set(item_ids))


async def record_failure(
    session: AsyncSession, item_id: int, *, holder: str, error: str, give_up: bool
) -> int:
    """Count a failed attempt on a row we hold; with `give_up`, the row is failed for good
    (the queue moves on). Returns the attempts made so far."""
    values: dict[str, Any] = {
        "attempts": col(InboxItem.attempts) + 1,
        "last_error": error[:ERROR_MAX],
        "claimed_until": None,
        "claimed_by": None,
    }
    if give_up:
        values.update(state=InboxState.FAILED, reply_to=None)
    result = await session.execute(
        update(InboxItem)
        .where(col(InboxItem.id) == item_id, col(InboxItem.claimed_by) == holder)
        .values(**values)
        .returning(col(InboxItem.attempts))
        .execution_options(synchronize_session=False)
    )
    return int(result.scalar_one_or_none() or 0)


async def release_holder(session: AsyncSession, holder: str) -> int:
    """Free every row `holder` claimed (a process known to be dead); returns how many."""
    result = await session.execute(
        update(InboxItem)
        .where(col(InboxItem.claimed_by) == holder, col(InboxItem.state) == InboxState.PENDING)
        .values(claimed_by=None, claimed_until=None)
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)


async def prune(session: AsyncSession, *, before: datetime, limit: int | None = None) -> int:
    """Delete rows applied (or failed) before `before`, at most `limit` of them: their keys
    are past any replay."""
    done = (col(InboxItem.state) != InboxState.PENDING, col(InboxItem.received_at) < before)
    query = delete(InboxItem)
    if limit is None:
        query = query.where(*done)
    else:
        oldest = select(col(InboxItem.id)).where(*done).limit(limit)
        query = query.where(col(InboxItem.id).in_(oldest))
    result = await session.execute(query.execution_options(synchronize_session=False))
    return int(getattr(result, "rowcount", 0) or 0)


async def prune_for_retention(u: Unit, before: datetime, limit: int) -> int:
    """The retention job's hook (bot/retention.py): applied inbox rows older than
    OPSROOM_RETENTION go with the finished jobs and deliveries, in the same transaction."""
    return await prune(cast(SqlUnit, u).session, before=before, limit=limit)


PRUNE_HOOKS["inbox"] = prune_for_retention
