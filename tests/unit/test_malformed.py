"""Malformed and refused commands: a short message for the person, and nothing written.

Each case runs in the channel of a real incident (#1, an outage with one action item), through
`IncidentService.handle_text`, and compares the whole record and every chat channel before and
after.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import text

from bot.commands import USAGE
from bot.ports import Actor, ChannelRef
from tests.conftest import ALICE, BOB, Core

TABLES = ("incident", "incidentcounter", "timelineentry", "actionitem", "channellink", "delivery")


@dataclass(frozen=True)
class State:
    counts: dict[str, int]
    rows: dict[str, list[tuple[Any, ...]]]
    chat: dict[str, int]


async def state(core: Core) -> State:
    """Counts through the Unit, every row through SQL, and what each chat channel shows."""
    counts: dict[str, int] = {}
    async with core.store.unit() as u:
        for incident in await u.incidents(include_closed=True):
            assert incident.id is not None
            n = incident.number
            counts[f"#{n} timeline"] = len(await u.timeline(incident.id, include_deleted=True))
            counts[f"#{n} action items"] = len(await u.action_items(incident.id))
            counts[f"#{n} links"] = len(await u.links(incident.id))
        counts["pending deliveries"] = len(await u.pending_deliveries(per_queue=10_000))
    async with core.store.engine.connect() as conn:
        rows = {}
        for table in TABLES:
            result = await conn.execute(text(f"SELECT * FROM {table} ORDER BY id"))
            rows[table] = [tuple(r) for r in result]
    chat = {c.name: len(c.messages) for c in core.chat.channels.values()}
    chat["(dms)"] = len(core.chat.dms)
    return State(counts, rows, chat)


@dataclass(frozen=True)
class Case:
    text: str
    expect: tuple[str, ...]  # each must appear in the reply
    setup: tuple[str, ...] = ()  # run (successfully) in the incident channel first
    exact: str | None = None
    general: bool = False  # send from #general instead of the incident channel
    actor: Actor = ALICE  # who sends it (alice declared #1 and is its commander)


def usage(name: str) -> str:
    return f"Usage: {USAGE[name]}"


CASES: dict[str, Case] = {
    # --- parse errors: the grammar refuses them ----------------------------------------------
    "unknown command": Case("sevrity sev1", ('unknown command "sevrity"', USAGE["severity"])),
    "unknown command, nothing near": Case("frobnicate now", ('unknown command "frobnicate"',)),
    "severity missing": Case("severity", ("missing severity", usage("severity"))),
    "severity two words": Case("severity sev1 sev2", ("expected one severity", usage("severity"))),
    "status missing": Case("status", (usage("status"),)),
    "priority two words": Case("priority p1 urgent", (usage("priority"),)),
    "assign without @": Case("assign commander bob", ('"bob" is not a person', usage("assign"))),
    "assign without person": Case("assign commander", (usage("assign"),)),
    "assign without role": Case("assign @bob", (usage("assign"),)),
    "set without value": Case("set region", ("expected a field and a value", usage("set"))),
    "title missing": Case("title", ("missing text", usage("title"))),
    "summary missing": Case("summary", (usage("summary"),)),
    "update missing": Case("update", (usage("update"),)),
    "event missing": Case("event", (usage("event"),)),
    "note missing": Case("note", (usage("note"),)),
    "action alone": Case("action", ("missing action command", usage("action"))),
    "action unknown sub": Case("action frob", ('unknown action command "frob"', usage("action"))),
    "action done x": Case("action done x", ('"x" is not a number', usage("action"))),
    "action done missing": Case("action done", ("missing action item number",)),
    "action done 0": Case("action done 0", ('"0" is not a number',)),
    "action done trailing": Case("action done 1 now", ('unexpected "now"',)),
    "action add empty": Case("action add", ("missing action item text",)),
    "action add only person": Case("action add @bob", ("missing action item text",)),
    "due next week": Case("action add fix the alert due next week", ('invalid date "next week"',)),
    "due huge number": Case("action add fix it due 99999-01-01", ('invalid date "99999-01-01"',)),
    "incident number too large": Case("#99999999999999999999 show", ("is not an incident number",)),
    "due 2026-13-45": Case("action add fix it due 2026-13-45", ('invalid date "2026-13-45"',)),
    "action edit nothing": Case("action edit 1", ("nothing to change", usage("action"))),
    "action edit x": Case("action edit x rename it", ('"x" is not a number',)),
    "action edit bad due": Case("action edit 1 due never", ('invalid date "never"',)),
    "due 31 Feb": Case(
        "action add fix it due 31 Feb", (), exact='invalid date "31 Feb": no such day'),
    "due 15 Decmber": Case("action add fix it due 15 Decmber", ('invalid date "15 Decmber"',)),
    "due end of week": Case("action add fix it due end of week", ('invalid date "end of week"',)),
    "due in 99999999w": Case(
        "action add fix it due in 99999999w", (),
        exact='invalid date "in 99999999w": more than 5 years ahead'),
    "due with the person after it": Case(
        "action add fix it due 30 Feb @bob", (), exact='invalid date "30 Feb": no such day'),
    "action list extra": Case("action list all", ('unexpected "all"',)),
    "list sometimes": Case("list sometimes", ('unknown filter "sometimes"', "sev1")),
    "timeline foo": Case("timeline foo", ('unknown option "foo"', usage("timeline"))),
    "list page zero": Case("list page 0", ('"0" is not a page number', usage("list"))),
    "list type empty": Case("list type=", ("missing type after type=", usage("list"))),
    "list unknown type": Case("list type=banana", ('unknown incident type "banana"', "outage")),
    "list two scopes": Case("list open all", ('"all" after "open"', usage("list"))),
    "timeline page word": Case("timeline page two", ('"two" is not a page number',)),
    "ack now": Case("ack now", ('unexpected "now"', usage("ack"))),
    "postmortem extra": Case("postmortem please", ('unexpected "please"',)),
    "show not a number": Case("show abc", ('"abc" is not a number', usage("show"))),
    "two incident numbers": Case("#3 show 4", ("two incident numbers",)),
    "help unknown topic": Case("help frobnicate", ('no command "frobnicate"',)),
    "declare missing": Case("declare", ("missing text", usage("declare"))),
    "declare empty type": Case("declare type= db down", ("missing type after type=",)),
    "declare type only": Case("declare type=outage", ("missing text", usage("declare"))),
    "runbook alone": Case("runbook", ("missing runbook command", usage("runbook"))),
    "runbook run missing": Case("runbook run", ("missing runbook name",)),
    "runbook unknown sub": Case("runbook fly", ('unknown runbook command "fly"',)),
    "mirror missing": Case("mirror", ("missing platform", usage("mirror"))),
    "page missing": Case("page", (usage("page"),)),
    # --- validation errors: the service refuses them -----------------------------------------
    "unknown severity": Case(
        "severity banana", (), exact='unknown severity "banana": use sev1, sev2, sev3 or sev4'),
    "unknown severity, alias": Case(
        "sev SEV9", (), exact='unknown severity "sev9": use sev1, sev2, sev3 or sev4'),
    "unknown status": Case("status sleeping", (), exact=(
        'unknown status "sleeping": use triggered, acknowledged, investigating, identified, '
        "monitoring, resolved or closed")),
    "unknown priority": Case(
        "priority p9", (), exact='unknown priority "p9": use p1, p2, p3 or p4'),
    "unknown role": Case(
        "assign boss @bob", (), exact='unknown role "boss": use commander, scribe, comms or lead'),
    "unknown field": Case("set colour red", (
        'unknown field "colour"', "affected_services", "region", "customers_affected")),
    "bad select value": Case(
        "set region mars", ('unknown region "mars"', "global, eu, us or apac")),
    "bad multi-select value": Case(
        "set affected_services api, teleporter", ('unknown affected_services "teleporter"',)),
    "number field not a number": Case(
        "set customers_affected lots", ('customers_affected must be a number, not "lots"',)),
    "unknown incident": Case("#999 severity sev1", ("no incident #999",)),
    "unknown incident ack": Case("#999 ack", ("no incident #999",)),
    "unknown incident show": Case("#999 show", ("no incident #999",)),
    "action done missing item": Case("action done 7", ("#1 has no action item 7",)),
    "action edit missing item": Case("action edit 7 new text", ("#1 has no action item 7",)),
    "action done twice": Case(
        "action done 1", ("action item 1 is already done",), setup=("action done 1",)),
    "ack twice": Case("ack", ("#1 is already acknowledged",), setup=("ack",)),
    "resolve when resolved": Case(
        "resolve again", ("#1 is already resolved",), setup=("resolve",)),
    "status resolved when resolved": Case(
        "status resolved", ("#1 is already resolved",), setup=("resolve",)),
    "reopen when open": Case("reopen", ("#1 is not resolved",)),
    "same severity": Case("severity sev1", ("already sev1",), setup=("severity sev1",)),
    "same status": Case("status triggered", ("#1 is already triggered",)),
    "same commander": Case("assign commander @alice", ("@alice is already commander",)),
    "mirror unconfigured": Case(
        "mirror slack", ('"slack" is not configured here', "console")),
    "mirror twice": Case("mirror console", ("#1 already has a console channel",)),
    "declare unknown type": Case("declare type=nonsense x", (
        'unknown incident type "nonsense"', "outage", "security")),
    "resolve without required field": Case(
        "#2 resolve", ("#2 cannot be resolved yet", "attack_vector"),
        setup=("declare type=security leaked deploy token",)),
    "due in the past": Case("action add fix it due 2020-01-01", (), exact=(
        'invalid date "2020-01-01": that is in the past (Wed 01 Jan 2020 17:00 UTC)')),
    "due earlier today": Case("action add fix it @bob due today 9am", (), exact=(
        'invalid date "today 9am": that is in the past (Wed 25 Nov 2026 09:00 UTC)')),
    "edit due in the past": Case("action edit 1 due 2026-11-24", (
        'invalid date "2026-11-24": that is in the past',)),
    "due too far ahead": Case(
        "action add fix it due 2040-01-01", (),
        exact='invalid date "2040-01-01": more than 5 years ahead'),
    "outside incident channel": Case("severity sev1", ("no incident here",), general=True),
    "outside, action add": Case("action add rotate keys", ("no incident here",), general=True),
    "outside, unknown incident": Case("#999 note hello", ("no incident #999",), general=True),
    # --- ways back from mistakes, refused ---------------------------------------------------
    "cancel without reason": Case("cancel", ("missing text", usage("cancel"))),
    "cancel by someone else": Case("cancel not mine", (), actor=BOB, exact=(
        "Only the commander and declarer (@alice) may cancel #1 "
        "(anyone may while it has no commander).")),
    "cancel twice": Case("cancel again", (), setup=("cancel oops",),
                         exact="#1 is already cancelled"),
    "cancel resolved": Case("cancel oops", (), setup=("resolve",), exact=(
        "#1 is resolved: only an open incident can be cancelled (reopen it first)")),
    "status cancelled": Case("status cancelled", (), exact=(
        "to cancel #1, use /incident cancel <reason> (it archives the channel)")),
    "close a cancelled incident": Case("#1 status closed", (), setup=("cancel oops",),
                                       exact="#1 is cancelled: reopen it before closing it"),
    "ack a cancelled incident": Case("#1 ack", (), setup=("cancel oops",),
                                     exact="#1 is cancelled: nothing to acknowledge"),
    "type missing": Case("type", ("missing incident type", usage("type"))),
    "type two words": Case("type outage data", ("expected one incident type",)),
    "type unknown": Case("type banana", ('unknown incident type "banana"', "outage, performance")),
    "type same": Case("type outage", (), exact="#1 is already of type outage"),
    "type by someone else": Case("type data", (), actor=BOB, exact=(
        "Only the commander and declarer (@alice) may change the type of #1 "
        "(anyone may while it has no commander).")),
    "type to private in a public channel": Case("type security", (
        "#1 cannot become security", "has a public channel")),
    "unassign missing": Case("unassign", ("missing role", usage("unassign"))),
    "unassign unknown role": Case("unassign boss", (), exact=(
        'unknown role "boss": use commander, scribe, comms or lead')),
    "unassign nobody": Case("unassign scribe", (), exact="#1 has no scribe"),
    "action reopen open": Case("action reopen 1", (), exact="action item 1 is already open"),
    "action reopen missing item": Case("action reopen 7", ("#1 has no action item 7",)),
    "action reopen trailing": Case("action reopen 1 now", ('unexpected "now"',)),
    "action cancel x": Case("action cancel x", ('"x" is not a number', usage("action"))),
    "action cancel twice": Case("action cancel 1", (), setup=("action cancel 1",),
                                exact="action item 1 is already cancelled"),
    "action cancel done": Case("action cancel 1", (), setup=("action done 1",),
                               exact="action item 1 is already done"),
    # --- not people, counts, titles, numbers ------------------------------------------------
    "assign @here": Case("assign commander @here", ('"@here" is a group mention',)),
    "assign <!channel>": Case("assign scribe <!channel>", ('"<!channel>" is a group mention',)),
    "assign @everyone": Case("assign scribe @everyone", ('"@everyone" is a group mention',)),
    "assign the bot": Case("assign scribe @opsroom", (), exact=(
        'scribe must be a person, not the bot ("@opsroom")')),
    "action add to @here": Case("action add tell them @here", ('"@here" is a group mention',)),
    "action edit to <!everyone>": Case("action edit 1 <!everyone>", ("is a group mention",)),
    "action add to the bot": Case("action add check logs @Opsroom", (), exact=(
        'the assignee must be a person, not the bot ("@Opsroom")')),
    "user field @here": Case("#2 set security_lead @here", (
        'security_lead must be a person: "@here" is a group mention',),
        setup=("declare type=security leaked deploy token",)),
    "negative count": Case("set customers_affected -5", (), exact=(
        'customers_affected must be at least 0, not "-5"')),
    "title too long": Case("title " + "x" * 201, (), exact=(
        "the title is 201 characters; the limit is 200 (put the details in the summary)")),
    "bad incident number": Case("#abc note x", (), general=True, exact=(
        '"#abc" is not an incident number (write #42)')),
    "severity number unknown": Case(
        "severity 9", (), exact='unknown severity "9": use sev1, sev2, sev3 or sev4'),
    "priority huge number": Case(
        "priority 99999", (), exact='unknown priority "99999": use p1, p2, p3 or p4'),
}


@pytest.fixture
async def room(core: Core) -> ChannelRef:
    """Incident #1 with one open action item; returns its channel."""
    reply = await core.run("declare checkout is down for EU customers, 500s everywhere")
    assert reply.ok and reply.incident == 1
    where = core.where(core.incident_channel(1))
    reply = await core.run("action add roll back deploy 1234 @bob due tomorrow", where=where)
    assert reply.ok
    return where


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_refused_with_a_short_message_and_nothing_changes(
    core: Core, room: ChannelRef, case: Case
) -> None:
    for setup in case.setup:
        reply = await core.run(setup, where=room)
        assert reply.ok, f"setup {setup!r} failed: {reply.text}"
    before = await state(core)

    where = core.general if case.general else room
    reply = await core.service.handle_text(case.text, actor=case.actor, where=where)
    assert await core.mirror.drain(timeout=5)

    assert reply.ok is False
    if case.exact is not None:
        assert reply.text == case.exact
    for part in case.expect:
        assert part in reply.text
    assert len(reply.text) < 300 and len(reply.text.splitlines()) <= 2, reply.text
    after = await state(core)
    assert after.counts == before.counts
    assert after.rows == before.rows
    assert after.chat == before.chat


async def test_bare_incident_shows_help_and_changes_nothing(core: Core, room: ChannelRef) -> None:
    before = await state(core)
    reply = await core.service.handle_text("/incident", actor=ALICE, where=room)
    assert reply.ok is False
    for line in USAGE.values():
        assert line in reply.text
    assert await state(core) == before


async def test_the_state_check_sees_a_real_change(core: Core, room: ChannelRef) -> None:
    """The harness above can fail: a valid command does change what it compares."""
    before = await state(core)
    reply = await core.run("severity sev1", where=room)
    assert reply.ok
    after = await state(core)
    assert after.counts["#1 timeline"] == before.counts["#1 timeline"] + 1
    assert after.rows["incident"] != before.rows["incident"]
    assert after.chat != before.chat


def test_enough_malformed_cases() -> None:
    assert len(CASES) >= 30
