"""`/incident postmortem` shares the document as a file: on Slack through the external upload
flow (files.getUploadURLExternal, the bytes POSTed to the URL it gave, then
files.completeUploadExternal with the channel), on Discord as a message attachment; both
against the fakes over real HTTP."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from slack_sdk.web.async_client import AsyncWebClient

from adapters.slack.chat import SlackChat
from bot.catalog import Catalog
from bot.ports import DeliveryRejected
from tests.adapters.discord_harness import DiscordRig, discord_rig
from tests.adapters.slack_harness import SlackRig, slack_rig
from tests.adapters.test_slack import declare as slack_declare
from tests.fakes import slack as fs
from tests.fakes.slack import FakeSlack


@pytest.fixture
async def srig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[SlackRig]:
    async with slack_rig(tmp_path, catalog) as r:
        yield r


@pytest.fixture
async def drig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[DiscordRig]:
    async with discord_rig(tmp_path, catalog) as r:
        yield r


async def test_slack_gets_the_postmortem_through_the_external_upload_flow(
    srig: SlackRig,
) -> None:
    await slack_declare(srig)
    await srig.settle()
    channel = srig.incident_channel(1)["id"]
    await srig.command("postmortem", channel=channel)
    await srig.settle()
    methods = [c.method for c in srig.fake.calls if c.method.startswith("files.")]
    assert methods == ["files.getUploadURLExternal", "files.completeUploadExternal"]
    shared = [m for m in srig.fake.messages(channel) if m.get("files")]
    assert len(shared) == 1
    message = shared[0]
    assert message["text"] == "Postmortem v1 (draft) of #1: postmortem-1-v1.md"
    (file,) = message["files"]
    assert file["name"] == "postmortem-1-v1.md" and file["title"] == "Postmortem #1 v1"
    content = srig.fake.file_content(file["id"])
    assert content is not None and content.decode().startswith("# Postmortem: #1 ")
    assert "> **DRAFT**: #1 is still triggered" in content.decode()
    assert file["size"] == len(content)


async def test_slack_refuses_a_channel_the_bot_is_not_in_for_good() -> None:
    async with FakeSlack() as fake:
        outside = fake.add_channel("elsewhere", creator=fs.ALICE, members=[fs.ALICE])["id"]
        chat = SlackChat(AsyncWebClient(token=fake.token, base_url=fake.api_url))
        with pytest.raises(DeliveryRejected, match="not_in_channel"):
            await chat.upload_file(channel_id=outside, filename="pm.md", content=b"# hi\n",
                                   title="pm", comment="the postmortem")
        file_id = await chat.upload_file(channel_id=fake.general_id, filename="pm.md",
                                         content=b"# hi\n", title="pm", comment="here it is")
        assert fake.file_content(file_id) == b"# hi\n"
        assert [m["text"] for m in fake.messages(fake.general_id) if m.get("files")] == [
            "here it is"
        ]


async def test_discord_gets_the_postmortem_as_an_attachment(drig: DiscordRig) -> None:
    from tests.adapters.test_discord import declare as discord_declare

    await discord_declare(drig)
    await drig.settle()
    channel = drig.incident_channel(1)["id"]
    answer: Any = await drig.run("postmortem", channel_id=channel)
    assert "Postmortem v1 (draft: not resolved yet) of #1" in answer["content"]
    shared = [m for m in drig.fake.messages(channel) if m.get("attachments")]
    assert len(shared) == 1
    assert shared[0]["content"] == "Postmortem v1 (draft) of #1: postmortem-1-v1.md"
    (attachment,) = shared[0]["attachments"]
    assert attachment["filename"] == "postmortem-1-v1.md"
    async with drig.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        (doc,) = await u.postmortems(inc.id)
    assert attachment["size"] == len(doc.markdown.encode())


async def test_the_console_writes_the_file_and_says_where(tmp_path: Path) -> None:
    from adapters.console import ConsoleChat

    shown: list[str] = []
    chat = ConsoleChat("alice", out=shown.append, files_dir=tmp_path / "files")
    await chat.upload_file(channel_id="inc-1-checkout", filename="postmortem-1-v1.md",
                           content=b"# Postmortem\n", title="Postmortem #1 v1",
                           comment="Postmortem v1 of #1: postmortem-1-v1.md")
    written = tmp_path / "files" / "postmortem-1-v1.md"
    assert written.read_bytes() == b"# Postmortem\n"
    assert shown == [
        "[#inc-1-checkout] (1) opsroom: Postmortem v1 of #1: postmortem-1-v1.md",
        f"    File written to {written}",
    ]
