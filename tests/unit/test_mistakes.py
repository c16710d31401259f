"""A way back from mistakes: cancel and reopen, type change, unassign, action reopen/cancel,
who may do them, and the small refusals (non-people, negative counts, long titles...).

Through IncidentService on a real SQLite store and a recording chat, as people would use it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog, load_catalog
from bot.models import ActionStatus, EntryKind, Status
from bot.ports import Actor
from bot.service import ServiceError
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock
from tests.unit.test_catalog import default_data
from tests.unit.test_service import declare, incident, timeline

CAROL = Actor(platform="console", user_id="carol", name="carol", mention="@carol")


async def outage(core: Core) -> str:
    """#1, an outage in the EU declared by alice (its commander); returns its channel's name."""
    name = await declare(core)
    assert (await core.run("set customers_affected 1200", where=core.where(name))).ok
    return name


def changes(core: Core, name: str) -> list[str]:
    """What the incident channel shows besides the summary and the thread head."""
    return [t for t in core.chat.texts(name) if not t.startswith(("📋", "🧵"))]


def summary_text(core: Core, name: str) -> str:
    return core.chat.by_name(name).messages[0].text


# --- cancel and reopen ------------------------------------------------------------------------


async def test_cancel_archives_the_channel_after_saying_why_and_is_announced(core: Core) -> None:
    name = await outage(core)
    reply = await core.run("cancel declared by mistake, it was a load test", where=core.where(name))

    assert reply.ok, reply.text
    assert reply.text == (
        "Cancelled #1: declared by mistake, it was a load test. Its channel is being archived; "
        "/incident #1 reopen undoes this."
    )
    inc = await incident(core)
    assert inc.status is Status.CANCELLED
    assert inc.resolved_at is None and inc.closed_at is None  # no resolution to measure
    channel = core.chat.by_name(name)
    assert channel.archived
    assert changes(core, name)[-1] == (
        "🔄 Incident cancelled (was triggered): declared by mistake, it was a load test (alice)"
    )
    # The fake refuses posts and edits in an archived channel, as Slack does: these arrived first.
    assert "Status: cancelled" in summary_text(core, name)
    assert core.chat.texts("general")[-1].endswith(
        "Incident cancelled (was triggered): declared by mistake, it was a load test"
    )
    assert (await core.run("list")).text == "No open incidents."
    assert "#1 [sev2 · p2 · cancelled]" in (await core.run("list all")).text


async def test_after_cancel_nothing_more_is_sent_to_the_archived_channel(core: Core) -> None:
    name = await outage(core)
    await core.run("cancel false alarm", where=core.where(name))
    posted = len(core.chat.by_name(name).messages)

    assert (await core.run("#1 note looked again, still nothing")).ok
    assert len(core.chat.by_name(name).messages) == posted
    assert (await timeline(core))[-1].text == "looked again, still nothing"  # the record has it


async def test_reopen_after_cancel_returns_to_the_status_before_in_a_new_channel(
    core: Core,
) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("assign scribe @bob", where=where)).ok
    assert (await core.run("status investigating", where=where)).ok
    assert (await core.run("cancel wrong team", where=where)).ok

    reply = await core.run("#1 reopen it was real after all")
    assert reply.ok, reply.text
    assert reply.text == (
        "Reopened #1; it is investigating. Its channel was archived: a new one is being created."
    )
    inc = await incident(core)
    assert inc.status is Status.INVESTIGATING
    old = core.chat.by_name(name)
    new = core.chat.by_name(f"{name}-2")  # the archived channel keeps its name
    assert old.archived and not new.archived
    assert new.members == ["@alice", "@bob"]  # declarer and role holders
    assert new.pins == [new.messages[0].id]
    assert "Status: investigating" in new.messages[0].text
    assert changes(core, f"{name}-2") == [
        "🔄 Reopened (was cancelled), now investigating: it was real after all (alice)"
    ]
    # The incident lives on in the new channel; the old one gets nothing more.
    before = len(old.messages)
    assert (await core.run("note back on it", where=core.where(f"{name}-2"))).ok
    assert core.chat.texts(f"{name}-2", thread=True) == ["💬 alice: back on it"]
    assert len(old.messages) == before


async def test_reopen_of_a_cancelled_triggered_incident_is_triggered_again(core: Core) -> None:
    name = await outage(core)
    await core.run("cancel oops", where=core.where(name))
    assert (await core.run("#1 reopen")).ok
    assert (await incident(core)).status is Status.TRIGGERED


async def test_status_to_an_open_one_also_reopens_a_cancelled_incident(core: Core) -> None:
    name = await outage(core)
    await core.run("cancel oops", where=core.where(name))
    reply = await core.run("#1 status monitoring")
    assert reply.ok and (await incident(core)).status is Status.MONITORING
    assert core.chat.by_name(f"{name}-2").messages  # a new channel, as with reopen


async def test_cancel_before_the_channel_exists_still_archives_it(core: Core) -> None:
    reply = await core.service.handle_text(
        "declare search is slow for some customers", actor=ALICE, where=core.general
    )
    assert reply.ok
    # Cancelled before the mirror ran: the channel is opened, told, then archived, in order.
    assert (await core.service.handle_text("#1 cancel typo", actor=ALICE, where=core.general)).ok
    assert await core.mirror.drain(timeout=5)
    name = core.incident_channel(1)
    assert core.chat.by_name(name).archived
    assert "Incident cancelled" in changes(core, name)[-1]
    assert (await core.run("#1 reopen")).ok
    assert core.chat.by_name(f"{name}-2").messages


async def test_cancel_and_reopen_on_every_backend(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    """SQLite, and PostgreSQL when configured (row locks, VARCHAR statuses and actions)."""
    core = build_core(any_engine, catalog, clock)
    reply = await core.service.handle_text(
        "declare search is slow for some customers", actor=ALICE, where=core.general
    )
    assert reply.ok
    assert (await core.service.handle_text("#1 cancel typo", actor=ALICE, where=core.general)).ok
    assert await core.mirror.drain(timeout=5)
    assert (await incident(core)).status is Status.CANCELLED
    assert core.chat.by_name(core.incident_channel(1)).archived
    assert (await core.run("#1 reopen")).ok
    assert (await incident(core)).status is Status.TRIGGERED
    async with core.store.unit() as u:
        states = [link.state.value for link in await u.links((await u.incident(1)).id)]
    assert states == ["archived", "open"]


# --- who may cancel and change the type -------------------------------------------------------


async def test_someone_else_may_not_cancel_and_is_told_who_may(core: Core) -> None:
    name = await outage(core)
    posted = len(core.chat.by_name(name).messages)
    entries = len(await timeline(core))

    reply = await core.run("cancel nope", actor=BOB, where=core.where(name))

    assert not reply.ok
    assert reply.text == (
        "Only the commander and declarer (@alice) may cancel #1 "
        "(anyone may while it has no commander)."
    )
    assert (await incident(core)).status is Status.TRIGGERED
    assert len(await timeline(core)) == entries
    assert len(core.chat.by_name(name).messages) == posted
    assert not core.chat.by_name(name).archived


async def test_the_commander_and_the_declarer_may_cancel(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("assign commander @bob", where=where)).ok
    refused = await core.run("cancel no", actor=CAROL, where=where)
    assert refused.text == (
        "Only the commander (@bob) or the declarer (@alice) may cancel #1 "
        "(anyone may while it has no commander)."
    )
    assert (await core.run("cancel bob says so", actor=BOB, where=where)).ok
    assert (await core.run("#1 reopen")).ok
    assert (await core.run("#1 cancel alice declared it", actor=ALICE)).ok


async def test_anyone_may_cancel_or_retype_while_there_is_no_commander(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("unassign commander", where=where)).ok
    assert (await core.run("type performance", actor=CAROL, where=where)).ok
    assert (await core.run("cancel nobody owns it", actor=CAROL, where=where)).ok


def _catalog_with(tmp_path: Path, permissions: dict[str, Any]):  # type: ignore[no-untyped-def]
    data = default_data()
    data["permissions"] = permissions
    path = tmp_path / "opsroom.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_catalog(path)


async def test_the_catalog_narrows_who_may_cancel(
    engine: AsyncEngine, clock: FakeClock, tmp_path: Path
) -> None:
    core = build_core(engine, _catalog_with(tmp_path, {"cancel": ["commander"]}), clock)
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("assign commander @bob", where=where)).ok
    refused = await core.run("cancel mine", actor=ALICE, where=where)  # the declarer
    assert refused.text == "Only the commander (@bob) may cancel #1."
    assert (await incident(core)).status is Status.TRIGGERED
    assert (await core.run("unassign commander", where=where)).ok
    nobody = await core.run("cancel mine", actor=ALICE, where=where)
    assert nobody.text == "Only the commander (nobody now) may cancel #1."
    assert (await core.run("cancel bob cancels", actor=BOB, where=where)).ok is False
    assert (await core.run("assign commander @alice", where=where)).ok
    assert (await core.run("cancel now I command", actor=ALICE, where=where)).ok


async def test_the_catalog_widens_who_may_change_the_type(
    engine: AsyncEngine, clock: FakeClock, tmp_path: Path
) -> None:
    core = build_core(engine, _catalog_with(tmp_path, {"type": ["anyone"]}), clock)
    name = await outage(core)
    assert (await core.run("type performance", actor=CAROL, where=core.where(name))).ok
    assert (await incident(core)).type == "performance"
    refused = await core.run("cancel", actor=CAROL, where=core.where(name))
    assert not refused.ok  # cancel keeps its default


async def test_a_scribe_may_be_allowed_by_role(
    engine: AsyncEngine, clock: FakeClock, tmp_path: Path
) -> None:
    core = build_core(engine, _catalog_with(tmp_path, {"cancel": ["commander", "scribe"]}), clock)
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("cancel x", actor=BOB, where=where)).text == (
        "Only the commander (@alice) or the scribe (nobody now) may cancel #1."
    )
    assert (await core.run("assign scribe <@U42|bob>", where=where)).ok
    slack_bob = Actor(platform="console", user_id="U42", name="bob", mention="<@U42>")
    assert (await core.run("cancel scribe's call", actor=slack_bob, where=where)).ok


# --- type change ------------------------------------------------------------------------------


async def test_type_change_keeps_fields_the_new_type_lacks_as_extra(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("set affected_services api, checkout", where=where)).ok

    reply = await core.run("type performance", where=where)

    assert reply.ok, reply.text
    assert reply.text == (
        "#1 is now of type performance (kept as extra: region, customers_affected)."
    )
    inc = await incident(core)
    assert inc.type == "performance"
    assert inc.custom_fields == {
        "region": "eu",
        "customers_affected": 1200,
        "affected_services": ["api", "checkout"],
    }
    assert changes(core, name)[-1] == (
        "✏️ Type changed from outage to performance (kept as extra: region, customers_affected) "
        "(alice)"
    )
    summary = summary_text(core, name)
    assert "Type: performance" in summary
    assert "Affected services: api, checkout" in summary.splitlines()
    assert "Extra (not fields of type performance): Region: eu · Customers affected: 1200" in (
        summary.splitlines()
    )
    assert "Region: eu" not in summary.splitlines()  # not shown as a field of this type
    entry = (await timeline(core))[-1]
    assert entry.kind is EntryKind.FIELD_CHANGE
    assert entry.data == {
        "field": "type", "from": "outage", "to": "performance",
        "extra": ["region", "customers_affected"],
    }
    # The new type's fields are what `set` takes now.
    refused = await core.run("set region us", where=where)
    assert refused.text.startswith('unknown field "region" for type performance')

    # Back to outage: the kept values are its fields again.
    assert (await core.run("type outage", where=where)).text == "#1 is now of type outage."
    summary = summary_text(core, name)
    assert "Region: eu" in summary.splitlines() and "Extra" not in summary


async def test_type_change_names_required_fields_of_the_new_type(core: Core) -> None:
    await core.run("declare type=security leaked deploy token in ci logs")
    where = core.where(core.incident_channel(1))
    assert (await core.run("set attack_vector credentials", where=where)).ok
    assert (await core.run("type outage", where=where)).ok
    inc = await incident(core)
    assert inc.private  # its channel is private: the incident stays private, unannounced
    assert core.chat.by_name(core.incident_channel(1)).private
    assert core.chat.texts("general") == []
    reply = await core.run("type security", where=where)  # private already: allowed
    assert reply.ok and reply.text == "#1 is now of type security."


async def test_type_change_to_a_private_type_in_a_public_channel_is_refused(core: Core) -> None:
    name = await outage(core)
    posted = len(core.chat.by_name(name).messages)
    reply = await core.run("type security", where=core.where(name))
    assert not reply.ok
    assert reply.text == (
        "#1 cannot become security: security incidents are private and #1 has a public channel. "
        "Declare a new incident with /incident declare type=security instead."
    )
    inc = await incident(core)
    assert (inc.type, inc.private) == ("outage", False)
    assert len(core.chat.by_name(name).messages) == posted


async def test_type_change_revalidates_a_field_both_types_have(
    engine: AsyncEngine, clock: FakeClock, tmp_path: Path
) -> None:
    data = default_data()
    performance = next(t for t in data["incident_types"] if t["name"] == "performance")
    performance["fields"][0]["choices"] = ["api", "web"]  # affected_services, fewer choices
    path = tmp_path / "opsroom.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    core = build_core(engine, load_catalog(path), clock)
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("set affected_services checkout", where=where)).ok
    entries = len(await timeline(core))

    reply = await core.run("type performance", where=where)
    assert reply.text == (
        '#1 cannot become performance: unknown affected_services "checkout": use api or web'
    )
    assert (await incident(core)).type == "outage"
    assert len(await timeline(core)) == entries
    assert (await core.run("set affected_services API", where=where)).ok
    assert (await core.run("type performance", where=where)).ok
    assert (await incident(core)).custom_fields["affected_services"] == ["api"]


# --- unassign, action reopen and cancel -------------------------------------------------------


async def test_unassign_removes_the_role_and_says_so(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("assign scribe @bob", where=where)).ok
    reply = await core.run("unassign scribe", where=where)
    assert reply.ok and reply.text == "@bob is no longer scribe of #1."
    assert (await incident(core)).roles == {"commander": "@alice"}
    assert changes(core, name)[-1] == "👤 @bob is no longer scribe (alice)"
    assert "Scribe:" not in summary_text(core, name)
    entry = (await timeline(core))[-1]
    assert (entry.kind, entry.data) == (
        EntryKind.ROLE_CHANGE, {"role": "scribe", "from": "@bob", "to": None}
    )


async def test_unassigning_the_commander_leaves_the_incident_commanderless(core: Core) -> None:
    name = await outage(core)
    assert (await core.run("unassign commander", where=core.where(name))).ok
    assert (await incident(core)).commander is None
    assert core.chat.by_name(name).topic.startswith("SEV2 · triggered · No commander")


async def test_action_items_can_be_cancelled_and_reopened(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("action add page the payments team @bob", where=where)).ok
    assert (await core.run("action add write the status page note", where=where)).ok

    cancelled = await core.run("action cancel 1", where=where)
    assert cancelled.text == (
        "Action item 1 of #1 is cancelled (/incident action reopen 1 undoes this)."
    )
    assert changes(core, name)[-1] == (
        "☑️ Action item cancelled: [-] 1. page the payments team · @bob (alice)"
    )
    assert "page the payments team" not in summary_text(core, name)  # not open any more

    assert (await core.run("action done 2", where=where)).ok
    for number in (1, 2):
        reply = await core.run(f"action reopen {number}", where=where)
        assert reply.text == f"Action item {number} of #1 is open again."
    async with core.store.unit() as u:
        items = await u.action_items((await u.incident(1)).id)
    assert [(a.status, a.completed_at) for a in items] == [(ActionStatus.OPEN, None)] * 2
    assert changes(core, name)[-1] == (
        "☑️ Action item reopened (was done): [ ] 2. write the status page note (alice)"
    )
    summary = summary_text(core, name)
    assert "page the payments team" in summary and "write the status page note" in summary


# --- ack --------------------------------------------------------------------------------------


async def test_ack_of_a_commanderless_incident_makes_the_acknowledger_commander(
    core: Core,
) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("unassign commander", where=where)).ok
    reply = await core.run("ack", actor=BOB, where=where)
    assert reply.ok and reply.text == "Acknowledged #1; you are its commander now."
    inc = await incident(core)
    assert (inc.status, inc.commander) == (Status.ACKNOWLEDGED, "@bob")
    assert changes(core, name)[-2:] == [
        "🔄 Status changed from triggered to acknowledged (bob)",
        "👤 @bob is now commander (bob)",
    ]
    assert "Commander: @bob" in summary_text(core, name)
    assert "@bob" in core.chat.by_name(name).members


async def test_ack_says_who_commands(core: Core) -> None:
    name = await outage(core)
    reply = await core.run("ack", actor=BOB, where=core.where(name))
    assert reply.ok and reply.text == "Acknowledged #1; @alice is the commander."
    assert (await incident(core)).commander == "@alice"
    assert [e.kind for e in await timeline(core)].count(EntryKind.ROLE_CHANGE) == 0


async def test_ack_by_the_commander(core: Core) -> None:
    name = await outage(core)
    reply = await core.run("ack", where=core.where(name))
    assert reply.text == "Acknowledged #1; you are the commander."


# --- resolve with open action items -----------------------------------------------------------


async def test_resolve_lists_the_open_action_items(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("action add verify payment retries @bob due tomorrow", where=where)).ok
    assert (await core.run("action add email the affected customers", where=where)).ok
    assert (await core.run("action add roll back deploy 2211", where=where)).ok
    assert (await core.run("action done 3", where=where)).ok

    reply = await core.run("resolve rolled back", where=where)

    listed = [
        "Open action items:",
        "[ ] 1. verify payment retries · @bob · due Thu 26 Nov 17:00 UTC",
        "[ ] 2. email the affected customers",
    ]
    assert reply.ok
    assert reply.text.splitlines() == ["Resolved #1.", *listed]
    posted = changes(core, name)[-1]
    assert posted.splitlines() == [
        "🔄 Status changed from triggered to resolved: rolled back (alice)", *listed
    ]
    assert core.chat.texts("general")[-1].splitlines()[1:] == listed  # announced with them
    entry = (await timeline(core))[-1]
    assert entry.text.splitlines()[1:] == listed


async def test_resolve_without_open_action_items_lists_nothing(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("action add roll back", where=where)).ok
    assert (await core.run("action cancel 1", where=where)).ok
    reply = await core.run("resolve", where=where)
    assert reply.text == "Resolved #1."
    assert changes(core, name)[-1] == "🔄 Status changed from triggered to resolved (alice)"


# --- numbers for severities and priorities, non-people, counts, titles ------------------------


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [("severity 1", "severity", "sev1"), ("sev 3", "severity", "sev3"),
     ("priority 1", "priority", "p1"), ("priority 04", "priority", "p4")],
)
async def test_a_bare_number_names_the_severity_or_priority(
    core: Core, text: str, field: str, value: str
) -> None:
    name = await outage(core)
    reply = await core.run(text, where=core.where(name))
    assert reply.ok, reply.text
    assert getattr(await incident(core), field) == value


async def test_declare_takes_a_number_for_severity_and_priority(core: Core) -> None:
    reply = await core.service.declare(
        actor=ALICE, where=core.general, description="db down", title="DB down",
        type="outage", severity="1", priority="2",
    )
    assert reply.ok, reply.text
    inc = await incident(core)
    assert (inc.severity, inc.priority) == ("sev1", "p2")


async def test_the_bot_configured_by_an_adapter_is_no_person(core: Core) -> None:
    core.service.refuse_mentions("<@UBOT>")
    name = await outage(core)
    where = core.where(name)
    entries = len(await timeline(core))
    for text, message in [
        ("assign commander <@UBOT|opsroom>", 'commander must be a person, not the bot'),
        ("action add check the logs <@UBOT>", "the assignee must be a person, not the bot"),
        ("assign scribe @opsroom", 'scribe must be a person, not the bot ("@opsroom")'),
    ]:
        reply = await core.run(text, where=where)
        assert not reply.ok and reply.text.startswith(message), reply.text
    assert len(await timeline(core)) == entries
    with pytest.raises(ServiceError) as refused:
        await core.service.declare(
            actor=ALICE, where=core.general, description="x", title="X", type="security",
            severity="sev1", priority="p1", custom_fields={"security_lead": "<@!UBOT>"},
        )
    assert str(refused.value) == 'security_lead must be a person, not the bot ("<@!UBOT>")'


async def test_a_title_of_200_characters_is_the_limit(core: Core) -> None:
    name = await outage(core)
    where = core.where(name)
    assert (await core.run("title " + "t" * 200, where=where)).ok
    reply = await core.run("title " + "u" * 201, where=where)
    assert reply.text == (
        "the title is 201 characters; the limit is 200 (put the details in the summary)"
    )
    assert (await incident(core)).title == "t" * 200
    with pytest.raises(ServiceError, match=r"^the title is 300 characters; the limit is 200"):
        await core.service.declare(
            actor=ALICE, where=core.general, description="x", title="v" * 300, type="outage",
            severity="sev2", priority="p2",
        )
    async with core.store.unit() as u:
        assert len(await u.incidents(include_closed=True)) == 1


async def test_help_lists_the_new_commands(core: Core) -> None:
    text = (await core.run("help")).text
    for usage in ["/incident cancel <reason>", "/incident type <type>",
                  "/incident unassign <role>", "action reopen <n>", "action cancel <n>"]:
        assert usage in text
    assert (await core.run("help cancel")).text.startswith("Usage: /incident cancel <reason>")
