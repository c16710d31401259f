"""Two replicas receiving the same alert at the same moment: one incident, one entry.

Each replica is a service of its own on its own engine (its own connection pool) over one
database; on PostgreSQL their transactions really overlap, and the route's lock (and the alert
key's unique index) decide."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from sqlalchemy import func
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import select

from bot.alerts import AlertEvent
from bot.catalog import Catalog
from bot.models import Alert, Incident, TimelineEntry
from tests.conftest import build_core
from tests.fakes.clock import FakeClock
from tests.storage.support import same_database

START = datetime(2026, 11, 25, 13, 58, 12, tzinfo=UTC)


def event(instance: str = "checkout-a:8080") -> AlertEvent:
    return AlertEvent(
        source="alertmanager",
        fingerprint=f"fp-{instance}",
        status="firing",
        summary="HighErrorRate on checkout",
        severity="critical",
        labels={
            "alertname": "HighErrorRate",
            "service": "checkout",
            "instance": instance,
            "severity": "critical",
        },
        annotations={"summary": "HighErrorRate on checkout"},
        starts_at=START,
    )


async def counts(engine: AsyncEngine) -> tuple[int, int, int]:
    async with engine.connect() as conn:
        alerts = (await conn.execute(select(func.sum(Alert.count)))).scalar_one()
        incidents = (await conn.execute(select(func.count()).select_from(Incident))).scalar_one()
        entries = (await conn.execute(select(func.count()).select_from(TimelineEntry))).scalar_one()
    return int(alerts or 0), int(incidents), int(entries)


async def test_two_replicas_receiving_one_alert_together_make_one_incident(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    clock = FakeClock()
    async with same_database(any_engine, 4) as one, same_database(any_engine, 4) as two:
        replicas = [build_core(e, catalog, clock).service for e in (one, two)]
        for round_ in range(5):  # several tries at the same instant, each a new group member
            same = [event(f"checkout-{round_}:8080")] * 2
            await asyncio.gather(*(r.receive([e]) for r, e in zip(replicas, same, strict=True)))
    received, incidents, entries = await counts(any_engine)
    assert received == 10  # every copy counted
    assert incidents == 1
    # The declaration, then one "firing" entry for each of the four later alerts.
    assert entries == 5


async def test_two_replicas_racing_different_groups_number_incidents_apart(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    clock = FakeClock()
    async with same_database(any_engine, 4) as one, same_database(any_engine, 4) as two:
        replicas = [build_core(e, catalog, clock).service for e in (one, two)]
        jobs = []
        for i in range(6):
            e = AlertEvent(
                **{
                    **event().__dict__,
                    "fingerprint": f"g{i}",
                    "labels": {**event().labels, "service": f"svc-{i}"},
                }
            )
            jobs += [replicas[0].receive([e]), replicas[1].receive([e])]
        await asyncio.gather(*jobs)
    _, incidents, _ = await counts(any_engine)
    assert incidents == 6


async def test_two_alerts_of_one_new_group_on_two_replicas_make_one_incident(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    clock = FakeClock()
    async with same_database(any_engine, 4) as one, same_database(any_engine, 4) as two:
        replicas = [build_core(e, catalog, clock).service for e in (one, two)]
        for round_ in range(4):
            pair = [
                AlertEvent(
                    **{
                        **event(f"{side}-{round_}").__dict__,
                        "labels": {
                            **event().labels,
                            "service": f"svc-{round_}",
                            "instance": f"{side}-{round_}",
                        },
                    }
                )
                for side in ("a", "b")
            ]
            await asyncio.gather(*(r.receive([e]) for r, e in zip(replicas, pair, strict=True)))
    _, incidents, entries = await counts(any_engine)
    assert incidents == 4  # one per group, never two
    assert entries == 8  # each: the declaration and the other alert's "firing"
