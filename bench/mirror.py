"""Mirror throughput: how the outcome write (a message id committed before the next send to
that channel) limits deliveries per second, before and after it was made cheaper.

What is measured
    The probe world of bench/scale.py (one incident channel, 19 more, 1,000 other incidents) on
    SQLite and, when a URL is given, PostgreSQL; N notes queued, then the mirror drains them
    against a zero-latency recording chat: deliveries per second and the mirror's CPU time per
    delivery, for one channel and for 20 channels at once. Three ways of recording outcomes, in
    alternating rounds so the machine's load falls on all alike:
    - before: an ORM unit (session, BEGIN, UPDATE, COMMIT), the commit waiting for the disk;
    - one trip: the same UPDATE alone on a plain connection (PostgreSQL: autocommit, one round
      trip instead of three; SQLite: BEGIN IMMEDIATE, UPDATE, COMMIT without a session);
    - now (SqlStore.record_outcomes): one trip, and on PostgreSQL without waiting for the WAL
      flush (synchronous_commit off for that transaction only).
    Ratios are now/before (and one trip/before): above 1.0 is faster. Best and median of the
    rounds are printed: on a shared machine the best is what the code can do, the median what
    it did.

Run it as `python -m bench.mirror [--notes 400] [--rounds 3] [--pg URL]`.
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
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from bench import scale
from bot.ports import Finished
from storage import store as sql
from storage.store import SqlStore

Recorder = Callable[[SqlStore, Sequence[Finished]], Awaitable[None]]


async def _before(self: SqlStore, done: Sequence[Finished]) -> None:
    async with self.unit() as u:
        await u.finish_deliveries(done)


async def _one_trip(self: SqlStore, done: Sequence[Finished]) -> None:
    if not done:
        return
    rows = sql._finish_rows(done)
    if self.engine.dialect.name == "postgresql":
        async with self.engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(sql._FINISH, rows)
        return
    async with self._connection() as conn:
        await conn.execute(sql._FINISH, rows)


VARIANTS: dict[str, Recorder] = {
    "before": _before,
    "one trip": _one_trip,
    "now": SqlStore.record_outcomes,
}


async def drain_timed(world: scale.World, notes: int, spread: bool) -> tuple[float, float]:
    """(deliveries/s, CPU µs per delivery) of one drain."""
    spent: list[tuple[float, float]] = []  # (CPU, wall) seconds of the drain
    original = world.mirror.drain

    async def drain(timeout: float = 10.0) -> bool:
        cpu, wall = time.process_time(), time.perf_counter()
        try:
            return await original(timeout)
        finally:
            spent.append((time.process_time() - cpu, time.perf_counter() - wall))

    world.mirror.drain = drain  # type: ignore[method-assign]
    try:
        rate = await scale.mirror_rate(world, notes, spread=spread)
    finally:
        world.mirror.drain = original  # type: ignore[method-assign]
    cpu, wall = spent[0]
    return rate, cpu / (rate * wall) * 1e6 if rate else 0.0


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "mirror", "notes": args.notes, "rounds": args.rounds}
    async with scale.engines(args.pg) as pairs:
        for backend, engine, _unused in pairs:
            world = await scale.probe_world("small", engine)
            await scale.grow(world, incidents=scale.PENDING_QUEUES, entries=0, delivered=0,
                             open_every=10)
            await scale.mirror_rate(world, 100)  # warm-up
            rates: dict[tuple[str, str], list[float]] = {}
            cpus: dict[tuple[str, str], list[float]] = {}
            for _ in range(args.rounds):
                for name, recorder in VARIANTS.items():
                    SqlStore.record_outcomes = recorder  # type: ignore[method-assign]
                    try:
                        for label, spread in (("1 channel", False),
                                              (f"{scale.CHANNELS} channels", True)):
                            rate, cpu = await drain_timed(world, args.notes, spread)
                            rates.setdefault((label, name), []).append(rate)
                            cpus.setdefault((label, name), []).append(cpu)
                    finally:
                        SqlStore.record_outcomes = VARIANTS["now"]  # type: ignore[method-assign]
            out[backend] = {
                f"{label} / {name}": {
                    "best": round(max(v), 1), "median": round(statistics.median(v), 1),
                    "cpu_us": round(statistics.median(cpus[(label, name)])),
                    "ratio_best": round(max(v) / max(rates[(label, "before")]), 2),
                    "ratio_median": round(statistics.median(v)
                                          / statistics.median(rates[(label, "before")]), 2),
                }
                for (label, name), v in rates.items()
            }
    return out


def print_table(out: dict[str, Any]) -> None:
    print(f"mirror: deliveries/s against a zero-latency chat, {out['notes']} notes, "
          f"{out['rounds']} rounds (ratio: vs before; aim >= 500/s)")
    print()
    print(f"{'backend':<12}{'case':<32}{'best':>8}{'median':>8}{'cpu µs':>8}"
          f"{'x best':>8}{'x med':>8}")
    for backend in ("sqlite", "postgresql"):
        for case, row in out.get(backend, {}).items():
            print(f"{backend:<12}{case:<32}{row['best']:>8.0f}{row['median']:>8.0f}"
                  f"{row['cpu_us']:>8}{row['ratio_best']:>8.2f}{row['ratio_median']:>8.2f}")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.mirror", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--notes", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--pg", metavar="URL", default=os.environ.get("OPSROOM_TEST_DATABASE_URL"),
                        help="PostgreSQL URL (default: $OPSROOM_TEST_DATABASE_URL; none: skip)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    out = asyncio.run(run(args))
    print_table(out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
