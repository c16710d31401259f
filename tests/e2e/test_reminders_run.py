"""`opsroom run` with the fake Slack fires reminders on time, and a `kill -9` while jobs are
claimed loses none and doubles none: after the restart each arrives once, and those that came
due while it was down say they are late."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot import commands as c
from bot.catalog import load_catalog
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.e2e.test_service import free_port, wait_healthy
from tests.fakes import slack as fs

ROOT = str(Path(__file__).resolve().parents[2])
INCIDENTS = 8
LATE = "Opsroom was not running"

pytestmark = pytest.mark.e2e


def short_cadence_catalog(tmp_path: Path) -> Path:
    data = yaml.safe_load((Path(ROOT) / "bot" / "opsroom.yaml").read_text())
    for severity in data["severities"]:
        severity["update_every"] = "4s"
        severity.pop("ack_within", None)
    data["action_digest"] = None
    path = tmp_path / "opsroom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def start(env: dict[str, str], cwd: Path) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "run", cwd=cwd, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )


def rows(db: Path, query: str) -> list[Any]:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute(query).fetchall()


def nudges(fake: fs.FakeSlack, channel_id: str) -> list[str]:
    return [m["text"] for m in fake.messages(channel_id) if m["text"].startswith("⏰")]


async def test_reminders_survive_kill_9_and_arrive_once(tmp_path: Path) -> None:
    db = tmp_path / "opsroom.db"
    port = free_port()
    catalog_path = short_cadence_catalog(tmp_path)
    async with fs.FakeSlack() as fake:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_"))}
        env.update({
            "DATABASE_URL": f"sqlite:///{db}",
            "OPSROOM_CATALOG": str(catalog_path),
            "OPSROOM_TICK_S": "1",
            "SLACK_BOT_TOKEN": fake.token,
            "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            "OPSROOM_HTTP_PORT": str(port),
            "PYTHONPATH": ROOT,
        })
        # Incidents declared by another replica sharing the database: the running one learns
        # of their jobs from its tick.
        engine = make_engine(f"sqlite:///{db}")
        await upgrade(engine)
        service = IncidentService(store=SqlStore(engine), catalog=load_catalog(catalog_path),
                                  suggester=HeuristicSuggester(), platforms=["slack"])
        alice = Actor("slack", fs.ALICE, "alice", f"<@{fs.ALICE}>")
        where = ChannelRef("slack", fake.general_id, workspace=fs.TEAM_ID)
        for n in range(INCIDENTS):
            await service.declare(actor=alice, where=where, description=f"api {n} is down",
                                  title=f"API {n} down", type="outage", severity="sev1",
                                  priority="p1")

        first = await start(env, tmp_path)
        await wait_healthy(f"http://127.0.0.1:{port}/healthz", first)
        # Kill it while it holds claims: freeze it (SIGSTOP) the moment a job is running; if
        # its claims are still held then, kill -9; if it had just finished, thaw it and wait
        # for the next period.
        held = 0
        for _ in range(5):
            for _ in range(3000):
                if rows(db, "SELECT count(*) FROM job WHERE state = 'running'")[0][0]:
                    break
                await asyncio.sleep(0.002)
            first.send_signal(signal.SIGSTOP)
            held = rows(db, "SELECT count(*) FROM job WHERE state = 'running'")[0][0]
            if held:
                break
            first.send_signal(signal.SIGCONT)
        first.kill()
        await first.wait()
        assert held >= 1, "no job was claimed when the process was killed"
        await asyncio.sleep(5)  # down: the next period ends meanwhile
        second = await start(env, tmp_path)
        try:
            await wait_healthy(f"http://127.0.0.1:{port}/healthz", second)
            names = {n: f"inc-{n}-api-{n - 1}-down" for n in range(1, INCIDENTS + 1)}
            channels: dict[int, str] = {}
            done = False
            for _ in range(600):
                channels = {
                    n: ch["id"] for n, name in names.items() if (ch := fake.channel_by_name(name))
                }
                done = (
                    len(channels) == INCIDENTS
                    and all(len(nudges(fake, cid)) >= 2 for cid in channels.values())
                    and any(LATE in t for cid in channels.values() for t in nudges(fake, cid))
                )
                if done:
                    break
                await asyncio.sleep(0.05)
            assert done, {n: nudges(fake, cid) for n, cid in channels.items()}
            # Quiet it down (resolve), then let the mirror deliver everything recorded.
            for n in range(1, INCIDENTS + 1):
                reply = await service.handle(c.Resolve(incident=n), actor=alice, where=where)
                assert reply.ok, reply.text
            for _ in range(600):
                if not rows(db, "SELECT count(*) FROM delivery WHERE state = 'pending'")[0][0]:
                    break
                await asyncio.sleep(0.05)
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(second.communicate(), timeout=30)
        await engine.dispose()
        assert second.returncode == 0, err.decode()

        recorded = rows(db, "SELECT incident_id, text FROM timelineentry WHERE kind = 'reminder'")
        for n, channel_id in channels.items():
            got = Counter(nudges(fake, channel_id))
            want = Counter(f"⏰ {text}" for iid, text in recorded if iid == n)
            assert got == want, (n, got, want)  # every reminder recorded arrived, once
        texts = [t for cid in channels.values() for t in nudges(fake, cid)]
        assert any(LATE in t and "late by" in t for t in texts)
        # One overdue announcement per incident, in the announcement channel.
        overdue = Counter(
            m["text"].split("]")[0] for m in fake.messages(fake.incidents_id)
            if "is overdue" in m["text"]
        )
        assert len(overdue) == INCIDENTS and set(overdue.values()) == {1}, overdue
