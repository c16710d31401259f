"""`opsroom report` and `opsroom postmortem` on a seeded database (fake clock), in process."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app
from bot.catalog import load_catalog
from tests.conftest import build_core, close_engine, open_engine
from tests.fakes.clock import FakeClock
from tests.storage.test_metrics import seed


async def seeded(tmp_path: Path) -> str:
    engine, schema = await open_engine("sqlite", tmp_path)
    core = build_core(engine, load_catalog(), FakeClock())
    await seed(core)
    url = f"sqlite:///{engine.url.database}"
    await close_engine(engine, schema)
    return url


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    now = "2026-12-04T14:00:00+00:00"  # T0 + 9 days, as the seed leaves the clock
    return {"DATABASE_URL": asyncio.run(seeded(tmp_path)), "OPSROOM_FAKE_NOW": now}


def run(env: dict[str, str], *args: str) -> str:
    result = CliRunner().invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_report_json_by_type(env: dict[str, str]) -> None:
    report = json.loads(run(env, "report", "--since", "30d", "--by", "type", "--json"))
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["all"]["incidents"] == 4 and groups["all"]["resolved"] == 2
    assert groups["all"]["time_to_acknowledge"] == {
        "count": 3, "mean_s": 1200.0, "p50_s": 1200.0, "p90_s": pytest.approx(1680.0)
    }
    assert groups["all"]["time_to_resolve"]["mean_s"] == 10800.0
    assert groups["outage"]["incidents"] == 2 and groups["performance"]["incidents"] == 2
    assert report["action_items"] == {"open": 2, "overdue": 1}


def test_report_csv_text_and_chart(env: dict[str, str], tmp_path: Path) -> None:
    rows = list(csv.DictReader(io.StringIO(run(env, "report", "--by", "week", "--csv"))))
    assert [(r["group"], r["incidents"], r["resolved"]) for r in rows] == [
        ("all", "4", "2"), ("2026-11-23", "3", "2"), ("2026-11-30", "1", "0")
    ]
    text = run(env, "report", "--since", "7d").splitlines()
    assert text[0] == "Incidents declared since 2026-11-27 14:00 UTC (cancelled ones left out)"
    assert text[2].split()[:3] == ["all", "1", "0"]  # only #5 was declared in the last 7 days
    assert text[-1] == "Open action items: 0 (overdue: 0)"
    chart = tmp_path / "weekly.svg"
    run(env, "report", "--chart", str(chart))
    assert chart.read_text().lstrip().startswith("<?xml") and "<svg" in chart.read_text()


def test_report_refuses_bad_input_clearly(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["report", "--by", "colour"], env=env)
    assert result.exit_code == 2
    assert 'cannot group by "colour": use type, severity, week' in result.output
    result = CliRunner().invoke(app, ["report", "--since", "soon"], env=env)
    assert 'invalid --since "soon": use a duration like 24h, 7d, 30d or 12w' in result.output
    result = CliRunner().invoke(app, ["report", "--chart", "x.gif"], env=env)
    assert 'unknown chart format ".gif": use a .png or .svg file' in result.output


def test_postmortem_command_writes_markdown_and_html(env: dict[str, str], tmp_path: Path) -> None:
    markdown = run(env, "postmortem", "1")
    assert markdown.startswith("# Postmortem: #1 outage trouble\n")
    assert "- Time to resolve: 1h" in markdown
    out = tmp_path / "pm.html"
    result = CliRunner().invoke(app, ["postmortem", "2", "--out", str(out), "--format", "html"],
                                env=env)
    assert result.exit_code == 0, result.output
    assert "Postmortem v1 of #2 posted to its channel as a file" in result.stderr
    page = out.read_text()
    assert page.startswith("<!doctype html>") and "<h1>Postmortem: #2 outage trouble</h1>" in page
    assert "<li>Time to resolve: 5h</li>" in page
    missing = CliRunner().invoke(app, ["postmortem", "42"], env=env)
    assert missing.exit_code == 2 and "no incident #42" in missing.output
    cancelled = CliRunner().invoke(app, ["postmortem", "4"], env=env)
    assert "#4 is cancelled: it gets no postmortem" in cancelled.output
