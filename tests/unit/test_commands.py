"""The command grammar: what each `/incident ...` text parses into, and due dates."""

from __future__ import annotations

import dataclasses
import inspect
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

import pytest

from bot import commands as commands_module
from bot import dates as dates_module
from bot.commands import (
    DUE_FORMS,
    USAGE,
    Acknowledge,
    ActionAdd,
    ActionCancel,
    ActionDone,
    ActionEdit,
    ActionList,
    ActionReopen,
    AddKeyEvent,
    AddNote,
    AlertAttach,
    AlertDeclare,
    AlertIgnore,
    AssignRole,
    Cancel,
    ChangeType,
    Close,
    Command,
    Declare,
    DueSpec,
    Help,
    ListIncidents,
    MirrorTo,
    Page,
    Postmortem,
    Reopen,
    Resolve,
    RunbookList,
    RunbookRun,
    RunbookStatus,
    SetField,
    SetPriority,
    SetSeverity,
    SetStatus,
    SetSummary,
    SetTime,
    SetTitle,
    Show,
    ShowAlerts,
    ShowTimeline,
    ShowTriage,
    StatusUpdate,
    Unassign,
    UsageError,
    is_group_mention,
    is_mention,
    parse,
    parse_due,
    person_key,
)

NOW = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # a Wednesday, 14:00 UTC


def at(day: int, hour: int = 17, minute: int = 0, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# --- every command ----------------------------------------------------------------------------

PARSED: list[tuple[str, Command]] = [
    # declare
    ("declare checkout is down for EU customers",
     Declare(description="checkout is down for EU customers")),
    ("declare type=security leaked API token on GitHub",
     Declare(description="leaked API token on GitHub", type="security")),
    ("declare TYPE=Outage api down", Declare(description="api down", type="outage")),
    ("declare   spacing  is kept inside", Declare(description="spacing  is kept inside")),
    # list / show / help
    ("list", ListIncidents()),
    ("list open", ListIncidents(include_closed=False)),
    ("list all", ListIncidents(include_closed=True)),
    ("list ALL", ListIncidents(include_closed=True)),
    ("list sev1 mine type=Security page 3",
     ListIncidents(severity="sev1", mine=True, type="security", page=3)),
    ("list all page 2 mine", ListIncidents(include_closed=True, mine=True, page=2)),
    ("show", Show()),
    ("show 12", Show(incident=12)),
    ("show #12", Show(incident=12)),
    ("help", Help()),
    ("help severity", Help(topic="severity")),
    ("help action", Help(topic="action")),
    ("help Declare", Help(topic="declare")),
    # status, severity, priority (lower-cased; the service checks the names)
    ("status monitoring", SetStatus(status="monitoring")),
    ("status Identified", SetStatus(status="identified")),
    ("severity sev1", SetSeverity(severity="sev1")),
    ("severity SEV2", SetSeverity(severity="sev2")),
    ("priority p3", SetPriority(priority="p3")),
    # assign: every platform's mention form
    ("assign commander @bob", AssignRole(role="commander", user="@bob")),
    ("assign Scribe @carol.smith", AssignRole(role="scribe", user="@carol.smith")),
    ("assign comms <@U123>", AssignRole(role="comms", user="<@U123>")),
    ("assign lead <@!123>", AssignRole(role="lead", user="<@!123>")),
    ("assign lead <@U123|bob>", AssignRole(role="lead", user="<@U123|bob>")),
    # set, title, summary, update, event, note
    ("set region eu", SetField(field="region", value="eu")),
    ("set Affected_Services api, web", SetField(field="affected_services", value="api, web")),
    ("set customers_affected 1,200", SetField(field="customers_affected", value="1,200")),
    ("title Checkout 500s in EU", SetTitle(title="Checkout 500s in EU")),
    ("summary Card payments fail after deploy 1234", SetSummary(
        summary="Card payments fail after deploy 1234")),
    ("update Rollback is done; error rate falling", StatusUpdate(
        text="Rollback is done; error rate falling")),
    ("event Rolled back to v41", AddKeyEvent(text="Rolled back to v41")),
    ("note Grafana shows p99 at 4s", AddNote(text="Grafana shows p99 at 4s")),
    # timeline, ack, resolve, reopen
    ("timeline", ShowTimeline()),
    ("timeline key", ShowTimeline(key_only=True)),
    ("timeline page 2", ShowTimeline(page=2)),
    ("timeline key page 4", ShowTimeline(key_only=True, page=4)),
    ("ack", Acknowledge()),
    ("resolve", Resolve()),
    ("resolve fixed by rolling back", Resolve(text="fixed by rolling back")),
    ("reopen", Reopen()),
    ("reopen errors are back", Reopen(text="errors are back")),
    # ways back from mistakes
    ("cancel declared by mistake, it was a drill",
     Cancel(reason="declared by mistake, it was a drill")),
    ("type Security", ChangeType(type="security")),
    ("unassign Scribe", Unassign(role="scribe")),
    ("action reopen 2", ActionReopen(number=2)),
    ("action cancel #3", ActionCancel(number=3)),
    # action items
    ("action add roll back deploy 1234", ActionAdd(text="roll back deploy 1234")),
    ("action add roll back @bob", ActionAdd(text="roll back", assignee="@bob")),
    ("action add write the postmortem <@U123>",
     ActionAdd(text="write the postmortem", assignee="<@U123>")),
    ("action add rotate keys due tomorrow",
     ActionAdd(text="rotate keys", due=DueSpec("tomorrow"))),
    ("action add rotate keys @bob due friday",
     ActionAdd(text="rotate keys", assignee="@bob", due=DueSpec("friday"))),
    ("action add add an alert <@!42> due 2026-12-01",
     ActionAdd(text="add an alert", assignee="<@!42>", due=DueSpec("2026-12-01"))),
    ("action add page the db team DUE in 3h",
     ActionAdd(text="page the db team", due=DueSpec("in 3h"))),
    ("action list", ActionList()),
    ("action done 3", ActionDone(number=3)),
    ("action done #3", ActionDone(number=3)),
    ("action edit 2 rotate all keys", ActionEdit(number=2, text="rotate all keys")),
    ("action edit 2 @carol", ActionEdit(number=2, assignee="@carol")),
    ("action edit 2 due in 2d", ActionEdit(number=2, due=DueSpec("in 2d"))),
    ("action edit 2 rotate all keys <@U9> due monday",
     ActionEdit(number=2, text="rotate all keys", assignee="<@U9>", due=DueSpec("monday"))),
    # runbooks, paging, postmortem, mirror
    # alerts and triage decisions ("alert" is "alerts")
    ("alerts", ShowAlerts()),
    ("#3 alerts", ShowAlerts(incident=3)),
    ("alerts triage", ShowTriage()),
    ("alert declare 17", AlertDeclare(alert=17)),
    ("alerts attach 17 #3", AlertAttach(alert=17, incident=3)),
    ("#3 alerts attach 17", AlertAttach(alert=17, incident=3)),
    ("alerts attach 17", AlertAttach(alert=17)),
    ("alerts ignore #17", AlertIgnore(alert=17)),
    ("runbook list", RunbookList()),
    ("runbook run Outage-Triage", RunbookRun(name="outage-triage")),
    ("runbook status", RunbookStatus()),
    ("page database-oncall", Page(target="database-oncall")),
    ("page @bob", Page(target="@bob")),
    ("page Primary db is down", Page(target="primary", message="db is down")),
    ("postmortem", Postmortem()),
    ("time impact_started 14:05", SetTime(which="impact_started", when="14:05")),
    ("time Mitigated yesterday 9am", SetTime(which="mitigated", when="yesterday 9am")),
    ("close", Close()),
    ("close force duplicate of #3", Close(force_reason="duplicate of #3")),
    ("mirror slack", MirrorTo(platform="slack")),
    ("mirror Discord", MirrorTo(platform="discord")),
    # aliases
    ("sev sev1", SetSeverity(severity="sev1")),
    ("acknowledge", Acknowledge()),
    ("notes restarted the pods", AddNote(text="restarted the pods")),
    ("events DNS cut over", AddKeyEvent(text="DNS cut over")),
    ("actions list", ActionList()),
    ("ls all", ListIncidents(include_closed=True)),
    ("new payments failing", Declare(description="payments failing")),
    ("help sev", Help(topic="severity")),
    # the command word is case-insensitive, the /incident prefix optional
    ("SEVERITY sev3", SetSeverity(severity="sev3")),
    ("/incident severity sev3", SetSeverity(severity="sev3")),
    ("  /incident   note   spaced out  ", AddNote(text="spaced out")),
]


@pytest.mark.parametrize(("text", "expected"), PARSED, ids=[t for t, _ in PARSED])
def test_each_command_parses_into_its_dataclass(text: str, expected: Command) -> None:
    assert parse(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("#42 severity sev1", SetSeverity(severity="sev1", incident=42)),
        ("/incident #42 status monitoring", SetStatus(status="monitoring", incident=42)),
        ("#7 action add call the vendor @bob",
         ActionAdd(text="call the vendor", assignee="@bob", incident=7)),
        ("#7 action done 2", ActionDone(number=2, incident=7)),
        ("#3 ack", Acknowledge(incident=3)),
        ("#3 show", Show(incident=3)),
        ("#3 show 3", Show(incident=3)),
        ("#3", Show(incident=3)),
        ("#12 timeline key", ShowTimeline(key_only=True, incident=12)),
        ("#4 cancel duplicate of #3", Cancel(reason="duplicate of #3", incident=4)),
        ("#4 type data", ChangeType(type="data", incident=4)),
    ],
)
def test_incident_number_right_after_incident(text: str, expected: Command) -> None:
    assert parse(text) == expected


def test_incident_number_elsewhere_is_not_the_incident() -> None:
    # "#42" later in the text is just text, and inside a channel the incident is implied.
    assert parse("note see #42 for the same symptom") == AddNote(
        text="see #42 for the same symptom")
    assert parse("note see #42").incident is None


def test_two_different_incident_numbers_are_refused() -> None:
    with pytest.raises(UsageError, match="two incident numbers"):
        parse("#3 show 4")


def test_commands_are_frozen() -> None:
    command = parse("severity sev1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        command.severity = "sev2"  # type: ignore[misc]


@pytest.mark.parametrize(
    "token", ["@bob", "@carol.smith", "@a-b", "<@U123>", "<@!123>", "<@U123|bob>", "<@W0ABC>"]
)
def test_mentions_of_every_platform(token: str) -> None:
    assert is_mention(token)


@pytest.mark.parametrize("token", ["bob", "@", "<@>", "<U123>", "<@U123", "email@example.com"])
def test_not_mentions(token: str) -> None:
    assert not is_mention(token)


@pytest.mark.parametrize(
    "token", ["@here", "@everyone", "@channel", "@HERE", "<!here>", "<!channel>", "<!everyone>",
              "<!here|here>", "<!channel|@channel>", "<@&123>"]
)
def test_group_mentions_are_not_people(token: str) -> None:
    assert is_group_mention(token) and not is_mention(token)
    with pytest.raises(UsageError) as err:
        parse(f"assign commander {token}")
    assert str(err.value).startswith(f'"{token}" is a group mention, not a person (write @name)')
    with pytest.raises(UsageError) as err:
        parse(f"action add tell everyone {token}")
    assert str(err.value) == (
        f'"{token}" is a group mention, not a person (write @name): '
        "an action item is assigned to one person"
    )


def test_people_who_merely_look_like_groups_are_people() -> None:
    for token in ["@heres", "@everyone2", "@channel-ops", "<@U123|here>"]:
        assert is_mention(token) and not is_group_mention(token)


def test_person_key_gives_one_form_per_person() -> None:
    assert person_key("<@U123|bob>") == person_key("<@U123>") == "<@U123>"
    assert person_key("<@!42>") == person_key("<@42>") == "<@42>"
    assert person_key("@Bob") == person_key(" @bob ") == "@bob"


@pytest.mark.parametrize("text", ["#abc note x", "# note x", "#12a show", "#-1 ack", "#1.5 ack"])
def test_a_bad_incident_number_is_named(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    first = text.split()[0]
    assert str(err.value) == f'"{first}" is not an incident number (write #42)'


def test_action_text_may_contain_the_word_due() -> None:
    # The due date is the last "due <date>"; an earlier "due" is part of the text.
    assert parse("action add chase the due invoices due friday") == ActionAdd(
        text="chase the due invoices", due=DueSpec("friday"))
    assert parse("action add chase overdue invoices") == ActionAdd(text="chase overdue invoices")


# --- unknown commands and help ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "nearest"),
    [("sevrity sev1", "severity"), ("statsu monitoring", "status"), ("asign lead @bob", "assign"),
     ("timelien", "timeline"), ("declar db down", "declare"), ("resolv", "resolve")],
)
def test_unknown_command_suggests_the_nearest(text: str, nearest: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(text)
    message = str(err.value)
    assert message.startswith(f'unknown command "{text.split()[0]}".')
    assert f"Did you mean: {USAGE[nearest]}" in message
    assert "\n" not in message


def test_unknown_command_far_from_any_points_to_help() -> None:
    with pytest.raises(UsageError) as err:
        parse("xyzzy plugh")
    assert str(err.value) == 'unknown command "xyzzy". Try /incident help.'


def test_help_on_an_unknown_topic_is_short_and_suggests() -> None:
    with pytest.raises(UsageError) as err:
        parse("help sevrity")
    assert str(err.value) == f'no command "sevrity". Did you mean: {USAGE["severity"]}'


def test_bare_incident_shows_every_command() -> None:
    with pytest.raises(UsageError) as err:
        parse("/incident")
    for usage in USAGE.values():
        assert usage in str(err.value)


# --- due dates --------------------------------------------------------------------------------

PARIS, TOKYO = ZoneInfo("Europe/Paris"), ZoneInfo("Asia/Tokyo")
NEW_YEAR = datetime(2026, 12, 30, 20, 0, tzinfo=UTC)  # Wednesday evening, two days before 2027
TOKYO_NEW_YEAR = datetime(2026, 12, 31, 20, 0, tzinfo=UTC)  # already 1 Jan 2027, 05:00 in Tokyo


def utc(year: int, month: int, day: int, hour: int = 17, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


# (now, zone, what people type, the UTC moment it means). NOW is the FakeClock's instant.
ACCEPTED: list[tuple[datetime, tzinfo, str, datetime]] = [
    # calendar dates: day and month in either order, a year, a time
    (NOW, UTC, "15 Dec", utc(2026, 12, 15)),
    (NOW, UTC, "Dec 15", utc(2026, 12, 15)),
    (NOW, UTC, "15th December", utc(2026, 12, 15)),
    (NOW, UTC, "15th of December 2027", utc(2027, 12, 15)),
    (NOW, UTC, "Dec 15 3:30pm", utc(2026, 12, 15, 15, 30)),
    (NOW, UTC, "15 dec 9 am", utc(2026, 12, 15, 9)),
    (NOW, UTC, "on 15 Dec", utc(2026, 12, 15)),
    (NOW, UTC, "Jan 3", utc(2027, 1, 3)),  # already past this year: next year's
    (NOW, UTC, "25 Nov", utc(2026, 11, 25)),  # today, before the end of the working day
    (NOW, UTC, "29 Feb", utc(2028, 2, 29)),  # the next year that has it
    (NOW, UTC, "2026-12-15", utc(2026, 12, 15)),
    (NOW, UTC, "2026-12-15 14:00", utc(2026, 12, 15, 14)),
    (NOW, UTC, "2026-12-15 2pm", utc(2026, 12, 15, 14)),
    (NOW, UTC, "2026-12-01T15:00", utc(2026, 12, 1, 15)),
    (NOW, UTC, "2026-12-01T15:00+02:00", utc(2026, 12, 1, 13)),
    (NOW, UTC, "2026-12-01T15:00Z", utc(2026, 12, 1, 15)),
    # days by name
    (NOW, UTC, "today", utc(2026, 11, 25)),
    (NOW, UTC, "EOD", utc(2026, 11, 25)),
    (NOW, UTC, "end of day", utc(2026, 11, 25)),
    (NOW, UTC, "today 4pm", utc(2026, 11, 25, 16)),
    (NOW, UTC, "tomorrow", utc(2026, 11, 26)),
    (NOW, UTC, "Tomorrow 9am", utc(2026, 11, 26, 9)),
    (NOW, UTC, "tomorrow at 9:30", utc(2026, 11, 26, 9, 30)),
    (NOW, UTC, "9am tomorrow", utc(2026, 11, 26, 9)),
    (NOW, UTC, "noon tomorrow", utc(2026, 11, 26, 12)),
    (NOW, UTC, "friday", utc(2026, 11, 27)),
    (NOW, UTC, "fri", utc(2026, 11, 27)),
    (NOW, UTC, "by friday", utc(2026, 11, 27)),
    (NOW, UTC, "friday 3pm", utc(2026, 11, 27, 15)),
    (NOW, UTC, "this friday", utc(2026, 11, 27)),
    (NOW, UTC, "next friday", utc(2026, 12, 4)),  # next week's
    (NOW, UTC, "next monday", utc(2026, 11, 30)),
    (NOW, UTC, "wednesday", utc(2026, 12, 2)),  # today is Wednesday: the next one, never today
    (NOW, UTC, "sunday", utc(2026, 11, 29)),
    # relative
    (NOW, UTC, "in 30m", NOW + timedelta(minutes=30)),
    (NOW, UTC, "in 45 minutes", NOW + timedelta(minutes=45)),
    (NOW, UTC, "in 2h", NOW + timedelta(hours=2)),
    (NOW, UTC, "in 2 hours", NOW + timedelta(hours=2)),
    (NOW, UTC, "in 3d", NOW + timedelta(days=3)),
    (NOW, UTC, "in 1 day", NOW + timedelta(days=1)),
    (NOW, UTC, "in 2 weeks", NOW + timedelta(weeks=2)),
    # across the year boundary
    (NEW_YEAR, UTC, "15 Dec", utc(2027, 12, 15)),
    (NEW_YEAR, UTC, "Jan 3", utc(2027, 1, 3)),
    (NEW_YEAR, UTC, "friday", utc(2027, 1, 1)),
    (NEW_YEAR, UTC, "next friday", utc(2027, 1, 8)),
    (NEW_YEAR, UTC, "tomorrow 9am", utc(2026, 12, 31, 9)),
    (NEW_YEAR, UTC, "eod", utc(2026, 12, 30, 23, 59)),  # 17:00 is gone: before midnight
    (NEW_YEAR, UTC, "in 3d", NEW_YEAR + timedelta(days=3)),
    # in the catalog's zone: Paris is UTC+1 in winter, UTC+2 in summer
    (NOW, PARIS, "15 Dec", utc(2026, 12, 15, 16)),
    (NOW, PARIS, "tomorrow 9am", utc(2026, 11, 26, 8)),
    (NOW, PARIS, "2027-07-01 09:00", utc(2027, 7, 1, 7)),
    (NOW, PARIS, "2026-12-01T15:00Z", utc(2026, 12, 1, 15)),  # an explicit zone wins
    (NOW, PARIS, "in 2h", NOW + timedelta(hours=2)),
    # Tokyo (UTC+9) is already in 2027 while UTC is in 2026
    (TOKYO_NEW_YEAR, TOKYO, "today", utc(2027, 1, 1, 8)),
    (TOKYO_NEW_YEAR, TOKYO, "Jan 1", utc(2027, 1, 1, 8)),
    (TOKYO_NEW_YEAR, TOKYO, "31 Dec", utc(2027, 12, 31, 8)),
    (TOKYO_NEW_YEAR, TOKYO, "friday", utc(2027, 1, 8, 8)),  # 1 Jan 2027 is a Friday there
    (TOKYO_NEW_YEAR, TOKYO, "tomorrow 9am", utc(2027, 1, 2, 0)),
]


@pytest.mark.parametrize(
    ("now", "tz", "text", "expected"), ACCEPTED,
    ids=[f"{now:%Y-%m-%d %H:%M} {tz} {text}" for now, tz, text, _ in ACCEPTED],
)
def test_accepted_due_dates(now: datetime, tz: tzinfo, text: str, expected: datetime) -> None:
    assert parse_due(text, now, tz) == expected
    assert parse_due(text, now, tz).tzinfo == UTC
    assert DueSpec(text).resolve(now, tz) == expected
    # The grammar takes every accepted form after "due", and keeps it as written.
    assert parse(f"action add check the graphs due {text}") == ActionAdd(
        text="check the graphs", due=DueSpec(text))


def test_weekday_is_never_today_whatever_today_is() -> None:
    for offset in range(7):
        now = NOW + timedelta(days=offset)
        today = now.strftime("%A").lower()
        due = parse_due(today, now)
        assert due.date() == now.date() + timedelta(days=7)
        assert parse_due(now.strftime("%a").lower(), now) == due


def test_a_relative_date_is_relative_to_the_moment_whatever_its_zone() -> None:
    cet = NOW.astimezone(timezone(timedelta(hours=1)))
    assert parse_due("in 3h", cet) == NOW + timedelta(hours=3)


def test_due_spec_keeps_the_text_and_resolves_later() -> None:
    spec = parse("action add rotate keys due in 2d")
    assert isinstance(spec, ActionAdd) and spec.due == DueSpec("in 2d")
    later = NOW + timedelta(days=10)
    assert spec.due.resolve(NOW) == NOW + timedelta(days=2)
    assert spec.due.resolve(later) == later + timedelta(days=2)


@pytest.mark.parametrize(
    "text", ["someday", "next week", "in 3 fortnights", "in h", "yesterdayish", "12/01/2026",
             "", "friday 15 dec", "eod 3pm", "tomorrow 25pm", "Dec", "15 Decmber"],
)
def test_unknown_forms_name_the_value_and_the_accepted_ones(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_due(text, NOW)
    message = str(err.value)
    assert message == f'invalid date "{text}": use {DUE_FORMS}'
    for form in ("15 Dec", "tomorrow 9am", "next friday", "in 3d", "eod"):
        assert form in message


@pytest.mark.parametrize(
    ("text", "why"),
    [("31 Feb", "no such day"), ("30 february", "no such day"), ("31 Apr 2027", "no such day"),
     ("29 Feb 2027", "no such day"), ("2026-13-45", "no such day or time"),
     ("2026-02-30", "no such day or time"), ("in 99999999w", "more than 5 years ahead"),
     ("in 999999999999999999999d", "more than 5 years ahead")],
)
def test_impossible_dates_are_refused_by_the_grammar_itself(text: str, why: str) -> None:
    with pytest.raises(UsageError) as err:
        parse(f"action add fix it due {text}")
    assert str(err.value) == f'invalid date "{text}": {why}'


@pytest.mark.parametrize(
    ("text", "shown"),
    [("2020-01-01", "Wed 01 Jan 2020 17:00 UTC"), ("today 9am", "Wed 25 Nov 2026 09:00 UTC"),
     ("2026-11-25T13:59Z", "Wed 25 Nov 2026 13:59 UTC")],
)
def test_the_past_is_refused_when_resolved(text: str, shown: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_due(text, NOW)
    assert str(err.value) == f'invalid date "{text}": that is in the past ({shown})'


def test_far_future_dates_are_refused() -> None:
    for text in ("9999-12-31", "2040-01-01"):
        with pytest.raises(ValueError, match=f'invalid date "{text}": more than 5 years ahead'):
            parse_due(text, NOW)
    with pytest.raises(ValueError, match="more than 5 years ahead"):  # past datetime.max
        parse_due("9999-12-31", NOW, ZoneInfo("America/Los_Angeles"))


@pytest.mark.parametrize("text", [
    "x due tomorrow @bob", "x @bob due tomorrow", "x due tomorrow <@U123>",
    "x <@U123> due tomorrow"])
def test_the_person_and_the_due_date_come_in_either_order(text: str) -> None:
    command = parse(f"action add {text}")
    assert isinstance(command, ActionAdd)
    assert (command.text, command.due) == ("x", DueSpec("tomorrow"))
    assert command.assignee in ("@bob", "<@U123>")
    edit = parse(f"action edit 1 {text}")
    assert isinstance(edit, ActionEdit)
    assert (edit.text, edit.due, edit.assignee) == ("x", DueSpec("tomorrow"), command.assignee)


@pytest.mark.parametrize("expr", ["15 Dec", "end of day", "Dec 15", "next friday 3pm"])
def test_a_due_date_never_becomes_part_of_the_text(expr: str) -> None:
    assert parse(f"action add renew the cert due {expr}") == ActionAdd(
        text="renew the cert", due=DueSpec(expr))
    assert parse(f"action add renew the cert @bob due {expr}") == ActionAdd(
        text="renew the cert", assignee="@bob", due=DueSpec(expr))


@pytest.mark.parametrize("expr", ["end of week", "15 Decmber", "Dec 45", "next week", "never"])
def test_a_date_we_cannot_read_is_an_error_not_text(expr: str) -> None:
    with pytest.raises(UsageError, match=f'invalid date "{expr}"'):
        parse(f"action add renew the cert due {expr}")


def test_the_grammar_reads_no_clock() -> None:
    # Dates are resolved by the service on its injected clock; the grammar only reads forms.
    for module in (commands_module, dates_module):
        source = inspect.getsource(module)
        for clock in ("datetime.now", "utcnow", "date.today", "time.time", "SystemClock"):
            assert clock not in source, f"{module.__name__} reads the clock ({clock})"


def test_due_in_prose_stays_part_of_the_action_text() -> None:
    spec = parse("action add investigate 500s due to the cache change due friday")
    assert isinstance(spec, ActionAdd)
    assert spec.text == "investigate 500s due to the cache change"
    assert spec.due == DueSpec("friday")
    plain = parse("action add investigate 500s due to the cache change")
    assert isinstance(plain, ActionAdd)
    assert (plain.text, plain.due) == ("investigate 500s due to the cache change", None)


def test_buttons_map_to_the_commands_they_stand_for() -> None:
    from bot.commands import Acknowledge, ActionDone, Reopen, Resolve, button_command

    assert button_command("ack", "42") == Acknowledge(incident=42)
    assert button_command("resolve", "42") == Resolve(incident=42)
    assert button_command("reopen", "7") == Reopen(incident=7)
    assert button_command("action_done", "42:3") == ActionDone(incident=42, number=3)
    for action, value in [("ack", "x"), ("action_done", "42"), ("key_event", "42"),
                          ("delete", "42"), ("ack", "99999999999999")]:
        assert button_command(action, value) is None


@pytest.mark.parametrize("text", ["show ²", "#1 action done ²", "show " + "9" * 5000,
                                  "#" + "9" * 5000 + " show", "#١ show"])
def test_odd_digits_and_huge_numbers_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse(text)


@pytest.mark.parametrize("text", [
    "write-up, due in part to the cache change", "finish the write-up due this sprint",
    "rotate keys due 2 teams asked for it",
])
def test_due_in_ordinary_sentences_is_text(text: str) -> None:
    spec = parse(f"action add {text}")
    assert isinstance(spec, ActionAdd) and (spec.text, spec.due) == (text, None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("time", "missing which time. Usage: /incident time <impact_started|declared|"),
        ("time lunch 12:00", 'unknown time "lunch": use impact_started, declared, acknowledged, '
                             "mitigated, resolved, closed. Usage:"),
        ("time resolved", "missing when resolved. Usage:"),
        ("close now", 'unexpected "now". Usage: /incident close [force <reason>]'),
        ("close force", "missing reason after force. Usage: /incident close [force <reason>]"),
    ],
)
def test_time_and_close_usage_errors_name_the_problem(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse(text)
    assert str(caught.value).startswith(message)
