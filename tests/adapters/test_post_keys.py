"""A post that may have gone out already is found, not sent again: Slack through the message
metadata in the channel's history, Discord through its enforced nonce. And a channel left by an
attempt that died is recognised as the bot's own. Real SDKs against the fakes."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.chat import SlackChat
from bot.catalog import Catalog
from bot.render import Message
from tests.adapters.discord_harness import DiscordRig, discord_rig
from tests.fakes import slack as fs


@pytest.fixture
async def slack() -> AsyncIterator[tuple[fs.FakeSlack, SlackChat]]:
    async with fs.FakeSlack() as fake:
        yield fake, SlackChat(AsyncWebClient(token=fake.token, base_url=fake.api_url))


async def test_slack_recheck_finds_the_post_in_the_channel_and_in_a_thread(
    slack: tuple[fs.FakeSlack, SlackChat],
) -> None:
    fake, chat = slack
    first = await chat.post(channel_id=fs.GENERAL_ID, message=Message(text="hello"), key="k1")
    again = await chat.post(channel_id=fs.GENERAL_ID, message=Message(text="hello"), key="k1",
                            recheck=True)
    assert again == first and [m["text"] for m in fake.messages(fs.GENERAL_ID)] == ["hello"]
    reply = await chat.post(channel_id=fs.GENERAL_ID, thread_id=first, key="k2",
                            message=Message(text="in the thread"))
    assert await chat.post(channel_id=fs.GENERAL_ID, thread_id=first, key="k2", recheck=True,
                           message=Message(text="in the thread")) == reply
    assert len(fake.messages(fs.GENERAL_ID, first)) == 1
    # Without recheck (the usual first attempt) nothing is looked up; another key is a new post.
    other = await chat.post(channel_id=fs.GENERAL_ID, message=Message(text="hello"), key="k3",
                            recheck=True)
    assert other != first and len(fake.messages(fs.GENERAL_ID)) == 2
    assert len(fake.calls_to("conversations.history")) == 2


async def test_slack_own_channel_is_one_the_bot_created(
    slack: tuple[fs.FakeSlack, SlackChat],
) -> None:
    fake, chat = slack
    made = await chat.create_channel(name="inc-9-db-down", private=False, workspace="")
    fake.add_channel("inc-10-someone-elses", creator=fs.ALICE)
    assert await chat.find_own_channel(name="inc-9-db-down", workspace="") == made.id
    assert await chat.find_own_channel(name="inc-10-someone-elses", workspace="") is None
    assert await chat.find_own_channel(name="inc-11-nowhere", workspace="") is None


@pytest.fixture
async def rig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[DiscordRig]:
    async with discord_rig(tmp_path, catalog) as r:
        yield r


async def test_discord_repeat_with_the_same_key_returns_the_first_message(
    rig: DiscordRig,
) -> None:
    chat = rig.edge.chat
    channel = await chat.create_channel(name="inc-5-cache", private=False,
                                        workspace=rig.fake.guild_id)
    first = await chat.post(channel_id=channel.id, message=Message(text="once"), key="k1")
    again = await chat.post(channel_id=channel.id, message=Message(text="once"), key="k1",
                            recheck=True)
    assert again == first
    assert [m["content"] for m in rig.fake.messages(channel.id)] == ["once"]
    assert await chat.find_own_channel(name="inc-5-cache", workspace=rig.fake.guild_id) == \
        channel.id
    await rig.fake.create_channel("inc-6-not-in-the-category")
    assert await chat.find_own_channel(name="inc-6-not-in-the-category",
                                       workspace=rig.fake.guild_id) is None
