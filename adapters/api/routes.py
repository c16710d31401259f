"""REST API under /api/v1: incidents, their timeline and action items.

Reads use the store's read queries; every write goes through `IncidentService`, the same rules
and transaction as a chat command, authored by the token's name.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from adapters.api.auth import Principal, authenticate
from adapters.api.context import WebContext
from adapters.api.problems import PROBLEM, InvalidParam, Problem, ProblemBody
from adapters.api.schemas import (
    ActionItemIn,
    ActionItemOut,
    ActionItemPatch,
    DeclareIn,
    EntryOut,
    IncidentOut,
    IncidentPage,
    IncidentPatch,
    TextIn,
    TimelinePage,
)
from bot import commands as c
from bot.dates import read_due
from bot.models import ActionStatus, EntryKind, Incident, Status
from bot.service import ServiceError
from storage.reads import IncidentFilter

logger = logging.getLogger(__name__)

_PROBLEM_CONTENT = {PROBLEM: {"schema": {"$ref": "#/components/schemas/ProblemBody"}}}
_AUTH = {
    401: {"description": "Missing or wrong token", "content": _PROBLEM_CONTENT},
    403: {"description": "The token may not do this", "content": _PROBLEM_CONTENT},
    422: {"description": "A bad value, named", "content": _PROBLEM_CONTENT},
}
_ONE = {**_AUTH, 404: {"description": "No such incident", "content": _PROBLEM_CONTENT}}
_WRITE = {
    **_ONE,
    409: {"description": "A declare with that key is running", "content": _PROBLEM_CONTENT},
}

Number = Annotated[int, Path(ge=1, le=2_147_483_647, description="The incident's number")]
Item = Annotated[int, Path(ge=1, le=2_147_483_647, description="The action item's number")]
# A declare takes seconds at most (the suggester's budget is 8 s); a key still unsettled after
# this is left from a request that died, and is taken over.
STALE_CLAIM = timedelta(minutes=2)
StatusQ = Annotated[list[Status] | None, Query(description="Repeat for several")]


def encode_cursor(*parts: object) -> str:
    raw = "|".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, arity: int) -> list[str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raw = ""
    parts = raw.split("|")
    if len(parts) != arity:
        bad_cursor(cursor)
    return parts


def bad_cursor(cursor: str) -> NoReturn:
    raise Problem(
        422,
        f'bad cursor "{cursor[:40]}": pass next_cursor from the previous page as it is',
        invalid=[InvalidParam(name="cursor", reason="not a cursor this API gave")],
    )


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)  # a bare time means UTC, like every time Opsroom shows
    return value


def _one_of(names: Sequence[str]) -> str:
    return ", ".join(names)


async def caller(request: Request) -> Principal:
    ctx: WebContext = request.app.state.web
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    principal = None
    if scheme.lower() == "bearer" and token.strip():
        principal = await authenticate(ctx.store, token.strip())
    if principal is None:
        # The same answer for missing, malformed, unknown and revoked: nothing to guess from.
        raise Problem(401, "a valid API token is needed", headers={"WWW-Authenticate": "Bearer"})
    return principal


async def writer(who: Annotated[Principal, Depends(caller)]) -> Principal:
    if not who.can_write:
        raise Problem(403, "this token may not change incidents")
    return who


Reader = Annotated[Principal, Depends(caller)]
Writer = Annotated[Principal, Depends(writer)]


def api_router(ctx: WebContext) -> APIRouter:
    router = APIRouter(prefix="/api/v1")
    catalog = ctx.service.catalog

    async def visible(number: Number, who: Principal) -> Incident:
        async with ctx.store.unit() as u:
            incident = await u.incident_view(number, include_private=who.private)
        if incident is None:  # a private incident is as absent as a missing one
            raise Problem(404, f"no incident #{number}")
        return incident

    def check_names(param: str, values: Sequence[str], known: Sequence[str]) -> list[str]:
        lowered = {k.lower(): k for k in known}
        out = []
        for value in values:
            if value.lower() not in lowered:
                raise Problem(
                    422,
                    f'unknown {param} "{value}": use {_one_of(known)}',
                    invalid=[InvalidParam(name=param, reason=f'unknown {param} "{value}"')],
                )
            out.append(lowered[value.lower()])
        return out

    # --- incidents ------------------------------------------------------------------------

    @router.get("/incidents", response_model=IncidentPage, responses=_AUTH, tags=["incidents"])
    async def list_incidents(
        who: Reader,
        status: StatusQ = None,
        severity: Annotated[list[str] | None, Query()] = None,
        type: Annotated[list[str] | None, Query()] = None,
        declared_since: datetime | None = None,
        declared_until: datetime | None = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
    ) -> IncidentPage:
        """Incidents, newest first, filtered; page on with `next_cursor`."""
        where = IncidentFilter(
            statuses=status or (),
            severities=check_names(
                "severity", severity or [], [s.name for s in catalog.severities]
            ),
            types=check_names("type", type or [], catalog.type_names),
            since=_aware(declared_since),
            until=_aware(declared_until),
            include_private=who.private,
        )
        before = None
        if cursor:
            (raw,) = decode_cursor(cursor, 1)
            if not raw.isdigit():
                bad_cursor(cursor)
            before = int(raw)
        async with ctx.store.unit() as u:
            rows, more = await u.incident_page(where, before=before, limit=limit)
        return IncidentPage(
            items=[IncidentOut.of(i, ctx.base) for i in rows],
            next_cursor=encode_cursor(rows[-1].number) if more and rows else None,
        )

    @router.post(
        "/incidents",
        status_code=201,
        response_model=IncidentOut,
        responses={
            **_WRITE,
            200: {"description": "Declared before with this idempotency_key", "model": IncidentOut},
        },
        tags=["incidents"],
    )
    async def declare(body: DeclareIn, who: Writer, response: Response) -> IncidentOut:
        """Declare an incident; fields left out are suggested from the description."""
        key = body.idempotency_key
        if key is not None:
            assert who.token_id is not None
            given = body.model_dump(exclude={"idempotency_key"}, exclude_unset=True)
            fingerprint = hashlib.sha256(
                json.dumps(given, sort_keys=True, default=str).encode()
            ).hexdigest()
            now = ctx.service.clock.now()
            async with ctx.store.unit() as u:
                first = await u.claim_idempotency_key(
                    who.token_id, key, fingerprint=fingerprint, now=now
                )
                row = None if first else await u.idempotency_key(who.token_id, key)
                if (
                    row is not None
                    and row.incident_number is None
                    and (now - row.created_at > STALE_CLAIM)
                ):
                    # The first request died mid-declare (no incident came of it, or its
                    # commit was never recorded here): this one takes the key over.
                    row.created_at, row.fingerprint = now, fingerprint
                    row = None
            if row is not None:
                if row.fingerprint != fingerprint:
                    raise Problem(
                        422,
                        f'idempotency_key "{key}" was used with a different request',
                        invalid=[InvalidParam(name="idempotency_key", reason="reused")],
                    )
                if row.incident_number is None:
                    raise Problem(409, f'a declare with idempotency_key "{key}" is running')
                response.status_code = 200
                return IncidentOut.of(await visible(row.incident_number, who), ctx.base)
        number = None
        try:
            number = await _declare(body, who)
        finally:
            if key is not None:
                assert who.token_id is not None
                async with ctx.store.unit() as u:
                    await u.settle_idempotency_key(who.token_id, key, number)
        response.headers["Location"] = f"/api/v1/incidents/{number}"
        return IncidentOut.of(await visible(number, who), ctx.base)

    async def _declare(body: DeclareIn, who: Principal) -> int:
        service = ctx.service
        try:
            s = None
            if None in (body.title, body.type, body.severity, body.priority):
                s = await service.suggest(description=body.description, type_hint=body.type)
            fields = dict(s.custom_fields if s else {})
            fields.update(body.custom_fields or {})
            reply = await service.declare(
                actor=who.actor,
                where=ctx.declare_where(),
                description=body.description,
                title=body.title or (s.title if s else body.description),
                type=body.type or (s.type if s else ""),
                severity=body.severity or (s.severity if s else ""),
                priority=body.priority or (s.priority if s else ""),
                summary=body.summary if body.summary is not None else (s.summary if s else ""),
                custom_fields=fields,
                commander=body.commander,
                suggested=s,
            )
        except ServiceError as exc:
            raise Problem(422, str(exc)) from None
        if not reply.ok or reply.incident is None:
            raise Problem(422, reply.text)
        return reply.incident

    @router.get(
        "/incidents/{number}", response_model=IncidentOut, responses=_ONE, tags=["incidents"]
    )
    async def get_incident(number: Number, who: Reader) -> IncidentOut:
        return IncidentOut.of(await visible(number, who), ctx.base)

    @router.patch(
        "/incidents/{number}", response_model=IncidentOut, responses=_ONE, tags=["incidents"]
    )
    async def patch_incident(number: Number, body: IncidentPatch, who: Writer) -> IncidentOut:
        """Change several fields at once: all of them, or (on any refusal) none."""
        await visible(number, who)
        given = body.model_dump(exclude_unset=True)
        steps: list[tuple[str, c.Command]] = []
        # Type first (its fields come with it), status last (resolving checks the fields).
        if "type" in given:
            steps.append(("type", c.ChangeType(incident=number, type=body.type)))
        if "title" in given:
            steps.append(("title", c.SetTitle(incident=number, title=body.title)))
        if "summary" in given:
            steps.append(("summary", c.SetSummary(incident=number, summary=body.summary)))
        if "severity" in given:
            steps.append(("severity", c.SetSeverity(incident=number, severity=body.severity)))
        if "priority" in given:
            steps.append(("priority", c.SetPriority(incident=number, priority=body.priority)))
        for role, person in (body.roles or {}).items():
            steps.append(
                (
                    f"roles.{role}",
                    c.AssignRole(incident=number, role=role, user=person)
                    if person is not None
                    else c.Unassign(incident=number, role=role),
                )
            )
        for name, value in (body.custom_fields or {}).items():
            shown = ",".join(value) if isinstance(value, list) else str(value)
            steps.append(
                (f"custom_fields.{name}", c.SetField(incident=number, field=name, value=shown))
            )
        if body.status is not None:
            # As `/incident status <status>` in chat (acknowledged, resolved... included).
            steps.append(("status", c.SetStatus(incident=number, status=body.status.value)))
        if not steps:
            raise Problem(422, "nothing to change: give at least one field")
        await _together(steps, who)
        return IncidentOut.of(await visible(number, who), ctx.base)

    async def _together(steps: list[tuple[str, c.Command]], who: Principal) -> None:
        reply, failed = await ctx.service.handle_together(
            [cmd for _, cmd in steps], actor=who.actor, where=ctx.declare_where()
        )
        if failed is not None:
            name = steps[failed][0]
            raise Problem(
                422,
                f"{name}: {reply.text} (nothing was changed)",
                invalid=[InvalidParam(name=name, reason=reply.text)],
            )

    # --- timeline -------------------------------------------------------------------------

    @router.get(
        "/incidents/{number}/timeline",
        response_model=TimelinePage,
        responses=_ONE,
        tags=["timeline"],
    )
    async def timeline(
        number: Number,
        who: Reader,
        kind: Annotated[list[EntryKind] | None, Query()] = None,
        cursor: Annotated[str | None, Query(max_length=200)] = None,
        limit: Annotated[int, Query(ge=1, le=500)] = 100,
    ) -> TimelinePage:
        """The timeline in order, oldest first; `kind=key_event` for the key events."""
        incident = await visible(number, who)
        assert incident.id is not None
        after = None
        if cursor:
            at, entry_id = decode_cursor(cursor, 2)
            try:
                after = (datetime.fromisoformat(at), int(entry_id))
            except ValueError:
                bad_cursor(cursor)
        async with ctx.store.unit() as u:
            rows, more = await u.timeline_page(
                incident.id, after=after, limit=limit, kinds=kind or ()
            )
        last = rows[-1] if rows else None
        return TimelinePage(
            items=[EntryOut.of(e) for e in rows],
            next_cursor=encode_cursor(last.occurred_at.isoformat(), last.id)
            if more and last
            else None,
        )

    async def _entry(
        number: Number, who: Principal, command: c.Command, kind: EntryKind
    ) -> EntryOut:
        incident = await visible(number, who)
        assert incident.id is not None
        reply = await ctx.service.handle(command, actor=who.actor, where=ctx.declare_where())
        if not reply.ok:
            raise Problem(422, reply.text)
        async with ctx.store.unit() as u:
            entry = await u.latest_entry_by(incident.id, author_id=who.actor.user_id, kind=kind)
        assert entry is not None
        return EntryOut.of(entry)

    @router.post(
        "/incidents/{number}/notes",
        status_code=201,
        response_model=EntryOut,
        responses=_ONE,
        tags=["timeline"],
    )
    async def add_note(number: Number, body: TextIn, who: Writer) -> EntryOut:
        """A note on the timeline (as `/incident note`)."""
        return await _entry(
            number, who, c.AddNote(incident=number, text=body.text), EntryKind.MESSAGE
        )

    @router.post(
        "/incidents/{number}/key-events",
        status_code=201,
        response_model=EntryOut,
        responses=_ONE,
        tags=["timeline"],
    )
    async def add_key_event(number: Number, body: TextIn, who: Writer) -> EntryOut:
        """A key event (as `/incident event`)."""
        return await _entry(
            number, who, c.AddKeyEvent(incident=number, text=body.text), EntryKind.KEY_EVENT
        )

    @router.post(
        "/incidents/{number}/updates",
        status_code=201,
        response_model=EntryOut,
        responses=_ONE,
        tags=["timeline"],
    )
    async def add_update(number: Number, body: TextIn, who: Writer) -> EntryOut:
        """A status update to stakeholders (as `/incident update`)."""
        return await _entry(
            number, who, c.StatusUpdate(incident=number, text=body.text), EntryKind.STATUS_UPDATE
        )

    # --- action items ---------------------------------------------------------------------

    @router.get(
        "/incidents/{number}/action-items",
        response_model=list[ActionItemOut],
        responses=_ONE,
        tags=["action items"],
    )
    async def action_items(number: Number, who: Reader) -> list[ActionItemOut]:
        incident = await visible(number, who)
        assert incident.id is not None
        async with ctx.store.unit() as u:
            items = await u.action_items(incident.id)
        return [ActionItemOut.of(a) for a in items]

    def _due(value: str | None) -> c.DueSpec | None:
        if value is None:
            return None
        try:
            read_due(value)
        except ValueError as exc:
            raise Problem(
                422, str(exc), invalid=[InvalidParam(name="due", reason=str(exc))]
            ) from None
        return c.DueSpec(value)

    @router.post(
        "/incidents/{number}/action-items",
        status_code=201,
        response_model=ActionItemOut,
        responses=_ONE,
        tags=["action items"],
    )
    async def add_action_item(number: Number, body: ActionItemIn, who: Writer) -> ActionItemOut:
        incident = await visible(number, who)
        assert incident.id is not None
        command = c.ActionAdd(
            incident=number, text=body.text, assignee=body.assignee, due=_due(body.due)
        )
        reply = await ctx.service.handle(command, actor=who.actor, where=ctx.declare_where())
        if not reply.ok:
            raise Problem(422, reply.text)
        async with ctx.store.unit() as u:
            items = await u.action_items(incident.id)
        mine = [a for a in items if a.created_by in (who.actor.ref, who.name)] or items
        return ActionItemOut.of(mine[-1])

    @router.patch(
        "/incidents/{number}/action-items/{n}",
        response_model=ActionItemOut,
        responses={
            **_ONE,
            404: {"description": "No such incident or action item", "content": _PROBLEM_CONTENT},
        },
        tags=["action items"],
    )
    async def patch_action_item(
        number: Number, n: Item, body: ActionItemPatch, who: Writer
    ) -> ActionItemOut:
        """Edit an action item and/or mark it done, open or cancelled: all or nothing."""
        incident = await visible(number, who)
        assert incident.id is not None
        async with ctx.store.unit() as u:
            if await u.action_item(incident.id, n) is None:
                raise Problem(404, f"#{number} has no action item {n}")
        given = body.model_dump(exclude_unset=True)
        steps: list[tuple[str, c.Command]] = []
        if given.keys() & {"text", "assignee", "due"}:
            name = next(k for k in ("text", "assignee", "due") if k in given)
            steps.append(
                (
                    name,
                    c.ActionEdit(
                        incident=number,
                        number=n,
                        text=body.text,
                        assignee=body.assignee,
                        due=_due(body.due),
                    ),
                )
            )
        if body.status is not None:
            kind = {
                ActionStatus.DONE: c.ActionDone,
                ActionStatus.OPEN: c.ActionReopen,
                ActionStatus.CANCELLED: c.ActionCancel,
            }[body.status]
            steps.append(("status", kind(incident=number, number=n)))
        if not steps:
            raise Problem(422, "nothing to change: give text, assignee, due or status")
        await _together(steps, who)
        async with ctx.store.unit() as u:
            item = await u.action_item(incident.id, n)
        assert item is not None
        return ActionItemOut.of(item)

    return router


def problem_schema_components(openapi: dict[str, Any]) -> dict[str, Any]:
    """Adds ProblemBody (and its parts) to the document's schemas, for the error responses."""
    schemas = openapi.setdefault("components", {}).setdefault("schemas", {})
    body = ProblemBody.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, schema in body.pop("$defs", {}).items():
        schemas[name] = schema
    schemas["ProblemBody"] = body
    return openapi
