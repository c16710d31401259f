"""What `/incident timeline` and `/incident catchup` show: entries with short ids (e44) that
catch-ups cite, times in the catalog's zone, dated once they are not today."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ai import cited_ids
from bot.catalog import Catalog
from bot.models import EntryKind, TimelineEntry
from bot.ports import ChannelRef
from tests.conftest import BOB, Core, build_core
from tests.fakes.clock import FakeClock


async def room(core: Core) -> ChannelRef:
    reply = await core.run("declare checkout 500s in EU since the 14:05 deploy")
    assert reply.ok
    return core.where(core.incident_channel(1))


async def entries(core: Core) -> list[TimelineEntry]:
    async with core.store.unit() as u:
        return await u.timeline(1)


async def test_timeline_lines_carry_short_ids_and_dates_once_not_today(core: Core) -> None:
    where = await room(core)  # Wednesday 25 Nov 2026, 14:00 UTC
    await core.run("note checking dashboards", where=where)
    core.clock.advance(days=1, minutes=5)
    await core.run("event failover done", where=where)
    ids = [e.id for e in await entries(core)]
    reply = await core.run("timeline", where=where)
    assert reply.text.splitlines()[1:] == [
        f"e{ids[0]} Wed 25 Nov 14:00 UTC ℹ️ alice: Incident declared: Checkout 500s in EU since "
        "the 14:05 deploy (outage, SEV2, P2), commander @alice",
        f"e{ids[1]} Wed 25 Nov 14:00 UTC 💬 alice: checking dashboards",
        f"e{ids[2]} 14:05 UTC 📌 alice: failover done",
    ]
    # Next year, every line names its year.
    core.clock.advance(days=365)
    lines = (await core.run("timeline", where=where)).text.splitlines()[1:]
    assert [line.split(" ℹ️ ")[0].split(" 💬 ")[0].split(" 📌 ")[0] for line in lines] == [
        f"e{ids[0]} Wed 25 Nov 2026 14:00 UTC",
        f"e{ids[1]} Wed 25 Nov 2026 14:00 UTC",
        f"e{ids[2]} Thu 26 Nov 2026 14:05 UTC",
    ]


async def test_timeline_is_shown_in_the_catalogs_zone(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    tokyo = Catalog.model_validate({**catalog.model_dump(), "timezone": "Asia/Tokyo"})
    clock = FakeClock(datetime(2026, 11, 25, 14, 30, tzinfo=UTC))  # 23:30 in Tokyo
    core = build_core(engine, tokyo, clock)
    where = await room(core)
    clock.advance(minutes=45)  # 00:15 on Thursday in Tokyo, still Wednesday in UTC
    await core.run("note the cache is cold", where=where)
    lines = (await core.run("timeline", where=where)).text.splitlines()[1:]
    assert re.match(r"e\d+ Wed 25 Nov 23:30 JST ℹ️ ", lines[0])
    assert re.match(r"e\d+ 00:15 JST 💬 alice: the cache is cold$", lines[1])


async def test_catchup_without_a_model_says_where_it_stands_and_cites_e_ids(core: Core) -> None:
    where = await room(core)
    await core.run("note seeing 502s from the payments gateway", where=where)
    await core.run("event rolled back deploy 4.12", where=where)
    await core.run("assign commander @bob", where=where)
    core.clock.advance(days=1)
    await core.run("severity sev1", where=where, actor=BOB)
    await core.run("action add add a canary for card auths due friday", where=where)
    await core.run("status monitoring", where=where, actor=BOB)
    await core.run("update Card payments recovering in EU", where=where, actor=BOB)

    reply = await core.run("catchup", where=where)
    assert reply.ok
    by_kind = {e.kind: e for e in await entries(core)}  # the latest of each kind
    lines = reply.text.splitlines()
    assert lines[0] == "Catch-up on #1 Checkout 500s in EU since the 14:05 deploy:"
    assert lines[1] == "Now monitoring · SEV1 · commander @bob."
    assert lines[2] == "Latest on the timeline:"
    cited = cited_ids(reply.text)
    assert {by_kind[k].id for k in by_kind} <= set(cited)  # every kind is there
    assert "[#" not in reply.text
    # Yesterday's entries are dated; today's have only their time.
    key = by_kind[EntryKind.KEY_EVENT]
    assert f"- Wed 25 Nov 14:00 UTC 📌 alice: rolled back deploy 4.12 [e{key.id}]" in lines
    update = by_kind[EntryKind.STATUS_UPDATE]
    assert lines[-1] == f"- 14:00 UTC 📣 bob: Card payments recovering in EU [e{update.id}]"


async def test_catchup_of_a_commanderless_incident_says_so(core: Core) -> None:
    where = await room(core)
    async with core.store.unit() as u:  # a commander who left: the role is empty
        incident = await u.incident(1)
        assert incident is not None
        incident.roles = {}
    reply = await core.run("catchup", where=where)
    assert reply.text.splitlines()[1] == "Now triggered · SEV2 · no commander."
