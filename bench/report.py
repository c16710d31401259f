"""Report and /metrics: how long a scrape and `opsroom report` take on a large record.

What is measured
    Two databases built by the real migrations, side by side in one run: small (1,000
    incidents) and large (N incidents, 100,000 by default). Incidents are spread over the last
    year, 3% cancelled, 5% open (triggered, investigating or monitoring), the rest resolved or
    closed with acknowledged, mitigated and resolved times; every incident has one channel link,
    a pending job for the open ones and a failed delivery for 1 in 500.
    On each: the median time of a full GET /metrics (the database snapshot and the Prometheus
    text) and of the report's reads and figures for the last 30 days and for the whole year
    (by week).

Why the comparison is fair
    Same code, same engine settings, rounds alternating which database goes first; the ratio
    large/small is what the size of the record costs. The aim: a scrape under 1 s at 100,000.

Run it as `python -m bench.report [--incidents 100000] [--pg URL]` (PostgreSQL from --pg or
OPSROOM_TEST_DATABASE_URL, in schemas dropped afterwards; SQLite in a temporary directory
otherwise). It prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.metrics import metrics_router
from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    DeliveryState,
    Incident,
    Job,
    LinkState,
    Status,
)
from bot.report import build
from storage import metrics as db
from storage.engine import make_engine, upgrade

NOW = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
SEVERITIES = ("sev1", "sev2", "sev3", "sev4")
TYPES = ("outage", "performance", "security")


@asynccontextmanager
async def database(backend: str, pg: str | None) -> AsyncIterator[AsyncEngine]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            await upgrade(engine)
            try:
                yield engine
            finally:
                await engine.dispose()
        return
    assert pg is not None
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(pg, connect_args={"server_settings": {"search_path": schema}})
    try:
        await upgrade(engine)
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


async def seed(engine: AsyncEngine, n: int, seed_value: int = 7) -> None:
    rng = random.Random(seed_value)
    batch = 5000
    for start in range(0, n, batch):
        incidents, links, jobs, deliveries = [], [], [], []
        for number in range(start + 1, min(n, start + batch) + 1):
            declared = NOW - timedelta(seconds=rng.randrange(365 * 86400))
            roll = rng.random()
            status = (
                Status.CANCELLED if roll < 0.03
                else rng.choice([Status.TRIGGERED, Status.INVESTIGATING, Status.MONITORING])
                if roll < 0.08
                else rng.choice([Status.RESOLVED, Status.CLOSED])
            )
            ack = declared + timedelta(seconds=rng.randrange(30, 3600))
            resolved = ack + timedelta(seconds=rng.randrange(600, 86400))
            done = status in (Status.RESOLVED, Status.CLOSED)
            incidents.append({
                "id": number, "number": number, "title": f"incident {number}", "summary": "",
                "description": "", "type": rng.choice(TYPES), "severity": rng.choice(SEVERITIES),
                "priority": "p2", "status": status, "private": False, "roles": {},
                "custom_fields": {}, "declared_by": "@bench", "declared_on": "console",
                "declared_at": declared, "impact_started_at": declared,
                "acknowledged_at": ack if status is not Status.TRIGGERED else None,
                "mitigated_at": resolved if done else None,
                "resolved_at": resolved if done else None,
                "closed_at": resolved if status is Status.CLOSED else None,
                "last_update_at": None, "updated_at": declared,
            })
            links.append({
                "id": number, "incident_id": number, "platform": "console", "workspace": "",
                "state": LinkState.OPEN, "channel_id": f"inc-{number}", "invite": [],
                "summary_pinned": True, "created_at": declared,
            })
            if status.is_open:
                jobs.append({
                    "kind": "status_update", "key": f"status_update:{number}",
                    "incident_id": number,
                    "due_at": NOW + timedelta(minutes=rng.randrange(-60, 60)),
                    "payload": {}, "attempts": 0, "created_at": declared,
                })
            if number % 500 == 0:
                deliveries.append({
                    "incident_id": number, "link_id": number, "action": DeliveryAction.POST_ENTRY,
                    "state": DeliveryState.FAILED, "attempts": 5, "next_attempt_at": declared,
                    "created_at": declared,
                })
        async with engine.begin() as conn:
            await conn.execute(insert(Incident), incidents)
            await conn.execute(insert(ChannelLink), links)
            if jobs:
                await conn.execute(insert(Job), jobs)
            if deliveries:
                await conn.execute(insert(Delivery), deliveries)
    if engine.dialect.name == "postgresql":
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE"))


async def timed(fn: Callable[[], Awaitable[Any]], reps: int) -> float:
    await fn()  # warm the pool and the caches
    samples = []
    for _ in range(reps):
        started = time.perf_counter()
        await fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def operations(engine: AsyncEngine) -> dict[str, Callable[[], Awaitable[Any]]]:
    app = FastAPI()
    app.include_router(metrics_router(engine, lambda: NOW))
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://b")

    async def scrape() -> None:
        response = await client.get("/metrics")
        assert response.status_code == 200

    async def report(days: int, by: str | None) -> None:
        since = NOW - timedelta(days=days)
        rows = await db.incident_rows(engine, since)
        build(rows, by, UTC)
        await db.action_counts(engine, NOW, since)

    return {
        "GET /metrics": scrape,
        "report 30d": lambda: report(30, None),
        "report 365d by week": lambda: report(366, "week"),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    backend = "postgresql" if args.pg else "sqlite"
    results: dict[str, dict[str, float]] = {}
    async with database(backend, args.pg) as small, database(backend, args.pg) as large:
        started = time.perf_counter()
        await seed(small, 1000)
        await seed(large, args.incidents)
        print(f"{backend}: seeded 1,000 and {args.incidents:,} incidents in "
              f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
        ops = {"small": operations(small), "large": operations(large)}
        for name in ops["small"]:
            times: dict[str, list[float]] = {"small": [], "large": []}
            for round_ in range(args.rounds):
                order = ("small", "large") if round_ % 2 == 0 else ("large", "small")
                for which in order:
                    times[which].append(await timed(ops[which][name], args.reps))
            s, big = statistics.median(times["small"]), statistics.median(times["large"])
            results[name] = {"small_ms": round(s, 2), "large_ms": round(big, 2),
                             "ratio": round(big / s, 2) if s else 0.0}
    return {"bench": "report", "backend": backend, "incidents": args.incidents,
            "results": results}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=5, help="timed runs per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--pg", metavar="URL", default=os.environ.get("OPSROOM_TEST_DATABASE_URL"))
    args = parser.parse_args(argv)
    out = asyncio.run(run(args))
    print(f"report and /metrics: 1,000 vs {out['incidents']:,} incidents ({out['backend']})")
    print(f"{'operation':<24}{'small ms':>10}{'large ms':>10}{'ratio':>8}")
    for name, row in out["results"].items():
        print(f"{name:<24}{row['small_ms']:>10.2f}{row['large_ms']:>10.2f}{row['ratio']:>8.2f}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
