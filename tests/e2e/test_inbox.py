"""`opsroom run` as a process, with the fake Slack: what it acknowledged survives SIGTERM and
kill -9, replays are applied once, malformed and oversized requests hurt nothing, and /healthz
tells the truth while the database is away. On SQLite, and on PostgreSQL when configured."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import make_url, select, text
from sqlmodel import col

from bot.models import EntryKind, InboxItem, Incident, TimelineEntry
from storage.engine import make_engine
from tests.adapters.test_slack import submit_values
from tests.conftest import BACKENDS, PG_URL, needs_pg
from tests.e2e.test_service import ROOT, free_port
from tests.fakes import slack as fs
from tests.fakes.tcp_proxy import TcpProxy

pytestmark = pytest.mark.e2e


@asynccontextmanager
async def database(backend: str, tmp_path: Path) -> AsyncIterator[str]:
    """A DATABASE_URL nothing else uses: a SQLite file, or a PostgreSQL database of its own."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'opsroom.db'}"
        return
    assert PG_URL is not None
    name = f"e2e_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        async with admin.connect() as conn:
            await conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        await admin.dispose()


@dataclass
class Opsroom:
    proc: asyncio.subprocess.Process
    url: str
    log: Path

    def logs(self) -> str:
        return self.log.read_text(errors="replace")


def environment(fake: fs.FakeSlack, database_url: str, port: int, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_", "DATABASE_URL"))}
    env.update({
        "DATABASE_URL": database_url,
        "SLACK_BOT_TOKEN": fake.token,
        "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET,
        "SLACK_API_URL": fake.api_url,
        "OPSROOM_HTTP_PORT": str(port),
        "OPSROOM_LOG_LEVEL": "INFO",
        "PYTHONPATH": ROOT,
        **extra,
    })
    return env


async def start(fake: fs.FakeSlack, database_url: str, tmp_path: Path, *, port: int = 0,
                healthy: bool = True, **extra: str) -> Opsroom:
    port = port or free_port()
    log = tmp_path / f"opsroom-{uuid.uuid4().hex[:6]}.log"
    with log.open("wb") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "run", cwd=tmp_path,
            env=environment(fake, database_url, port, **extra),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out)
    running = Opsroom(proc, f"http://127.0.0.1:{port}", log)
    if healthy:
        await health(running, 200)
    return running


async def health(opsroom: Opsroom, wanted: int, timeout: float = 30) -> dict[str, Any]:
    """Poll /healthz until it answers `wanted`; returns that answer's body."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen: Any = None
    async with httpx.AsyncClient(base_url=opsroom.url, timeout=5) as client:
        while loop.time() < deadline:
            assert opsroom.proc.returncode is None, f"opsroom exited:\n{opsroom.logs()}"
            try:
                response = await client.get("/healthz")
                seen = (response.status_code, response.json())
                if response.status_code == wanted:
                    return dict(response.json())
            except httpx.TransportError as exc:
                seen = type(exc).__name__
            await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz never answered {wanted}; last {seen}\n{opsroom.logs()}")


async def stop(opsroom: Opsroom) -> None:
    opsroom.proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(opsroom.proc.wait(), timeout=30)
    assert opsroom.proc.returncode == 0, opsroom.logs()


async def declare_one(opsroom: Opsroom, fake: fs.FakeSlack) -> None:
    """Incident #1, through the Quick Start modal as a person declares it."""
    async with httpx.AsyncClient(base_url=opsroom.url, timeout=10) as client:
        body = fs.slash_command_body("declare payments are failing",
                                     response_url=fake.new_response_url())
        assert (await client.post("/slack/events", content=body,
                                  headers=fs.sign(body))).status_code == 200
        view = fake.calls_to("views.open")[-1].response["view"]
        submission = fs.view_submission_body(view, submit_values(view))
        assert (await client.post("/slack/events", content=submission,
                                  headers=fs.sign(submission))).status_code == 200
    for _ in range(400):
        if any("Declared incident #1" in e["text"] for e in fake.ephemerals):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"incident #1 was not declared\n{opsroom.logs()}")


async def note(client: httpx.AsyncClient, fake: fs.FakeSlack, words: str) -> bool:
    """Send `/incident #1 note <words>`; True when Opsroom acknowledged it (HTTP 200)."""
    body = fs.slash_command_body(f"#1 note {words}", channel_id=fs.GENERAL_ID,
                                 response_url=fake.new_response_url())
    try:
        response = await client.post("/slack/events", content=body, headers=fs.sign(body))
    except httpx.TransportError:
        return False
    return response.status_code == 200


async def recorded(database_url: str) -> list[str]:
    """The notes in incident #1's timeline, in the order they were recorded."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(col(TimelineEntry.text)).where(col(TimelineEntry.kind) == EntryKind.MESSAGE)
                .order_by(col(TimelineEntry.id)))
            return [str(t) for t in found.scalars()]
    finally:
        await engine.dispose()


async def count(database_url: str, model: Any) -> int:
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return len((await conn.execute(select(model))).all())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_sigterm_right_after_400_acknowledged_notes_records_all_400_in_order(
    tmp_path: Path, backend: str
) -> None:
    senders, each = 10, 40
    async with database(backend, tmp_path) as url, fs.FakeSlack() as fake:
        opsroom = await start(fake, url, tmp_path)
        await declare_one(opsroom, fake)

        async def sender(s: int) -> int:
            async with httpx.AsyncClient(base_url=opsroom.url, timeout=10) as client:
                return sum([await note(client, fake, f"s{s}-{i:02}") for i in range(each)])

        acked = sum(await asyncio.gather(*(sender(s) for s in range(senders))))
        await stop(opsroom)  # at once: most notes are still waiting to be applied
        notes = await recorded(url)
    assert acked == senders * each
    assert sorted(notes) == sorted(f"s{s}-{i:02}" for s in range(senders) for i in range(each))
    for s in range(senders):  # each sender's notes in the order they were sent
        mine = [n for n in notes if n.startswith(f"s{s}-")]
        assert mine == sorted(mine)
    assert "Traceback" not in opsroom.logs()


@pytest.mark.parametrize("backend", BACKENDS)
async def test_kill_9_at_random_points_loses_nothing_acknowledged(
    tmp_path: Path, backend: str
) -> None:
    seed = random.randrange(10**6)
    rng = random.Random(seed)
    acked: list[str] = []
    sent = 0
    async with database(backend, tmp_path) as url, fs.FakeSlack() as fake:
        opsroom = await start(fake, url, tmp_path)
        await declare_one(opsroom, fake)
        for run in range(3):
            if run:
                opsroom = await start(fake, url, tmp_path)
            kill_after = rng.randrange(10, 120)
            killed = asyncio.Event()

            async def sender(s: int, run: int = run, kill_after: int = kill_after,
                             killed: asyncio.Event = killed, opsroom: Opsroom = opsroom) -> None:
                nonlocal sent
                async with httpx.AsyncClient(base_url=opsroom.url, timeout=5) as client:
                    while not killed.is_set():
                        sent += 1
                        words = f"r{run}-s{s}-{sent}"
                        if await note(client, fake, words):
                            acked.append(words)
                        if len(acked) >= kill_after * (run + 1) and not killed.is_set():
                            opsroom.proc.kill()  # kill -9, with requests in flight
                            killed.set()

            await asyncio.gather(*(sender(s) for s in range(8)))
            await opsroom.proc.wait()
        opsroom = await start(fake, url, tmp_path)  # applies what the killed ones left
        report = await health(opsroom, 200)
        for _ in range(200):
            if report["inbox"]["unapplied"] == 0:
                break
            await asyncio.sleep(0.05)
            report = await health(opsroom, 200)
        await stop(opsroom)
        notes = Counter(await recorded(url))
    lost = [words for words in acked if notes[words] != 1]
    assert not lost, f"seed {seed}: acknowledged but not recorded once: {lost[:10]}"
    assert max(notes.values()) == 1, f"seed {seed}: recorded twice"
    assert len(acked) >= 30


async def test_replays_malformed_and_oversized_requests_change_nothing(tmp_path: Path) -> None:
    async with database("sqlite", tmp_path) as url, fs.FakeSlack() as fake:
        opsroom = await start(fake, url, tmp_path, OPSROOM_MAX_BODY_BYTES="65536")
        await declare_one(opsroom, fake)
        stored = await count(url, InboxItem)
        async with httpx.AsyncClient(base_url=opsroom.url, timeout=10) as client:
            # the same signed requests, three times each
            view = fake.calls_to("views.open")[-1].response["view"]
            again = fs.view_submission_body(view, submit_values(view))
            body = fs.slash_command_body("#1 note once", response_url=fake.new_response_url())
            replays = [await client.post("/slack/events", content=b, headers=fs.sign(b))
                       for b in (again, body, body, body)]
            refused = []
            for bad, kind in (("payload=%7Bnope", "application/x-www-form-urlencoded"),
                              ("[1,2]", "application/json"),
                              ("command=%2Fincident&text=x", "application/json")):
                refused.append(await client.post("/slack/events", content=bad,
                                                 headers=fs.sign(bad, content_type=kind)))
            odd_time = {**fs.sign(body), "X-Slack-Request-Timestamp": "yesterday"}
            refused.append(await client.post("/slack/events", content=body, headers=odd_time))
            big = fs.slash_command_body("#1 note " + "z" * 70_000)
            refused.append(await client.post("/slack/events", content=big, headers=fs.sign(big)))

            async def chunks() -> AsyncIterator[bytes]:
                for i in range(0, len(big), 8192):
                    yield big[i:i + 8192]

            refused.append(await client.post("/slack/events", content=chunks(),
                                             headers=fs.sign(big)))
        await health(opsroom, 200)
        await asyncio.sleep(0.5)  # what the replays would have caused, had they been applied
        await stop(opsroom)
        assert [r.status_code for r in replays] == [200] * 4
        assert [r.status_code for r in refused] == [400, 400, 400, 400, 413, 413]
        assert await count(url, Incident) == 1
        assert await recorded(url) == ["once"]
        assert await count(url, InboxItem) == stored + 1
    logs = opsroom.logs()
    assert "Traceback" not in logs and "zzzz" not in logs
    assert fs.VERIFICATION_TOKEN not in logs and "/hooks/" not in logs
    assert logs.count("http: 413 for POST /slack/events") == 2


@needs_pg
async def test_health_is_503_while_the_database_is_away_and_200_when_it_is_back(
    tmp_path: Path,
) -> None:
    assert PG_URL is not None
    pg = make_url(PG_URL)
    async with database("postgresql", tmp_path) as direct, fs.FakeSlack() as fake, \
            TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        url = make_url(direct).set(host="127.0.0.1", port=proxy.port).render_as_string(
            hide_password=False)
        await proxy.down()  # not there at start: `opsroom run` waits for it, saying so
        opsroom = await start(fake, url, tmp_path, healthy=False, OPSROOM_DB_TIMEOUT_S="2")
        for _ in range(200):
            if "not reachable (ConnectionRefusedError); retrying" in opsroom.logs():
                break
            await asyncio.sleep(0.05)
        await proxy.up()
        await health(opsroom, 200)
        await declare_one(opsroom, fake)
        await proxy.down()
        down = await health(opsroom, 503)
        assert down["reason"].startswith("database unreachable"), down
        async with httpx.AsyncClient(base_url=opsroom.url, timeout=10) as client:
            refused = await note(client, fake, "while the database is away")
            await proxy.up()
            await health(opsroom, 200)
            accepted = await note(client, fake, "once it is back")
        assert (refused, accepted) == (False, True)  # not stored: not acknowledged
        await proxy.blackhole()  # accepts, never answers: known within the timeout
        started = asyncio.get_running_loop().time()
        hung = await health(opsroom, 503)
        assert asyncio.get_running_loop().time() - started < 10
        assert hung["reason"].startswith("database unreachable"), hung
        await proxy.up()
        await health(opsroom, 200)
        await stop(opsroom)
        assert await recorded(direct) == ["once it is back"]
    logs = opsroom.logs()
    assert "retrying in 1s" in logs and (pg.password or "\x00") not in logs
    assert "slack: command not stored (" in logs and "not acknowledged" in logs
    assert "Traceback" not in logs, logs[logs.find("Traceback") - 300:][:3000]


@needs_pg
async def test_db_upgrade_against_a_host_that_never_answers_fails_within_the_timeout(
    tmp_path: Path,
) -> None:
    assert PG_URL is not None
    pg = make_url(PG_URL)
    async with TcpProxy(pg.host or "127.0.0.1", pg.port or 5432) as proxy:
        await proxy.blackhole()
        url = pg.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSROOM_",))}
        env.update({"DATABASE_URL": url, "OPSROOM_DB_TIMEOUT_S": "1", "PYTHONPATH": ROOT})
        started = asyncio.get_running_loop().time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "adapters.cli", "db", "upgrade", cwd=tmp_path, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), timeout=30)
        took = asyncio.get_running_loop().time() - started
    assert proc.returncode == 2, err.decode()
    assert "cannot open the database" in err.decode() and "TimeoutError" in err.decode()
    assert "Traceback" not in err.decode()
    assert took < 8  # 1 s timeout, plus starting Python


def db_upgrade(tmp_path: Path, database_url: str) -> Any:
    import subprocess

    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPSROOM_", "DATABASE_"))}
    return subprocess.run([sys.executable, "-m", "adapters.cli", "db", "upgrade"], text=True,
                          capture_output=True, cwd=tmp_path, timeout=60,
                          env={**env, "DATABASE_URL": database_url, "PYTHONPATH": ROOT})


def test_db_upgrade_says_plainly_when_the_database_is_newer_or_has_no_version(
    tmp_path: Path,
) -> None:
    import sqlite3

    newer, unversioned = tmp_path / "newer.db", tmp_path / "unversioned.db"
    assert db_upgrade(tmp_path, f"sqlite:///{newer}").returncode == 0
    with sqlite3.connect(newer) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '0042_from_the_future'")
    with sqlite3.connect(unversioned) as conn:
        conn.execute("CREATE TABLE incident (id INTEGER PRIMARY KEY, title TEXT)")
    ahead = db_upgrade(tmp_path, f"sqlite:///{newer}")
    bare = db_upgrade(tmp_path, f"sqlite:///{unversioned}")
    assert (ahead.returncode, bare.returncode) == (2, 2)
    assert "the database is at schema revision 0042_from_the_future, which this Opsroom does " \
           "not know: a newer Opsroom migrated it" in ahead.stderr
    assert "the database has Opsroom tables (incident) but no schema version" in bare.stderr
    for result in (ahead, bare):
        assert "Traceback" not in result.stderr
        assert result.stderr.strip().splitlines()[-1].startswith(f"opsroom: database {tmp_path}/")
    with sqlite3.connect(unversioned) as conn:  # refused before anything was touched
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert tables == {"incident"}
