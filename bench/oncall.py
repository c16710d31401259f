"""On-call: "who is on call" over many schedules, and page to DM accepted by the fake Slack.

What is measured
    who_at       `bot.schedules.who_at(schedule, t)`: 50 schedules of 3 layers (weekly, a daily
                 layer restricted to office hours, 12h), each asked at `--instants` instants
                 spread over two years (DST changes included). It looks only at the shifts
                 around the instant.
    via shifts   the baseline: the same answer read off `shifts(schedule, t, t + 1s)`, which
                 builds the covering shifts first (what a naive "list, then search" does).
                 Run on a sample (it is slow), then per instant.
    page -> DM   `/incident page` of a one-step policy, the job worker's pass, the mirror's
                 delivery, until the fake Slack Web API (tests/fakes/slack.py, over HTTP) has
                 accepted the DM with its Acknowledge button: p50 and p99 over `--pages` pages.

Run it as `python -m bench.oncall [--instants 10000] [--pages 50]`. It prints a table, then one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.chat import SlackChat
from bot.catalog import Catalog, load_catalog
from bot.jobs import JobWorker
from bot.mirror import Backoff, Mirror
from bot.people import PersonSpec
from bot.policies import EscalationPolicy
from bot.ports import Actor, ChannelRef
from bot.schedules import Schedule, shifts, who_at
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore

ZONES = ["Europe/Berlin", "America/New_York", "Asia/Tokyo", "UTC", "Australia/Sydney"]
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def schedules(n: int) -> list[Schedule]:
    out = []
    for i in range(n):
        users = [f"p{i}-{k}" for k in range(4)]
        out.append(Schedule.model_validate({
            "name": f"s{i}", "timezone": ZONES[i % len(ZONES)], "layers": [
                {"users": users, "rotation": "weekly", "handoff": "mon 09:00",
                 "start": "2025-01-06"},
                {"users": users[:2], "rotation": "daily", "handoff": "09:00",
                 "start": "2025-01-06",
                 "restrict": {"weekdays": ["mon", "tue", "wed", "thu", "fri"],
                              "hours": "09:00-17:00"}},
                {"users": users[2:], "rotation": "12h", "handoff": "08:00",
                 "start": "2025-01-06", "restrict": {"weekdays": ["sat", "sun"]}},
            ]}))
    return out


def bench_who(count: int, instants: int, sample: int) -> dict[str, float]:
    rng = random.Random(7)
    scheds = schedules(count)
    moments = [T0 + timedelta(seconds=rng.randrange(2 * 365 * 86400)) for _ in range(instants)]
    started = time.perf_counter()
    for s in scheds:
        for t in moments:
            who_at(s, t)
    fast = (time.perf_counter() - started) / (count * instants)
    picked = rng.sample(moments, sample)
    started = time.perf_counter()
    for s in scheds:
        for t in picked:
            found = shifts(s, t, t + timedelta(seconds=1))
            assert (found[0].person if found else None) == who_at(s, t)
    slow = (time.perf_counter() - started) / (count * sample)
    return {"who_at": fast * 1e6, "via shifts": slow * 1e6}


async def bench_pages(pages: int) -> list[float]:
    from tests.fakes.slack import ALICE, FakeSlack  # the fake, over real HTTP

    base = load_catalog()
    policy = EscalationPolicy.model_validate({"name": "now", "steps": [{"people": ["alice"]}]})
    catalog: Catalog = base.model_copy(update={
        "people": [PersonSpec(name="alice", slack=ALICE)], "escalation_policies": [policy]})
    timings = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(engine)
        async with FakeSlack() as fake:
            store = SqlStore(engine)
            chat = SlackChat(AsyncWebClient(token=fake.token, base_url=fake.api_url))
            mirror = Mirror(store=store, ports={"slack": chat}, catalog=catalog,
                            backoff=Backoff(base=0.001, cap=0.01))
            service = IncidentService(store=store, catalog=catalog,
                                      suggester=HeuristicSuggester(), platforms=["slack"],
                                      notify=mirror.wake)
            worker = JobWorker(store=store, catalog=catalog, record=service.record,
                               notify=mirror.wake)
            actor = Actor("slack", "U0BOB000002", "bob", "<@U0BOB000002>")
            where = ChannelRef("slack", fake.general_id)
            for i in range(pages):
                reply = await service.declare(actor=actor, where=where, description=f"x {i}",
                                              title=f"bench {i}", type="outage",
                                              severity="sev3", priority="p3")
                assert await mirror.drain(timeout=10)
                before = len(fake.calls_to("chat.postMessage"))
                started = time.perf_counter()
                paged = await service.handle_text(f"#{reply.incident} page now", actor=actor,
                                                  where=where)
                assert paged.ok, paged.text
                await worker.run_once()
                assert await mirror.drain(timeout=10)
                dm = fake.dm_channel(ALICE)
                timings.append(time.perf_counter() - started)
                assert dm is not None and len(fake.calls_to("chat.postMessage")) > before
        await engine.dispose()
    return timings


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=50)
    parser.add_argument("--instants", type=int, default=10_000)
    parser.add_argument("--sample", type=int, default=300)
    parser.add_argument("--pages", type=int, default=50)
    args = parser.parse_args()

    who = bench_who(args.schedules, args.instants, min(args.sample, args.instants))
    pages = sorted(await bench_pages(args.pages))
    p50 = statistics.median(pages) * 1e3
    p99 = pages[min(len(pages) - 1, int(0.99 * len(pages)))] * 1e3
    ratio = who["via shifts"] / who["who_at"]
    print(f"who is on call: {args.schedules} schedules x 3 layers x {args.instants} instants")
    print(f"{'':12} {'us/lookup':>10} {'lookups/s':>10}")
    for name, us in who.items():
        print(f"{name:12} {us:10.1f} {1e6 / us:10.0f}")
    print(f"who_at speed-up over the baseline: {ratio:.1f}x")
    print(f"page -> DM accepted by the fake Slack ({args.pages} pages): "
          f"p50 {p50:.1f} ms, p99 {p99:.1f} ms")
    print(json.dumps({"bench": "oncall", "schedules": args.schedules,
                      "instants": args.instants,
                      "us_per_lookup": {k: round(v, 2) for k, v in who.items()},
                      "speedup": round(ratio, 2),
                      "page_to_dm_ms": {"p50": round(p50, 1), "p99": round(p99, 1)}}))


if __name__ == "__main__":
    asyncio.run(main())
