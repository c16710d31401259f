"""Discord interaction-to-response: how long from INTERACTION_CREATE to the bot's callback.

What is measured
    The time from the moment the fake Discord starts dispatching an INTERACTION_CREATE (a slash
    command) on the gateway to the moment it receives the bot's interaction callback
    (`POST /interactions/{id}/{token}/callback`), for two commands:

    list   `/incident list`: one read transaction (open incidents) and an ephemeral answer.
    note   `/incident note text:<...>` in an incident channel: one write transaction (a timeline
           entry and its outbox rows) and an ephemeral answer. The mirror runs in the
           background as it does in production, so the note's deliveries (post in the thread,
           summary edit) compete with the answer as they would for real.

    opsroom  Opsroom's DiscordEdge: the real command tree, service and SQLite store.
    bare     a discord.py AutoShardedClient with an `/incident` group whose `list` and `note`
             only answer "ok" (ephemeral): the floor that discord.py, the websocket, zlib and
             the loopback HTTP round trip impose on any bot.

Why the baseline is fair
    Both clients are the same discord.py, the same intents, against the same fake on the same
    loopback port in the same process and run, one interaction at a time (the next is sent
    only when the bot is idle and the mirror has sent everything), after the same warm-up.
    Phases alternate (opsroom, bare, opsroom, bare...) so a change in machine load hits both.
    The ratio opsroom/bare is what Opsroom's own work (parsing the options, the transaction,
    rendering the answer) costs on top of the floor.

p99 is the nearest-rank percentile over every sample of every round: with the default n=300
per phase and 2 rounds (600 per command and client) it is the sixth slowest, not the maximum;
the table prints n next to it.

Run it as `python -m bench.discord_interaction [--n 300] [--rounds 2]`. It prints a table, then
one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from adapters.discord.app import DiscordEdge, intents
from bot.catalog import load_catalog
from bot.mirror import Backoff, Mirror
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.fakes.discord import FakeDiscord

WARM_UP = 5  # interactions per command and phase before timing
COMMANDS = ("list", "note")
JSON = dict[str, Any]


class TimedFake(FakeDiscord):
    """The fake Discord, noting when each interaction callback arrives."""

    def __init__(self) -> None:
        super().__init__()
        self.answered: dict[str, float] = {}
        self._waiters: dict[str, asyncio.Event] = {}

    async def _interaction_callback(self, call: Any, interaction_id: str, token: str) -> Any:
        self.answered.setdefault(interaction_id, time.perf_counter())
        if interaction_id in self._waiters:
            self._waiters[interaction_id].set()
        return await super()._interaction_callback(call, interaction_id, token)

    async def timed(self, payload: JSON) -> float:
        """Dispatch an interaction; seconds until its callback arrived."""
        done = self._waiters.setdefault(payload["id"], asyncio.Event())
        started = time.perf_counter()
        await self.dispatch("INTERACTION_CREATE", payload)
        await asyncio.wait_for(done.wait(), timeout=10)
        del self._waiters[payload["id"]]
        return self.answered[payload["id"]] - started


def options(command: str, n: int) -> list[JSON]:
    sub: JSON = {"type": 1, "name": command, "options": []}
    if command == "note":
        sub["options"] = [{"type": 3, "name": "text", "value": f"bench note {n}"}]
    return [sub]


class BareClient(discord.AutoShardedClient):
    """The floor: `/incident list` and `/incident note` that only answer."""

    def __init__(self, guild_id: int) -> None:
        super().__init__(intents=intents(), guild_ready_timeout=0.05)
        self.tree = app_commands.CommandTree(self)
        self.guild = discord.Object(id=guild_id)
        group = app_commands.Group(name="incident", description="Run incidents")

        @group.command(name="list", description="List incidents")
        async def list_(interaction: discord.Interaction) -> None:
            await interaction.response.send_message("ok", ephemeral=True)

        @group.command(name="note", description="Add a note")
        async def note(interaction: discord.Interaction, text: str) -> None:
            await interaction.response.send_message("ok", ephemeral=True)

        self.tree.add_command(group, guild=self.guild)

    async def setup_hook(self) -> None:
        await self.tree.sync(guild=self.guild)


class Bench:
    def __init__(self, fake: TimedFake, workdir: Path) -> None:
        self.fake = fake
        self.catalog = load_catalog()
        self.engine = make_engine(f"sqlite:///{workdir / 'bench.db'}")
        self.store = SqlStore(self.engine)
        self.mirror = self.new_mirror()
        self.service = IncidentService(store=self.store, catalog=self.catalog,
                                       suggester=HeuristicSuggester(), platforms=["discord"],
                                       notify=lambda: self.mirror.wake())
        self.samples: dict[str, dict[str, list[float]]] = {
            "opsroom": {c: [] for c in COMMANDS}, "bare": {c: [] for c in COMMANDS}}
        self.incident_channel = ""
        self.sent = 0

    def new_mirror(self) -> Mirror:
        return Mirror(store=self.store, ports={}, catalog=self.catalog,
                      backoff=Backoff(base=0.01, cap=0.5))

    async def setup(self) -> None:
        await upgrade(self.engine)
        alice = self.fake.users[0]
        actor = Actor("discord", alice["id"], "Alice", f"<@{alice['id']}>")
        where = ChannelRef("discord", self.fake.general_channel_id, workspace=self.fake.guild_id)
        await self.service.declare(actor=actor, where=where, description="bench: checkout slow",
                                   title="Checkout slow", type="performance", severity="sev3",
                                   priority="p2")

    async def measure(self, client: str, n: int, settle: Callable[[], Awaitable[None]]) -> None:
        for i in range(WARM_UP + n):
            for command in COMMANDS:
                channel = self.incident_channel if command == "note" else None
                self.sent += 1
                payload = self.fake.slash_command_payload(
                    "incident", options(command, self.sent), user="alice", channel_id=channel)
                seconds = await self.fake.timed(payload)
                await settle()
                if i >= WARM_UP:
                    self.samples[client][command].append(seconds)

    async def opsroom_phase(self, n: int) -> None:
        from adapters.inbox import Inbox, InboxWorker

        self.mirror = self.new_mirror()  # a mirror runs once: each phase has its own
        inbox = Inbox(self.store)
        worker = InboxWorker(store=self.store, appliers={}, notify=self.mirror.wake,
                             turns=inbox.turns)
        inbox.on_stored = worker.wake
        edge = DiscordEdge(service=self.service, store=self.store, catalog=self.catalog,
                           token=self.fake.token, inbox=inbox, api_url=self.fake.api_base,
                           guild_id=int(self.fake.guild_id), guild_ready_timeout=0.05)
        worker.appliers["discord"] = edge
        self.mirror.ports["discord"] = edge.chat
        mirror_task = asyncio.create_task(self.mirror.run(poll=0.5))
        worker_task = asyncio.create_task(worker.run())
        await edge.start()
        try:
            await edge.wait_ready()
            assert await self.mirror.drain(timeout=10)
            if not self.incident_channel:
                self.incident_channel = next(
                    c["id"] for c in self.fake.channels.values() if c["name"].startswith("inc-1-"))

            async def settle() -> None:
                await asyncio.wait_for(edge.idle(), timeout=10)
                assert await worker.drain(timeout=10)
                assert await self.mirror.drain(timeout=10)
                await asyncio.wait_for(edge.idle(), timeout=10)

            await self.measure("opsroom", n, settle)
        finally:
            await worker.stop(grace=10.0)
            worker_task.cancel()
            await asyncio.gather(worker_task, return_exceptions=True)
            # Stopped, not cancelled: a pass cut mid-transaction could leave a connection busy.
            await self.mirror.stop()
            await asyncio.wait_for(mirror_task, timeout=10)
            await edge.stop()

    async def bare_phase(self, n: int) -> None:
        client = BareClient(int(self.fake.guild_id))
        runner = asyncio.create_task(client.start(self.fake.token))
        try:
            await self.fake.wait_for(lambda: client.is_ready() or runner.done(), timeout=10)
            if runner.done():
                runner.result()

            async def settle() -> None:
                await asyncio.sleep(0)

            await self.measure("bare", n, settle)
        finally:
            await client.close()
            await asyncio.wait({runner}, timeout=5)

    async def close(self) -> None:
        await self.engine.dispose()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def summarize(samples: dict[str, dict[str, list[float]]]) -> JSON:
    out: JSON = {}
    for client, by_command in samples.items():
        out[client] = {}
        for command, values in by_command.items():
            out[client][command] = {
                "n": len(values), "p50_ms": round(percentile(values, 50) * 1000, 3),
                "p99_ms": round(percentile(values, 99) * 1000, 3),
                "mean_ms": round(statistics.fmean(values) * 1000, 3)}
    return out


def print_table(result: JSON) -> None:
    print("Discord interaction-to-response (INTERACTION_CREATE dispatched -> callback received)")
    print()
    print(f"{'client':<10}{'command':<10}{'n':>5}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}")
    for client in ("opsroom", "bare"):
        for command in COMMANDS:
            row = result["clients"][client][command]
            print(f"{client:<10}{command:<10}{row['n']:>5}{row['p50_ms']:>10.2f}"
                  f"{row['p99_ms']:>10.2f}{row['mean_ms']:>10.2f}")
    for command in COMMANDS:
        ratio = result["ratio_opsroom_over_bare"][command]
        print(f"{'ratio':<10}{command:<10}{'':>5}{ratio['p50']:>10.2f}{ratio['p99']:>10.2f}")
    print()


async def run(n: int, rounds: int) -> JSON:
    per_phase = max(1, n // rounds)
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-") as tmp:
        previous = discord.http.Route.BASE
        async with TimedFake() as fake:
            discord.http.Route.BASE = fake.api_base  # what DiscordEdge.start does, for both
            bench = Bench(fake, Path(tmp))
            try:
                await bench.setup()
                for r in range(rounds):
                    count = per_phase if r < rounds - 1 else n - per_phase * (rounds - 1)
                    await bench.opsroom_phase(count)
                    discord.http.Route.BASE = fake.api_base
                    await bench.bare_phase(count)
            finally:
                await bench.close()
                discord.http.Route.BASE = previous
    clients = summarize(bench.samples)
    ratios = {command: {
        "p50": round(clients["opsroom"][command]["p50_ms"] / clients["bare"][command]["p50_ms"], 2),
        "p99": round(clients["opsroom"][command]["p99_ms"] / clients["bare"][command]["p99_ms"], 2),
    } for command in COMMANDS}
    return {"bench": "discord_interaction", "n": n, "rounds": rounds,
            "python": sys.version.split()[0], "discord.py": discord.__version__,
            "clients": clients, "ratio_opsroom_over_bare": ratios}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=300, help="timed interactions per command, "
                        "client and round (default 300)")
    parser.add_argument("--rounds", type=int, default=2, help="alternating phases per client")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    result = asyncio.run(run(args.n, max(1, args.rounds)))
    print_table(result)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
