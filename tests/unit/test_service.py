"""The use cases, through IncidentService on a real SQLite store and a recording chat."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from bot.models import ActionStatus, EntryKind, Status
from tests.conftest import ALICE, BOB, Core

DECLARE = "declare checkout 500s in EU since the 14:05 deploy, card payments failing"


async def declare(core: Core, text: str = DECLARE) -> str:
    reply = await core.run(text)
    assert reply.ok, reply.text
    return core.incident_channel(reply.incident)


async def incident(core: Core, number: int = 1):  # type: ignore[no-untyped-def]
    async with core.store.unit() as u:
        return await u.incident(number)


async def timeline(core: Core, number: int = 1, **kw: bool):  # type: ignore[no-untyped-def]
    async with core.store.unit() as u:
        inc = await u.incident(number)
        return await u.timeline(inc.id, **kw)


async def test_declare_creates_incident_channel_summary_and_thread(core: Core) -> None:
    reply = await core.run(DECLARE)

    assert reply.ok and reply.incident == 1
    assert "Declared incident #1" in reply.text
    inc = await incident(core)
    assert inc.title == "Checkout 500s in EU since the 14:05 deploy"
    assert (inc.type, inc.severity, inc.status) == ("outage", "sev2", Status.TRIGGERED)
    assert inc.roles == {"commander": "@alice"}
    assert inc.custom_fields["region"] == "eu"

    channel = core.chat.by_name("inc-1-checkout-500s-in-eu-since-the-14-05")
    assert channel.members == ["@alice"]
    summary = channel.messages[0]
    assert channel.pins == [summary.id]
    assert summary.text.startswith("📋 #1 Checkout 500s")
    assert "Commander: @alice" in summary.text
    assert len(channel.threads) == 1
    assert channel.topic.startswith("SEV2 · triggered · Commander @alice · next update due")
    # the declaration is in the channel and announced in #general
    assert any("Incident declared" in t for t in core.chat.texts(channel.name))
    assert any("Incident declared" in t for t in core.chat.texts("general"))


async def test_two_incidents_with_the_same_title_get_distinct_channels(core: Core) -> None:
    await core.run("declare payments down")
    core.chat.by_name("inc-1-payments-down").name = "inc-2-payments-down"  # a squatter
    await core.run("declare payments down")
    names = sorted(c.name for c in core.chat.channels.values())
    assert "inc-2-payments-down-2" in names


async def test_every_change_posts_once_and_refreshes_the_pinned_summary(core: Core) -> None:
    name = await declare(core)
    where = core.where(name)
    for text in [
        "severity sev1",
        "priority p1",
        "assign scribe @bob",
        "title Checkout down in EU",
        "summary Card payments fail for EU customers",
        "set customers_affected 1200",
        "status investigating",
        "event rolled back deploy 2211",
    ]:
        reply = await core.run(text, where=where)
        assert reply.ok, (text, reply.text)

    inc = await incident(core)
    assert (inc.severity, inc.priority, inc.status) == ("sev1", "p1", Status.INVESTIGATING)
    assert inc.roles == {"commander": "@alice", "scribe": "@bob"}
    assert inc.custom_fields["customers_affected"] == 1200
    assert inc.acknowledged_at is not None

    posted = core.chat.texts(name)
    changes = [t for t in posted if not t.startswith(("📋", "🧵"))]
    assert changes == [
        "ℹ️ Incident declared: Checkout 500s in EU since the 14:05 deploy (outage, SEV2, P2), "
        "commander @alice (alice)",
        "✏️ Severity changed from SEV2 to SEV1 (alice)",
        "✏️ Priority changed from P2 to P1 (alice)",
        "👤 @bob is now scribe (alice)",
        "✏️ Title set to: Checkout down in EU (alice)",
        "✏️ Summary set to: Card payments fail for EU customers (alice)",
        "✏️ Customers affected set to 1200 (alice)",
        "🔄 Status changed from triggered to investigating (alice)",
        "📌 Key event by alice:\n> rolled back deploy 2211",
    ]
    channel = core.chat.by_name(name)
    summary = channel.messages[0]
    assert channel.pins == [summary.id]  # edited in place, never re-posted
    assert summary.text.startswith("📋 #1 Checkout down in EU")
    assert "Scribe: @bob" in summary.text and "Severity: SEV1" in summary.text
    assert "rolled back deploy 2211" in summary.text
    assert "@bob" in channel.members  # assigning a role invites the person
    assert channel.topic.startswith("SEV1 · investigating")


async def test_severity_change_and_status_update_are_announced(core: Core) -> None:
    where = core.where(await declare(core))
    await core.run("severity sev1", where=where)
    reply = await core.run("update Rolled back; error rate falling", where=where)
    assert reply.ok
    announced = core.chat.texts("general")
    assert len(announced) == 3
    assert announced[1].endswith("Severity changed from SEV2 to SEV1")
    assert announced[2].endswith("Rolled back; error rate falling")
    assert (await incident(core)).last_update_at == core.clock.now()


async def test_notes_go_to_the_timeline_thread(core: Core) -> None:
    name = await declare(core)
    await core.run("note restarted the payment pods", where=core.where(name))
    assert core.chat.texts(name, thread=True) == ["💬 alice: restarted the payment pods"]


async def test_thread_reply_is_recorded_once_and_not_echoed(core: Core) -> None:
    name = await declare(core)
    where = core.where(name, thread=True)
    at = core.clock.now() - timedelta(minutes=3)
    first = await core.service.record_thread_message(
        where=where, actor=BOB, text="db failover started", message_id="m1", occurred_at=at
    )
    again = await core.service.record_thread_message(
        where=where, actor=BOB, text="db failover started", message_id="m1", occurred_at=at
    )
    assert await core.mirror.drain()

    assert first is not None and again is None
    entries = [e for e in await timeline(core) if e.kind is EntryKind.MESSAGE]
    assert [(e.text, e.author_name, e.occurred_at) for e in entries] == [
        ("db failover started", "bob", at)
    ]
    # it is already in that thread: the bot does not post it a second time
    assert core.chat.texts(name, thread=True) == []


async def test_thread_edits_and_deletes_follow(core: Core) -> None:
    name = await declare(core)
    where = core.where(name, thread=True)
    await core.service.record_thread_message(
        where=where, actor=BOB, text="cache flushd", message_id="m1", occurred_at=core.clock.now()
    )
    await core.service.edit_thread_message(where=where, message_id="m1", text="cache flushed")
    assert [e.text for e in await timeline(core) if e.kind is EntryKind.MESSAGE] == [
        "cache flushed"
    ]
    await core.service.delete_thread_message(where=where, message_id="m1")
    assert [e for e in await timeline(core) if e.kind is EntryKind.MESSAGE] == []
    deleted = [e for e in await timeline(core, include_deleted=True) if e.deleted]
    assert [e.text for e in deleted] == ["cache flushed"]


async def test_messages_outside_the_timeline_thread_are_not_recorded(core: Core) -> None:
    name = await declare(core)
    entry = await core.service.record_thread_message(
        where=core.where(name),
        actor=BOB,
        text="just chatting",
        message_id="m9",
        occurred_at=core.clock.now(),
    )
    assert entry is None
    assert all(e.kind is not EntryKind.MESSAGE for e in await timeline(core))


async def test_key_event_reaction_is_idempotent_and_removable(core: Core) -> None:
    name = await declare(core)
    where = core.where(name)
    said_at = core.clock.now() - timedelta(minutes=10)
    args = dict(
        where=where,
        emoji="pushpin",
        message_id="42",
        text="error rate back under 1%",
        author="bob",
        occurred_at=said_at,
    )

    assert await core.service.reaction_added(actor=ALICE, **args) is not None
    assert await core.service.reaction_added(actor=ALICE, **args) is None  # retried event
    assert await core.service.reaction_added(actor=BOB, **args) is None  # counted, not re-added
    assert (
        await core.service.reaction_added(actor=ALICE, **{**args, "emoji": "thumbsup"}) is None
    )  # not the key-event emoji
    assert await core.mirror.drain()

    keys = await timeline(core, key_only=True)
    assert [(e.text, e.author_name, e.occurred_at) for e in keys] == [
        ("error rate back under 1%", "bob", said_at)
    ]
    assert core.chat.texts(name, thread=True) == [
        "📌 Key event by bob (marked by alice):\n> error rate back under 1%"
    ]

    await core.service.reaction_removed(where=where, actor=ALICE, emoji="pushpin", message_id="42")
    assert len(await timeline(core, key_only=True)) == 1  # bob's pin still holds it
    await core.service.reaction_removed(where=where, actor=BOB, emoji="pushpin", message_id="42")
    assert await core.mirror.drain()
    assert await timeline(core, key_only=True) == []
    assert core.chat.texts(name, thread=True)[-1].startswith("ℹ️ Key event removed")
    assert "error rate back under 1%" not in core.chat.by_name(name).messages[0].text


async def test_reaction_outside_incident_channels_does_nothing(core: Core) -> None:
    await declare(core)
    reply = await core.service.reaction_added(
        where=core.general,
        actor=ALICE,
        emoji="pushpin",
        message_id="1",
        text="hi",
        author="bob",
        occurred_at=core.clock.now(),
    )
    assert reply is None
    assert await timeline(core, key_only=True) == []


async def test_long_key_events_are_cut_at_2000_characters(core: Core) -> None:
    name = await declare(core)
    await core.run("event " + "x" * 2500, where=core.where(name))
    posted = core.chat.texts(name)[-1]
    quoted = posted.split("> ", 1)[1]
    assert len(quoted) == 2000 and quoted.endswith("…")
    assert len((await timeline(core, key_only=True))[0].text) == 2500  # the record keeps it all


async def test_action_items_add_list_done_edit(core: Core) -> None:
    where = core.where(await declare(core))
    assert (await core.run("action add verify payment retries @bob due tomorrow", where=where)).ok
    assert (await core.run("action add write customer email due in 3h", where=where)).ok
    assert (await core.run("action edit 2 @carol due friday", where=where)).ok
    assert (await core.run("action done 1", where=where)).ok

    async with core.store.unit() as u:
        items = await u.action_items((await u.incident(1)).id)
    now = core.clock.now()  # Wednesday 14:00 UTC
    assert [(a.number, a.text, a.assignee, a.status) for a in items] == [
        (1, "verify payment retries", "@bob", ActionStatus.DONE),
        (2, "write customer email", "@carol", ActionStatus.OPEN),
    ]
    assert items[0].due_at == datetime(2026, 11, 26, 17, 0, tzinfo=UTC)
    assert items[1].due_at == datetime(2026, 11, 27, 17, 0, tzinfo=UTC)
    assert items[0].completed_at == now

    listing = await core.run("action list", where=where)
    assert listing.text.splitlines() == [
        "Action items of #1:",
        "[x] 1. verify payment retries · @bob · due Thu 26 Nov 17:00 UTC",
        "[ ] 2. write customer email · @carol · due Fri 27 Nov 17:00 UTC",
    ]
    summary = core.chat.by_name(core.incident_channel(1)).messages[0].text
    assert "2. write customer email" in summary and "verify payment retries" not in summary


async def test_ack_resolve_reopen_lifecycle(core: Core) -> None:
    where = core.where(await declare(core))
    core.clock.advance(minutes=5)
    assert (await core.run("ack", where=where, actor=BOB)).ok
    inc = await incident(core)
    assert inc.status is Status.ACKNOWLEDGED
    assert inc.acknowledged_at == core.clock.now()

    core.clock.advance(minutes=30)
    reply = await core.run("resolve error rate back to normal", where=where)
    assert reply.ok
    inc = await incident(core)
    assert inc.status is Status.RESOLVED and inc.resolved_at == core.clock.now()
    assert inc.mitigated_at == core.clock.now()
    assert (await core.run("list", where=where)).text == "No open incidents."
    assert "#1 [sev2 · p2 · resolved]" in (await core.run("list all")).text
    assert core.chat.texts("general")[-1].endswith(
        "Status changed from acknowledged to resolved: error rate back to normal"
    )

    assert (await core.run("reopen it came back", where=where)).ok
    inc = await incident(core)
    assert inc.status is Status.INVESTIGATING and inc.resolved_at is None
    summary = core.chat.by_name(core.incident_channel(1)).messages[0]
    assert "Status: investigating" in summary.text
    assert [b.label for b in summary.message.buttons] == ["Add key event", "Resolve"]


async def test_required_fields_block_resolve_until_set(core: Core) -> None:
    reply = await core.run("declare type=security leaked api token found on a public repo")
    assert "Required before resolve: attack_vector" in reply.text
    where = core.where(core.incident_channel(1))
    blocked = await core.run("resolve", where=where)
    assert not blocked.ok
    assert blocked.text.startswith("#1 cannot be resolved yet: set attack_vector first")
    closing = await core.run("status closed", where=where)
    assert not closing.ok and closing.text.startswith("#1 cannot be closed yet: set attack_vector")
    assert (await core.run("set attack_vector credentials", where=where)).ok
    assert (await core.run("resolve", where=where)).ok


async def test_private_incidents_get_private_channels_and_no_announcement(core: Core) -> None:
    await core.run("declare type=security credential leak in ci logs")
    channel = core.chat.by_name(core.incident_channel(1))
    assert channel.private
    assert core.chat.texts("general") == []


async def test_commands_name_an_incident_from_anywhere(core: Core) -> None:
    await declare(core)
    await core.run("declare search is slow for some customers")
    reply = await core.run("#1 severity sev1")
    assert reply.ok and reply.text == "#1 severity is now SEV1."
    assert (await incident(core, 1)).severity == "sev1"
    assert (await incident(core, 2)).severity != "sev1"
    shown = await core.run("show 2")
    assert shown.text.startswith("📋 #2 Search is slow for some customers")


async def test_timeline_lists_entries_in_time_order(core: Core) -> None:
    where = core.where(await declare(core))
    await core.run("note checking dashboards", where=where)
    core.clock.advance(minutes=2)
    await core.run("event failover done", where=where)
    reply = await core.run("timeline", where=where)
    assert reply.text.splitlines()[1:] == [
        "e1 14:00 UTC ℹ️ alice: Incident declared: Checkout 500s in EU since the 14:05 deploy "
        "(outage, SEV2, P2), commander @alice",
        "e2 14:00 UTC 💬 alice: checking dashboards",
        "e3 14:02 UTC 📌 alice: failover done",
    ]
    key = await core.run("timeline key", where=where)
    assert key.text.splitlines()[1:] == ["e3 14:02 UTC 📌 alice: failover done"]
