"""Jobs in the store: idempotent scheduling, cancelling, claiming; and racing workers, in one
process and in two, firing each of 500 due reminders exactly once (counted in the fake Slack).
On SQLite, and on PostgreSQL when it is configured."""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from adapters.slack.chat import SlackChat
from bot.catalog import Catalog
from bot.jobs import JobWorker, new_job
from bot.mirror import Backoff, Mirror
from bot.models import EntryKind, JobState, TimelineEntry
from bot.ports import ChannelRef
from storage.store import SqlStore
from tests.conftest import ALICE, close_engine, open_engine
from tests.fakes import slack as fs
from tests.fakes.clock import FakeClock
from tests.storage.jobs_support import seed_due_actions, service_on
from tests.storage.support import same_database

ROOT = str(Path(__file__).resolve().parents[2])
T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


async def _states(store: SqlStore) -> dict[str, tuple[JobState, datetime]]:
    async with store.unit() as u:
        rows = await u.jobs(states=list(JobState), limit=100)
    return {j.key: (j.state, j.due_at) for j in rows}


async def test_scheduling_is_idempotent_by_key_and_revives_only_what_was_cancelled(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    async with store.unit() as u:
        await u.schedule(new_job("k", "a", T0, now=T0))
        await u.schedule(new_job("k", "a", T0 + timedelta(hours=1), now=T0))  # no-op
        await u.schedule(new_job("k", "b", T0, now=T0))
        await u.schedule(new_job("k", "b", T0 + timedelta(hours=2), now=T0), move=True)
    assert await _states(store) == {
        "a": (JobState.PENDING, T0),
        "b": (JobState.PENDING, T0 + timedelta(hours=2)),
    }
    async with store.unit() as u:
        assert await u.cancel_jobs(now=T0, key="a") == 1
        assert await u.cancel_jobs(now=T0, key="a") == 0  # only pending jobs are cancelled
    async with store.unit() as u:
        await u.schedule(new_job("k", "a", T0 + timedelta(hours=3), now=T0))  # its reason is back
        claimed = await u.claim_jobs(holder="w", now=T0 + timedelta(hours=5), ttl=TTL, limit=10)
        assert sorted(j.key for j in claimed) == ["a", "b"]
        await u.schedule(new_job("k", "a", T0, now=T0), move=True)  # running: left alone
    states = await _states(store)
    assert states["a"] == (JobState.RUNNING, T0 + timedelta(hours=3))


async def test_cancel_by_prefix_keeps_what_is_asked_and_other_incidents(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    store = SqlStore(any_engine)
    clock = FakeClock(T0)
    service = service_on(store, catalog, clock, "console")
    where = ChannelRef("console", "general")
    for title in ("One", "Two"):
        await service.declare(actor=ALICE, where=where, description=title, title=title,
                              type="outage", severity="sev4", priority="p3")
    async with store.unit() as u:
        one, two = await u.incident(1), await u.incident(2)
        assert one is not None and two is not None
        for inc in (one, two):
            for n in range(3):
                await u.schedule(new_job("x", f"x:{inc.id}:{n}", T0, now=T0, incident_id=inc.id))
        assert await u.cancel_jobs(now=T0, incident_id=one.id, prefix=f"x:{one.id}:",
                                   keep=[f"x:{one.id}:1"]) == 2
        kept = [j.key for j in await u.pending_jobs(one.id or 0) if j.kind == "x"]
        other = [j.key for j in await u.pending_jobs(two.id or 0) if j.kind == "x"]
    assert kept == [f"x:{one.id}:1"]
    assert len(other) == 3
    with pytest.raises(ValueError, match="needs a key or a key prefix"):
        async with store.unit() as u:
            await u.cancel_jobs(now=T0, incident_id=one.id)


async def test_claims_take_due_jobs_and_expired_claims_and_skip_backoffs(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    async with store.unit() as u:
        for key, due in (("due", T0), ("later", T0 + timedelta(hours=1)), ("held", T0)):
            await u.schedule(new_job("k", key, due, now=T0))
        assert await u.next_job_at() == T0
        first = await u.claim_jobs(holder="dead", now=T0, ttl=TTL, limit=1)
    assert [(j.key, j.state, j.attempts) for j in first] == [("due", JobState.RUNNING, 1)]
    async with store.unit() as u:
        held = next(j for j in await u.jobs(states=[JobState.PENDING], limit=10) if j.key == "held")
        held.claimed_until = T0 + timedelta(minutes=5)  # as a failed attempt's backoff leaves it
    async with store.unit() as u:
        assert await u.claim_jobs(holder="other", now=T0 + timedelta(seconds=1), ttl=TTL,
                                  limit=10) == []
        assert await u.next_job_at() == T0 + TTL  # when the dead worker's claim runs out
    async with store.unit() as u:
        taken = await u.claim_jobs(holder="other", now=T0 + TTL + timedelta(seconds=1), ttl=TTL,
                                   limit=10)
    assert [(j.key, j.claimed_by, j.attempts) for j in taken] == [("due", "other", 2)]
    async with store.unit() as u:
        late = await u.claim_jobs(holder="other", now=T0 + timedelta(hours=2), ttl=TTL, limit=10)
    assert sorted(j.key for j in late) == ["due", "held", "later"]  # "due": still ours


async def _fire_race(
    engine: AsyncEngine, tmp_path: Path, catalog: Catalog, run_workers: object
) -> None:
    """Seed 500 reminders due at once on 10 incidents with Slack channels; let `run_workers`
    fire them; deliver what they recorded to the fake Slack; each must be there exactly once."""
    clock = FakeClock(T0)
    store = SqlStore(engine)
    async with fs.FakeSlack() as fake:
        chat = SlackChat(AsyncWebClient(token=fake.token, base_url=fake.api_url))
        mirror = Mirror(store=store, ports={"slack": chat}, catalog=catalog, clock=clock,
                        backoff=Backoff(base=0.001, cap=0.01))
        service = service_on(store, catalog, clock, "slack")
        where = ChannelRef("slack", fake.general_id, workspace=fs.TEAM_ID)
        due = await seed_due_actions(service, where, incidents=10, per_incident=50)
        assert await mirror.drain(timeout=30)  # the channels exist before anything fires
        clock.current = due

        fired = await run_workers(due)  # type: ignore[operator]
        assert sum(fired) == 500 and all(fired), fired

        assert await mirror.drain(timeout=120)
        posted: Counter[str] = Counter()
        for call in fake.calls_to("chat.postMessage"):
            text = call.params.get("text") or ""
            if call.ok and "Action item" in text and " is due: " in text:
                posted[text] += 1
        assert len(posted) == 500 and set(posted.values()) == {1}
        async with store.unit() as u:
            left = await u.jobs(states=[JobState.PENDING, JobState.RUNNING], limit=1000)
        assert [j.kind for j in left if j.due_at <= due] == []
        async with engine.connect() as conn:
            reminders = (await conn.execute(
                select(func.count()).select_from(TimelineEntry)
                .where(col(TimelineEntry.kind) == EntryKind.REMINDER)
            )).scalar_one()
        assert reminders == 500


async def test_two_workers_on_one_database_fire_500_due_jobs_exactly_once(
    any_engine: AsyncEngine, tmp_path: Path, catalog: Catalog
) -> None:
    async def two_workers(due: datetime) -> list[int]:
        async with same_database(any_engine, 4) as a, same_database(any_engine, 4) as b:
            workers = []
            for engine, name in ((a, "a"), (b, "b")):
                store = SqlStore(engine)
                clock = FakeClock(due)
                service = service_on(store, catalog, clock, "slack")
                workers.append(JobWorker(store=store, catalog=catalog, record=service.record,
                                         clock=clock, holder=name, batch=25))
            return list(await asyncio.gather(*(w.run_once() for w in workers)))

    await _fire_race(any_engine, tmp_path, catalog, two_workers)


async def test_two_processes_on_one_sqlite_file_fire_500_due_jobs_exactly_once(
    tmp_path: Path, catalog: Catalog
) -> None:
    engine, schema = await open_engine("sqlite", tmp_path)
    url = f"sqlite:///{engine.url.database}"

    async def two_processes(due: datetime) -> list[int]:
        procs = [
            await asyncio.create_subprocess_exec(
                sys.executable, "-m", "tests.storage.jobs_support", url, due.isoformat(),
                cwd=ROOT, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None
            assert (await asyncio.wait_for(proc.stdout.readline(), 30)).strip() == b"ready"
        for proc in procs:  # both are ready: go
            assert proc.stdin is not None
            proc.stdin.write(b"go\n")
            await proc.stdin.drain()
        outs = [await asyncio.wait_for(p.communicate(), 120) for p in procs]
        assert [p.returncode for p in procs] == [0, 0]
        return [int(out.decode().split()[-1]) for out, _ in outs]

    try:
        await _fire_race(engine, tmp_path, catalog, two_processes)
    finally:
        await close_engine(engine, schema)
