"""Racing writers: incident numbers and inbound event keys stay unique under concurrency.

On PostgreSQL the racing transactions really overlap: each engine's pool is filled with open
connections first (`same_database`), so every unit begins at once. On SQLite `BEGIN IMMEDIATE`
serializes writers; there the same tests check that they wait for each other instead of failing
with "database is locked".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.models import ChannelLink, Incident, IncidentCounter, TimelineEntry
from storage.store import SqlStore
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock
from tests.storage.support import same_database

RACERS = 20


def declarer(core: Core) -> Callable[[int], Awaitable[int]]:
    """Declares racer `i`'s incident, each in a unit (a session) of its own; returns its number."""

    async def declare(i: int) -> int:
        reply = await core.service.declare(
            actor=ALICE if i % 2 else BOB, where=core.general, description=f"racing incident {i}",
            title=f"Racer {i}", type="outage", severity="sev2", priority="p2",
        )
        assert reply.ok and reply.incident is not None
        return reply.incident

    return declare


async def check_numbers(engine: AsyncEngine, numbers: dict[int, int]) -> None:
    """`numbers` maps racer -> the number its reply named; the database must agree."""
    assert sorted(numbers.values()) == list(range(1, RACERS + 1))
    async with engine.connect() as conn:
        rows = (await conn.execute(select(Incident.number, Incident.title))).all()  # type: ignore[call-overload]
        counter = (await conn.execute(select(IncidentCounter.value))).scalar_one()  # type: ignore[call-overload]
        links = (await conn.execute(select(func.count()).select_from(ChannelLink))).scalar_one()
        entries = (await conn.execute(select(func.count()).select_from(TimelineEntry))).scalar_one()
    assert {number: title for number, title in rows} == {
        number: f"Racer {racer}" for racer, number in numbers.items()
    }
    assert counter == RACERS
    assert (links, entries) == (RACERS, RACERS)


async def test_concurrent_declares_number_incidents_1_to_20(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    async with same_database(any_engine, RACERS) as engine:
        declare = declarer(build_core(engine, catalog, clock))
        results = await asyncio.gather(*(declare(i) for i in range(RACERS)))
    await check_numbers(any_engine, dict(enumerate(results)))


async def test_declares_through_two_engines_number_incidents_1_to_20(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    half = RACERS // 2
    async with same_database(any_engine, half) as one, same_database(any_engine, half) as two:
        first = declarer(build_core(one, catalog, clock))
        second = declarer(build_core(two, catalog, clock))
        results = await asyncio.gather(
            *((first if i % 2 else second)(i) for i in range(RACERS))
        )
    await check_numbers(any_engine, dict(enumerate(results)))


async def test_racing_claims_of_one_event_let_exactly_one_through(
    any_engine: AsyncEngine,
) -> None:
    async with same_database(any_engine, 8) as engine:
        store = SqlStore(engine)

        async def claim() -> bool:
            async with store.unit() as u:
                return await u.claim_event("slack", "Ev42")

        claims = await asyncio.gather(*(claim() for _ in range(8)))
    assert sorted(claims) == [False] * 7 + [True]


async def test_concurrent_changes_to_one_incident_all_stick(any_engine: AsyncEngine) -> None:
    """Two fields set at once, five action items added at once, two acks at once: every change
    lands, numbers stay unique, and only one ack wins (the row is locked while changed)."""
    from bot.catalog import load_catalog
    from tests.conftest import ALICE, BOB, build_core
    from tests.fakes.clock import FakeClock

    core = build_core(any_engine, load_catalog(), FakeClock())
    await core.run("declare checkout errors in the eu region")
    where = core.where(core.incident_channel(1))
    replies = await asyncio.gather(
        core.service.handle_text("set region us", actor=ALICE, where=where),
        core.service.handle_text("set customers_affected 1200", actor=BOB, where=where),
        *(core.service.handle_text(f"action add task {i}", actor=ALICE, where=where)
          for i in range(5)),
        core.service.handle_text("ack", actor=ALICE, where=where),
        core.service.handle_text("ack", actor=BOB, where=where),
    )
    assert [r.ok for r in replies[:7]] == [True] * 7
    assert sorted(r.ok for r in replies[7:]) == [False, True]
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None and incident.id is not None
        items = await u.action_items(incident.id)
        acks = [e for e in await u.timeline(incident.id) if "to acknowledged" in e.text]
    assert incident.custom_fields["region"] == "us"
    assert incident.custom_fields["customers_affected"] == 1200
    assert sorted(a.number for a in items) == [1, 2, 3, 4, 5]
    assert len(acks) == 1


async def test_concurrent_pins_and_unpins_all_count(any_engine: AsyncEngine) -> None:
    """Two people un-pinning at once remove the key event; a pin racing an un-pin keeps it."""
    from datetime import UTC, datetime

    from bot.catalog import load_catalog
    from bot.ports import Actor
    from tests.conftest import ALICE, BOB, build_core
    from tests.fakes.clock import FakeClock

    carol = Actor(platform="console", user_id="carol", name="carol", mention="@carol")
    core = build_core(any_engine, load_catalog(), FakeClock())
    await core.run("declare checkout errors in the eu region")
    where = core.where(core.incident_channel(1))
    said = {"where": where, "emoji": "pushpin", "text": "error rate is back to normal",
            "author": "bob", "occurred_at": datetime(2026, 11, 25, 13, 50, tzinfo=UTC)}

    async def key_events(message_id: str) -> list[tuple[list[str], bool]]:
        async with core.store.unit() as u:
            entry = await u.entry_by_external("console", f"key:{where.channel_id}:{message_id}")
            assert entry is not None
            return [(sorted(entry.data["reactors"]), entry.deleted)]

    for person in (ALICE, BOB):
        await core.service.reaction_added(actor=person, message_id="m1", **said)
    await asyncio.gather(*(core.service.reaction_removed(
        where=where, actor=person, emoji="pushpin", message_id="m1") for person in (ALICE, BOB)))
    assert await key_events("m1") == [([], True)]

    await core.service.reaction_added(actor=ALICE, message_id="m2", **said)
    await asyncio.gather(
        core.service.reaction_added(actor=carol, message_id="m2", **said),
        core.service.reaction_removed(where=where, actor=ALICE, emoji="pushpin",
                                      message_id="m2"),
    )
    assert await key_events("m2") == [(["carol"], False)]
