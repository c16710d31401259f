"""`/incident` on Discord: the tree Discord accepts, and the subcommands it gained by regrouping.

Discord allows 25 subcommands in a command or group and groups one level deep; the fake Discord
refuses a tree over those limits, so every test here registers the real tree through discord.py
first. The subcommands whose grammar lands with core8a (cancel, type, unassign, action reopen and
cancel) are skipped until `bot.commands.parse` reads them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import discord
import pytest
from discord import app_commands

from adapters.discord.commands import incident_group
from bot import commands as c
from bot.catalog import Catalog
from bot.models import ActionItem, Incident
from tests.adapters.discord_harness import EPHEMERAL, DiscordRig, discord_rig
from tests.fakes.discord_commands import command_size

COMMANDS = "/applications/{application_id}/guilds/{guild_id}/commands"
DESCRIPTION = "checkout 500s in EU since the 14:05 deploy, card payments failing"


@pytest.fixture
async def rig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[DiscordRig]:
    async with discord_rig(tmp_path, catalog) as r:
        yield r


def in_grammar(text: str) -> pytest.MarkDecorator:
    """Skip until the shared parser reads `/incident <text>` (it lands with core8a)."""
    try:
        c.parse(text)
        missing = False
    except c.UsageError:
        missing = True
    return pytest.mark.skipif(missing, reason=f'"/incident {text}" lands with core8a')


async def declare(rig: DiscordRig, number: int = 1, description: str = DESCRIPTION) -> str:
    """Quick Start as suggested, then Create; returns the incident channel's id."""
    review = await rig.run("declare", description=description)
    await rig.click(review, "Create")
    return str(rig.incident_channel(number)["id"])


async def incident(rig: DiscordRig, number: int = 1) -> Incident:
    async with rig.store.unit() as u:
        found = await u.incident(number)
    assert found is not None
    return found


async def items(rig: DiscordRig, number: int = 1) -> list[ActionItem]:
    inc = await incident(rig, number)
    assert inc.id is not None
    async with rig.store.unit() as u:
        return await u.action_items(inc.id)


# --- the tree -------------------------------------------------------------------------------

# Subcommands later issues add to the grammar, at the place the tree keeps for them.
LATER = {(): ["handoff"], ("runbook",): ["pause"]}


async def test_the_incident_tree_fits_discords_limits_with_room_for_what_comes_next(
    rig: DiscordRig,
) -> None:
    [put] = rig.fake.calls_to("PUT", COMMANDS)
    assert put.status == 200  # the fake refuses a tree over Discord's limits
    incident = next(c for c in put.json if c["name"] == "incident")
    top = incident["options"]
    groups = {o["name"]: [s["name"] for s in o["options"]] for o in top if o["type"] == 2}
    assert len(top) == 23  # of Discord's 25
    assert {name: len(subs) for name, subs in groups.items()} == {
        "set": 8, "role": 2, "action": 6, "runbook": 8, "alerts": 5}  # of 25 each
    assert all(o["type"] == 1 for g in top if g["type"] == 2 for o in g["options"])
    assert command_size(incident) <= 5500  # characters, of Discord's 8000

    # The later subcommands (a text and an incident option each) fit: Discord accepts the tree.
    group = incident_group(rig.edge)

    async def later(interaction: discord.Interaction, text: str,
                    incident: int | None = None) -> None:
        pass

    for path, names in LATER.items():
        parent = group if not path else next(
            g for g in group.commands if g.name == path[0] and isinstance(g, app_commands.Group))
        for name in names:
            parent.add_command(app_commands.Command(
                name=name, description=f"What {name} does, in a sentence of some length",
                callback=later))
    grown = group.to_dict(rig.edge.tree)
    assert len(grown["options"]) == 24
    http = rig.edge.client.http
    [registered] = await http.bulk_upsert_guild_commands(rig.fake.application_id,
                                                         rig.fake.guild_id, [grown])
    assert len(registered["options"]) == 24
    assert command_size(grown) <= 6000  # still room for a dozen more subcommands

    # One past Discord's limit is refused, as Discord refuses it.
    for i in range(3):
        grown["options"].append({"type": 1, "name": f"extra{i}", "description": "More"})
    with pytest.raises(discord.HTTPException) as refused:
        await http.bulk_upsert_guild_commands(rig.fake.application_id, rig.fake.guild_id,
                                              [grown])
    assert refused.value.code == 50035
    assert "In 0.options: Must be 25 or fewer in length." in refused.value.text


# --- help, on Discord -----------------------------------------------------------------------

async def test_help_says_where_a_command_is_on_discord(rig: DiscordRig) -> None:
    everything = await rig.run("help")
    assert everything["flags"] & EPHEMERAL
    assert everything["content"].startswith("Commands (inside an incident channel")
    assert everything["content"].endswith(
        "\nOn Discord: /incident alerts show; /incident set status|severity|priority|title|"
        "summary|type|field|time; /incident role assign|unassign.")
    status = await rig.run("help", command="status")
    assert status["content"] == f"Usage: {c.USAGE['status']}\nOn Discord: /incident set status"
    field = await rig.run("help", command="set")
    assert field["content"].endswith("\nOn Discord: /incident set field")
    note = await rig.run("help", command="note")
    assert note["content"] == f"Usage: {c.USAGE['note']}"
    unknown = await rig.run("help", command="banana")
    assert unknown["content"].startswith('no command "banana".') and unknown["flags"] & EPHEMERAL


async def test_help_completes_every_command_word(rig: DiscordRig) -> None:
    typed = await rig.autocomplete("help", focused="command", command="ac")
    assert [ch["value"] for ch in typed] == [w for w in c.USAGE if "ac" in w]
    assert {"action", "ack"} <= {ch["value"] for ch in typed}
    everything = await rig.autocomplete("help", focused="command", command="")
    assert [ch["value"] for ch in everything] == list(c.USAGE)[:25]


async def test_the_type_is_completed_from_the_catalog(rig: DiscordRig) -> None:
    channel = await declare(rig)
    typed = await rig.autocomplete("set", "type", focused="type", type="perf",
                                   channel_id=channel)
    assert [ch["value"] for ch in typed] == ["performance"]


# --- the subcommands whose grammar lands with core8a ----------------------------------------

@in_grammar("cancel declared by mistake")
async def test_cancel_an_incident_declared_by_mistake(rig: DiscordRig) -> None:
    channel = await declare(rig)
    await declare(rig, 2, "search is slow for some customers")

    here = await rig.run("cancel", reason="a test alert, not an incident", channel_id=channel)
    assert here["flags"] & EPHEMERAL
    assert here["content"].startswith("Cancelled #1: a test alert, not an incident")
    elsewhere = await rig.run("cancel", reason="duplicate of #1", incident=2)
    assert elsewhere["content"].startswith("Cancelled #2: duplicate of #1")
    assert [(await incident(rig, n)).status.value for n in (1, 2)] == ["cancelled"] * 2

    missing = await rig.run("cancel", reason="nothing", incident=9)
    assert missing["content"] == "no incident #9"


@in_grammar("type performance")
async def test_set_type_changes_the_incident_type(rig: DiscordRig) -> None:
    channel = await declare(rig)
    assert (await incident(rig)).type == "outage"

    changed = await rig.run("set", "type", type="performance", channel_id=channel)
    assert changed["flags"] & EPHEMERAL
    assert changed["content"].startswith("#1 is now of type performance")
    assert (await incident(rig)).type == "performance"

    bad = await rig.run("set", "type", type="banana", channel_id=channel)
    assert '"banana"' in bad["content"] and "performance" in bad["content"]
    assert (await incident(rig)).type == "performance"


@in_grammar("unassign scribe")
async def test_role_unassign_leaves_the_role_empty(rig: DiscordRig) -> None:
    channel = await declare(rig)
    bob = rig.fake.user("bob")["id"]
    await rig.run("role", "assign", role="scribe", person="bob", channel_id=channel)
    assert (await incident(rig)).roles.get("scribe") == f"<@{bob}>"

    reply = await rig.run("role", "unassign", role="scribe", channel_id=channel)
    assert reply["flags"] & EPHEMERAL
    assert reply["content"].startswith(f"<@{bob}> is no longer scribe of #1")
    assert "scribe" not in (await incident(rig)).roles

    again = await rig.run("role", "unassign", role="scribe", channel_id=channel)
    assert "scribe" in again["content"] and not again["content"].startswith(f"<@{bob}>")


@in_grammar("action reopen 1")
async def test_action_reopen_opens_a_done_item_again(rig: DiscordRig) -> None:
    channel = await declare(rig)
    await rig.run("action", "add", text="verify payment retries", channel_id=channel)
    await rig.run("action", "done", number=1, channel_id=channel)
    assert [i.status.value for i in await items(rig)] == ["done"]

    reply = await rig.run("action", "reopen", number=1, channel_id=channel)
    assert reply["flags"] & EPHEMERAL
    assert reply["content"].startswith("Action item 1 of #1 is open again")
    assert [i.status.value for i in await items(rig)] == ["open"]

    unknown = await rig.run("action", "reopen", number=7, channel_id=channel)
    assert "7" in unknown["content"]
    assert [i.status.value for i in await items(rig)] == ["open"]


@in_grammar("action cancel 1")
async def test_action_cancel_cancels_an_item_no_longer_needed(rig: DiscordRig) -> None:
    channel = await declare(rig)
    await rig.run("action", "add", text="email the bank", channel_id=channel)

    reply = await rig.run("action", "cancel", number=1, incident=1)
    assert reply["flags"] & EPHEMERAL
    assert reply["content"].startswith("Action item 1 of #1 is cancelled")
    assert [i.status.value for i in await items(rig)] == ["cancelled"]

    again = await rig.run("action", "cancel", number=1, channel_id=channel)
    assert "already cancelled" in again["content"]



async def test_runbook_checklist_and_approval_from_discord(
    tmp_path: Path, catalog: Catalog
) -> None:
    from bot.runbooks import RunbookRunner
    from tests.unit.test_runbooks import catalog_with

    cat = catalog_with(catalog, tmp_path, {"runbooks": [{"name": "drill", "steps": [
        {"kind": "checklist", "items": ["look", "leap"]},
        {"kind": "approve"},
        {"kind": "message", "text": "approved and done"},
    ]}]})
    async with discord_rig(tmp_path, cat) as rig:
        channel = await declare(rig)
        runner = RunbookRunner(service=rig.service, store=rig.store)
        started = await rig.run("runbook", "run", name="drill", channel_id=channel)
        assert started["content"].startswith("Started drill on #1 as run 1")
        await runner.run_once()
        await rig.settle()

        def progress() -> dict[str, object]:
            return next(m for m in rig.fake.messages(channel)
                        if "Runbook drill · run 1 of #1" in str(m["content"]))

        # The progress message is edited in place and carries a button per unticked item.
        clicked = await rig.click(progress(), "✓ 1")
        assert rig.answer(clicked)["content"] == "Item 1 done; 1 left."
        skipped = await rig.run("runbook", "skip", item=2, number=1, channel_id=channel)
        assert skipped["content"] == "Item 2 skipped; the checklist is complete."
        await runner.run_once()
        await rig.settle()
        denied = rig.answer(await rig.click(progress(), "Approve", user="bob"))
        assert denied["flags"] & EPHEMERAL
        assert denied["content"].startswith("Only the commander (<@")
        approved = await rig.run("runbook", "approve", channel_id=channel)
        assert approved["content"] == "Approved; run 1 of #1 goes on."
        await runner.run_once()
        await rig.settle()
        texts = [m["content"] for m in rig.fake.messages(channel)]
        assert any("approved and done" in t for t in texts)
        assert any("Runbook drill · run 1 of #1 · ✅ done" in t for t in texts)
