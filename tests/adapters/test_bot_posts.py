"""📌 on the bot's own posts, on Slack and Discord through their real edges and the fakes: the
pinned summary and the timeline root are ignored (Slack says so, ephemeral; Discord cannot
outside an interaction, so it says nothing), and a post showing a timeline entry records that
entry, referenced, instead of its rendering."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.catalog import Catalog
from bot.models import EntryKind, TimelineEntry
from tests.adapters.discord_harness import DiscordRig, discord_rig, text_of
from tests.adapters.slack_harness import SlackRig, slack_rig
from tests.adapters.test_discord import declare as declare_on_discord
from tests.adapters.test_discord import summary_of
from tests.adapters.test_slack import declare as declare_on_slack
from tests.fakes import slack as fs

UPDATE = "Rolled back deploy 2211; card payments recovering"


async def timeline(store: Any) -> list[TimelineEntry]:
    async with store.unit() as u:
        return await u.timeline(1, include_deleted=True)


# --- Slack ------------------------------------------------------------------------------------


@pytest.fixture
async def slack(tmp_path: Path, catalog: Catalog) -> AsyncIterator[SlackRig]:
    async with slack_rig(tmp_path, catalog) as rig:
        await declare_on_slack(rig)
        await rig.settle()
        rig.fake.join(rig.incident_channel(1)["id"], fs.BOB)  # Slack tells only members
        yield rig


async def slack_pin(rig: SlackRig, channel: str, ts: str, *, user: str = fs.ALICE,
                    added: bool = True) -> None:
    make = fs.reaction_added_event if added else fs.reaction_removed_event
    await rig.event(make("pushpin", ts=ts, user=user, channel=channel, item_user=fs.BOT_USER_ID))
    await rig.settle()


async def test_slack_a_pin_on_the_summary_or_the_timeline_root_is_ignored_and_said(
    slack: SlackRig,
) -> None:
    channel = slack.incident_channel(1)["id"]
    summary_ts = slack.fake.pins(channel)[0]["ts"]
    root_ts = next(m["ts"] for m in slack.fake.messages(channel) if m["text"].startswith("🧵"))
    before, posts = await timeline(slack.store), len(slack.fake.messages(channel))

    await slack_pin(slack, channel, summary_ts)
    await slack_pin(slack, channel, root_ts, user=fs.BOB)
    told = [(e["user"], e["channel"], e["text"]) for e in slack.fake.ephemerals]
    assert (fs.ALICE, channel, "The pinned summary is not a key event (it shows the incident "
            "as it stands); 📌 a message or a timeline post, or use /incident event <text>."
            ) in told
    assert any(user == fs.BOB and text.startswith("The timeline thread's first message")
               for user, _, text in told)
    # Un-pinning changes nothing either.
    await slack_pin(slack, channel, summary_ts, added=False)
    await slack_pin(slack, channel, root_ts, user=fs.BOB, added=False)
    assert await timeline(slack.store) == before
    assert len(slack.fake.messages(channel)) == posts


async def test_slack_a_pin_on_a_status_update_post_records_the_entry(slack: SlackRig) -> None:
    channel = slack.incident_channel(1)["id"]
    await slack.command(f"update {UPDATE}", channel=channel)
    await slack.settle()
    post = next(m for m in slack.fake.messages(channel) if m["text"].startswith("📣"))
    [update] = [e for e in await timeline(slack.store) if e.kind is EntryKind.STATUS_UPDATE]

    await slack_pin(slack, channel, post["ts"], user=fs.BOB)
    key = (await timeline(slack.store))[-1]
    assert (key.kind, key.text) == (EntryKind.KEY_EVENT, UPDATE)
    assert key.data["ref_entry"] == update.id
    thread = next(m["ts"] for m in slack.fake.messages(channel) if m["text"].startswith("🧵"))
    assert slack.bot_texts(channel, thread)[-1] == (
        f"📌 Key event by {update.author_name} (marked by {key.data['marked_by']}):\n> {UPDATE}")
    assert not any(e["user"] == fs.BOB for e in slack.fake.ephemerals)  # nothing to say

    await slack_pin(slack, channel, post["ts"], user=fs.BOB, added=False)
    assert (await timeline(slack.store))[-1].text == f"Key event removed: {UPDATE}"


# --- Discord ----------------------------------------------------------------------------------


@pytest.fixture
async def discord(tmp_path: Path, catalog: Catalog) -> AsyncIterator[DiscordRig]:
    async with discord_rig(tmp_path, catalog) as rig:
        await declare_on_discord(rig)
        yield rig


async def discord_pin(rig: DiscordRig, channel: str, message_id: str, *, user: str = "alice",
                      added: bool = True) -> None:
    if added:
        await rig.fake.react(channel, message_id, "📌", user=user)
    else:
        await rig.fake.unreact(channel, message_id, "📌", user=user)
    await rig.settle()


async def test_discord_a_pin_on_the_summary_or_the_timeline_root_is_ignored(
    discord: DiscordRig,
) -> None:
    channel = discord.incident_channel(1)["id"]
    summary = summary_of(discord, channel)
    root = next(m for m in discord.fake.messages(channel) if text_of(m).startswith("🧵"))
    assert root["id"] != summary["id"]
    before = await timeline(discord.store)
    calls = len(discord.fake.calls)

    await discord_pin(discord, channel, summary["id"])
    await discord_pin(discord, channel, root["id"], user="bob")
    await discord_pin(discord, channel, summary["id"], added=False)
    await discord_pin(discord, channel, root["id"], user="bob", added=False)
    assert await timeline(discord.store) == before
    # The bot read the messages and did nothing else: no post, no edit, no DM.
    done = {(c.method, c.path.split("/")[-1]) for c in discord.fake.calls[calls:]}
    assert all(method == "GET" for method, _ in done), done


async def test_discord_a_pin_on_a_status_update_post_records_the_entry(
    discord: DiscordRig,
) -> None:
    channel = discord.incident_channel(1)["id"]
    await discord.run("update", text=UPDATE, channel_id=channel)
    post = next(m for m in discord.fake.messages(channel) if text_of(m).startswith("📣"))
    [update] = [e for e in await timeline(discord.store) if e.kind is EntryKind.STATUS_UPDATE]

    await discord_pin(discord, channel, post["id"], user="bob")
    key = (await timeline(discord.store))[-1]
    assert (key.kind, key.text, key.data["ref_entry"]) == (EntryKind.KEY_EVENT, UPDATE, update.id)
    assert key.data["message_id"] == post["id"]
    thread = discord.timeline_thread(channel)["id"]
    assert discord.bot_texts(thread)[-1] == (
        f"📌 Key event by {update.author_name} (marked by {key.data['marked_by']}):\n> {UPDATE}")
