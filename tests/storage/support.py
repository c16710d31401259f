"""Helpers the storage tests share."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.engine import make_engine


@asynccontextmanager
async def same_database(engine: AsyncEngine, connections: int) -> AsyncIterator[AsyncEngine]:
    """Another engine on `engine`'s database, its pool filled with `connections` open ones.

    Filling the pool first makes racing units begin at once, instead of one after another as
    each one's connection gets made.
    """
    if engine.dialect.name == "sqlite":
        other = make_engine(f"sqlite:///{engine.url.database}", pool_size=connections)
    else:
        async with engine.connect() as conn:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
        other = make_engine(engine.url.render_as_string(hide_password=False),
                            pool_size=connections,
                            connect_args={"server_settings": {"search_path": schema}})
    try:
        opened = await asyncio.gather(*(other.connect().start() for _ in range(connections)))
        for conn in opened:
            await conn.close()  # back to the pool, still open
        yield other
    finally:
        await other.dispose()
