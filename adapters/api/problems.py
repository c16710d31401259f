"""Errors as `application/problem+json` (RFC 9457): what was wrong, naming the bad value."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)

PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class InvalidParam(BaseModel):
    name: str
    reason: str


class ProblemBody(BaseModel):
    """The body of every error answer."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    invalid_params: list[InvalidParam] | None = None


class Problem(Exception):
    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        invalid: list[InvalidParam] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail or _TITLES.get(status, "Error"))
        self.status = status
        self.detail = detail
        self.invalid = invalid
        self.headers = headers or {}


def problem_response(
    status: int,
    detail: str | None = None,
    *,
    invalid: list[InvalidParam] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ProblemBody(
        title=_TITLES.get(status, "Error"), status=status, detail=detail, invalid_params=invalid
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status, media_type=PROBLEM, headers=headers
    )


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _validation(exc: RequestValidationError) -> JSONResponse:
    invalid = []
    for error in exc.errors():
        loc = [str(p) for p in error.get("loc", ()) if p not in ("body", "query", "path")]
        name = ".".join(loc) or "body"
        reason = str(error.get("msg", "invalid"))
        if "input" in error and error.get("type") != "missing":
            reason = f"{reason}, not {_shown(error['input'])}"
        invalid.append(InvalidParam(name=name, reason=reason))
    detail = "; ".join(f"{p.name}: {p.reason}" for p in invalid[:5])
    return problem_response(422, detail, invalid=invalid)


def install(app: FastAPI) -> None:
    """Every error the app answers becomes a problem document; none is a traceback."""

    @app.exception_handler(Problem)
    async def _problem(request: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc.status, exc.detail, invalid=exc.invalid, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = exc.detail if isinstance(exc.detail, str) and exc.status_code != 404 else None
        if exc.status_code == 404:
            detail = f"no such resource: {request.url.path}"
        return problem_response(exc.status_code, detail, headers=dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception) -> JSONResponse:
        # A bug or an unreachable database: logged for us, a short answer for the caller.
        logger.exception("%s %s failed", request.method, request.url.path)
        return problem_response(503, "the request failed on our side; nothing was changed")
