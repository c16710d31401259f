"""REST API and web view latency over HTTP on PostgreSQL with many incidents.

What is measured
    list      GET /api/v1/incidents (first page of 50, newest first), bearer token checked
    filtered  GET /api/v1/incidents?status=resolved&severity=sev2&limit=50
    deep      GET /api/v1/incidents?cursor=... a page 50,000 incidents down
    page      GET /incidents/{n}: the web page of an incident with a 2,000-entry timeline
              (it renders the latest 300 entries, action items, fields), cookie sign-in
    timeline  GET /api/v1/incidents/{n}/timeline?limit=500 of that incident
    healthz   GET /healthz: the bare HTTP round trip through the same server (the baseline)

Each is requested sequentially over one keep-alive connection to uvicorn on loopback, after a
warm-up; p50 and p99 in milliseconds, and p50 as a ratio to the healthz baseline. Targets from
issue 16: list p50 < 50 ms, p99 < 200 ms; the incident page likewise.

Run: `python -m bench.api [--incidents 100000] [--entries 2000] [--n 300] [--pg URL]`
(PostgreSQL from --pg or OPSROOM_TEST_DATABASE_URL, in a schema of its own, dropped after).
Seeding is one INSERT ... SELECT generate_series per table. Prints a table, then a JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
import uuid

import httpx
from sqlalchemy import text

from adapters.api import WebContext
from adapters.api.auth import create_token
from adapters.http import Readiness, create_app
from bot.catalog import load_catalog
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.adapters.slack_harness import serve


async def seed(engine: object, incidents: int, entries: int) -> int:
    """`incidents` incidents (a mix of statuses and severities) and `entries` timeline entries
    on the newest; returns that incident's number."""
    async with engine.begin() as conn:  # type: ignore[attr-defined]
        await conn.execute(
            text(
                """
                INSERT INTO incident (number, title, summary, description, type, severity,
                    priority, status, private, roles, custom_fields, declared_by, declared_on,
                    declared_at, updated_at, resolved_at)
                SELECT g, 'incident ' || g, 'summary ' || g, 'description ' || g,
                    (ARRAY['outage','performance','deploy'])[1 + g % 3],
                    (ARRAY['sev1','sev2','sev3','sev4'])[1 + g % 4],
                    (ARRAY['p1','p2','p3','p4'])[1 + g % 4],
                    CASE WHEN g > :n - 50 THEN 'investigating' ELSE 'resolved' END,
                    false, '{"commander": "@alice"}', '{}', '@alice', 'slack',
                    now() - make_interval(mins => (:n - g)), now(),
                    CASE WHEN g > :n - 50 THEN NULL
                        ELSE now() - make_interval(mins => (:n - g) - 30) END
                FROM generate_series(1, :n) AS g
                """
            ),
            {"n": incidents},
        )
        await conn.execute(text("UPDATE incidentcounter SET value = :n"), {"n": incidents})
        await conn.execute(
            text(
                """
                INSERT INTO timelineentry (incident_id, kind, text, author_id, author_name, source,
                    data, deleted, occurred_at, created_at)
                SELECT (SELECT id FROM incident WHERE number = :num),
                    CASE WHEN g % 20 = 0 THEN 'key_event' ELSE 'message' END,
                    'entry ' || g || ' <with some text>', 'U1', 'alice', 'slack', '{}', false,
                    now() - make_interval(secs => (:e - g)), now()
                FROM generate_series(1, :e) AS g
                """
            ),
            {"num": incidents, "e": entries},
        )
        await conn.execute(text("ANALYZE"))
    return incidents


async def timed(client: httpx.AsyncClient, url: str, n: int, **kw: object) -> list[float]:
    for _ in range(max(5, n // 10)):  # warm-up
        (await client.get(url, **kw)).raise_for_status()  # type: ignore[arg-type]
    out = []
    for _ in range(n):
        start = time.perf_counter()
        answer = await client.get(url, **kw)  # type: ignore[arg-type]
        out.append((time.perf_counter() - start) * 1000)
        answer.raise_for_status()
    return out


async def main(args: argparse.Namespace) -> dict[str, object]:
    url = args.pg or os.environ.get("OPSROOM_TEST_DATABASE_URL")
    if not url:
        sys.exit("bench.api needs PostgreSQL: pass --pg URL or set OPSROOM_TEST_DATABASE_URL")
    schema = f"bench_api_{uuid.uuid4().hex[:8]}"
    admin = make_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        await upgrade(engine)
        t0 = time.perf_counter()
        number = await seed(engine, args.incidents, args.entries)
        seeded = time.perf_counter() - t0
        catalog = load_catalog()
        store = SqlStore(engine)
        service = IncidentService(store=store, catalog=catalog, suggester=HeuristicSuggester())
        _, token = await create_token(
            store, name="bench", scope="read", private=False, now=service.clock.now()
        )
        ctx = WebContext(service=service, store=store)
        bearer = {"Authorization": f"Bearer {token}"}
        results: dict[str, list[float]] = {}
        async with serve(create_app(Readiness(), web=ctx)) as base:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                deep = (
                    await client.get(
                        f"/api/v1/incidents?limit=50&cursor={_cursor(args.incidents // 2)}",
                        headers=bearer,
                    )
                ).json()
                assert len(deep["items"]) == 50
                plan = {
                    "healthz": ("/healthz", {}),
                    "list": ("/api/v1/incidents", {"headers": bearer}),
                    "filtered": (
                        "/api/v1/incidents?status=resolved&severity=sev2&limit=50",
                        {"headers": bearer},
                    ),
                    "deep": (
                        f"/api/v1/incidents?limit=50&cursor={_cursor(args.incidents // 2)}",
                        {"headers": bearer},
                    ),
                    "timeline": (
                        f"/api/v1/incidents/{number}/timeline?limit=500",
                        {"headers": bearer},
                    ),
                    "page": (f"/incidents/{number}", {"cookies": {"opsroom_session": token}}),
                }
                for name, (path, kw) in plan.items():
                    results[name] = await timed(client, path, args.n, **kw)
            ctx.stopping.set()
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()

    base_p50 = statistics.median(results["healthz"])
    rows = {}
    print(
        f"{args.incidents:,} incidents, {args.entries:,} entries on #{number}; "
        f"seeded in {seeded:.1f}s; {args.n} requests each"
    )
    print(f"{'request':<10} {'p50 ms':>8} {'p99 ms':>8} {'p50/healthz':>12}")
    for name, samples in results.items():
        samples.sort()
        p50 = statistics.median(samples)
        p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
        rows[name] = {
            "p50_ms": round(p50, 2),
            "p99_ms": round(p99, 2),
            "ratio_p50": round(p50 / base_p50, 1),
        }
        print(f"{name:<10} {p50:>8.2f} {p99:>8.2f} {p50 / base_p50:>12.1f}")
    report = {
        "bench": "api",
        "incidents": args.incidents,
        "entries": args.entries,
        "n": args.n,
        "results": rows,
    }
    print(json.dumps(report))
    return report


def _cursor(before: int) -> str:
    from adapters.api.routes import encode_cursor

    return encode_cursor(before)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--incidents", type=int, default=100_000)
    parser.add_argument("--entries", type=int, default=2_000)
    parser.add_argument("--n", type=int, default=300)
    parser.add_argument("--pg", default=None)
    asyncio.run(main(parser.parse_args()))
