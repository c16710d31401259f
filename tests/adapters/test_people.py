"""A person is shown as themselves on every platform: a Slack commander appears on Discord as
their Discord account when the catalog links the two, and as "@alice (Slack)" otherwise, never
as the raw Slack markup."""

from __future__ import annotations

import json
from pathlib import Path

from bot.catalog import Catalog
from bot.people import PersonSpec
from tests.adapters.test_cross_platform import both_rigs
from tests.adapters.test_slack import declare as slack_declare
from tests.fakes import slack as fs
from tests.fakes.discord import FakeDiscord


async def _slack_incident_on_discord(tmp_path: Path, catalog: Catalog) -> tuple[str, str]:
    """Declare on Slack, mirror to Discord; the Discord summary embed and channel topic."""
    async with both_rigs(tmp_path, catalog) as both:
        await slack_declare(both.slack)
        await both.settle()
        slack_channel = both.slack.incident_channel(1)["id"]
        await both.slack.command("assign commander <@U0ALICE0001>", channel=slack_channel)
        await both.slack.command("mirror discord", channel=slack_channel)
        await both.settle()
        channel = both.discord.incident_channel(1)
        [pinned] = both.discord.fake.pins(channel["id"])
        topic = both.discord.fake.channel(channel["id"])["topic"]
        # Slack itself still shows the Slack mention.
        slack_topic = both.slack.fake.channel(slack_channel)["topic"]["value"]
        assert f"<@{fs.ALICE}>" in slack_topic
        return json.dumps(pinned["embeds"], ensure_ascii=False), topic


async def test_a_slack_commander_without_discord_shows_as_name_and_home(
    tmp_path: Path, catalog: Catalog
) -> None:
    embeds, topic = await _slack_incident_on_discord(tmp_path, catalog)
    assert "<@U0ALICE" not in embeds and "<@U0ALICE" not in topic
    assert "@alice (Slack)" in topic
    assert "@alice (Slack)" in embeds


async def test_a_person_linked_in_the_catalog_is_their_discord_account_on_discord(
    tmp_path: Path, catalog: Catalog
) -> None:
    discord_alice = FakeDiscord().user("alice")["id"]  # the fake's ids are fixed
    linked = catalog.model_copy(
        update={"people": [PersonSpec(name="alice", slack=fs.ALICE, discord=discord_alice)]}
    )
    embeds, topic = await _slack_incident_on_discord(tmp_path, linked)
    assert f"<@{discord_alice}>" in topic
    assert f"<@{discord_alice}>" in embeds
    assert "U0ALICE" not in embeds + topic
