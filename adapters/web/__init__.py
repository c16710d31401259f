"""The web view: server-rendered pages (Jinja2, autoescaped, no build step, usable without
JavaScript), signed in by a token cookie or an SSO proxy's header, live by server-sent events.

Chat text is untrusted: every value goes through autoescape, the Content-Security-Policy allows
no inline script or style, and every form carries a CSRF token (double-submit cookie).
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from adapters.api.auth import Principal, authenticate
from adapters.api.context import WebContext
from bot import commands as c
from bot.models import EntryKind, Incident, Status, TimelineEntry, TokenScope
from bot.render import when
from storage.reads import IncidentFilter

logger = logging.getLogger(__name__)

HERE = Path(__file__).parent
SESSION_COOKIE = "opsroom_session"
CSRF_COOKIE = "opsroom_csrf"
PAGE_SIZE = 100
TIMELINE_SHOWN = 300  # the latest entries an incident page shows; ?timeline=all shows every one
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
# Swagger UI sets styles inline; the docs page shows no chat text, so it may.
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_OPEN = [s for s in Status if s.is_open]
_CLOSED = [s for s in Status if not s.is_open]

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def duration(delta: timedelta | None) -> str:
    if delta is None:
        return "-"
    minutes = max(0, int(delta.total_seconds() // 60))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    return f"{hours}h {mins:02d}m" if hours else f"{mins}m"


class SecurityHeaders:
    """Headers on every answer of the web view and the docs (a plain ASGI middleware, so the
    live stream is not buffered)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        csp = DOCS_CSP if path.startswith("/docs") else CSP

        async def with_headers(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", csp.encode()),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                    (b"x-frame-options", b"DENY"),
                ]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


def _safe_next(target: str | None) -> str:
    # Only a path on this site: "//evil.example" or "https://..." would send people away.
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/incidents"
    return target


def web_router(ctx: WebContext) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    catalog = ctx.service.catalog
    tz = catalog.tz

    async def signed_in(request: Request) -> Principal | None:
        if ctx.trusted_header:
            user = request.headers.get(ctx.trusted_header, "").strip()
            if user:
                # The proxy vouches for the person; private incidents stay token-only.
                return Principal(
                    name=user[:64], scope=TokenScope.WRITE, private=False, via="header"
                )
        token = request.cookies.get(SESSION_COOKIE)
        return await authenticate(ctx.store, token) if token else None

    def csrf_token(request: Request) -> tuple[str, bool]:
        current = request.cookies.get(CSRF_COOKIE)
        if current and len(current) >= 32:
            return current, False
        return secrets.token_urlsafe(32), True

    def render(
        request: Request,
        template: str,
        code: int = 200,
        who: Principal | None = None,
        **values: Any,
    ) -> HTMLResponse:
        token, fresh = csrf_token(request)
        html = env.get_template(template).render(
            who=who, csrf=token, now=ctx.service.clock.now(), when=when, tz=tz, **values
        )
        response = HTMLResponse(html, status_code=code)
        if fresh:
            response.set_cookie(
                CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ctx.secure_cookies
            )
        return response

    async def check_form(request: Request) -> dict[str, str] | None:
        """The form's fields when its CSRF token matches the cookie and it came from here."""
        origin = request.headers.get("origin")
        # Behind a proxy the Host may be internal; the public address is ours too.
        ours = {request.url.netloc, urlsplit(ctx.public_url or "").netloc} - {""}
        if origin and origin != "null" and urlsplit(origin).netloc not in ours:
            return None
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        cookie = request.cookies.get(CSRF_COOKIE, "")
        sent = fields.get("csrf", "")
        if not cookie or not hmac.compare_digest(cookie.encode(), sent.encode()):
            return None
        return fields

    def to_signin(request: Request) -> Response:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/signin?next={quote(target)}", status_code=303)

    Page = Callable[[Request, Principal], Awaitable[Response]]

    def page(fn: Page) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            who = await signed_in(request)
            if who is None:
                return to_signin(request)
            return await fn(request, who)

        return run

    # --- signing in -----------------------------------------------------------------------

    @router.get("/")
    async def home() -> Response:
        return RedirectResponse("/incidents", status_code=303)

    @router.get("/signin")
    async def signin_form(request: Request, next: str | None = None) -> Response:
        return render(request, "signin.html", next=_safe_next(next), error=None)

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        fields = await check_form(request)
        if fields is None:
            return render(
                request, "signin.html", 403, next="/incidents", error="The form expired; try again."
            )
        target = _safe_next(fields.get("next"))
        token = fields.get("token", "").strip()
        who = await authenticate(ctx.store, token) if token else None
        if who is None:
            return render(
                request, "signin.html", 401, next=target, error="That token is not valid."
            )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            token,
            httponly=True,
            samesite="lax",  # links clicked in chat arrive signed in
            secure=ctx.secure_cookies,
            max_age=30 * 24 * 3600,
        )
        return response

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        if await check_form(request) is None:
            return render(
                request, "signin.html", 403, next="/incidents", error="The form expired; try again."
            )
        response = RedirectResponse("/signin", status_code=303)
        response.delete_cookie(SESSION_COOKIE)
        return response

    # --- incidents ------------------------------------------------------------------------

    async def incidents_page(request: Request, who: Principal) -> Response:
        q = request.query_params
        status = q.get("status", "open")
        severity = q.get("severity") or None
        itype = q.get("type") or None
        since_text = q.get("since") or ""
        problems = []
        if status not in ("open", "all", *[s.value for s in Status]):
            problems.append(f'unknown status "{status}"')
            status = "open"
        if severity and catalog.severity(severity) is None:
            problems.append(f'unknown severity "{severity}"')
            severity = None
        if itype and catalog.incident_type(itype) is None:
            problems.append(f'unknown type "{itype}"')
            itype = None
        since = None
        if since_text:
            try:
                since = datetime.fromisoformat(since_text).replace(tzinfo=tz)
            except ValueError:
                problems.append(f'"{since_text}" is not a date (use YYYY-MM-DD)')
        cursor = q.get("cursor", "")
        phase, _, raw = cursor.partition(":")
        before = int(raw) if raw.isdigit() else None
        if phase not in ("o", "c"):
            phase = "o"

        def where(statuses: list[Status]) -> IncidentFilter:
            return IncidentFilter(
                statuses=statuses,
                severities=[severity] if severity else (),
                types=[itype] if itype else (),
                since=since,
                include_private=who.private,
            )

        rows: list[Incident] = []
        next_cursor = None
        async with ctx.store.unit() as u:
            if status == "all":  # open ones first, then the rest
                if phase == "o":
                    rows, more = await u.incident_page(where(_OPEN), before=before, limit=PAGE_SIZE)
                    if more:
                        next_cursor = f"o:{rows[-1].number}"
                    else:
                        before, phase = None, "c"
                if phase == "c" and len(rows) < PAGE_SIZE:
                    closed, more = await u.incident_page(
                        where(_CLOSED), before=before, limit=PAGE_SIZE - len(rows)
                    )
                    rows += closed
                    if more and closed:
                        next_cursor = f"c:{closed[-1].number}"
            else:
                statuses = _OPEN if status == "open" else [Status(status)]
                rows, more = await u.incident_page(where(statuses), before=before, limit=PAGE_SIZE)
                if more:
                    next_cursor = f"o:{rows[-1].number}"
        params = {
            k: v
            for k, v in (
                ("status", status),
                ("severity", severity),
                ("type", itype),
                ("since", since_text),
            )
            if v
        }
        return render(
            request,
            "incidents.html",
            who=who,
            incidents=rows,
            status=status,
            severity=severity,
            itype=itype,
            since=since_text,
            problems=problems,
            statuses=[s.value for s in Status],
            severities=[s.name for s in catalog.severities],
            types=catalog.type_names,
            next_query="&".join(f"{k}={quote(v)}" for k, v in params.items())
            + (f"&cursor={next_cursor}" if next_cursor else ""),
            has_next=next_cursor is not None,
        )

    router.add_api_route("/incidents", page(incidents_page), methods=["GET"])

    async def visible(number: int, who: Principal) -> Incident | None:
        async with ctx.store.unit() as u:
            return await u.incident_view(number, include_private=who.private)

    async def incident_page(request: Request, who: Principal) -> Response:
        number = _number(request)
        incident = await visible(number, who) if number is not None else None
        if incident is None:
            return render(request, "missing.html", 404, who=who, number=number)
        assert incident.id is not None
        show_all = request.query_params.get("timeline") == "all"
        async with ctx.store.unit() as u:
            last_id = await u.last_entry_id(incident.id)
            if show_all:
                entries, _ = await u.timeline_page(incident.id, after=None, limit=1_000_000)
                earlier = False
            else:
                entries, earlier = await u.latest_entries(incident.id, limit=TIMELINE_SHOWN)
            actions = await u.action_items(incident.id)
        itype = catalog.incident_type(incident.type)
        labels = {f.name: f.display for t in catalog.incident_types for f in t.fields}
        if itype:
            labels |= {f.name: f.display for f in itype.fields}
        end = incident.resolved_at or ctx.service.clock.now()
        durations = [
            ("Time to acknowledge", _between(incident.declared_at, incident.acknowledged_at)),
            ("Time to mitigate", _between(incident.declared_at, incident.mitigated_at)),
            ("Time to resolve", _between(incident.declared_at, incident.resolved_at)),
            (
                "Open for" if incident.status.is_open else "Lasted",
                duration(end - incident.declared_at),
            ),
        ]
        fields = [
            (labels.get(name, name), ", ".join(v) if isinstance(v, list) else str(v))
            for name, v in incident.custom_fields.items()
        ]
        return render(
            request,
            "incident.html",
            who=who,
            incident=incident,
            fields=fields,
            durations=durations,
            entries=entries,
            earlier=earlier,
            actions=actions,
            last_id=last_id,
            key_kind=EntryKind.KEY_EVENT,
            note_error=request.query_params.get("error"),
        )

    router.add_api_route("/incidents/{number}", page(incident_page), methods=["GET"])

    async def add_note(request: Request, who: Principal) -> Response:
        number = _number(request)
        incident = await visible(number, who) if number is not None else None
        if incident is None or number is None:
            return render(request, "missing.html", 404, who=who, number=number)
        fields = await check_form(request)
        if fields is None:
            return render(
                request,
                "missing.html",
                403,
                who=who,
                number=number,
                error="The form expired; reload the page and try again.",
            )
        if not who.can_write:
            return RedirectResponse(
                f"/incidents/{number}?error={quote('This token may only read.')}", 303
            )
        text = fields.get("text", "").strip()
        if not text:
            return RedirectResponse(
                f"/incidents/{number}?error={quote('Write a note first.')}", 303
            )
        reply = await ctx.service.handle(
            c.AddNote(incident=number, text=text[:4000]),
            actor=who.actor,
            where=ctx.declare_where(),
        )
        suffix = "" if reply.ok else f"?error={quote(reply.text)}"
        return RedirectResponse(f"/incidents/{number}{suffix}#timeline-end", status_code=303)

    router.add_api_route("/incidents/{number}/notes", page(add_note), methods=["POST"])

    async def events(request: Request, who: Principal) -> Response:
        number = _number(request)
        incident = await visible(number, who) if number is not None else None
        if incident is None:
            return Response("no such incident", status_code=404, media_type="text/plain")
        assert incident.id is not None
        start = request.query_params.get("after") or request.headers.get("last-event-id") or ""
        after = int(start) if start.isdigit() else None
        return StreamingResponse(
            _stream(ctx, request, incident.id, after),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    router.add_api_route("/incidents/{number}/events", page(events), methods=["GET"])

    # --- reports --------------------------------------------------------------------------

    async def reports(request: Request, who: Principal) -> Response:
        days_text = request.query_params.get("days", "")
        days = int(days_text) if days_text.isdigit() and 0 < int(days_text) <= 3650 else None
        since = ctx.service.clock.now() - timedelta(days=days) if days else None
        async with ctx.store.unit() as u:
            report = await u.report(IncidentFilter(since=since, include_private=who.private))
        charts = [
            ("By status", _bars(report.by_status)),
            ("By severity", _bars(report.by_severity)),
            ("By type", _bars(report.by_type)),
        ]
        mttr = [
            (s.upper(), duration(timedelta(seconds=v)))
            for s, v in sorted(report.mean_resolve_seconds.items())
        ]
        return render(request, "reports.html", who=who, charts=charts, mttr=mttr, days=days)

    router.add_api_route("/reports", page(reports), methods=["GET"])

    @router.get("/static/{name}")
    async def static(name: str) -> Response:
        types = {".css": "text/css", ".js": "text/javascript"}
        path = HERE / "static" / name
        if "/" in name or path.suffix not in types or not path.is_file():
            return Response("not found", status_code=404, media_type="text/plain")
        return Response(
            path.read_bytes(),
            media_type=types[path.suffix],
            headers={"Cache-Control": "public, max-age=300"},
        )

    return router


def _number(request: Request) -> int | None:
    raw = request.path_params.get("number", "")
    return int(raw) if str(raw).isdigit() and len(str(raw)) < 10 else None


def _between(start: datetime, end: datetime | None) -> str:
    return duration(end - start) if end is not None else "-"


def _bars(counts: dict[str, int]) -> list[dict[str, Any]]:
    """Rows of a horizontal bar chart, drawn as SVG rectangles (no script, no inline style)."""
    top = max(counts.values(), default=0) or 1
    return [
        {"label": label, "count": n, "width": round(300 * n / top), "y": i * 26}
        for i, (label, n) in enumerate(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    ]


def entry_event(entry: TimelineEntry, now: datetime, tz: Any) -> str:
    data = {
        "id": entry.id,
        "kind": entry.kind.value,
        "key_event": entry.kind is EntryKind.KEY_EVENT,
        "text": entry.text,
        "author": entry.author_name,
        "occurred_at": entry.occurred_at.isoformat(),
        "shown_at": when(entry.occurred_at, now, tz),
    }
    return f"id: {entry.id}\nevent: entry\ndata: {json.dumps(data)}\n\n"


async def _stream(
    ctx: WebContext, request: Request, incident_id: int, after: int | None
) -> AsyncIterator[str]:
    """New timeline entries as they are recorded, by any replica: the database is polled, so
    what one process wrote reaches pages served by another."""
    if after is None:
        async with ctx.store.unit() as u:
            after = await u.last_entry_id(incident_id)
    yield f"retry: 2000\nid: {after}\n\n"
    quiet = 0.0
    while not ctx.stopping.is_set():
        if await request.is_disconnected():
            return
        async with ctx.store.unit() as u:
            rows = await u.entries_since(incident_id, after_id=after)
        now = ctx.service.clock.now()
        for entry in rows:
            assert entry.id is not None
            after = entry.id
            yield entry_event(entry, now, ctx.service.catalog.tz)
        quiet = 0.0 if rows else quiet + ctx.poll_seconds
        if quiet >= ctx.heartbeat_seconds:
            quiet = 0.0
            yield ": still here\n\n"  # keeps proxies from closing an idle stream
        try:
            await asyncio.wait_for(ctx.stopping.wait(), timeout=ctx.poll_seconds)
        except TimeoutError:
            pass
