"""/metrics and the report's figures against hand-computed values for a seeded set of incidents
(fake clock), on SQLite and PostgreSQL; two app instances on one database agree."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.metrics import CommandTimer, metrics_router
from bot.catalog import Catalog
from bot.report import build
from storage import metrics as db
from tests.conftest import ALICE, Core, build_core
from tests.fakes.clock import FakeClock
from tests.storage.support import same_database

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday; its week starts Mon 23 Nov


async def seed(core: Core) -> None:
    """#1 outage sev1: acked +10m, resolved +60m.
    #2 outage sev2 (+1d): acked +20m, resolved +2h, reopened +3h, resolved again +5h.
    #3 performance sev3 (+2d): acked +30m, investigating; two open action items, one due the
    next day. #4 outage sev2 (+3d): acked +5m, then cancelled (left out of every figure, its
    open action item too). #5 performance sev3 (+8d, next week): still triggered."""
    clock = core.clock

    async def declare(type_: str, severity: str) -> None:
        reply = await core.service.declare(
            actor=ALICE, where=core.general, description=f"{type_} trouble",
            title=f"{type_} trouble", type=type_, severity=severity, priority="p2",
        )
        assert reply.ok, reply.text

    async def at(offset: timedelta, *commands: str) -> None:
        clock.current = T0 + offset
        for text in commands:
            reply = await core.run(text, actor=ALICE)
            assert reply.ok, reply.text

    clock.current = T0
    await declare("outage", "sev1")
    await at(timedelta(minutes=10), "#1 ack")
    await at(timedelta(minutes=60), "#1 resolve")
    clock.current = T0 + timedelta(days=1)
    await declare("outage", "sev2")
    day1 = timedelta(days=1)
    await at(day1 + timedelta(minutes=20), "#2 ack")
    await at(day1 + timedelta(hours=2), "#2 resolve")
    await at(day1 + timedelta(hours=3), "#2 reopen")
    await at(day1 + timedelta(hours=5), "#2 resolve")
    clock.current = T0 + timedelta(days=2)
    await declare("performance", "sev3")
    await at(timedelta(days=2, minutes=30), "#3 ack", "#3 status investigating",
             "#3 action add write the runbook due tomorrow", "#3 action add add a dashboard")
    clock.current = T0 + timedelta(days=3)
    await declare("outage", "sev2")
    await at(timedelta(days=3, minutes=5), "#4 ack", "#4 action add nothing", "#4 cancel oops")
    clock.current = T0 + timedelta(days=8)
    await declare("performance", "sev3")
    clock.current = T0 + timedelta(days=9)


def app_on(engine: AsyncEngine, clock: FakeClock, timer: CommandTimer | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(metrics_router(engine, clock.now, timer))
    return app


async def scrape(app: FastAPI) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[str, Any] = {}
    for family in text_string_to_metric_families(response.text):
        for s in family.samples:
            key = (s.name, tuple(sorted(s.labels.items())))
            samples[key] = s.value
    return samples


def pick(samples: dict[str, Any], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {labels: v for (n, labels), v in samples.items() if n == name}


def buckets(samples: dict[str, Any], name: str, bounds: Sequence[str]) -> list[float]:
    found = pick(samples, f"{name}_bucket")
    return [found[(("le", b),)] for b in bounds]


async def test_metrics_match_the_record_and_two_instances_agree(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    clock = FakeClock()
    core = build_core(any_engine, catalog, clock)
    timer = CommandTimer()
    timer.instrument(core.service)
    await seed(core)
    async with same_database(any_engine, 2) as other:
        first = await scrape(app_on(any_engine, clock, timer))
        second = await scrape(app_on(other, clock))
    shared = {k: v for k, v in first.items() if not k[0].startswith("opsroom_command_seconds")}
    assert shared == second  # read from the database: replicas agree, nothing double counted

    assert pick(first, "opsroom_incidents_open") == {
        (("severity", "sev3"), ("status", "investigating")): 1.0,
        (("severity", "sev3"), ("status", "triggered")): 1.0,
    }
    assert pick(first, "opsroom_incidents_declared_total") == {
        (("severity", "sev1"), ("type", "outage")): 1.0,
        (("severity", "sev2"), ("type", "outage")): 1.0,  # the cancelled #4 is left out
        (("severity", "sev3"), ("type", "performance")): 2.0,
    }
    ack = "opsroom_time_to_acknowledge_seconds"
    assert buckets(first, ack, ["60.0", "300.0", "900.0", "1800.0", "3600.0", "+Inf"]) == [
        0, 0, 1, 3, 3, 3
    ]
    assert pick(first, f"{ack}_count") == {(): 3.0}
    assert pick(first, f"{ack}_sum") == {(): pytest.approx(600 + 1200 + 1800)}
    resolve = "opsroom_time_to_resolve_seconds"
    assert buckets(first, resolve, ["3600.0", "7200.0", "14400.0", "43200.0", "+Inf"]) == [
        1, 1, 1, 2, 2
    ]
    assert pick(first, f"{resolve}_sum") == {(): pytest.approx(3600 + 5 * 3600)}
    assert pick(first, "opsroom_jobs_pending") == {
        (("kind", "ack"),): 1.0,  # #5, still triggered
        (("kind", "action_item"),): 1.0,  # #3's item due the next day
        (("kind", "postmortem_due"),): 2.0,  # #1, and #2 from its last resolve
        (("kind", "status_update"),): 2.0,  # #3 and #5, open
    }
    # No worker ran, and nine days on every one of them is past due.
    assert pick(first, "opsroom_jobs_late") == pick(first, "opsroom_jobs_pending")
    # #5's declare was never delivered (the tests' mirror runs after commands only): its
    # channel opening, declaration post, summary refresh and announcement wait.
    assert pick(first, "opsroom_deliveries") == {
        (("platform", "console"), ("state", "pending")): 4.0
    }
    commands = pick(first, "opsroom_command_seconds_count")
    # 2 on #1, 4 on #2, 4 on #3, 3 on #4 (declares went straight to service.declare).
    assert commands == {(("platform", "console"),): 13.0}


async def test_the_report_figures_match_hand_computed_values(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    clock = FakeClock()
    core = build_core(any_engine, catalog, clock)
    await seed(core)
    now = clock.now()
    rows = await db.incident_rows(any_engine, now - timedelta(days=30))
    assert [r.number for r in rows] == [1, 2, 3, 5]
    (everything,) = build(rows, None, catalog.tz)
    assert (everything.incidents, everything.resolved) == (4, 2)
    assert everything.acknowledge.count == 3
    assert everything.acknowledge.mean == pytest.approx(1200)
    assert everything.acknowledge.p50 == pytest.approx(1200)
    assert everything.acknowledge.p90 == pytest.approx(1680)  # 1200 + 0.8 * 600
    assert everything.resolve.mean == pytest.approx(10800)  # (1h + 5h) / 2: the last resolve
    assert everything.resolve.p50 == pytest.approx(10800)
    assert everything.resolve.p90 == pytest.approx(16560)  # 1h + 0.9 * 4h
    by_type = {g.group: g for g in build(rows, "type", catalog.tz)[1:]}
    assert by_type["outage"].incidents == 2 and by_type["outage"].acknowledge.p90 == (
        pytest.approx(1140)
    )
    assert by_type["performance"].resolved == 0 and by_type["performance"].resolve.mean is None
    by_week = [(g.group, g.incidents) for g in build(rows, "week", catalog.tz)[1:]]
    assert by_week == [("2026-11-23", 3), ("2026-11-30", 1)]
    assert await db.action_counts(any_engine, now, now - timedelta(days=30)) == (2, 1)
    recent = await db.incident_rows(any_engine, now - timedelta(days=2))
    assert [r.number for r in recent] == [5]
