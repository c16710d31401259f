"""`http`: call a URL with a templated method, headers and JSON body.

Secrets are written `${env:OPSROOM_SECRET_NAME}` and resolved only when the request is sent:
the run's record, the progress message and the logs hold the placeholder, never the value, and
any secret value an answer echoes is masked before it is recorded. Only `OPSROOM_SECRET_*`
variables can be named, so a catalog can never send the bot's own tokens anywhere.

Each attempt carries `Idempotency-Key: <run>-<step>`; timeouts, 429 and 5xx are retried with
backoff. After a crash mid-request the step is sent again with the same key (at least once).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar, Literal, Protocol

from pydantic import field_validator, model_validator

from bot import commands as c
from bot.redact import Redactor
from bot.steps import (
    SECRET_PREFIX,
    SECRET_RE,
    Call,
    Done,
    Failed,
    Outcome,
    StepContext,
    StepKind,
    StepSpec,
    Tools,
    register,
    secret_names,
)
from bot.templates import render, render_value
from bot.timing import parse_duration

logger = logging.getLogger(__name__)

BODY_LIMIT = 500  # characters of an answer kept in the record
_REDACT = Redactor()


class HttpTimeout(Exception):
    """No answer within the step's timeout."""


class HttpClient(Protocol):
    """The one thing an HTTP step needs from the outside (adapters/http_client.py)."""

    async def request(
        self,
        method: str,
        url: str,
        *,
        headers: dict[str, str],
        body: Any,
        timeout: float,
    ) -> tuple[int, str]:
        """Send; return the status and the body as text. HttpTimeout when it takes too long;
        any other exception is a connection failure (retried like a timeout)."""
        ...


class Spec(StepSpec):
    kind: Literal["http"]
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "POST"
    url: str
    headers: dict[str, str] = {}
    body: Any = None
    timeout: str = "10s"
    retries: int = 2
    backoff: str = "1s"
    expect_status: list[int] = []
    save: dict[str, str] = {}  # custom field -> path in the JSON answer ("data.id", "items.0")
    TEMPLATED: ClassVar[tuple[str, ...]] = ("url", "headers", "body")

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("timeout", "backoff")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("expect_status", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        return [value] if isinstance(value, int) else value

    @field_validator("retries")
    @classmethod
    def _retries(cls, value: int) -> int:
        if not 0 <= value <= 10:
            raise ValueError(f"retries must be between 0 and 10, not {value}")
        return value

    @model_validator(mode="after")
    def _secrets(self) -> Spec:
        for name in secret_names([self.url, self.headers, self.body]):
            if not name.startswith(SECRET_PREFIX) or name == SECRET_PREFIX:
                raise ValueError(
                    f"${{env:{name}}} is not allowed: name only {SECRET_PREFIX}* variables"
                )
        return self

    def title(self) -> str:
        return self.name or f"{self.method} {self.url.split('?')[0]}"

    def longest(self) -> float:
        timeout = parse_duration(self.timeout).total_seconds()
        pause = parse_duration(self.backoff).total_seconds()
        return float(timeout * (self.retries + 1) + pause * (2**self.retries))


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec) and ctx.run.id is not None
    request = {
        "method": spec.method,
        "url": render(spec.url, ctx.template),
        "headers": render_value(spec.headers, ctx.template),
        "body": render_value(spec.body, ctx.template),
        "key": f"{ctx.run.id}-{ctx.index}",
    }
    return Call(request)


def _resolve(value: Any, env: Any, used: dict[str, str]) -> Any:
    if isinstance(value, str):

        def one(match: Any) -> str:
            name = match.group(1)
            if name not in env:
                raise KeyError(name)
            used[name] = env[name]
            return str(env[name])

        return SECRET_RE.sub(one, value)
    if isinstance(value, dict):
        return {k: _resolve(v, env, used) for k, v in value.items()}
    if isinstance(value, list):
        return [_resolve(v, env, used) for v in value]
    return value


def mask(text: str, secrets: dict[str, str]) -> str:
    """`text` with every secret value (and whatever else looks like a token) masked."""
    for name, value in secrets.items():
        if value:
            text = text.replace(value, f"[{name}]")
    return _REDACT(text)


async def call(spec: Any, request: dict[str, Any], tools: Tools) -> dict[str, Any]:
    """Send the request, retrying as the step says; the result holds nothing secret."""
    assert isinstance(spec, Spec)
    used: dict[str, str] = {}
    try:
        url = _resolve(request["url"], tools.env, used)
        headers = _resolve(request["headers"], tools.env, used)
        body = _resolve(request["body"], tools.env, used)
    except KeyError as exc:
        return {"error": f"the secret {exc.args[0]} is not set in the environment"}
    headers = {**headers, "Idempotency-Key": request["key"]}
    if tools.http is None:
        return {"error": "no HTTP client is configured"}
    timeout = parse_duration(spec.timeout).total_seconds()
    pause = parse_duration(spec.backoff).total_seconds()
    sleep = tools.sleep or asyncio.sleep
    attempts, last = 0, ""
    for attempt in range(spec.retries + 1):
        attempts = attempt + 1
        if attempt:
            await sleep(pause * 2 ** (attempt - 1))
        try:
            status, text = await tools.http.request(
                spec.method, url, headers=headers, body=body, timeout=timeout
            )
        except HttpTimeout:
            last = f"no answer within {spec.timeout}"
            continue
        except Exception as exc:  # a refused connection, a DNS failure: worth another try
            last = mask(f"cannot connect: {type(exc).__name__}: {exc}", used)
            continue
        result = {"status": status, "body": mask(text[:BODY_LIMIT], used), "attempts": attempts}
        if status == 429 or status >= 500:
            last = f"HTTP {status}"
            continue
        result["json"] = _json_or_none(text)
        return result
    logger.warning(
        "runbook http step %s gave up after %d attempts: %s", request["key"], attempts, last
    )
    return {"error": f"{last} (after {attempts} attempt{'s' if attempts > 1 else ''})"}


def _json_or_none(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def pick(data: Any, path: str) -> Any:
    """The value at a dotted path ("data.items.0.id") of a JSON answer; KeyError if absent."""
    node = data
    for part in path.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


async def finish(spec: Any, ctx: StepContext, result: dict[str, Any]) -> Outcome:
    assert isinstance(spec, Spec)
    if "error" in result:
        return Failed(result["error"])
    status = int(result["status"])
    ctx.state["status"] = status
    ctx.state["body"] = result.get("body", "")
    ok = status in spec.expect_status if spec.expect_status else 200 <= status < 300
    if not ok:
        want = ", ".join(map(str, spec.expect_status)) if spec.expect_status else "2xx"
        return Failed(f"HTTP {status} (expected {want}): {result.get('body', '')[:200]}")
    saved = []
    for field, path in spec.save.items():
        try:
            value = pick(result.get("json"), path)
        except KeyError:
            return Failed(f'HTTP {status}, but the answer has no "{path}" to save as {field}')
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        await ctx.apply(c.SetField(field=field, value=text))
        saved.append(field)
    tail = f", saved {', '.join(saved)}" if saved else ""
    return Done(detail=f"HTTP {status}{tail}")


register(StepKind("http", Spec, run, call, finish))
