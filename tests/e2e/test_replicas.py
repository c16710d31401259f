"""Two `opsroom run` processes on one PostgreSQL database, behind one Slack app: commands
reach either, and every post goes out once, in order, to one channel per incident."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy import text

from storage.engine import make_engine
from tests.adapters.test_slack import submit_values
from tests.conftest import PG_URL, needs_pg
from tests.e2e.test_service import ROOT, free_port, wait_healthy
from tests.fakes import slack as fs

pytestmark = [pytest.mark.e2e, needs_pg]

INCIDENTS = 6
NOTES = 10  # per incident, sent in turn, alternating between the replicas


@asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """A PostgreSQL database of its own (the processes share it, nothing else does)."""
    assert PG_URL is not None
    name = f"opsroom_{uuid.uuid4().hex[:10]}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield PG_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


async def start_replica(
    url: str, fake: fs.FakeSlack, port: int, extra_env: Mapping[str, str] | None = None
) -> asyncio.subprocess.Process:
    """`opsroom run` against `url` and `fake`; `extra_env` adds to (or overrides) its
    environment (a catalog, a shorter tick)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_"))}
    env.update({
        "DATABASE_URL": url,
        "SLACK_BOT_TOKEN": fake.token,
        "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "OPSROOM_HTTP_PORT": str(port),
        "PYTHONPATH": ROOT,
    })
    env.update(extra_env or {})
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "run", env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE)


async def post(client: httpx.AsyncClient, port: int, body: bytes) -> None:
    ack = await client.post(f"http://127.0.0.1:{port}/slack/events", content=body,
                            headers=fs.sign(body))
    assert ack.status_code == 200, ack.text


async def command(client: httpx.AsyncClient, port: int, text_: str, channel: str) -> None:
    await post(client, port, fs.slash_command_body(text_, channel_id=channel))


async def declare(client: httpx.AsyncClient, fake: fs.FakeSlack, ports: list[int], i: int) -> None:
    """/incident declare on one replica; the Quick Start modal submitted to the other."""
    opened = len(fake.calls_to("views.open"))
    await command(client, ports[i % 2], f"declare replica test {i}: checkout is down for all "
                  "customers", fs.INCIDENTS_ID)
    await eventually(lambda: len(fake.calls_to("views.open")) > opened
                     and fake.calls_to("views.open")[opened].response is not None)
    view = fake.calls_to("views.open")[opened].response["view"]  # type: ignore[index]
    await post(client, ports[(i + 1) % 2], fs.view_submission_body(view, submit_values(view)))


async def eventually(check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not check():
        assert loop.time() < deadline, "timed out waiting"
        await asyncio.sleep(0.1)


async def test_two_replicas_post_each_message_once_in_order_one_channel_each() -> None:
    ports = [free_port(), free_port()]
    async with fresh_database() as url, fs.FakeSlack(latency=0.05) as fake:
        procs = [await start_replica(url, fake, p) for p in ports]
        try:
            for port, proc in zip(ports, procs, strict=True):
                await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc)
            async with httpx.AsyncClient(timeout=10) as client:
                for i in range(INCIDENTS):
                    await declare(client, fake, ports, i)

                def incident_channels() -> dict[str, str]:
                    found = {}
                    for ch in fake.calls_to("conversations.create"):
                        body = ch.response or {}
                        if body.get("ok"):
                            found[body["channel"]["name"]] = body["channel"]["id"]
                    return found

                await eventually(lambda: len(incident_channels()) >= INCIDENTS)
                channels = incident_channels()

                async def notes_to(channel: str) -> None:
                    for n in range(NOTES):  # each after the previous one's ack
                        await command(client, ports[n % 2], f"note step {n}", channel)

                await asyncio.gather(*(notes_to(c) for c in channels.values()))

            def notes_in(channel: str) -> list[str]:
                return [m.get("text", "") for m in fake.messages(channel) if "step" in
                        m.get("text", "")] + [
                    r.get("text", "") for m in fake.messages(channel)
                    for r in fake.messages(channel, m["ts"]) if "step" in r.get("text", "")]

            await eventually(lambda: all(len(notes_in(c)) >= NOTES for c in channels.values()))
            await asyncio.sleep(1.0)  # anything sent twice would have arrived by now
        finally:
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            logs = [(await asyncio.wait_for(p.communicate(), timeout=30))[1].decode()
                    for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    assert len(channels) == INCIDENTS, sorted(channels)  # no "-2": one channel per incident
    assert not any(name.endswith("-2") for name in channels)
    for channel in channels.values():
        notes = notes_in(channel)
        assert len(notes) == NOTES and len(set(notes)) == NOTES, notes  # each once
    # Every post carries its delivery's key: no key twice anywhere means nothing was sent twice
    # (announcements in #incidents included).
    keys = [m["metadata"]["event_payload"]["key"]
            for c in [*channels.values(), fs.INCIDENTS_ID]
            for top in fake.messages(c)
            for m in [top, *fake.messages(c, top["ts"])] if m.get("metadata")]
    assert len(keys) > INCIDENTS * (NOTES + 2) and len(keys) == len(set(keys))
    announced = [m for m in fake.messages(fs.INCIDENTS_ID) if m.get("metadata")]
    assert len(announced) == INCIDENTS
