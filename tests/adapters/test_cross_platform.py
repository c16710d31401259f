"""One incident on two platforms: the fake Slack and the fake Discord running at once, one core
(store, service, mirror) with both ports, each edge on its real transport."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy import select

from adapters.http import Readiness, create_app
from adapters.slack.app import SlackEdge
from bot.catalog import Catalog
from bot.models import TimelineEntry
from tests.adapters.discord_harness import DiscordRig, build_core, running_edge, text_of
from tests.adapters.inbox_support import applying
from tests.adapters.slack_harness import SlackRig, serve
from tests.adapters.test_slack import declare as slack_declare
from tests.conftest import close_engine, open_engine
from tests.fakes import slack as fs
from tests.fakes.discord import FakeDiscord


@dataclass
class Both:
    slack: SlackRig
    discord: DiscordRig

    async def settle(self) -> None:
        """Until neither side has anything left to do (one side's work wakes the other)."""
        for _ in range(3):
            await self.slack.settle()
            await self.discord.settle()


@asynccontextmanager
async def both_rigs(tmp_path: Path, catalog: Catalog) -> AsyncIterator[Both]:
    engine, schema = await open_engine("sqlite", tmp_path)
    try:
        async with fs.FakeSlack() as fake_slack, FakeDiscord() as fake_discord:
            store, mirror, service = build_core(engine, catalog, ["slack", "discord"])
            async with applying(store, mirror) as inbox:
                slack = SlackEdge(service=service, store=store, catalog=catalog,
                                  client=AsyncWebClient(token=fake_slack.token,
                                                        base_url=fake_slack.api_url),
                                  signing_secret=fs.SIGNING_SECRET, inbox=inbox[0])
                inbox[1].appliers["slack"] = slack
                mirror.ports["slack"] = slack.chat
                await slack.check_auth()
                readiness = Readiness()
                readiness.expect("slack")
                readiness.mark_ready("slack")
                app = create_app(readiness, slack.app, slack_secret=fs.SIGNING_SECRET)
                async with serve(app) as url, \
                        httpx.AsyncClient(base_url=url, timeout=10) as http, \
                        running_edge(fake_discord, service=service, store=store,
                                     catalog=catalog, mirror=mirror, readiness=readiness,
                                     inbox=inbox) as (discord_edge, _):
                    assert readiness.ok and readiness.ready == {"slack", "discord"}
                    both = Both(SlackRig(fake_slack, slack, service, mirror, store, http,
                                         inbox[1]),
                                DiscordRig(fake_discord, discord_edge, service, mirror, store,
                                           readiness, inbox[1]))
                    yield both
                    await slack.close()
    finally:
        await close_engine(engine, schema)


@pytest.fixture
async def both(tmp_path: Path, catalog: Catalog) -> AsyncIterator[Both]:
    async with both_rigs(tmp_path, catalog) as rigs:
        yield rigs


async def test_an_incident_declared_in_slack_and_mirrored_to_discord(both: Both) -> None:
    slack, discord = both.slack, both.discord
    await slack_declare(slack)
    await both.settle()
    slack_channel = slack.incident_channel(1)["id"]
    slack_thread = next(m["ts"] for m in slack.fake.messages(slack_channel)
                        if m["text"].startswith("🧵"))

    await slack.command("mirror discord", channel=slack_channel)
    await both.settle()
    assert "#1 now has a discord channel too." in slack.ephemeral_texts()
    channel = discord.incident_channel(1)
    assert channel["name"] == "inc-1-checkout-500s-in-eu-since-the-14-05"
    assert channel["parent_id"] == discord.fake.category_id
    discord_thread = discord.timeline_thread(channel["id"])["id"]
    assert discord.fake.pins(channel["id"])[0]["embeds"][0]["title"].startswith("#1 Checkout")

    # A reply in the Discord timeline thread shows in the Slack timeline thread, once.
    await discord.fake.post_message(discord_thread, "db failover started", author="bob")
    duplicate = discord.fake.dispatched("MESSAGE_CREATE")[-1]["d"]
    await discord.fake.dispatch("MESSAGE_CREATE", duplicate)  # the same event, sent twice
    await both.settle()
    in_slack = [t for t in slack.bot_texts(slack_channel, slack_thread)
                if "db failover started" in t]
    assert in_slack == ["💬 Bob (from discord): db failover started"]

    # A 📌 in Slack (delivered twice by Slack's retry) shows in the Discord thread, once.
    posted = slack.fake.add_message(slack_channel, "error rate back under 1%", user=fs.BOB)
    reaction = fs.reaction_added_event("pushpin", ts=posted["ts"], user=fs.ALICE,
                                       channel=slack_channel, item_user=fs.BOB)
    await slack.event(reaction, event_id="Ev0CROSSPIN1")
    await slack.event(reaction, event_id="Ev0CROSSPIN1", retry=1)
    await both.settle()
    in_discord = [text_of(m) for m in discord.fake.messages(discord_thread)
                  if "error rate back under 1%" in text_of(m)]
    [shown] = in_discord
    assert shown.startswith("📌 Key event by bobby (from slack)") and "alice" in shown
    assert shown.endswith("\n> error rate back under 1%")
    # Each side's own entry is not echoed back to where it came from.
    assert not any("db failover" in text_of(m) for m in discord.fake.messages(discord_thread)
                   if m["author"]["id"] == discord.fake.bot_user["id"])

    # Both pinned summaries are current: the key event, edited in place on each side.
    slack_summary = slack.fake.message(slack_channel, slack.fake.pins(slack_channel)[0]["ts"])
    assert "error rate back under 1%" in json.dumps(slack_summary["blocks"], ensure_ascii=False)
    [discord_summary] = discord.fake.pins(channel["id"])
    assert "error rate back under 1%" in json.dumps(discord_summary["embeds"],
                                                    ensure_ascii=False)

    # A change made in Discord reaches Slack's summary too.
    await discord.run("set", "severity", severity="sev1", channel_id=channel["id"])
    await both.settle()
    slack_summary = slack.fake.message(slack_channel, slack.fake.pins(slack_channel)[0]["ts"])
    assert "SEV1" in json.dumps(slack_summary["blocks"])
    assert any(t.startswith("✏️ Severity changed from SEV2 to SEV1 (Alice (from discord))")
               for t in slack.bot_texts(slack_channel))
    [discord_summary] = discord.fake.pins(channel["id"])
    assert {f["name"]: f["value"] for f in discord_summary["embeds"][0]["fields"]}[
        "Severity"] == "SEV1"

    async with slack.store.engine.connect() as conn:
        rows = (await conn.execute(select(TimelineEntry.kind, TimelineEntry.source,
                                          TimelineEntry.author_name)
                                   .order_by(TimelineEntry.id))).all()
    assert [(k.value, s, a) for k, s, a in rows][-4:] == [
        ("system", "slack", "alice"), ("message", "discord", "Bob"),
        ("key_event", "slack", "bobby"), ("field_change", "discord", "Alice")]
