"""`list` and `timeline` answer one page at a time (50, newest first), with filters done by the
database, and every answer fits Discord's and Slack's limits whatever the record holds."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.models import EntryKind, Incident, IncidentCounter, Status, TimelineEntry
from bot.render import REPLY_LIMIT
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock


@pytest.fixture
def big(any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> Core:
    return build_core(any_engine, catalog, clock)


async def seed(core: Core, count: int, engine: AsyncEngine) -> None:
    """`count` incidents: every third closed, sev1 on even numbers, security on every fifth,
    @bob commander of every seventh; titles long enough to need cutting."""
    now = core.clock.now()
    rows = [{
        "number": n, "title": f"Incident {n} " + "x" * 150, "summary": "", "description": "d",
        "type": "security" if n % 5 == 0 else "outage", "severity": "sev1" if n % 2 == 0
        else "sev3", "priority": "p3", "status": Status.CLOSED if n % 3 == 0
        else Status.INVESTIGATING, "private": False,
        "roles": {"commander": "@bob" if n % 7 == 0 else "@alice"}, "custom_fields": {},
        "declared_by": "@alice", "declared_on": "console", "declared_at": now,
        "acknowledged_at": None, "mitigated_at": None, "resolved_at": None, "closed_at": None,
        "last_update_at": None, "updated_at": now,
    } for n in range(1, count + 1)]
    async with engine.begin() as conn:
        await conn.execute(insert(Incident), rows)
        await conn.execute(IncidentCounter.__table__.update().values(value=count + 1))  # type: ignore[attr-defined]


def numbers(text: str) -> list[int]:
    return [int(line.split()[0][1:]) for line in text.splitlines()[1:] if line.startswith("#")]


async def test_list_shows_the_newest_50_and_says_how_to_see_more(
    big: Core, any_engine: AsyncEngine
) -> None:
    await seed(big, 240, any_engine)
    open_numbers = [n for n in range(240, 0, -1) if n % 3]
    reply = await big.run("list")
    assert numbers(reply.text) == open_numbers[:50]
    assert reply.text.splitlines()[0] == "Open incidents, 1-50 of 160 (newest first):"
    assert reply.text.splitlines()[-1] == "110 more: /incident list page 2"
    assert len(reply.text) <= REPLY_LIMIT
    page4 = await big.run("list page 4")
    assert numbers(page4.text) == open_numbers[150:]
    assert "more:" not in page4.text
    assert (await big.run("list page 9")).text == (
        "No page 9: 160 open incidents fill 4 page(s).")
    everything = await big.run("list all page 2")
    assert numbers(everything.text) == list(range(190, 140, -1))
    assert everything.text.splitlines()[-1] == "140 more: /incident list all page 3"


async def test_list_filters_combine(big: Core, any_engine: AsyncEngine) -> None:
    await seed(big, 240, any_engine)
    reply = await big.run("list sev1 type=security", actor=ALICE)
    assert numbers(reply.text) == [n for n in range(240, 0, -1)
                                   if n % 3 and n % 2 == 0 and n % 5 == 0]
    mine = await big.run("list mine all", actor=BOB)
    assert numbers(mine.text) == [n for n in range(240, 0, -1) if n % 7 == 0]
    assert mine.text.splitlines()[0] == "All incidents (mine):"
    none = await big.run("list mine sev1 type=security", actor=BOB)
    assert numbers(none.text) == [n for n in range(240, 0, -1)
                                  if n % 3 and n % 70 == 0]
    refused = await big.run("list banana")
    assert not refused.ok and 'unknown filter "banana"' in refused.text


async def test_timeline_pages_from_the_latest(core: Core) -> None:
    assert (await core.run("declare checkout is failing")).ok
    where = core.where(core.incident_channel(1))
    start = core.clock.now()
    async with core.store.unit() as u:
        incident = await u.incident(1)
    assert incident is not None and incident.id is not None
    async with core.store.unit() as u:
        for i in range(130):
            await u.add(TimelineEntry(
                incident_id=incident.id, kind=EntryKind.KEY_EVENT if i % 10 == 0
                else EntryKind.MESSAGE, text=f"step {i} " + "y" * 300, author_id="bob",
                author_name="bob", source="console",
                occurred_at=start + timedelta(minutes=i + 1), created_at=start))
    latest = await core.run("timeline", where=where)
    lines = latest.text.splitlines()
    assert lines[0].startswith("Timeline of #1, 82-131 of 131: ")
    assert [line.split()[6] for line in lines[1:-1]] == [str(i) for i in range(80, 130)]
    assert lines[-1] == "81 earlier: /incident timeline page 2"
    assert len(latest.text) <= REPLY_LIMIT
    last = (await core.run("timeline page 3", where=where)).text.splitlines()
    assert "Incident declared" in last[1] and last[2].split()[6] == "0"
    key = (await core.run("timeline key", where=where)).text.splitlines()
    assert [line.split()[6] for line in key[1:]] == [str(i) for i in range(0, 130, 10)]


async def test_incident_choices_are_filtered_by_the_database(
    big: Core, any_engine: AsyncEngine
) -> None:
    await seed(big, 240, any_engine)
    async with big.store.unit() as u:
        by_number = await u.open_incident_choices("2", limit=25)
        by_title = await u.open_incident_choices("incident 11", limit=25)
        wildcard = await u.open_incident_choices("%", limit=25)
        everything = await u.open_incident_choices("", limit=25)
    assert [i.number for i in by_number] == [
        n for n in range(240, 0, -1) if n % 3 and str(n).startswith("2")][:25]
    assert [i.number for i in by_title] == [119, 118, 116, 115, 113, 112, 110, 11]
    assert wildcard == []
    assert [i.number for i in everything] == [n for n in range(240, 0, -1) if n % 3][:25]
