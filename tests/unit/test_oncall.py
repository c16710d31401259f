"""`/oncall` through the service on a real SQLite store, with a fake clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.oncall import coverage_problems
from bot.people import PersonSpec
from bot.ports import ChannelRef
from bot.schedules import Schedule
from bot.service import Reply
from tests.conftest import ALICE, Core, build_core
from tests.fakes.clock import FakeClock

PEOPLE = [
    PersonSpec(name="alice", slack="U0ALICE0001", discord="1000000001"),
    PersonSpec(name="bob", slack="U0BOB000002"),
    PersonSpec(name="carol", discord="1000000003"),
]
PRIMARY = Schedule.model_validate(
    {
        "name": "primary",
        "timezone": "Europe/Berlin",
        "layers": [
            {"users": ["alice", "bob", "carol"], "rotation": "weekly", "handoff": "mon 09:00",
             "start": "2026-11-02"},
        ],
    }
)
# Nights only on weekdays: the coverage check must find the gaps.
NIGHTS = Schedule.model_validate(
    {
        "name": "nights",
        "timezone": "America/New_York",
        "layers": [
            {"users": ["dave"], "rotation": "daily", "handoff": "01:30", "start": "2026-11-01",
             "restrict": {"weekdays": ["mon", "tue", "wed", "thu", "fri"]}},
        ],
    }
)


@pytest.fixture
def oncall_catalog(catalog: Catalog) -> Catalog:
    return catalog.model_copy(update={"people": PEOPLE, "schedules": [PRIMARY, NIGHTS]})


@pytest.fixture
def core(engine: AsyncEngine, oncall_catalog: Catalog, clock: FakeClock) -> Core:
    return build_core(engine, oncall_catalog, clock)


async def oncall(core: Core, text: str, platform: str = "console") -> Reply:
    where = ChannelRef(platform, "C-anywhere") if platform != "console" else core.general
    return await core.service.handle_oncall_text(text, actor=ALICE, where=where)


async def test_who_names_the_person_and_until_when_in_the_schedules_zone(core: Core) -> None:
    # The fake clock starts Wednesday 25 Nov 2026 14:00 UTC: the fourth week, alice again.
    reply = await oncall(core, "who primary")
    assert reply.ok
    assert reply.text == "primary: @alice until Mon 30 Nov 09:00 CET (layer 1)"
    on_slack = await oncall(core, "who primary", platform="slack")
    assert on_slack.text.startswith("primary: <@U0ALICE0001> until")
    both = await oncall(core, "who")
    assert both.text.splitlines()[1].startswith("nights: @dave until")


async def test_override_for_4h_sits_on_top_and_can_be_removed(core: Core) -> None:
    reply = await oncall(core, "override primary @bob for 4h")
    assert reply.ok, reply.text
    assert reply.text == (
        "Override 1: @bob is on call for primary from Wed 25 Nov 15:00 CET "
        "to Wed 25 Nov 19:00 CET."
    )
    assert (await oncall(core, "who primary", "discord")).text == (
        "primary: @bob (Slack) until Wed 25 Nov 19:00 CET (override)"
    )
    listed = await oncall(core, "overrides")
    assert "• 1: primary @bob Wed 25 Nov 15:00 CET – Wed 25 Nov 19:00 CET (by @alice)" in (
        listed.text
    )
    week = (await oncall(core, "schedule primary 7")).text.splitlines()
    assert week[1:4] == [
        "• Wed 25 Nov 15:00 CET – Wed 25 Nov 19:00 CET  @bob (override)",
        "• Wed 25 Nov 19:00 CET – Mon 30 Nov 09:00 CET  @alice (layer 1)",
        "• Mon 30 Nov 09:00 CET – Wed 2 Dec 15:00 CET  @bob (layer 1)",
    ]
    removed = await oncall(core, "remove-override 1")
    assert removed.ok and (await oncall(core, "who primary")).text.startswith("primary: @alice")
    again = await oncall(core, "remove-override 1")
    assert not again.ok and again.text == "no override 1 (/oncall overrides lists them)"


async def test_override_from_to_in_the_schedule_zone(core: Core) -> None:
    reply = await oncall(core, "override primary @carol 2026-11-28 10:00 to 2026-11-28 18:00")
    assert reply.ok, reply.text
    assert "from Sat 28 Nov 10:00 CET to Sat 28 Nov 18:00 CET" in reply.text
    core.clock.current = datetime(2026, 11, 28, 9, 30, tzinfo=UTC)  # 10:30 in Berlin
    assert (await oncall(core, "who primary")).text.startswith("primary: @carol until Sat 28")


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("who secondary", 'unknown schedule "secondary": use primary or nights'),
        ("override primary bob for 4h", '"bob" is not a person (write @name)'),
        ("override primary @bob for ages", '"ages" is not a duration'),
        ("override primary @bob tomorrow 18:00 to tomorrow 10:00", "ends (Thu 26 Nov 10:00 CET)"),
        ("schedule primary 400", '"400" is not a number of days (1 to 90)'),
        ("remove-override x", '"x" is not an override id'),
        ("overide primary", 'unknown on-call command "overide". Did you mean: /oncall override'),
    ],
)
async def test_bad_oncall_commands_say_why_and_change_nothing(
    core: Core, text: str, error: str
) -> None:
    reply = await oncall(core, text)
    assert not reply.ok
    assert error in reply.text
    assert (await oncall(core, "overrides")).text == "No overrides now or ahead."


async def test_coverage_check_reports_gaps_unreachable_people_and_ambiguous_handoffs(
    core: Core, oncall_catalog: Catalog
) -> None:
    async with core.store.unit() as u:
        problems = await coverage_problems(u, oncall_catalog, core.clock.now(), days=14)
    texts = [(p.schedule, p.text) for p in problems]
    assert ("primary", "nobody") not in [(s, t[:6]) for s, t in texts]
    assert any(s == "nights" and t.startswith("nobody is on call from Sat 28 Nov 00:00 EST")
               for s, t in texts)
    assert ("nights", "@dave cannot be reached: no Slack or Discord account in people:") in texts
    # 01:30 on 1 Nov 2026 happens twice in New York, but that is before the clock: nothing.
    assert not any("happens twice" in t for _, t in texts)
