"""The fake Discord refuses application commands over Discord's limits, as Discord does.

Bodies go through discord.py's own HTTP client (``HTTPClient.bulk_upsert_*``), so the refusal
is read the way the bot reads it: ``discord.HTTPException`` with status 400, code 50035 and
the ``errors`` object; a tree that discord.py itself lets through (a long description, too many
choices, too many characters) is refused at ``CommandTree.sync`` with the command named.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fakes.discord import FakeDiscord
from tests.fakes.discord_commands import command_size

JSON = dict[str, Any]
SUB, GROUP, STRING, INTEGER = 1, 2, 3, 4


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@pytest.fixture
async def http(fake: FakeDiscord) -> AsyncIterator[discord.http.HTTPClient]:
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    client = discord.http.HTTPClient(asyncio.get_running_loop())
    try:
        await client.static_login(fake.token)
        yield client
    finally:
        await client.close()
        discord.http.Route.BASE = previous


def sub(name: str, options: list[JSON] | None = None, description: str = "Do it") -> JSON:
    return {"type": SUB, "name": name, "description": description, "options": options or []}


def group(name: str, subs: list[JSON]) -> JSON:
    return {"type": GROUP, "name": name, "description": "A group", "options": subs}


def text(name: str, required: bool = False, **extra: Any) -> JSON:
    return {"type": STRING, "name": name, "description": "Some text", "required": required,
            **extra}


def command(options: list[JSON] | None = None, name: str = "incident",
            description: str = "Run incidents") -> JSON:
    body: JSON = {"type": 1, "name": name, "description": description}
    if options is not None:
        body["options"] = options
    return body


async def refused(http: discord.http.HTTPClient, fake: FakeDiscord, payload: list[JSON],
                  *, guild: bool = True) -> JSON:
    """PUT `payload` expecting Discord's 400 Invalid Form Body; returns its `errors`."""
    before = list(fake.commands(fake.guild_id if guild else None))
    with pytest.raises(discord.HTTPException) as caught:
        if guild:
            await http.bulk_upsert_guild_commands(fake.application_id, fake.guild_id, payload)
        else:
            await http.bulk_upsert_global_commands(fake.application_id, payload)
    error = caught.value
    assert (error.status, error.code) == (400, 50035)
    assert error.text.startswith("Invalid Form Body\nIn ")
    assert fake.commands(fake.guild_id if guild else None) == before  # nothing registered
    errors: JSON = error._errors  # type: ignore[assignment]
    return errors


async def accepted(http: discord.http.HTTPClient, fake: FakeDiscord,
                   payload: list[JSON]) -> None:
    registered = await http.bulk_upsert_guild_commands(fake.application_id, fake.guild_id,
                                                       payload)
    assert [c["name"] for c in registered] == [c["name"] for c in payload]


def leaf(errors: JSON, *path: str | int) -> list[str]:
    """The error codes at `path` in Discord's nested errors object."""
    node = errors
    for key in path:
        node = node[str(key)]
    return [e["code"] for e in node["_errors"]]


# --- counts ---------------------------------------------------------------------------------

async def test_25_subcommands_fit_in_a_command_and_26_do_not(
    http: discord.http.HTTPClient, fake: FakeDiscord
) -> None:
    await accepted(http, fake, [command([sub(f"s{i}") for i in range(25)])])
    errors = await refused(http, fake, [command([sub(f"s{i}") for i in range(26)])])
    assert errors == {"0": {"options": {"_errors": [
        {"code": "BASE_TYPE_MAX_LENGTH", "message": "Must be 25 or fewer in length."}]}}}


async def test_a_group_holds_25_subcommands_and_a_subcommand_25_options(
    http: discord.http.HTTPClient, fake: FakeDiscord
) -> None:
    await accepted(http, fake, [command([group("g", [sub(f"s{i}") for i in range(25)]),
                                         sub("many", [text(f"o{i}") for i in range(25)])])])
    errors = await refused(http, fake, [command([
        group("g", [sub(f"s{i}") for i in range(26)]),
        sub("many", [text(f"o{i}") for i in range(26)]),
    ])])
    assert leaf(errors, 0, "options", 0, "options") == ["BASE_TYPE_MAX_LENGTH"]
    assert leaf(errors, 0, "options", 1, "options") == ["BASE_TYPE_MAX_LENGTH"]


async def test_100_slash_commands_fit_in_a_scope_and_101_do_not(
    http: discord.http.HTTPClient, fake: FakeDiscord
) -> None:
    await accepted(http, fake, [command(name=f"c{i}") for i in range(100)])
    errors = await refused(http, fake, [command(name=f"c{i}") for i in range(101)],
                           guild=False)
    assert leaf(errors) == ["BASE_TYPE_MAX_LENGTH"]
    assert errors["_errors"][0]["message"] == "Must be 100 or fewer CHAT_INPUT commands."


async def test_names_must_be_unique_per_type(http: discord.http.HTTPClient,
                                             fake: FakeDiscord) -> None:
    errors = await refused(http, fake, [command(), command()])
    assert leaf(errors, 1, "name") == ["APPLICATION_COMMANDS_DUPLICATE_NAME"]
    await accepted(http, fake, [command(), {"type": 3, "name": "incident"}])


# --- nesting --------------------------------------------------------------------------------

@pytest.mark.parametrize(("tree", "where"), [
    ([group("outer", [group("inner", [sub("s")])])], (0, "options", 0, "options", 0)),
    ([sub("outer", [sub("inner")])], (0, "options", 0, "options", 0)),
    ([sub("outer", [group("inner", [sub("s")])])], (0, "options", 0, "options", 0)),
    ([group("g", [text("loose")])], (0, "options", 0, "options", 0)),
    ([sub("s"), text("loose")], (0, "options")),
], ids=["group-in-group", "subcommand-in-subcommand", "group-in-subcommand", "option-in-group",
        "mixed-top-level"])
async def test_groups_nest_one_level_and_hold_only_subcommands(
    http: discord.http.HTTPClient, fake: FakeDiscord, tree: list[JSON],
    where: tuple[str | int, ...]
) -> None:
    errors = await refused(http, fake, [command(tree)])
    assert leaf(errors, *where) == ["APPLICATION_COMMAND_OPTIONS_TYPE_INVALID"]


# --- names, descriptions, choices, order ----------------------------------------------------

@pytest.mark.parametrize("name", ["Incident", "new incident", "x" * 33, "", "inc!dent",
                                  "ИНЦИДЕНТ"])
async def test_bad_names_are_refused(http: discord.http.HTTPClient, fake: FakeDiscord,
                                     name: str) -> None:
    errors = await refused(http, fake, [command([sub("ok", [text(name)])], name=name)])
    assert leaf(errors, 0, "name")[0] in ("APPLICATION_COMMAND_INVALID_NAME",
                                          "BASE_TYPE_REQUIRED")
    if name:
        assert leaf(errors, 0, "options", 0, "options", 0, "name") == [
            "APPLICATION_COMMAND_INVALID_NAME"]


async def test_names_in_any_script_with_dashes_and_apostrophes_are_fine(
    http: discord.http.HTTPClient, fake: FakeDiscord
) -> None:
    await accepted(http, fake, [command(name="инцидент"), command(name="घटना"),
                                command(name="เหตุการณ์"), command(name="on-call_2"),
                                command(name="what's-up"), command(name="x" * 32),
                                {"type": 3, "name": "Add to timeline"}])


async def test_descriptions_are_1_to_100_characters(http: discord.http.HTTPClient,
                                                    fake: FakeDiscord) -> None:
    await accepted(http, fake, [command([sub("s", description="d" * 100)], description="d")])
    errors = await refused(http, fake, [command([sub("s", description="d" * 101)],
                                                description="")])
    assert leaf(errors, 0, "description") == ["BASE_TYPE_BAD_LENGTH"]
    assert leaf(errors, 0, "options", 0, "description") == ["BASE_TYPE_BAD_LENGTH"]


async def test_an_option_offers_at_most_25_choices(http: discord.http.HTTPClient,
                                                   fake: FakeDiscord) -> None:
    def choices(n: int) -> list[JSON]:
        return [{"name": f"choice {i}", "value": f"c{i}"} for i in range(n)]

    await accepted(http, fake, [command([text("pick", choices=choices(25))])])
    errors = await refused(http, fake, [command([text("pick", choices=choices(26))])])
    assert leaf(errors, 0, "options", 0, "choices") == ["BASE_TYPE_MAX_LENGTH"]


async def test_required_options_come_first(http: discord.http.HTTPClient,
                                           fake: FakeDiscord) -> None:
    await accepted(http, fake, [command([sub("s", [text("a", True), text("b")])])])
    errors = await refused(http, fake, [command([sub("s", [text("b"), text("a", True)])])])
    assert errors == {"0": {"options": {"0": {"options": {"1": {"_errors": [{
        "code": "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
        "message": "Required options must be placed before non-required options"}]}}}}}}


async def test_every_problem_is_told_at_once(http: discord.http.HTTPClient,
                                             fake: FakeDiscord) -> None:
    errors = await refused(http, fake, [command([sub("Bad")], description=""),
                                        command(name="two", description="d" * 101)])
    assert set(errors) == {"0", "1"}
    assert set(errors["0"]) == {"description", "options"}


# --- size -----------------------------------------------------------------------------------

def sized(total: int) -> JSON:
    """A valid command whose names, descriptions and choices add up to `total` characters."""
    body = command([sub(f"s{i}", [text(f"o{j}", description="d" * 100) for j in range(25)],
                        description="d" * 100) for i in range(2)])
    missing = total - command_size(body)
    assert missing >= 0
    last = body["options"][-1]["options"][-1]
    last["choices"] = []
    while missing > 0:
        name = "n" * min(100, max(1, missing - 1))
        value = "v" * max(0, min(100, missing - len(name)))
        last["choices"].append({"name": name, "value": value})
        missing -= len(name) + len(value)
    assert command_size(body) == total
    return body


async def test_a_command_holds_at_most_8000_characters(http: discord.http.HTTPClient,
                                                       fake: FakeDiscord) -> None:
    await accepted(http, fake, [sized(8000)])
    errors = await refused(http, fake, [sized(8001)])
    assert errors == {"0": {"_errors": [{"code": "APPLICATION_COMMAND_TOO_LARGE",
                                         "message": "Command exceeds maximum size (8000)"}]}}


def test_the_size_counts_the_longest_localization() -> None:
    body = command([text("t", choices=[{"name": "ab", "value": "xyz",
                                        "name_localizations": {"de": "abcdef"}}])],
                   name="cmd", description="four")
    body["description_localizations"] = {"fr": "cinq5"}
    assert command_size(body) == len("cmd") + 5 + len("t") + len("Some text") + 6 + 3


# --- one command at a time, and the real client's tree --------------------------------------

async def test_posting_one_command_is_checked_too(http: discord.http.HTTPClient,
                                                  fake: FakeDiscord) -> None:
    with pytest.raises(discord.HTTPException) as caught:
        await http.upsert_guild_command(fake.application_id, fake.guild_id,
                                        command([sub(f"s{i}") for i in range(26)]))
    assert caught.value.code == 50035
    assert leaf(caught.value._errors or {}, "options") == ["BASE_TYPE_MAX_LENGTH"]


async def test_a_tree_discord_py_lets_through_is_refused_at_sync_naming_the_command(
    fake: FakeDiscord,
) -> None:
    previous = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    client = discord.Client(intents=discord.Intents.none())
    try:
        await client.login(fake.token)
        tree = app_commands.CommandTree(client)
        guild = discord.Object(id=int(fake.guild_id))

        def add(name: str, **decorate: Callable[[Any], Any]) -> None:
            async def callback(interaction: discord.Interaction, pick: str) -> None:
                pass
            for decorator in decorate.values():
                callback = decorator(callback)
            tree.add_command(app_commands.Command(name=name, description="d" * 101,
                                                  callback=callback), guild=guild)

        add("wordy")
        add("choosy", choices=app_commands.choices(
            pick=[app_commands.Choice(name=f"c{i}", value=f"c{i}") for i in range(26)]))
        with pytest.raises(app_commands.CommandSyncFailure) as caught:
            await tree.sync(guild=guild)
        assert caught.value.status == 400 and caught.value.code == 50035
        message = str(caught.value)
        assert "wordy" in message and "choosy" in message
        assert "Must be between 1 and 100 in length." in message
        assert "Must be 25 or fewer in length." in message
        assert fake.commands(fake.guild_id) == []
    finally:
        await client.close()
        discord.http.Route.BASE = previous
