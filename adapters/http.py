"""The HTTP app (FastAPI): Slack's Request URL, and the health check a service manager polls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp

if TYPE_CHECKING:
    from adapters.alerts_http import AlertAuth
    from adapters.api import WebContext
    from bot.alerts import Alerts


@dataclass
class Readiness:
    """Each configured adapter reports here when it is ready; /healthz is 200 once all are."""

    waiting_for: set[str] = field(default_factory=set)
    ready: set[str] = field(default_factory=set)

    def expect(self, name: str) -> None:
        self.waiting_for.add(name)

    def mark_ready(self, name: str) -> None:
        self.ready.add(name)

    def mark_down(self, name: str) -> None:
        self.ready.discard(name)

    @property
    def ok(self) -> bool:
        return self.waiting_for <= self.ready


def create_app(
    readiness: Readiness,
    slack: AsyncApp | None = None,
    web: WebContext | None = None,
    metrics: APIRouter | None = None,
    alerts: tuple[Alerts, AlertAuth] | None = None,
    routers: Sequence[APIRouter] = (),
) -> FastAPI:
    app = FastAPI(title="Opsroom", docs_url=None, redoc_url=None, openapi_url=None)
    if metrics is not None:  # GET /metrics (adapters/metrics.py)
        app.include_router(metrics)
    for router in routers:  # the on-call calendar feeds, ...
        app.include_router(router)

    if alerts is not None:
        from adapters.alerts_http import alerts_router

        app.include_router(alerts_router(*alerts))

    @app.get("/healthz")
    async def healthz() -> Response:
        body = {
            "ready": readiness.ok,
            "adapters": {name: name in readiness.ready for name in sorted(readiness.waiting_for)},
        }
        return JSONResponse(body, status_code=200 if readiness.ok else 503)

    if slack is not None:
        handler = AsyncSlackRequestHandler(slack)

        @app.post("/slack/events")
        async def slack_events(request: Request) -> Response:
            return await handler.handle(request)

    if web is not None:  # the REST API, its docs and the web view (adapters/api, adapters/web)
        from adapters.api import mount

        mount(app, web)
    return app
