"""Where the database is (resolve_database), and the clock OPSROOM_FAKE_NOW starts."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from adapters.clock import StartedAtClock
from adapters.settings import Settings, database_location, prepare_database_dir, resolve_database


def test_unset_means_one_file_per_user(tmp_path: Path) -> None:
    where = resolve_database(None, cwd=tmp_path / "work", data_dir=tmp_path / "data")
    assert where.path == tmp_path / "data" / "opsroom.db"
    assert where.url == f"sqlite:///{tmp_path / 'data' / 'opsroom.db'}"
    assert where.origin == "user data directory"
    assert not (tmp_path / "data").exists()  # resolving creates nothing...
    prepare_database_dir(where)
    assert (tmp_path / "data").is_dir()  # ...preparing the default location does


def test_unset_with_an_opsroom_db_here_uses_it(tmp_path: Path) -> None:
    (tmp_path / "opsroom.db").touch()
    where = resolve_database(None, cwd=tmp_path, data_dir=tmp_path / "data")
    assert (where.path, where.origin) == (tmp_path / "opsroom.db", "current directory")
    assert "DATABASE_URL is unset and ./opsroom.db exists here" in where.note


def test_a_relative_sqlite_url_is_made_absolute_and_its_directory_never_created(
    tmp_path: Path,
) -> None:
    where = resolve_database("sqlite:///sub/x.db?mode=ro", cwd=tmp_path)
    assert where.path == tmp_path / "sub" / "x.db"
    assert where.url == f"sqlite:///{tmp_path / 'sub' / 'x.db'}?mode=ro"
    prepare_database_dir(where)
    assert not (tmp_path / "sub").exists()  # a typo in DATABASE_URL stays an error


def test_postgresql_is_shown_without_its_password(tmp_path: Path) -> None:
    where = resolve_database("postgresql://ops:hunter2@db:5432/opsroom", cwd=tmp_path)
    assert where.path is None
    assert where.shown == "postgresql://ops:***@db:5432/opsroom"
    assert "hunter2" not in where.note


def test_settings_hold_the_url_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DATABASE_URL", "sqlite:///here.db")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url == f"sqlite:///{tmp_path / 'here.db'}"
    assert database_location(settings).path == tmp_path / "here.db"


def test_fake_now_without_a_zone_is_utc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSROOM_FAKE_NOW", "2026-11-25T23:40:00")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.opsroom_fake_now == datetime(2026, 11, 25, 23, 40, tzinfo=UTC)


def test_the_started_clock_starts_there_and_moves_on() -> None:
    start = datetime(2026, 11, 25, 23, 59, 59, tzinfo=UTC)
    clock = StartedAtClock(start)
    first = clock.now()
    time.sleep(0.02)
    second = clock.now()
    assert start <= first < start + timedelta(seconds=1)
    assert second - first >= timedelta(seconds=0.02)


ROOT = Path(__file__).resolve().parents[2]


def test_every_setting_is_in_env_example() -> None:
    listed = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {name.upper() for name in Settings.model_fields} <= listed


def test_every_catalog_key_is_documented() -> None:
    """docs/catalog.md documents the format key by key: a new key needs its line there."""
    from pydantic import BaseModel

    from bot.catalog import Catalog

    doc = (ROOT / "docs" / "catalog.md").read_text()
    seen: set[type[BaseModel]] = set()

    def keys(model: type[BaseModel]) -> set[str]:
        if model in seen:
            return set()
        seen.add(model)
        found = set(model.model_fields)
        for info in model.model_fields.values():
            for arg in (info.annotation, *getattr(info.annotation, "__args__", ())):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    found |= keys(arg)
        return found

    missing = sorted(k for k in keys(Catalog) if f"`{k}`" not in doc)
    assert missing == []
