"""Retention: a daily job prunes finished jobs and the deliveries that map no posted message once
they are older than OPSROOM_RETENTION; the timeline and the message -> entry map stay."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot import retention
from bot.catalog import Catalog
from bot.jobs import JobWorker, new_job
from bot.models import Delivery, DeliveryAction, Job, JobState, TimelineEntry
from tests.conftest import build_core
from tests.fakes.clock import FakeClock


async def count(engine: AsyncEngine, model: type, *where: object) -> int:
    async with engine.connect() as conn:
        query = select(func.count()).select_from(model).where(*where)  # type: ignore[arg-type]
        return int((await conn.execute(query)).scalar_one())


async def ids(engine: AsyncEngine, *where: object) -> set[int]:
    async with engine.connect() as conn:
        query = select(Delivery.id).where(*where)  # type: ignore[call-overload,arg-type]
        return set((await conn.execute(query)).scalars())


async def test_old_finished_rows_go_the_timeline_and_the_message_map_stay(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    core = build_core(any_engine, catalog, clock)
    core.mirror.clock = clock
    worker = JobWorker(store=core.store, catalog=catalog, record=core.service.record,
                       clock=clock, notify=core.mirror.wake)
    assert (await core.run("declare checkout errors for many customers")).ok
    room = core.where(core.incident_channel(1))
    for i in range(5):
        assert (await core.run(f"note step {i}", where=room)).ok
    now = clock.now()
    async with core.store.unit() as u:
        await u.add(Job(kind="reminder", key="fired", due_at=now, state=JobState.DONE,
                        finished_at=now, created_at=now))
        await u.schedule(new_job("reminder", "later", now + timedelta(days=90), now=now))
    posts = await ids(any_engine, Delivery.action == DeliveryAction.POST_ENTRY)
    others = await ids(any_engine, Delivery.action != DeliveryAction.POST_ENTRY)
    entries = await count(any_engine, TimelineEntry)
    assert len(posts) >= 5 and others

    # 10 days on: nothing is old enough yet.
    clock.advance(days=10)
    await retention.schedule_daily(core.store, now=clock.now(), retention=timedelta(days=30))
    await worker.run_once()  # reminders may fire; the prune is not due yet
    clock.advance(days=1)  # past 03:00 UTC: the day's prune is due
    await worker.run_once()
    assert await ids(any_engine) >= posts | others
    assert await count(any_engine, Job, Job.key == "fired") == 1

    # 31 days after: the refreshes, archives and skips go; posts, entries and pending work stay.
    clock.advance(days=20)
    await retention.schedule_daily(core.store, now=clock.now(), retention=timedelta(days=30))
    clock.advance(days=1)
    await worker.run_once()
    assert await count(any_engine, TimelineEntry) >= entries  # reminders may have added some
    left = await ids(any_engine)
    assert left >= posts and not left & others
    assert await count(any_engine, Job, Job.key == "later") == 1
    assert await count(any_engine, Job, Job.key == "fired") == 0
    # A 📌 on a message the bot posted still finds its entry.
    async with any_engine.connect() as conn:
        link_id, mid = (await conn.execute(select(Delivery.link_id, Delivery.message_id).where(
            Delivery.action == DeliveryAction.POST_ENTRY).limit(1))).one()  # type: ignore[call-overload]
    async with core.store.unit() as u:
        assert await u.posted_entry(link_id, mid) is not None
    # The next day's run waits, once however often it is scheduled (restarts, replicas).
    await retention.schedule_daily(core.store, now=clock.now(), retention=timedelta(days=30))
    days = await count(any_engine, Job, Job.kind == retention.KIND,
                       Job.state == JobState.PENDING)  # type: ignore[arg-type]
    assert days == 1
