"""Discord is ready as soon as the gateway's READY has come and the guild the bot works in has
arrived, not after discord.py's guild_ready_timeout of quiet (2 s by default)."""

from __future__ import annotations

from pathlib import Path

from bot.catalog import Catalog
from bot.ports import ChannelRef
from tests.adapters.discord_harness import build_core, running_edge
from tests.conftest import ALICE, close_engine, open_engine
from tests.fakes.discord import FakeDiscord


async def test_ready_on_ready_and_the_guild_without_the_guild_timeout(
    tmp_path: Path, catalog: Catalog
) -> None:
    engine, schema = await open_engine("sqlite", tmp_path)
    try:
        async with FakeDiscord() as fake:
            store, mirror, service = build_core(engine, catalog, ["discord"])
            # discord.py alone would call on_ready only after 60 s without a new guild; the
            # harness waits at most 5 s for the edge to be ready.
            async with running_edge(fake, service=service, store=store, catalog=catalog,
                                    mirror=mirror, guild_ready_timeout=60.0) as (edge, ready):
                assert edge.ready
                assert ready.ok
                guild = edge.client.get_guild(int(fake.guild_id))
                assert guild is not None and not guild.unavailable
    finally:
        await close_engine(engine, schema)


async def test_a_rest_only_replica_posts_without_a_gateway(
    tmp_path: Path, catalog: Catalog
) -> None:
    """DISCORD_GATEWAY=false: ready once logged in, never connects to the gateway, and its
    mirror still opens the incident's channel and posts there through the REST API."""
    engine, schema = await open_engine("sqlite", tmp_path)
    try:
        async with FakeDiscord() as fake:
            store, mirror, service = build_core(engine, catalog, ["discord"])
            async with running_edge(fake, service=service, store=store, catalog=catalog,
                                    mirror=mirror, gateway=False) as (edge, ready):
                assert edge.ready and ready.ok
                where = ChannelRef("discord", fake.general_channel_id,
                                   workspace=str(fake.guild_id))
                reply = await service.handle_text("declare checkout is down", actor=ALICE,
                                                  where=where)
                assert reply.ok, reply.text
                assert await mirror.drain(timeout=5)
                async with store.unit() as u:
                    incident = await u.incident(1)
                    assert incident is not None and incident.id is not None
                    [link] = await u.links(incident.id)
                assert link.channel_id is not None and link.summary_message_id is not None
                channel = fake.channel(link.channel_id)
                assert channel is not None and channel["name"].startswith("inc-1-")
                assert [m["id"] for m in fake.messages(link.channel_id)][:1] == [
                    link.summary_message_id]
            assert fake.identify_count() == 0
    finally:
        await close_engine(engine, schema)
