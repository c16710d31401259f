"""The on-call calendar feed (parsed back with icalendar and compared with `/oncall schedule`)
and the `opsroom oncall` commands."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from icalendar import Calendar
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from adapters.cli import app as cli
from adapters.http import Readiness, create_app
from adapters.oncall_ics import ics_key, oncall_router
from bot.catalog import Catalog, load_catalog
from bot.oncall import when
from bot.ports import ChannelRef
from tests.conftest import ALICE, Core, build_core
from tests.fakes.clock import FakeClock

SECRET = "a-long-random-test-secret"
ONCALL_YAML = """
people:
  - {name: alice, slack: U0ALICE0001, discord: "1000000001"}
  - {name: bob, slack: U0BOB000002}
  - {name: carol}
schedules:
  - name: primary
    timezone: Europe/Berlin
    layers:
      - users: [alice, bob]
        rotation: weekly
        handoff: mon 09:00
        start: 2026-11-02
  - name: weekdays
    timezone: America/New_York
    layers:
      - users: [carol]
        rotation: daily
        handoff: "09:00"
        start: 2026-11-02
        restrict: {weekdays: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}
"""


@pytest.fixture
def catalog_file(tmp_path: Path) -> Path:
    base = (Path(__file__).resolve().parents[2] / "bot" / "opsroom.yaml").read_text()
    path = tmp_path / "opsroom.yaml"
    path.write_text(base + ONCALL_YAML)
    return path


@pytest.fixture
def oncall_catalog(catalog_file: Path) -> Catalog:
    return load_catalog(catalog_file)


@pytest.fixture
def core(engine: AsyncEngine, oncall_catalog: Catalog, clock: FakeClock) -> Core:
    return build_core(engine, oncall_catalog, clock)


async def fetch(core: Core, catalog: Catalog, path: str, secret: str | None = SECRET
                ) -> httpx.Response:
    router = oncall_router(store=core.store, catalog=catalog, clock=core.clock, secret=secret)
    transport = httpx.ASGITransport(app=create_app(Readiness(), routers=[router]))
    async with httpx.AsyncClient(transport=transport, base_url="http://opsroom") as http:
        return await http.get(path)


async def test_the_feed_parses_back_to_the_shifts_oncall_schedule_shows(
    core: Core, oncall_catalog: Catalog
) -> None:
    override = await core.service.handle_oncall_text(
        "override primary @carol 2026-11-27 10:00 to 2026-11-27 20:00", actor=ALICE,
        where=core.general)
    assert override.ok, override.text
    response = await fetch(core, oncall_catalog,
                           f"/oncall/primary.ics?key={ics_key(SECRET, 'primary')}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/calendar")
    cal = Calendar.from_ical(response.content)
    events = list(cal.walk("VEVENT"))
    tz = oncall_catalog.schedule("primary").tz  # type: ignore[union-attr]
    from_feed = [
        f"• {when(e.decoded('dtstart'), tz)} – {when(e.decoded('dtend'), tz)}  "
        f"{str(e.get('summary')).removeprefix('On call: ').removesuffix(' (primary)')} "
        f"({str(e.get('description')).removeprefix('primary, ')})"
        for e in events
    ]
    shown = await core.service.handle_oncall_text(
        "schedule primary 90", actor=ALICE, where=ChannelRef("console", "C-x"))
    assert from_feed == shown.text.splitlines()[1:]
    assert len(events) > 12  # 90 days of weekly shifts, and the override's three pieces
    assert from_feed[1] == "• Fri 27 Nov 10:00 CET – Fri 27 Nov 20:00 CET  @carol (override)"
    assert events[0].decoded("dtstart") == datetime(2026, 11, 25, 14, 0, tzinfo=UTC)
    assert len({str(e.get("uid")) for e in events}) == len(events)


async def test_the_feed_wants_its_own_key_and_the_secret(
    core: Core, oncall_catalog: Catalog
) -> None:
    wrong = await fetch(core, oncall_catalog,
                        f"/oncall/primary.ics?key={ics_key(SECRET, 'weekdays')}")
    missing = await fetch(core, oncall_catalog, "/oncall/primary.ics")
    unknown = await fetch(core, oncall_catalog,
                          f"/oncall/nope.ics?key={ics_key(SECRET, 'nope')}")
    assert [r.status_code for r in (wrong, missing, unknown)] == [404, 404, 404]
    assert wrong.text == unknown.text  # a name cannot be probed
    off = await fetch(core, oncall_catalog, "/oncall/primary.ics?key=x", secret=None)
    assert off.status_code == 404 and "OPSROOM_ICS_SECRET" in off.text


def test_cli_ics_key_and_check(tmp_path: Path, catalog_file: Path) -> None:
    env = {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "OPSROOM_CATALOG": str(catalog_file),
        "OPSROOM_ICS_SECRET": SECRET,
        "OPSROOM_FAKE_NOW": "2026-11-25T14:00:00Z",
    }
    runner = CliRunner()
    key = runner.invoke(cli, ["oncall", "ics-key", "primary"], env=env)
    assert key.exit_code == 0, key.output
    assert key.stdout.splitlines()[0] == ics_key(SECRET, "primary")
    bad = runner.invoke(cli, ["oncall", "ics-key", "secondary"], env=env)
    assert bad.exit_code == 2
    assert 'unknown schedule "secondary": use primary, weekdays' in bad.output

    check = runner.invoke(cli, ["oncall", "check", "--days", "7"], env=env)
    assert check.exit_code == 1, check.output
    lines = check.stdout.splitlines()
    assert lines[0].endswith("on-call problems in the next 7 days:")
    assert "  weekdays: nobody is on call from Wed 25 Nov 17:00 EST to Thu 26 Nov 09:00 EST" in (
        lines
    )
    assert "  weekdays: @carol cannot be reached: no Slack or Discord account in people:" in lines
    assert not any(line.startswith("  primary:") for line in lines)

    who = runner.invoke(cli, ["oncall", "who", "primary"], env=env)
    assert who.exit_code == 0, who.output
    assert who.stdout.strip() == "primary: @bob until Mon 30 Nov 09:00 CET (layer 1)"
