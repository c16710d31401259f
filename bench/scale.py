"""Scale: does every operation stay as fast with a large record as with a tiny one?

What is measured
    Two databases built by the real migrations, side by side in one run:
    - small: the probe incident with its channel and 2,000 timeline entries, and the least
      else the operations need to do the same work: 1,000 incidents with a channel each (the
      outbox query's queues; 100 of them open, for `list`), no other entries or deliveries;
    - large: the same probe incident, plus N other incidents (5% open), each with a channel
      link and a timeline thread, M timeline entries spread across them, and one sent delivery
      per entry up to --delivered (a record that has run for a long time).
    On each, through `IncidentService` and the `Mirror` with a zero-latency recording chat, the
    median time of: a note in the probe's channel (end to end: parse, find the incident from the
    channel, record, queue), a reply in its timeline thread, a 📌 on a message, `show`, `list`,
    `timeline` (the probe has 2,000 entries in both databases), a declare, the outbox query
    with 10,000 deliveries pending across 1,000 queues, and mirror throughput (deliveries sent
    per second).

Why the comparison is fair
    The probe incident is built the same way in both databases, and every operation runs the
    same code on the same engine settings; only the rest of the record differs. The ratio
    large/small is therefore what the size of the record costs: 1.0 is perfectly flat (the
    aim is every ratio under 1.5). Rounds alternate which database goes first.

Run it as `python -m bench.scale [--incidents 2000] [--entries 50000] [--delivered 50000]
[--pg URL]`. SQLite runs in a temporary directory; PostgreSQL runs when `--pg` gives a URL,
in two schemas of its own that are dropped afterwards. `make bench-scale` runs it at 100,000
incidents and 10M entries on PostgreSQL; seeding time is printed (the VACUUM ANALYZE after
it, see `settle`, is not counted). It prints a table, then one
JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import load_catalog
from bot.mirror import Backoff, Mirror
from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    DeliveryState,
    EntryKind,
    Incident,
    IncidentCounter,
    LinkState,
    Status,
    TimelineEntry,
)
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, safe_url, upgrade
from storage.store import SqlStore
from tests.fakes.chat import RecordingChat

ALICE = Actor(platform="console", user_id="alice", name="alice", mention="@alice")
PROBE_ENTRIES = 2000
PENDING = 10_000
PENDING_QUEUES = 1000
CHANNELS = 20  # incident channels the mirror sends to at once in the second mirror figure
BATCH = 5000
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)


@dataclass
class World:
    name: str
    engine: AsyncEngine
    service: IncidentService
    mirror: Mirror
    chat: RecordingChat
    channel: ChannelRef
    thread: ChannelRef
    others: list[ChannelRef] = field(default_factory=list)  # channels of CHANNELS - 1 more
    seed_seconds: float = 0.0
    timings: dict[str, list[float]] = field(default_factory=dict)

    def median_ms(self, op: str) -> float:
        return statistics.median(self.timings[op]) * 1000


# --- databases ------------------------------------------------------------------------------


@asynccontextmanager
async def engines(pg_url: str | None) -> AsyncIterator[list[tuple[str, AsyncEngine, AsyncEngine]]]:
    """(backend, small engine, large engine) for SQLite, and PostgreSQL when configured."""
    made: list[tuple[str, AsyncEngine, AsyncEngine]] = []
    schemas: list[str] = []
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-scale-") as tmp:
        made.append(("sqlite", make_engine(f"sqlite:///{Path(tmp) / 'small.db'}"),
                     make_engine(f"sqlite:///{Path(tmp) / 'large.db'}")))
        admin = make_engine(pg_url) if pg_url else None
        try:
            if admin is not None and pg_url is not None:
                pair = []
                for _ in range(2):
                    schema = f"bench_scale_{uuid.uuid4().hex[:10]}"
                    async with admin.begin() as conn:
                        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
                    schemas.append(schema)
                    pair.append(make_engine(
                        pg_url, connect_args={"server_settings": {"search_path": schema}}))
                made.append(("postgresql", pair[0], pair[1]))
            yield made
        finally:
            for _, small, large in made:
                await small.dispose()
                await large.dispose()
            if admin is not None:
                for schema in schemas:
                    async with admin.begin() as conn:
                        await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
                await admin.dispose()


# --- seeding --------------------------------------------------------------------------------


async def probe_world(name: str, engine: AsyncEngine) -> World:
    """The probe incident, declared through the service, its channel opened by the mirror,
    and 2,000 timeline entries."""
    await upgrade(engine)
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
    assert reply.ok and reply.incident == 1, reply.text
    assert await mirror.drain(timeout=30)
    channel = next(c for c in chat.channels.values() if c.name.startswith("inc-1-"))
    thread = next(iter(channel.threads))
    for n in range(2, CHANNELS + 1):  # for the mirror across channels
        reply = await service.declare(actor=ALICE, where=general, description=f"other {n}",
                                      title=f"Other {n}", type="outage", severity="sev3",
                                      priority="p3")
        assert reply.ok, reply.text
    assert await mirror.drain(timeout=30)
    others = [ChannelRef("console", c.id) for c in chat.channels.values()
              if c.name.startswith("inc-") and not c.name.startswith("inc-1-")]
    async with engine.begin() as conn:
        rows = [_entry(1, i, T0 + timedelta(seconds=i)) for i in range(PROBE_ENTRIES)]
        await conn.execute(insert(TimelineEntry), rows)
    return World(name, engine, service, mirror, chat, ChannelRef("console", channel.id),
                 ChannelRef("console", channel.id, thread_id=thread), others)


def _entry(incident_id: int, i: int, at: datetime) -> dict[str, Any]:
    kind = EntryKind.KEY_EVENT if i % 50 == 0 else EntryKind.MESSAGE
    return {"incident_id": incident_id, "kind": kind, "text": f"entry {i}: looked at the graphs",
            "author_id": "bob", "author_name": "bob", "source": "console", "external_id": None,
            "data": {}, "deleted": False, "occurred_at": at, "created_at": at,
            "edited_at": None}


async def grow(world: World, *, incidents: int, entries: int, delivered: int,
               open_every: int = 20) -> None:
    """Add `incidents` other incidents with links (every `open_every`th one open), `entries`
    entries and `delivered` sent deliveries, in bulk (executemany in batches)."""
    started = time.perf_counter()
    engine = world.engine
    incident_ids: list[int] = []
    link_ids: list[int] = []
    for start in range(0, incidents, BATCH):
        numbers = range(start + CHANNELS + 1, min(incidents, start + BATCH) + CHANNELS + 1)
        async with engine.begin() as conn:
            rows = [{
                "number": n, "title": f"Incident {n}: queue backlog", "summary": "", "description":
                "queue backlog", "type": "outage", "severity": "sev3", "priority": "p3",
                "status": Status.INVESTIGATING if n % open_every == 0 else Status.CLOSED,
                "private": False, "roles": {"commander": "@bob"}, "custom_fields": {},
                "declared_by": "@bob", "declared_on": "console",
                "declared_at": T0, "acknowledged_at": T0, "mitigated_at": None,
                "resolved_at": None, "closed_at": None, "last_update_at": None, "updated_at": T0,
            } for n in numbers]
            ids = (await conn.execute(insert(Incident).returning(Incident.id), rows)).scalars()  # type: ignore[arg-type]
            batch_ids = list(ids)
            incident_ids += batch_ids
            links = [{
                "incident_id": iid, "platform": "console", "workspace": "",
                "state": LinkState.OPEN, "channel_id": f"C-{iid}", "channel_name": f"inc-{iid}",
                "thread_id": f"T-{iid}", "summary_message_id": f"M-{iid}",
                "summary_pinned": True, "topic": None, "invite": [], "created_at": T0,
            } for iid in batch_ids]
            link_ids += list((await conn.execute(
                insert(ChannelLink).returning(ChannelLink.id), links)).scalars())  # type: ignore[arg-type]
    async with engine.begin() as conn:
        await conn.execute(update(IncidentCounter).values(value=incidents + CHANNELS + 1))
    link_of = dict(zip(incident_ids, link_ids, strict=True))
    per_incident = max(1, entries // max(1, incidents))
    made = sent = 0
    rows: list[dict[str, Any]] = []
    for k, iid in enumerate(incident_ids):
        take = min(per_incident, entries - made)
        rows += [_entry(iid, i, T0 + timedelta(seconds=i)) for i in range(take)]
        made += take
        if len(rows) >= BATCH or (rows and k == len(incident_ids) - 1):
            async with engine.begin() as conn:
                ids = list((await conn.execute(
                    insert(TimelineEntry).returning(TimelineEntry.id), rows)).scalars())  # type: ignore[arg-type]
                done = [_delivery(link_of[row["incident_id"]], row["incident_id"], entry_id,
                                  DeliveryState.SENT)
                        for entry_id, row in zip(ids, rows, strict=True)][:delivered - sent]
                sent += len(done)
                if done:
                    await conn.execute(insert(Delivery), done)
            rows = []
    world.seed_seconds = time.perf_counter() - started
    await settle(engine)


async def settle(engine: AsyncEngine) -> None:
    """What autovacuum does for a live database after a while: statistics for the planner and,
    on PostgreSQL, a visibility map (index-only counts). Without it a fresh bulk load is planned
    as an empty table: `list`'s count of open incidents scanned all 100k rows (44 ms, 0.6 ms
    after)."""
    async with engine.connect() as conn:
        conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
        vacuum = "VACUUM ANALYZE" if engine.dialect.name == "postgresql" else "ANALYZE"
        await conn.execute(text(vacuum))


def _delivery(link_id: int, incident_id: int, entry_id: int | None,
              state: DeliveryState) -> dict[str, Any]:
    return {"incident_id": incident_id, "link_id": link_id, "action": DeliveryAction.POST_ENTRY,
            "entry_id": entry_id, "state": state, "attempts": 1 if state is DeliveryState.SENT
            else 0, "next_attempt_at": T0, "last_error": None, "message_id": None,
            "created_at": T0, "sent_at": T0 if state is DeliveryState.SENT else None}


# --- operations -----------------------------------------------------------------------------


def operations(world: World) -> dict[str, Callable[[int], Awaitable[None]]]:
    service, where = world.service, world.channel

    async def ok(text_: str, at: ChannelRef) -> None:
        reply = await service.handle_text(text_, actor=ALICE, where=at)
        assert reply.ok, reply.text

    async def thread_reply(i: int) -> None:
        entry = await service.record_thread_message(
            where=world.thread, actor=ALICE, text=f"reply {i}", message_id=f"r-{uuid.uuid4()}",
            occurred_at=T0)
        assert entry is not None

    async def pin(i: int) -> None:
        reply = await service.reaction_added(
            where=where, actor=ALICE, emoji=service.catalog.key_event_emoji,
            message_id=f"m-{uuid.uuid4()}", text=f"pinned {i}", author="bob", occurred_at=T0)
        assert reply is not None and reply.ok

    async def declare(i: int) -> None:
        reply = await service.declare(
            actor=ALICE, where=where, description=f"bench declare {i}", title=f"Bench {i}",
            type="outage", severity="sev3", priority="p3")
        assert reply.ok, reply.text

    async def outbox(i: int) -> None:
        async with service.store.unit() as u:
            assert len(await u.pending_deliveries(per_queue=100)) >= 100

    return {
        "note": lambda i: ok(f"note scale check {i}", where),
        "thread reply": thread_reply,
        "pin": pin,
        "show": lambda i: ok("show", where),
        "list": lambda i: ok("list", where),
        "timeline": lambda i: ok("timeline", where),
        "declare": declare,
        "outbox query": outbox,
    }


async def add_pending(world: World) -> None:
    """10,000 deliveries pending across 1,000 queues (the probe's channel link plus the
    links of other incidents where there are some), as after a long chat outage."""
    async with world.engine.begin() as conn:
        links = list((await conn.execute(
            select(ChannelLink.id, ChannelLink.incident_id).order_by(ChannelLink.id)  # type: ignore[call-overload]
            .limit(PENDING_QUEUES))).all())
        await conn.execute(insert(Delivery), [
            _delivery(links[i % len(links)][0], links[i % len(links)][1], None,
                      DeliveryState.PENDING) for i in range(PENDING)])


async def clear_pending(world: World) -> None:
    async with world.engine.begin() as conn:
        await conn.execute(update(Delivery).where(Delivery.state == DeliveryState.PENDING)  # type: ignore[arg-type]
                           .values(state=DeliveryState.SKIPPED))


async def mirror_rate(world: World, notes: int, *, spread: bool = False) -> float:
    """Deliveries per second: `notes` notes queued (in the probe's channel, or spread over
    CHANNELS incident channels), then the mirror drains them."""
    await clear_pending(world)
    channels = [world.channel, *world.others] if spread else [world.channel]
    for i in range(notes):
        reply = await world.service.handle_text(
            f"note mirror {i}", actor=ALICE, where=channels[i % len(channels)])
        assert reply.ok
    async with world.engine.connect() as conn:
        queued = (await conn.execute(text(
            "SELECT count(*) FROM delivery WHERE state = 'pending'"))).scalar_one()
    started = time.perf_counter()
    assert await world.mirror.drain(timeout=120)
    return float(queued) / (time.perf_counter() - started)


async def measure(worlds: list[World], reps: int) -> dict[str, dict[str, float]]:
    for world in worlds:
        await add_pending(world)
    ops = {world.name: operations(world) for world in worlds}
    names = list(ops[worlds[0].name])
    for world in worlds:  # warm-up: statement caches, prepared statements
        for name in names:
            await ops[world.name][name](-1)
    for r in range(reps):
        for world in worlds if r % 2 == 0 else worlds[::-1]:
            for name in names:
                t0 = time.perf_counter()
                await ops[world.name][name](r)
                world.timings.setdefault(name, []).append(time.perf_counter() - t0)
    notes = max(200, reps * 40)
    rates = {world.name: await mirror_rate(world, notes) for world in worlds}
    spread = {world.name: await mirror_rate(world, notes, spread=True) for world in worlds}
    result: dict[str, dict[str, float]] = {}
    for name in names:
        small, large = (w.median_ms(name) for w in worlds)
        result[name] = {"small_ms": round(small, 2), "large_ms": round(large, 2),
                        "ratio": round(large / small, 2) if small else 0.0}
    small_rate, large_rate = rates[worlds[0].name], rates[worlds[1].name]
    result["mirror deliveries/s"] = {"small": round(small_rate, 1), "large": round(large_rate, 1),
                                     "ratio": round(small_rate / large_rate, 2)
                                     if large_rate else 0.0}
    small_rate, large_rate = spread[worlds[0].name], spread[worlds[1].name]
    result[f"mirror/s {CHANNELS} channels"] = {
        "small": round(small_rate, 1), "large": round(large_rate, 1),
        "ratio": round(small_rate / large_rate, 2) if large_rate else 0.0}
    return result


# --- entry point ----------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    out: dict[str, Any] = {"bench": "scale", "incidents": args.incidents,
                           "entries": args.entries, "delivered": args.delivered}
    async with engines(args.pg) as pairs:
        for backend, small_engine, large_engine in pairs:
            if backend == "postgresql":
                print(f"postgresql: {safe_url(args.pg)}", file=sys.stderr)
            small = await probe_world("small", small_engine)
            large = await probe_world("large", large_engine)
            # The same work in both: as many queues for the outbox query (one per incident's
            # channel), and at least as many open incidents as `list` shows.
            await grow(small, incidents=PENDING_QUEUES, entries=0, delivered=0, open_every=10)
            await grow(large, incidents=max(args.incidents, PENDING_QUEUES),
                       entries=args.entries, delivered=args.delivered)
            print(f"{backend}: seeded {args.incidents} incidents, {args.entries} entries and "
                  f"{args.delivered} sent deliveries in {large.seed_seconds:.1f}s",
                  file=sys.stderr)
            out[backend] = {"seed_seconds": round(large.seed_seconds, 1),
                            "ops": await measure([small, large], args.reps)}
    return out


def print_table(out: dict[str, Any]) -> None:
    print(f"scale: one incident vs {out['incidents']} incidents / {out['entries']} entries / "
          f"{out['delivered']} sent deliveries (median ms; ratio large/small, aim < 1.5)")
    print()
    print(f"{'backend':<12}{'operation':<22}{'small':>10}{'large':>10}{'ratio':>8}")
    for backend in ("sqlite", "postgresql"):
        if backend not in out:
            continue
        for name, row in out[backend]["ops"].items():
            small = row.get("small_ms", row.get("small"))
            large = row.get("large_ms", row.get("large"))
            print(f"{backend:<12}{name:<22}{small:>10.2f}{large:>10.2f}{row['ratio']:>8.2f}")
    print()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--incidents", type=int, default=2000)
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--delivered", type=int, default=50_000)
    parser.add_argument("--reps", type=int, default=15, help="timed runs per operation")
    parser.add_argument("--pg", metavar="URL", default=os.environ.get("OPSROOM_TEST_DATABASE_URL"),
                        help="PostgreSQL URL (default: $OPSROOM_TEST_DATABASE_URL; none: skip)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    out = asyncio.run(run(args))
    print_table(out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
