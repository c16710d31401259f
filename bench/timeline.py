"""Timeline write throughput: timeline entries recorded per second, service path vs bare inserts.

What is measured
    service  `/incident note <text>` through `IncidentService.handle_text`, run in the channel of
             a declared incident whose console channel is open (a `RecordingChat` is linked and the
             mirror has opened it). Each note is one transaction: resolve the incident from the
             channel, append a TimelineEntry (a note leaves the incident row and its
             `updated_at` alone: only changes to the incident touch it), list its links
             and queue a Delivery per action per link (post the entry, refresh the pinned
             summary). The mirror is not drained while timing: the outbox rows are part of
             recording an entry, sending them is not.
    plain    the same TimelineEntry row and the same Delivery rows written with SQLAlchemy Core:
             per entry, one transaction holding an `INSERT ... RETURNING id` for the entry and
             one executemany `INSERT` for its deliveries.

Why the baseline is fair
    Both paths run on the same engine (same pool, same SQLite pragmas and `BEGIN IMMEDIATE`, same
    asyncpg settings), into the same tables through the same column types (the UTC timestamp and
    JSON bind processing included), with the same durability: one commit per entry, nothing
    batched across entries. The plain rows are copied from the rows the service wrote during the
    warm-up, so they are the same rows; only the text and the timestamps change per entry, as
    they do for the service. The loops run interleaved, in rounds that alternate which goes first,
    so a change in machine load hits both alike.

    What the baseline leaves out is exactly the service's own cost: parsing the command,
    finding the incident from the channel, reading its links, and the ORM unit of work (one flush
    per added row). The ratio service/plain is therefore the
    share of the bare write speed the service path keeps; 1.0 would mean it adds nothing.

Run it as `python -m bench.timeline [--n 500] [--pg postgresql://...]`. SQLite runs in a temporary
file; PostgreSQL runs when `--pg` or `OPSROOM_TEST_DATABASE_URL` gives a URL, in a schema of its
own that is dropped afterwards. It prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import event, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import load_catalog
from bot.mirror import Backoff, Mirror
from bot.models import Delivery, DeliveryState, TimelineEntry
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, safe_url, upgrade
from storage.store import SqlStore
from tests.fakes.chat import RecordingChat

WARM_UP = 20  # entries per path before timing: compiled-statement caches, prepared statements
ALICE = Actor(platform="console", user_id="alice", name="alice", mention="@alice")
ENTRIES = TimelineEntry.__table__  # type: ignore[attr-defined]
DELIVERIES = Delivery.__table__  # type: ignore[attr-defined]


@dataclass
class Writer:
    """One way of writing timeline entries, and what it took."""

    name: str
    write: Callable[[str], Awaitable[None]]
    entries: int = 0
    seconds: float = 0.0
    statements_per_entry: float = 0.0

    @property
    def per_second(self) -> float:
        return self.entries / self.seconds if self.seconds else 0.0


@dataclass
class Outcome:
    backend: str
    writers: list[Writer] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        service, plain = self.writers
        return service.per_second / plain.per_second if plain.per_second else 0.0


# --- databases ------------------------------------------------------------------------------


@asynccontextmanager
async def sqlite_engine() -> AsyncIterator[AsyncEngine]:
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-") as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        try:
            yield engine
        finally:
            await engine.dispose()


@asynccontextmanager
async def postgres_engine(url: str) -> AsyncIterator[AsyncEngine]:
    """An engine whose tables live in a fresh schema, dropped on the way out."""
    schema = f"bench_timeline_{uuid.uuid4().hex[:10]}"
    admin = make_engine(url)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    engine = make_engine(url, connect_args={"server_settings": {"search_path": schema}})
    try:
        yield engine
    finally:
        await engine.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


# --- the two paths --------------------------------------------------------------------------


async def open_incident(engine: AsyncEngine) -> tuple[IncidentService, ChannelRef]:
    """Declare an incident, let the mirror open its channel; return the service and the channel."""
    catalog = load_catalog()
    store = SqlStore(engine)
    chat = RecordingChat(channels=("general",))
    mirror = Mirror(store=store, ports={"console": chat}, catalog=catalog,
                    backoff=Backoff(base=0.0, cap=0.0))
    service = IncidentService(store=store, catalog=catalog, suggester=HeuristicSuggester(),
                              notify=mirror.wake)
    general = ChannelRef("console", chat.by_name("general").id)
    reply = await service.handle_text("declare checkout is failing for many customers",
                                      actor=ALICE, where=general)
    assert reply.ok and reply.incident is not None, reply.text
    assert await mirror.drain(timeout=10), "the mirror did not open the incident channel"
    channel = next(c for c in chat.channels.values()
                   if c.name.startswith(f"inc-{reply.incident}-"))
    return service, ChannelRef("console", channel.id)


def service_writer(service: IncidentService, where: ChannelRef) -> Writer:
    async def write(note: str) -> None:
        reply = await service.handle_text(f"note {note}", actor=ALICE, where=where)
        assert reply.ok, reply.text

    return Writer("IncidentService note", write)


async def rows_of_last_entry(engine: AsyncEngine) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The newest timeline entry and its deliveries, as column values without ids."""
    async with engine.connect() as conn:
        entry = (await conn.execute(
            select(ENTRIES).order_by(ENTRIES.c.id.desc()).limit(1)
        )).mappings().one()
        deliveries = (await conn.execute(
            select(DELIVERIES).where(DELIVERIES.c.entry_id == entry["id"])
            .order_by(DELIVERIES.c.id)
        )).mappings().all()
    assert deliveries, "the service queued no deliveries for its entry"
    assert all(d["state"] is DeliveryState.PENDING for d in deliveries)
    return _without_id(entry), [_without_id(d) for d in deliveries]


def _without_id(row: Any) -> dict[str, Any]:
    return {key: value for key, value in row.items() if key != "id"}


def plain_writer(
    engine: AsyncEngine, entry: dict[str, Any], deliveries: list[dict[str, Any]]
) -> Writer:
    async def write(note: str) -> None:
        now = datetime.now(UTC)
        async with engine.begin() as conn:
            entry_id = (await conn.execute(
                insert(ENTRIES).returning(ENTRIES.c.id),
                {**entry, "text": note, "occurred_at": now, "created_at": now},
            )).scalar_one()
            await conn.execute(insert(DELIVERIES), [
                {**d, "entry_id": entry_id, "next_attempt_at": now, "created_at": now}
                for d in deliveries
            ])

    return Writer("plain Core inserts", write)


# --- measuring ------------------------------------------------------------------------------


async def statements_per_entry(engine: AsyncEngine, writer: Writer, label: str) -> float:
    """Warm `writer` up, counting the SQL statements it sends per entry."""
    sent = 0

    def count(*_: Any) -> None:
        nonlocal sent
        sent += 1

    event.listen(engine.sync_engine, "before_cursor_execute", count)
    try:
        for i in range(WARM_UP):
            await writer.write(f"{label} warm-up {i}")
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", count)
    return sent / WARM_UP


async def measure(engine: AsyncEngine, backend: str, *, n: int, rounds: int,
                  max_seconds: float) -> Outcome:
    await upgrade(engine)
    service, where = await open_incident(engine)
    service_w = service_writer(service, where)
    service_w.statements_per_entry = await statements_per_entry(engine, service_w, "service")
    entry, deliveries = await rows_of_last_entry(engine)
    plain_w = plain_writer(engine, entry, deliveries)
    plain_w.statements_per_entry = await statements_per_entry(engine, plain_w, "plain")
    entries_before, pending_before = await count_rows(engine)

    outcome = Outcome(backend, [service_w, plain_w])
    started = time.perf_counter()
    for r in range(rounds):
        chunk = n // rounds + (1 if r < n % rounds else 0)
        if time.perf_counter() - started > max_seconds:
            print(f"{backend}: stopped after {r} of {rounds} rounds (--max-seconds "
                  f"{max_seconds:g})", file=sys.stderr)
            break
        for writer in (outcome.writers if r % 2 == 0 else outcome.writers[::-1]):
            t0 = time.perf_counter()
            for i in range(chunk):
                await writer.write(f"round {r} entry {i}: error rate back to normal")
            writer.seconds += time.perf_counter() - t0
            writer.entries += chunk

    # Both writers must have written what they are credited with: each entry and its deliveries.
    entries, pending = await count_rows(engine)
    written = service_w.entries + plain_w.entries
    assert entries - entries_before == written, (entries, entries_before, written)
    assert pending - pending_before == written * len(deliveries), (pending, pending_before)
    return outcome


async def count_rows(engine: AsyncEngine) -> tuple[int, int]:
    """Timeline entries, and deliveries still pending."""
    async with engine.connect() as conn:
        entries = (await conn.execute(select(func.count()).select_from(ENTRIES))).scalar_one()
        pending = (await conn.execute(
            select(func.count()).select_from(DELIVERIES)
            .where(DELIVERIES.c.state == DeliveryState.PENDING)
        )).scalar_one()
    return int(entries), int(pending)


# --- output ---------------------------------------------------------------------------------


def print_table(outcomes: list[Outcome], n: int) -> None:
    print(f"timeline entries recorded per second (n={n} per path, one transaction per entry)")
    print()
    print(f"{'backend':<12}{'path':<24}{'entries':>9}{'seconds':>10}{'entries/s':>11}"
          f"{'stmts/entry':>13}")
    for outcome in outcomes:
        for writer in outcome.writers:
            print(f"{outcome.backend:<12}{writer.name:<24}{writer.entries:>9}"
                  f"{writer.seconds:>10.2f}{writer.per_second:>11.1f}"
                  f"{writer.statements_per_entry:>13.1f}")
        print(f"{outcome.backend:<12}{'ratio service/plain':<24}{'':>9}{'':>10}"
              f"{outcome.ratio:>11.2f}")
    print()


def json_line(outcomes: list[Outcome], n: int) -> str:
    results: dict[str, Any] = {"bench": "timeline", "n": n}
    for outcome in outcomes:
        service, plain = outcome.writers
        results[outcome.backend] = {
            "service_entries_per_s": round(service.per_second, 1),
            "plain_entries_per_s": round(plain.per_second, 1),
            "ratio": round(outcome.ratio, 3),
            "entries": service.entries,
        }
    return json.dumps(results)


# --- entry point ----------------------------------------------------------------------------


async def run(n: int, pg_url: str | None, rounds: int, max_seconds: float) -> list[Outcome]:
    outcomes = []
    async with sqlite_engine() as engine:
        outcomes.append(await measure(engine, "sqlite", n=n, rounds=rounds,
                                      max_seconds=max_seconds))
    if pg_url:
        print(f"postgresql: {safe_url(pg_url)}", file=sys.stderr)
        async with postgres_engine(pg_url) as engine:
            outcomes.append(await measure(engine, "postgresql", n=n, rounds=rounds,
                                          max_seconds=max_seconds))
    return outcomes


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.timeline", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="entries per path (default 500)")
    parser.add_argument("--pg", metavar="URL", default=os.environ.get("OPSROOM_TEST_DATABASE_URL"),
                        help="PostgreSQL URL (default: $OPSROOM_TEST_DATABASE_URL; none: skip)")
    parser.add_argument("--rounds", type=int, default=10,
                        help="interleaved rounds the n entries are split into (default 10)")
    parser.add_argument("--max-seconds", type=float, default=10.0,
                        help="start no new round after this long per backend (default 10)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    rounds = max(1, min(args.rounds, args.n))
    outcomes = asyncio.run(run(args.n, args.pg, rounds, args.max_seconds))
    print_table(outcomes, args.n)
    print(json_line(outcomes, args.n))


if __name__ == "__main__":
    main()
