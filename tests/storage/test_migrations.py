"""The Alembic migrations build exactly the schema the models describe, on SQLite and PostgreSQL.

`any_engine` hands each test a database that `storage.engine.upgrade` migrated from empty.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import SQLModel, col

import bot.models  # noqa: F401  (registers every table on SQLModel.metadata)
from bot.catalog import Catalog
from bot.models import IncidentCounter
from storage.engine import MIGRATIONS, current_revision, upgrade
from tests.conftest import ALICE, build_core
from tests.fakes.clock import FakeClock
from tests.storage.support import same_database

HEAD = ScriptDirectory(str(MIGRATIONS)).get_current_head()


async def schema_diff(engine: AsyncEngine) -> list[Any]:
    """What autogenerate would still have to do to make the database match the models."""

    def compare(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": True}
        )
        return list(compare_metadata(context, SQLModel.metadata))

    async with engine.connect() as conn:
        return await conn.run_sync(compare)


async def counter_rows(engine: AsyncEngine) -> list[tuple[int, int]]:
    async with engine.connect() as conn:
        result = await conn.execute(
            select(col(IncidentCounter.id), col(IncidentCounter.value)).order_by(
                col(IncidentCounter.id)
            )
        )
        return [(row.id, row.value) for row in result]


async def table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


async def test_upgrade_from_empty_matches_the_models(any_engine: AsyncEngine) -> None:
    assert HEAD is not None
    assert await current_revision(any_engine) == HEAD
    assert await schema_diff(any_engine) == []
    assert set(SQLModel.metadata.tables) | {"alembic_version"} == await table_names(any_engine)


async def test_the_incident_counter_row_exists(any_engine: AsyncEngine) -> None:
    assert await counter_rows(any_engine) == [(1, 0)]


async def test_upgrading_twice_is_a_noop(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    core = build_core(any_engine, catalog, clock)
    first = await core.service.handle_text("declare checkout is down", actor=ALICE,
                                           where=core.general)
    assert first.incident == 1

    await upgrade(any_engine)

    assert await current_revision(any_engine) == HEAD
    assert await schema_diff(any_engine) == []
    # The seed row of the counter is written once: a second upgrade must not reset numbering.
    assert await counter_rows(any_engine) == [(1, 1)]
    second = await core.service.handle_text("declare search is slow", actor=ALICE,
                                            where=core.general)
    assert second.incident == 2


def _migrate(connection: Connection, revision: str, down: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    (command.downgrade if down else command.upgrade)(config, revision)


async def test_downgrade_to_empty_then_upgrade_again(any_engine: AsyncEngine) -> None:
    async with any_engine.begin() as conn:
        await conn.run_sync(_migrate, "base", True)
    assert await table_names(any_engine) == {"alembic_version"}
    assert await current_revision(any_engine) is None

    await upgrade(any_engine)
    assert await schema_diff(any_engine) == []
    assert await counter_rows(any_engine) == [(1, 0)]


async def test_concurrent_upgrades_of_an_empty_database_all_succeed(
    any_engine: AsyncEngine,
) -> None:
    """Two `opsroom run` starting together on an empty database must not trip over each other."""
    async with any_engine.begin() as conn:
        await conn.run_sync(_migrate, "base", True)

    async with same_database(any_engine, 1) as one, same_database(any_engine, 1) as two, \
            same_database(any_engine, 1) as three:
        await asyncio.wait_for(asyncio.gather(upgrade(one), upgrade(two), upgrade(three)), 30)

    assert await current_revision(any_engine) == HEAD
    assert await schema_diff(any_engine) == []
    assert await counter_rows(any_engine) == [(1, 0)]
