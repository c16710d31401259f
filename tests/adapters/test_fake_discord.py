"""The fake Discord (tests/fakes/discord.py) drives a real, unpatched discord.py client.

The client is pointed at the fake only the way the bot does it: ``discord.http.Route.BASE`` is
set to the fake's REST base, and ``discord.AutoShardedClient`` asks ``GET /gateway/bot`` for the
websocket URL itself (a plain ``discord.Client`` always dials wss://gateway.discord.gg/).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import discord
import pytest
from discord import app_commands

from tests.fakes.discord import FakeDiscord

TIMEOUT = 3.0


class IncidentModal(discord.ui.Modal, title="Incident"):
    summary: discord.ui.TextInput[IncidentModal] = discord.ui.TextInput(
        label="Summary", custom_id="summary", default="database is slow")

    def __init__(self, submitted: list[str]) -> None:
        super().__init__(custom_id="incident-modal", timeout=None)
        self._submitted = submitted

    async def on_submit(self, interaction: discord.Interaction) -> None:
        self._submitted.append(self.summary.value)
        await interaction.response.send_message(f"saved: {self.summary.value}", ephemeral=True)


class ReviewView(discord.ui.View):
    def __init__(self, submitted: list[str]) -> None:
        super().__init__(timeout=None)
        self._submitted = submitted

    @discord.ui.button(label="Create", custom_id="create", style=discord.ButtonStyle.primary)
    async def create(self, interaction: discord.Interaction,
                     button: discord.ui.Button[Any]) -> None:
        await interaction.response.send_modal(IncidentModal(self._submitted))


class RecordingClient(discord.AutoShardedClient):
    """A client with ``/incident`` and ``/slow`` guild commands; keeps what handlers saw."""

    def __init__(self, guild_id: int) -> None:
        intents = discord.Intents.none()
        intents.guilds = intents.guild_messages = intents.message_content = True
        intents.guild_reactions = intents.members = True
        # No shard_count: AutoShardedClient fetches GET /gateway/bot and dials its ``url``.
        super().__init__(intents=intents, guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.invocations: list[tuple[discord.Interaction, str]] = []
        guild = discord.Object(id=guild_id)

        @self.tree.command(name="incident", description="Run an incident command", guild=guild)
        @app_commands.describe(text="What to do")
        async def incident(interaction: discord.Interaction, text: str) -> None:
            self.invocations.append((interaction, text))
            await interaction.response.send_message(f"ack: {text}")

        @self.tree.command(name="slow", description="Answer after thinking", guild=guild)
        async def slow(interaction: discord.Interaction) -> None:
            await interaction.response.defer(thinking=True)
            await interaction.edit_original_response(content="done thinking")
            await interaction.followup.send("only you can see this", ephemeral=True)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDiscord]:
    async with FakeDiscord() as server:
        yield server


@contextlib.asynccontextmanager
async def running_client(fake: FakeDiscord) -> AsyncIterator[RecordingClient]:
    """Start a client against the fake, wait for on_ready; always close it and restore BASE."""
    previous_base = discord.http.Route.BASE
    discord.http.Route.BASE = fake.api_base
    bot = RecordingClient(int(fake.guild_id))
    runner = asyncio.create_task(bot.start(fake.token))
    try:
        await fake.wait_for(lambda: bot.is_ready() or runner.done(), timeout=TIMEOUT,
                            what="the client's on_ready")
        if runner.done():
            runner.result()  # surfaces a login or connection error
        yield bot
    finally:
        try:
            await asyncio.wait_for(bot.close(), TIMEOUT)
        finally:
            # start() returns once closed; a client stuck reconnecting is cancelled instead.
            await asyncio.wait({runner}, timeout=1.0)
            runner.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await runner
            discord.http.Route.BASE = previous_base


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[RecordingClient]:
    async with running_client(fake) as bot:
        yield bot


def general(fake: FakeDiscord, client: RecordingClient) -> discord.TextChannel:
    channel = client.get_channel(int(fake.general_channel_id))
    assert isinstance(channel, discord.TextChannel)
    return channel


async def test_client_connects_through_gateway_bot_and_sees_the_guild(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    assert [c.status for c in fake.calls_to("GET", "/gateway/bot")] == [200]
    assert [c.status for c in fake.calls_to("GET", "/oauth2/applications/@me")] == [200]
    first = fake.gateway_connections[0]
    assert first["path"] == "/gateway"
    assert first["query"] == {"v": "10", "encoding": "json", "compress": "zlib-stream"}
    identify = next(p["d"] for p in fake.received if p["op"] == 2)
    assert identify["token"] == fake.token
    assert identify["intents"] == client.intents.value
    assert identify["shard"] == [0, 1]

    assert client.user is not None and client.user.id == int(fake.bot_user["id"])
    assert client.application_id == int(fake.application_id)
    guild = client.get_guild(int(fake.guild_id))
    assert guild is not None and guild.name == "Opsroom Test"
    assert [c.name for c in guild.text_channels] == ["general"]
    assert [c.name for c in guild.categories] == ["Incidents"]
    assert guild.default_role.name == "@everyone"
    assert guild.member_count == 3 and guild.chunked
    alice = guild.get_member(int(fake.users[0]["id"]))
    assert alice is not None and alice.display_name == "Alice"
    assert guild.owner_id == alice.id
    assert guild.me.guild_permissions.manage_channels


async def test_command_tree_sync_puts_guild_commands(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    synced = await client.tree.sync(guild=discord.Object(id=int(fake.guild_id)))

    put = fake.calls_to("PUT", "/applications/{application_id}/guilds/{guild_id}/commands")
    assert [c.status for c in put] == [200]
    body = {command["name"]: command for command in put[0].json}
    assert set(body) == {"incident", "slow"}
    assert body["incident"]["options"] == [
        {"type": 3, "name": "text", "description": "What to do", "required": True}
    ]
    registered = {c["name"]: int(c["id"]) for c in fake.commands(fake.guild_id)}
    assert {c.name: c.id for c in synced} == registered

    again = await client.tree.sync(guild=discord.Object(id=int(fake.guild_id)))
    assert {c.name: c.id for c in again} == registered  # bulk overwrite keeps ids


async def test_slash_command_interaction_is_answered(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    await client.tree.sync(guild=discord.Object(id=int(fake.guild_id)))

    sent = await fake.invoke_command("incident", {"text": "declare db is down"}, user="bob")

    response = await fake.wait_for(lambda: fake.interaction_response(sent["id"]),
                                   what="the interaction callback")
    assert response["type"] == 4
    assert response["data"]["content"] == "ack: declare db is down"
    assert response["query"].get("with_response") in ("1", "true")
    interaction, text = client.invocations[0]
    assert text == "declare db is down"
    assert isinstance(interaction.user, discord.Member)
    assert interaction.user.id == int(fake.users[1]["id"])
    assert interaction.channel_id == int(fake.general_channel_id)
    [reply] = fake.replies(sent["id"])
    assert reply["type"] == 20 and reply["author"]["id"] == fake.bot_user["id"]
    assert reply in fake.messages(fake.general_channel_id)


async def test_deferred_response_edit_and_ephemeral_followup(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    await client.tree.sync(guild=discord.Object(id=int(fake.guild_id)))

    sent = await fake.invoke_command("slow")

    await fake.wait_for_call("POST", "/webhooks/{application_id}/{token}", status=200)
    assert fake.interaction_response(sent["id"])["type"] == 5
    original, followup = fake.replies(sent["id"])
    assert original["content"] == "done thinking" and not original["flags"] & 128
    assert followup["content"] == "only you can see this" and followup["flags"] & 64
    assert followup not in fake.messages(fake.general_channel_id)


async def test_button_opens_modal_and_submit_reaches_the_modal(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    submitted: list[str] = []
    message = await general(fake, client).send("Review incident", view=ReviewView(submitted))
    stored = fake.message(fake.general_channel_id, message.id)
    assert stored is not None and stored["components"][0]["components"][0]["label"] == "Create"

    click = await fake.click(stored)
    opened = await fake.wait_for(lambda: fake.interaction_response(click["id"]))
    assert opened["type"] == 9 and opened["data"]["custom_id"] == "incident-modal"

    submit = await fake.submit_modal("incident-modal", {"summary": "database is down"})
    await fake.wait_for(lambda: fake.interaction_response(submit["id"]), what="modal answer")
    assert submitted == ["database is down"]
    assert fake.replies(submit["id"])[0]["content"] == "saved: database is down"


async def test_send_message_and_pin_it(fake: FakeDiscord, client: RecordingClient) -> None:
    channel = general(fake, client)
    echoed = asyncio.ensure_future(client.wait_for(
        "message", check=lambda m: m.author == client.user, timeout=TIMEOUT))

    message = await channel.send("Incident #1", embed=discord.Embed(title="Summary"))
    await message.pin()

    stored = fake.message(channel.id, message.id)
    assert stored is not None
    assert stored["author"]["id"] == fake.bot_user["id"]
    assert stored["embeds"][0]["title"] == "Summary" and stored["pinned"]
    assert [m["id"] for m in fake.pins(channel.id)] == [str(message.id)]
    assert [c.status for c in fake.calls_to(
        "PUT", "/channels/{channel_id}/messages/pins/{message_id}")] == [204]
    assert (await echoed).id == message.id  # MESSAGE_CREATE came back over the gateway
    assert [m.id async for m in channel.pins()] == [message.id]


async def test_rate_limited_route_is_retried_after_retry_after(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    channel = general(fake, client)
    fake.rate_limit("POST", "/channels/{channel_id}/messages", times=2, retry_after=0.05)
    loop = asyncio.get_running_loop()
    started = loop.time()

    await channel.send("after the 429s")

    assert loop.time() - started >= 0.1
    statuses = [c.status for c in fake.calls_to("POST", f"/channels/{channel.id}/messages")]
    assert statuses == [429, 429, 200]
    assert [m["content"] for m in fake.messages(channel.id)] == ["after the 429s"]


async def test_dropped_connection_resumes_and_replays_missed_events(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    [session_id] = fake.session_ids()
    seen = asyncio.ensure_future(client.wait_for(
        "message", check=lambda m: m.content == "posted while offline", timeout=TIMEOUT))
    resumed = asyncio.ensure_future(client.wait_for("resumed", timeout=TIMEOUT))

    await fake.drop_connection()
    assert not fake.connected
    await fake.post_message(fake.general_channel_id, "posted while offline", author="alice")

    message = await seen
    await resumed
    assert message.author.id == int(fake.users[0]["id"])
    [resume] = fake.resume_payloads()
    assert resume["session_id"] == session_id and resume["token"] == fake.token
    missed = fake.dispatched("MESSAGE_CREATE")[-1]
    assert missed["s"] > resume["seq"]  # only the RESUME replay could deliver it
    assert fake.gateway_connections[-1]["path"] == "/resume-gateway"
    assert fake.identify_count() == 1


async def test_reactions_reach_the_client_with_member_and_emoji(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    posted = await fake.post_message(fake.general_channel_id, "p99 latency 5s", author="alice")
    added = asyncio.ensure_future(client.wait_for("raw_reaction_add", timeout=TIMEOUT))
    removed = asyncio.ensure_future(client.wait_for("raw_reaction_remove", timeout=TIMEOUT))

    await fake.react(fake.general_channel_id, posted["id"], "📌", user="bob")
    await fake.unreact(fake.general_channel_id, posted["id"], "📌", user="bob")

    add, remove = await added, await removed
    assert add.emoji.name == "📌" and add.message_id == int(posted["id"])
    assert add.member is not None and add.member.id == int(fake.users[1]["id"])
    assert add.message_author_id == int(fake.users[0]["id"])
    assert add.type is discord.ReactionType.normal and not add.burst
    assert remove.user_id == int(fake.users[1]["id"]) and remove.emoji.name == "📌"


async def test_channel_thread_and_permission_routes(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    guild = client.get_guild(int(fake.guild_id))
    assert guild is not None
    bob = guild.get_member(int(fake.users[1]["id"]))
    assert bob is not None
    overwrites: dict[Any, discord.PermissionOverwrite] = {
        guild.default_role: discord.PermissionOverwrite(view_channel=False),
        guild.me: discord.PermissionOverwrite(view_channel=True),
    }

    channel = await guild.create_text_channel(
        "inc 1 db down", category=guild.categories[0], topic="SEV1", overwrites=overwrites)
    await fake.wait_for(lambda: client.get_channel(channel.id), what="CHANNEL_CREATE")
    timeline = await channel.send("Timeline")
    thread = await timeline.create_thread(name="Timeline")
    await thread.add_user(bob)
    await channel.set_permissions(bob, view_channel=True)
    await channel.edit(name="inc 1 resolved", topic="resolved")

    stored = fake.channel(channel.id)
    assert stored is not None
    assert stored["name"] == "inc-1-resolved" and stored["topic"] == "resolved"
    assert stored["parent_id"] == fake.category_id
    by_id = {o["id"]: o for o in stored["permission_overwrites"]}
    assert by_id[fake.guild_id]["deny"] == str(1 << 10)  # VIEW_CHANNEL
    assert by_id[str(bob.id)] == {"id": str(bob.id), "type": 1, "allow": str(1 << 10),
                                  "deny": "0"}
    assert thread.id == timeline.id and thread.type is discord.ChannelType.public_thread
    assert [t["id"] for t in fake.threads(channel.id)] == [str(thread.id)]
    assert str(bob.id) in fake.thread_members(thread.id)
    await fake.wait_for(lambda: client.get_channel(thread.id), what="THREAD_CREATE")


async def test_unknown_route_answers_discord_404_and_is_recorded(
    fake: FakeDiscord, client: RecordingClient
) -> None:
    with pytest.raises(discord.NotFound) as raised:
        await client.http.request(discord.http.Route("GET", "/nowhere/{thing}", thing=1))

    assert raised.value.status == 404 and raised.value.code == 0
    assert raised.value.text == "404: Not Found"
    assert (fake.calls[-1].method, fake.calls[-1].path, fake.calls[-1].status) == (
        "GET", "/nowhere/1", 404)


async def test_client_shuts_down_cleanly_and_route_base_is_restored(fake: FakeDiscord) -> None:
    original = discord.http.Route.BASE
    async with running_client(fake) as bot:
        assert discord.http.Route.BASE == fake.api_base

    assert discord.http.Route.BASE == original
    assert bot.is_closed()
    await fake.wait_for(lambda: not fake.connected, what="the websocket to close")
    closing = [t for t in asyncio.all_tasks() if "discord" in repr(t.get_coro())]
    assert closing == []
