"""`opsroom shell` as a user runs it: a real process, a scripted session on stdin, a real
database. Every process starts at the same instant (OPSROOM_FAKE_NOW), so what it prints never
depends on the hour the tests run at."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

SESSION = """\
/incident declare checkout 500s in EU since the 14:05 deploy, card payments failing
> rolled back deploy 2211, watching the error rate
hello team, error rate is dropping
/react 6 pushpin
/incident action add verify payment retries @bob due tomorrow
/incident update Rolled back; error rate back under 1%
/incident severity banana
/incident resolve error rate normal for 15 minutes
"""

# A Wednesday afternoon: "tomorrow" is Thursday, the next update is due the same day.
FAKE_NOW = "2026-11-25T14:20:00Z"


def shell_env(tmp_path: Path) -> dict[str, str]:
    """The environment of an `opsroom` process in a test: no chat or AI settings from the
    machine, the home and data directories inside `tmp_path`, a fixed start instant."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_", "DATABASE_"))
    }
    env.update(
        {
            "USER": "alice",
            "HOME": str(tmp_path / "home"),
            "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
            "OPSROOM_FAKE_NOW": FAKE_NOW,
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def run_shell(
    tmp_path: Path, script: str, *extra_env: tuple[str, str]
) -> subprocess.CompletedProcess[str]:
    env = shell_env(tmp_path)
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'opsroom.db'}"
    env.update(dict(extra_env))
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", "shell"],
        input=script,
        text=True,
        capture_output=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    tmp = tmp_path_factory.mktemp("shell")
    result = run_shell(tmp, SESSION)
    assert result.returncode == 0, result.stderr
    return tmp / "opsroom.db", result.stdout.splitlines()


def test_the_session_shows_the_channel_and_every_change(session: tuple[Path, list[str]]) -> None:
    _, out = session
    channel = "#inc-1-checkout-500s-in-eu-since-the-14-05"
    assert "(only you) Not at a terminal, so creating it as suggested." in out
    assert f"[{channel}] channel created" in out
    assert f"[{channel}] @alice added to the channel" in out
    assert f"[{channel}] (1) pinned" in out
    assert f"(you are now in {channel}; /join #general to go back)" in out
    assert (
        f"[{channel} › thread] (5) alice: rolled back deploy 2211, watching the error rate" in out
    )
    assert f"[{channel}] (6) :pushpin: by @alice" in out
    assert "(only you) Key event added to #1." in out
    assert f"[{channel} › thread] (7) opsroom: 📌 Key event by alice:" in out
    assert any(
        line.startswith(
            f"[{channel}] (8) opsroom: ☑️ Action item added: [ ] 1. verify "
            "payment retries · @bob · due "
        )
        for line in out
    )
    assert '(only you) unknown severity "banana": use sev1, sev2, sev3 or sev4' in out
    assert any(
        "Status changed from triggered to resolved: error rate normal for 15 minutes" in line
        and line.startswith("[#general]")
        for line in out
    )


def test_what_is_stored_matches_once_each_in_order(session: tuple[Path, list[str]]) -> None:
    db, _ = session
    assert rows(db, "SELECT number, status, severity, type FROM incident") == [
        (1, "resolved", "sev2", "outage")
    ]
    entries = rows(db, "SELECT kind, text FROM timelineentry ORDER BY id")
    assert entries == [
        (
            "system",
            "Incident declared: Checkout 500s in EU since the 14:05 deploy "
            "(outage, SEV2, P2), commander @alice",
        ),
        ("message", "rolled back deploy 2211, watching the error rate"),
        ("key_event", "hello team, error rate is dropping"),
        ("action_item", entries[3][1]),
        ("status_update", "Rolled back; error rate back under 1%"),
        ("status_change", entries[5][1]),
    ]
    assert entries[3][1].startswith("Action item added: [ ] 1. verify payment retries · @bob")
    resolved = entries[5][1].splitlines()  # the action item still open is listed
    assert resolved[:2] == [
        "Status changed from triggered to resolved: error rate normal for 15 minutes",
        "Open action items:",
    ]
    assert resolved[2].startswith("[ ] 1. verify payment retries · @bob · due ")
    assert len(resolved) == 3
    assert rows(db, "SELECT count(*) FROM delivery WHERE state = 'pending'") == [(0,)]
    assert rows(db, "SELECT number, text, assignee FROM actionitem") == [
        (1, "verify payment retries", "@bob")
    ]


def test_a_second_session_finds_the_incident_channel_again(
    session: tuple[Path, list[str]],
) -> None:
    db, _ = session
    result = run_shell(
        db.parent,
        "/join #inc-1-checkout-500s-in-eu-since-the-14-05\n"
        "/incident reopen it came back\n/incident list\n",
    )
    assert result.returncode == 0, result.stderr
    assert "(only you) Reopened #1; it is investigating." in result.stdout
    assert (
        "#1 [sev2 · p2 · investigating] Checkout 500s in EU since the 14:05 deploy · @alice"
        in result.stdout
    )


def test_a_broken_catalog_stops_start_up_with_file_key_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "opsroom.yaml"
    bad.write_text("severities: []\npriorities: []\nroles: []\nincident_types: []\n")
    result = run_shell(tmp_path, "", ("OPSROOM_CATALOG", str(bad)))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"opsroom: catalog error: {bad}:1: severities: must not be empty"
    )
    assert not (tmp_path / "opsroom.db").exists()


def test_the_readme_transcript_is_what_the_demo_prints(tmp_path: Path) -> None:
    """To the letter, times included. To make it again after a change:
    OPSROOM_FAKE_NOW=2026-11-25T14:20:00Z USER=alice DATABASE_URL=sqlite:////tmp/demo.db \
    .venv/bin/opsroom shell < examples/demo.txt   (with /tmp/demo.db absent)"""
    root = Path(__file__).resolve().parents[2]
    readme = (root / "README.md").read_text(encoding="utf-8")
    shown = readme.split("<!-- demo:start -->")[1].split("<!-- demo:end -->")[0]
    shown = shown.strip().removeprefix("```text").removesuffix("```").strip("\n")
    result = run_shell(tmp_path, (root / "examples" / "demo.txt").read_text(encoding="utf-8"))
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip("\n") == shown


def test_the_clock_starts_at_opsroom_fake_now_whatever_the_hour(tmp_path: Path) -> None:
    """Just before midnight the next update falls due tomorrow, and says so with its date."""
    script = "/incident declare checkout 500s in EU, card payments failing\n/incident timeline\n"
    result = run_shell(tmp_path, script, ("OPSROOM_FAKE_NOW", "2026-11-25T23:40:00+00:00"))
    assert result.returncode == 0, result.stderr
    assert "    Next update due: Thu 26 Nov 00:40 UTC" in result.stdout.splitlines()
    assert any(
        line.startswith("    e1 23:40 UTC ℹ️ alice: Incident declared: ")
        for line in result.stdout.splitlines()
    )
    declared = rows(tmp_path / "opsroom.db", "SELECT declared_at FROM incident")
    assert str(declared[0][0]).startswith("2026-11-25 23:40:")


def test_a_second_session_records_its_own_messages_and_reactions(
    session: tuple[Path, list[str]],
) -> None:
    """Message numbers restart in every session; what the record keeps must not collide."""
    db, _ = session
    result = run_shell(db.parent, "/join #inc-1-checkout-500s-in-eu-since-the-14-05\n"
                                  "> a reply from the second session\n"
                                  "the db is healthy again\n/react 2 pushpin\n")
    assert result.returncode == 0, result.stderr
    assert "(only you) Key event added to #1." in result.stdout
    texts = [t for (t,) in rows(db, "SELECT text FROM timelineentry ORDER BY id")]
    assert "a reply from the second session" in texts
    assert "the db is healthy again" in texts
    externals = [e for (e,) in rows(db, "SELECT external_id FROM timelineentry "
                                        "WHERE external_id IS NOT NULL")]
    assert len(externals) == len(set(externals)) == 4
