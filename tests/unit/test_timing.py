"""Durations, cron lines and times as people write and read them, and the catalog's reminder
keys that use them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot import commands as c
from bot.catalog import CatalogError, load_catalog
from bot.models import Status
from bot.timing import (
    check_cron,
    format_duration,
    format_lateness,
    local_when,
    parse_duration,
    relative,
)
from tests.unit.test_catalog import default_data, write

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("5m", 300),
        ("1h30m", 5400),
        ("1d", 86400),
        ("2h", 7200),
        (" 1H 30M ", 5400),
        ("1d2h3m4s", 93784),
        ("90m", 5400),
    ],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "soon", "30", "m", "1.5h", "-5m", "0s", "30m1h", "1w"])
def test_bad_durations_name_the_text_and_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_duration(text)
    assert f'"{text}" is not a duration' in str(err.value)
    assert "30s, 5m, 1h30m or 1d" in str(err.value)


def test_durations_are_shown_as_the_catalog_writes_them() -> None:
    assert [format_duration(timedelta(seconds=s)) for s in (30, 300, 5400, 86400, 93784)] == [
        "30s", "5m", "1h30m", "1d", "1d2h3m4s",
    ]
    assert [format_lateness(timedelta(seconds=s)) for s in (45, 720, 7500, 7200, 97200)] == [
        "45 s", "12 min", "2 h 5 min", "2 h", "1 d 3 h",
    ]
    assert relative(NOW + timedelta(minutes=12, seconds=40), NOW) == "in 12m"
    assert relative(NOW - timedelta(seconds=40), NOW) == "40s ago"


def test_times_are_shown_in_the_zone_with_its_name() -> None:
    utc, paris = ZoneInfo("UTC"), ZoneInfo("Europe/Paris")
    assert local_when(NOW + timedelta(minutes=30), NOW, utc) == "14:30 UTC"
    assert local_when(NOW + timedelta(minutes=30), NOW, paris) == "15:30 CET"
    assert local_when(datetime(2026, 11, 28, 17, 0, tzinfo=UTC), NOW, utc) == "Sat 17:00 UTC"
    assert local_when(datetime(2026, 12, 10, 9, 0, tzinfo=UTC), NOW, paris) == (
        "Thu 10 Dec 10:00 CET"
    )
    summer = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    assert local_when(summer, summer, paris) == "14:00 CEST"


@pytest.mark.parametrize(
    "expr", ["0 9 * * *", "30 8 * * mon-fri", "*/15 * * * *", "0 9,17 1-15 jan,jul 0", "0 0 * * 7"]
)
def test_cron_lines(expr: str) -> None:
    assert check_cron(expr) == expr


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("0 9 * *", "use five fields, minute hour day month weekday"),
        ("61 9 * * *", 'bad minute "61"'),
        ("0 25 * * *", 'bad hour "25"'),
        ("0 9 * * funday", 'bad day of week "funday"'),
        ("0 9 5-1 * *", 'bad day of month "5-1"'),
        ("0 9 * * */0", 'bad day of week "*/0"'),
    ],
)
def test_bad_cron_lines_say_which_field(expr: str, problem: str) -> None:
    with pytest.raises(ValueError) as err:
        check_cron(expr)
    assert f'"{expr}"' in str(err.value) and problem in str(err.value)


# --- the catalog's reminder keys -----------------------------------------------------------------


def test_the_default_catalog_has_reminder_settings() -> None:
    catalog = load_catalog()
    assert catalog.timezone == "UTC" and catalog.tz == ZoneInfo("UTC")
    assert catalog.quiet_statuses == [Status.MONITORING]
    assert catalog.action_digest == "0 9 * * *"
    acks = {s.name: s.ack_interval for s in catalog.severities}
    assert acks == {
        "sev1": timedelta(minutes=5),
        "sev2": timedelta(minutes=15),
        "sev3": timedelta(hours=1),
        "sev4": None,
    }


def test_reminder_keys_from_a_file(tmp_path: Path) -> None:
    data = default_data()
    data["timezone"] = "America/New_York"
    data["quiet_statuses"] = ["monitoring", "identified"]
    data["action_digest"] = None
    data["severities"][0]["update_every"] = "30s"
    data["severities"][0]["ack_within"] = "1h30m"
    catalog = load_catalog(write(tmp_path, data))
    assert catalog.tz == ZoneInfo("America/New_York")
    assert catalog.quiet_statuses == [Status.MONITORING, Status.IDENTIFIED]
    assert catalog.action_digest is None
    assert catalog.severities[0].update_interval == timedelta(seconds=30)
    assert catalog.severities[0].ack_interval == timedelta(hours=1, minutes=30)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("timezone", "Mars/Olympus",
         'timezone: unknown time zone "Mars/Olympus": use an IANA name'),
        ("action_digest", "every morning", 'action_digest: "every morning" is not a cron'),
        (
            "quiet_statuses",
            ["monitoring", "napping"],
            'quiet_statuses: "napping" is not a status: use triggered, acknowledged,',
        ),
    ],
)
def test_bad_reminder_keys_are_named(
    tmp_path: Path, key: str, value: object, expected: str
) -> None:
    data = default_data()
    data[key] = value
    path = write(tmp_path, data)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value).startswith(f"{path}: {expected}"), str(err.value)


def test_a_bad_ack_within_is_named(tmp_path: Path) -> None:
    data = default_data()
    data["severities"][1]["ack_within"] = "quickly"
    path = write(tmp_path, data)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value) == (
        f'{path}: severities[1] (sev2).ack_within: "quickly" is not a duration like 30s, 5m, '
        "1h30m or 1d"
    )


def test_reminders_is_a_command() -> None:
    assert c.parse("reminders") == c.ShowReminders()
    assert c.parse("#42 reminders") == c.ShowReminders(incident=42)
    assert "reminders" in c.HELP_TEXT
