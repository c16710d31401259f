"""Alerts per second, end to end over HTTP, against a bare FastAPI endpoint that stores the JSON.

What is measured
    Each target is served by uvicorn on loopback (tests/adapters/slack_harness.py `serve`) and
    sent Alertmanager webhooks, one alert each, by `--senders` concurrent clients (one
    `httpx.AsyncClient` each), `--alerts` per round. Alerts per second = alerts / wall time of
    the round, from the first request sent to the last response.

    join      Opsroom's app (`create_app` with the alert router, the service, a migrated SQLite
              file, the mirror running into an in-memory chat): every alert a new member of one
              group, so after the first each is stored, routed and joins the open incident as a
              "firing" entry with its deliveries (and the mirror posts it).
    declare   The same app, each alert a group of its own on a route whose storm threshold is
              out of reach: every alert declares an incident (a channel, a summary, an
              announcement), the heaviest path.
    bare      A FastAPI endpoint on the same uvicorn set-up that checks the bearer token, parses
              the JSON and inserts the body into a SQLite table (same driver, one transaction a
              request): the floor any receiver that stores what it gets pays.

    Rounds rotate between the targets (and which goes first); the median round of each is
    reported, with the ratios join/bare and declare/bare. The issue's aim: join >= 0.5 of bare.

Run it as `python -m bench.alerts [--alerts 200] [--rounds 3] [--senders 8]`; it prints a table,
then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from sqlalchemy import text

from tests.adapters.slack_harness import serve

TOKEN = "bench-token"
AIM = 0.5


def alert_body(i: int, *, round_: int, group: str) -> dict[str, Any]:
    start = datetime(2026, 11, 25, 14, 0, tzinfo=UTC).isoformat().replace("+00:00", "Z")
    labels = {
        "alertname": "HighErrorRate",
        "service": group,
        "instance": f"pod-{round_}-{i}:8080",
        "severity": "critical",
        "job": "checkout-api",
    }
    return {
        "receiver": "opsroom",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": labels,
                "annotations": {"summary": f"5xx above 5% on {group}"},
                "startsAt": start,
                "endsAt": "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus:9090/graph?g0.expr=x",
                "fingerprint": f"{round_:04x}{i:08x}{abs(hash(group)) % 65536:04x}",
            }
        ],
        "groupLabels": {"alertname": "HighErrorRate"},
        "commonLabels": labels,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "version": "4",
        "groupKey": '{}:{alertname="HighErrorRate"}',
        "truncatedAlerts": 0,
    }


@asynccontextmanager
async def opsroom_app(workdir: Path) -> AsyncIterator[Any]:
    from adapters.alerts_http import AlertAuth
    from adapters.http import Readiness, create_app
    from bot.catalog import AlertRoute, load_catalog
    from bot.mirror import Mirror
    from bot.service import IncidentService
    from bot.suggest import HeuristicSuggester
    from storage.engine import make_engine, upgrade
    from storage.store import SqlStore
    from tests.fakes.chat import RecordingChat

    engine = make_engine(f"sqlite:///{workdir / 'opsroom.db'}")
    await upgrade(engine)
    base = load_catalog()
    # Declare mode must declare every time: no storm however many groups a second arrive.
    catalog = base.model_copy(
        update={"alert_routes": [AlertRoute(name="all", storm_threshold=1_000_000)]}
    )
    store = SqlStore(engine)
    chat = RecordingChat(channels=("general",))
    mirror = Mirror(store=store, ports={"console": chat}, catalog=catalog)
    service = IncidentService(
        store=store, catalog=catalog, suggester=HeuristicSuggester(), notify=mirror.wake
    )
    auth = AlertAuth(tokens={"alertmanager": TOKEN})
    task = asyncio.create_task(mirror.run())
    try:
        yield create_app(Readiness(), alerts=(service, auth))
    finally:
        await mirror.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await engine.dispose()


@asynccontextmanager
async def bare_app(workdir: Path) -> AsyncIterator[Any]:
    from storage.engine import make_engine

    engine = make_engine(f"sqlite:///{workdir / 'bare.db'}")
    async with engine.begin() as conn:
        await conn.execute(
            text("CREATE TABLE received (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
        )
    app = FastAPI()
    lock = asyncio.Lock()  # one writer at a time, as SQLite has it

    @app.post("/alerts/alertmanager")
    async def receive(request: Request) -> Response:
        if request.headers.get("authorization") != f"Bearer {TOKEN}":
            return JSONResponse({"error": "unauthorized"}, status_code=401)
        body = await request.body()
        data = json.loads(body)
        async with lock, engine.begin() as conn:
            await conn.execute(
                text("INSERT INTO received (body) VALUES (:body)"), {"body": json.dumps(data)}
            )
        return JSONResponse({"status": "ok"})

    try:
        yield app
    finally:
        await engine.dispose()


async def one_round(url: str, bodies: list[dict[str, Any]], senders: int) -> tuple[float, int]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    failures = 0

    async def sender() -> None:
        nonlocal failures
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while not queue.empty():
                body = queue.get_nowait()
                response = await client.post(
                    "/alerts/alertmanager",
                    json=body,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                )
                if response.status_code != 200:
                    failures += 1

    started = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(senders)))
    return time.perf_counter() - started, failures


async def main(alerts: int, rounds: int, senders: int) -> dict[str, Any]:
    logging.disable(logging.WARNING)
    work = Path(tempfile.mkdtemp(prefix="opsroom-bench-alerts-"))
    rates: dict[str, list[float]] = {"join": [], "declare": [], "bare": []}
    failed = 0
    async with opsroom_app(work) as ops, bare_app(work) as bare:
        async with serve(ops) as ops_url, serve(bare) as bare_url:
            # Warm-up: the first incident of the join group, the connections, the caches.
            await one_round(ops_url, [alert_body(0, round_=999, group="joined")], 1)
            await one_round(bare_url, [alert_body(0, round_=999, group="w")], 1)
            makers: dict[str, tuple[str, Callable[[int, int], dict[str, Any]]]] = {
                "join": (ops_url, lambda i, r: alert_body(i, round_=r, group="joined")),
                "declare": (ops_url, lambda i, r: alert_body(i, round_=r, group=f"g{r}-{i}")),
                "bare": (bare_url, lambda i, r: alert_body(i, round_=r, group=f"b{r}-{i}")),
            }
            order = list(makers)
            for r in range(rounds):
                for name in order[r % 3 :] + order[: r % 3]:
                    url, make = makers[name]
                    took, bad = await one_round(url, [make(i, r) for i in range(alerts)], senders)
                    failed += bad
                    rates[name].append(alerts / took)
    medians = {name: statistics.median(values) for name, values in rates.items()}
    return {
        "bench": "alerts",
        "alerts_per_round": alerts,
        "rounds": rounds,
        "senders": senders,
        "alerts_per_s": {k: round(v, 1) for k, v in medians.items()},
        "join_over_bare": round(medians["join"] / medians["bare"], 3),
        "declare_over_bare": round(medians["declare"] / medians["bare"], 3),
        "aim_join_over_bare": AIM,
        "failed_requests": failed,
    }


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--alerts", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--senders", type=int, default=8)
    args = parser.parse_args()
    result = asyncio.run(main(args.alerts, args.rounds, args.senders))
    print(f"{'target':<10}{'alerts/s':>12}{'vs bare':>10}")
    bare = result["alerts_per_s"]["bare"]
    for name, rate in result["alerts_per_s"].items():
        print(f"{name:<10}{rate:>12.1f}{rate / bare:>10.2f}")
    print(
        f"join/bare {result['join_over_bare']} (aim >= {AIM}); "
        f"declare/bare {result['declare_over_bare']}; failed requests {result['failed_requests']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    run()
