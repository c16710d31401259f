"""`opsroom run` as a service manager runs it: no stdin, another directory, an empty database,
Slack configured against the fake, then SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sqlite3
import sys
from pathlib import Path

import httpx

from tests.fakes import slack as fs

ROOT = str(Path(__file__).resolve().parents[2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def wait_healthy(url: str, proc: asyncio.subprocess.Process) -> list[int]:
    """Poll /healthz until 200; returns every status seen."""
    seen: list[int] = []
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(300):
            assert proc.returncode is None, "opsroom run exited early"
            try:
                seen.append((await client.get(url)).status_code)
            except httpx.TransportError:
                pass
            if seen and seen[-1] == 200:
                return seen
            await asyncio.sleep(0.05)
    raise AssertionError(f"never healthy: {seen}")


async def test_opsroom_run_serves_slack_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    db = tmp_path / "data" / "opsroom.db"
    db.parent.mkdir()
    port = free_port()
    async with fs.FakeSlack() as fake:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_"))}
        env.update({
            "DATABASE_URL": f"sqlite:///{db}",
            "SLACK_BOT_TOKEN": fake.token,
            "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
            "SLACK_API_URL": fake.api_url,
            "OPSROOM_HTTP_PORT": str(port),
            "OPSROOM_LOG_LEVEL": "DEBUG",
            "PYTHONPATH": ROOT,
        })
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "run", cwd=workdir, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        # Read its (DEBUG) log as it comes: a full pipe would block the process.
        assert proc.stderr is not None
        err_task = asyncio.create_task(proc.stderr.read())
        try:
            seen = await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            assert seen[-1] == 200 and set(seen) <= {200, 503}
            assert fake.calls_to("auth.test"), "ready before auth.test passed"

            body = fs.slash_command_body("list", response_url=fake.new_response_url())
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                forged = await client.post("/slack/events", content=body,
                                           headers=fs.sign(body, secret="wrong"))
                ack = await client.post("/slack/events", content=body, headers=fs.sign(body))
            assert forged.status_code == 401 and ack.status_code == 200
            for _ in range(100):
                if fake.response_posts:
                    break
                await asyncio.sleep(0.05)
            assert fake.response_posts[0]["body"]["text"] == "No open incidents."
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.wait(), timeout=20)
            err = await err_task
    logs = err.decode()
    assert proc.returncode == 0, logs
    assert fake.token not in logs and fs.SIGNING_SECRET not in logs
    assert "stopped" in logs
    assert not (workdir / "opsroom.db").exists()
    with sqlite3.connect(db) as conn:  # the empty database got its schema by itself
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"incident", "timelineentry", "delivery", "alembic_version"} <= tables


async def test_opsroom_run_refuses_slack_without_a_way_to_verify_requests(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "DISCORD_"))}
    env.update({"SLACK_BOT_TOKEN": "xoxb-not-a-real-token", "DATABASE_URL":
                f"sqlite:///{tmp_path / 'x.db'}",
                "PYTHONPATH": ROOT})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "run", cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 2
    assert "neither SLACK_SIGNING_SECRET (HTTP mode) nor SLACK_APP_TOKEN" in err.decode()
    assert "xoxb-not-a-real-token" not in err.decode()


async def test_opsroom_run_serves_discord_and_is_ready_once_commands_are_synced(
    tmp_path: Path,
) -> None:
    from tests.fakes.discord import FakeDiscord

    port = free_port()
    async with FakeDiscord() as fake:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_"))}
        env.update({
            "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}",
            "DISCORD_TOKEN": fake.token,
            "DISCORD_API_URL": fake.api_base,
            "DISCORD_GUILD_ID": str(fake.guild_id),
            "OPSROOM_HTTP_PORT": str(port),
            "PYTHONPATH": ROOT,
        })
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "run", cwd=tmp_path, env=env,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
        try:
            seen = await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            assert seen[-1] == 200
            synced = fake.commands(fake.guild_id)
            assert "incident" in {c["name"] for c in synced}
        finally:
            proc.send_signal(signal.SIGTERM)
            _out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    assert proc.returncode == 0, err.decode()
    assert fake.token not in err.decode()
