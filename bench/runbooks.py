"""Runbook overhead: 100 concurrent runs of a 10-step runbook against the HTTP calls alone.

What is measured
    runbooks  N incidents each run a 10-step runbook (3 messages, 3 sets, 4 HTTP POSTs to a local
              aiohttp server that answers after `--latency` ms), all started at once and driven
              by one `RunbookRunner` (its default batch and concurrency) until every run is done.
              Every step commits its start and its finish (with the step's entries, deliveries
              and progress edit), as in production.
    http      the same 4 x N POSTs to the same server through the same client, with the same
              concurrency as the runner (N runs, each its 4 calls in sequence), nothing else.

The difference is what running them as runbooks costs: reported per step (of N x 10) and per
run. Run it as `python -m bench.runbooks [--n 100] [--latency 20]` (SQLite in a temporary
file). It prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from adapters.http_client import AiohttpClient
from bot.catalog import load_catalog
from bot.models import RunState
from bot.ports import Actor, ChannelRef
from bot.runbooks import RunbookRunner
from bot.service import IncidentService
from bot.steps import Tools
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.fakes.http_target import running_target

ALICE = Actor(platform="console", user_id="alice", name="alice", mention="@alice")
HTTP_STEPS = 4


def steps(url: str) -> list[dict[str, Any]]:
    http = {"kind": "http", "url": url, "body": {"incident": "{{ incident.number }}"}}
    return [
        {"kind": "message", "text": "start #{{ incident.number }}"},
        {"kind": "set", "severity": "sev2"},
        http,
        {"kind": "message", "text": "called once"},
        http,
        {"kind": "set", "priority": "p2"},
        http,
        {"kind": "set", "status": "investigating"},
        http,
        {"kind": "message", "text": "done #{{ incident.number }}"},
    ]


async def bench(n: int, latency: float) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="opsroom-bench-"))
    async with running_target() as target:
        target.plan = []
        url = target.url + "/hook"
        delay = latency / 1000

        original = target.handle

        async def slow(request: Any) -> Any:
            await asyncio.sleep(delay)
            return await original(request)

        target.handle = slow  # type: ignore[method-assign]
        data = yaml.safe_load((Path(__file__).parents[1] / "bot" / "opsroom.yaml").read_text())
        data["workflows"] = []
        data["runbooks"] = [{"name": "bench", "steps": steps(url)}]
        (folder / "opsroom.yaml").write_text(yaml.safe_dump(data))
        catalog = load_catalog(folder / "opsroom.yaml")
        engine = make_engine(f"sqlite:///{folder / 'bench.db'}")
        await upgrade(engine)
        store = SqlStore(engine)
        service = IncidentService(store=store, catalog=catalog, suggester=HeuristicSuggester())
        where = ChannelRef("console", "general")
        for i in range(n):
            reply = await service.declare(actor=ALICE, where=where, description=f"bench {i}",
                                          title=f"Bench {i}", type="deploy", severity="sev3",
                                          priority="p3")
            assert reply.ok, reply.text
        http = AiohttpClient()
        runner = RunbookRunner(service=service, store=store, tools=Tools(http=http))
        for i in range(1, n + 1):
            reply = await service.handle_text(f"#{i} runbook run bench", actor=ALICE, where=where)
            assert reply.ok, reply.text
        began = time.perf_counter()
        while True:
            await runner.run_once()
            async with store.unit() as u:
                if not await u.runnable_runs(1):
                    break
        run_s = time.perf_counter() - began
        async with store.unit() as u:
            states = [r.state for i in range(1, n + 1)
                      for r in await u.runs((await u.incident(i)).id or 0)]  # type: ignore[union-attr]
        assert states == [RunState.DONE] * n, states
        calls = len(target.seen)

        async def one_run() -> None:
            for _ in range(HTTP_STEPS):
                await http.request("POST", url, headers={}, body={"incident": "1"}, timeout=10)

        began = time.perf_counter()
        await asyncio.gather(*(one_run() for _ in range(n)))
        http_s = time.perf_counter() - began
        await http.close()
        await engine.dispose()
    step_count = n * len(steps(url))
    return {
        "bench": "runbooks", "runs": n, "steps_per_run": len(steps(url)), "http_calls": calls,
        "latency_ms": latency, "runbooks_s": round(run_s, 3), "http_only_s": round(http_s, 3),
        "ratio": round(run_s / http_s, 2),
        "overhead_ms_per_step": round((run_s - http_s) * 1000 / step_count, 3),
        "overhead_ms_per_run": round((run_s - http_s) * 1000 / n, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--latency", type=float, default=20.0, help="ms per HTTP answer")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    r = asyncio.run(bench(args.n, args.latency))
    print(f"{r['runs']} concurrent runs of a {r['steps_per_run']}-step runbook "
          f"({HTTP_STEPS} HTTP steps, {r['latency_ms']:.0f} ms each), SQLite")
    print()
    print(f"{'path':<28}{'seconds':>10}")
    print(f"{'runbooks (runner)':<28}{r['runbooks_s']:>10.3f}")
    print(f"{'the HTTP calls alone':<28}{r['http_only_s']:>10.3f}")
    print(f"{'ratio':<28}{r['ratio']:>10.2f}")
    print(f"{'overhead per step (ms)':<28}{r['overhead_ms_per_step']:>10.3f}")
    print(f"{'overhead per run (ms)':<28}{r['overhead_ms_per_run']:>10.2f}")
    print()
    print(json.dumps(r))


if __name__ == "__main__":
    main()
