"""Due dates through the service: read in the catalog's time zone on the injected clock, shown in
that zone with its name, with the year when it is not this one."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog, CatalogError, load_catalog
from bot.dates import FORMS
from bot.ports import ChannelRef
from tests.conftest import Core, build_core
from tests.fakes.clock import FakeClock


def zoned(catalog: Catalog, zone: str) -> Catalog:
    return Catalog.model_validate({**catalog.model_dump(), "timezone": zone})


async def room(core: Core) -> ChannelRef:
    reply = await core.run("declare checkout 500s in EU since the 14:05 deploy")
    assert reply.ok
    return core.where(core.incident_channel(1))


async def due_of(core: Core, number: int) -> datetime | None:
    async with core.store.unit() as u:
        item = await u.action_item(1, number)
        assert item is not None
        return item.due_at


async def test_dates_are_read_and_shown_in_the_catalogs_zone(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    core = build_core(engine, zoned(catalog, "Europe/Paris"), FakeClock())  # Wed 14:00 UTC
    where = await room(core)
    reply = await core.run("action add renew the cert due tomorrow 9am @bob", where=where)
    assert reply.ok, reply.text
    assert await due_of(core, 1) == datetime(2026, 11, 26, 8, 0, tzinfo=UTC)  # 09:00 CET
    await core.run("action add call the bank @carol due eod", where=where)
    assert await due_of(core, 2) == datetime(2026, 11, 25, 16, 0, tzinfo=UTC)  # 17:00 CET
    listed = await core.run("action list", where=where)
    assert listed.text.splitlines()[1:] == [
        "[ ] 1. renew the cert · @bob · due Thu 26 Nov 09:00 CET",
        "[ ] 2. call the bank · @carol · due 17:00 CET",
    ]
    # The summary's next-update time and the channel's posts use the zone too.
    texts = core.chat.texts(core.incident_channel(1))
    assert "☑️ Action item added: [ ] 1. renew the cert · @bob · due Thu 26 Nov 09:00 CET" in (
        texts[-2].split(" (alice)")[0], texts[-1].split(" (alice)")[0])
    show = await core.run("show", where=where)
    assert "Next update due: 16:00 CET" in show.text  # sev2: an update every hour


async def test_a_summer_date_is_shown_in_summer_time(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    core = build_core(engine, zoned(catalog, "Europe/Paris"), FakeClock())
    where = await room(core)
    assert (await core.run("action add audit the logs due 2027-07-01 09:00", where=where)).ok
    assert await due_of(core, 1) == datetime(2027, 7, 1, 7, 0, tzinfo=UTC)
    listed = await core.run("action list", where=where)
    assert listed.text.endswith("due Thu 01 Jul 2027 09:00 CEST")


async def test_years_are_shown_when_not_this_one(engine: AsyncEngine, catalog: Catalog) -> None:
    # The mirror runs on real time: the fake clock's instants stay in the past for it.
    clock = FakeClock(datetime(2025, 12, 30, 20, 0, tzinfo=UTC))  # a Tuesday
    core = build_core(engine, catalog, clock)
    where = await room(core)
    for text in ("write the postmortem due Jan 3", "renew the cert due 15 Dec @bob",
                 "order spares due 2025-12-31 10:00"):
        reply = await core.run(f"action add {text}", where=where)
        assert reply.ok, reply.text
    listed = await core.run("action list", where=where)
    assert listed.text.splitlines()[1:] == [
        "[ ] 1. write the postmortem · due Sat 03 Jan 2026 17:00 UTC",
        "[ ] 2. renew the cert · @bob · due Tue 15 Dec 2026 17:00 UTC",
        "[ ] 3. order spares · due Wed 31 Dec 10:00 UTC",
    ]
    # A year on (31 Dec 2026), 2026's dates lose their year and 2025's gain it.
    clock.advance(days=366)
    listed = await core.run("action list", where=where)
    assert listed.text.splitlines()[1:] == [
        "[ ] 1. write the postmortem · OVERDUE Sat 03 Jan 17:00 UTC",
        "[ ] 2. renew the cert · @bob · OVERDUE Tue 15 Dec 17:00 UTC",
        "[ ] 3. order spares · OVERDUE Wed 31 Dec 2025 10:00 UTC",
    ]


async def test_dates_resolve_on_the_services_clock_not_the_wall_clock(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    # In the clock's 2019, 2020-01-01 is ahead, so accepted; a wall-clock check would refuse it.
    core = build_core(engine, catalog, FakeClock(datetime(2019, 6, 1, 12, 0, tzinfo=UTC)))
    where = await room(core)
    reply = await core.run("action add migrate the dns due 2020-01-01", where=where)
    assert reply.ok, reply.text
    assert await due_of(core, 1) == datetime(2020, 1, 1, 17, 0, tzinfo=UTC)
    listed = await core.run("action list", where=where)
    assert listed.text.endswith("due Wed 01 Jan 2020 17:00 UTC")
    # Relative dates too: "friday" is the clock's next Friday (1 June 2019 was a Saturday).
    assert (await core.run("action edit 1 due friday", where=where)).ok
    assert await due_of(core, 1) == datetime(2019, 6, 7, 17, 0, tzinfo=UTC)


async def test_a_past_date_is_refused_naming_it_and_nothing_changes(core: Core) -> None:
    where = await room(core)
    assert (await core.run("action add renew the cert due friday", where=where)).ok
    reply = await core.run("action edit 1 due 24 Nov 2026", where=where)
    assert not reply.ok
    assert reply.text == (
        'invalid date "24 Nov 2026": that is in the past (Tue 24 Nov 2026 17:00 UTC)')
    assert await due_of(core, 1) == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)


async def test_help_action_lists_the_date_forms_and_the_zone(
    engine: AsyncEngine, catalog: Catalog
) -> None:
    core = build_core(engine, zoned(catalog, "America/New_York"), FakeClock())
    reply = await core.run("help action")
    assert reply.ok
    lines = reply.text.splitlines()
    assert lines[0].startswith("Usage: /incident action add <text> [@user] [due <date>]")
    assert FORMS in lines[1]
    for form in ("15 Dec", "Dec 15", "2026-12-15 14:00", "friday", "next friday", "in 3d",
                 "in 2h", "eod", "tomorrow 9am", "today"):
        assert form in lines[1]
    assert "times are in America/New_York" in lines[1]


def test_the_catalogs_zone_is_checked_at_load(tmp_path: Path) -> None:
    source = Path(__file__).resolve().parents[2] / "bot" / "opsroom.yaml"
    text = source.read_text(encoding="utf-8")
    assert "timezone: UTC" in text  # the default catalog names it
    assert str(load_catalog().tz) == "UTC"
    good = tmp_path / "good.yaml"
    good.write_text(text.replace("timezone: UTC", "timezone: Asia/Tokyo"), encoding="utf-8")
    assert str(load_catalog(good).tz) == "Asia/Tokyo"
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("timezone: UTC", "timezone: Europe/Pariss"), encoding="utf-8")
    with pytest.raises(CatalogError) as err:
        load_catalog(bad)
    assert str(err.value) == (
        f'{bad}: timezone: unknown time zone "Europe/Pariss": did you mean Europe/Paris or '
        "Europe/Warsaw?")
    unset = tmp_path / "unset.yaml"
    unset.write_text(text.replace("timezone: UTC\n", ""), encoding="utf-8")
    assert load_catalog(unset).timezone == "UTC"
