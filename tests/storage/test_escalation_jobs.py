"""Escalation steps are jobs: two workers on one database (SQLite, and PostgreSQL when set)
page each person once per step; a step that came due while nothing ran fires late and says so;
a new worker (a restart) carries the chain on where it was."""

from __future__ import annotations

import asyncio
from collections import Counter

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.models import EntryKind, TimelineEntry
from bot.people import PersonSpec
from bot.policies import EscalationPolicy
from bot.ports import ChannelRef
from storage.store import SqlStore
from tests.conftest import ALICE
from tests.fakes.clock import FakeClock
from tests.storage.jobs_support import service_on
from tests.storage.support import same_database

CHAIN = EscalationPolicy.model_validate({"name": "chain", "steps": [
    {"people": ["alice"], "after": "5m"},
    {"people": ["bob"], "after": "5m"},
    {"people": ["carol"], "after": "5m"},
]})


def chain_catalog(catalog: Catalog) -> Catalog:
    people = [PersonSpec(name=n) for n in ("alice", "bob", "carol")]
    return catalog.model_copy(update={"people": people, "escalation_policies": [CHAIN]})


async def page_lines(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(TimelineEntry.text)
            .where(col(TimelineEntry.kind) == EntryKind.PAGE)
            .order_by(col(TimelineEntry.id))
        )
        return [r[0] for r in rows]


async def start(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> None:
    service = service_on(SqlStore(engine), catalog, clock, "console")
    reply = await service.declare(actor=ALICE, where=ChannelRef("console", "C1"),
                                  description="db down", title="DB down", type="outage",
                                  severity="sev2", priority="p2")
    assert reply.ok, reply.text
    paged = await service.handle_text("#1 page chain", actor=ALICE,
                                      where=ChannelRef("console", "C1"))
    assert paged.ok, paged.text


async def test_two_workers_page_each_person_once_per_step(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    catalog = chain_catalog(catalog)
    clock = FakeClock()
    await start(any_engine, catalog, clock)
    async with same_database(any_engine, 4) as a, same_database(any_engine, 4) as b:
        workers = [
            JobWorker(store=SqlStore(engine), catalog=catalog,
                      record=service_on(SqlStore(engine), catalog, clock, "console").record,
                      clock=clock, holder=name)
            for engine, name in ((a, "a"), (b, "b"))
        ]
        for _ in range(4):
            await asyncio.gather(*(w.run_once() for w in workers))
            clock.advance(minutes=5)
    lines = await page_lines(any_engine)
    assert Counter(lines) == Counter({
        "📟 Paged @alice (chain, step 1)": 1,
        "⬆️ No acknowledgement after 5m: paging @bob (step 2)": 1,
        "⬆️ No acknowledgement after 5m: paging @carol (step 3)": 1,
        "⚠️ No acknowledgement after 5m: chain has nobody left to page": 1,
    })


async def test_a_step_due_while_down_fires_at_start_late_and_the_chain_goes_on(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    catalog = chain_catalog(catalog)
    clock = FakeClock()
    await start(any_engine, catalog, clock)
    store = SqlStore(any_engine)

    def worker(holder: str) -> JobWorker:
        record = service_on(store, catalog, clock, "console").record
        return JobWorker(store=store, catalog=catalog, record=record, clock=clock, holder=holder)

    await worker("before").run_once()
    clock.advance(minutes=25)  # nothing ran while step 2 came due: a new process starts
    await worker("after-restart").run_once()  # the late step (and a status-update nudge)
    lines = await page_lines(any_engine)
    assert lines[-1] == ("⬆️ No acknowledgement after 5m: paging @bob (step 2) "
                         "(late by 20 min: Opsroom was not running)")
    clock.advance(minutes=5)
    await worker("after-restart").run_once()
    assert (await page_lines(any_engine))[-1].startswith("⬆️ No acknowledgement after 5m: "
                                                         "paging @carol (step 3)")
