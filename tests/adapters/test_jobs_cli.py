"""`opsroom jobs [--failed]`: what is scheduled across the whole database, and what failed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app
from bot.catalog import load_catalog
from bot.jobs import JobWorker, new_job
from tests.conftest import build_core, close_engine, open_engine
from tests.fakes.clock import FakeClock


async def seed(tmp_path: Path) -> str:
    engine, schema = await open_engine("sqlite", tmp_path)
    clock = FakeClock()
    catalog = load_catalog()
    core = build_core(engine, catalog, clock)
    await core.run("declare the API is down for everyone")  # SEV1: ack in 5m, update in 30m
    await core.run("declare search is slow for some customers")
    async with core.store.unit() as u:
        await u.schedule(new_job("page_vendor", "page:1", clock.now(), now=clock.now()))
    worker = JobWorker(store=core.store, catalog=catalog, record=core.service.record,
                       clock=clock, max_attempts=1)
    await worker.run_once()  # the job kind has no handler here: it fails
    url = f"sqlite:///{engine.url.database}"
    await close_engine(engine, schema)
    return url


@pytest.fixture
def database(tmp_path: Path) -> str:
    return asyncio.run(seed(tmp_path))


def jobs(database: str, *args: str) -> list[str]:
    result = CliRunner().invoke(app, ["jobs", *args], env={"DATABASE_URL": database})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_jobs_lists_pending_jobs_soonest_first(database: str) -> None:
    lines = jobs(database)
    assert lines[0] == "4 pending jobs:"
    rows = [line.split() for line in lines[1:]]
    assert [(r[1], r[2], r[4], r[5], r[6]) for r in rows] == [
        ("2026-11-25", "14:05:00", "pending", "#1", "ack"),
        ("2026-11-25", "14:30:00", "pending", "#1", "status_update"),
        ("2026-11-25", "15:00:00", "pending", "#2", "ack"),
        ("2026-11-25", "18:00:00", "pending", "#2", "status_update"),
    ]
    assert all(r[3] == "UTC" for r in rows)


def test_jobs_failed_shows_why(database: str) -> None:
    lines = jobs(database, "--failed")
    assert lines[0] == "1 failed job:"
    assert lines[1:] == [
        "     5  2026-11-25 14:00:00 UTC  failed    -  page_vendor  page:1  attempts 1  "
        "last error: LookupError: no handler for job kind 'page_vendor'"
    ]


def test_no_jobs_says_so(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    assert jobs(url) == ["No pending jobs."]
    assert jobs(url, "--failed") == ["No failed jobs."]
