"""Jobs: how late reminders reach the chat, how fast the worker fires, and whether firing gets
slower as more jobs wait.

What is measured
    delay     10,000 pending action-item reminders across 1,000 incidents, each with an open Slack
              channel on the fake Slack (tests/fakes/slack.py, over HTTP). `--due` of them come due
              one after another over `--window` seconds (default 300 over 30 s: ten a second);
              the rest are days away. Opsroom runs as
              `opsroom run` does: the APScheduler `JobScheduler` (date trigger at the earliest due
              job, safety tick `--tick`, default 15 s as in production), the `JobWorker`, and the
              `Mirror` posting through `SlackChat`. The delay of a reminder is from its `due_at` to
              the `ts` the fake Slack stamped on the channel message when it accepted it: p50, p99.
    burst     `--burst` reminders due at the same instant on top of the 10,000: jobs the worker
              fires per second (claim, lock, handler, entry, deliveries, completion; the mirror
              is not part of it).
    scaling   the cost of firing `--fire` due jobs when 1,000 jobs are pending, and when 100,000
              are (the same due jobs, the rest days away): seconds per fired job, and the ratio
              100k / 1k. 1.0 means the pending backlog costs nothing; the claim reads the
              (state, due_at) index, so it should stay near 1.

Baseline
    The scaling ratio is its own baseline: both runs fire the same jobs on the same engine in
    the same process, in alternating rounds (medians reported), only the number of jobs
    waiting differs.

Run it as `python -m bench.jobs [--pg postgresql://...]`. SQLite runs in a temporary file;
PostgreSQL runs when `--pg` or `OPSROOM_TEST_DATABASE_URL` gives a URL, in a schema of its own
that is dropped afterwards. It prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.scheduler import JobScheduler
from adapters.slack.chat import SlackChat
from bench.timeline import postgres_engine, sqlite_engine
from bot.catalog import Catalog, load_catalog
from bot.jobs import JobWorker
from bot.mirror import Backoff, Mirror
from bot.models import (
    ActionItem,
    ChannelLink,
    EntryKind,
    Incident,
    Job,
    LinkState,
    Status,
    TimelineEntry,
)
from bot.render import Message
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import safe_url, upgrade
from storage.store import SqlStore
from tests.fakes import slack as fs

COMMANDER = f"<@{fs.ALICE}>"
FAR = timedelta(days=3)
WARM_UP = 20


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Result:
    backend: str
    delays: list[float] = field(default_factory=list)
    fired: list[float] = field(default_factory=list)  # due_at -> the reminder's entry recorded
    missing: int = 0
    burst_jobs: int = 0
    burst_seconds: float = 0.0
    per_job_small: float = 0.0
    per_job_large: float = 0.0
    pending_small: int = 0
    pending_large: int = 0

    @property
    def ratio(self) -> float:
        return self.per_job_large / self.per_job_small if self.per_job_small else float("nan")

    def row(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "reminders": len(self.delays),
            "missing": self.missing,
            "delay_p50_s": round(percentile(self.delays, 0.5), 4),
            "delay_p99_s": round(percentile(self.delays, 0.99), 4),
            "delay_max_s": round(max(self.delays, default=float("nan")), 4),
            "fired_p50_s": round(percentile(self.fired, 0.5), 4),
            "fired_p99_s": round(percentile(self.fired, 0.99), 4),
            "burst_jobs_per_s": round(self.burst_jobs / self.burst_seconds, 1)
            if self.burst_seconds
            else 0.0,
            "fire_ms_per_job_1k_pending": round(self.per_job_small * 1000, 3),
            "fire_ms_per_job_100k_pending": round(self.per_job_large * 1000, 3),
            "cost_ratio_100k_over_1k": round(self.ratio, 3),
        }


# --- seeding (straight into the tables: the setup is not what is measured) ----------------------


async def seed_incidents(
    engine: AsyncEngine, chat: SlackChat, fake: fs.FakeSlack, count: int, now: datetime
) -> list[int]:
    """`count` acknowledged incidents, each with an open Slack channel holding its summary."""
    async with engine.begin() as conn:
        start = (await conn.execute(select(Incident.number).order_by(Incident.number.desc())
                                    .limit(1))).scalar_one_or_none() or 0  # type: ignore[attr-defined]
        numbers = list(range(start + 1, start + count + 1))
        await conn.execute(insert(Incident), [
            {"number": n, "title": f"Service {n} degraded", "type": "performance",
             "severity": "sev4", "priority": "p3", "status": Status.ACKNOWLEDGED,
             "roles": {"commander": COMMANDER}, "custom_fields": {}, "summary": "",
             "description": "", "private": False, "declared_by": COMMANDER,
             "declared_on": "slack", "declared_at": now, "updated_at": now}
            for n in numbers
        ])
        ids = dict((await conn.execute(
            select(Incident.id, Incident.number).where(Incident.number >= numbers[0])  # type: ignore[arg-type]
        )).all())
    links = []
    for n in numbers:
        channel = fake.add_channel(f"inc-{n}-service-{n}-degraded", members=[fake.bot_user_id])
        links.append((n, channel["id"]))
    summaries = await asyncio.gather(*(
        chat.post(channel_id=cid, message=Message(text=f"summary of #{n}")) for n, cid in links
    ))
    by_number = {number: iid for iid, number in ids.items()}
    async with engine.begin() as conn:
        await conn.execute(insert(ChannelLink), [
            {"incident_id": by_number[n], "platform": "slack", "workspace": fs.TEAM_ID,
             "state": LinkState.OPEN, "channel_id": cid, "channel_name": f"inc-{n}",
             "thread_id": ts, "summary_message_id": ts, "summary_pinned": True,
             "invite": [], "created_at": now}
            for (n, cid), ts in zip(links, summaries, strict=True)
        ])
    return [by_number[n] for n in numbers]


async def seed_reminders(
    engine: AsyncEngine, incident_ids: list[int], dues: list[datetime], now: datetime,
    first_number: int = 1,
) -> None:
    """One open action item per due time, round robin over the incidents, each with its
    reminder job exactly as bot/reminders.py plans it."""
    items, jobs = [], []
    per_incident: dict[int, int] = {}
    for i, due in enumerate(dues):
        iid = incident_ids[i % len(incident_ids)]
        number = per_incident.get(iid, first_number - 1) + 1
        per_incident[iid] = number
        items.append({"incident_id": iid, "number": number, "text": f"task {number}",
                      "assignee": None, "due_at": due, "status": "open", "created_by": COMMANDER,
                      "created_at": now, "updated_at": now})
        jobs.append({"kind": "action_item", "key": f"action:{iid}:{number}:{due.isoformat()}",
                     "incident_id": iid, "due_at": due,
                     "payload": {"number": number, "platform": "slack"}, "state": "pending",
                     "attempts": 0, "created_at": now})
    async with engine.begin() as conn:
        for chunk in range(0, len(items), 5000):
            await conn.execute(insert(ActionItem), items[chunk:chunk + 5000])
            await conn.execute(insert(Job), jobs[chunk:chunk + 5000])


async def seed_bare_jobs(engine: AsyncEngine, count: int, due: datetime, now: datetime) -> None:
    """Jobs days away that only wait (their kind is never due during the run)."""
    async with engine.begin() as conn:
        for chunk in range(0, count, 10000):
            await conn.execute(insert(Job), [
                {"kind": "action_item", "key": f"waiting:{i}", "incident_id": None,
                 "due_at": due + timedelta(seconds=i), "payload": {}, "state": "pending",
                 "attempts": 0, "created_at": now}
                for i in range(chunk, min(count, chunk + 10000))
            ])


# --- the parts --------------------------------------------------------------------------------


def build(engine: AsyncEngine, catalog: Catalog, chat: SlackChat) -> tuple[
    SqlStore, Mirror, IncidentService, JobWorker
]:
    store = SqlStore(engine)
    mirror = Mirror(store=store, ports={"slack": chat}, catalog=catalog,
                    backoff=Backoff(base=0.05, cap=1.0))
    service = IncidentService(store=store, catalog=catalog, suggester=HeuristicSuggester(),
                              platforms=["slack"], notify=mirror.wake)
    worker = JobWorker(store=store, catalog=catalog, record=service.record, notify=mirror.wake)
    return store, mirror, service, worker


async def measure_delay(
    engine: AsyncEngine, catalog: Catalog, fake: fs.FakeSlack, chat: SlackChat, args: Any,
    result: Result,
) -> list[int]:
    now = datetime.now(UTC)
    incident_ids = await seed_incidents(engine, chat, fake, args.incidents, now)
    start = datetime.now(UTC) + timedelta(seconds=3)
    step = args.window / max(1, args.due)
    soon = [start + timedelta(seconds=i * step) for i in range(args.due)]
    later = [now + FAR + timedelta(seconds=i) for i in range(args.pending - args.due)]
    await seed_reminders(engine, incident_ids, soon + later, now)
    due_of = {(incident_ids[i % len(incident_ids)], i // len(incident_ids) + 1): d
              for i, d in enumerate(soon)}

    store, mirror, _, worker = build(engine, catalog, chat)
    worker.tick = timedelta(seconds=args.tick)
    scheduler = JobScheduler(worker=worker, store=store, catalog=catalog, tick_s=args.tick)
    mirror_task = asyncio.create_task(mirror.run())
    await scheduler.start()
    number_of = {iid: n for n, iid in enumerate(incident_ids, start=1)}
    deadline = time.monotonic() + args.window + 60
    seen: dict[tuple[int, int], float] = {}
    iid_of = {number_of[iid]: iid for iid in incident_ids}
    while time.monotonic() < deadline and len(seen) < len(soon):
        await asyncio.sleep(0.5)
        for call in fake.calls_to("chat.postMessage"):
            text = str(call.params.get("text") or "")
            if call.ok and text.startswith("⏰ Action item "):
                words = text.split()
                key = (iid_of[int(words[5].lstrip("#"))], int(words[3]))
                seen.setdefault(key, float(call.response["ts"]))
    await scheduler.stop()
    await mirror.stop()
    mirror_task.cancel()
    await asyncio.gather(mirror_task, return_exceptions=True)
    result.delays = [seen[k] - due_of[k].timestamp() for k in seen if k in due_of]
    result.missing = len(due_of) - len(result.delays)
    async with engine.connect() as conn:
        recorded = (await conn.execute(
            select(TimelineEntry.incident_id, TimelineEntry.data, TimelineEntry.created_at)
            .where(TimelineEntry.kind == EntryKind.REMINDER)  # type: ignore[arg-type]
        )).all()
    result.fired = [
        (created - due_of[(iid, data["action_item"])]).total_seconds()
        for iid, data, created in recorded
        if (iid, data.get("action_item")) in due_of
    ]
    return incident_ids


async def measure_burst(
    engine: AsyncEngine, catalog: Catalog, chat: SlackChat, incident_ids: list[int], args: Any,
    result: Result,
) -> None:
    now = datetime.now(UTC)
    await seed_reminders(engine, incident_ids, [now] * args.burst, now, first_number=1000)
    _, _, _, worker = build(engine, catalog, chat)
    began = time.perf_counter()
    result.burst_jobs = await worker.run_once()
    result.burst_seconds = time.perf_counter() - began


async def firing_cost(
    engine: AsyncEngine, catalog: Catalog, fake: fs.FakeSlack, chat: SlackChat, waiting: int,
    fire: int,
) -> float:
    """Seconds per fired job, firing `fire` due jobs while `waiting` others are pending."""
    now = datetime.now(UTC)
    await upgrade(engine)
    incident_ids = await seed_incidents(engine, chat, fake, 50, now)
    await seed_bare_jobs(engine, waiting, now + FAR, now)
    _, _, _, worker = build(engine, catalog, chat)
    # Warm up first (connections, compiled statements), then time the same kind of work.
    await seed_reminders(engine, incident_ids, [now] * WARM_UP, now)
    assert await worker.run_once() == WARM_UP
    await seed_reminders(engine, incident_ids, [now] * fire, now, first_number=1000)
    began = time.perf_counter()
    fired = await worker.run_once()
    assert fired == fire, f"fired {fired} of {fire}"
    return (time.perf_counter() - began) / fire


@asynccontextmanager
async def fresh(backend: str, url: str | None) -> AsyncIterator[AsyncEngine]:
    if backend == "sqlite":
        async with sqlite_engine() as engine:
            await upgrade(engine)
            yield engine
    else:
        assert url is not None
        async with postgres_engine(url) as engine:
            await upgrade(engine)
            yield engine


async def run_backend(backend: str, url: str | None, args: Any) -> Result:
    catalog = load_catalog().model_copy(update={"action_digest": None})
    result = Result(backend)
    async with fs.FakeSlack(trigger_ttl=None) as fake:
        chat = SlackChat(AsyncWebClient(token=fake.token, base_url=fake.api_url))
        async with fresh(backend, url) as engine:
            incident_ids = await measure_delay(engine, catalog, fake, chat, args, result)
            await measure_burst(engine, catalog, chat, incident_ids, args, result)
        # Alternating rounds, medians: a change in machine load hits both sizes alike.
        costs: dict[int, list[float]] = {1_000: [], args.large: []}
        for _ in range(args.rounds):
            for waiting in costs:
                async with fresh(backend, url) as engine:
                    costs[waiting].append(
                        await firing_cost(engine, catalog, fake, chat, waiting, args.fire)
                    )
        result.per_job_small = statistics.median(costs[1_000])
        result.per_job_large = statistics.median(costs[args.large])
        result.pending_small, result.pending_large = 1_000, args.large
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pg", default=os.environ.get("OPSROOM_TEST_DATABASE_URL"))
    parser.add_argument("--incidents", type=int, default=1000)
    parser.add_argument("--pending", type=int, default=10_000)
    parser.add_argument("--due", type=int, default=300, help="reminders due during the run")
    parser.add_argument("--window", type=float, default=30.0, help="seconds they come due over")
    parser.add_argument("--tick", type=float, default=15.0)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--fire", type=int, default=300)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating scaling rounds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    results = [asyncio.run(run_backend("sqlite", None, args))]
    if args.pg:
        results.append(asyncio.run(run_backend("postgresql", args.pg, args)))
    rows = [r.row() for r in results]
    width = max(len(h) for h in rows[0])
    for header in rows[0]:
        print(f"{header:<{width}}  " + "  ".join(f"{r[header]!s:>12}" for r in rows))
    print(json.dumps({
        "bench": "jobs",
        "pending": args.pending,
        "incidents": args.incidents,
        "tick_s": args.tick,
        "pg": safe_url(args.pg) if args.pg else None,
        "results": rows,
    }))


if __name__ == "__main__":
    main()
