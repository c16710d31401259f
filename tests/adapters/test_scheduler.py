"""The APScheduler edge: crontab lines as triggers (Sunday is 0), the date trigger woken by a
commit, the digest keyed by its occurrence, and no durable state in APScheduler.

The worker and the scheduler's own decisions use a fake clock; APScheduler keeps real time, so
a job due at the fake clock's time is in the real past and its date trigger fires at once."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from apscheduler.jobstores.memory import MemoryJobStore
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.scheduler import JobScheduler, crontab_trigger, previous_fire
from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.models import JobState
from tests.conftest import Core, build_core
from tests.fakes.clock import FakeClock

UTC_ZONE = ZoneInfo("UTC")
WEDNESDAY_10 = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)


def next_fires(expr: str, count: int = 3, tz: ZoneInfo = UTC_ZONE) -> list[str]:
    trigger = crontab_trigger(expr, tz)
    fires, moment = [], WEDNESDAY_10
    for _ in range(count):
        moment = trigger.get_next_fire_time(None, moment + timedelta(seconds=1))
        fires.append(moment.strftime("%a %d %H:%M %Z"))
    return fires


@pytest.mark.parametrize(
    ("expr", "expected"),
    [
        ("0 9 * * *", ["Thu 26 09:00 UTC", "Fri 27 09:00 UTC", "Sat 28 09:00 UTC"]),
        ("0 9 * * 0", ["Sun 29 09:00 UTC", "Sun 06 09:00 UTC", "Sun 13 09:00 UTC"]),
        ("0 9 * * 7", ["Sun 29 09:00 UTC", "Sun 06 09:00 UTC", "Sun 13 09:00 UTC"]),
        ("0 9 * * 1-5", ["Thu 26 09:00 UTC", "Fri 27 09:00 UTC", "Mon 30 09:00 UTC"]),
        ("0 9 * * 5-7", ["Fri 27 09:00 UTC", "Sat 28 09:00 UTC", "Sun 29 09:00 UTC"]),
        ("0 9 * * */2", ["Thu 26 09:00 UTC", "Sat 28 09:00 UTC", "Sun 29 09:00 UTC"]),
        ("30 8 * * mon,wed", ["Mon 30 08:30 UTC", "Wed 02 08:30 UTC", "Mon 07 08:30 UTC"]),
    ],
)
def test_crontab_weekdays_count_from_sunday(expr: str, expected: list[str]) -> None:
    assert next_fires(expr) == expected


def test_cron_runs_in_the_catalog_timezone_and_finds_the_last_occurrence() -> None:
    paris = ZoneInfo("Europe/Paris")
    assert next_fires("0 9 * * *", 1, paris) == ["Thu 26 09:00 CET"]
    trigger = crontab_trigger("0 9 * * *", UTC_ZONE)
    assert previous_fire(trigger, WEDNESDAY_10, timedelta(hours=6)) == WEDNESDAY_10.replace(hour=9)
    assert previous_fire(trigger, WEDNESDAY_10.replace(hour=8), timedelta(hours=6)) is None


async def settle(check: object, timeout: float = 10.0) -> None:
    """Wait for `check()` to hold (the scheduler runs in the background)."""
    for _ in range(int(timeout / 0.02)):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the scheduler never got there")


def rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> tuple[Core, JobScheduler]:
    core = build_core(engine, catalog, clock)
    worker = JobWorker(store=core.store, catalog=catalog, record=core.service.record,
                       clock=clock, notify=core.mirror.wake)
    scheduler = JobScheduler(worker=worker, store=core.store, catalog=catalog, tick_s=3600,
                             clock=clock)
    core.service._notify = lambda: (core.mirror.wake(), scheduler.wake())  # as build_core wires
    return core, scheduler


async def job_states(core: Core) -> dict[str, JobState]:
    async with core.store.unit() as u:
        return {j.key: j.state for j in await u.jobs(states=list(JobState), limit=100)}


async def test_a_commit_arms_the_date_trigger_without_waiting_for_the_tick(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    core, scheduler = rig(engine, catalog.model_copy(update={"action_digest": None}), clock)
    await scheduler.start()
    try:
        assert scheduler.scheduler.get_job("tick").misfire_grace_time is None
        assert scheduler.scheduler.get_job("tick").coalesce is True
        assert all(isinstance(s, MemoryJobStore) for s in scheduler.scheduler._jobstores.values())
        reply = await core.run("declare the API is down for everyone")  # ack due in 5m
        clock.advance(minutes=6)
        scheduler.wake()  # what a commit does; the tick is an hour away
        await settle(lambda: _done(core, "ack:1"))
        assert await core.mirror.drain(timeout=5)
        channel = core.incident_channel(reply.incident or 0)
        assert any("is still not acknowledged" in t for t in core.chat.texts(channel))
    finally:
        await scheduler.stop()
    assert not scheduler.scheduler.running


async def test_a_wake_inside_an_inbox_transaction_arms_the_trigger_once_it_commits(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The inbox applies commands inside one transaction (the store's ambient session); the
    service wakes the scheduler from inside it, the inbox again after the commit. The rearm
    must read the due time on a session of its own, not on the inbox's (then committing)."""
    core, scheduler = rig(engine, catalog.model_copy(update={"action_digest": None}), clock)
    await scheduler.start()
    try:
        async with core.store.transaction(ambient=True):
            await core.run("declare the API is down for everyone")  # wakes: ack due in 5m
            clock.advance(minutes=6)
        scheduler.wake()  # the inbox's wake after its commit; the tick is an hour away
        await settle(lambda: _done(core, "ack:1"))
    finally:
        await scheduler.stop()
    # Run on the inbox's session, the rearm failed ("concurrent operations are not permitted",
    # or "in 'prepared' state" when it met the commit), or could fail the inbox's own work.
    assert "cannot read the next due time" not in caplog.text


async def _done(core: Core, key: str) -> bool:
    return (await job_states(core)).get(key) is JobState.DONE


async def test_the_digest_is_one_job_per_occurrence_whatever_the_replicas(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    clock = FakeClock(WEDNESDAY_10.replace(hour=8))
    core, first = rig(engine, catalog, clock)
    await core.run("declare the API is down for everyone")
    await core.run("#1 action add rotate the keys @bob due in 30m")
    clock.current = WEDNESDAY_10  # 09:00 passed while nothing ran: made up at start, once
    _, second = rig(engine, catalog, clock)
    await first.start()
    await second.start()
    try:
        key = "action_digest:2026-11-25T09:00:00+00:00"
        await settle(lambda: _done(core, key))
        assert [k for k in await job_states(core) if k.startswith("action_digest")] == [key]
        assert await core.mirror.drain(timeout=5)
        digests = [t for t in core.chat.texts(core.incident_channel(1)) if "Overdue action" in t]
        assert digests == [
            "⏰ Overdue action items of #1 (late by 1 h: Opsroom was not running):\n"
            "[ ] 1. rotate the keys · @bob · OVERDUE 08:30 UTC"
        ]
    finally:
        await first.stop()
        await second.stop()
