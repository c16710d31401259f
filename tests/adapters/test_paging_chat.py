"""Paging end to end on Slack and Discord: the DM with the Acknowledge button reaches the fake,
pressing it acknowledges, and the incident channel shows the paging lines."""

from __future__ import annotations

import json
from pathlib import Path

from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.people import PersonSpec
from bot.policies import EscalationPolicy
from bot.schedules import Schedule
from tests.adapters.discord_harness import button_id, discord_rig, text_of
from tests.adapters.slack_harness import slack_rig
from tests.adapters.test_discord import declare as discord_declare
from tests.adapters.test_slack import declare as slack_declare
from tests.fakes import slack as fs
from tests.fakes.discord import FakeDiscord

DISCORD_ALICE = FakeDiscord().user("alice")["id"]  # the fake's ids are fixed
ALWAYS = Schedule.model_validate({"name": "primary", "timezone": "UTC", "layers": [
    {"users": ["alice"], "rotation": "weekly", "start": "2020-01-06"}]})  # alice, whenever
OPS = EscalationPolicy.model_validate({"name": "ops", "steps": [{"schedules": ["primary"]}]})


def paging(catalog: Catalog) -> Catalog:
    alice = PersonSpec(name="alice", slack=fs.ALICE, discord=DISCORD_ALICE)
    return catalog.model_copy(update={
        "people": [alice], "schedules": [ALWAYS], "escalation_policies": [OPS]})


async def test_slack_page_dm_with_acknowledge_button_acknowledges(
    tmp_path: Path, catalog: Catalog
) -> None:
    catalog = paging(catalog)
    async with slack_rig(tmp_path, catalog) as rig:
        worker = JobWorker(store=rig.store, catalog=catalog, record=rig.service.record,
                           notify=rig.mirror.wake)
        await slack_declare(rig)
        await rig.settle()
        channel = rig.incident_channel(1)["id"]
        await rig.command("page ops payments are failing", channel=channel, user=fs.BOB)
        await rig.settle()
        assert await worker.run_once() == 1
        await rig.settle()
        assert f"📟 Paged <@{fs.ALICE}> (ops, step 1): payments are failing" in (
            rig.bot_texts(channel))
        dm = rig.fake.dm_channel(fs.ALICE)
        assert dm is not None
        [message] = rig.fake.messages(dm)
        assert "Paged" in message["text"]
        buttons = [e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]]
        [ack] = [b for b in buttons if b["text"]["text"] == "Acknowledge"]
        response = await rig.post(fs.block_actions_body(
            ack["action_id"], ack["value"], channel_id=dm, message=message, user_id=fs.ALICE))
        assert response.status_code == 200
        await rig.settle()
        acked = [t for t in rig.bot_texts(channel) if t.startswith("✅")]
        assert len(acked) == 1 and acked[0].startswith(f"✅ <@{fs.ALICE}> acknowledged after")
        assert await worker.run_once() == 0  # nothing left to escalate


async def test_discord_page_dm_with_acknowledge_button_acknowledges(
    tmp_path: Path, catalog: Catalog
) -> None:
    catalog = paging(catalog)
    async with discord_rig(tmp_path, catalog) as rig:
        worker = JobWorker(store=rig.store, catalog=catalog, record=rig.service.record,
                           notify=rig.mirror.wake)
        await discord_declare(rig)
        channel = rig.incident_channel(1)["id"]
        await rig.run("page", policy="ops", channel_id=channel, user="bob")
        assert await worker.run_once() == 1
        await rig.settle()
        texts = [text_of(m) for m in rig.fake.messages(channel)]
        assert f"📟 Paged <@{DISCORD_ALICE}> (ops, step 1)" in texts
        [dm] = [c for c in rig.fake.channels.values()
                if c["type"] == 1 and c["recipients"][0]["id"] == DISCORD_ALICE]
        [message] = rig.fake.messages(dm["id"])
        assert "Acknowledge" in json.dumps(message["components"])
        await rig.fake.click(message, button_id(message, "Acknowledge"), user="alice")
        await rig.settle()
        texts = [text_of(m) for m in rig.fake.messages(channel)]
        assert any(t.startswith(f"✅ <@{DISCORD_ALICE}> acknowledged after") for t in texts)
