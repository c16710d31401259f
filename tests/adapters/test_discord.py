"""Discord end to end: a real discord.py client (Opsroom's edge) against the fake Discord."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from adapters.discord.app import intents
from adapters.discord.chat import DiscordChat
from adapters.discord.commands import DISCORD_PATHS
from adapters.discord.embeds import render
from adapters.http import Readiness
from bot import commands as c
from bot.catalog import Catalog
from bot.models import ActionItem, Incident, TimelineEntry
from bot.ports import ChannelNameTaken, RetryLater, Suggestion
from bot.render import Button, Field, Message
from bot.suggest import HeuristicSuggester
from tests.adapters.discord_harness import (
    EPHEMERAL,
    DiscordRig,
    build_core,
    button_id,
    buttons,
    discord_rig,
    running_edge,
    text_of,
)
from tests.conftest import close_engine, open_engine
from tests.fakes.discord import FakeDiscord

DESCRIPTION = "checkout 500s in EU since the 14:05 deploy, card payments failing"
COMMANDS = "/applications/{application_id}/guilds/{guild_id}/commands"


@pytest.fixture
async def rig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[DiscordRig]:
    async with discord_rig(tmp_path, catalog) as r:
        yield r


async def count(rig: DiscordRig, model: Any) -> int:
    async with rig.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def entries(rig: DiscordRig, *, deleted: bool = False) -> list[tuple[str, str]]:
    async with rig.store.engine.connect() as conn:
        query = select(TimelineEntry.kind, TimelineEntry.text).order_by(TimelineEntry.id)
        if not deleted:
            query = query.where(TimelineEntry.deleted == False)  # noqa: E712
        rows = await conn.execute(query)
        return [(k.value if hasattr(k, "value") else k, t) for k, t in rows.all()]


async def declare(rig: DiscordRig, description: str = DESCRIPTION, **options: Any) -> JSONish:
    """Quick Start with the suggested fields as they are: /incident declare, then Create."""
    review = await rig.run("declare", description=description, **options)
    await rig.click(review, "Create")
    return review


JSONish = dict[str, Any]


def summary_of(rig: DiscordRig, channel_id: str) -> JSONish:
    [pinned] = rig.fake.pins(channel_id)
    return pinned


def fields_of(message: JSONish) -> dict[str, str]:
    return {f["name"]: f["value"] for f in message["embeds"][0].get("fields", [])}


# --- start-up ------------------------------------------------------------------------------


async def test_commands_are_synced_to_the_guild_and_health_waits_for_them(
    rig: DiscordRig, catalog: Catalog
) -> None:
    assert [c.status for c in rig.fake.calls_to("GET", "/gateway/bot")] == [200]
    assert rig.fake.gateway_connections[0]["path"] == "/gateway"
    identify = next(p["d"] for p in rig.fake.received if p["op"] == 2)
    assert identify["intents"] == intents().value == 1 | (1 << 9) | (1 << 10) | (1 << 15)
    assert rig.readiness.ok and rig.readiness.ready == {"discord"}

    [put] = rig.fake.calls_to("PUT", COMMANDS)
    body = {command["name"]: command for command in put.json}
    assert set(body) == {"incident", "oncall", "Add to timeline"}
    assert body["Add to timeline"]["type"] == 3
    incident = body["incident"]

    def node(*path: str) -> JSONish:
        found: JSONish = incident
        for name in path:
            found = next(o for o in found["options"] if o["name"] == name)
        return found

    for word in c.USAGE:  # the whole grammar is there, at its place in the tree
        assert node(*DISCORD_PATHS[word])["type"] in (1, 2), word
    assert {o["name"] for o in node("action")["options"]} >= {"add", "list", "done", "edit"}

    assert [ch["value"] for ch in node("set", "severity", "severity")["choices"]] == \
        catalog.severity_names
    assert [ch["value"] for ch in node("set", "priority", "priority")["choices"]] == \
        catalog.priority_names
    assert [ch["value"] for ch in node("set", "status", "status")["choices"]] == \
        catalog.status_names
    assert node("role", "assign", "person")["type"] == 6  # a member picker
    assert node("declare", "type")["autocomplete"] is True
    assert node("set", "field", "field")["autocomplete"] is True
    assert node("note", "incident")["autocomplete"] is True
    assert node("note", "incident")["type"] == 4 and not node("note", "incident").get(
        "required")


async def test_without_a_guild_commands_are_synced_globally(tmp_path: Path,
                                                            catalog: Catalog) -> None:
    async with discord_rig(tmp_path, catalog, guild=False) as rig:
        assert rig.fake.calls_to("PUT", COMMANDS) == []
        [put] = rig.fake.calls_to("PUT", "/applications/{application_id}/commands")
        assert put.status == 200 and {c["name"] for c in put.json} == {"incident", "oncall",
                                                                       "Add to timeline"}
        assert rig.readiness.ok


# --- Quick Start and the incident channel --------------------------------------------------


async def test_declare_review_edit_create_opens_the_channel(rig: DiscordRig) -> None:
    await rig.fake.create_channel("incidents")
    invoked = await rig.command("declare", description=DESCRIPTION)
    await rig.settle()
    first = rig.fake.interaction_response(invoked["id"])
    assert first is not None and first["type"] == 4  # answered at once, within the 3 seconds
    review = rig.answer(invoked)
    assert review["flags"] & EPHEMERAL
    assert review["embeds"][0]["title"] == "Declare: Checkout 500s in EU since the 14:05 deploy"
    assert fields_of(review)["Type"] == "outage"
    assert fields_of(review)["Severity"] == "SEV2"
    assert fields_of(review)["Region"] == "eu"
    assert [c.split(":")[2] for c in buttons(review)] == ["create", "edit", "cancel"]

    edit = await rig.click(review, "Edit")
    modal = rig.fake.interaction_response(edit["id"])
    assert modal is not None and modal["type"] == 9
    shown = json.dumps(modal["data"]["components"])
    assert "Checkout 500s in EU since the 14:05 deploy" in shown and DESCRIPTION in shown
    severity = next(c["component"] for c in modal["data"]["components"]
                    if c.get("label") == "Severity")
    assert [o["value"] for o in severity["options"] if o.get("default")] == ["sev2"]
    submitted = await rig.fake.submit_modal(modal["data"]["custom_id"], {
        "title": "EU checkout failing", "severity": "sev1"})
    await rig.settle()
    assert rig.fake.interaction_response(submitted["id"])["type"] == 7  # the review, edited
    review = rig.fake._find_message(review["id"])
    assert review["embeds"][0]["title"] == "Declare: EU checkout failing"
    assert fields_of(review)["Severity"] == "SEV1"

    await rig.click(review, "Create")
    review = rig.fake._find_message(review["id"])
    assert review["content"].startswith("Declared incident #1: EU checkout failing (outage · "
                                        "sev1 · ")
    assert review["components"] == [] and review["embeds"] == []

    channel = rig.incident_channel(1)
    assert channel["name"] == "inc-1-eu-checkout-failing"
    assert channel["parent_id"] == rig.fake.category_id  # the catalog's category, "Incidents"
    assert channel["topic"].startswith("SEV1 · triggered · Commander <@")
    summary = summary_of(rig, channel["id"])
    assert summary["embeds"][0]["title"] == "#1 EU checkout failing"
    assert fields_of(summary)["Status"] == "triggered"
    assert buttons(summary) == ["opsroom:ack:1", "opsroom:key_event:1", "opsroom:resolve:1"]
    texts = rig.bot_texts(channel["id"])
    assert texts[1].startswith("🧵 Timeline")
    assert texts[2].startswith("ℹ️ Incident declared: EU checkout failing (outage, SEV1")
    thread = rig.timeline_thread(channel["id"])
    timeline_head = rig.fake.messages(channel["id"])[1]
    assert thread["id"] == timeline_head["id"] and thread["name"] == "Timeline"
    assert rig.fake.users[0]["id"] in rig.fake.thread_members(thread["id"])
    announced = rig.bot_texts(rig.fake.channel_by_name("incidents")["id"])
    assert len(announced) == 1 and "#inc-1-eu-checkout-failing" in announced[0]
    assert await count(rig, Incident) == 1


async def test_cancel_declares_nothing(rig: DiscordRig) -> None:
    review = await rig.run("declare", description="login page is slow")
    await rig.click(review, "Cancel")
    assert rig.fake._find_message(review["id"])["content"] == "Cancelled: nothing was declared."
    assert await count(rig, Incident) == 0


async def test_a_private_incident_admits_only_the_bot_and_its_responders(
    rig: DiscordRig,
) -> None:
    await declare(rig, "someone is brute forcing admin logins", type="security")
    await rig.settle()
    channel = rig.incident_channel(1)
    overwrites = {o["id"]: o for o in channel["permission_overwrites"]}
    assert set(overwrites) == {rig.fake.guild_id, rig.fake.bot_user["id"],
                               rig.fake.users[0]["id"]}
    view = 1 << 10
    assert int(overwrites[rig.fake.guild_id]["deny"]) & view
    assert int(overwrites[rig.fake.bot_user["id"]]["allow"]) & view
    assert int(overwrites[rig.fake.users[0]["id"]]["allow"]) & view
    await rig.run("role", "assign", role="scribe", person="bob", channel_id=channel["id"])
    overwrites = {o["id"]: o for o in rig.fake.channel(channel["id"])["permission_overwrites"]}
    assert int(overwrites[rig.fake.users[1]["id"]]["allow"]) & view


async def test_a_slow_answer_is_deferred_then_completed(tmp_path: Path, catalog: Catalog) -> None:
    class SlowSuggester(HeuristicSuggester):
        async def suggest(self, *, description: str, type_hint: str | None,
                          catalog: Catalog) -> Suggestion:
            await asyncio.sleep(0.3)
            return await super().suggest(description=description, type_hint=type_hint,
                                         catalog=catalog)

    async with discord_rig(tmp_path, catalog, answer_within=0.05,
                           suggester=SlowSuggester()) as rig:
        invoked = await rig.command("declare", description=DESCRIPTION)
        await rig.settle()
        first = rig.fake.interaction_response(invoked["id"])
        assert first is not None and first["type"] == 5 and first["data"]["flags"] & EPHEMERAL
        [review] = rig.fake.replies(invoked["id"])
        assert review["embeds"][0]["title"].startswith("Declare: Checkout 500s")
        assert not review["flags"] & (1 << 7)  # no longer "thinking"
        await rig.click(review, "Create")
        assert await count(rig, Incident) == 1


# --- running an incident -------------------------------------------------------------------


async def test_thread_messages_are_recorded_once_and_follow_edits_and_deletes(
    rig: DiscordRig,
) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    thread = rig.timeline_thread(channel)["id"]
    said = await rig.fake.post_message(thread, "db failover started", author="bob")
    await rig.fake.dispatch("MESSAGE_CREATE", rig.fake.dispatched("MESSAGE_CREATE")[-1]["d"])
    await rig.fake.post_message(channel, "not in the thread", author="bob")
    await rig.settle()
    assert (await entries(rig))[1:] == [("message", "db failover started")]
    assert "db failover started" not in " ".join(rig.bot_texts(thread))  # not echoed back
    summary_edits = rig.fake.calls_to("PATCH", f"/channels/{channel}/messages/"
                                      f"{summary_of(rig, channel)['id']}")
    assert summary_edits  # the summary is refreshed in place

    await rig.fake.edit_message(thread, said["id"], "db failover finished")
    await rig.settle()
    assert (await entries(rig))[1:] == [("message", "db failover finished")]
    await rig.fake.delete_message(thread, said["id"])
    await rig.fake.dispatch("MESSAGE_DELETE", rig.fake.dispatched("MESSAGE_DELETE")[-1]["d"])
    await rig.settle()
    assert [k for k, _ in await entries(rig)] == ["system"]
    assert await count(rig, TimelineEntry) == 2


async def test_a_pushpin_reaction_is_one_key_event_even_twice_and_removal_removes_it(
    rig: DiscordRig,
) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    thread = rig.timeline_thread(channel)["id"]
    said = await rig.fake.post_message(channel, "error rate back under 1%", author="bob")
    await rig.fake.react(channel, said["id"], "📌", user="alice")
    await rig.fake.dispatch("MESSAGE_REACTION_ADD",
                            rig.fake.dispatched("MESSAGE_REACTION_ADD")[-1]["d"])
    lunch = await rig.fake.post_message(channel, "lunch?", author="bob")
    await rig.fake.react(channel, lunch["id"], "🎉", user="alice")  # not the key-event emoji
    await rig.settle()

    assert (await entries(rig))[1:] == [("key_event", "error rate back under 1%")]
    async with rig.store.unit() as u:
        [key] = await u.timeline(1, key_only=True)
    assert key.occurred_at.isoformat().startswith(said["timestamp"][:19])  # the message's time
    assert (key.author_name, key.source) == ("Bob", "discord")
    [posted] = rig.bot_texts(thread)
    assert posted.startswith("📌 Key event by Bob") and "Alice" in posted
    assert posted.endswith("\n> error rate back under 1%")
    assert "error rate back under 1%" in json.dumps(summary_of(rig, channel)["embeds"])

    await rig.fake.unreact(channel, said["id"], "📌", user="alice")
    await rig.settle()
    assert [k for k, _ in await entries(rig)] == ["system", "system"]
    assert (await entries(rig))[-1][1] == "Key event removed: error rate back under 1%"
    assert "error rate back under 1%" not in json.dumps(summary_of(rig, channel)["embeds"])


async def test_add_to_timeline_context_menu_records_the_message(rig: DiscordRig) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    said = await rig.fake.post_message(channel, "refunds failing too", author="bob")
    menu = next(c for c in rig.fake.commands(rig.fake.guild_id)
                if c["name"] == "Add to timeline")
    payload = rig.fake.slash_command_payload("Add to timeline", channel_id=channel)
    payload["data"] = {"id": menu["id"], "name": menu["name"], "type": 3,
                       "guild_id": rig.fake.guild_id, "target_id": said["id"],
                       "resolved": {"messages": {said["id"]: said}}}
    await rig.fake.dispatch("INTERACTION_CREATE", payload)
    await rig.settle()
    assert rig.answer(payload)["content"] == "Key event added to #1."
    assert (await entries(rig))[-1] == ("key_event", "refunds failing too")


async def test_running_an_incident_from_discord(rig: DiscordRig) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    summary_id = summary_of(rig, channel)["id"]

    await rig.click(summary_of(rig, channel), "Acknowledge")
    added = await rig.run("action", "add", text="verify payment retries", assignee="bob",
                          due="tomorrow", channel_id=channel)
    assert added["content"] == "Action item 1 added to #1." and added["flags"] & EPHEMERAL
    posted = next(m for m in rig.fake.messages(channel) if "Action item added" in text_of(m))
    assert text_of(posted).startswith("☑️ Action item added: [ ] 1. verify payment retries · "
                                      f"<@{rig.fake.users[1]['id']}> · due ")
    assert button_id(posted, "Done") == "opsroom:action_done:1:1"
    done = await rig.click(posted, "Done", user="bob")
    assert rig.answer(done)["content"] == "Action item 1 of #1 is done."

    key = await rig.click(summary_of(rig, channel), "Add key event")
    modal = rig.fake.interaction_response(key["id"])
    assert modal["type"] == 9
    await rig.fake.submit_modal(modal["data"]["custom_id"], {"text": "rolled back 14:32"})
    await rig.run("update", text="Rolled back; error rate falling", channel_id=channel)
    resolved = await rig.run("resolve", text="error rate normal for 15 minutes",
                             channel_id=channel)
    assert resolved["content"] == "Resolved #1."

    assert [k for k, _ in await entries(rig)] == [
        "system", "status_change", "action_item", "action_item", "key_event", "status_update",
        "status_change"]
    async with rig.store.unit() as u:
        incident = await u.incident(1)
        [item] = await u.action_items(1)
    assert incident is not None and incident.status.value == "resolved"
    assert item.status.value == "done"
    texts = rig.bot_texts(channel)
    assert texts[-1] == "🔄 Status changed from acknowledged to resolved: error rate normal " \
                        "for 15 minutes (Alice)"
    assert len(texts) == len(set(texts))  # nothing posted twice
    summary = summary_of(rig, channel)
    assert summary["id"] == summary_id  # edited in place
    assert fields_of(summary)["Status"] == "resolved"
    assert buttons(summary) == ["opsroom:reopen:1"]


async def test_the_bot_itself_is_not_a_person_to_assign(rig: DiscordRig) -> None:
    """on_ready told the service the bot's own id: the bot is refused as a role holder."""
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    bot = rig.fake.bot_user["id"]
    refused = await rig.run("assign", role="scribe", person=bot, channel_id=channel)
    assert refused["content"] == f'scribe must be a person, not the bot ("<@{bot}>")'
    assert refused["flags"] & EPHEMERAL
    async with rig.store.unit() as u:
        incident = await u.incident(1)
    assert incident is not None and "scribe" not in incident.roles


async def test_a_malformed_command_gets_an_ephemeral_error_and_changes_nothing(
    rig: DiscordRig,
) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    before = await entries(rig, deleted=True)

    bad = await rig.run("set", "severity", severity="banana", channel_id=channel)
    assert bad["content"] == 'unknown severity "banana": use sev1, sev2, sev3 or sev4'
    assert bad["flags"] & EPHEMERAL
    due = await rig.run("action", "add", text="call the bank", due="someday", channel_id=channel)
    assert due["content"].startswith('invalid date "someday": use ') and due["flags"] & EPHEMERAL
    nowhere = await rig.run("set", "status", status="monitoring", incident=7)
    assert nowhere["content"] == "no incident #7"
    outside = await rig.run("note", text="hello")
    assert outside["content"].startswith("no incident here")
    kind = await rig.run("declare", description="db down", type="banana")
    assert kind["content"].startswith('unknown incident type "banana": use outage, ')

    assert await entries(rig, deleted=True) == before
    assert await count(rig, ActionItem) == 0 and await count(rig, Incident) == 1
    async with rig.store.unit() as u:
        incident = await u.incident(1)
    assert incident is not None and incident.severity == "sev2"


# --- reliability ---------------------------------------------------------------------------


async def test_rate_limits_are_waited_out_and_nothing_is_lost(rig: DiscordRig) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    thread = rig.timeline_thread(channel)["id"]
    messages = f"/channels/{thread}/messages"
    rig.fake.rate_limit("POST", messages, times=2, retry_after=0.05)  # discord.py waits these
    await rig.run("note", text="step 1", channel_id=channel)
    rig.fake.rate_limit("POST", messages, times=6, retry_after=0.05)  # it gives up: mirror retries
    await rig.run("note", text="step 2", channel_id=channel)
    await rig.run("note", text="step 3", channel_id=channel)
    assert rig.bot_texts(thread) == [f"💬 Alice: step {i}" for i in (1, 2, 3)]
    statuses = [c.status for c in rig.fake.calls_to("POST", messages)]
    assert statuses.count(429) == 8 and statuses.count(200) == 3


async def test_a_dropped_gateway_resumes_and_applies_missed_events_once(rig: DiscordRig) -> None:
    await declare(rig)
    channel = rig.incident_channel(1)["id"]
    thread = rig.timeline_thread(channel)["id"]
    [session] = rig.fake.session_ids()

    await rig.fake.drop_connection()
    said = await rig.fake.post_message(thread, "posted while the gateway was down", author="bob")
    await rig.fake.react(thread, said["id"], "📌", user="alice")
    await rig.fake.wait_for(lambda: rig.fake.connected, timeout=5, what="the RESUME")
    await rig.settle()

    [resume] = rig.fake.resume_payloads()
    assert resume["session_id"] == session and rig.fake.identify_count() == 1
    assert (await entries(rig))[1:] == [("message", "posted while the gateway was down"),
                                        ("key_event", "posted while the gateway was down")]
    assert rig.readiness.ok

    # The same events again (a replay of what was already applied) change nothing.
    for frame in rig.fake.dispatched("MESSAGE_CREATE")[-1:] + \
            rig.fake.dispatched("MESSAGE_REACTION_ADD")[-1:]:
        await rig.fake.dispatch(frame["t"], frame["d"])
    await rig.settle()
    assert len(await entries(rig)) == 3


class RecordingReadiness(Readiness):
    def __init__(self) -> None:
        super().__init__()
        self.history: list[bool] = []

    def mark_ready(self, name: str) -> None:
        super().mark_ready(name)
        self.history.append(self.ok)

    def mark_down(self, name: str) -> None:
        super().mark_down(name)
        self.history.append(self.ok)


async def test_health_follows_the_gateway_and_the_command_sync(tmp_path: Path,
                                                              catalog: Catalog) -> None:
    engine, schema = await open_engine("sqlite", tmp_path)
    readiness = RecordingReadiness()
    try:
        async with FakeDiscord() as fake:
            store, mirror, service = build_core(engine, catalog, ["discord"])
            async with running_edge(fake, service=service, store=store, catalog=catalog,
                                    mirror=mirror, readiness=readiness) as (edge, _):
                assert readiness.waiting_for == {"discord"} and readiness.ok
                assert edge.synced and edge.gateway_ready
                await fake.drop_connection(code=4000)
                await fake.wait_for(lambda: False in readiness.history, timeout=5,
                                    what="health to go down")
                await fake.wait_for(lambda: readiness.ok and fake.connected, timeout=5,
                                    what="health to come back after the RESUME")
            assert not readiness.ok  # stopped
            assert readiness.history[-1] is False and True in readiness.history
    finally:
        await close_engine(engine, schema)


async def test_a_rate_limit_discord_py_gives_up_on_is_a_retry_later(rig: DiscordRig) -> None:
    channel = rig.fake.general_channel_id
    rig.fake.rate_limit("POST", f"/channels/{channel}/messages", times=6, retry_after=0.08)
    with pytest.raises(RetryLater) as raised:
        await rig.edge.chat.post(channel_id=channel, message=Message(text="hello"))
    assert raised.value.retry_after == pytest.approx(0.08)
    assert await rig.edge.chat.post(channel_id=channel, message=Message(text="hello"))
    assert [text_of(m) for m in rig.fake.messages(channel)] == ["hello"]


async def test_the_chat_port_creates_its_category_renames_archives_and_sends_dms(
    rig: DiscordRig,
) -> None:
    chat = DiscordChat(rig.edge.client, category="Ops Incidents", guild_id=int(rig.fake.guild_id))
    first = await chat.create_channel(name="inc-7-db-down", private=False, workspace="")
    second = await chat.create_channel(name="inc-8-dns", private=False,
                                       workspace=rig.fake.guild_id)
    with pytest.raises(ChannelNameTaken):
        await chat.create_channel(name="inc-7-db-down", private=False, workspace="")
    categories = [c for c in rig.fake.channels.values()
                  if c["type"] == 4 and c["name"] == "Ops Incidents"]
    assert len(categories) == 1  # created once, then reused
    assert {rig.fake.channel(first.id)["parent_id"], rig.fake.channel(second.id)["parent_id"]} \
        == {categories[0]["id"]}
    assert await chat.find_channel(name="#general", workspace="") == rig.fake.general_channel_id
    assert await chat.find_channel(name="Incidents", workspace="") is None  # a category

    head = await chat.post(channel_id=first.id, message=Message(text="🧵 Timeline"))
    thread = await chat.start_thread(channel_id=first.id, message_id=head, name="Timeline")
    assert await chat.start_thread(channel_id=first.id, message_id=head, name="Timeline") == thread
    await chat.rename(channel_id=first.id, name="inc-7-db-down-resolved")
    await chat.archive(channel_id=first.id)
    stored = rig.fake.channel(first.id)
    assert stored["name"] == "inc-7-db-down-resolved"
    everyone = next(o for o in stored["permission_overwrites"] if o["id"] == rig.fake.guild_id)
    assert int(everyone["deny"]) & (1 << 11)  # nobody sends any more
    assert rig.fake.channel(thread)["thread_metadata"]["archived"] is True
    assert rig.fake.channel(thread)["thread_metadata"]["locked"] is True

    alice = rig.fake.users[0]["id"]
    await chat.send_dm(user=f"<@{alice}>", message=Message(text="You are commander of #7"))
    await chat.send_dm(user="<@U0SLACKUSER>", message=Message(text="not a Discord user"))
    dms = [c for c in rig.fake.channels.values() if c["type"] == 1]
    assert [text_of(m) for d in dms for m in rig.fake.messages(d["id"])] == [
        "You are commander of #7"]


async def test_a_rate_limited_topic_is_set_later_without_holding_up_messages(
    rig: DiscordRig,
) -> None:
    channel = rig.fake.general_channel_id
    rig.fake.rate_limit("PATCH", f"/channels/{channel}", times=1, retry_after=90.0)
    loop = asyncio.get_running_loop()
    started = loop.time()
    await rig.edge.chat.set_topic(channel_id=channel, topic="SEV1 · triggered")
    await rig.edge.chat.post(channel_id=channel, message=Message(text="next entry"))
    assert loop.time() - started < 2  # neither waited out the 90 s
    assert [c.status for c in rig.fake.calls_to("PATCH", f"/channels/{channel}")] == [429]
    assert [text_of(m) for m in rig.fake.messages(channel)] == ["next entry"]


def test_messages_fit_discords_limits() -> None:
    long_quote = Message(text="📌 Key event by Bob:\n> " + "x" * 2000)
    rendered = render(long_quote)
    assert rendered.content is None and rendered.embed is not None
    assert rendered.embed.description is not None and "x" * 1990 in rendered.embed.description
    many = Message(text="s", title="t" * 300, fields=tuple(Field(f"f{i}", "v" * 10)
                                                           for i in range(30)))
    embed = render(many).embed
    assert embed is not None and len(embed.title or "") == 256 and len(embed.fields) == 25
    assert embed.fields[-1].value == "…and 6 more"
    huge = Message(text="s", title="t", fields=tuple(Field(f"f{i}", "v" * 2000)
                                                     for i in range(30)),
                   sections=("d" * 5000,), context="c" * 3000)
    embed = render(huge).embed
    assert embed is not None and len(embed) <= 6000 and embed.description
    assert all(len(f.value or "") <= 1024 for f in embed.fields)
    assert embed.fields[-1].name == "More"
    plain = render(Message(text="short", buttons=(Button("Done", "action_done", "4:2"),)))
    assert plain.content == "short" and plain.view is not None
    assert [c["custom_id"] for row in plain.view.to_components() for c in row["components"]] \
        == ["opsroom:action_done:4:2"]
