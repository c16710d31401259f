"""At start (`opsroom run`, the console) the on-call jobs are planned: each schedule's next
shift-change announcement and the daily coverage check, one row each however often it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.cli import build_core, schedule_oncall
from adapters.settings import Settings
from bot.catalog import load_catalog
from bot.models import JobState
from bot.schedules import Schedule

SCHEDULES = [
    Schedule.model_validate({
        "name": name, "timezone": "Europe/Berlin", "channel": channel,
        "layers": [{"users": ["alice", "bob"], "rotation": "weekly", "handoff": "mon 09:00",
                    "start": "2026-11-02"}]})
    for name, channel in (("primary", "oncall"), ("quiet", None))
]


async def test_start_plans_handoffs_and_the_coverage_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'start.db'}")
    monkeypatch.setenv("OPSROOM_FAKE_NOW", "2026-11-25T14:00:00+00:00")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    catalog = load_catalog().model_copy(update={"schedules": SCHEDULES})
    core = await build_core(settings, catalog=catalog)
    try:
        for _ in range(2):  # a restart, or a second replica: the same rows
            await schedule_oncall(core)
        async with core.store.unit() as u:
            jobs = await u.jobs(states=[JobState.PENDING], limit=10)
    finally:
        await core.engine.dispose()
    assert sorted((j.key, j.due_at) for j in jobs) == [
        ("coverage:2026-11-26", datetime(2026, 11, 26, 9, tzinfo=UTC)),  # catalog zone: UTC
        ("handoff:primary:2026-11-30T08:00:00+00:00", datetime(2026, 11, 30, 8, tzinfo=UTC)),
    ]
