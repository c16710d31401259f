"""Shift-change announcements and the daily coverage check as jobs, with a fake clock driving
`JobWorker.run_once()`: at the instants the schedule computes (across daylight-saving changes),
re-planned by overrides, fired once by two workers, posted through notices."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.jobs import JobWorker, new_job
from bot.mirror import Backoff, Mirror
from bot.models import Job, JobState
from bot.oncall import (
    COVERAGE,
    HANDOFF,
    handoff_key,
    plan_handoffs,
    schedule_coverage_check,
)
from bot.people import PersonSpec
from bot.ports import ChannelRef
from bot.schedules import Schedule
from bot.service import IncidentService, Reply
from bot.suggest import HeuristicSuggester
from storage.store import SqlStore
from tests.conftest import ALICE
from tests.fakes.chat import RecordingChat
from tests.fakes.clock import FakeClock

BERLIN = ZoneInfo("Europe/Berlin")
PEOPLE = [PersonSpec(name="alice", slack="U0ALICE0001"),
          PersonSpec(name="bob", slack="U0BOB000002"), PersonSpec(name="carol")]


def primary(**extra: object) -> Schedule:
    """alice and bob, weekly at Monday 09:00 Berlin time from Monday 1 March 2027."""
    return Schedule.model_validate({
        "name": "primary", "timezone": "Europe/Berlin", "channel": "#oncall", **extra,
        "layers": [{"users": ["alice", "bob"], "rotation": "weekly", "handoff": "mon 09:00",
                    "start": "2027-03-01"}]})


@dataclass
class Rig:
    store: SqlStore
    chat: RecordingChat
    mirror: Mirror
    service: IncidentService
    clock: FakeClock
    catalog: Catalog

    def worker(self) -> JobWorker:
        return JobWorker(store=self.store, catalog=self.catalog, record=self.service.record,
                         clock=self.clock, notify=self.mirror.wake)

    async def tick(self, worker: JobWorker | None = None, **delta: float) -> int:
        self.clock.advance(**delta)
        done = await (worker or self.worker()).run_once()
        assert await self.mirror.drain(timeout=5)
        return done

    async def oncall(self, text: str) -> Reply:
        reply = await self.service.handle_oncall_text(
            text, actor=ALICE, where=ChannelRef("console", self.chat.by_name("general").id))
        assert reply.ok, reply.text
        return reply

    async def pending(self, kind: str) -> list[Job]:
        async with self.store.unit() as u:
            jobs = await u.jobs(states=[JobState.PENDING], limit=100)
        return [j for j in jobs if j.kind == kind]

    def posts(self, channel: str = "oncall") -> list[str]:
        return self.chat.texts(channel)


def make_rig(engine: AsyncEngine, catalog: Catalog, start: datetime,
             *schedules: Schedule) -> Rig:
    clock = FakeClock(start)
    cat = catalog.model_copy(update={"people": PEOPLE, "schedules": list(schedules),
                                     "timezone": "Europe/Berlin"})
    store = SqlStore(engine)
    chat = RecordingChat(channels=("general", "oncall"))
    # The mirror on the fake clock too: notices are queued at its time (in 2027).
    mirror = Mirror(store=store, ports={"console": chat}, catalog=cat, clock=clock,
                    backoff=Backoff(base=0.001, cap=0.01))
    service = IncidentService(store=store, catalog=cat, suggester=HeuristicSuggester(),
                              clock=clock, notify=mirror.wake)
    return Rig(store, chat, mirror, service, clock, cat)


def local(moment: datetime) -> str:
    at = moment.astimezone(BERLIN)
    return f"{at:%a} {at.day} {at:%b %H:%M %Z}"


def hhmm(moment: datetime) -> str:
    return f"{moment.astimezone(BERLIN):%H:%M}"


@pytest.mark.parametrize(
    ("start", "due", "first", "second"),
    [
        # Spring: the clocks go forward on Sunday 28 March 2027.
        (datetime(2027, 3, 20, 12, tzinfo=UTC), "Mon 22 Mar 09:00 CET",
         "🔁 primary: @bob is on call until Mon 29 Mar 09:00 CEST (after @alice)",
         "🔁 primary: @alice is on call until Mon 5 Apr 09:00 CEST (after @bob)"),
        # Autumn: back on Sunday 31 October 2027.
        (datetime(2027, 10, 23, 12, tzinfo=UTC), "Mon 25 Oct 09:00 CEST",
         "🔁 primary: @alice is on call until Mon 1 Nov 09:00 CET (after @bob)",
         "🔁 primary: @bob is on call until Mon 8 Nov 09:00 CET (after @alice)"),
    ],
)
async def test_a_shift_change_is_announced_at_09_00_local_on_both_sides_of_a_dst_change(
    engine: AsyncEngine, catalog: Catalog, start: datetime, due: str, first: str, second: str
) -> None:
    rig = make_rig(engine, catalog, start, primary())
    [job] = await plan_handoffs(rig.store, rig.catalog, rig.clock.now())
    assert local(job.due_at) == due
    assert job.key == handoff_key(primary(), job.due_at)
    wait = job.due_at - rig.clock.now()
    await rig.tick(seconds=wait.total_seconds() - 1)
    assert rig.posts() == []  # a second early: nothing
    assert await rig.tick(seconds=1) == 1
    assert hhmm(rig.clock.now()) == "09:00"
    assert rig.posts() == [first]

    [nxt] = await rig.pending(HANDOFF)
    assert hhmm(nxt.due_at) == "09:00"  # a week of 167 h or 169 h, not 168 h
    assert nxt.due_at - job.due_at == timedelta(hours=167 if start.month == 3 else 169)
    await rig.tick(seconds=(nxt.due_at - rig.clock.now()).total_seconds())
    assert hhmm(rig.clock.now()) == "09:00"
    assert rig.posts() == [first, second]
    assert len(await rig.pending(HANDOFF)) == 1  # and the one after that


async def test_overrides_replan_the_handoff_and_a_moved_one_posts_nothing(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    rig = make_rig(engine, catalog, datetime(2027, 3, 20, 12, tzinfo=UTC), primary())
    await plan_handoffs(rig.store, rig.catalog, rig.clock.now())
    [job] = await rig.pending(HANDOFF)
    monday = job.due_at
    assert local(monday) == "Mon 22 Mar 09:00 CET"

    # carol covers Monday 08:00-10:00: the changes are now at 08:00 (to carol), 10:00 (to bob).
    await rig.oncall("override primary @carol 2027-03-22 08:00 to 2027-03-22 10:00")
    [moved] = await rig.pending(HANDOFF)
    assert local(moved.due_at) == "Mon 22 Mar 08:00 CET"
    async with rig.store.unit() as u:
        # A job planned before the override by another replica (its re-plan raced ours): it
        # fires at 09:00 and must find that nothing changes then.
        await u.schedule(new_job(HANDOFF, handoff_key(primary(), monday), monday,
                                 now=rig.clock.now(),
                                 payload={"schedule": "primary", "at": monday.isoformat()}))

    await rig.tick(seconds=(moved.due_at - rig.clock.now()).total_seconds())
    assert rig.posts() == [
        "🔁 primary: @carol is on call until Mon 22 Mar 10:00 CET (after @alice)"]
    await rig.tick(hours=1)  # 09:00: the stale job fires and posts nothing
    assert len(rig.posts()) == 1
    [after] = await rig.pending(HANDOFF)
    assert local(after.due_at) == "Mon 22 Mar 10:00 CET"

    # Removing the override plans the handoff at the layer's own time again.
    listed = await rig.oncall("overrides")
    assert "• 1: primary @carol" in listed.text
    await rig.oncall("remove-override 1")
    [back] = await rig.pending(HANDOFF)
    assert local(back.due_at) == "Mon 29 Mar 09:00 CEST"  # 10:00 today is bob's anyway
    await rig.tick(seconds=(back.due_at - rig.clock.now()).total_seconds())
    assert rig.posts()[-1] == (
        "🔁 primary: @alice is on call until Mon 5 Apr 09:00 CEST (after @bob)")


async def test_two_workers_announce_a_shift_change_once(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    rig = make_rig(any_engine, catalog, datetime(2027, 3, 20, 12, tzinfo=UTC), primary())
    for _ in range(2):  # two replicas start: one job
        await plan_handoffs(rig.store, rig.catalog, rig.clock.now())
    [job] = await rig.pending(HANDOFF)
    one, two = rig.worker(), rig.worker()
    rig.clock.current = job.due_at
    done = await asyncio.gather(one.run_once(), two.run_once())
    assert sum(done) == 1
    await asyncio.gather(one.run_once(), two.run_once())
    assert await rig.mirror.drain(timeout=5)
    assert rig.posts() == [
        "🔁 primary: @bob is on call until Mon 29 Mar 09:00 CEST (after @alice)"]
    assert len(await rig.pending(HANDOFF)) == 1


async def test_a_schedule_without_a_channel_has_no_handoff_jobs(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    rig = make_rig(engine, catalog, datetime(2027, 3, 20, 12, tzinfo=UTC),
                   primary(channel=None))
    assert await plan_handoffs(rig.store, rig.catalog, rig.clock.now()) == []
    await rig.oncall("override primary @carol for 4h")
    assert await rig.pending(HANDOFF) == []


NIGHTS_ONLY = Schedule.model_validate({
    "name": "nights", "timezone": "Europe/Berlin",
    "layers": [{"users": ["bob"], "rotation": "daily", "handoff": "20:00",
                "start": "2027-03-01", "restrict": {"hours": "20:00-08:00"}}]})


async def test_the_daily_coverage_check_posts_only_when_there_are_problems(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    ok = make_rig(engine, catalog, datetime(2027, 3, 20, 12, tzinfo=UTC), primary())
    [job] = [await schedule_coverage_check(ok.store, ok.catalog, ok.clock.now())]
    assert job is not None and job.key == "coverage:2027-03-21"
    assert job.due_at == datetime(2027, 3, 21, 8, tzinfo=UTC)  # 09:00 in the catalog's zone
    await ok.tick(seconds=(job.due_at - ok.clock.now()).total_seconds())
    assert ok.posts("general") == []  # alice and bob cover every hour: nothing to say
    [tomorrow] = await ok.pending(COVERAGE)
    assert tomorrow.key == "coverage:2027-03-22"

    gappy = make_rig(engine, catalog, datetime(2027, 3, 22, 7, tzinfo=UTC), NIGHTS_ONLY)
    assert gappy.catalog.announcement_channels["console"] == "general"
    again = await schedule_coverage_check(gappy.store, gappy.catalog, gappy.clock.now())
    assert again is not None and again.key == tomorrow.key  # one job a day
    await gappy.tick(hours=1)
    [posted] = gappy.posts("general")
    lines = posted.splitlines()
    # Every day from 08:00 to 20:00, from now (09:00) for 14 days (to 10:00 on 5 April).
    assert lines[0] == "🗓️ On-call coverage over the next 14 days: 15 problems"
    assert lines[1] == (
        "• nights: nobody is on call from Mon 22 Mar 09:00 CET to Mon 22 Mar 20:00 CET")
    assert lines[15] == (
        "• nights: nobody is on call from Mon 5 Apr 08:00 CEST to Mon 5 Apr 10:00 CEST")
    await gappy.tick()  # fired once: nothing new
    assert len(gappy.posts("general")) == 1
    [nxt] = await gappy.pending(COVERAGE)
    assert nxt.key == "coverage:2027-03-23"
