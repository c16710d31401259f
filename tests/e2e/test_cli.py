"""The `opsroom` command itself, as a real process: where the database is, and databases it
cannot use. Homes and data directories are inside tmp_path."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, needs_pg
from tests.storage.test_migrations import HEAD

pytestmark = pytest.mark.e2e
ROOT = str(Path(__file__).resolve().parents[2])


def opsroom(
    tmp_path: Path, *args: str, cwd: Path | None = None, stdin: str = "", **env: str
) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_", "DATABASE_"))
    }
    base.update({
        "USER": "alice",
        "HOME": str(tmp_path / "home"),
        "XDG_DATA_HOME": str(tmp_path / "home" / "data"),
        "PYTHONPATH": ROOT,
    })
    base.update(env)
    work = cwd or tmp_path
    work.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "adapters.cli", *args], input=stdin, text=True,
        capture_output=True, cwd=work, env=base, timeout=60,
    )


def tables(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


# --- where the database is -------------------------------------------------------------------


def test_by_default_the_database_is_one_file_per_user_whatever_the_directory(
    tmp_path: Path,
) -> None:
    expected = tmp_path / "home" / "data" / "opsroom" / "opsroom.db"
    first = opsroom(tmp_path, "db", "upgrade", cwd=tmp_path / "one")
    assert first.returncode == 0, first.stderr
    assert first.stdout == (
        f"{expected} is at schema revision {HEAD} (upgraded from an empty database)\n"
    )
    assert first.stderr == (
        f"database: {expected} (the default; set DATABASE_URL to use another)\n"
    )
    assert "incident" in tables(expected)

    shell = opsroom(tmp_path, "shell", cwd=tmp_path / "two",
                    stdin="/incident declare checkout is down\n")
    assert shell.returncode == 0, shell.stderr
    assert f"database: {expected} (the default; set DATABASE_URL to use another)" in shell.stderr
    again = opsroom(tmp_path, "shell", cwd=tmp_path / "one", stdin="/incident list\n")
    assert "#1 [" in again.stdout  # the same record, from another directory
    assert not (tmp_path / "one" / "opsroom.db").exists()
    assert not (tmp_path / "two" / "opsroom.db").exists()


def test_an_opsroom_db_in_the_current_directory_is_used_and_said(tmp_path: Path) -> None:
    work = tmp_path / "project"
    work.mkdir()
    sqlite3.connect(work / "opsroom.db").close()  # what the old default left behind
    result = opsroom(tmp_path, "shell", cwd=work, stdin="/incident declare checkout is down\n")
    assert result.returncode == 0, result.stderr
    assert (
        f"database: {work / 'opsroom.db'} (DATABASE_URL is unset and ./opsroom.db exists here, "
        "so Opsroom uses it)"
    ) in result.stderr.splitlines()
    assert "incident" in tables(work / "opsroom.db")
    assert not (tmp_path / "home" / "data" / "opsroom").exists()


def test_a_relative_sqlite_url_is_shown_as_an_absolute_path(tmp_path: Path) -> None:
    result = opsroom(tmp_path, "db", "upgrade", cwd=tmp_path / "w",
                     DATABASE_URL="sqlite:///records/x.db")
    assert result.returncode != 0  # ./records does not exist and is not created
    (tmp_path / "w" / "records").mkdir()
    result = opsroom(tmp_path, "db", "upgrade", cwd=tmp_path / "w",
                     DATABASE_URL="sqlite:///records/x.db")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{tmp_path / 'w' / 'records' / 'x.db'} is at schema")
    assert result.stderr == ""


# --- a database that cannot be used: one line, no traceback -----------------------------------


def _unusable(tmp_path: Path) -> list[tuple[str, str, str]]:
    (tmp_path / "a-directory.db").mkdir()
    (tmp_path / "garbage.db").write_text("this is not a database\n" * 100)
    return [
        ("sqlite:////nonexistent/dir/x.db",
         "/nonexistent/dir/x.db", "the directory /nonexistent/dir does not exist"),
        (f"sqlite:///{tmp_path / 'a-directory.db'}",
         str(tmp_path / "a-directory.db"), "is a directory, not a database file"),
        (f"sqlite:///{tmp_path / 'garbage.db'}",
         str(tmp_path / "garbage.db"), "the file is not a SQLite database"),
        ("postgresql://opsroom:hunter2@127.0.0.1:1/opsroom",
         "postgresql://opsroom:***@127.0.0.1:1/opsroom", "Connect call failed"),
    ]


@pytest.mark.parametrize(("command", "case"), [
    *[(["db", "upgrade"], case) for case in range(4)],
    (["shell"], 0),
    (["run"], 3),  # with no chat token: the console chat
])
def test_an_unusable_database_is_one_clear_line(
    tmp_path: Path, command: list[str], case: int
) -> None:
    url, shown, why = _unusable(tmp_path)[case]
    result = opsroom(tmp_path, *command, DATABASE_URL=url)
    assert result.returncode == 2
    [line] = result.stderr.splitlines()
    assert line.startswith(f"opsroom: cannot open the database {shown}: ")
    assert why in line
    assert "Traceback" not in result.stderr and "hunter2" not in result.stderr
    assert result.stdout == ""


def test_a_url_that_is_not_a_url_is_one_line_without_echoing_it(tmp_path: Path) -> None:
    result = opsroom(tmp_path, "db", "upgrade", DATABASE_URL="hunter2 is my password")
    assert result.returncode == 2
    assert result.stderr == (
        "opsroom: DATABASE_URL is not a database URL: use sqlite:////absolute/path.db or "
        "postgresql://user:pass@host:5432/db\n"
    )


@needs_pg
def test_a_missing_postgresql_database_says_how_to_create_it(tmp_path: Path) -> None:
    assert PG_URL is not None
    url = make_url(PG_URL).set(database="opsroom_does_not_exist")
    result = opsroom(tmp_path, "db", "upgrade",
                     DATABASE_URL=url.render_as_string(hide_password=False))
    assert result.returncode == 2
    assert result.stderr.strip().endswith(
        'database "opsroom_does_not_exist" does not exist '
        "(create it with `createdb opsroom_does_not_exist`)"
    )
    assert len(result.stderr.splitlines()) == 1
