"""Opsroom's real HTTP app with the REST API and the web view, served over loopback."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.api import WebContext
from adapters.api.auth import create_token
from adapters.http import Readiness, create_app
from bot.catalog import Catalog
from tests.adapters.slack_harness import serve
from tests.conftest import ALICE, Core, build_core
from tests.fakes.clock import FakeClock


@dataclass
class ApiRig:
    core: Core
    ctx: WebContext
    url: str
    http: httpx.AsyncClient
    tokens: dict[str, str] = field(default_factory=dict)

    async def token(self, name: str, scope: str = "write", private: bool = False) -> str:
        _, token = await create_token(
            self.core.store, name=name, scope=scope, private=private, now=self.core.clock.now()
        )
        self.tokens[name] = token
        return token

    def auth(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    async def declare(
        self, title: str = "checkout 500s", *, type: str | None = None, severity: str | None = None
    ) -> int:
        """An incident declared from chat (the console), as people do."""
        typed = f"type={type} " if type else ""
        reply = await self.core.run(f"/incident declare {typed}{title}")
        assert reply.ok, reply.text
        assert reply.incident is not None
        if severity:
            changed = await self.core.run(f"/incident #{reply.incident} severity {severity}")
            assert changed.ok, changed.text
        return reply.incident


@asynccontextmanager
async def api_rig(
    engine: AsyncEngine,
    catalog: Catalog,
    clock: FakeClock,
    *,
    public_url: str | None = None,
    trusted_header: str | None = None,
) -> AsyncIterator[ApiRig]:
    core = build_core(engine, catalog, clock)
    ctx = WebContext(
        service=core.service,
        store=core.store,
        public_url=public_url,
        trusted_header=trusted_header,
        poll_seconds=0.05,
    )
    app = create_app(Readiness(), web=ctx)
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=10) as http:
        try:
            yield ApiRig(core, ctx, url, http)
        finally:
            ctx.stopping.set()  # live streams end, so the server can stop


__all__ = ["ALICE", "ApiRig", "api_rig"]
