"""A 📌 on a bot post: finding the timeline entry it shows, with and without ix_delivery_message.

What is measured
    lookup   `Unit.posted_entry(link_id, message_id)`, the store call the service makes for every
             key-event reaction in an incident channel, each in its own unit (transaction), for
             posts spread over one long incident's channel.
    no index the same calls after `DROP INDEX ix_delivery_message`, so only the single-column
             `ix_delivery_link_id` helps: the database reads every delivery of that link.

The data: `--links` channel links of `--per-link` timeline entries each, every entry with its
POST_ENTRY and REFRESH_SUMMARY deliveries sent (a message id each), as a long incident leaves
them. The two runs alternate (index, none, index, none...) so machine load hits both alike.
Run it as `python -m bench.pin_lookup [--links 20] [--per-link 5000] [--n 300]`. SQLite runs in
a temporary file. It prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    DeliveryState,
    EntryKind,
    Incident,
    TimelineEntry,
)
from storage.engine import make_engine, upgrade
from storage.store import SqlStore

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


async def fill(engine: AsyncEngine, links: int, per_link: int) -> list[tuple[int, str]]:
    """Rows of `links` incidents; returns (link id, message id) of every posted entry."""
    posted: list[tuple[int, str]] = []
    async with engine.begin() as conn:
        for n in range(1, links + 1):
            incident_id = (await conn.execute(insert(Incident).returning(Incident.id), [{
                "number": n, "title": f"incident {n}", "summary": "", "description": "",
                "type": "outage", "severity": "sev2", "priority": "p2", "status": "triggered",
                "private": False, "roles": {}, "custom_fields": {}, "declared_by": "@alice",
                "declared_on": "console", "declared_at": T0, "updated_at": T0}])).scalar_one()
            link_id = (await conn.execute(insert(ChannelLink).returning(ChannelLink.id), [{
                "incident_id": incident_id, "platform": "slack", "workspace": "",
                "state": "open", "channel_id": f"C{n}", "summary_message_id": f"{n}.0",
                "summary_pinned": True, "invite": [], "created_at": T0}])).scalar_one()
            entries = (await conn.execute(insert(TimelineEntry).returning(TimelineEntry.id), [{
                "incident_id": incident_id, "kind": EntryKind.MESSAGE, "text": f"entry {i}",
                "author_id": "alice", "author_name": "alice", "source": "console",
                "data": {}, "deleted": False, "occurred_at": T0, "created_at": T0}
                for i in range(per_link)])).scalars().all()
            rows = []
            for i, entry_id in enumerate(entries):
                mid = f"{n}.{i + 1}"
                posted.append((link_id, mid))
                for action, message_id in ((DeliveryAction.POST_ENTRY, mid),
                                           (DeliveryAction.REFRESH_SUMMARY, f"{n}.0")):
                    rows.append({
                        "incident_id": incident_id, "link_id": link_id, "action": action,
                        "entry_id": entry_id, "state": DeliveryState.SENT, "attempts": 1,
                        "next_attempt_at": T0, "message_id": message_id, "created_at": T0,
                        "sent_at": T0})
            await conn.execute(insert(Delivery), rows)
    return posted


async def lookups(store: SqlStore, targets: list[tuple[int, str]]) -> float:
    """Seconds per lookup, over `targets`; every one must find its entry."""
    started = time.perf_counter()
    for link_id, mid in targets:
        async with store.unit() as u:
            assert await u.posted_entry(link_id, mid) is not None
    return (time.perf_counter() - started) / len(targets)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", type=int, default=20)
    parser.add_argument("--per-link", type=int, default=5000)
    parser.add_argument("--n", type=int, default=300, help="lookups per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
        await upgrade(engine)
        posted = await fill(engine, args.links, args.per_link)
        store = SqlStore(engine)
        rng = random.Random(7)
        timings: dict[str, list[float]] = {"index": [], "no index": []}
        for _ in range(args.rounds):
            for mode in ("index", "no index"):
                async with engine.begin() as conn:
                    await conn.execute(text("DROP INDEX IF EXISTS ix_delivery_message"))
                    if mode == "index":
                        await conn.execute(text(
                            "CREATE INDEX ix_delivery_message ON delivery (link_id, message_id)"))
                    await conn.execute(text("ANALYZE"))
                timings[mode].append(await lookups(store, rng.sample(posted, args.n)))
        await engine.dispose()

    med = {mode: statistics.median(t) * 1e6 for mode, t in timings.items()}
    rows = len(posted) * 2
    print(f"deliveries: {rows} ({args.links} links x {args.per_link} entries x 2)")
    print(f"{'':10} {'us/lookup':>10} {'lookups/s':>10}")
    for mode, us in med.items():
        print(f"{mode:10} {us:10.0f} {1e6 / us:10.0f}")
    ratio = med["no index"] / med["index"]
    print(f"index speed-up: {ratio:.1f}x")
    print(json.dumps({"bench": "pin_lookup", "backend": "sqlite", "deliveries": rows,
                      "us_per_lookup": {k: round(v, 1) for k, v in med.items()},
                      "speedup": round(ratio, 2)}))


if __name__ == "__main__":
    asyncio.run(main())
