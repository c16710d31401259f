"""Two replicas on one database (PostgreSQL when configured): each runbook step runs once, and
a workflow fires once per triggering entry, however the two interleave."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.models import RunState
from bot.runbooks import RunbookRunner
from bot.steps import Tools
from tests.conftest import ALICE, build_core
from tests.fakes.clock import FakeClock
from tests.fakes.http_target import Target, running_target
from tests.unit.test_runbooks import catalog_with


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with running_target() as t:
        yield t


RUNS = 4
EVENTS = 3


async def test_two_replicas_run_each_step_once_and_fire_each_workflow_once(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock, target: Target, tmp_path: Any
) -> None:
    from adapters.http_client import AiohttpClient

    cat = catalog_with(catalog, tmp_path, {
        "runbooks": [{"name": "double", "steps": [
            {"kind": "message", "text": "start {{ run.number }}"},
            {"kind": "http", "url": target.url + "/a", "body": {"run": "{{ run.number }}"}},
            {"kind": "set", "priority": "p2"},
            {"kind": "http", "url": target.url + "/b"},
            {"kind": "message", "text": "end {{ run.number }}"},
        ]}],
        "workflows": [{"name": "note-events", "on": "key_event",
                       "steps": [{"kind": "message", "text": "a key event"}]}],
    })
    a = build_core(any_engine, cat, clock)
    b = build_core(any_engine, cat, clock)
    http = AiohttpClient()
    replicas = []
    for core in (a, b):
        runner = RunbookRunner(service=core.service, store=core.store, clock=clock,
                               tools=Tools(http=http))
        worker = JobWorker(store=core.store, catalog=cat, record=core.service.record,
                           clock=clock, passes=[runner])
        replicas.append(worker)
    reply = await a.service.declare(actor=ALICE, where=a.general, description="x", title="X",
                                    type="deploy", severity="sev3", priority="p3")
    assert reply.ok, reply.text
    for n in range(RUNS):
        core = (a, b)[n % 2]  # only a's mirror is drained: a's chat has the channel
        reply = await core.service.handle_text("#1 runbook run double", actor=ALICE,
                                               where=a.general)
        assert reply.ok, reply.text
    for n in range(EVENTS):
        reply = await a.service.handle_text(f"#1 event thing {n}", actor=ALICE, where=a.general)
        assert reply.ok, reply.text
    for _ in range(4):
        await asyncio.gather(*(w.run_once() for w in replicas), *(w.run_once() for w in replicas))
    await http.close()

    keys = Counter(s["headers"]["Idempotency-Key"] for s in target.seen)
    assert len(keys) == 2 * (RUNS + 0) and set(keys.values()) == {1}, keys
    async with a.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        runs = await u.runs(inc.id)
        texts = [e.text for e in await u.timeline(inc.id)]
    assert [r.state for r in runs] == [RunState.DONE] * (RUNS + EVENTS)
    assert sum(t.startswith("Workflow note-events fired") for t in texts) == EVENTS
    for n in range(1, RUNS + 1):
        assert texts.count(f"start {n}") == 1 and texts.count(f"end {n}") == 1
    assert texts.count("a key event") == EVENTS
