"""`/oncall` on Slack (a signed slash command to our endpoint, answered through response_url)
and on Discord (the registered `/oncall` tree, answered as an interaction response)."""

from __future__ import annotations

from pathlib import Path

from bot.catalog import Catalog
from bot.people import PersonSpec
from bot.schedules import Schedule
from tests.adapters.discord_harness import discord_rig, text_of
from tests.adapters.slack_harness import slack_rig
from tests.fakes import slack as fs
from tests.fakes.discord import FakeDiscord

DISCORD_ALICE = FakeDiscord().user("alice")["id"]  # the fake's ids are fixed
PRIMARY = Schedule.model_validate(
    {
        "name": "primary",
        "timezone": "UTC",
        # Everybody's shift is a year long from 2020: alice now, whatever the real date.
        "layers": [{"users": ["alice"], "rotation": "365d", "handoff": "00:00",
                    "start": "2020-01-01"}],
    }
)


def with_oncall(catalog: Catalog) -> Catalog:
    alice = PersonSpec(name="alice", slack=fs.ALICE, discord=DISCORD_ALICE)
    bob = PersonSpec(name="bob", slack=fs.BOB)
    return catalog.model_copy(update={"people": [alice, bob], "schedules": [PRIMARY]})


async def test_slack_oncall_who_and_override_answer_ephemeral(
    tmp_path: Path, catalog: Catalog
) -> None:
    async with slack_rig(tmp_path, with_oncall(catalog)) as rig:
        acks = []
        for text in ("who primary", f"override primary <@{fs.BOB}> for 2h", "who primary",
                     "overide"):
            body = fs.slash_command_body(text, command="/oncall",
                                         channel_id=rig.fake.general_id,
                                         response_url=rig.fake.new_response_url())
            response = await rig.post(body)
            assert response.status_code == 200
            acks.append(response)
            await rig.settle()
        answers = rig.ephemeral_texts()
        assert answers[0].startswith(f"primary: <@{fs.ALICE}> until")
        assert answers[1].startswith(f"Override 1: <@{fs.BOB}> is on call for primary from")
        assert answers[2].startswith(f"primary: <@{fs.BOB}> until") and "(override)" in answers[2]
        # A malformed command is answered in its acknowledgement, and never stored.
        assert len(answers) == 3
        assert acks[3].json()["response_type"] == "ephemeral"
        assert acks[3].json()["text"].startswith('unknown on-call command "overide"')


async def test_discord_oncall_tree_runs_who_and_override(tmp_path: Path, catalog: Catalog) -> None:
    async with discord_rig(tmp_path, with_oncall(catalog)) as rig:
        registered = {c["name"]: c for c in rig.fake.commands(rig.fake.guild_id)}
        assert {o["name"] for o in registered["oncall"]["options"]} == {
            "who", "schedule", "override", "overrides", "remove-override"}
        payload = rig.fake.slash_command_payload(
            "oncall", [{"type": 1, "name": "who", "options": [
                {"type": 3, "name": "schedule", "value": "primary"}]}])
        await rig.fake.dispatch("INTERACTION_CREATE", payload)
        await rig.settle()
        assert text_of(rig.answer(payload)).startswith(f"primary: <@{DISCORD_ALICE}> until")

        bob_discord = rig.fake.user("bob")["id"]  # a Discord account the catalog does not link
        payload = rig.fake.slash_command_payload(
            "oncall", [{"type": 1, "name": "override", "options": [
                {"type": 3, "name": "schedule", "value": "primary"},
                {"type": 6, "name": "person", "value": bob_discord},
                {"type": 3, "name": "length", "value": "90m"}]}])
        await rig.fake.dispatch("INTERACTION_CREATE", payload)
        await rig.settle()
        assert text_of(rig.answer(payload)).startswith(
            f"Override 1: <@{bob_discord}> is on call for primary")

        payload = rig.fake.slash_command_payload(
            "oncall", [{"type": 1, "name": "override", "options": [
                {"type": 3, "name": "schedule", "value": "primary"},
                {"type": 6, "name": "person", "value": bob_discord}]}])
        await rig.fake.dispatch("INTERACTION_CREATE", payload)
        await rig.settle()
        assert "give the override a length" in text_of(rig.answer(payload))
