"""Paging and escalation with a fake clock driving the job worker directly: step by step, an
empty step skipped at once, acknowledgement stops it, repeat, one escalation per policy."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.models import Status
from bot.people import PersonSpec
from bot.policies import EscalationPolicy
from bot.ports import Actor
from bot.schedules import Schedule
from bot.service import Reply
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock

CAROL = Actor(platform="console", user_id="carol", name="carol", mention="@carol")


def schedule(name: str, users: list[str], **layer: object) -> Schedule:
    return Schedule.model_validate({"name": name, "timezone": "UTC", "layers": [
        {"users": users, "rotation": "weekly", "handoff": "mon 09:00", "start": "2026-11-02",
         **layer}]})


@pytest.fixture
def paging_catalog(catalog: Catalog) -> Catalog:
    ops = EscalationPolicy.model_validate({"name": "ops", "repeat": 1, "steps": [
        {"schedules": ["weekends"], "after": "1m"},  # nobody on a Wednesday: skipped at once
        {"schedules": ["primary"], "after": "5m"},
        {"people": ["bob"], "after": "10m"},
    ]})
    return catalog.model_copy(update={
        "people": [PersonSpec(name="alice"), PersonSpec(name="bob"), PersonSpec(name="carol")],
        "schedules": [schedule("primary", ["alice"]),
                      schedule("weekends", ["carol"], restrict={"weekdays": ["sat", "sun"]})],
        "escalation_policies": [ops],
    })


@dataclass
class Rig:
    core: Core
    worker: JobWorker
    clock: FakeClock
    channel: str = ""

    async def run(self, text: str, actor: Actor = ALICE) -> Reply:
        where = self.core.where(self.channel) if self.channel else self.core.general
        reply = await self.core.run(text, actor=actor, where=where)
        await self.tick()
        return reply

    async def tick(self, **delta: float) -> None:
        self.clock.advance(**delta)
        await self.worker.run_once()
        assert await self.core.mirror.drain(timeout=5)

    def lines(self) -> list[str]:
        return [t for t in self.core.chat.texts(self.channel) if t[:1] in "📟⬆✅⚠"]


@pytest.fixture
async def rig(engine: AsyncEngine, paging_catalog: Catalog, clock: FakeClock) -> Rig:
    core = build_core(engine, paging_catalog, clock)
    worker = JobWorker(store=core.store, catalog=paging_catalog, record=core.service.record,
                       clock=clock, notify=core.mirror.wake)
    r = Rig(core, worker, clock)
    await r.run("declare checkout is down for everyone", actor=CAROL)
    r.channel = core.incident_channel(1)
    return r


async def test_escalation_steps_through_and_acknowledgement_stops_it(rig: Rig) -> None:
    reply = await rig.run("page ops db is on fire", actor=CAROL)
    assert reply.ok, reply.text
    assert rig.lines() == [
        "⚠️ Step 1 of ops reaches nobody (nobody is on call for weekends): skipped",
        "📟 Paged @alice (ops, step 2): db is on fire",
    ]
    assert [(who, m.buttons[0].label) for who, m in rig.core.chat.dms] == [
        ("@alice", "Acknowledge")]
    again = await rig.run("page ops", actor=CAROL)
    assert not again.ok and "already paging ops" in again.text

    await rig.tick(minutes=4, seconds=59)
    assert len(rig.lines()) == 2  # not yet
    await rig.tick(seconds=1)
    assert rig.lines()[-1] == (
        "⬆️ No acknowledgement after 5m: paging @bob (step 3): db is on fire")
    await rig.tick(minutes=2, seconds=10)
    ack = await rig.run("ack", actor=BOB)
    assert ack.ok, ack.text
    assert rig.lines()[-1] == "✅ @bob acknowledged after 7m 10s (ops)"
    async with rig.core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.status is Status.ACKNOWLEDGED
        assert inc.acknowledged_at == rig.clock.now()
    shown = len(rig.lines())
    await rig.tick(hours=2)
    assert len(rig.lines()) == shown  # stopped: nobody else is paged


async def test_without_acknowledgement_the_policy_repeats_then_says_so(rig: Rig) -> None:
    await rig.run("page ops", actor=CAROL)
    await rig.tick(minutes=5)
    await rig.tick(minutes=10)  # round 2
    await rig.tick(minutes=5)
    await rig.tick(minutes=10)
    await rig.tick(hours=1)
    assert rig.lines() == [
        "⚠️ Step 1 of ops reaches nobody (nobody is on call for weekends): skipped",
        "📟 Paged @alice (ops, step 2)",
        "⬆️ No acknowledgement after 5m: paging @bob (step 3)",
        "⚠️ Step 1 of ops reaches nobody (nobody is on call for weekends): skipped",
        "⬆️ No acknowledgement after 10m: paging @alice (step 2, round 2)",
        "⬆️ No acknowledgement after 5m: paging @bob (step 3, round 2)",
        "⚠️ No acknowledgement after 10m: ops has nobody left to page",
    ]


async def test_paging_one_person_and_oncall_ack(rig: Rig) -> None:
    await rig.run("page @bob can you look at the db?", actor=CAROL)
    assert rig.lines() == ["📟 Paged @bob (step 1): can you look at the db?"]
    assert "@bob" in rig.core.chat.by_name(rig.channel).members  # invited
    nothing = await rig.core.service.handle_oncall_text(
        "ack", actor=ALICE, where=rig.core.general)
    assert not nothing.ok and nothing.text == "You have no open pages."
    acked = await rig.core.service.handle_oncall_text("ack", actor=BOB, where=rig.core.general)
    assert acked.text == "Acknowledged your pages for #1; paging stopped."
    assert await rig.core.mirror.drain(timeout=5)
    assert rig.lines()[-1] == "✅ @bob acknowledged after 0s"


async def test_unknown_policy_and_group_mentions_are_refused(rig: Rig) -> None:
    bad = await rig.run("page opps")
    assert not bad.ok and bad.text == 'unknown escalation policy "opps": use ops, or @person'
    group = await rig.run("page @here")
    assert not group.ok and "group mention" in group.text
    assert rig.lines() == []


async def test_a_severity_with_page_pages_on_declare(
    engine: AsyncEngine, paging_catalog: Catalog, clock: FakeClock
) -> None:
    sev = [s.model_copy(update={"page": "ops"}) if s.name == "sev1" else s
           for s in paging_catalog.severities]
    catalog = paging_catalog.model_copy(update={"severities": sev})
    core = build_core(engine, catalog, clock)
    worker = JobWorker(store=core.store, catalog=catalog, record=core.service.record,
                       clock=clock, notify=core.mirror.wake)
    rig = Rig(core, worker, clock)
    await rig.run("declare the API is down for everyone")  # SEV1 by the heuristic
    rig.channel = core.incident_channel(1)
    await rig.tick()
    assert "📟 Paged @alice (ops, step 2)" in rig.lines()
