"""The async engine: SQLite (WAL) by default, PostgreSQL by URL; schema upgrades through Alembic."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

logger = logging.getLogger(__name__)

DEFAULT_URL = "sqlite:///opsroom.db"
DEFAULT_TIMEOUT_S = 10.0  # OPSROOM_DB_TIMEOUT_S: connecting, and any one statement
MIGRATIONS = Path(__file__).parent / "migrations"
_UPGRADE_LOCK_KEY = 0x4F505352  # "OPSR": the advisory lock class that serializes upgrades


def async_url(url: str) -> str:
    """Return `url` with the async driver Opsroom uses for its database."""
    try:
        parsed = make_url(url)
    except ArgumentError:  # not a URL at all; not echoed, as it may hold a password
        raise ValueError(
            "DATABASE_URL is not a database URL: use sqlite:////absolute/path.db or "
            "postgresql://user:pass@host:5432/db"
        ) from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite").render_as_string(hide_password=False)
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False)
    raise ValueError(
        f"unsupported database {backend!r} in DATABASE_URL: use sqlite:///path.db or "
        "postgresql://user@host/db"
    )


def safe_url(url: str) -> str:
    """The URL with any password hidden, for logs and errors."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # unparseable: say so without echoing what might hold a password
        return "(an unparseable DATABASE_URL)"


def sqlite_path(url: str) -> Path | None:
    """The file a SQLite URL names (`~` expanded, maybe relative); None for other databases,
    an in-memory SQLite or a URL that does not parse."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def with_sqlite_path(url: str, path: Path) -> str:
    """`url` (a SQLite URL) naming `path` instead, its query (`?mode=ro`...) kept."""
    return make_url(url).set(database=str(path)).render_as_string(hide_password=False)


def sqlite_problem(path: Path) -> str | None:
    """Why SQLite could not use `path`, said plainly, before it fails with "unable to open
    database file"; None when nothing is visibly wrong."""
    if path.is_dir():
        return f"{path} is a directory, not a database file"
    parent = path.parent
    if not parent.is_dir():
        return f"the directory {parent} does not exist (create it, or set DATABASE_URL)"
    if not path.exists() and not os.access(parent, os.W_OK):
        return f"cannot create {path}: the directory {parent} is not writable"
    if path.exists() and not os.access(path, os.R_OK):
        return f"cannot read {path}: permission denied"
    return None


def describe_error(exc: BaseException) -> str:
    """One line for people about a database failure: the driver's own words, without the SQL,
    its parameters or a traceback (and never the URL, which may hold a password)."""
    inner = getattr(exc, "orig", None) or exc
    text = str(inner).strip().splitlines()[0].strip() if str(inner).strip() else ""
    if "file is not a database" in text:
        return "the file is not a SQLite database"
    missing = re.match(r'database "([^"]+)" does not exist', text)
    if missing:
        return f"{text} (create it with `createdb {missing.group(1)}`)"
    return text or type(inner).__name__


class SchemaError(Exception):
    """The database's schema is not one this Opsroom can upgrade; the message says why."""


def make_engine(
    url: str = DEFAULT_URL, *, timeout_s: float = DEFAULT_TIMEOUT_S, **kwargs: Any
) -> AsyncEngine:
    """An engine whose connects and statements give up after `timeout_s` seconds: a database
    host that accepts connections but never answers fails in that time, not minutes later."""
    target = async_url(url)
    connect_args = dict(kwargs.pop("connect_args", {}))
    if target.startswith("postgresql"):
        connect_args.setdefault("timeout", timeout_s)  # asyncpg: the whole connect handshake
        connect_args.setdefault("command_timeout", timeout_s)  # asyncpg: each statement
        kwargs.setdefault("pool_timeout", timeout_s)
    else:
        connect_args.setdefault("timeout", timeout_s)  # sqlite3: waiting for the write lock
    # hide_parameters: a logged database error must not carry what people typed (or a token).
    engine = create_async_engine(
        target, hide_parameters=True, connect_args=connect_args, **kwargs
    )
    if engine.dialect.name == "sqlite":
        _sqlite_setup(engine, timeout_s)
    return engine


def _sqlite_setup(engine: AsyncEngine, timeout_s: float) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin (see _on_begin).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(timeout_s * 1000)}")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Take the write lock up front: a deferred transaction that reads, then writes, can
        # fail with "database is locked" when another writer got in between.
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _alembic_config(connection: Connection) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Create or migrate the schema to `revision` (idempotent, safe to run concurrently)."""

    def run(connection: Connection) -> None:
        _check_schema(connection)
        command.upgrade(_alembic_config(connection), revision)

    async with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # Two processes upgrading an empty database at once (two `opsroom run` starting
            # together) would both create the tables and the second would fail. This lock is
            # held until the upgrade commits, so the second waits, then finds the schema at
            # head. SQLite needs none: BEGIN IMMEDIATE already serializes the upgrades.
            await conn.execute(
                text("SELECT pg_advisory_xact_lock(:key, hashtext(current_schema()))"),
                {"key": _UPGRADE_LOCK_KEY},
            )
        await conn.run_sync(run)
    logger.info("database schema is at %s", revision)


def _check_schema(connection: Connection) -> None:
    """Refuse, in plain words, a database this Opsroom must not touch: one migrated by a newer
    Opsroom (a revision we do not know), or one with our tables but no schema version."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory
    from sqlalchemy import inspect
    from sqlmodel import SQLModel

    import bot.models  # noqa: F401  (registers the tables)

    current = MigrationContext.configure(connection).get_current_revision()
    script = ScriptDirectory(str(MIGRATIONS))
    known = {rev.revision for rev in script.walk_revisions()}
    if current is not None and current not in known:
        raise SchemaError(
            f"the database is at schema revision {current}, which this Opsroom does not know: "
            f"a newer Opsroom migrated it (this one goes up to {script.get_current_head()}). "
            "Run that newer Opsroom, or point DATABASE_URL at another database."
        )
    if current is None:
        ours = sorted(set(inspect(connection).get_table_names()) & set(SQLModel.metadata.tables))
        if ours:
            raise SchemaError(
                f"the database has Opsroom tables ({', '.join(ours[:4])}"
                f"{', ...' if len(ours) > 4 else ''}) but no schema version (no alembic_version "
                "row): it was not created by `opsroom db upgrade`, so it cannot be upgraded "
                "safely. Point DATABASE_URL at an empty database, or restore the version."
            )


async def current_revision(engine: AsyncEngine) -> str | None:
    from alembic.runtime.migration import MigrationContext

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async with engine.connect() as conn:
        return await conn.run_sync(read)
