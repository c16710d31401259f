"""Field suggestion: the heuristic's accuracy, and how long a declare waits on the model.

What is measured
    accuracy  the built-in heuristic (`bot.suggest.heuristic_suggestion`) on two labelled
              sets: the tuning set (tests/data/incidents.yaml, which the heuristic was tuned
              on) and the held-out set (tests/data/heldout.yaml, never tuned on: the honest
              figure). For each, in all and per writer's style (alert, customer, jargon,
              statuspage, chat): the share whose incident type equals the label, whose
              severity equals it, and whose severity is within one level of it.
    declare   `/incident declare <description>` through `IncidentService.handle_text` on a
              SQLite store, from the command to the reply: suggestion, then the incident, its
              channel link, its outbox rows and its first timeline entry in one transaction.
              Run with the heuristic alone (the baseline: no model configured), then with
              `OpenAISuggester` (real `openai` SDK over HTTP) against FakeOpenAI answering the
              labelled truth in 0 s, in 2 s, and past the budget. The suggester's budget is 3 s
              here (8 s by default) so the run stays short.

Why the baseline is fair
    Both run the same declare on the same kind of store with the same descriptions; only the
    suggester differs. The difference is what asking a model costs a declare: the fake's
    answer time plus the HTTP round trip, prompt and schema building, parsing and validation.
    Past the budget the declare must take the budget and not more: the heuristic's answer
    is used as soon as the budget is spent.

Run it as `python -m bench.suggest [--budget 3] [--n 20]`. It prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import cycle
from pathlib import Path
from typing import Any

import openai

from adapters.openai_suggester import OpenAISuggester
from bot.ai import model_answer
from bot.catalog import Catalog, load_catalog
from bot.ports import Actor, ChannelRef, Suggester, Suggestion
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester, heuristic_suggestion
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.fakes.openai import FakeOpenAI, RecordedRequest, Reply
from tests.labelled import STYLES, Labelled, accuracy, load_heldout, load_labelled

MODEL = "gpt-4o-mini"
ACTOR = Actor(platform="console", user_id="bench", name="bench", mention="@bench")
WHERE = ChannelRef("console", "general")


@dataclass
class Timing:
    name: str
    model_delay: float | None  # None: no model configured
    runs: list[float]
    from_model: int  # declares whose severity came from the model

    @property
    def median_ms(self) -> float:
        return statistics.median(self.runs) * 1000

    @property
    def max_ms(self) -> float:
        return max(self.runs) * 1000


def _truth_responder(items: list[Labelled], catalog: Catalog) -> Any:
    by_text = {i.text: i for i in items}

    def answer(request: RecordedRequest) -> Reply:
        description = request.messages[-1]["content"].split("Description:\n", 1)[1]
        item = by_text[description]
        rank = catalog.severity_names.index(item.severity)
        truth = Suggestion(
            title=item.text[:60],
            summary=item.text,
            type=item.type,
            severity=item.severity,
            priority=catalog.priority_names[rank],
        )
        return Reply.json(model_answer(truth, catalog))

    return answer


async def _declares(service: IncidentService, texts: Iterator[str], n: int) -> list[float]:
    """Seconds each of `n` declares took, command to reply."""
    runs: list[float] = []
    for _ in range(n):
        command = f"declare {next(texts)}"
        started = time.perf_counter()
        reply = await service.handle_text(command, actor=ACTOR, where=WHERE)
        runs.append(time.perf_counter() - started)
        assert reply.ok, reply.text
    return runs


async def _timed(
    name: str,
    suggester: Suggester,
    catalog: Catalog,
    store: SqlStore,
    texts: Iterator[str],
    n: int,
    delay: float | None,
) -> Timing:
    counted = _Counting(suggester)
    service = IncidentService(store=store, catalog=catalog, suggester=counted)
    if not delay:  # warm up imports, the connection pool and the HTTP connection
        await service.handle_text(f"declare {next(texts)}", actor=ACTOR, where=WHERE)
        counted.from_model = 0
    runs = await _declares(service, texts, n)
    return Timing(name, delay, runs, counted.from_model)


class _Counting:
    """Wraps a suggester to count the declares whose severity the model chose."""

    def __init__(self, inner: Suggester) -> None:
        self.inner = inner
        self.from_model = 0

    async def suggest(
        self, *, description: str, type_hint: str | None, catalog: Catalog
    ) -> Suggestion:
        s = await self.inner.suggest(description=description, type_hint=type_hint, catalog=catalog)
        self.from_model += s.sources.get("severity") == "model"
        return s


def _accuracy(items: list[Labelled], catalog: Catalog) -> dict[str, Any]:
    acc = accuracy(
        items, lambda text: heuristic_suggestion(text, None, catalog), catalog.severity_names
    )
    return {
        "n": acc.n,
        "type": round(acc.type, 3),
        "severity": round(acc.severity, 3),
        "severity_within_one": round(acc.severity_near, 3),
    }


async def run(budget: float, n: int) -> dict[str, Any]:
    catalog = load_catalog()
    items = load_labelled()
    result: dict[str, Any] = {"bench": "suggest", "budget_s": budget}
    for name, labelled in (("tuning", items), ("heldout", load_heldout())):
        result[name] = {
            style: _accuracy([i for i in labelled if style == "all" or i.style == style], catalog)
            for style in ("all", *STYLES)
        }

    # Descriptions the model is asked about (the heuristic keeps ai:false types to itself).
    asked = [
        i.text
        for i in items
        if (t := catalog.incident_type(heuristic_suggestion(i.text, None, catalog).type)) and t.ai
    ]
    timings: list[Timing] = []
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(engine)
        store = SqlStore(engine)
        try:
            timings.append(
                await _timed(
                    "heuristic only", HeuristicSuggester(), catalog, store, cycle(asked), n, None
                )
            )
            async with FakeOpenAI() as fake:
                fake.respond_with(_truth_responder(items, catalog))
                async with openai.AsyncOpenAI(
                    api_key="sk-bench", base_url=fake.base_url, max_retries=1
                ) as client:
                    suggester = OpenAISuggester(client, MODEL, budget_s=budget)
                    for name, delay, runs in (
                        ("model 0 s", 0.0, n),
                        ("model 2 s", 2.0, 3),
                        (f"model past budget ({budget + 2:g} s)", budget + 2.0, 2),
                    ):
                        fake.delay(delay)
                        timings.append(
                            await _timed(name, suggester, catalog, store, cycle(asked), runs, delay)
                        )
        finally:
            await engine.dispose()
    base = timings[0].median_ms
    result["declare"] = [
        {
            "name": t.name,
            "model_delay_s": t.model_delay,
            "runs": len(t.runs),
            "median_ms": round(t.median_ms, 2),
            "max_ms": round(t.max_ms, 2),
            "over_heuristic_ms": round(t.median_ms - base, 2),
            "severity_from_model": t.from_model,
        }
        for t in timings
    ]
    return result


def _print(result: dict[str, Any]) -> None:
    print("Heuristic accuracy (tuning: tuned on; held-out: never tuned on)")
    print(f"  {'set':<8} {'style':<11} {'n':>3} {'type':>7} {'severity':>9} {'sev ±1':>7}")
    for name in ("tuning", "heldout"):
        for style, r in result[name].items():
            print(
                f"  {name:<8} {style:<11} {r['n']:>3} {r['type']:>7.1%} "
                f"{r['severity']:>9.1%} {r['severity_within_one']:>7.1%}"
            )
    print()
    print(f"Declare time (budget {result['budget_s']:g} s)")
    print(
        f"  {'suggester':<28} {'runs':>4} {'median ms':>10} {'max ms':>9} "
        f"{'+ms vs heur.':>12} {'sev from model':>14}"
    )
    for d in result["declare"]:
        print(
            f"  {d['name']:<28} {d['runs']:>4} {d['median_ms']:>10.1f} {d['max_ms']:>9.1f} "
            f"{d['over_heuristic_ms']:>12.1f} {d['severity_from_model']:>8}/{d['runs']}"
        )
    print()
    print(json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=3.0, help="suggester budget, seconds")
    parser.add_argument("--n", type=int, default=20, help="declares for the fast cases")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    _print(asyncio.run(run(args.budget, args.n)))


if __name__ == "__main__":
    main()
