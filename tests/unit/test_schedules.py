"""Schedule math: rotations, restrictions, layers, overrides, daylight saving, a leap day."""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from bot.schedules import (
    Override,
    Schedule,
    ambiguous_handoffs,
    gaps,
    instant,
    shifts,
    who,
    who_at,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local(tz: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=tz).astimezone(UTC)  # type: ignore[misc]


def sched(tz: str = "Europe/Berlin", *layers: dict) -> Schedule:
    return Schedule.model_validate({"name": "primary", "timezone": tz, "layers": list(layers)})


WEEKLY = {
    "users": ["alice", "bob", "carol"],
    "rotation": "weekly",
    "handoff": "mon 09:00",
    "start": "2026-03-02",
}


def test_weekly_rotation_hands_off_monday_0900_local_and_cycles_users() -> None:
    s = sched("Europe/Berlin", WEEKLY)
    assert who_at(s, local(BERLIN, 2026, 3, 2, 8, 59)) is None  # before the layer starts
    assert who_at(s, local(BERLIN, 2026, 3, 2, 9, 0)) == "alice"
    assert who_at(s, local(BERLIN, 2026, 3, 9, 8, 59)) == "alice"
    assert who_at(s, local(BERLIN, 2026, 3, 9, 9, 0)) == "bob"
    assert who_at(s, local(BERLIN, 2026, 3, 16, 9, 0)) == "carol"
    assert who_at(s, local(BERLIN, 2026, 3, 23, 9, 0)) == "alice"


def test_weekly_handoff_stays_at_0900_berlin_across_spring_and_autumn() -> None:
    s = sched("Europe/Berlin", WEEKLY)
    # Clocks go forward on Sunday 29 March 2026 and back on Sunday 25 October 2026.
    found = shifts(s, local(BERLIN, 2026, 3, 23, 9), local(BERLIN, 2026, 11, 2, 10))
    starts = [sh.start.astimezone(BERLIN) for sh in found]
    assert all((t.weekday(), t.hour, t.minute) == (0, 9, 0) for t in starts)
    spring = next(sh for sh in found if sh.start == local(BERLIN, 2026, 3, 23, 9))
    assert spring.end == local(BERLIN, 2026, 3, 30, 9)
    assert spring.end - spring.start == timedelta(hours=167)
    autumn = next(sh for sh in found if sh.start == local(BERLIN, 2026, 10, 19, 9))
    assert autumn.end - autumn.start == timedelta(hours=169)
    # The UTC handoff moved from 08:00 to 07:00 and back: not 7 x 24 h in UTC.
    assert spring.start.hour == 8 and spring.end.hour == 7
    assert autumn.start.hour == 7 and autumn.end.hour == 8


def test_daily_handoff_at_0900_new_york_across_both_changes() -> None:
    s = sched(
        "America/New_York",
        {"users": ["ann", "ben"], "rotation": "daily", "handoff": "09:00", "start": "2026-03-01"},
    )
    # DST starts Sunday 8 March 2026 and ends Sunday 1 November 2026 in New York.
    for day in (date(2026, 3, 8), date(2026, 3, 9), date(2026, 11, 1), date(2026, 11, 2)):
        at = datetime.combine(day, datetime.min.time()).replace(hour=9, tzinfo=NEW_YORK)
        current = who(s, at.astimezone(UTC))
        assert current is not None and current.start == at.astimezone(UTC)
        assert current.end.astimezone(NEW_YORK).hour == 9
    march7 = who(s, local(NEW_YORK, 2026, 3, 7, 12))
    assert march7 is not None and march7.end - march7.start == timedelta(hours=23)
    oct31 = who(s, local(NEW_YORK, 2026, 10, 31, 12))
    assert oct31 is not None and oct31.end - oct31.start == timedelta(hours=25)


def test_handoff_in_the_autumn_hour_is_its_first_occurrence_and_is_reported() -> None:
    s = sched(
        "Europe/Berlin",
        {"users": ["a", "b"], "rotation": "daily", "handoff": "02:30", "start": "2026-10-20"},
    )
    first = datetime(2026, 10, 25, 2, 30, tzinfo=BERLIN, fold=0).astimezone(UTC)
    assert first == datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST, not CET
    current = who(s, first)
    assert current is not None and current.start == first
    assert ambiguous_handoffs(s, local(BERLIN, 2026, 10, 20), local(BERLIN, 2026, 10, 30)) == [
        first
    ]


def test_handoff_in_the_spring_gap_happens_when_the_clocks_jump() -> None:
    assert instant(datetime(2026, 3, 29, 2, 30), BERLIN) == datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    s = sched(
        "Europe/Berlin",
        {"users": ["a", "b"], "rotation": "daily", "handoff": "02:30", "start": "2026-03-27"},
    )
    found = shifts(s, local(BERLIN, 2026, 3, 28, 3), local(BERLIN, 2026, 3, 30, 3))
    assert [sh.start for sh in found[1:]] == [
        datetime(2026, 3, 29, 1, 0, tzinfo=UTC),
        datetime(2026, 3, 30, 0, 30, tzinfo=UTC),  # 02:30 CEST
    ]
    assert gaps(found, found[0].start, found[-1].end) == []


def test_leap_day_is_a_day_of_its_own_in_a_daily_rotation() -> None:
    s = sched(
        "UTC", {"users": ["a", "b"], "rotation": "daily", "handoff": "00:00", "start": "2028-02-28"}
    )
    assert who_at(s, datetime(2028, 2, 28, 12, tzinfo=UTC)) == "a"
    assert who_at(s, datetime(2028, 2, 29, 12, tzinfo=UTC)) == "b"
    assert who_at(s, datetime(2028, 3, 1, 12, tzinfo=UTC)) == "a"
    weekly = sched(
        "UTC",
        {"users": ["x", "y"], "rotation": "weekly", "handoff": "tue 10:00", "start": "2028-02-22"},
    )
    shift = who(weekly, datetime(2028, 2, 29, 10, tzinfo=UTC))
    assert shift is not None and shift.person == "y"
    assert shift.end == datetime(2028, 3, 7, 10, tzinfo=UTC)


def test_duration_rotation_of_12h() -> None:
    s = sched(
        "UTC",
        {"users": ["day", "night"], "rotation": "12h", "handoff": "08:00", "start": "2026-06-01"},
    )
    assert who_at(s, datetime(2026, 6, 1, 19, 59, tzinfo=UTC)) == "day"
    assert who_at(s, datetime(2026, 6, 1, 20, 0, tzinfo=UTC)) == "night"
    assert who_at(s, datetime(2026, 6, 2, 8, 0, tzinfo=UTC)) == "day"


def test_restricted_higher_layer_covers_business_hours_and_lets_the_base_show_through() -> None:
    s = sched(
        "Europe/Berlin",
        {"name": "base", "users": ["night"], "rotation": "weekly", "start": "2026-01-05"},
        {
            "name": "office",
            "users": ["alice", "bob"],
            "rotation": "daily",
            "handoff": "09:00",
            "start": "2026-01-05",
            "restrict": {"weekdays": ["mon", "tue", "wed", "thu", "fri"], "hours": "09:00-17:00"},
        },
    )
    assert who_at(s, local(BERLIN, 2026, 1, 12, 10)) == "bob"  # Monday, office hours
    assert who_at(s, local(BERLIN, 2026, 1, 13, 16, 59)) == "alice"
    assert who_at(s, local(BERLIN, 2026, 1, 13, 17)) == "night"
    assert who_at(s, local(BERLIN, 2026, 1, 17, 12)) == "night"  # Saturday
    day = shifts(s, local(BERLIN, 2026, 1, 12, 0), local(BERLIN, 2026, 1, 13, 0))
    assert [(sh.person, sh.source, sh.start.astimezone(BERLIN).hour) for sh in day] == [
        ("night", "base", 0),
        ("bob", "office", 9),
        ("night", "base", 17),
    ]


def test_overnight_hours_restriction_runs_past_midnight() -> None:
    s = sched(
        "UTC",
        {
            "users": ["owl"],
            "rotation": "weekly",
            "start": "2026-01-05",
            "restrict": {"hours": "22:00-06:00"},
        },
    )
    assert who_at(s, datetime(2026, 1, 6, 23, tzinfo=UTC)) == "owl"
    assert who_at(s, datetime(2026, 1, 7, 5, 59, tzinfo=UTC)) == "owl"
    assert who_at(s, datetime(2026, 1, 7, 6, 0, tzinfo=UTC)) is None


def test_override_sits_on_top_and_the_latest_override_wins() -> None:
    s = sched("Europe/Berlin", WEEKLY)
    a = Override("dave", local(BERLIN, 2026, 3, 10, 12), local(BERLIN, 2026, 3, 10, 18), id=1)
    b = Override("erin", local(BERLIN, 2026, 3, 10, 15), local(BERLIN, 2026, 3, 10, 16), id=2)
    got = shifts(s, local(BERLIN, 2026, 3, 10, 0), local(BERLIN, 2026, 3, 11, 0), [a, b])
    assert [(sh.person, sh.source, sh.start.astimezone(BERLIN).hour) for sh in got] == [
        ("bob", "layer 1", 0),
        ("dave", "override", 12),
        ("erin", "override", 15),
        ("dave", "override", 16),
        ("bob", "layer 1", 18),
    ]
    current = who(s, local(BERLIN, 2026, 3, 10, 12), [a, b])
    assert current is not None and current.end == local(BERLIN, 2026, 3, 10, 15)


def test_bad_layers_are_refused_with_the_accepted_values() -> None:
    with pytest.raises(ValidationError, match="not a rotation: use daily, weekly"):
        sched("UTC", {**WEEKLY, "rotation": "fortnightly"})
    with pytest.raises(ValidationError, match="only a weekly rotation"):
        sched("UTC", {**WEEKLY, "rotation": "daily"})
    with pytest.raises(ValidationError, match='"funday" is not a weekday'):
        sched("UTC", {**WEEKLY, "restrict": {"weekdays": ["funday"]}})
    with pytest.raises(ValidationError, match="unknown time zone"):
        sched("Europe/Berln", WEEKLY)


# --- properties -------------------------------------------------------------------------------

ZONES = ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "UTC", "Asia/Kolkata"]
ROTATIONS = ["daily", "weekly", "1h", "8h", "12h", "36h", "3d"]


@st.composite
def covering_schedules(draw: st.DrawFn) -> Schedule:
    rotation = draw(st.sampled_from(ROTATIONS))
    hour, minute = draw(st.integers(0, 23)), draw(st.sampled_from([0, 15, 30, 45]))
    day = draw(st.sampled_from(["", "mon ", "wed ", "sun "])) if rotation == "weekly" else ""
    users = draw(st.lists(st.sampled_from("abcdef"), min_size=1, max_size=4))
    base = {
        "users": users,
        "rotation": rotation,
        "handoff": f"{day}{hour:02}:{minute:02}",
        "start": "2020-01-01",
    }
    layers = [base]
    if draw(st.booleans()):
        layers.append(
            {
                "users": ["z", "y"],
                "rotation": "daily",
                "handoff": "09:00",
                "start": "2020-01-01",
                "restrict": {"weekdays": ["mon", "fri"], "hours": "22:00-03:30"},
            }
        )
    return sched(draw(st.sampled_from(ZONES)), *layers)


instants = st.datetimes(
    min_value=datetime(2021, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
)


@settings(max_examples=150, deadline=None)
@given(covering_schedules(), instants, st.integers(1, 20))
def test_a_covering_schedule_has_exactly_one_person_and_no_gaps_or_overlaps(
    s: Schedule, start: datetime, days: int
) -> None:
    end = start + timedelta(days=days)
    found = shifts(s, start, end)
    assert found[0].start == start and found[-1].end == end
    for before, after in itertools.pairwise(found):
        assert before.end == after.start  # no gap, no overlap
        assert before.start < before.end
        assert (before.person, before.source) != (after.person, after.source)  # merged
    for sh in found:
        assert who_at(s, sh.start) == sh.person
        last = max(sh.start, sh.end - timedelta(seconds=1))  # a shift cut to 1 µs by `end`
        assert who_at(s, last) == sh.person
    assert gaps(found, start, end) == []
