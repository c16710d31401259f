"""A local HTTP server for runbook HTTP steps: it records every request, and answers as a
test scripts it (`plan`: a (status, body) per request, or "hang" for a slow answer)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class Target:
    url: str = ""
    seen: list[dict[str, Any]] = field(default_factory=list)
    plan: list[tuple[int, str] | str] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.text()
        self.seen.append(
            {"path": request.path, "method": request.method, "headers": dict(request.headers),
             "body": json.loads(body) if body else None}
        )
        answer = self.plan.pop(0) if self.plan else (200, '{"ok": true}')
        if answer == "hang":
            await asyncio.sleep(2)
            answer = (200, "{}")
        assert isinstance(answer, tuple)
        return web.Response(status=answer[0], text=answer[1], content_type="application/json")


@asynccontextmanager
async def running_target() -> AsyncIterator[Target]:
    t = Target()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", t.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    t.url = f"http://127.0.0.1:{port}"
    try:
        yield t
    finally:
        await runner.cleanup()
