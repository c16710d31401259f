"""Paging with real `opsroom run` processes and the fake Slack: an escalation survives a
`kill -9` between two steps (the step that came due while it was down fires once at start and
says it is late; nothing before it is sent again), acknowledging stops it, and two replicas on
one PostgreSQL database page each person once per step."""

from __future__ import annotations

import asyncio
import signal
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from bot.catalog import load_catalog
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.conftest import needs_pg
from tests.e2e.test_inbox import environment
from tests.e2e.test_reminders_run import rows
from tests.e2e.test_replicas import command, declare, fresh_database, post, start_replica
from tests.e2e.test_runbooks_run import start, until
from tests.e2e.test_service import free_port, wait_healthy
from tests.fakes import slack as fs

ROOT = str(Path(__file__).resolve().parents[2])
LATE = "Opsroom was not running"

pytestmark = pytest.mark.e2e


def paging_catalog(tmp_path: Path, waits: list[str]) -> Path:
    """The default catalog, quietened, with alice, bob and carol and the policy `drill`: one
    step per person, in that order, each waiting `waits[i]` for an acknowledgement."""
    data = yaml.safe_load((Path(ROOT) / "bot" / "opsroom.yaml").read_text())
    data["action_digest"] = None
    for severity in data["severities"]:
        severity.pop("ack_within", None)
    data["workflows"] = []
    data["people"] = [{"name": "alice", "slack": fs.ALICE}, {"name": "bob", "slack": fs.BOB},
                      {"name": "carol", "slack": fs.CAROL}]
    data["escalation_policies"] = [{"name": "drill", "steps": [
        {"people": [who], "after": wait}
        for who, wait in zip(["alice", "bob", "carol"], waits, strict=True)]}]
    path = tmp_path / "opsroom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def dms(fake: fs.FakeSlack, user: str) -> list[dict[str, Any]]:
    """The bot's direct messages to `user`."""
    channel = fake.dm_channel(user)
    return fake.messages(channel) if channel else []


def lines(fake: fs.FakeSlack, channel: str) -> list[str]:
    """The paging lines the bot posted in `channel`."""
    return [m["text"] for m in fake.messages(channel)
            if m.get("bot_id") and m["text"].startswith(("📟", "⬆️", "⚠️", "✅"))]


def incident_channel(fake: fs.FakeSlack) -> str:
    """The id of the one channel the bot created ("" before it did)."""
    made = [c.response["channel"]["id"] for c in fake.calls_to("conversations.create")
            if c.response and c.response.get("ok")]
    return made[0] if made else ""


def job(db: Path, key: str) -> tuple[str, datetime]:
    """A job's state and due time."""
    [(state, due)] = rows(db, f"SELECT state, due_at FROM job WHERE key = '{key}'")
    at = datetime.fromisoformat(str(due))
    return str(state), at if at.tzinfo else at.replace(tzinfo=UTC)


async def until_past(moment: datetime, margin: float) -> None:
    """Wait until `margin` seconds after `moment` (a due time the process computed)."""
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds() + margin))


async def test_an_escalation_continues_after_kill_9_and_stops_when_acknowledged(
    tmp_path: Path,
) -> None:
    db = tmp_path / "opsroom.db"
    port = free_port()
    path = paging_catalog(tmp_path, ["2s", "3s", "2s"])
    log = tmp_path / "opsroom.log"
    async with fs.FakeSlack() as fake, httpx.AsyncClient(timeout=10) as client:
        env = environment(fake, f"sqlite:///{db}", port, OPSROOM_CATALOG=str(path),
                          OPSROOM_TICK_S="1")
        engine = make_engine(f"sqlite:///{db}")
        await upgrade(engine)
        service = IncidentService(store=SqlStore(engine), catalog=load_catalog(path),
                                  suggester=HeuristicSuggester(), platforms=["slack"])
        await service.declare(
            actor=Actor("slack", fs.ALICE, "alice", f"<@{fs.ALICE}>"),
            where=ChannelRef("slack", fake.general_id, workspace=fs.TEAM_ID),
            description="payments fail", title="Payments", type="outage", severity="sev2",
            priority="p2")
        await engine.dispose()

        def quiet() -> bool:
            """Every delivery recorded was made: a kill now doubles nothing (a DM carries no
            key a platform could dedupe on). A queue lease the dead process held is taken
            over at once by the restarted one (same host, pid gone)."""
            busy = rows(db, "SELECT count(*) FROM delivery WHERE state='pending'")
            return not busy[0][0]

        first = await start(env, tmp_path, log)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/healthz", first)
            await until(lambda: fake.channel_by_name("inc-1-payments"), "the incident channel")
            channel = fake.channel_by_name("inc-1-payments")["id"]  # type: ignore[index]
            await command(client, port, "page drill", channel)
            await until(lambda: len(dms(fake, fs.ALICE)) == 1 and quiet(), "step 1's DM")
        finally:
            first.kill()  # kill -9, before step 2 is due
            await first.wait()
        state, due = job(db, "esc:1:0:1")
        assert state == "pending", f"step 2 fired ({state}) before the kill: too slow a machine"
        # Down until step 2 is overdue by more than two ticks: it fires late at start.
        await until_past(due, 2.5)

        second = await start(env, tmp_path, log)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/healthz", second)
            await until(lambda: len(dms(fake, fs.BOB)) == 1 and quiet(), "step 2's DM")
            [page] = dms(fake, fs.BOB)
            buttons = [e for b in page["blocks"] if b["type"] == "actions"
                       for e in b["elements"]]
            [ack] = [b for b in buttons if b["text"]["text"] == "Acknowledge"]
            await post(client, port, fs.block_actions_body(
                ack["action_id"], ack["value"], channel_id=fake.dm_channel(fs.BOB) or "",
                message=page, user_id=fs.BOB))
            await until(lambda: any(t.startswith("✅") for t in lines(fake, channel)),
                        "the acknowledgement")
            state, due = job(db, "esc:1:0:2")
            assert state == "cancelled", state
            await until_past(due, 1.5)  # step 3's time passes, and a tick: nothing fires
            await until(quiet, "deliveries")
        finally:
            second.send_signal(signal.SIGTERM)
            await asyncio.wait_for(second.wait(), timeout=30)
        assert second.returncode == 0, log.read_text()[-3000:]

    assert [len(dms(fake, who)) for who in (fs.ALICE, fs.BOB, fs.CAROL)] == [1, 1, 0]
    assert "step 1" in dms(fake, fs.ALICE)[0]["text"]
    assert "step 2" in dms(fake, fs.BOB)[0]["text"]
    paged = lines(fake, channel)
    assert len(paged) == 3, paged
    assert paged[0] == f"📟 Paged <@{fs.ALICE}> (drill, step 1)"
    assert paged[1].startswith(f"⬆️ No acknowledgement after 2s: paging <@{fs.BOB}> (step 2) "
                               "(late by "), paged[1]
    assert paged[1].endswith(f"{LATE})"), paged[1]
    assert paged[2].startswith(f"✅ <@{fs.BOB}> acknowledged after "), paged[2]
    assert paged[2].endswith("(drill)"), paged[2]


@needs_pg
async def test_two_replicas_page_each_person_once_per_step(tmp_path: Path) -> None:
    ports = [free_port(), free_port()]
    path = paging_catalog(tmp_path, ["1s", "1s", "1s"])
    extra = {"OPSROOM_CATALOG": str(path), "OPSROOM_TICK_S": "1"}
    async with fresh_database() as url, fs.FakeSlack() as fake:
        procs = [await start_replica(url, fake, p, extra) for p in ports]
        try:
            for port, proc in zip(ports, procs, strict=True):
                await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            async with httpx.AsyncClient(timeout=10) as client:
                await declare(client, fake, ports, 0)
                await until(lambda: incident_channel(fake), "the incident channel")
                channel = incident_channel(fake)
                await command(client, ports[1], "page drill", channel)
                await until(lambda: any("nobody left" in t for t in lines(fake, channel)),
                            "the end of the chain")
            await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            logs = [(await asyncio.wait_for(p.communicate(), timeout=30))[1].decode()
                    for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    for step, who in enumerate((fs.ALICE, fs.BOB, fs.CAROL), start=1):
        got = [m["text"] for m in dms(fake, who)]
        assert len(got) == 1 and f"step {step}" in got[0], (who, got)
    assert lines(fake, channel) == [
        f"📟 Paged <@{fs.ALICE}> (drill, step 1)",
        f"⬆️ No acknowledgement after 1s: paging <@{fs.BOB}> (step 2)",
        f"⬆️ No acknowledgement after 1s: paging <@{fs.CAROL}> (step 3)",
        "⚠️ No acknowledgement after 1s: drill has nobody left to page",
    ], lines(fake, channel)
