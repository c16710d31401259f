"""The command grammar: what each `/incident ...` text parses into, and due dates."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone

import pytest

from bot.commands import (
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
    AssignRole,
    Cancel,
    ChangeType,
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
    SetTitle,
    Show,
    ShowTimeline,
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
    ("runbook list", RunbookList()),
    ("runbook run Outage-Triage", RunbookRun(name="outage-triage")),
    ("runbook status", RunbookStatus()),
    ("page database-oncall", Page(target="database-oncall")),
    ("page @bob", Page(target="@bob")),
    ("postmortem", Postmortem()),
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


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-12-01", at(1, month=12)),
        ("2026-12-01T15:00", at(1, 15, month=12)),
        ("2026-12-01 15:30", at(1, 15, 30, month=12)),
        ("2026-12-01T15:00+02:00", at(1, 13, month=12)),
        ("2026-12-01T15:00Z", at(1, 15, month=12)),
        ("today", at(25)),
        ("EOD", at(25)),
        ("tomorrow", at(26)),
        ("Tomorrow", at(26)),
        ("thursday", at(26)),
        ("friday", at(27)),
        ("fri", at(27)),
        ("sunday", at(29)),
        ("monday", at(30)),
        ("tuesday", at(1, month=12)),
        ("wednesday", at(2, month=12)),  # today is Wednesday: the next one, never today
        ("wed", at(2, month=12)),
        ("in 30m", NOW + timedelta(minutes=30)),
        ("in 45 minutes", NOW + timedelta(minutes=45)),
        ("in 3h", NOW + timedelta(hours=3)),
        ("in 2 hours", NOW + timedelta(hours=2)),
        ("in 2d", NOW + timedelta(days=2)),
        ("in 1 day", NOW + timedelta(days=1)),
        ("in 1w", NOW + timedelta(weeks=1)),
        ("in 2 weeks", NOW + timedelta(weeks=2)),
    ],
)
def test_due_dates_from_a_fixed_now(text: str, expected: datetime) -> None:
    assert parse_due(text, NOW) == expected
    assert DueSpec(text).resolve(NOW) == expected


def test_weekday_is_never_today_whatever_today_is() -> None:
    for offset in range(7):
        now = NOW + timedelta(days=offset)
        today = now.strftime("%A").lower()
        due = parse_due(today, now)
        assert due.date() == now.date() + timedelta(days=7)
        assert parse_due(now.strftime("%a").lower(), now) == due


def test_due_dates_are_utc() -> None:
    assert parse_due("in 3h", NOW).tzinfo is not None
    assert parse_due("2026-12-01", NOW).utcoffset() == timedelta(0)
    assert parse_due("2026-12-01T09:00-05:00", NOW) == at(1, 14, month=12)
    assert parse_due("2026-12-01T09:00-05:00", NOW).tzinfo == UTC
    # A relative date is relative to the moment given, in whatever zone it is written.
    cet = NOW.astimezone(timezone(timedelta(hours=1)))
    assert parse_due("in 3h", cet) == NOW + timedelta(hours=3)


def test_due_spec_keeps_the_text_and_resolves_later() -> None:
    spec = parse("action add rotate keys due in 2d")
    assert isinstance(spec, ActionAdd) and spec.due == DueSpec("in 2d")
    later = NOW + timedelta(days=10)
    assert spec.due.resolve(NOW) == NOW + timedelta(days=2)
    assert spec.due.resolve(later) == later + timedelta(days=2)


@pytest.mark.parametrize(
    "text", ["someday", "2026-13-45", "2026-02-30", "next week", "in 3 fortnights", "in h",
             "yesterdayish", "12/01/2026", ""],
)
def test_bad_due_dates_name_the_value_and_the_forms(text: str) -> None:
    with pytest.raises(ValueError) as err:
        parse_due(text, NOW)
    message = str(err.value)
    assert f'invalid date "{text}"' in message
    assert "tomorrow" in message and "in 3h" in message


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
