"""`opsroom run` serves the REST API and the web view: a token made with `opsroom token create`
declares over HTTP, the Slack channel's summary links to the page (OPSROOM_PUBLIC_URL), and
SIGTERM stops the service promptly even while a live page's stream is open."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from tests.e2e.test_service import ROOT, free_port, wait_healthy
from tests.fakes import slack as fs


async def test_run_serves_the_api_and_stops_with_a_stream_open(tmp_path: Path) -> None:
    db = tmp_path / "opsroom.db"
    port = free_port()
    async with fs.FakeSlack() as fake:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_", "DATABASE_"))
        }
        env.update(
            {
                "DATABASE_URL": f"sqlite:///{db}",
                "SLACK_BOT_TOKEN": fake.token,
                "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
                "SLACK_API_URL": fake.api_url,
                "OPSROOM_HTTP_PORT": str(port),
                "OPSROOM_PUBLIC_URL": "https://ops.example",
                "PYTHONPATH": ROOT,
            }
        )
        maker = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.cli",
            "token",
            "create",
            "--name",
            "ci",
            "--scope",
            "write",
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(maker.communicate(), timeout=60)
        assert maker.returncode == 0, err.decode()
        token = out.decode().strip().splitlines()[-1]
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.cli",
            "run",
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            await wait_healthy(f"{base}/healthz", proc)
            async with httpx.AsyncClient(base_url=base, timeout=10) as client:
                assert (await client.get("/api/v1/incidents")).status_code == 401
                declared = await client.post(
                    "/api/v1/incidents",
                    json={"description": "checkout 500s in EU", "severity": "sev1"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert declared.status_code == 201, declared.text
                number = declared.json()["number"]
                for _ in range(200):
                    posted = json.dumps([c.params for c in fake.calls_to("chat.postMessage")])
                    if f"https://ops.example/incidents/{number}" in posted:
                        break
                    await asyncio.sleep(0.05)
                else:
                    raise AssertionError("the channel summary has no link to the incident page")
                cookies = {"opsroom_session": token}
                async with client.stream(
                    "GET", f"/incidents/{number}/events", cookies=cookies
                ) as stream:
                    assert stream.status_code == 200
                    started = time.monotonic()
                    proc.send_signal(signal.SIGTERM)
                    _out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
                    stopped_in = time.monotonic() - started
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert stopped_in < 8, f"took {stopped_in:.1f}s to stop with a stream open"
    assert token not in err.decode()
