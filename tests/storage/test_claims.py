"""Claims (storage/claims.py): racing processes get disjoint work, expired claims are taken
over, and a lease has one holder at a time. On SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import insert, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from sqlmodel import col

from bot.models import Lease
from storage.claims import (
    claim,
    drop_lease,
    holder_id,
    lease_holder,
    release,
    renew,
    take_lease,
)
from tests.storage.support import same_database

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)
ROWS = 200


async def _seed(engine: AsyncEngine) -> None:
    async with engine.begin() as conn:
        await conn.execute(insert(Lease), [{"name": f"q{i:03}"} for i in range(ROWS)])


async def _claim(
    engine: AsyncEngine, holder: str, now: datetime, limit: int = 7, finish: bool = False
) -> list[int]:
    """Claim rows still to do; with `finish`, do them (mark them done) in the same transaction,
    as a worker commits a job's effects with its completion."""
    sessions = async_sessionmaker(engine)
    async with sessions() as session, session.begin():
        ids = await claim(
            session, Lease, ready=col(Lease.name).not_like("%done"), order_by=[col(Lease.name)],
            limit=limit, holder=holder, now=now, ttl=TTL,
        )
        if finish and ids:
            await session.execute(
                update(Lease).where(col(Lease.id).in_(ids)).values(name=col(Lease.name) + "done")
            )
        return ids


async def test_racing_claimers_on_two_engines_take_every_row_exactly_once(
    any_engine: AsyncEngine,
) -> None:
    await _seed(any_engine)
    got: dict[str, list[int]] = {}

    async def worker(engine: AsyncEngine, holder: str) -> None:
        mine = got.setdefault(holder, [])
        while batch := await _claim(engine, holder, T0, finish=True):
            assert not set(batch) & set(mine), "a claimer was handed its own row twice"
            mine.extend(batch)

    async with same_database(any_engine, 4) as a, same_database(any_engine, 4) as b:
        await asyncio.gather(*(worker(e, f"{n}{i}") for n, e in (("a", a), ("b", b))
                               for i in range(4)))
    everything = [i for ids in got.values() for i in ids]
    assert len(everything) == ROWS and len(set(everything)) == ROWS
    if any_engine.dialect.name == "postgresql":  # SQLite's writers take turns as they come
        assert sum(1 for ids in got.values() if ids) >= 2, "one claimer did all the work"


async def test_a_claim_blocks_others_until_it_expires_then_is_taken_over(
    any_engine: AsyncEngine,
) -> None:
    await _seed(any_engine)
    first = await _claim(any_engine, "dead", T0, limit=ROWS)
    assert len(first) == ROWS
    assert await _claim(any_engine, "other", T0 + TTL - timedelta(seconds=1)) == []
    # The holder itself may claim its rows again (a restart with the same name, a renewal).
    assert len(await _claim(any_engine, "dead", T0, limit=ROWS)) == ROWS
    later = await _claim(any_engine, "other", T0 + TTL + timedelta(seconds=1), limit=ROWS)
    assert sorted(later) == sorted(first)


async def test_renew_keeps_only_what_is_still_ours_and_release_frees_at_once(
    any_engine: AsyncEngine,
) -> None:
    await _seed(any_engine)
    sessions = async_sessionmaker(any_engine)
    mine = await _claim(any_engine, "me", T0, limit=10)
    expired = T0 + TTL + timedelta(seconds=1)
    stolen = await _claim(any_engine, "thief", expired, limit=5)  # the first five, by name
    async with sessions() as session, session.begin():
        kept = await renew(session, Lease, mine, holder="me", until=expired + TTL)
    assert sorted(kept) == sorted(set(mine) - set(stolen)) and len(kept) == 5
    async with sessions() as session, session.begin():
        await release(session, Lease, kept, holder="me")
        await release(session, Lease, stolen, holder="me")  # not ours: untouched
    # The thief's rows stay held; the released ones are free again, first in order.
    free_now = await _claim(any_engine, "third", expired, limit=5)
    assert sorted(free_now) == sorted(kept)


async def _lease(session: AsyncSession, holder: str, now: datetime) -> bool:
    return await take_lease(session, "queue:link:1", holder=holder, now=now, ttl=TTL)


async def test_a_lease_has_one_holder_until_dropped_or_expired(any_engine: AsyncEngine) -> None:
    sessions = async_sessionmaker(any_engine)
    async with sessions() as s, s.begin():
        assert await _lease(s, "a", T0)
    async with sessions() as s, s.begin():
        assert not await _lease(s, "b", T0 + timedelta(seconds=5))
        assert await lease_holder(s, "queue:link:1", now=T0) == "a"
        assert await _lease(s, "a", T0 + timedelta(seconds=5))  # renewal by its holder
    async with sessions() as s, s.begin():
        await drop_lease(s, "queue:link:1", holder="b")  # not b's to drop
        assert await lease_holder(s, "queue:link:1", now=T0) == "a"
        await drop_lease(s, "queue:link:1", holder="a")
        assert await lease_holder(s, "queue:link:1", now=T0) is None
        assert await _lease(s, "b", T0)
    async with sessions() as s, s.begin():
        assert await _lease(s, "c", T0 + TTL + timedelta(seconds=1))


async def test_racing_lease_takers_on_two_engines_one_wins(any_engine: AsyncEngine) -> None:
    async def take(engine: AsyncEngine, holder: str) -> bool:
        async with async_sessionmaker(engine)() as s, s.begin():
            return await _lease(s, holder, T0)

    async with same_database(any_engine, 5) as a, same_database(any_engine, 5) as b:
        won = await asyncio.gather(*(take(e, f"{n}{i}") for n, e in (("a", a), ("b", b))
                                     for i in range(5)))
    assert sum(won) == 1


async def test_a_lease_of_a_process_of_this_host_that_is_gone_is_taken_over_at_once(
    any_engine: AsyncEngine,
) -> None:
    """kill -9, then a restart: the new process takes the dead one's queue leases now instead
    of a lease period later; a live process's lease (another replica) is never taken."""
    import os
    import socket
    import sys

    from bot.ports import LeaseTake
    from storage.store import SqlStore

    child = await asyncio.create_subprocess_exec(sys.executable, "-c", "pass")
    await child.wait()
    host = socket.gethostname()
    dead = f"{host}:{child.pid}:0badf00d"  # that process has exited
    alive = f"{host}:{os.getppid()}:00c0ffee"  # pytest's parent runs
    earlier = f"{host}:{os.getpid()}:5ca1ab1e"  # our pid, a name we never made: a restart
    me = holder_id()
    store = SqlStore(any_engine)
    async with store.unit() as u:
        for name, holder in (("dead", dead), ("alive", alive), ("earlier", earlier),
                             ("elsewhere", f"other-host:{child.pid}:1")):
            assert await u.take_lease(name, holder=holder, now=T0, ttl=TTL) is LeaseTake.TAKEN
    later = T0 + timedelta(seconds=1)  # well before any of them expires
    async with store.unit() as u:
        taken = {name: await u.take_lease(name, holder=me, now=later, ttl=TTL)
                 for name in ("dead", "alive", "earlier", "elsewhere")}
    assert taken == {"dead": LeaseTake.TAKEN_OVER, "alive": LeaseTake.BUSY,
                     "earlier": LeaseTake.TAKEN_OVER, "elsewhere": LeaseTake.BUSY}
    other_replica = holder_id()  # a second worker in this process is alive
    async with store.unit() as u:
        assert await u.take_lease("dead", holder=other_replica, now=later,
                                  ttl=TTL) is LeaseTake.BUSY
