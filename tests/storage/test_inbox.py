"""The inbox table (storage/inbox.py) and ambient transactions (SqlStore.transaction), on SQLite
and PostgreSQL: keys stored once, a queue's head claimed in order, a row marked applied only by
its holder, and a unit's changes committed (or not) with the transaction around it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from bot import retention
from bot.models import InboxItem, InboxState, IncidentCounter
from storage import inbox as db
from storage.store import SqlStore

T0 = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def item(key: str, queue: str = "slack:C1", text: str = "") -> db.NewItem:
    return db.NewItem("slack", key, queue, "command", {"text": text or key}, "https://hook/x")


async def rows(store: SqlStore) -> list[tuple[str, str, str]]:
    async with store.transaction() as s:
        found = await s.execute(
            select(col(InboxItem.key), col(InboxItem.queue), col(InboxItem.state)).order_by(
                col(InboxItem.id)
            )
        )
        return [(k, q, str(st)) for k, q, st in found.all()]


async def test_a_key_is_stored_once_and_each_item_knows_what_is_ahead(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    async with store.transaction() as s:
        first = await db.put(s, [item("a"), item("b"), item("a")], now=T0)
    async with store.transaction() as s:
        again = await db.put(s, [item("b"), item("c")], now=T0)
    assert [(r.new, r.ahead) for r in first] == [(True, 0), (True, 1), (False, 2)]
    assert [(r.new, r.ahead) for r in again] == [(False, 2), (True, 2)]
    assert [k for k, _, _ in await rows(store)] == ["a", "b", "c"]


async def test_the_head_of_a_queue_is_claimed_in_order_and_only_as_far_as_it_is_free(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    async with store.transaction() as s:
        await db.put(s, [item(f"k{i}", "slack:C1") for i in range(5)], now=T0)
        await db.put(s, [item("other", "slack:C2")], now=T0)
    async with store.transaction() as s:
        mine = await db.claim_head(s, "slack:C1", holder="me", now=T0, ttl=TTL, limit=2)
    assert [i.key for i in mine] == ["k0", "k1"]
    # Someone else holds k0..k1: nothing after them is handed out (the order would break).
    async with store.transaction() as s:
        assert await db.claim_head(s, "slack:C1", holder="you", now=T0, ttl=TTL, limit=5) == []
        assert await db.pending_queues(s, platforms=["slack"], limit=5) == ["slack:C1", "slack:C2"]
        assert await db.pending_queues(s, platforms=["discord"], limit=5) == []
    async with store.transaction() as s:
        assert await db.mark_applied(s, [mine[0].id or 0], holder="me", now=T0)
    later = T0 + TTL + timedelta(seconds=1)  # my claim on k1 expired: it is taken over
    async with store.transaction() as s:
        taken = await db.claim_head(s, "slack:C1", holder="you", now=later, ttl=TTL, limit=3)
    assert [i.key for i in taken] == ["k1", "k2", "k3"]
    async with store.transaction() as s:
        # Too late for me: k1 is no longer mine, so I may not mark it (I roll back instead).
        assert not await db.mark_applied(s, [mine[1].id or 0], holder="me", now=later)
        both = [taken[0].id or 0, mine[1].id or 0]  # the same row: k1 was mine, now yours
        assert await db.mark_applied(s, both, holder="you", now=later)
        assert not await db.mark_applied(s, [taken[1].id or 0, taken[0].id or 0],
                                         holder="you", now=later)


async def test_applied_rows_forget_their_answer_address_and_failed_rows_say_why(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    async with store.transaction() as s:
        await db.put(s, [item("ok"), item("bad")], now=T0)
        ok, bad = await db.claim_head(s, "slack:C1", holder="me", now=T0, ttl=TTL, limit=2)
        assert await db.mark_applied(s, [ok.id or 0], holder="me", now=T0)
        failed = await db.record_failure(s, bad.id or 0, holder="me", error="boom", give_up=False)
        assert failed == 1
    async with store.transaction() as s:
        assert await db.pending_count(s) == 1 and await db.oldest_pending(s) == T0
        [again] = await db.claim_head(s, "slack:C1", holder="me", now=T0, ttl=TTL, limit=2)
        assert await db.record_failure(s, again.id or 0, holder="me", error="x" * 900,
                                       give_up=True) == 2
    async with store.transaction() as s:
        found = {
            r.key: r for r in (await s.execute(select(InboxItem))).scalars()
        }
        assert await db.pending_count(s) == 0 and await db.oldest_pending(s) is None
    assert (found["ok"].state, found["ok"].reply_to, found["ok"].applied_at) == (
        InboxState.APPLIED, None, T0)
    assert (found["bad"].state, found["bad"].reply_to) == (InboxState.FAILED, None)
    assert found["bad"].last_error is not None and len(found["bad"].last_error) == db.ERROR_MAX
    async with store.transaction() as s:
        assert await db.prune(s, before=T0) == 0
        assert await db.prune(s, before=T0 + timedelta(days=8)) == 2


async def counter(store: SqlStore) -> int:
    async with store.transaction() as s:
        value = await s.execute(select(col(IncidentCounter.value)))
        return int(value.scalar_one())


async def test_units_inside_an_ambient_transaction_commit_with_it_or_not_at_all(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)

    async def bump() -> None:
        async with store.unit() as u:
            await u.next_incident_number()

    async def bump_then_fail() -> None:
        async with store.unit() as u:
            await u.next_incident_number()
            raise ValueError("refused")

    async with store.transaction(ambient=True):
        await bump()
        with pytest.raises(ValueError):
            await bump_then_fail()  # its savepoint rolls back; the transaction goes on
        await bump()
    assert await counter(store) == 2

    with pytest.raises(RuntimeError):
        async with store.transaction(ambient=True):
            await bump()
            raise RuntimeError("crash before the commit")
    assert await counter(store) == 2  # nothing of it was kept

    await bump()  # outside: a unit of its own again
    assert await counter(store) == 3
    async with store.transaction() as s:
        assert (await s.execute(select(func.count()).select_from(InboxItem))).scalar_one() == 0


async def test_the_retention_job_prunes_applied_rows_older_than_the_retention(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    async with store.transaction() as s:
        await db.put(s, [item("old"), item("waiting")], now=T0)
        old, _ = await db.claim_head(s, "slack:C1", holder="me", now=T0, ttl=TTL, limit=2)
        assert await db.mark_applied(s, [old.id or 0], holder="me", now=T0)
        await db.put(s, [item("recent")], now=T0 + timedelta(days=40))
    async with store.unit() as u:
        pruned = await retention.prune(u, before=T0 + timedelta(days=30))
    assert pruned["inbox"] == 1
    async with store.transaction() as s:
        left = {r.key for r in (await s.execute(select(InboxItem))).scalars()}
    assert left == {"waiting", "recent"}  # a pending row stays whatever its age
