"""The HTTP app (FastAPI): Slack's Request URL, and the health checks a service manager polls.

Every request passes `BodyLimit` first: a body over OPSROOM_MAX_BODY_BYTES is refused (413)
from its Content-Length before anything is read, or as soon as the bytes streamed in pass the
limit; nothing more reaches the app (the server discards the rest). Refused requests are logged
in one line, without body or headers.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.fastapi.async_handler import AsyncSlackRequestHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.signature import SignatureVerifier
from sqlalchemy import text

from bot.ports import Clock, SystemClock
from storage import inbox as inbox_db
from storage.store import SqlStore

logger = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1_048_576
STUCK_AFTER = timedelta(seconds=60)  # the oldest unapplied inbox row: older means stuck

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

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


class Health:
    """Whether the database answers and the inbox moves (the rest of /healthz)."""

    def __init__(
        self,
        store: SqlStore,
        *,
        timeout: float = 3.0,
        stuck_after: timedelta = STUCK_AFTER,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.timeout = timeout
        self.stuck_after = stuck_after
        self.clock: Clock = clock or SystemClock()

    async def check(self) -> tuple[dict[str, Any], list[str]]:
        """What is known about the database and the inbox, and the reasons it is not healthy."""
        try:
            unapplied, oldest = await asyncio.wait_for(self._read(), self.timeout)
        except Exception as exc:  # unreachable, refusing, or not answering in time
            reason = f"database unreachable ({type(exc).__name__})"
            return {"database": "unreachable"}, [reason]
        age = (self.clock.now() - oldest).total_seconds() if oldest else 0.0
        report: dict[str, Any] = {
            "database": "ok",
            "inbox": {"unapplied": unapplied, "oldest_unapplied_s": round(age, 1)},
        }
        reasons = []
        if oldest is not None and age > self.stuck_after.total_seconds():
            reasons.append(
                f"inbox stuck: the oldest of {unapplied} unapplied inputs is {age:.0f}s old"
            )
        return report, reasons

    async def _read(self) -> tuple[int, Any]:
        async with self.store.transaction() as session:
            await session.execute(text("SELECT 1"))
            return await inbox_db.pending_count(session), await inbox_db.oldest_pending(session)


class BodyLimit:
    """Refuse request bodies over `limit` bytes (413) before reading them, on every route."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.strip().isdigit():
                await refuse(scope, send, 400, "Content-Length is not a number")
                return
            if int(declared) > self.limit:
                await refuse(
                    scope, send, 413,
                    f"body too large: {int(declared)} bytes; the limit is {self.limit}",
                )
                return
        # Read the body here, counting: a sender that lies or streams (chunked) is cut off as
        # soon as it passes the limit, and the app below gets the body from memory.
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await refuse(scope, send, 413, f"body too large: over {self.limit} bytes")
                return
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def refuse(scope: Scope, send: Send, status: int, reason: str) -> None:
    """Answer `status` with a short reason, logged in one line (never the body or headers)."""
    client = scope.get("client") or ("-", 0)
    logger.warning(
        "http: %d for %s %s from %s: %s",
        status, scope.get("method", "-"), scope.get("path", "-"), client[0], reason,
    )
    # "message" too: the shape the alert routes answer their own refusals with.
    body = json.dumps({"error": reason, "message": reason}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                # No "connection: close": the server discards the rest of the body itself, so a
                # client still sending (a 2 MB stream) reads its 413 instead of a reset.
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def malformed_slack_request(request: Request, body: bytes, secret: str) -> tuple[int, str] | None:
    """Why a Slack request cannot be handled, as (status, reason); None when it can.

    Checked before Bolt sees it: Bolt answers a body it cannot parse with a 500 and a traceback.
    """
    timestamp = request.headers.get("X-Slack-Request-Timestamp", "").strip()
    if timestamp and not timestamp.lstrip("-").isdigit():
        return 400, "X-Slack-Request-Timestamp is not an integer"
    if secret and not (
        timestamp
        and SignatureVerifier(secret).is_valid(
            body, timestamp, request.headers.get("X-Slack-Signature", "")
        )
    ):
        return 401, "invalid or missing Slack signature"
    try:
        decoded = body.decode("utf-8")
    except UnicodeDecodeError:
        return 400, "the body is not UTF-8"
    if "application/json" in request.headers.get("content-type", ""):
        try:
            parsed = json.loads(decoded)
        except ValueError:
            return 400, "the body is not valid JSON"
        if not isinstance(parsed, dict):
            return 400, "the JSON body is not an object"
        return None
    payload = parse_qs(decoded).get("payload")
    if payload:
        try:
            parsed = json.loads(payload[0])
        except ValueError:
            return 400, "payload= is not valid JSON"
        if not isinstance(parsed, dict):
            return 400, "payload= is not a JSON object"
    return None


def create_app(
    readiness: Readiness,
    slack: AsyncApp | None = None,
    web: WebContext | None = None,
    metrics: APIRouter | None = None,
    alerts: tuple[Alerts, AlertAuth] | None = None,
    routers: Sequence[APIRouter] = (),
    *,
    slack_secret: str = "",
    health: Health | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> ASGIApp:
    app = FastAPI(title="Opsroom", docs_url=None, redoc_url=None, openapi_url=None)
    if metrics is not None:  # GET /metrics (adapters/metrics.py)
        app.include_router(metrics)
    for router in routers:  # the on-call calendar feeds, ...
        app.include_router(router)

    if alerts is not None:
        from adapters.alerts_http import alerts_router

        app.include_router(alerts_router(*alerts))

    async def ready() -> Response:
        body: dict[str, Any] = {
            "ready": readiness.ok,
            "adapters": {name: name in readiness.ready for name in sorted(readiness.waiting_for)},
        }
        reasons = [
            f"{name} not ready" for name, up in body["adapters"].items() if not up
        ]
        if health is not None:
            report, problems = await health.check()
            body.update(report)
            reasons += problems
        body["ready"] = not reasons
        if reasons:
            body["reason"] = "; ".join(reasons)
        return JSONResponse(body, status_code=503 if reasons else 200)

    app.get("/healthz")(ready)
    app.get("/readyz")(ready)

    @app.get("/livez")
    async def livez() -> Response:
        return JSONResponse({"live": True})

    if slack is not None:
        handler = AsyncSlackRequestHandler(slack)

        @app.post("/slack/events")
        async def slack_events(request: Request) -> Response:
            body = await request.body()
            problem = malformed_slack_request(request, body, slack_secret)
            if problem is not None:
                status, reason = problem
                client = request.client.host if request.client else "-"
                logger.warning("http: %d for POST /slack/events from %s: %s", status, client,
                               reason)
                return JSONResponse({"error": reason}, status_code=status)
            return await handler.handle(request)

    if web is not None:  # the REST API, its docs and the web view (adapters/api, adapters/web)
        from adapters.api import mount

        mount(app, web)
    return BodyLimit(app, max_body_bytes)
