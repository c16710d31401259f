"""📌 on the bot's own posts: the pinned summary and the timeline thread's root are not key
events; a post that shows a timeline entry records that entry, referenced, not its rendering."""

from __future__ import annotations

from datetime import timedelta

from bot.models import EntryKind, TimelineEntry
from bot.ports import Actor, ChannelRef
from tests.conftest import ALICE, BOB, Core
from tests.fakes.chat import Posted

CAROL = Actor(platform="console", user_id="carol", name="carol", mention="@carol")


async def incident(core: Core) -> ChannelRef:
    reply = await core.run("declare checkout 500s in EU since the 14:05 deploy")
    assert reply.ok
    return core.where(core.incident_channel(1))


async def timeline(core: Core, include_deleted: bool = False) -> list[TimelineEntry]:
    async with core.store.unit() as u:
        found = await u.incident(1)
        assert found is not None and found.id is not None
        return await u.timeline(found.id, include_deleted=include_deleted)


def posted(core: Core, where: ChannelRef, starts: str) -> Posted:
    """The bot's post in the incident channel (or its thread) whose text starts with `starts`."""
    return next(m for m in core.chat.channels[where.channel_id].messages
                if m.text.startswith(starts))


async def pin(core: Core, where: ChannelRef, message: Posted, actor: Actor = ALICE):  # type: ignore[no-untyped-def]
    reply = await core.service.reaction_added(
        where=where, actor=actor, emoji="pushpin", message_id=message.id, text=message.text,
        author="opsroom", occurred_at=core.clock.now())
    assert await core.mirror.drain(timeout=5)
    return reply


async def unpin(core: Core, where: ChannelRef, message: Posted, actor: Actor = ALICE):  # type: ignore[no-untyped-def]
    reply = await core.service.reaction_removed(
        where=where, actor=actor, emoji="pushpin", message_id=message.id)
    assert await core.mirror.drain(timeout=5)
    return reply


async def test_a_pin_on_the_pinned_summary_is_refused_and_records_nothing(core: Core) -> None:
    where = await incident(core)
    channel = core.chat.channels[where.channel_id]
    summary = next(m for m in channel.messages if m.id == channel.pins[0])
    assert summary.text.startswith("📋 #1")
    before = await timeline(core, include_deleted=True)
    posts = len(channel.messages)

    reply = await pin(core, where, summary)
    assert reply is not None and reply.ok is False
    assert reply.text.startswith("The pinned summary is not a key event")
    assert "/incident event" in reply.text
    # Un-pinning it afterwards changes nothing either.
    assert await unpin(core, where, summary) is None
    assert await timeline(core, include_deleted=True) == before
    assert len(channel.messages) == posts


async def test_a_pin_on_the_timeline_root_is_refused_and_records_nothing(core: Core) -> None:
    where = await incident(core)
    root = posted(core, where, "🧵 Timeline")
    before = await timeline(core, include_deleted=True)
    reply = await pin(core, where, root)
    assert reply is not None and reply.ok is False
    assert reply.text.startswith("The timeline thread's first message is not a key event")
    assert await unpin(core, where, root) is None
    assert await timeline(core, include_deleted=True) == before
    # The "Add to timeline" menu on it says the same.
    menu = await core.service.key_event_from_message(
        where=where, actor=BOB, message_id=root.id, text=root.text, author="opsroom",
        occurred_at=core.clock.now())
    assert menu is not None and not menu.ok and "first message" in menu.text


async def test_a_pin_on_a_status_update_post_records_that_entry(core: Core) -> None:
    where = await incident(core)
    await core.run("update Rolled back deploy 2211; card payments recovering", where=where)
    core.clock.advance(minutes=5)
    update = posted(core, where, "📣 Status update")
    [entry] = [e for e in await timeline(core) if e.kind is EntryKind.STATUS_UPDATE]

    reply = await pin(core, where, update, actor=BOB)
    assert reply is not None and reply.ok
    assert reply.text == f"Key event added to #1 (it records e{entry.id})."
    key = (await timeline(core))[-1]
    assert key.kind is EntryKind.KEY_EVENT
    # The entry's own text, not the post's rendering ("📣 Status update on #1 ... by alice:").
    assert key.text == "Rolled back deploy 2211; card payments recovering"
    assert key.data["ref_entry"] == entry.id
    assert key.author_name == "alice" and key.data["marked_by"] == "bob"
    assert key.occurred_at == entry.occurred_at  # when it happened, not when it was pinned
    thread = core.chat.texts(core.incident_channel(1), thread=True)
    assert thread[-1] == ("📌 Key event by alice (marked by bob):\n"
                          "> Rolled back deploy 2211; card payments recovering")

    # A second person's pin adds nothing; removing both pins removes the key event once.
    assert await pin(core, where, update, actor=CAROL) is None
    assert await unpin(core, where, update, actor=BOB) is None
    removed = await unpin(core, where, update, actor=CAROL)
    assert removed is not None and removed.ok
    entries = await timeline(core)
    assert [e.kind for e in entries].count(EntryKind.KEY_EVENT) == 0
    assert entries[-1].text == (
        "Key event removed: Rolled back deploy 2211; card payments recovering")
    # Pinned again: restored, with the entry's text.
    again = await pin(core, where, update, actor=BOB)
    assert again is not None and again.ok
    assert (await timeline(core))[-1].text == (
        "Key event restored: Rolled back deploy 2211; card payments recovering")


async def test_a_pin_on_a_severity_change_and_a_mirrored_note(core: Core) -> None:
    where = await incident(core)
    await core.run("severity sev1", where=where)
    await core.run("note checking the payment gateway dashboards")
    await core.run("#1 note checking the payment gateway dashboards")
    change = posted(core, where, "✏️ Severity changed")
    note = posted(core, where, "💬 alice: checking the payment gateway")
    assert (await pin(core, where, change)).ok  # type: ignore[union-attr]
    assert (await pin(core, where, note)).ok  # type: ignore[union-attr]
    keys = [e for e in await timeline(core) if e.kind is EntryKind.KEY_EVENT]
    assert [k.text for k in keys] == [
        "Severity changed from SEV2 to SEV1", "checking the payment gateway dashboards"]
    assert all(k.data.get("ref_entry") for k in keys)


async def test_a_pin_on_a_posted_key_event_adds_no_second_one(core: Core) -> None:
    where = await incident(core)
    await core.run("event failover to the secondary database done", where=where)
    shown = posted(core, where, "📌 Key event by alice")
    [key] = [e for e in await timeline(core) if e.kind is EntryKind.KEY_EVENT]
    reply = await pin(core, where, shown)
    assert reply is not None and not reply.ok
    assert reply.text == f"That post is key event e{key.id} of #1 already; nothing added."
    assert [e.kind for e in await timeline(core)].count(EntryKind.KEY_EVENT) == 1


async def test_a_pin_on_a_persons_message_still_quotes_it(core: Core) -> None:
    where = await incident(core)
    message_id = "M-someone-else-9"  # not one of the bot's posts
    core.clock.advance(minutes=1)
    reply = await core.service.reaction_added(
        where=where, actor=ALICE, emoji="pushpin", message_id=message_id,
        text="error rate back under 1%", author="bob",
        occurred_at=core.clock.now() - timedelta(seconds=30))
    assert reply is not None and reply.ok and reply.text == "Key event added to #1."
    key = (await timeline(core))[-1]
    assert (key.text, key.author_name) == ("error rate back under 1%", "bob")
    assert "ref_entry" not in key.data
