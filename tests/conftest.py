"""Shared fixtures: a real store (a SQLite file, or PostgreSQL in a schema of its own), the core
wired to a recording chat, and the people who use it."""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog, load_catalog
from bot.mirror import Backoff, Mirror
from bot.ports import Actor, ChannelRef
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import make_engine, upgrade
from storage.store import SqlStore
from tests.fakes.chat import RecordingChat
from tests.fakes.clock import FakeClock

# No test writes to the real home: Opsroom's per-user files (the default database, the console
# history) go to a directory of this run, in this process and every `opsroom` it starts.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="opsroom-test-data-")

PG_URL = os.environ.get("OPSROOM_TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="OPSROOM_TEST_DATABASE_URL is not set")
BACKENDS = ["sqlite", pytest.param("postgresql", marks=needs_pg)]

ALICE = Actor(platform="console", user_id="alice", name="alice", mention="@alice")
BOB = Actor(platform="console", user_id="bob", name="bob", mention="@bob")


async def open_engine(backend: str, tmp_path: Path) -> tuple[AsyncEngine, str | None]:
    """A migrated engine on a fresh database; for PostgreSQL, a schema only this test uses."""
    if backend == "sqlite":
        # Migrating once and copying the file keeps each test's fresh database cheap.
        target = tmp_path / "opsroom.db"
        shutil.copyfile(await _migrated_sqlite_template(), target)
        return make_engine(f"sqlite:///{target}"), None
    assert PG_URL is not None
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = make_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    await admin.dispose()
    engine = make_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    await upgrade(engine)
    return engine, schema


_TEMPLATE: Path | None = None


async def _migrated_sqlite_template() -> Path:
    global _TEMPLATE
    if _TEMPLATE is None:
        path = Path(tempfile.mkdtemp(prefix="opsroom-template-")) / "template.db"
        engine = make_engine(f"sqlite:///{path}")
        await upgrade(engine)
        await engine.dispose()  # closing the last connection folds the WAL into the file
        _TEMPLATE = path
    return _TEMPLATE


async def close_engine(engine: AsyncEngine, schema: str | None) -> None:
    await engine.dispose()
    if schema is not None:
        assert PG_URL is not None
        admin = make_engine(PG_URL)
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


_CATALOG = load_catalog()


@pytest.fixture
def catalog() -> Catalog:
    return _CATALOG  # frozen: safe to share


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """SQLite: the core's tests run on the default backend."""
    eng, schema = await open_engine("sqlite", tmp_path)
    yield eng
    await close_engine(eng, schema)


@pytest.fixture(params=BACKENDS)
async def any_engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """Each storage test runs on SQLite, and on PostgreSQL when it is configured."""
    eng, schema = await open_engine(request.param, tmp_path)
    yield eng
    await close_engine(eng, schema)


@dataclass
class Core:
    store: SqlStore
    chat: RecordingChat
    mirror: Mirror
    service: IncidentService
    clock: FakeClock
    general: ChannelRef

    def where(self, channel_name: str, thread: bool = False) -> ChannelRef:
        channel = self.chat.by_name(channel_name)
        thread_id = next(iter(channel.threads)) if thread else None
        return ChannelRef("console", channel.id, thread_id=thread_id)

    def incident_channel(self, number: int) -> str:
        return next(
            c.name for c in self.chat.channels.values() if c.name.startswith(f"inc-{number}-")
        )

    async def run(self, text: str, actor: Actor = ALICE, where: ChannelRef | None = None):  # type: ignore[no-untyped-def]
        reply = await self.service.handle_text(text, actor=actor, where=where or self.general)
        assert await self.mirror.drain(timeout=5)
        return reply


def build_core(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> Core:
    store = SqlStore(engine)
    chat = RecordingChat(channels=("general",))
    # The mirror keeps real time, so retry delays and Retry-After really pass; the service's
    # clock is set by the test. Entries dated by the fake clock are in the past, so due at once.
    mirror = Mirror(
        store=store, ports={"console": chat}, catalog=catalog, backoff=Backoff(base=0.001, cap=0.01)
    )
    service = IncidentService(
        store=store,
        catalog=catalog,
        suggester=HeuristicSuggester(),
        clock=clock,
        notify=mirror.wake,
    )
    general = ChannelRef("console", chat.by_name("general").id)
    return Core(store, chat, mirror, service, clock, general)


@pytest.fixture
def core(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> Core:
    return build_core(engine, catalog, clock)
