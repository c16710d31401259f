"""Opsroom's Discord edge, a real discord.py client, against the fake Discord (REST + gateway).

The client reaches the fake only the way production reaches Discord: `DISCORD_API_URL` (the
fake's REST base) is assigned to `discord.http.Route.BASE` by `DiscordEdge.start`, and the
AutoShardedClient asks `GET /gateway/bot` for the websocket URL.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.discord.app import DiscordEdge
from adapters.discord.commands import DISCORD_PATHS
from adapters.http import Readiness
from adapters.inbox import Inbox, InboxWorker
from bot.catalog import Catalog
from bot.mirror import Backoff, Mirror
from bot.ports import Suggester
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.store import SqlStore
from tests.adapters.inbox_support import applying
from tests.conftest import close_engine, open_engine
from tests.fakes.discord import FakeDiscord

JSON = dict[str, Any]
EPHEMERAL = 1 << 6
SUB_COMMAND, SUB_COMMAND_GROUP, USER = 1, 2, 6


@asynccontextmanager
async def running_edge(fake: FakeDiscord, *, service: IncidentService, store: SqlStore,
                       catalog: Catalog, mirror: Mirror, guild: bool = True,
                       answer_within: float = 2.0, readiness: Readiness | None = None,
                       inbox: tuple[Inbox, InboxWorker] | None = None,
                       guild_ready_timeout: float = 0.05, gateway: bool = True,
                       ) -> AsyncIterator[tuple[DiscordEdge, Readiness]]:
    """A started DiscordEdge wired into `mirror` and the inbox (`inbox`, or one of its own);
    closed and Route.BASE restored afterwards."""
    if inbox is None:
        async with applying(store, mirror) as own, running_edge(
                fake, service=service, store=store, catalog=catalog, mirror=mirror, guild=guild,
                answer_within=answer_within, readiness=readiness, inbox=own,
                guild_ready_timeout=guild_ready_timeout, gateway=gateway) as started:
            yield started
        return
    previous = discord.http.Route.BASE
    edge = DiscordEdge(service=service, store=store, catalog=catalog, token=fake.token,
                       inbox=inbox[0], api_url=fake.api_base,
                       guild_id=int(fake.guild_id) if guild else None,
                       answer_within=answer_within, guild_ready_timeout=guild_ready_timeout,
                       gateway=gateway)
    inbox[1].appliers["discord"] = edge
    mirror.ports["discord"] = edge.chat
    readiness = readiness if readiness is not None else Readiness()
    try:
        await edge.start(readiness)
        await edge.wait_ready(timeout=5.0)
        yield edge, readiness
    finally:
        await edge.stop()
        discord.http.Route.BASE = previous


@dataclass
class DiscordRig:
    fake: FakeDiscord
    edge: DiscordEdge
    service: IncidentService
    mirror: Mirror
    store: SqlStore
    readiness: Readiness
    worker: InboxWorker

    # --- people doing things ------------------------------------------------------------

    def options(self, path: tuple[str, ...], values: dict[str, Any]) -> list[JSON]:
        """`/incident <path...>` options in Discord's shape, typed from the registered schema.
        A lone grammar word is looked up where the tree has it (`DISCORD_PATHS`)."""
        registered = next(c for c in self.fake.commands(self.fake.guild_id)
                          if c["name"] == "incident")
        schema: list[JSON] = registered["options"]
        if len(path) == 1 and not any(o["name"] == path[0] for o in schema):
            # A grammar word that lives in a group on Discord: "assign" is "role assign".
            path = DISCORD_PATHS.get(path[0], path)
        chain: list[JSON] = []
        for name in path:
            node = next((o for o in schema if o["name"] == name), None)
            assert node is not None, f"/incident has no {' '.join(path)}"
            chain.append(node)
            schema = node.get("options", [])
        leaf: list[JSON] = []
        for name, value in values.items():
            option = next((o for o in schema if o["name"] == name), None)
            assert option is not None, f"/incident {' '.join(path)} has no option {name}"
            if option["type"] == USER and not str(value).isdigit():
                value = self.fake.user(str(value))["id"]
            leaf.append({"type": option["type"], "name": name, "value": value})
        options = leaf
        for node in reversed(chain):
            options = [{"type": node["type"], "name": node["name"], "options": options}]
        return options

    async def command(self, *path: str, user: str = "alice", channel_id: str | None = None,
                      **values: Any) -> JSON:
        """Someone runs `/incident <path> <options>`; returns the interaction payload."""
        payload = self.fake.slash_command_payload(
            "incident", self.options(path, values), user=user, channel_id=channel_id)
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def run(self, *path: str, **kwargs: Any) -> JSON:
        """A command, then everything it caused; returns the answer the person saw."""
        payload = await self.command(*path, **kwargs)
        await self.settle()
        return self.answer(payload)

    async def autocomplete(self, *path: str, focused: str, user: str = "alice",
                           channel_id: str | None = None, **values: Any) -> list[JSON]:
        """Someone types into option `focused` of `/incident <path>`; returns the choices the
        bot offered."""
        options = self.options(path, values)
        leaf = options
        while leaf and "options" in leaf[0]:
            leaf = leaf[0]["options"]
        for option in leaf:
            if option["name"] == focused:
                option["focused"] = True
        payload = self.fake.autocomplete_payload("incident", options, user=user,
                                                 channel_id=channel_id)
        await self.fake.dispatch("INTERACTION_CREATE", payload)
        response = await self.fake.wait_for(lambda: self.fake.interaction_response(payload["id"]),
                                            what="the autocomplete answer")
        assert response["type"] == 8, response
        choices: list[JSON] = response["data"]["choices"]
        return choices

    def answer(self, payload: JSON) -> JSON:
        """The (last) message an interaction's answer left."""
        replies = self.fake.replies(payload["id"])
        assert replies, f"interaction {payload['id']} was not answered"
        return replies[-1]

    async def click(self, message: JSON, label: str, user: str = "alice") -> JSON:
        stored = self.fake.message(message["channel_id"], message["id"]) or \
            self.fake._find_message(message["id"]) or message
        payload = await self.fake.click(stored, button_id(stored, label), user=user)
        await self.settle()
        return payload

    # --- waiting ------------------------------------------------------------------------

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait until the bot has received every gateway event, its handlers are done and the
        mirror has sent everything; repeat while that causes more events."""
        last: tuple[int, ...] | None = None
        while True:
            await self.fake.wait_for(
                lambda: self.edge.gateway_events >= len(self.fake.dispatched()),
                timeout=timeout, what="the bot to receive every gateway event")
            await asyncio.sleep(0.005)  # let the handler tasks of those events start
            await asyncio.wait_for(self.edge.idle(), timeout)
            assert await self.worker.drain(timeout=timeout)
            assert await self.mirror.drain(timeout=timeout)
            state = (len(self.fake.dispatched()), len(self.fake.calls), self.edge.gateway_events,
                     self.edge.in_flight)
            if state == last:
                return
            last = state

    # --- what is there ------------------------------------------------------------------

    def incident_channel(self, number: int = 1) -> JSON:
        found = next((ch for ch in self.fake.channels.values() if ch["type"] == 0
                      and ch["name"].startswith(f"inc-{number}-")), None)
        assert found is not None, f"no Discord channel for incident #{number}"
        return found

    def timeline_thread(self, channel_id: str) -> JSON:
        [thread] = self.fake.threads(channel_id)
        return thread

    def bot_texts(self, channel_id: str) -> list[str]:
        """What the bot posted in a channel or thread: content, or the embed's description."""
        return [text_of(m) for m in self.fake.messages(channel_id)
                if m["author"]["id"] == self.fake.bot_user["id"] and not m.get("webhook_id")]


def text_of(message: JSON) -> str:
    if message.get("content"):
        return str(message["content"])
    embed = (message.get("embeds") or [{}])[0]
    return str(embed.get("description") or embed.get("title") or "")


def button_id(message: JSON, label: str) -> str:
    for row in message.get("components", []):
        for component in row.get("components", []):
            if component.get("label") == label:
                return str(component["custom_id"])
    raise KeyError(f"message {message['id']} has no button {label!r}")


def buttons(message: JSON) -> list[str]:
    return [c["custom_id"] for row in message.get("components", [])
            for c in row.get("components", [])]


def build_core(engine: AsyncEngine, catalog: Catalog, platforms: list[str],
               suggester: Suggester | None = None) -> tuple[SqlStore, Mirror, IncidentService]:
    store = SqlStore(engine)
    mirror = Mirror(store=store, ports={}, catalog=catalog, backoff=Backoff(base=0.001, cap=0.02))
    service = IncidentService(store=store, catalog=catalog,
                              suggester=suggester or HeuristicSuggester(), platforms=platforms,
                              notify=mirror.wake)
    return store, mirror, service


@asynccontextmanager
async def discord_rig(tmp_path: Path, catalog: Catalog, *, backend: str = "sqlite",
                      guild: bool = True, answer_within: float = 2.0,
                      suggester: Suggester | None = None) -> AsyncIterator[DiscordRig]:
    engine, schema = await open_engine(backend, tmp_path)
    try:
        async with FakeDiscord() as fake:
            store, mirror, service = build_core(engine, catalog, ["discord"], suggester)
            async with applying(store, mirror) as inbox, \
                    running_edge(fake, service=service, store=store, catalog=catalog,
                                 mirror=mirror, guild=guild, answer_within=answer_within,
                                 inbox=inbox) as (edge, readiness):
                rig = DiscordRig(fake, edge, service, mirror, store, readiness, inbox[1])
                await rig.settle()
                yield rig
    finally:
        await close_engine(engine, schema)
