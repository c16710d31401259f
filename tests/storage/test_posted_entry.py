"""`Unit.posted_entry`: the entry a bot post shows, found by (link, message id) through
ix_delivery_message, on SQLite and PostgreSQL; migration 0003 adds the index and the timeline
root's message id, and downgrades without losing the record."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.models import EntryKind
from storage.engine import upgrade
from storage.store import _POSTED_ENTRY
from tests.conftest import build_core
from tests.fakes.clock import FakeClock
from tests.storage.test_migrations import _migrate, schema_diff


async def declared_with_an_update(engine: AsyncEngine, catalog: Catalog):  # type: ignore[no-untyped-def]
    core = build_core(engine, catalog, FakeClock())
    assert (await core.run("declare checkout 500s in EU")).ok
    where = core.where(core.incident_channel(1))
    assert (await core.run("update rolled back; recovering", where=where)).ok
    return core


async def test_the_posted_entry_is_found_by_link_and_message_id(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    core = await declared_with_an_update(any_engine, catalog)
    async with core.store.unit() as u:
        [link] = await u.links(1)
        assert link.id is not None and link.timeline_message_id is not None
        update = next(e for e in await u.timeline(1) if e.kind is EntryKind.STATUS_UPDATE)
    channel = core.chat.channels[link.channel_id or ""]
    post = next(m for m in channel.messages if m.text.startswith("📣"))
    root = next(m for m in channel.messages if m.text.startswith("🧵"))
    assert root.id == link.timeline_message_id
    async with core.store.unit() as u:
        found = await u.posted_entry(link.id, post.id)
        assert found is not None and found.id == update.id
        assert await u.posted_entry(link.id + 1, post.id) is None  # another channel's
        assert await u.posted_entry(link.id, "no-such-message") is None
        # The summary's refreshes record its message id too, but they show no entry.
        assert link.summary_message_id is not None
        assert await u.posted_entry(link.id, link.summary_message_id) is None


async def test_the_lookup_uses_the_index(any_engine: AsyncEngine, catalog: Catalog) -> None:
    await declared_with_an_update(any_engine, catalog)
    sql = str(_POSTED_ENTRY.params(link_id=1, mid="M1").compile(
        dialect=any_engine.dialect, compile_kwargs={"literal_binds": True}))
    async with any_engine.connect() as conn:
        if any_engine.dialect.name == "sqlite":
            plan = (await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}")).all()
        else:
            # On a table this small the planner would rightly scan; forbid it to see the choice.
            await conn.execute(text("SET enable_seqscan = off"))
            plan = (await conn.exec_driver_sql(f"EXPLAIN {sql}")).all()
    assert "ix_delivery_message" in " ".join(str(row) for row in plan), plan


def _columns(connection: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(connection).get_columns(table)}


def _indexes(connection: Connection, table: str) -> set[str]:
    return {str(i["name"]) for i in inspect(connection).get_indexes(table)}


async def test_0003_down_and_up_keeps_the_record(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    core = await declared_with_an_update(any_engine, catalog)
    async with any_engine.begin() as conn:
        await conn.run_sync(_migrate, "0002", True)
        assert "timeline_message_id" not in await conn.run_sync(_columns, "channellink")
        assert "ix_delivery_message" not in await conn.run_sync(_indexes, "delivery")
    await upgrade(any_engine)
    assert await schema_diff(any_engine) == []
    async with core.store.unit() as u:
        [link] = await u.links(1)
        assert link.timeline_message_id is None  # links opened before 0003 have none
        assert len(await u.timeline(1)) == 2
