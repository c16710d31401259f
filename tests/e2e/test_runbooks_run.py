"""`opsroom run` with the fake Slack runs a runbook with a `wait` and an HTTP step, and a
`kill -9` during each leaves nothing lost or doubled: after each restart the run resumes at the
step it was on; the HTTP request in flight when the process died is sent again with the same
Idempotency-Key (the documented at-least-once), every other effect happens once."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from bot import commands as c
from bot.catalog import load_catalog
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.e2e.test_reminders_run import rows
from tests.e2e.test_service import free_port, wait_healthy
from tests.fakes import slack as fs

ROOT = str(Path(__file__).resolve().parents[2])
SECRET = "kill9-secret-value"

pytestmark = pytest.mark.e2e


class Target:
    """The HTTP step's target: the first request hangs (the process is killed meanwhile)."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.auth: list[str] = []
        self.first = asyncio.Event()

    async def handle(self, request: web.Request) -> web.Response:
        self.keys.append(request.headers.get("Idempotency-Key", ""))
        self.auth.append(request.headers.get("Authorization", ""))
        if len(self.keys) == 1:
            self.first.set()
            await asyncio.sleep(30)
        return web.json_response({"ok": True})


@pytest.fixture
async def target() -> AsyncIterator[tuple[Target, str]]:
    t = Target()
    app = web.Application()
    app.router.add_post("/hook", t.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield t, f"http://127.0.0.1:{port}/hook"
    await runner.cleanup()


def catalog(tmp_path: Path, url: str) -> Path:
    data = yaml.safe_load((Path(ROOT) / "bot" / "opsroom.yaml").read_text())
    data["action_digest"] = None
    for severity in data["severities"]:
        severity.pop("ack_within", None)
    data["workflows"] = []
    data["runbooks"] = [{"name": "drill", "steps": [
        {"kind": "message", "text": "drill starts on #{{ incident.number }}"},
        {"kind": "wait", "duration": "2s"},
        {"kind": "http", "url": url, "timeout": "5s", "retries": 0,
         "headers": {"Authorization": "Bearer ${env:OPSROOM_SECRET_HOOK}"}},
        {"kind": "message", "text": "drill ends"},
    ]}]
    path = tmp_path / "opsroom.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


async def start(env: dict[str, str], cwd: Path, log: Path) -> asyncio.subprocess.Process:
    # The log goes to a file: a pipe nobody reads while it runs would fill and stall it.
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "run", cwd=cwd, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL, stderr=out,
        )


async def until(check: Any, what: str, seconds: float = 60.0) -> None:
    """Wait for `check` (a generous bound: a loaded CI machine is slow, a passing run is not)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while loop.time() < deadline:
        # In a thread: a blocked read must not stall this loop, which serves the fakes.
        if await asyncio.to_thread(check):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_run_resumes_after_kill_9_at_its_step(
    tmp_path: Path, target: tuple[Target, str]
) -> None:
    hook, url = target
    db = tmp_path / "opsroom.db"
    port = free_port()
    path = catalog(tmp_path, url)
    async with fs.FakeSlack() as fake:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_"))}
        env.update({
            "DATABASE_URL": f"sqlite:///{db}", "OPSROOM_CATALOG": str(path),
            "OPSROOM_TICK_S": "1", "SLACK_BOT_TOKEN": fake.token,
            "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
            "OPSROOM_HTTP_PORT": str(port), "PYTHONPATH": ROOT,
            "OPSROOM_SECRET_HOOK": SECRET, "OPSROOM_LOG_LEVEL": "DEBUG",
        })
        engine = make_engine(f"sqlite:///{db}")
        await upgrade(engine)
        service = IncidentService(store=SqlStore(engine), catalog=load_catalog(path),
                                  suggester=HeuristicSuggester(), platforms=["slack"])
        alice = Actor("slack", fs.ALICE, "alice", f"<@{fs.ALICE}>")
        where = ChannelRef("slack", fake.general_id, workspace=fs.TEAM_ID)
        log = tmp_path / "opsroom.log"

        async def kill(proc: asyncio.subprocess.Process) -> None:
            proc.kill()
            await proc.wait()

        def run_state() -> str:
            got = rows(db, "SELECT state FROM runbookrun")
            return str(got[0][0]) if got else ""

        first = await start(env, tmp_path, log)
        await wait_healthy(f"http://127.0.0.1:{port}/healthz", first)
        await service.declare(actor=alice, where=where, description="drill", title="Drill",
                              type="outage", severity="sev3", priority="p3")
        reply = await service.handle(c.RunbookRun(name="drill", incident=1), actor=alice,
                                     where=where)
        assert reply.ok, reply.text
        def quiet() -> bool:  # the mirror holds no queue: a kill now does not delay it
            return not rows(db, "SELECT count(*) FROM delivery WHERE state='pending'")[0][0]

        await until(lambda: run_state() == "waiting" and quiet(), "the wait step")
        await kill(first)  # during the wait

        second = await start(env, tmp_path, log)
        try:
            await asyncio.wait_for(hook.first.wait(), timeout=20)
            await until(quiet, "the progress edit")
        finally:
            await kill(second)  # while the HTTP request is in flight

        third = await start(env, tmp_path, log)
        try:
            await until(lambda: run_state() == "done", "the run to finish", seconds=180)
            await until(quiet, "deliveries")
        finally:
            third.send_signal(signal.SIGTERM)
            await asyncio.wait_for(third.wait(), timeout=30)
        await engine.dispose()
        assert third.returncode == 0, log.read_text()[-3000:]

    assert hook.keys == ["1-2", "1-2"]  # resent once, with the same key
    assert hook.auth == [f"Bearer {SECRET}"] * 2
    channel = fake.channel_by_name("inc-1-drill")
    assert channel is not None
    texts = [m["text"] for m in fake.messages(channel["id"])]
    assert sum("drill starts on #1" in t for t in texts) == 1
    assert sum("drill ends" in t for t in texts) == 1
    states = rows(db, "SELECT step_states FROM runbookrun")[0][0]
    assert states.count('"done"') == 4
    with sqlite3.connect(db) as conn:
        dump = "\n".join(conn.iterdump())
    assert SECRET not in dump
    assert "drill" in log.read_text() or log.read_text()  # the log is there to search
    assert SECRET not in log.read_text()
