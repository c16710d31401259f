"""Helpers for the job race tests: seed many due reminders, and a worker process.

`python -m tests.storage.jobs_support DATABASE_URL NOW_ISO` runs one job worker on that
database with a clock stopped at NOW_ISO: it prints "ready", waits for a line on stdin (so two
processes start firing together), fires every due job, and prints how many it did.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

from bot.catalog import Catalog, load_catalog
from bot.jobs import JobWorker
from bot.models import ActionItem
from bot.ports import ChannelRef
from bot.reminders import plan_action
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine
from storage.store import SqlStore
from tests.conftest import ALICE
from tests.fakes.clock import FakeClock


def service_on(
    store: SqlStore, catalog: Catalog, clock: FakeClock, platform: str
) -> IncidentService:
    return IncidentService(
        store=store,
        catalog=catalog,
        suggester=HeuristicSuggester(),
        clock=clock,
        platforms=[platform],
    )


async def seed_due_actions(
    service: IncidentService, where: ChannelRef, *, incidents: int, per_incident: int
) -> datetime:
    """Declare `incidents` incidents with `per_incident` action items each, all due one hour
    from now, planned by the real reminder rules; return the due time."""
    now = service.clock.now()
    due = now + timedelta(hours=1)
    for i in range(incidents):
        reply = await service.declare(
            actor=ALICE,
            where=where,
            description=f"service {i} is degraded",
            title=f"Service {i} degraded",
            type="performance",
            severity="sev4",
            priority="p3",
        )
        assert reply.ok and reply.incident is not None, reply.text
        async with service.store.unit() as u:
            incident = await u.incident(reply.incident)
            assert incident is not None and incident.id is not None
            for n in range(1, per_incident + 1):
                item = ActionItem(
                    incident_id=incident.id,
                    number=n,
                    text=f"task {n} of incident {reply.incident}",
                    due_at=due,
                    created_by=ALICE.ref,
                    created_at=now,
                    updated_at=now,
                )
                await u.add(item)
                await plan_action(u, incident, item, where.platform, now)
    return due


async def _worker(url: str, now: str) -> None:
    engine = make_engine(url)
    catalog = load_catalog()
    clock = FakeClock(datetime.fromisoformat(now))
    store = SqlStore(engine)
    service = service_on(store, catalog, clock, "slack")
    worker = JobWorker(store=store, catalog=catalog, record=service.record, clock=clock, batch=25)
    print("ready", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    fired = await worker.run_once()
    print(f"fired {fired}", flush=True)
    await engine.dispose()


if __name__ == "__main__":
    asyncio.run(_worker(sys.argv[1], sys.argv[2]))
