"""A fake OpenAI-compatible HTTP server for adapter tests.

The real ``openai.AsyncOpenAI`` client talks to it over HTTP on 127.0.0.1, so tests exercise the
SDK's own request building, response parsing, error mapping, retries, timeouts and SSE decoding::

    async with FakeOpenAI() as fake:
        fake.reply_json({"title": "Database down", "severity": "SEV1"})
        client = openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0)
        completion = await client.chat.completions.create(model="gpt-4o-mini", messages=[...])
        assert fake.last_schema() == {...}

Endpoints, each imitating the OpenAI REST API (https://platform.openai.com/docs/api-reference):

``POST /v1/chat/completions``
    Answers with a ``chat.completion`` object, or with ``chat.completion.chunk`` server-sent
    events ending in ``data: [DONE]`` when the request has ``"stream": true``.
``GET /v1/models`` and ``GET /v1/models/{id}``
    A ``list`` of ``model`` objects, or one ``model`` object.
anything else
    404 ``Invalid URL (METHOD /path)``, as OpenAI answers unknown routes.

Errors use OpenAI's error envelope ``{"error": {"message", "type", "param", "code"}}`` and the
HTTP status the SDK maps to its exception classes (400 ``BadRequestError``, 401
``AuthenticationError``, 404 ``NotFoundError``, 429 ``RateLimitError``, 5xx
``InternalServerError``).

What a chat request gets is decided, in this order, by:

1. ``delay()``: wait first (without blocking the event loop; cut short when the server closes);
2. authentication: a ``Bearer`` token must be present (and equal ``api_key`` if one was given);
3. request validation: ``model``, ``messages``, ``response_format`` (see ``_validate_chat``);
4. ``refuse_json_schema()``: reject ``response_format.type == "json_schema"`` like vLLM does;
   otherwise check the schema (strict-mode rules, then ``check_schema()`` hooks);
5. the script: queued answers (methods called with ``n=<count>``), each answering that many
   requests in the order queued, then the *standing* answer (the last method called without
   ``n``; initially the text ``"ok"``).

Only requests that reach step 5 consume queued answers, so ``fail(n=2)`` answers exactly the
next two well-formed attempts, SDK retries included.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import re
import secrets
import socket
import string
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["DEFAULT_MODEL", "FakeOpenAI", "RecordedRequest", "Reply", "Responder", "error_body"]

DEFAULT_MODEL = "gpt-4o-mini"
SYSTEM_FINGERPRINT = "fp_0psr00m"
REDACTED = "[redacted]"

MESSAGE_ROLES = ("system", "developer", "user", "assistant", "tool", "function")
RESPONSE_FORMAT_TYPES = ("text", "json_object", "json_schema")
SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")

# A crude stand-in for a tokenizer: words, single punctuation marks, and their leading space.
_TOKEN = re.compile(r"\s*\w+|\s*[^\w\s]|\s+")

# Content for reply_invalid_json(): JSON cut off mid-object, as a model hitting a limit leaves it.
TRUNCATED_JSON = '{"title": "Checkout API returning 502s", "severity": "SEV'

_SERVER_ERROR_MESSAGE = "The server had an error while processing your request. Sorry about that!"
_STATUS_ERRORS: dict[int, tuple[str, str, str | None]] = {
    # status: (message, type, code), following what api.openai.com returns.
    400: ("Bad request.", "invalid_request_error", None),
    401: ("Incorrect API key provided.", "invalid_request_error", "invalid_api_key"),
    403: ("You are not allowed to sample from this model.", "invalid_request_error", None),
    404: (
        "The model does not exist or you do not have access to it.",
        "invalid_request_error",
        "model_not_found",
    ),
    408: ("Request timed out.", "timeout", None),
    409: ("Conflict.", "invalid_request_error", None),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded"),
    500: (_SERVER_ERROR_MESSAGE, "server_error", None),
    502: ("Bad gateway.", "server_error", None),
    503: ("The engine is currently overloaded, please try again later.", "server_error", None),
}


def error_body(
    message: str,
    type: str = "invalid_request_error",  # named like the API field
    param: str | None = None,
    code: str | None = None,
) -> dict[str, Any]:
    """OpenAI's error envelope: ``{"error": {"message", "type", "param", "code"}}``."""
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _default_error(status: int) -> dict[str, Any]:
    message, type_, code = _STATUS_ERRORS.get(
        status,
        (_SERVER_ERROR_MESSAGE, "server_error", None)
        if status >= 500
        else (f"HTTP {status}.", "invalid_request_error", None),
    )
    return error_body(message, type_, None, code)


class _ApiError(Exception):
    """Raised inside handlers; the middleware turns it into an OpenAI error response."""

    def __init__(
        self, status: int, body: dict[str, Any], headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(body["error"]["message"])
        self.status = status
        self.body = body
        self.headers = dict(headers or {})


def _bad_request(message: str, param: str | None = None, code: str | None = None) -> _ApiError:
    return _ApiError(400, error_body(message, "invalid_request_error", param, code))


def _missing(param: str) -> _ApiError:
    return _bad_request(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


@dataclass(frozen=True)
class Reply:
    """One scripted answer to a chat completion request.

    A 2xx reply becomes ``choices[i].message`` of a ``chat.completion`` (or the deltas of a
    stream): ``content``, ``refusal`` and ``finish_reason``. A reply with ``status >= 400``
    becomes an error response whose body is ``{"error": error}`` (OpenAI's default error object
    for that status when ``error`` is None). ``headers`` are added to the HTTP response.
    """

    content: str | None = "ok"
    finish_reason: str = "stop"
    refusal: str | None = None
    status: int = 200
    error: Mapping[str, Any] | None = None
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def text(cls, text: str, *, finish_reason: str = "stop") -> Reply:
        """The assistant answers ``text``."""
        return cls(content=text, finish_reason=finish_reason)

    @classmethod
    def json(cls, obj: Any) -> Reply:
        """The assistant answers ``json.dumps(obj)``, as a model in JSON mode does."""
        return cls(content=json.dumps(obj))

    @classmethod
    def refused(cls, refusal: str) -> Reply:
        """The assistant declines: ``content`` null and ``refusal`` set (Structured Outputs)."""
        return cls(content=None, refusal=refusal)

    @classmethod
    def failure(
        cls,
        status: int = 500,
        message: str | None = None,
        *,
        type: str | None = None,  # named like the API field
        param: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> Reply:
        """An HTTP error with OpenAI's error object; ``retry_after`` (seconds) sets the
        ``retry-after-ms``/``retry-after`` headers OpenAI sends and the SDK obeys."""
        error = dict(_default_error(status)["error"])
        if message is not None:
            error["message"] = message
        if type is not None:
            error["type"] = type
        if param is not None:
            error["param"] = param
        if code is not None:
            error["code"] = code
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["retry-after-ms"] = str(max(1, round(retry_after * 1000)))
            headers["retry-after"] = str(max(1, math.ceil(retry_after)))
        return cls(content=None, status=status, error=error, headers=headers)


@dataclass
class RecordedRequest:
    """One HTTP request the fake received, whatever became of it.

    ``headers`` has lower-case names; the ``authorization`` value is replaced by ``[redacted]``
    (the name stays, so tests can see whether it was sent). ``body`` is the parsed JSON body, or
    None when the body was empty or not JSON (``raw`` keeps the bytes). ``status`` is the HTTP
    status the fake answered with, None while the request is still being answered (or if the
    client hung up first).
    """

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    raw: bytes
    status: int | None = None

    @property
    def is_chat(self) -> bool:
        return self.method == "POST" and self.path == "/v1/chat/completions"

    @property
    def messages(self) -> list[Any]:
        """The ``messages`` of a chat request (empty if absent or malformed)."""
        body = self.body if isinstance(self.body, dict) else {}
        messages = body.get("messages")
        return messages if isinstance(messages, list) else []

    @property
    def response_format(self) -> dict[str, Any] | None:
        """The ``response_format`` object of a chat request, if any."""
        body = self.body if isinstance(self.body, dict) else {}
        value = body.get("response_format")
        return value if isinstance(value, dict) else None

    @property
    def schema(self) -> Any:
        """``response_format.json_schema.schema`` of a chat request, or None."""
        fmt = self.response_format or {}
        json_schema = fmt.get("json_schema") if fmt.get("type") == "json_schema" else None
        return json_schema.get("schema") if isinstance(json_schema, dict) else None


Answer = Reply | str
Responder = Callable[[RecordedRequest], Answer | Awaitable[Answer]]
"""Decides the answer from the request: returns (or awaits to) a Reply, or a str meaning
``Reply.text(str)``. It is called only for authenticated, well-formed chat requests."""


@dataclass
class _Step:
    answer: Reply | Responder
    remaining: int


_RECORD = web.RequestKey("record", RecordedRequest)  # left on the request by the middleware


class FakeOpenAI:
    """An aiohttp server on 127.0.0.1 (free port) imitating OpenAI's chat completions API.

    Use as ``async with FakeOpenAI() as fake:`` (or ``await start()`` / ``await close()``) and
    point ``openai.AsyncOpenAI(base_url=fake.base_url)`` at it.

    ``api_key``: when given, only ``Authorization: Bearer <api_key>`` is accepted; otherwise any
    non-empty bearer token is. ``models``: ids listed by ``GET /v1/models`` (chat requests may
    name any model; it is echoed back). ``strict_schemas``: reject ``strict: true`` JSON schemas
    that OpenAI's Structured Outputs would reject (see ``_strict_schema_problem``).
    ``stream_chunk_delay``: seconds between SSE chunks.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        models: tuple[str, ...] = (DEFAULT_MODEL,),
        strict_schemas: bool = True,
        stream_chunk_delay: float = 0.0,
    ) -> None:
        self.api_key = api_key
        self.models = models
        self.strict_schemas = strict_schemas
        self.stream_chunk_delay = stream_chunk_delay
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # exceptions raised by responders / the fake itself
        self._standing: Reply | Responder = Reply.text("ok")
        self._script: deque[_Step] = deque()
        self._delay_seconds = 0.0
        self._delay_remaining: int | None = None
        self._json_schema_supported = True
        self._schema_checks: list[Callable[[Any], object]] = []
        self._closing = asyncio.Event()
        self._arrived = asyncio.Event()  # set whenever a request is recorded
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeOpenAI:
        """Bind 127.0.0.1 on a free port and start serving."""
        if self._runner is not None:
            return self
        app = web.Application(middlewares=[self._middleware])
        app.router.add_post("/v1/chat/completions", self._chat_completions)
        app.router.add_get("/v1/models", self._list_models)
        app.router.add_get("/v1/models/{model}", self._get_model)
        app.router.add_route("*", "/{tail:.*}", self._unknown_route)
        # handler_cancellation: a handler whose client hung up (e.g. after a client timeout) is
        # cancelled; shutdown_timeout bounds how long close() waits for handlers still running.
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self._port = sock.getsockname()[1]
        await web.SockSite(runner, sock).start()
        self._closing.clear()
        self._runner = runner
        return self

    async def close(self) -> None:
        """Stop serving. Delayed answers in flight end at once; safe to call twice."""
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self._closing.set()
        await runner.cleanup()

    async def __aenter__(self) -> FakeOpenAI:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("FakeOpenAI is not started")
        return self._port

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT/v1``, for ``AsyncOpenAI(base_url=...)``."""
        return f"http://127.0.0.1:{self.port}/v1"

    # ------------------------------------------------------------------ scripting

    def respond_with(self, answer: Reply | Responder, *, n: int | None = None) -> FakeOpenAI:
        """Answer with a Reply or a responder callable.

        ``n=None`` makes it the standing answer (used whenever nothing is queued); ``n=k``
        queues it for the next ``k`` chat requests, after answers queued earlier.
        """
        if n is None:
            self._standing = answer
        elif n < 1:
            raise ValueError("n must be at least 1")
        else:
            self._script.append(_Step(answer, n))
        return self

    def reply_text(
        self, text: str, *, n: int | None = None, finish_reason: str = "stop"
    ) -> FakeOpenAI:
        """Answer with ``message.content == text``."""
        return self.respond_with(Reply.text(text, finish_reason=finish_reason), n=n)

    def reply_json(self, obj: Any, *, n: int | None = None) -> FakeOpenAI:
        """Answer with ``message.content == json.dumps(obj)``."""
        return self.respond_with(Reply.json(obj), n=n)

    def reply_invalid_json(self, text: str = TRUNCATED_JSON, *, n: int | None = None) -> FakeOpenAI:
        """Answer (HTTP 200, finish_reason ``stop``) with content that ``json.loads`` rejects."""
        return self.respond_with(Reply.text(text), n=n)

    def reply_refusal(
        self, refusal: str = "I'm sorry, I can't help with that.", *, n: int | None = None
    ) -> FakeOpenAI:
        """Answer with ``content: null`` and ``message.refusal`` set."""
        return self.respond_with(Reply.refused(refusal), n=n)

    def fail(
        self,
        status: int = 500,
        *,
        n: int | None = None,
        message: str | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> FakeOpenAI:
        """Answer with HTTP ``status`` and OpenAI's error object for it.

        ``n`` counts HTTP attempts, so SDK retries each use one. ``retry_after`` (seconds) sends
        ``retry-after-ms``, which makes the SDK retry after that long instead of its backoff.
        """
        reply = Reply.failure(status, message, code=code, retry_after=retry_after)
        return self.respond_with(reply, n=n)

    def delay(self, seconds: float, *, n: int | None = None) -> FakeOpenAI:
        """Wait ``seconds`` before answering each of the next ``n`` chat requests (all of them
        when ``n`` is None). The wait does not block the event loop, is cancelled if the client
        hangs up, and ends immediately when the server closes (the answer is then a 503)."""
        self._delay_seconds = seconds
        self._delay_remaining = n
        return self

    def refuse_json_schema(self, refuse: bool = True) -> FakeOpenAI:
        """Behave like a server without Structured Outputs (vLLM without guided decoding, older
        OpenAI-compatible servers): ``response_format.type == "json_schema"`` gets HTTP 400,
        ``json_object`` and ``text`` still work."""
        self._json_schema_supported = not refuse
        return self

    def check_schema(self, check: Callable[[Any], object]) -> FakeOpenAI:
        """Run ``check(schema)`` on every ``response_format.json_schema.schema`` received.

        If it raises (AssertionError, ValueError, ...), the request is answered 400 ``Invalid
        schema for response_format '<name>': <exception text>`` and the exception is kept in
        ``errors``, imitating OpenAI rejecting a schema it cannot enforce.
        """
        self._schema_checks.append(check)
        return self

    def reset(self) -> None:
        """Forget recorded requests and errors and restore the default behaviour."""
        self.requests.clear()
        self.errors.clear()
        self._standing = Reply.text("ok")
        self._script.clear()
        self._delay_seconds, self._delay_remaining = 0.0, None
        self._json_schema_supported = True
        self._schema_checks.clear()

    # ------------------------------------------------------------------ inspection

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Recorded ``POST /v1/chat/completions`` requests, oldest first."""
        return [r for r in self.requests if r.is_chat]

    async def wait_for_requests(
        self, count: int = 1, *, within: float = 2.0
    ) -> list[RecordedRequest]:
        """Wait until ``count`` chat requests have arrived (answered or not); TimeoutError
        after ``within`` seconds. Handy when a request is sent from a background task."""
        async with asyncio.timeout(within):
            while len(self.chat_requests) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.chat_requests

    def last_request(self) -> RecordedRequest:
        """The most recent chat request; AssertionError if there was none."""
        chats = self.chat_requests
        assert chats, "FakeOpenAI received no chat completion request"
        return chats[-1]

    def last_response_format(self) -> dict[str, Any] | None:
        """``response_format`` of the most recent chat request."""
        return self.last_request().response_format

    def last_schema(self) -> Any:
        """``response_format.json_schema.schema`` of the most recent chat request (None if it
        asked for no JSON schema)."""
        return self.last_request().schema

    # ------------------------------------------------------------------ HTTP plumbing

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Record the request, turn _ApiError (and bugs) into OpenAI error responses."""
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = None
        headers = {k.lower(): v for k, v in request.headers.items()}
        if "authorization" in headers:
            headers["authorization"] = REDACTED
        record = RecordedRequest(request.method, request.path, headers, body, raw)
        self.requests.append(record)
        self._arrived.set()
        request[_RECORD] = record
        try:
            response = await handler(request)
        except _ApiError as err:
            response = self._error_response(err.status, err.body, err.headers)
        except web.HTTPException as exc:
            record.status = exc.status
            raise
        except Exception as exc:  # a responder or the fake itself failed: make it visible
            self.errors.append(exc)
            body = error_body(f"FakeOpenAI failed: {exc!r}", "server_error")
            response = self._error_response(500, body)
        record.status = response.status
        return response

    @staticmethod
    def _error_response(
        status: int, body: Mapping[str, Any], headers: Mapping[str, str] | None = None
    ) -> web.Response:
        return web.json_response(dict(body), status=status, headers=_response_headers(headers))

    def _check_auth(self, request: web.Request) -> None:
        """401 like OpenAI: no bearer token, or (with ``api_key`` set) the wrong one."""
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _ApiError(
                401,
                error_body(
                    "You didn't provide an API key. You need to provide your API key in an "
                    "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
                ),
            )
        if self.api_key is not None and token != self.api_key:
            raise _ApiError(
                401,
                error_body(f"Incorrect API key provided: {_mask(token)}.", code="invalid_api_key"),
            )

    async def _unknown_route(self, request: web.Request) -> web.Response:
        raise _ApiError(404, error_body(f"Invalid URL ({request.method} {request.path})"))

    # ------------------------------------------------------------------ /v1/models

    def _model_object(self, model_id: str) -> dict[str, Any]:
        """OpenAI's ``model`` object."""
        return {"id": model_id, "object": "model", "created": 1_700_000_000, "owned_by": "system"}

    async def _list_models(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        data = [self._model_object(m) for m in self.models]
        return web.json_response({"object": "list", "data": data}, headers=_response_headers())

    async def _get_model(self, request: web.Request) -> web.Response:
        self._check_auth(request)
        model_id = request.match_info["model"]
        if model_id not in self.models:
            raise _ApiError(
                404,
                error_body(
                    f"The model '{model_id}' does not exist", param="model", code="model_not_found"
                ),
            )
        return web.json_response(self._model_object(model_id), headers=_response_headers())

    # ------------------------------------------------------------------ /v1/chat/completions

    async def _chat_completions(self, request: web.Request) -> web.StreamResponse:
        record = request[_RECORD]
        await self._maybe_delay()
        self._check_auth(request)
        body = self._validate_chat(record)
        self._check_response_format(body)
        reply = await self._next_reply(record)
        if reply.status >= 400:
            error = dict(reply.error) if reply.error else _default_error(reply.status)["error"]
            raise _ApiError(reply.status, {"error": error}, reply.headers)
        if body.get("stream"):
            return await self._stream(request, body, reply)
        return web.json_response(
            self._completion(body, reply), headers=_response_headers(reply.headers)
        )

    async def _maybe_delay(self) -> None:
        if self._delay_seconds <= 0 or self._delay_remaining == 0:
            return
        if self._delay_remaining is not None:
            self._delay_remaining -= 1
        if await self._sleep(self._delay_seconds):
            raise _ApiError(503, error_body("FakeOpenAI is shutting down.", "server_error"))

    async def _sleep(self, seconds: float) -> bool:
        """Sleep without blocking the loop; return True early if the server is closing."""
        try:
            async with asyncio.timeout(seconds):
                await self._closing.wait()
        except TimeoutError:
            return False
        return True

    def _validate_chat(self, record: RecordedRequest) -> dict[str, Any]:
        """400s for what OpenAI rejects before generating: unparseable JSON, missing ``model``,
        missing/empty ``messages``, messages without a valid ``role`` or ``content``, bad
        ``n``/``stream``, unknown ``response_format.type``, a ``json_schema`` without its
        ``json_schema.name``, ``json_object`` without the word "json" in the messages, and
        (``strict_schemas``) strict schemas Structured Outputs would refuse."""
        body = record.body
        if not isinstance(body, dict):
            raise _bad_request(
                "We could not parse the JSON body of your request. (HINT: This likely means "
                "you aren't using your HTTP library correctly. The OpenAI API expects a JSON "
                "payload, but what was sent was not valid JSON.)"
            )
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise _bad_request("You must provide a model parameter.")
        messages = body.get("messages")
        if messages is None:
            raise _missing("messages")
        if not isinstance(messages, list):
            raise _bad_request(
                f"Invalid type for 'messages': expected an array, but got "
                f"{_json_type(messages)} instead.",
                "messages",
                "invalid_type",
            )
        if not messages:
            raise _bad_request(
                "Invalid 'messages': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                "messages",
                "empty_array",
            )
        for i, message in enumerate(messages):
            _validate_message(i, message)
        n = body.get("n", 1)
        if n is not None and (not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= 128):
            raise _bad_request(f"Invalid 'n': {n!r}. Expected an integer from 1 to 128.", "n")
        if body.get("stream") not in (None, True, False):
            raise _bad_request(
                "Invalid type for 'stream': expected a boolean.", "stream", "invalid_type"
            )
        fmt = body.get("response_format")
        if fmt is None:
            return body
        if not isinstance(fmt, dict):
            raise _bad_request(
                "Invalid type for 'response_format': expected an object.",
                "response_format",
                "invalid_type",
            )
        kind = fmt.get("type")
        if kind is None:
            raise _missing("response_format.type")
        if kind not in RESPONSE_FORMAT_TYPES:
            raise _bad_request(
                f"Invalid value: '{kind}'. Supported values are: 'json_object', 'json_schema', "
                "and 'text'.",
                "response_format.type",
                "invalid_value",
            )
        if kind == "json_object" and "json" not in _all_text(messages).lower():
            raise _bad_request(
                "'messages' must contain the word 'json' in some form, to use 'response_format' "
                "of type 'json_object'.",
                "messages",
            )
        if kind == "json_schema":
            json_schema = fmt.get("json_schema")
            if json_schema is None:
                raise _missing("response_format.json_schema")
            if not isinstance(json_schema, dict):
                raise _bad_request(
                    "Invalid type for 'response_format.json_schema': expected an object.",
                    "response_format.json_schema",
                    "invalid_type",
                )
            name = json_schema.get("name")
            if name is None:
                raise _missing("response_format.json_schema.name")
            if not isinstance(name, str) or not SCHEMA_NAME.match(name):
                raise _bad_request(
                    "Invalid 'response_format.json_schema.name': string does not match pattern. "
                    "Expected a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                    "response_format.json_schema.name",
                    "invalid_value",
                )
        return body

    def _check_response_format(self, body: dict[str, Any]) -> None:
        """Refuse json_schema (refuse_json_schema()), then check the schema itself."""
        fmt = body.get("response_format") or {}
        if fmt.get("type") != "json_schema":
            return
        if not self._json_schema_supported:
            raise _bad_request("response_format json_schema is not supported", "response_format")
        json_schema = fmt["json_schema"]
        schema = json_schema.get("schema")
        prefix = f"Invalid schema for response_format '{json_schema['name']}': "
        if self.strict_schemas and json_schema.get("strict") is True:
            problem = _strict_schema_problem(schema)
            if problem:
                raise _bad_request(prefix + problem, "response_format")
        for check in self._schema_checks:
            try:
                check(schema)
            except Exception as exc:
                self.errors.append(exc)
                raise _bad_request(prefix + (str(exc) or repr(exc)), "response_format") from exc

    async def _next_reply(self, record: RecordedRequest) -> Reply:
        if self._script:
            step = self._script[0]
            step.remaining -= 1
            if step.remaining == 0:
                self._script.popleft()
            answer = step.answer
        else:
            answer = self._standing
        if not isinstance(answer, Reply):
            answer = answer(record)
            if inspect.isawaitable(answer):
                answer = await answer
        if isinstance(answer, str):
            return Reply.text(answer)
        if not isinstance(answer, Reply):
            raise TypeError(f"responder returned {answer!r}; expected a Reply or a str")
        return answer

    def _generated(self, body: dict[str, Any], reply: Reply) -> tuple[str | None, str | None, str]:
        """(content, refusal, finish_reason), with content cut to ``max_completion_tokens`` /
        ``max_tokens`` (finish_reason ``length``) as a model stops mid-answer."""
        content, finish = reply.content, reply.finish_reason
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        if isinstance(limit, int) and content is not None:
            tokens = _TOKEN.findall(content)
            if len(tokens) > limit:
                content, finish = "".join(tokens[:limit]), "length"
        return content, reply.refusal, finish

    def _usage(
        self, body: dict[str, Any], content: str | None, refusal: str | None, n: int
    ) -> dict[str, Any]:
        """OpenAI's ``usage`` object, with token counts estimated from the text."""
        prompt = sum(4 + _count_tokens(_all_text([m])) for m in body["messages"]) + 3
        completion = n * _count_tokens((content or "") + (refusal or ""))
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        }

    def _completion(self, body: dict[str, Any], reply: Reply) -> dict[str, Any]:
        """A complete ``chat.completion`` object."""
        content, refusal, finish = self._generated(body, reply)
        n = body.get("n") or 1
        message = {"role": "assistant", "content": content, "refusal": refusal, "annotations": []}
        return {
            "id": _completion_id(),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body["model"],
            "choices": [
                {"index": i, "message": dict(message), "logprobs": None, "finish_reason": finish}
                for i in range(n)
            ],
            "usage": self._usage(body, content, refusal, n),
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

    async def _stream(
        self, request: web.Request, body: dict[str, Any], reply: Reply
    ) -> web.StreamResponse:
        """Server-sent ``chat.completion.chunk`` events, then ``data: [DONE]``.

        Per choice: a first delta ``{"role": "assistant", "content": "", "refusal": null}``,
        one delta per word-sized piece of content (or refusal), and an empty delta carrying
        ``finish_reason``. With ``stream_options.include_usage`` every chunk has ``usage: null``
        and a last chunk with ``choices: []`` carries the usage.
        """
        content, refusal, finish = self._generated(body, reply)
        n = body.get("n") or 1
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        base = {
            "id": _completion_id(),
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": body["model"],
            "service_tier": "default",
            "system_fingerprint": SYSTEM_FINGERPRINT,
        }

        def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
            data = {**base, "choices": choices, **extra}
            if include_usage:
                data.setdefault("usage", None)
            return f"data: {json.dumps(data)}\n\n".encode()

        def choice(index: int, delta: dict[str, Any], finish_reason: str | None = None) -> dict:
            return {
                "index": index,
                "delta": delta,
                "logprobs": None,
                "finish_reason": finish_reason,
            }

        events: list[bytes] = []
        for i in range(n):
            events.append(chunk([choice(i, {"role": "assistant", "content": "", "refusal": None})]))
            if refusal is not None:
                events += [chunk([choice(i, {"refusal": p})]) for p in _TOKEN.findall(refusal)]
            elif content:
                events += [chunk([choice(i, {"content": p})]) for p in _TOKEN.findall(content)]
            events.append(chunk([choice(i, {}, finish)]))
        if include_usage:
            events.append(chunk([], usage=self._usage(body, content, refusal, n)))
        events.append(b"data: [DONE]\n\n")

        headers = _response_headers(reply.headers)
        headers["Content-Type"] = "text/event-stream; charset=utf-8"
        headers["Cache-Control"] = "no-cache"
        response = web.StreamResponse(status=200, headers=headers)
        await response.prepare(request)
        for event in events:
            if self._closing.is_set():
                break  # end the stream early, as a server going away does
            await response.write(event)
            if self.stream_chunk_delay and await self._sleep(self.stream_chunk_delay):
                break
        await response.write_eof()
        return response


# ---------------------------------------------------------------------- helpers


def _validate_message(i: int, message: Any) -> None:
    """OpenAI's checks on one entry of ``messages``."""
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _bad_request(
            f"Invalid type for '{where}': expected an object, but got {_json_type(message)} "
            "instead.",
            where,
            "invalid_type",
        )
    role = message.get("role")
    if role is None:
        raise _missing(f"{where}.role")
    if role not in MESSAGE_ROLES:
        supported = ", ".join(f"'{r}'" for r in MESSAGE_ROLES[:-1]) + f", and '{MESSAGE_ROLES[-1]}'"
        raise _bad_request(
            f"Invalid value: '{role}'. Supported values are: {supported}.",
            f"{where}.role",
            "invalid_value",
        )
    content = message.get("content")
    may_omit_content = role == "assistant" and (
        message.get("tool_calls") or message.get("function_call")
    )
    if "content" not in message and not may_omit_content:
        raise _missing(f"{where}.content")
    if content is None and not may_omit_content:
        raise _bad_request(
            f"Invalid value for '{where}.content': expected a string or an array of content "
            "parts, got null.",
            f"{where}.content",
            "invalid_type",
        )
    if content is not None and not isinstance(content, str | list):
        raise _bad_request(
            f"Invalid type for '{where}.content': expected one of a string or array of "
            f"objects, but got {_json_type(content)} instead.",
            f"{where}.content",
            "invalid_type",
        )
    if role == "tool" and not message.get("tool_call_id"):
        raise _missing(f"{where}.tool_call_id")


def _strict_schema_problem(schema: Any) -> str | None:
    """The first reason Structured Outputs would refuse a ``strict: true`` schema, or None.

    Checks the rules that most often bite: the root must be an object, and every object schema
    must set ``additionalProperties: false`` and list every property in ``required``. The
    message uses OpenAI's ``In context=(...)`` wording.
    """
    if not isinstance(schema, dict):
        return "schema must be a JSON Schema object."
    if schema.get("type") != "object":
        got = schema.get("type")
        return f"schema must be a JSON Schema of 'type: \"object\"', got 'type: \"{got}\"'."
    return _object_rules(schema, ())


def _object_rules(schema: Any, context: tuple[str, ...]) -> str | None:
    if not isinstance(schema, dict):
        return None
    kind = schema.get("type")
    is_object = kind == "object" or (isinstance(kind, list) and "object" in kind)
    if is_object or "properties" in schema:
        if schema.get("additionalProperties") is not False:
            return (
                f"In context={context}, 'additionalProperties' is required to be supplied "
                "and to be false."
            )
        properties = schema.get("properties") or {}
        required = schema.get("required")
        missing = [k for k in properties if not isinstance(required, list) or k not in required]
        if missing:
            return (
                f"In context={context}, 'required' is required to be supplied and to be an "
                f"array including every key in properties. Missing '{missing[0]}'."
            )
    children: list[tuple[tuple[str, ...], Any]] = []
    for key in ("properties", "$defs", "definitions"):
        sub = schema.get(key)
        if isinstance(sub, dict):
            children += [((*context, key, name), value) for name, value in sub.items()]
    if "items" in schema:
        children.append(((*context, "items"), schema["items"]))
    for key in ("anyOf", "allOf"):
        sub = schema.get(key)
        if isinstance(sub, list):
            children += [((*context, key, str(i)), value) for i, value in enumerate(sub)]
    for child_context, child in children:
        problem = _object_rules(child, child_context)
        if problem:
            return problem
    return None


def _all_text(messages: list[Any]) -> str:
    """The text of string contents and ``{"type": "text", "text": ...}`` parts."""
    parts: list[str] = []
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts += [
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            ]
    return "\n".join(parts)


def _count_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def _json_type(value: Any) -> str:
    names = {
        dict: "an object",
        list: "an array",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        type(None): "null",
    }
    return names.get(type(value), type(value).__name__)


def _completion_id() -> str:
    alphabet = string.ascii_letters + string.digits
    return "chatcmpl-" + "".join(secrets.choice(alphabet) for _ in range(29))


def _mask(token: str) -> str:
    return token[:3] + "*" * max(0, len(token) - 7) + token[-4:] if len(token) > 8 else "***"


def _response_headers(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Headers OpenAI sends on every answer (``x-request-id`` shows up as ``_request_id``)."""
    return {
        "x-request-id": "req_" + secrets.token_hex(16),
        "openai-processing-ms": "1",
        "openai-version": "2020-10-01",
        **(extra or {}),
    }
