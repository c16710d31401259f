"""A fake Discord: REST API v10 and gateway on one aiohttp server, for a real discord.py client.

Use it::

    async with FakeDiscord() as fake:                  # serves on 127.0.0.1:<free port>
        discord.http.Route.BASE = fake.api_base       # "http://127.0.0.1:PORT/api/v10"
        client = discord.AutoShardedClient(intents=...)
        await client.start(fake.token)                # in a task, see the adapter tests

How a real, unpatched discord.py 2.7 client reaches this fake
---------------------------------------------------------------
* REST: ``discord.http.Route.url`` is ``Route.BASE + path``; the HTTP client, the webhook adapter
  (``discord.webhook.async_`` imports the same ``Route``) and so interaction callbacks and
  follow-ups all build their URLs from ``discord.http.Route.BASE``. Tests assign it (and restore
  it afterwards).
* Gateway: ``discord.Client.connect`` always opens its first websocket at the class constant
  ``DiscordWebSocket.DEFAULT_GATEWAY`` (``wss://gateway.discord.gg/``); no ``Client`` option changes
  it. ``discord.AutoShardedClient`` (a ``Client`` subclass; with one shard it behaves like a
  plain client) does what our architecture wants: when ``shard_count`` is None,
  ``AutoShardedClient.launch_shards`` calls ``HTTPClient.get_bot_gateway()``, i.e.
  ``GET {Route.BASE}/gateway/bot``, and passes ``yarl.URL(data["url"])`` to
  ``DiscordWebSocket.from_client(gateway=...)``, which appends
  ``?v=10&encoding=json&compress=zlib-stream``. After READY the websocket keeps
  ``resume_gateway_url`` in ``DiscordWebSocket.gateway`` and every RESUME
  (``Shard.reidentify`` with ``resume=True``) connects there. So the bot runs an
  ``AutoShardedClient`` (or ``commands.AutoShardedBot``) and reaches this fake end to end.
* Two discord.py paths fall back to the real host and are therefore never provoked by this fake
  in normal flows: INVALID_SESSION with ``d: false`` (discord.py resets ``gateway`` to
  ``DEFAULT_GATEWAY``) and ``Shard.reconnect`` after a non-resumable error (``from_client``
  without ``gateway``). The fake only sends INVALID_SESSION when asked to RESUME an unknown
  session, like Discord does.

What it implements
------------------
Gateway (https://discord.com/developers/docs/events/gateway): HELLO, IDENTIFY -> READY and a full
GUILD_CREATE, HEARTBEAT -> HEARTBEAT_ACK, RESUME -> replay of missed dispatches then RESUMED,
REQUEST_GUILD_MEMBERS -> GUILD_MEMBERS_CHUNK, one increasing ``s`` per session, ``zlib-stream``
transport compression (one shared compressobj, ``Z_SYNC_FLUSH`` per frame) when the URL asks for
it, intent filtering of dispatches and the MESSAGE_CONTENT blanking rule.

REST: the routes listed in ``FakeDiscord._routes``; every request is kept in ``fake.calls``; state
(channels, messages, pins, threads, commands, interaction responses) is kept and answered with
documented object shapes; unknown routes answer ``404 {"message": "404: Not Found", "code": 0}``;
``fake.rate_limit(...)`` makes the next N calls of a route answer 429 with Discord's headers.
Command registration (bulk PUT and POST, guild or global) is validated against Discord's limits
(``tests/fakes/discord_commands.py``) and refused with 400 Invalid Form Body as Discord does.

Limitations: one guild; JSON encoding only (``etf`` is refused with close code 4002) and
``zstd-stream`` is answered uncompressed; no permission checks; rate limits only when injected;
files in multipart bodies are recorded as attachments but their bytes are not served back.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import json
import math
import re
import secrets
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.discord_commands import MAX_COMMANDS, check_bulk, check_one

JSON = dict[str, Any]

API_VERSION = 10
DISCORD_EPOCH_MS = 1_420_070_400_000

# https://discord.com/developers/docs/resources/channel#channel-object-channel-types
GUILD_TEXT, DM, GUILD_VOICE, GUILD_CATEGORY, GUILD_ANNOUNCEMENT = 0, 1, 2, 4, 5
ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD, GUILD_FORUM = 10, 11, 12, 15
THREAD_TYPES = {ANNOUNCEMENT_THREAD, PUBLIC_THREAD, PRIVATE_THREAD}
MESSAGEABLE_TYPES = {GUILD_TEXT, DM, GUILD_VOICE, GUILD_ANNOUNCEMENT, *THREAD_TYPES}

# https://discord.com/developers/docs/interactions/receiving-and-responding
APPLICATION_COMMAND, MESSAGE_COMPONENT, APPLICATION_COMMAND_AUTOCOMPLETE, MODAL_SUBMIT = 2, 3, 4, 5
CHANNEL_MESSAGE_WITH_SOURCE, DEFERRED_CHANNEL_MESSAGE = 4, 5
DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE, AUTOCOMPLETE_RESULT, MODAL = 6, 7, 8, 9

# https://discord.com/developers/docs/resources/message#message-object-message-flags
FLAG_HAS_THREAD, FLAG_EPHEMERAL, FLAG_LOADING = 1 << 5, 1 << 6, 1 << 7

# Message types that a person would see as a message (everything else is a system notice).
# https://discord.com/developers/docs/resources/message#message-object-message-types
USER_MESSAGE_TYPES = {0, 19, 20, 23}

# https://discord.com/developers/docs/events/gateway#gateway-intents
GUILDS, GUILD_MEMBERS, GUILD_MESSAGES, GUILD_MESSAGE_REACTIONS = 1 << 0, 1 << 1, 1 << 9, 1 << 10
DIRECT_MESSAGES, DIRECT_MESSAGE_REACTIONS, MESSAGE_CONTENT = 1 << 12, 1 << 13, 1 << 15

# event name -> intent needed (a pair is (guild intent, direct-message intent)); absent = always
_EVENT_INTENTS: dict[str, int | tuple[int, int]] = {
    **dict.fromkeys(
        ["GUILD_CREATE", "GUILD_UPDATE", "GUILD_DELETE", "CHANNEL_CREATE", "CHANNEL_UPDATE",
         "CHANNEL_DELETE", "THREAD_CREATE", "THREAD_UPDATE", "THREAD_DELETE", "THREAD_LIST_SYNC",
         "THREAD_MEMBER_UPDATE", "THREAD_MEMBERS_UPDATE", "GUILD_ROLE_CREATE",
         "GUILD_ROLE_UPDATE", "GUILD_ROLE_DELETE"],
        GUILDS,
    ),
    **dict.fromkeys(["GUILD_MEMBER_ADD", "GUILD_MEMBER_UPDATE", "GUILD_MEMBER_REMOVE"],
                    GUILD_MEMBERS),
    "CHANNEL_PINS_UPDATE": (GUILDS, DIRECT_MESSAGES),
    **dict.fromkeys(["MESSAGE_CREATE", "MESSAGE_UPDATE", "MESSAGE_DELETE",
                     "MESSAGE_DELETE_BULK"], (GUILD_MESSAGES, DIRECT_MESSAGES)),
    **dict.fromkeys(["MESSAGE_REACTION_ADD", "MESSAGE_REACTION_REMOVE",
                     "MESSAGE_REACTION_REMOVE_ALL", "MESSAGE_REACTION_REMOVE_EMOJI"],
                    (GUILD_MESSAGE_REACTIONS, DIRECT_MESSAGE_REACTIONS)),
}


def _permissions(*bits: int) -> int:
    return sum(1 << bit for bit in bits)


# https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags
EVERYONE_PERMISSIONS = _permissions(0, 6, 10, 11, 14, 15, 16, 18, 20, 21, 26, 31, 35, 38)
# The bot's role also has PIN_MESSAGES (bit 51), which Discord split from MANAGE_MESSAGES.
BOT_ROLE_PERMISSIONS = EVERYONE_PERMISSIONS | _permissions(4, 13, 17, 28, 29, 34, 36, 51)
ALL_PERMISSIONS = (1 << 52) - 1
NONCE_WINDOW_S = 300.0  # "the past few minutes" of enforce_nonce

# Handler signature for REST routes: (call, **path parameters) -> response
Handler = Callable[..., Awaitable[web.Response]]


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(moment: datetime) -> str:
    """ISO-8601 with microseconds and an explicit UTC offset, as Discord writes timestamps."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def snowflake_time(snowflake: str | int) -> datetime:
    """The creation time encoded in a Discord snowflake."""
    ms = (int(snowflake) >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, UTC)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class _Snowflakes:
    """Strictly increasing snowflakes: (ms since 2015 << 22) | worker | process | increment."""

    def __init__(self) -> None:
        self._last = 0

    def at(self, moment: datetime) -> str:
        ms = int(moment.timestamp() * 1000) - DISCORD_EPOCH_MS
        value = (ms << 22) | (1 << 17) | (1 << 12)
        value = max(value, self._last + 1)
        self._last = value
        return str(value)

    def new(self) -> str:
        return self.at(_now())


@dataclass
class Call:
    """One REST request received by the fake, recorded before it is answered."""

    method: str
    path: str  # below the API base, e.g. "/channels/123/messages"
    json: Any  # the JSON body (or a multipart ``payload_json``); None without a body
    query: dict[str, str]
    headers: dict[str, str]
    files: list[JSON] = field(default_factory=list)  # multipart files: field, filename, size
    status: int = 0  # the HTTP status the fake answered with


@dataclass
class _RateLimitRule:
    method: str
    pattern: re.Pattern[str]
    remaining: int
    retry_after: float
    is_global: bool


def _path_pattern(template: str) -> re.Pattern[str]:
    """``/channels/{channel_id}/messages`` -> regex; ``*_id`` parameters match snowflakes only."""
    regex = ""
    for part in re.split(r"(\{\w+\})", template):
        if part.startswith("{"):
            name = part[1:-1]
            regex += rf"(?P<{name}>\d+)" if name.endswith("_id") else rf"(?P<{name}>[^/]+)"
        else:
            regex += re.escape(part)
    return re.compile(rf"^{regex}$")


def _json_response(data: Any, status: int = 200) -> web.Response:
    # Exactly "application/json" (no charset) as Discord sends; discord.py's json_or_text
    # compares the header verbatim and treats anything else as text.
    return web.Response(body=json.dumps(data).encode(), status=status,
                        headers={"Content-Type": "application/json"})


def _no_content() -> web.Response:
    return web.Response(status=204)


def _error(status: int, message: str, code: int = 0) -> web.Response:
    """Discord's JSON error body: https://discord.com/developers/docs/topics/opcodes-and-status-codes"""
    return _json_response({"message": message, "code": code}, status=status)


def _form_error(path: Iterable[str | int], code: str, message: str) -> web.Response:
    """400 Invalid Form Body (code 50035) with the nested ``errors`` object Discord returns."""
    errors: JSON = {"_errors": [{"code": code, "message": message}]}
    for key in reversed(list(path)):
        errors = {str(key): errors}
    body = {"message": "Invalid Form Body", "code": 50035, "errors": errors}
    return _json_response(body, status=400)


class _GatewayConnection:
    """One websocket from a client; compresses frames with zlib-stream when asked to."""

    def __init__(self, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.ws = ws
        self.path = request.path
        self.query = dict(request.query)
        self._transport = request.transport
        compress = self.query.get("compress") == "zlib-stream"
        self._zlib = zlib.compressobj() if compress else None
        self.lock = asyncio.Lock()  # keeps frames in ``s`` order and the zlib stream consistent
        self.session: _Session | None = None
        self.closed = False

    async def send(self, frame: JSON) -> bool:
        async with self.lock:
            return await self.send_unlocked(frame)

    async def send_unlocked(self, frame: JSON) -> bool:
        if self.closed or self.ws.closed:
            return False
        text = json.dumps(frame, separators=(",", ":"))
        try:
            if self._zlib is not None:
                data = self._zlib.compress(text.encode()) + self._zlib.flush(zlib.Z_SYNC_FLUSH)
                await self.ws.send_bytes(data)
            else:
                await self.ws.send_str(text)
        except (ConnectionError, RuntimeError):
            self.closed = True
            return False
        return True

    def abort(self) -> None:
        """Cut the TCP connection without a close frame, like a network failure."""
        self.closed = True
        if self._transport is not None:
            self._transport.abort()

    async def close(self, code: int, message: str = "") -> None:
        self.closed = True
        await self.ws.close(code=code, message=message.encode())


@dataclass
class _Session:
    """A gateway session: its sequence counter and the dispatches sent in it (for RESUME)."""

    session_id: str
    intents: int
    shard: list[int] | None
    seq: int = 0
    log: list[JSON] = field(default_factory=list)
    conn: _GatewayConnection | None = None
    invalidated: bool = False

    def record(self, event: str, data: JSON) -> JSON:
        self.seq += 1
        frame = {"op": 0, "t": event, "s": self.seq, "d": data}
        self.log.append(frame)
        return frame


class FakeDiscord:
    """State of one fake Discord application, bot user and guild, and the server that serves it.

    Public attributes: ``api_base``, ``gateway_url``, ``resume_gateway_url``, ``port``, ``token``,
    ``application_id``, ``bot_user``, ``users`` (the human users; ``users[0]`` owns the guild),
    ``guild_id``, ``general_channel_id``, ``category_id``, ``calls`` (every REST request),
    ``interaction_responses`` (every interaction callback body), ``gateway_connections``
    (path and query of every websocket), ``received`` (every gateway payload from clients),
    ``global_commands`` and ``guild_commands``.
    """

    def __init__(self, *, heartbeat_interval: int = 41_250, guild_name: str = "Opsroom Test",
                 interaction_deadline: float = 3.0) -> None:
        """``interaction_deadline``: seconds the bot has for the first interaction callback
        (Discord's 3-second rule); later callbacks answer 404 Unknown interaction."""
        self.heartbeat_interval = heartbeat_interval
        self.interaction_deadline = interaction_deadline
        # The portal's Bot > Message Content Intent switch: off, the application's flags lack
        # it and an IDENTIFY asking for it is closed with 4014, as Discord does.
        self.message_content_intent = True
        self._ids = _Snowflakes()
        self._runner: web.AppRunner | None = None
        self.port = 0
        created = datetime(2023, 3, 1, 9, 0, tzinfo=UTC)

        self.application_id = self._ids.at(created)
        self.bot_user: JSON = self._user_object(
            self.application_id, "opsroom", None, bot=True
        )
        self.users: list[JSON] = [
            self._user_object(self._ids.at(created + timedelta(days=1)), "alice", "Alice"),
            self._user_object(self._ids.at(created + timedelta(days=2)), "bob", "Bob"),
        ]
        self.token = ".".join(
            [_b64(self.application_id.encode()), _b64(secrets.token_bytes(4)),
             secrets.token_urlsafe(27)]
        )

        self.guild_id = self._ids.at(created + timedelta(days=3))
        self.commander_role_id = self._ids.at(created + timedelta(days=3, hours=1))
        self.bot_role_id = self._ids.at(created + timedelta(days=3, hours=2))
        self.category_id = self._ids.at(created + timedelta(days=3, hours=3))
        self.general_channel_id = self._ids.at(created + timedelta(days=3, hours=4))
        joined = created + timedelta(days=4)
        self.guild: JSON = self._guild_object(guild_name, joined)
        self.members: dict[str, JSON] = {
            self.users[0]["id"]: self._member_object(self.users[0], [self.commander_role_id],
                                                     created + timedelta(days=3)),
            self.users[1]["id"]: self._member_object(self.users[1], [], joined),
            self.bot_user["id"]: self._member_object(self.bot_user, [self.bot_role_id], joined),
        }
        self.channels: dict[str, JSON] = {}
        self._store_channel(self.channel_payload(
            "Incidents", type=GUILD_CATEGORY, channel_id=self.category_id, position=0))
        self._store_channel(self.channel_payload(
            "general", channel_id=self.general_channel_id, topic="General chat", position=0))

        self._messages: dict[str, list[JSON]] = {}
        # (channel, author, nonce) -> (message id, when): enforce_nonce's memory
        self._nonces: dict[tuple[str, str, str], tuple[str, float]] = {}
        self._message_channel: dict[str, str] = {}
        self._ephemeral: dict[str, JSON] = {}
        self._pins: dict[str, list[tuple[str, str]]] = {}  # channel -> [(pinned_at, message id)]
        self._thread_members: dict[str, dict[str, JSON]] = {}
        self.global_commands: list[JSON] = []
        self.guild_commands: dict[str, list[JSON]] = {}
        self._interactions: dict[str, JSON] = {}  # token -> record of an interaction we sent
        self._modals: dict[str, JSON] = {}  # custom_id -> {"modal": data, "interaction": record}
        self.interaction_responses: list[JSON] = []

        self.calls: list[Call] = []
        self._rate_limits: list[_RateLimitRule] = []
        self.received: list[JSON] = []
        self.gateway_connections: list[JSON] = []
        self._connections: set[_GatewayConnection] = set()
        self._sessions: dict[str, _Session] = {}
        self._session_starts_remaining = 1000
        self._route_table = [
            (method, _path_pattern(template), template, handler)
            for method, template, handler in self._routes()
        ]

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> FakeDiscord:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway)
        app.router.add_get("/resume-gateway", self._gateway)
        app.router.add_route("*", r"/api/v{version:\d+}/{tail:.*}", self._rest)
        self._runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for conn in list(self._connections):
            conn.abort()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeDiscord:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        """The value for ``discord.http.Route.BASE``."""
        return f"{self.base_url}/api/v{API_VERSION}"

    @property
    def gateway_url(self) -> str:
        """What ``GET /gateway/bot`` answers as ``url``."""
        return f"ws://127.0.0.1:{self.port}/gateway"

    @property
    def resume_gateway_url(self) -> str:
        """What READY answers as ``resume_gateway_url`` (a different path, so tests can tell)."""
        return f"ws://127.0.0.1:{self.port}/resume-gateway"

    # ------------------------------------------------------------------ accessors for tests

    def channel(self, channel_id: str | int) -> JSON | None:
        return self.channels.get(str(channel_id))

    def channel_by_name(self, name: str) -> JSON | None:
        """The first channel or thread called ``name`` (Discord lowercases text channel names)."""
        return next((c for c in self.channels.values() if c.get("name") == name), None)

    def threads(self, parent_id: str | int) -> list[JSON]:
        return [c for c in self.channels.values()
                if c["type"] in THREAD_TYPES and c.get("parent_id") == str(parent_id)]

    def thread_members(self, thread_id: str | int) -> list[str]:
        return list(self._thread_members.get(str(thread_id), {}))

    def messages(self, channel_id: str | int, *, include_system: bool = False) -> list[JSON]:
        """Messages of a channel, oldest first; system notices (pins...) only if asked."""
        found = self._messages.get(str(channel_id), [])
        return [m for m in found if include_system or m["type"] in USER_MESSAGE_TYPES]

    def message(self, channel_id: str | int, message_id: str | int) -> JSON | None:
        return next((m for m in self._messages.get(str(channel_id), [])
                     if m["id"] == str(message_id)), None)

    def pins(self, channel_id: str | int) -> list[JSON]:
        """Pinned messages of a channel, most recently pinned first."""
        pinned = reversed(self._pins.get(str(channel_id), []))
        return [m for _, mid in pinned if (m := self.message(channel_id, mid)) is not None]

    def commands(self, guild_id: str | int | None = None) -> list[JSON]:
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.get(str(guild_id), [])

    def interaction_response(self, interaction_id: str | int) -> JSON | None:
        """The callback body the bot sent for an interaction (``type`` and ``data``)."""
        return next((r for r in self.interaction_responses
                     if r["interaction_id"] == str(interaction_id)), None)

    def replies(self, interaction_id: str | int) -> list[JSON]:
        """Messages created by an interaction's response and follow-ups, ephemeral ones included."""
        record = next((r for r in self._interactions.values()
                       if r["id"] == str(interaction_id)), None)
        if record is None:
            return []
        found = [self._find_message(mid) for mid in record["messages"]]
        return [m for m in found if m is not None]

    def calls_to(self, method: str, path: str) -> list[Call]:
        """Recorded calls matching ``method`` and a concrete path or a ``{param}`` template."""
        pattern = _path_pattern(path)
        return [c for c in self.calls if c.method == method.upper() and pattern.match(c.path)]

    def user(self, name_or_id: str) -> JSON:
        """A human user (or the bot) by username or id."""
        for user in [*self.users, self.bot_user]:
            if name_or_id in (user["id"], user["username"]):
                return user
        raise KeyError(name_or_id)

    async def wait_for(self, predicate: Callable[[], Any], *, timeout: float = 2.0,
                       what: str = "condition") -> Any:
        """Poll ``predicate`` until it returns something truthy; TimeoutError after ``timeout``."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"fake Discord: timed out after {timeout}s waiting for {what}")
            await asyncio.sleep(0.01)

    async def wait_for_call(self, method: str, path: str, *, timeout: float = 2.0,
                            status: int | None = None) -> Call:
        """The first answered call to ``method path`` (a template is fine), of ``status``."""

        def find() -> Call | None:
            return next((c for c in self.calls_to(method, path)
                         if c.status and (status is None or c.status == status)), None)

        result: Call = await self.wait_for(find, timeout=timeout, what=f"{method} {path}")
        return result

    # ------------------------------------------------------------------ test controls

    def rate_limit(self, method: str, path: str, *, times: int = 1, retry_after: float = 0.05,
                   is_global: bool = False) -> None:
        """Answer the next ``times`` calls to ``method path`` with 429 Too Many Requests.

        ``path`` is concrete or a template (``/channels/{channel_id}/messages``). The answer has
        Discord's headers (``Retry-After``, ``X-RateLimit-*``, ``Via``) and JSON body
        ``{"message": "You are being rate limited.", "retry_after": ..., "global": ...}``.
        """
        self._rate_limits.append(
            _RateLimitRule(method.upper(), _path_pattern(path), times, retry_after, is_global))

    async def dispatch(self, event: str, payload: JSON) -> list[int]:
        """Send a DISPATCH (op 0) to every session; returns the ``s`` given in each session.

        Sessions whose socket is down keep the event for RESUME. Raises if no client has
        identified yet (nothing would receive it).
        """
        if not any(not s.invalidated for s in self._sessions.values()):
            raise RuntimeError("fake Discord: no gateway session; wait for the client's IDENTIFY")
        return await self._emit(event, payload)

    async def drop_connection(self, code: int | None = None) -> None:
        """Break every live gateway socket; the sessions stay resumable.

        Without ``code`` the TCP connection is cut with no close frame (a network failure);
        with one, a close frame with that code is sent (4000 and 1001 are resumable).
        """
        live = [c for c in self._connections if not c.closed]
        if not live:
            raise RuntimeError("fake Discord: no live gateway connection to drop")
        for conn in live:
            if conn.session is not None and conn.session.conn is conn:
                conn.session.conn = None
            if code is None:
                conn.abort()
            else:
                await asyncio.wait_for(conn.close(code, "dropped by test"), timeout=2.0)

    async def request_reconnect(self) -> None:
        """Send op 7 RECONNECT on every live socket; discord.py then reconnects and RESUMEs."""
        for conn in list(self._connections):
            await conn.send({"op": 7, "d": None, "s": None, "t": None})

    def session_ids(self) -> list[str]:
        return list(self._sessions)

    @property
    def connected(self) -> bool:
        """Whether some session has a live websocket right now."""
        return any(s.conn is not None and not s.conn.closed for s in self._sessions.values())

    def dispatched(self, event: str | None = None) -> list[JSON]:
        """Every dispatch frame (``op``, ``t``, ``s``, ``d``) recorded in any session."""
        return [f for s in self._sessions.values() for f in s.log
                if event is None or f["t"] == event]

    def identify_count(self) -> int:
        return sum(1 for p in self.received if p.get("op") == 2)

    def resume_payloads(self) -> list[JSON]:
        return [p["d"] for p in self.received if p.get("op") == 6]

    # ------------------------------------------------------------------ things people do

    async def post_message(self, channel_id: str | int | None = None, content: str = "", *,
                           author: JSON | str | None = None, reply_to: str | None = None,
                           embeds: list[JSON] | None = None) -> JSON:
        """A person posts a message: stored in the channel and dispatched as MESSAGE_CREATE."""
        cid = str(channel_id or self.general_channel_id)
        reference = None
        if reply_to is not None:
            reference = {"message_id": str(reply_to), "channel_id": cid}
        message = self._new_message(cid, author=self._resolve_user(author), content=content,
                                    embeds=embeds, message_reference=reference)
        self._store_message(message)
        await self._emit("MESSAGE_CREATE", self._gateway_message(message))
        return message

    async def edit_message(self, channel_id: str | int, message_id: str | int,
                           content: str) -> JSON:
        """A person edits their message: MESSAGE_UPDATE with the full message."""
        message = self._require_message(channel_id, message_id)
        message["content"] = content
        message["edited_timestamp"] = _iso(_now())
        await self._emit("MESSAGE_UPDATE", self.message_update_payload(message))
        return message

    async def delete_message(self, channel_id: str | int, message_id: str | int) -> None:
        """A person deletes a message: MESSAGE_DELETE."""
        message = self._require_message(channel_id, message_id)
        self._remove_message(message)
        await self._emit("MESSAGE_DELETE",
                         self.message_delete_payload(message["channel_id"], message["id"]))

    async def react(self, channel_id: str | int, message_id: str | int, emoji: str = "📌", *,
                    user: JSON | str | None = None) -> JSON:
        """A person adds a reaction: kept on the message and dispatched as MESSAGE_REACTION_ADD."""
        who = self._resolve_user(user)
        message = self._require_message(channel_id, message_id)
        self._count_reaction(message, emoji, who["id"], +1)
        payload = self.reaction_payload(channel_id, message_id, emoji, user=who)
        await self._emit("MESSAGE_REACTION_ADD", payload)
        return payload

    async def unreact(self, channel_id: str | int, message_id: str | int, emoji: str = "📌", *,
                      user: JSON | str | None = None) -> JSON:
        """A person removes a reaction: MESSAGE_REACTION_REMOVE."""
        who = self._resolve_user(user)
        message = self._require_message(channel_id, message_id)
        self._count_reaction(message, emoji, who["id"], -1)
        payload = self.reaction_payload(channel_id, message_id, emoji, user=who, remove=True)
        await self._emit("MESSAGE_REACTION_REMOVE", payload)
        return payload

    async def create_channel(self, name: str, *, type: int = GUILD_TEXT,
                             parent_id: str | None = None, topic: str | None = None) -> JSON:
        """An admin creates a channel in the Discord UI: CHANNEL_CREATE."""
        channel = self._store_channel(self.channel_payload(name, type=type, parent_id=parent_id,
                                                           topic=topic))
        await self._emit("CHANNEL_CREATE", channel)
        return channel

    async def create_thread(self, parent_id: str | int, name: str, *,
                            owner: JSON | str | None = None, message_id: str | None = None,
                            type: int = PUBLIC_THREAD) -> JSON:
        """A person starts a thread (from a message if given): THREAD_CREATE."""
        thread = self.thread_payload(parent_id, name, owner=self._resolve_user(owner),
                                     message_id=message_id, type=type)
        return await self._open_thread(thread)

    async def invoke_command(self, name: str, options: Mapping[str, Any] | list[JSON] | None = None,
                             *, user: JSON | str | None = None,
                             channel_id: str | int | None = None) -> JSON:
        """A person runs a slash command: INTERACTION_CREATE (type 2). Returns the payload."""
        payload = self.slash_command_payload(name, options, user=user, channel_id=channel_id)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def click(self, message: JSON, custom_id: str | None = None, *,
                    user: JSON | str | None = None, values: list[str] | None = None) -> JSON:
        """A person clicks a button (or picks select ``values``): INTERACTION_CREATE (type 3)."""
        payload = self.component_payload(message, custom_id, user=user, values=values)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    async def submit_modal(self, custom_id: str,
                           values: Mapping[str, str | list[str]] | None = None, *,
                           user: JSON | str | None = None) -> JSON:
        """A person submits a modal the bot opened: INTERACTION_CREATE (type 5)."""
        payload = self.modal_submit_payload(custom_id, values, user=user)
        await self.dispatch("INTERACTION_CREATE", payload)
        return payload

    # ------------------------------------------------------------------ payload builders

    def _user_object(self, user_id: str, username: str, global_name: str | None, *,
                     bot: bool = False) -> JSON:
        """User object: https://discord.com/developers/docs/resources/user#user-object"""
        user: JSON = {
            "id": user_id, "username": username, "discriminator": "0" if not bot else "4242",
            "global_name": global_name, "avatar": None, "banner": None, "accent_color": None,
            "avatar_decoration_data": None, "collectibles": None, "primary_guild": None,
            "public_flags": 0, "flags": 0,
        }
        if bot:
            user["bot"] = True
        return user

    def _member_object(self, user: JSON, roles: list[str], joined: datetime) -> JSON:
        """Guild member: https://discord.com/developers/docs/resources/guild#guild-member-object"""
        return {
            "user": user, "nick": None, "avatar": None, "banner": None, "roles": roles,
            "joined_at": _iso(joined), "premium_since": None, "deaf": False, "mute": False,
            "flags": 0, "pending": False, "communication_disabled_until": None,
        }

    def _role_object(self, role_id: str, name: str, permissions: int, position: int,
                     **extra: Any) -> JSON:
        """Role object: https://discord.com/developers/docs/topics/permissions#role-object"""
        return {
            "id": role_id, "name": name, "color": 0,
            "colors": {"primary_color": 0, "secondary_color": None, "tertiary_color": None},
            "hoist": False, "icon": None, "unicode_emoji": None, "position": position,
            "permissions": str(permissions), "managed": False, "mentionable": False,
            "flags": 0, **extra,
        }

    def _guild_object(self, name: str, joined: datetime) -> JSON:
        """Guild object (REST fields): https://discord.com/developers/docs/resources/guild"""
        return {
            "id": self.guild_id, "name": name, "icon": None, "icon_hash": None, "splash": None,
            "discovery_splash": None, "owner_id": self.users[0]["id"], "afk_channel_id": None,
            "afk_timeout": 300, "widget_enabled": False, "widget_channel_id": None,
            "verification_level": 1, "default_message_notifications": 1,
            "explicit_content_filter": 2,
            "roles": [
                self._role_object(self.guild_id, "@everyone", EVERYONE_PERMISSIONS, 0),
                self._role_object(self.commander_role_id, "Incident Commander",
                                  EVERYONE_PERMISSIONS, 1, color=15158332, mentionable=True),
                self._role_object(self.bot_role_id, "Opsroom", BOT_ROLE_PERMISSIONS, 2,
                                  managed=True, tags={"bot_id": self.bot_user["id"]}),
            ],
            "emojis": [], "stickers": [], "features": [], "mfa_level": 0, "application_id": None,
            "system_channel_id": self.general_channel_id, "system_channel_flags": 0,
            "rules_channel_id": None, "max_presences": None, "max_members": 500000,
            "vanity_url_code": None, "description": None, "banner": None, "premium_tier": 0,
            "premium_subscription_count": 0, "preferred_locale": "en-US",
            "public_updates_channel_id": None, "max_video_channel_users": 25,
            "max_stage_video_channel_users": 50, "nsfw_level": 0,
            "premium_progress_bar_enabled": False, "safety_alerts_channel_id": None,
            "incidents_data": None, "joined_at": _iso(joined),
        }

    def _guild_create_payload(self) -> JSON:
        """GUILD_CREATE: https://discord.com/developers/docs/events/gateway-events#guild-create"""
        guild = copy.deepcopy(self.guild)
        channels, threads = [], []
        for channel in self.channels.values():
            if channel["type"] == DM or channel.get("thread_metadata", {}).get("archived"):
                continue  # GUILD_CREATE lists active threads only
            entry = {k: v for k, v in channel.items() if k != "guild_id"}
            (threads if channel["type"] in THREAD_TYPES else channels).append(entry)
        guild.update({
            "large": False, "unavailable": False, "member_count": len(self.members),
            "members": list(self.members.values()), "channels": channels, "threads": threads,
            "voice_states": [], "presences": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [], "embedded_activities": [],
            "lazy": True, "hub_type": None, "latest_onboarding_question_id": None,
            "version": int(time.time() * 1000),
        })
        return guild

    def _ready_payload(self, session: _Session) -> JSON:
        """READY: https://discord.com/developers/docs/events/gateway-events#ready"""
        user = {**self.bot_user, "verified": True, "mfa_enabled": False, "email": None}
        ready: JSON = {
            "v": API_VERSION, "user": user, "user_settings": {}, "private_channels": [],
            "relationships": [], "presences": [], "guild_join_requests": [],
            "guilds": [{"id": self.guild_id, "unavailable": True}],
            "session_id": session.session_id, "session_type": "normal",
            "resume_gateway_url": self.resume_gateway_url,
            "application": {"id": self.application_id, "flags": self._application_flags()},
            "geo_ordered_rtc_regions": ["us-east", "us-central"], "auth": {},
            "_trace": ['["fake-discord-gateway",{"micros":0}]'],
        }
        if session.shard is not None:
            ready["shard"] = session.shard
        return ready

    def _application_flags(self) -> int:
        # GATEWAY_GUILD_MEMBERS_LIMITED | GATEWAY_MESSAGE_CONTENT_LIMITED |
        # APPLICATION_COMMAND_BADGE
        content = (1 << 19) if self.message_content_intent else 0
        return (1 << 15) | content | (1 << 23)

    def channel_payload(self, name: str, *, type: int = GUILD_TEXT, parent_id: str | None = None,
                        topic: str | None = None, position: int | None = None,
                        permission_overwrites: list[JSON] | None = None,
                        channel_id: str | None = None) -> JSON:
        """Guild channel object (also the CHANNEL_CREATE payload):
        https://discord.com/developers/docs/resources/channel#channel-object
        Text channel names are lowercased with spaces turned into dashes, as Discord does."""
        if type in (GUILD_TEXT, GUILD_ANNOUNCEMENT, GUILD_FORUM):
            name = re.sub(r"\s+", "-", name.strip()).lower()
        if position is None:
            position = sum(1 for c in self.channels.values() if c["type"] == type)
        channel: JSON = {
            "id": channel_id or self._ids.new(), "type": type, "guild_id": self.guild_id,
            "name": name, "position": position,
            "permission_overwrites": [self._overwrite(o) for o in permission_overwrites or []],
            "parent_id": str(parent_id) if parent_id else None, "nsfw": False, "flags": 0,
        }
        if type != GUILD_CATEGORY:
            channel.update({"topic": topic, "last_message_id": None, "rate_limit_per_user": 0,
                            "last_pin_timestamp": None})
        return channel

    def thread_payload(self, parent_id: str | int, name: str, *, owner: JSON | None = None,
                       message_id: str | None = None, type: int = PUBLIC_THREAD,
                       auto_archive_duration: int = 1440, invitable: bool = True) -> JSON:
        """Thread channel object (THREAD_CREATE payload without ``newly_created``):
        https://discord.com/developers/docs/topics/threads. A thread started from a message
        has the message's id."""
        owner = owner or self.bot_user
        created = _now()
        metadata: JSON = {
            "archived": False, "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": _iso(created), "locked": False, "create_timestamp": _iso(created),
        }
        if type == PRIVATE_THREAD:
            metadata["invitable"] = invitable
        return {
            "id": str(message_id) if message_id else self._ids.at(created), "type": type,
            "guild_id": self.guild_id, "parent_id": str(parent_id), "owner_id": owner["id"],
            "name": name, "last_message_id": None, "rate_limit_per_user": 0,
            "message_count": 0, "member_count": 1, "total_message_sent": 0, "flags": 0,
            "applied_tags": [], "thread_metadata": metadata,
        }

    def message_payload(self, channel_id: str | int, content: str, *,
                        author: JSON | str | None = None, embeds: list[JSON] | None = None,
                        components: list[JSON] | None = None) -> JSON:
        """MESSAGE_CREATE payload (message object plus ``guild_id`` and ``member``) for a message
        that is not stored; use ``post_message`` for one the fake should remember.
        https://discord.com/developers/docs/events/gateway-events#message-create"""
        message = self._new_message(str(channel_id), author=self._resolve_user(author),
                                    content=content, embeds=embeds, components=components)
        return self._gateway_message(message)

    def message_update_payload(self, message: JSON) -> JSON:
        """MESSAGE_UPDATE: the full updated message with ``guild_id`` and ``member``.
        https://discord.com/developers/docs/events/gateway-events#message-update"""
        return self._gateway_message(message)

    def message_delete_payload(self, channel_id: str | int, message_id: str | int) -> JSON:
        """MESSAGE_DELETE: https://discord.com/developers/docs/events/gateway-events#message-delete"""
        payload: JSON = {"id": str(message_id), "channel_id": str(channel_id)}
        if (guild_id := self._guild_of(str(channel_id))) is not None:
            payload["guild_id"] = guild_id
        return payload

    def reaction_payload(self, channel_id: str | int, message_id: str | int, emoji: str = "📌",
                         *, user: JSON | str | None = None, remove: bool = False,
                         burst: bool = False) -> JSON:
        """MESSAGE_REACTION_ADD / _REMOVE payload. ``emoji`` is a unicode emoji or ``name:id``.
        https://discord.com/developers/docs/events/gateway-events#message-reaction-add"""
        who = self._resolve_user(user)
        cid = str(channel_id)
        payload: JSON = {
            "user_id": who["id"], "type": 1 if burst else 0, "message_id": str(message_id),
            "emoji": self._emoji_object(emoji), "channel_id": cid, "burst": burst,
        }
        guild_id = self._guild_of(cid)
        if guild_id is not None:
            payload["guild_id"] = guild_id
        if not remove:
            payload["burst_colors"] = ["#ffcc4d"] if burst else []
            message = self.message(cid, message_id)
            if message is not None:
                payload["message_author_id"] = message["author"]["id"]
            if guild_id is not None and who["id"] in self.members:
                payload["member"] = self.members[who["id"]]
        return payload

    def slash_command_payload(self, name: str,
                              options: Mapping[str, Any] | list[JSON] | None = None, *,
                              user: JSON | str | None = None,
                              channel_id: str | int | None = None,
                              resolved: JSON | None = None) -> JSON:
        """INTERACTION_CREATE for a chat-input command (type 2). ``options`` is a list of raw
        option objects or ``{name: value}`` (str -> 3, int -> 4, bool -> 5, float -> 10).
        https://discord.com/developers/docs/interactions/receiving-and-responding#interaction-object"""
        data = self._command_data(name, options)
        if resolved:
            data["resolved"] = resolved
        return self._interaction(APPLICATION_COMMAND, data, user=user, channel_id=channel_id,
                                 command_name=name)

    def autocomplete_payload(self, name: str, options: list[JSON], *,
                             user: JSON | str | None = None,
                             channel_id: str | int | None = None) -> JSON:
        """INTERACTION_CREATE for an autocomplete (type 4): ``options`` as the person has filled
        them so far, the one being typed marked ``"focused": true``; the bot answers with
        callback type 8 and ``data.choices``."""
        return self._interaction(APPLICATION_COMMAND_AUTOCOMPLETE,
                                 self._command_data(name, options), user=user,
                                 channel_id=channel_id, command_name=name)

    def _command_data(self, name: str, options: Mapping[str, Any] | list[JSON] | None) -> JSON:
        """The command id and ``guild_id`` come from the commands the bot registered."""
        guild_command = next((c for c in self.commands(self.guild_id) if c["name"] == name), None)
        command = guild_command or next(
            (c for c in self.global_commands if c["name"] == name), None)
        data: JSON = {
            "id": command["id"] if command else self._ids.new(), "name": name, "type": 1,
            "options": self._options(options),
        }
        if guild_command is not None:
            data["guild_id"] = self.guild_id
        return data

    def component_payload(self, message: JSON, custom_id: str | None = None, *,
                          user: JSON | str | None = None,
                          values: list[str] | None = None) -> JSON:
        """INTERACTION_CREATE for a message component (type 3) on ``message``; without
        ``custom_id`` the first button of the message is clicked. Selects need ``values``."""
        component = self._find_component(message.get("components", []), custom_id)
        if component is None:
            raise KeyError(f"message {message['id']} has no component {custom_id!r}")
        data: JSON = {"custom_id": component["custom_id"], "component_type": component["type"]}
        if component["type"] != 2:
            data["values"] = list(values or [])
        return self._interaction(MESSAGE_COMPONENT, data, user=user,
                                 channel_id=message["channel_id"], message=message)

    def modal_submit_payload(self, custom_id: str,
                             values: Mapping[str, str | list[str]] | None = None, *,
                             user: JSON | str | None = None,
                             channel_id: str | int | None = None) -> JSON:
        """INTERACTION_CREATE for a modal submit (type 5). Mirrors the modal the bot opened with
        that ``custom_id``: every field is submitted, with ``values[field custom_id]`` or the
        value the bot pre-filled. Without a recorded modal, text inputs are built from
        ``values``. Keeps the ``message`` if the modal was opened from a component."""
        values = dict(values or {})
        opened = self._modals.get(custom_id)
        message = None
        if opened is not None:
            shown = self._number_components(opened["modal"].get("components", []))
            components = self._submitted_components(shown, values)
            origin = opened["interaction"]
            channel_id = channel_id or origin["channel_id"]
            if origin.get("message_id"):
                message = self._find_message(origin["message_id"])
        else:
            components = [
                {"type": 1, "id": index * 2 + 1,
                 "components": [{"type": 4, "id": index * 2 + 2, "custom_id": key, "value": val}]}
                for index, (key, val) in enumerate(values.items())
            ]
        data = {"custom_id": custom_id, "components": components}
        return self._interaction(MODAL_SUBMIT, data, user=user, channel_id=channel_id,
                                 message=message)

    def _interaction(self, type: int, data: JSON, *, user: JSON | str | None,
                     channel_id: str | int | None, message: JSON | None = None,
                     command_name: str | None = None) -> JSON:
        """Interaction object shared fields, registered so callbacks and follow-ups resolve."""
        who = self._resolve_user(user)
        channel = self.channels[str(channel_id or self.general_channel_id)]
        interaction_id = self._ids.new()
        token = "aW50ZXJhY3Rpb246" + _b64(f"{interaction_id}:".encode()) + secrets.token_urlsafe(60)
        payload: JSON = {
            "id": interaction_id, "application_id": self.application_id, "type": type,
            "data": data, "token": token, "version": 1, "locale": "en-US",
            "app_permissions": str(BOT_ROLE_PERMISSIONS), "entitlements": [],
            "authorizing_integration_owners": {}, "attachment_size_limit": 10_485_760,
            "channel": {k: v for k, v in channel.items() if k != "permission_overwrites"},
            "channel_id": channel["id"],
        }
        if isinstance(data.get("options"), list) and (resolved := self._resolved(data["options"])):
            data.setdefault("resolved", resolved)
        if channel["type"] == DM:
            payload.update({"user": who, "context": 1,
                            "authorizing_integration_owners": {"0": "0"}})
        else:
            member = dict(self.members[who["id"]])
            owner = who["id"] == self.guild["owner_id"]
            member["permissions"] = str(ALL_PERMISSIONS if owner else EVERYONE_PERMISSIONS)
            payload["channel"]["permissions"] = member["permissions"]
            payload.update({
                "guild_id": self.guild_id, "guild_locale": "en-US", "member": member,
                "guild": {"id": self.guild_id, "locale": "en-US", "features": []},
                "context": 0, "authorizing_integration_owners": {"0": self.guild_id},
            })
        if message is not None:
            payload["message"] = message
        self._interactions[token] = {
            "id": interaction_id, "token": token, "type": type, "channel_id": channel["id"],
            "user": who, "name": command_name, "message_id": message["id"] if message else None,
            "responded": False, "response_type": None, "original_message_id": None,
            "messages": [], "created": time.monotonic(),
        }
        return payload

    def _resolved(self, options: list[JSON]) -> JSON:
        """``data.resolved`` users and members for user/mentionable options (types 6 and 9)."""
        resolved: JSON = {}
        for option in options:
            if option.get("options"):
                for key, found in self._resolved(option["options"]).items():
                    resolved.setdefault(key, {}).update(found)
            if option.get("type") not in (6, 9):
                continue
            uid = str(option.get("value"))
            user = next((u for u in [*self.users, self.bot_user] if u["id"] == uid), None)
            if user is None:
                continue
            resolved.setdefault("users", {})[uid] = user
            if uid in self.members:
                member = {k: v for k, v in self.members[uid].items() if k != "user"}
                member["permissions"] = str(EVERYONE_PERMISSIONS)
                resolved.setdefault("members", {})[uid] = member
        return resolved

    # ------------------------------------------------------------------ state helpers

    def _resolve_user(self, user: JSON | str | int | None) -> JSON:
        if user is None:
            return self.users[0]
        if isinstance(user, dict):
            return user
        return self.user(str(user))

    def _store_channel(self, channel: JSON) -> JSON:
        self.channels[channel["id"]] = channel
        return channel

    def _guild_of(self, channel_id: str) -> str | None:
        channel = self.channels.get(channel_id)
        return channel.get("guild_id") if channel else None

    def _overwrite(self, overwrite: Mapping[str, Any]) -> JSON:
        """Permission overwrite: https://discord.com/developers/docs/resources/channel#overwrite-object"""
        return {"id": str(overwrite["id"]), "type": int(overwrite.get("type", 0)),
                "allow": str(overwrite.get("allow", "0")), "deny": str(overwrite.get("deny", "0"))}

    def _emoji_object(self, emoji: str) -> JSON:
        if re.fullmatch(r"\w+:\d+", emoji):
            name, emoji_id = emoji.split(":")
            return {"id": emoji_id, "name": name, "animated": False}
        return {"id": None, "name": emoji}

    def _options(self, options: Mapping[str, Any] | list[JSON] | None) -> list[JSON]:
        if options is None:
            return []
        if isinstance(options, list):
            return options
        kinds = [(bool, 5), (int, 4), (float, 10), (str, 3)]
        return [{"name": name, "type": next(t for k, t in kinds if isinstance(value, k)),
                 "value": value} for name, value in options.items()]

    def _find_component(self, components: list[JSON], custom_id: str | None) -> JSON | None:
        for component in components:
            children = list(component.get("components", []))
            for key in ("component", "accessory"):
                if key in component:
                    children.append(component[key])
            if component.get("type") in (2, 3, 5, 6, 7, 8) and "custom_id" in component and (
                custom_id is None or component["custom_id"] == custom_id
            ):
                return component
            found = self._find_component(children, custom_id)
            if found is not None:
                return found
        return None

    def _submitted_components(self, components: list[JSON],
                              values: Mapping[str, str | list[str]]) -> list[JSON]:
        """What Discord sends back for a modal's components (rows, labels, inputs, selects)."""
        submitted = []
        for component in components:
            kind = component["type"]
            out: JSON = {"type": kind, "id": component["id"]}
            if kind == 1:
                out["components"] = self._submitted_components(component["components"], values)
            elif kind == 18:
                out["component"] = self._submitted_components([component["component"]], values)[0]
            elif kind == 4:
                out["custom_id"] = component["custom_id"]
                out["value"] = values.get(component["custom_id"], component.get("value") or "")
            elif "custom_id" in component:
                out["custom_id"] = component["custom_id"]
                chosen = values.get(component["custom_id"])
                if chosen is None:  # untouched select: its default options are submitted
                    chosen = [o["value"] for o in component.get("options", []) if o.get("default")]
                out["values"] = [chosen] if isinstance(chosen, str) else list(chosen)
            submitted.append(out)
        return submitted

    def _number_components(self, components: list[JSON]) -> list[JSON]:
        """Discord gives every component a numeric ``id`` when the sender did not."""
        counter = 0

        def walk(items: list[JSON]) -> None:
            nonlocal counter
            for item in items:
                counter += 1
                item.setdefault("id", counter)
                walk(item.get("components", []))
                for key in ("component", "accessory"):
                    if key in item:
                        walk([item[key]])

        result = copy.deepcopy(components)
        walk(result)
        return result

    def _mentions(self, content: str) -> list[JSON]:
        ids = dict.fromkeys(re.findall(r"<@!?(\d+)>", content))
        known = {u["id"]: u for u in [*self.users, self.bot_user]}
        return [known[i] for i in ids if i in known]

    def _new_message(self, channel_id: str, *, author: JSON, content: str = "",
                     embeds: list[JSON] | None = None, components: list[JSON] | None = None,
                     type: int = 0, flags: int = 0, message_reference: JSON | None = None,
                     attachments: list[JSON] | None = None, nonce: Any = None,
                     tts: bool = False) -> JSON:
        """Message object (REST shape): https://discord.com/developers/docs/resources/message"""
        created = _now()
        message: JSON = {
            "id": self._ids.at(created), "channel_id": channel_id, "type": type,
            "content": content, "author": author, "attachments": attachments or [],
            "embeds": [{"type": "rich", **e} for e in embeds or []],
            "mentions": self._mentions(content),
            "mention_roles": re.findall(r"<@&(\d+)>", content),
            "mention_everyone": "@everyone" in content or "@here" in content,
            "pinned": False, "tts": tts, "timestamp": _iso(created), "edited_timestamp": None,
            "flags": flags, "components": self._number_components(components or []),
        }
        if nonce is not None:
            message["nonce"] = nonce
        if message_reference:
            referenced = self._find_message(str(message_reference["message_id"]))
            message["message_reference"] = {
                "type": 0, "message_id": str(message_reference["message_id"]),
                "channel_id": str(message_reference.get("channel_id") or channel_id),
            }
            if (guild_id := self._guild_of(channel_id)) is not None:
                message["message_reference"]["guild_id"] = guild_id
            if type == 0:
                message["type"] = 19
                message["referenced_message"] = copy.deepcopy(referenced)
        return message

    def _store_message(self, message: JSON) -> None:
        cid = message["channel_id"]
        self._messages.setdefault(cid, []).append(message)
        self._message_channel[message["id"]] = cid
        channel = self.channels.get(cid)
        if channel is not None:
            channel["last_message_id"] = message["id"]
            if channel["type"] in THREAD_TYPES:
                channel["message_count"] = channel.get("message_count", 0) + 1
                channel["total_message_sent"] = channel.get("total_message_sent", 0) + 1

    def _remove_message(self, message: JSON) -> None:
        if self._ephemeral.pop(message["id"], None) is not None:
            return
        cid = self._message_channel.pop(message["id"], message["channel_id"])
        self._messages[cid] = [m for m in self._messages.get(cid, []) if m["id"] != message["id"]]
        self._pins[cid] = [p for p in self._pins.get(cid, []) if p[1] != message["id"]]

    def _find_message(self, message_id: str) -> JSON | None:
        if message_id in self._ephemeral:
            return self._ephemeral[message_id]
        cid = self._message_channel.get(message_id)
        return self.message(cid, message_id) if cid else None

    def _require_message(self, channel_id: str | int, message_id: str | int) -> JSON:
        message = self.message(channel_id, message_id)
        if message is None:
            raise KeyError(f"no message {message_id} in channel {channel_id}")
        return message

    def _gateway_message(self, message: JSON) -> JSON:
        """A stored message as the gateway sends it: plus ``guild_id`` and the author's
        ``member`` (without ``user``) in guild channels."""
        payload = copy.deepcopy(message)
        guild_id = self._guild_of(message["channel_id"])
        if guild_id is not None:
            payload["guild_id"] = guild_id
            member = self.members.get(message["author"]["id"])
            if member is not None and "webhook_id" not in message:
                payload["member"] = {k: v for k, v in member.items() if k != "user"}
        return payload

    def _count_reaction(self, message: JSON, emoji: str, user_id: str, delta: int) -> None:
        """Keep ``message.reactions``: https://discord.com/developers/docs/resources/message#reaction-object"""
        reactions = message.setdefault("reactions", [])
        emoji_obj = self._emoji_object(emoji)
        entry = next((r for r in reactions if r["emoji"] == emoji_obj), None)
        if entry is None and delta > 0:
            entry = {"count": 0, "count_details": {"burst": 0, "normal": 0}, "me": False,
                     "me_burst": False, "burst_colors": [], "emoji": emoji_obj}
            reactions.append(entry)
        if entry is None:
            return
        entry["count"] += delta
        entry["count_details"]["normal"] += delta
        if user_id == self.bot_user["id"]:
            entry["me"] = delta > 0
        if entry["count"] <= 0:
            reactions.remove(entry)
        if not reactions:
            message.pop("reactions")

    async def _open_thread(self, thread: JSON) -> JSON:
        """Store a thread, make its owner a member and dispatch THREAD_CREATE."""
        self._store_channel(thread)
        now = _iso(_now())
        self._thread_members[thread["id"]] = {
            thread["owner_id"]: {"id": thread["id"], "user_id": thread["owner_id"],
                                 "join_timestamp": now, "flags": 0}
        }
        starter = self._find_message(thread["id"])
        if starter is not None:
            starter["flags"] |= FLAG_HAS_THREAD
            starter["thread"] = thread
        event = {**thread, "newly_created": True}
        if thread["owner_id"] == self.bot_user["id"]:
            event["member"] = self._thread_members[thread["id"]][thread["owner_id"]]
        await self._emit("THREAD_CREATE", event)
        return thread

    # ------------------------------------------------------------------ gateway

    async def _emit(self, event: str, payload: JSON) -> list[int]:
        """Record a dispatch in every valid session (filtered by its intents) and send it."""
        sequences = []
        for session in list(self._sessions.values()):
            if session.invalidated:
                continue
            data = self._for_session(session, event, payload)
            if data is None:
                continue
            frame = session.record(event, data)
            sequences.append(frame["s"])
            if session.conn is not None:
                await session.conn.send(frame)
        return sequences

    def _for_session(self, session: _Session, event: str, payload: JSON) -> JSON | None:
        """Apply intents: drop events the session did not ask for, blank message content
        without MESSAGE_CONTENT (unless DM, own message, or the bot is mentioned)."""
        need = _EVENT_INTENTS.get(event)
        if isinstance(need, tuple):
            need = need[0] if payload.get("guild_id") else need[1]
        if need is not None and not session.intents & need:
            return None
        data = copy.deepcopy(payload)
        if event in ("MESSAGE_CREATE", "MESSAGE_UPDATE") and not session.intents & MESSAGE_CONTENT:
            bot_id = self.bot_user["id"]
            exempt = (not data.get("guild_id") or data.get("author", {}).get("id") == bot_id
                      or any(m["id"] == bot_id for m in data.get("mentions", [])))
            if not exempt:
                data.update({"content": "", "embeds": [], "attachments": [], "components": []})
                data.pop("poll", None)
        return data

    async def _gateway(self, request: web.Request) -> web.WebSocketResponse:
        """The gateway websocket: https://discord.com/developers/docs/events/gateway"""
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        conn = _GatewayConnection(ws, request)
        self._connections.add(conn)
        self.gateway_connections.append({"path": conn.path, "query": conn.query})
        try:
            if conn.query.get("encoding", "json") != "json":
                await conn.close(4002, "Error while decoding payload.")
                return ws
            await conn.send({"op": 10, "s": None, "t": None,
                             "d": {"heartbeat_interval": self.heartbeat_interval,
                                   "_trace": ['["fake-discord-gateway",{"micros":0}]']}})
            async for msg in ws:
                if msg.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break
                try:
                    payload = json.loads(msg.data)
                except ValueError:
                    await conn.close(4002, "Error while decoding payload.")
                    break
                self.received.append(payload)
                await self._on_client_payload(conn, payload)
        finally:
            conn.closed = True
            self._connections.discard(conn)
            session = conn.session
            if session is not None and session.conn is conn:
                session.conn = None
                if ws.close_code in (1000, 1001):
                    # A client closing with 1000/1001 ends its session (Discord's rule).
                    session.invalidated = True
        return ws

    async def _on_client_payload(self, conn: _GatewayConnection, payload: JSON) -> None:
        """Gateway opcodes: https://discord.com/developers/docs/topics/opcodes-and-status-codes"""
        op, data = payload.get("op"), payload.get("d")
        if op == 1:
            await conn.send({"op": 11, "s": None, "t": None, "d": None})
        elif op == 2:
            await self._identify(conn, data or {})
        elif op == 6:
            await self._resume(conn, data or {})
        elif conn.session is None:
            await conn.close(4003, "Not authenticated.")
        elif op == 8:
            await self._request_members(conn, data or {})
        elif op in (3, 4):
            pass  # presence and voice state updates are recorded in ``received`` only
        else:
            await conn.close(4001, "Unknown opcode.")

    async def _identify(self, conn: _GatewayConnection, data: JSON) -> None:
        if conn.session is not None:
            await conn.close(4005, "Already authenticated.")
            return
        if data.get("token") != self.token:
            await conn.close(4004, "Authentication failed.")
            return
        if int(data.get("intents", 0)) & MESSAGE_CONTENT and not self.message_content_intent:
            await conn.close(4014, "Disallowed intent(s).")
            return
        self._session_starts_remaining -= 1
        session = _Session(uuid.uuid4().hex, int(data.get("intents", 0)), data.get("shard"))
        async with conn.lock:
            # READY and GUILD_CREATE take the first sequence numbers of the session.
            frames = [session.record("READY", self._ready_payload(session)),
                      session.record("GUILD_CREATE", self._guild_create_payload())]
            self._sessions[session.session_id] = session
            conn.session, session.conn = session, conn
            for frame in frames:
                await conn.send_unlocked(frame)

    async def _resume(self, conn: _GatewayConnection, data: JSON) -> None:
        session = self._sessions.get(str(data.get("session_id")))
        if session is None or session.invalidated or data.get("token") != self.token:
            await conn.send({"op": 9, "s": None, "t": None, "d": False})
            return
        async with conn.lock:
            previous = session.conn
            if previous is not None and previous is not conn:
                previous.abort()
            seq = int(data.get("seq") or 0)
            missed = [frame for frame in session.log if frame["s"] > seq]
            resumed = session.record("RESUMED", {"_trace": ['["fake-discord-gateway"]']})
            conn.session, session.conn = session, conn
            for frame in [*missed, resumed]:
                await conn.send_unlocked(frame)

    async def _request_members(self, conn: _GatewayConnection, data: JSON) -> None:
        """op 8 -> GUILD_MEMBERS_CHUNK: https://discord.com/developers/docs/events/gateway-events"""
        session = conn.session
        assert session is not None
        query = (data.get("query") or "").lower()
        wanted = [str(u) for u in data.get("user_ids") or []]
        members = [m for m in self.members.values()
                   if (not wanted or m["user"]["id"] in wanted)
                   and m["user"]["username"].lower().startswith(query)]
        limit = data.get("limit") or 0
        chunk = {
            "guild_id": self.guild_id, "members": members[:limit] if limit else members,
            "chunk_index": 0, "chunk_count": 1,
            "not_found": [u for u in wanted if u not in self.members],
        }
        if data.get("nonce"):
            chunk["nonce"] = data["nonce"]
        if data.get("presences"):
            chunk["presences"] = []
        await conn.send(session.record("GUILD_MEMBERS_CHUNK", chunk))

    # ------------------------------------------------------------------ REST plumbing

    def _routes(self) -> list[tuple[str, str, Handler]]:
        """Every REST route the fake answers. ``{x_id}`` matches a snowflake."""
        app = "/applications/{application_id}"
        chan = "/channels/{channel_id}"
        hook = "/webhooks/{application_id}/{token}"
        return [
            ("GET", "/gateway", self._get_gateway),
            ("GET", "/gateway/bot", self._get_gateway_bot),
            ("GET", "/users/@me", self._get_current_user),
            ("POST", "/users/@me/channels", self._create_dm),
            ("GET", "/users/@me/guilds", self._get_current_user_guilds),
            ("GET", "/users/{user_id}", self._get_user),
            ("GET", "/oauth2/applications/@me", self._get_application),
            ("GET", "/applications/@me", self._get_application),
            ("GET", f"{app}/commands", self._list_commands),
            ("PUT", f"{app}/commands", self._overwrite_commands),
            ("POST", f"{app}/commands", self._create_command),
            ("DELETE", f"{app}/commands/{{command_id}}", self._delete_command),
            ("GET", f"{app}/guilds/{{guild_id}}/commands", self._list_commands),
            ("PUT", f"{app}/guilds/{{guild_id}}/commands", self._overwrite_commands),
            ("POST", f"{app}/guilds/{{guild_id}}/commands", self._create_command),
            ("DELETE", f"{app}/guilds/{{guild_id}}/commands/{{command_id}}",
             self._delete_command),
            ("POST", "/interactions/{interaction_id}/{token}/callback",
             self._interaction_callback),
            ("POST", hook, self._execute_webhook),
            ("GET", f"{hook}/messages/{{message}}", self._get_webhook_message),
            ("PATCH", f"{hook}/messages/{{message}}", self._edit_webhook_message),
            ("DELETE", f"{hook}/messages/{{message}}", self._delete_webhook_message),
            ("GET", "/guilds/{guild_id}", self._get_guild),
            ("GET", "/guilds/{guild_id}/channels", self._list_guild_channels),
            ("POST", "/guilds/{guild_id}/channels", self._create_guild_channel),
            ("GET", "/guilds/{guild_id}/members", self._list_members),
            ("GET", "/guilds/{guild_id}/members/{user_id}", self._get_member),
            ("GET", chan, self._get_channel),
            ("PATCH", chan, self._modify_channel),
            ("DELETE", chan, self._delete_channel),
            ("PUT", f"{chan}/permissions/{{overwrite_id}}", self._put_permission),
            ("DELETE", f"{chan}/permissions/{{overwrite_id}}", self._delete_permission),
            ("POST", f"{chan}/typing", self._typing),
            ("GET", f"{chan}/pins", self._list_pins_legacy),
            ("PUT", f"{chan}/pins/{{message_id}}", self._pin),
            ("DELETE", f"{chan}/pins/{{message_id}}", self._unpin),
            ("GET", f"{chan}/messages/pins", self._list_pins),
            ("PUT", f"{chan}/messages/pins/{{message_id}}", self._pin),
            ("DELETE", f"{chan}/messages/pins/{{message_id}}", self._unpin),
            ("GET", f"{chan}/messages", self._list_messages),
            ("POST", f"{chan}/messages", self._create_message),
            ("GET", f"{chan}/messages/{{message_id}}", self._get_message),
            ("PATCH", f"{chan}/messages/{{message_id}}", self._edit_message),
            ("DELETE", f"{chan}/messages/{{message_id}}", self._delete_message),
            ("PUT", f"{chan}/messages/{{message_id}}/reactions/{{emoji}}/@me", self._add_reaction),
            ("DELETE", f"{chan}/messages/{{message_id}}/reactions/{{emoji}}/@me",
             self._remove_reaction),
            ("POST", f"{chan}/messages/{{message_id}}/threads", self._thread_from_message),
            ("POST", f"{chan}/threads", self._thread_without_message),
            ("GET", f"{chan}/thread-members", self._list_thread_members),
            ("PUT", f"{chan}/thread-members/@me", self._join_thread),
            ("PUT", f"{chan}/thread-members/{{user_id}}", self._add_thread_member),
            ("DELETE", f"{chan}/thread-members/@me", self._leave_thread),
            ("DELETE", f"{chan}/thread-members/{{user_id}}", self._remove_thread_member),
        ]

    async def _rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        body, files = await self._read_body(request)
        call = Call(request.method, path, body, dict(request.query), dict(request.headers), files)
        self.calls.append(call)
        response = self._rate_limited(call) or await self._route(call, request)
        call.status = response.status
        return response

    async def _route(self, call: Call, request: web.Request) -> web.Response:
        path_known = False
        for method, pattern, template, handler in self._route_table:
            match = pattern.match(call.path)
            if match is None:
                continue
            path_known = True
            if method != call.method:
                continue
            needs_auth = not template.startswith(("/interactions/", "/webhooks/"))
            if needs_auth and request.headers.get("Authorization") != f"Bot {self.token}":
                return _error(401, "401: Unauthorized")
            response = await handler(call, **match.groupdict())
            if response.status < 300:
                self._add_rate_limit_headers(response, method, template)
            return response
        if path_known:
            return _error(405, "405: Method Not Allowed")
        return _error(404, "404: Not Found")

    @staticmethod
    async def _read_body(request: web.Request) -> tuple[Any, list[JSON]]:
        if not request.can_read_body:
            return None, []
        if request.content_type.startswith("multipart/"):
            body, files = None, []
            reader = await request.multipart()
            async for part in reader:
                if part.name == "payload_json":  # type: ignore[union-attr]
                    body = json.loads(await part.text())  # type: ignore[union-attr]
                else:
                    raw = await part.read()  # type: ignore[union-attr]
                    files.append({"field": part.name, "filename": part.filename,  # type: ignore[union-attr]
                                  "content_type": part.headers.get("Content-Type"),
                                  "size": len(raw)})
            return body, files
        text = await request.text()
        return (json.loads(text) if text else None), []

    @staticmethod
    def _bucket(method: str, template: str) -> str:
        return hashlib.sha1(f"{method} {template}".encode()).hexdigest()[:32]

    def _add_rate_limit_headers(self, response: web.Response, method: str, template: str) -> None:
        """Headers of an unexhausted bucket: https://discord.com/developers/docs/topics/rate-limits"""
        response.headers.update({
            "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "4",
            "X-RateLimit-Reset": f"{time.time() + 1:.3f}", "X-RateLimit-Reset-After": "1.000",
            "X-RateLimit-Bucket": self._bucket(method, template),
        })

    def _rate_limited(self, call: Call) -> web.Response | None:
        rule = next((r for r in self._rate_limits if r.remaining > 0 and r.method == call.method
                     and r.pattern.match(call.path)), None)
        if rule is None:
            return None
        rule.remaining -= 1
        body = {"message": "You are being rate limited.", "retry_after": rule.retry_after,
                "global": rule.is_global}
        response = _json_response(body, status=429)
        response.headers.update({
            "Retry-After": str(max(1, math.ceil(rule.retry_after))),
            "X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
            "X-RateLimit-Reset": f"{time.time() + rule.retry_after:.3f}",
            "X-RateLimit-Reset-After": f"{rule.retry_after:.3f}",
            "X-RateLimit-Bucket": self._bucket(call.method, rule.pattern.pattern),
            "X-RateLimit-Scope": "global" if rule.is_global else "user",
            # discord.py treats a 429 without ``Via`` as a Cloudflare ban, as on the real edge
            "Via": "1.1 google",
        })
        if rule.is_global:
            response.headers["X-RateLimit-Global"] = "true"
        return response

    # ------------------------------------------------------------------ REST: gateway, users

    async def _get_gateway(self, call: Call) -> web.Response:
        """GET /gateway: https://discord.com/developers/docs/events/gateway#get-gateway"""
        return _json_response({"url": self.gateway_url})

    async def _get_gateway_bot(self, call: Call) -> web.Response:
        """GET /gateway/bot: https://discord.com/developers/docs/events/gateway#get-gateway-bot"""
        return _json_response({
            "url": self.gateway_url, "shards": 1,
            "session_start_limit": {"total": 1000, "remaining": self._session_starts_remaining,
                                    "reset_after": 14_400_000, "max_concurrency": 1},
        })

    async def _get_current_user(self, call: Call) -> web.Response:
        """GET /users/@me: the bot user with its private fields."""
        return _json_response({**self.bot_user, "verified": True, "mfa_enabled": False,
                               "email": None, "locale": "en-US", "premium_type": 0, "bio": ""})

    async def _get_current_user_guilds(self, call: Call) -> web.Response:
        """GET /users/@me/guilds: partial guilds with the bot's base permissions in each.
        https://discord.com/developers/docs/resources/user#get-current-user-guilds"""
        member = self.members.get(self.bot_user["id"])
        if member is None:  # the bot was removed from the one guild
            return _json_response([])
        roles = {r["id"]: int(r["permissions"]) for r in self.guild["roles"]}
        permissions = roles.get(self.guild_id, 0)
        for role in member["roles"]:
            permissions |= roles.get(role, 0)
        guild: JSON = {
            "id": self.guild_id, "name": self.guild["name"], "icon": None, "banner": None,
            "owner": self.guild["owner_id"] == self.bot_user["id"],
            "permissions": str(permissions), "features": list(self.guild["features"]),
        }
        if call.query.get("with_counts", "").lower() in ("1", "true"):
            guild.update({"approximate_member_count": len(self.members),
                          "approximate_presence_count": 0})
        return _json_response([guild])

    async def _get_user(self, call: Call, user_id: str) -> web.Response:
        try:
            return _json_response(self.user(user_id))
        except KeyError:
            return _error(404, "Unknown User", 10013)

    async def _create_dm(self, call: Call) -> web.Response:
        """POST /users/@me/channels -> DM channel object (type 1), reused per recipient."""
        recipient = str((call.json or {}).get("recipient_id"))
        try:
            user = self.user(recipient)
        except KeyError:
            return _error(400, "Invalid Recipient(s)", 50033)
        existing = next((c for c in self.channels.values()
                         if c["type"] == DM and c["recipients"][0]["id"] == recipient), None)
        channel = existing or self._store_channel({
            "id": self._ids.new(), "type": DM, "last_message_id": None, "flags": 0,
            "recipients": [user],
        })
        return _json_response(channel)

    async def _get_application(self, call: Call) -> web.Response:
        """GET /oauth2/applications/@me: https://discord.com/developers/docs/resources/application"""
        return _json_response({
            "id": self.application_id, "name": "Opsroom", "icon": None, "description": "",
            "summary": "", "type": None, "hook": True, "bot_public": False,
            "bot_require_code_grant": False, "verify_key": hashlib.sha256(
                self.application_id.encode()).hexdigest(),
            "flags": self._application_flags(), "owner": self.users[0], "team": None,
            "bot": self.bot_user, "interactions_endpoint_url": None,
            "role_connections_verification_url": None, "redirect_uris": [], "tags": [],
            "integration_types_config": {"0": {}}, "approximate_guild_count": 1,
            "approximate_user_install_count": 0, "is_monetized": False,
            "storefront_available": False, "event_webhooks_status": 1,
        })

    # ------------------------------------------------------------------ REST: commands

    def _command_object(self, body: JSON, guild_id: str | None,
                        existing: list[JSON]) -> JSON:
        """Application command: https://discord.com/developers/docs/interactions/application-commands"""
        kind = body.get("type", 1)
        same = next((c for c in existing if c["name"] == body["name"] and c["type"] == kind), None)
        command: JSON = {
            "id": same["id"] if same else self._ids.new(), "application_id": self.application_id,
            "version": self._ids.new(), "type": kind, "name": body["name"],
            "name_localizations": body.get("name_localizations"),
            "description": body.get("description", ""),
            "description_localizations": body.get("description_localizations"),
            "default_member_permissions": body.get("default_member_permissions"),
            "nsfw": body.get("nsfw", False),
            "contexts": body.get("contexts"),
            "integration_types": body.get("integration_types") or [0],
        }
        if body.get("options"):
            command["options"] = body["options"]
        if guild_id is not None:
            command["guild_id"] = guild_id
        else:
            command["dm_permission"] = body.get("dm_permission", True)
        return command

    def _command_list(self, guild_id: str | None) -> list[JSON]:
        if guild_id is None:
            return self.global_commands
        return self.guild_commands.setdefault(guild_id, [])

    async def _list_commands(self, call: Call, application_id: str,
                             guild_id: str | None = None) -> web.Response:
        return _json_response(self._command_list(guild_id))

    async def _overwrite_commands(self, call: Call, application_id: str,
                                  guild_id: str | None = None) -> web.Response:
        """PUT bulk overwrite: replaces all commands, keeping ids of unchanged names."""
        if application_id != self.application_id:
            return _error(403, "Missing Access", 50001)
        if guild_id is not None and guild_id != self.guild_id:
            return _error(403, "Missing Access", 50001)
        errors = check_bulk(call.json)
        if errors:
            return _json_response(errors.body(), status=400)
        bodies: list[JSON] = call.json
        existing = self._command_list(guild_id)
        commands = [self._command_object(body, guild_id, existing) for body in bodies]
        existing[:] = commands
        return _json_response(commands)

    async def _create_command(self, call: Call, application_id: str,
                              guild_id: str | None = None) -> web.Response:
        """POST upsert of one command (201 when new, 200 when it replaced one by name)."""
        errors = check_one(call.json)
        if errors:
            return _json_response(errors.body(), status=400)
        existing = self._command_list(guild_id)
        command = self._command_object(call.json, guild_id, existing)
        replaced = any(c["id"] == command["id"] for c in existing)
        limit = MAX_COMMANDS.get(command["type"])
        if not replaced and limit is not None and \
                sum(c["type"] == command["type"] for c in existing) >= limit:
            return _error(400, f"Maximum number of application commands reached ({limit})", 30032)
        existing[:] = [c for c in existing if c["id"] != command["id"]] + [command]
        return _json_response(command, status=200 if replaced else 201)

    async def _delete_command(self, call: Call, application_id: str, command_id: str,
                              guild_id: str | None = None) -> web.Response:
        existing = self._command_list(guild_id)
        if not any(c["id"] == command_id for c in existing):
            return _error(404, "Unknown application command", 10063)
        existing[:] = [c for c in existing if c["id"] != command_id]
        return _no_content()

    # ------------------------------------------------------------------ REST: interactions

    async def _interaction_callback(self, call: Call, interaction_id: str,
                                    token: str) -> web.Response:
        """POST /interactions/{id}/{token}/callback; with ``with_response`` answers the
        interaction callback response object, otherwise 204.
        https://discord.com/developers/docs/interactions/receiving-and-responding#create-interaction-response"""
        record = self._interactions.get(token)
        if record is None or record["id"] != interaction_id:
            return _error(404, "Unknown interaction", 10062)
        if time.monotonic() - record["created"] > self.interaction_deadline:
            return _error(404, "Unknown interaction", 10062)
        if record["responded"]:
            return _error(400, "Interaction has already been acknowledged.", 40060)
        body = call.json or {}
        kind, data = body.get("type"), body.get("data") or {}
        record["responded"], record["response_type"] = True, kind
        self.interaction_responses.append({
            "interaction_id": interaction_id, "token": token, "type": kind, "data": data,
            "query": call.query,
        })
        message = None
        if kind == CHANNEL_MESSAGE_WITH_SOURCE:
            message = await self._interaction_message(record, data, original=True)
        elif kind == DEFERRED_CHANNEL_MESSAGE:
            flags = (data.get("flags") or 0) | FLAG_LOADING
            message = await self._interaction_message(record, {"flags": flags}, original=True)
        elif kind in (UPDATE_MESSAGE, DEFERRED_UPDATE_MESSAGE) and record["message_id"]:
            record["original_message_id"] = record["message_id"]
            if kind == UPDATE_MESSAGE:
                target = self._find_message(record["message_id"])
                if target is not None:
                    message = await self._apply_edit(target, data)
        elif kind == MODAL:
            self._modals[data.get("custom_id", "")] = {"modal": data, "interaction": record}
        if call.query.get("with_response", "").lower() not in ("1", "true"):
            return _no_content()
        summary: JSON = {"id": interaction_id, "type": record["type"]}
        resource: JSON = {"type": kind}
        if message is not None:
            summary.update({"response_message_id": message["id"],
                            "response_message_loading": bool(message["flags"] & FLAG_LOADING),
                            "response_message_ephemeral": bool(message["flags"] & FLAG_EPHEMERAL)})
            resource["message"] = message
        return _json_response({"interaction": summary, "resource": resource})

    async def _interaction_message(self, record: JSON, data: JSON, *, original: bool) -> JSON:
        """A message created by an interaction response or follow-up (author = bot user,
        ``webhook_id`` = application id, ``interaction_metadata``). Ephemeral messages are
        kept apart from the channel and not dispatched."""
        flags = data.get("flags") or 0
        message = self._new_message(
            record["channel_id"], author=self.bot_user, content=data.get("content") or "",
            embeds=data.get("embeds"), components=data.get("components"),
            type=20 if record["type"] == APPLICATION_COMMAND else 0, flags=flags,
            tts=bool(data.get("tts")),
        )
        metadata: JSON = {"id": record["id"], "type": record["type"], "user": record["user"],
                          "authorizing_integration_owners": {"0": self.guild_id}}
        if record["type"] == APPLICATION_COMMAND:
            metadata.update({"name": record["name"], "command_type": 1})
            message["interaction"] = {"id": record["id"], "type": record["type"],
                                      "name": record["name"], "user": record["user"]}
        if record["type"] == MESSAGE_COMPONENT:
            metadata["interacted_message_id"] = record["message_id"]
        if not original and record["original_message_id"]:
            metadata["original_response_message_id"] = record["original_message_id"]
        message.update({"webhook_id": self.application_id, "application_id": self.application_id,
                        "interaction_metadata": metadata})
        if original:
            record["original_message_id"] = message["id"]
        record["messages"].append(message["id"])
        if flags & FLAG_EPHEMERAL:
            self._ephemeral[message["id"]] = message
        else:
            self._store_message(message)
            await self._emit("MESSAGE_CREATE", self._gateway_message(message))
        return message

    def _webhook_target(self, token: str, message: str) -> tuple[JSON | None, JSON | None]:
        record = self._interactions.get(token)
        if record is None:
            return None, None
        mid = record["original_message_id"] if message == "@original" else message
        if mid is None or mid not in record["messages"] + [record["message_id"]]:
            return record, None
        return record, self._find_message(mid)

    async def _execute_webhook(self, call: Call, application_id: str, token: str) -> web.Response:
        """POST /webhooks/{app}/{token}: interaction follow-up; the message with ``?wait=true``."""
        record = self._interactions.get(token)
        if record is None or application_id != self.application_id:
            return _error(404, "Unknown Webhook", 10015)
        if not record["responded"]:
            # the follow-up webhook only exists once the interaction has been answered
            return _error(404, "Unknown Webhook", 10015)
        message = await self._interaction_message(record, call.json or {}, original=False)
        if call.query.get("wait", "").lower() in ("1", "true"):
            return _json_response(message)
        return _no_content()

    async def _get_webhook_message(self, call: Call, application_id: str, token: str,
                                   message: str) -> web.Response:
        record, found = self._webhook_target(token, message)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        return _json_response(found) if found else _error(404, "Unknown Message", 10008)

    async def _edit_webhook_message(self, call: Call, application_id: str, token: str,
                                    message: str) -> web.Response:
        """PATCH .../messages/@original|{id}: edits (and finishes a deferred "thinking")."""
        record, found = self._webhook_target(token, message)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if found is None:
            return _error(404, "Unknown Message", 10008)
        found["flags"] &= ~FLAG_LOADING
        return _json_response(await self._apply_edit(found, call.json or {}))

    async def _delete_webhook_message(self, call: Call, application_id: str, token: str,
                                      message: str) -> web.Response:
        record, found = self._webhook_target(token, message)
        if record is None:
            return _error(404, "Unknown Webhook", 10015)
        if found is None:
            return _error(404, "Unknown Message", 10008)
        ephemeral = bool(found["flags"] & FLAG_EPHEMERAL)
        self._remove_message(found)
        if not ephemeral:
            await self._emit("MESSAGE_DELETE",
                             self.message_delete_payload(found["channel_id"], found["id"]))
        return _no_content()

    # ------------------------------------------------------------------ REST: guild, channels

    async def _get_guild(self, call: Call, guild_id: str) -> web.Response:
        if guild_id != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        guild = {k: v for k, v in self.guild.items() if k != "joined_at"}
        if call.query.get("with_counts", "").lower() in ("1", "true"):
            guild.update({"approximate_member_count": len(self.members),
                          "approximate_presence_count": 0})
        return _json_response(guild)

    async def _list_guild_channels(self, call: Call, guild_id: str) -> web.Response:
        if guild_id != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        return _json_response([c for c in self.channels.values()
                               if c.get("guild_id") == guild_id and c["type"] not in THREAD_TYPES])

    async def _list_members(self, call: Call, guild_id: str) -> web.Response:
        after = int(call.query.get("after", 0))
        limit = int(call.query.get("limit", 1))
        members = sorted((m for m in self.members.values() if int(m["user"]["id"]) > after),
                         key=lambda m: int(m["user"]["id"]))
        return _json_response(members[:limit])

    async def _get_member(self, call: Call, guild_id: str, user_id: str) -> web.Response:
        if guild_id != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        member = self.members.get(user_id)
        return _json_response(member) if member else _error(404, "Unknown Member", 10007)

    async def _create_guild_channel(self, call: Call, guild_id: str) -> web.Response:
        """POST /guilds/{id}/channels -> 201 channel; CHANNEL_CREATE is dispatched."""
        if guild_id != self.guild_id:
            return _error(404, "Unknown Guild", 10004)
        body = call.json or {}
        if not body.get("name"):
            return _form_error(["name"], "BASE_TYPE_REQUIRED", "This field is required")
        parent_id = body.get("parent_id")
        if parent_id and (self.channels.get(str(parent_id), {}).get("type") != GUILD_CATEGORY):
            return _form_error(["parent_id"], "CHANNEL_PARENT_INVALID", "Not a category")
        channel = self.channel_payload(
            body["name"], type=int(body.get("type", GUILD_TEXT)), parent_id=parent_id,
            topic=body.get("topic"), position=body.get("position"),
            permission_overwrites=body.get("permission_overwrites"),
        )
        for key in ("nsfw", "rate_limit_per_user", "default_auto_archive_duration"):
            if body.get(key) is not None:
                channel[key] = body[key]
        self._store_channel(channel)
        await self._emit("CHANNEL_CREATE", channel)
        return _json_response(channel, status=201)

    async def _get_channel(self, call: Call, channel_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        return _json_response(channel) if channel else _error(404, "Unknown Channel", 10003)

    async def _modify_channel(self, call: Call, channel_id: str) -> web.Response:
        """PATCH /channels/{id}: rename, topic, category, overwrites; for threads archive/lock.
        Dispatches CHANNEL_UPDATE or THREAD_UPDATE."""
        channel = self.channels.get(channel_id)
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        body = call.json or {}
        is_thread = channel["type"] in THREAD_TYPES
        if "name" in body:
            if not body["name"]:
                return _form_error(["name"], "BASE_TYPE_REQUIRED", "This field is required")
            name = body["name"]
            if channel["type"] in (GUILD_TEXT, GUILD_ANNOUNCEMENT):
                name = re.sub(r"\s+", "-", name.strip()).lower()
            channel["name"] = name
        for key in ("topic", "nsfw", "rate_limit_per_user", "position", "flags",
                    "default_auto_archive_duration", "applied_tags"):
            if key in body:
                channel[key] = body[key]
        if "parent_id" in body and not is_thread:
            channel["parent_id"] = str(body["parent_id"]) if body["parent_id"] else None
        if "permission_overwrites" in body and not is_thread:
            channel["permission_overwrites"] = [self._overwrite(o)
                                                for o in body["permission_overwrites"] or []]
        if is_thread:
            metadata = channel["thread_metadata"]
            for key in ("locked", "invitable", "auto_archive_duration"):
                if key in body:
                    metadata[key] = body[key]
            if "archived" in body and body["archived"] != metadata["archived"]:
                metadata["archived"] = bool(body["archived"])
                metadata["archive_timestamp"] = _iso(_now())
        await self._emit("THREAD_UPDATE" if is_thread else "CHANNEL_UPDATE", channel)
        return _json_response(channel)

    async def _delete_channel(self, call: Call, channel_id: str) -> web.Response:
        channel = self.channels.pop(channel_id, None)
        if channel is None:
            return _error(404, "Unknown Channel", 10003)
        if channel["type"] in THREAD_TYPES:
            await self._emit("THREAD_DELETE", {k: channel[k] for k in
                                               ("id", "guild_id", "parent_id", "type")})
        elif channel["type"] != DM:
            await self._emit("CHANNEL_DELETE", channel)
        return _json_response(channel)

    async def _put_permission(self, call: Call, channel_id: str,
                              overwrite_id: str) -> web.Response:
        """PUT /channels/{id}/permissions/{overwrite}: 204; CHANNEL_UPDATE is dispatched."""
        channel = self.channels.get(channel_id)
        if channel is None or "permission_overwrites" not in channel:
            return _error(404, "Unknown Channel", 10003)
        overwrite = self._overwrite({"id": overwrite_id, **(call.json or {})})
        others = [o for o in channel["permission_overwrites"] if o["id"] != overwrite_id]
        channel["permission_overwrites"] = [*others, overwrite]
        await self._emit("CHANNEL_UPDATE", channel)
        return _no_content()

    async def _delete_permission(self, call: Call, channel_id: str,
                                 overwrite_id: str) -> web.Response:
        channel = self.channels.get(channel_id)
        if channel is None or "permission_overwrites" not in channel:
            return _error(404, "Unknown Channel", 10003)
        channel["permission_overwrites"] = [o for o in channel["permission_overwrites"]
                                            if o["id"] != overwrite_id]
        await self._emit("CHANNEL_UPDATE", channel)
        return _no_content()

    async def _typing(self, call: Call, channel_id: str) -> web.Response:
        return _no_content() if channel_id in self.channels else _error(
            404, "Unknown Channel", 10003)

    # ------------------------------------------------------------------ REST: messages

    def _messageable(self, channel_id: str) -> tuple[JSON | None, web.Response | None]:
        channel = self.channels.get(channel_id)
        if channel is None:
            return None, _error(404, "Unknown Channel", 10003)
        if channel["type"] not in MESSAGEABLE_TYPES:
            return None, _error(400, "Cannot send messages in a non-text channel", 50008)
        return channel, None

    async def _create_message(self, call: Call, channel_id: str) -> web.Response:
        """POST /channels/{id}/messages -> message (author = bot); MESSAGE_CREATE dispatched.
        https://discord.com/developers/docs/resources/message#create-message"""
        channel, error = self._messageable(channel_id)
        if error is not None:
            return error
        assert channel is not None
        if channel.get("thread_metadata", {}).get("archived"):
            return _error(400, "Thread is archived", 50083)
        body = call.json or {}
        content = body.get("content") or ""
        if len(content) > 2000:
            return _form_error(["content"], "BASE_TYPE_MAX_LENGTH",
                               "Must be 2000 or fewer in length.")
        if not (content or body.get("embeds") or body.get("components") or call.files
                or body.get("sticker_ids") or body.get("poll")):
            return _error(400, "Cannot send an empty message", 50006)
        nonce = body.get("nonce")
        if nonce is not None and len(str(nonce)) > 25:
            return _form_error(["nonce"], "BASE_TYPE_MAX_LENGTH", "Must be 25 or fewer in length.")
        if nonce is not None and body.get("enforce_nonce"):
            # Discord: the same author and nonce within the past few minutes returns the message
            # already created instead of a new one.
            seen = self._nonces.get((channel_id, self.bot_user["id"], str(nonce)))
            if seen is not None and time.time() - seen[1] < NONCE_WINDOW_S:
                earlier = self._find_message(seen[0])
                if earlier is not None:
                    return _json_response(earlier)
        reference = body.get("message_reference")
        if reference and self._find_message(str(reference.get("message_id"))) is None and (
            reference.get("fail_if_not_exists", True)
        ):
            return _form_error(["message_reference"], "MESSAGE_REFERENCE_UNKNOWN_MESSAGE",
                               "Unknown message")
        attachments = [
            {"id": self._ids.new(), "filename": f["filename"], "size": f["size"],
             "content_type": f["content_type"],
             "url": f"{self.base_url}/attachments/{channel_id}/{f['filename']}",
             "proxy_url": f"{self.base_url}/attachments/{channel_id}/{f['filename']}"}
            for f in call.files
        ]
        message = self._new_message(
            channel_id, author=self.bot_user, content=content, embeds=body.get("embeds"),
            components=body.get("components"), flags=body.get("flags") or 0,
            message_reference=reference, attachments=attachments, nonce=body.get("nonce"),
            tts=bool(body.get("tts")),
        )
        self._store_message(message)
        if nonce is not None:
            self._nonces[(channel_id, self.bot_user["id"], str(nonce))] = (message["id"],
                                                                         time.time())
        await self._emit("MESSAGE_CREATE", self._gateway_message(message))
        return _json_response(message)

    async def _list_messages(self, call: Call, channel_id: str) -> web.Response:
        """GET /channels/{id}/messages: newest first, ``limit`` (1-100, default 50) and one of
        ``before``/``after``/``around``."""
        if channel_id not in self.channels:
            return _error(404, "Unknown Channel", 10003)
        limit = max(1, min(100, int(call.query.get("limit", 50))))
        found = self.messages(channel_id, include_system=True)
        if "before" in call.query:
            found = [m for m in found if int(m["id"]) < int(call.query["before"])]
        elif "after" in call.query:
            found = [m for m in found if int(m["id"]) > int(call.query["after"])][:limit]
        elif "around" in call.query:
            pivot = int(call.query["around"])
            older = [m for m in found if int(m["id"]) <= pivot][-(limit // 2 + 1):]
            newer = [m for m in found if int(m["id"]) > pivot][: limit - len(older)]
            found = older + newer
        return _json_response(list(reversed(found))[:limit])

    async def _get_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        message = self.message(channel_id, message_id)
        return _json_response(message) if message else _error(404, "Unknown Message", 10008)

    async def _apply_edit(self, message: JSON, body: JSON) -> JSON:
        """Apply an edit body and dispatch MESSAGE_UPDATE (unless ephemeral)."""
        if "content" in body:
            message["content"] = body["content"] or ""
            message["mentions"] = self._mentions(message["content"])
        if "embeds" in body:
            message["embeds"] = [{"type": "rich", **e} for e in body["embeds"] or []]
        if "components" in body:
            message["components"] = self._number_components(body["components"] or [])
        if "attachments" in body:
            keep = {str(a.get("id")) for a in body["attachments"] or []}
            message["attachments"] = [a for a in message["attachments"] if a["id"] in keep]
        if "flags" in body and body["flags"] is not None:
            # only SUPPRESS_EMBEDS can be changed by an edit
            message["flags"] = (message["flags"] & ~4) | (body["flags"] & 4)
        message["edited_timestamp"] = _iso(_now())
        if not message["flags"] & FLAG_EPHEMERAL:
            await self._emit("MESSAGE_UPDATE", self.message_update_payload(message))
        return message

    async def _edit_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        """PATCH /channels/{id}/messages/{id}: only the bot's own messages."""
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        if message["author"]["id"] != self.bot_user["id"]:
            return _error(403, "Cannot edit a message authored by another user", 50005)
        return _json_response(await self._apply_edit(message, call.json or {}))

    async def _delete_message(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        self._remove_message(message)
        await self._emit("MESSAGE_DELETE", self.message_delete_payload(channel_id, message_id))
        return _no_content()

    async def _add_reaction(self, call: Call, channel_id: str, message_id: str,
                            emoji: str) -> web.Response:
        """PUT .../reactions/{emoji}/@me: the bot reacts; MESSAGE_REACTION_ADD dispatched."""
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        self._count_reaction(message, emoji, self.bot_user["id"], +1)
        await self._emit("MESSAGE_REACTION_ADD",
                         self.reaction_payload(channel_id, message_id, emoji, user=self.bot_user))
        return _no_content()

    async def _remove_reaction(self, call: Call, channel_id: str, message_id: str,
                               emoji: str) -> web.Response:
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        self._count_reaction(message, emoji, self.bot_user["id"], -1)
        await self._emit("MESSAGE_REACTION_REMOVE", self.reaction_payload(
            channel_id, message_id, emoji, user=self.bot_user, remove=True))
        return _no_content()

    # ------------------------------------------------------------------ REST: pins

    async def _pin(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        """PUT pins: 204; like Discord, posts a "pinned a message" notice (type 6) and
        dispatches MESSAGE_UPDATE, MESSAGE_CREATE and CHANNEL_PINS_UPDATE."""
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        pins = self._pins.setdefault(channel_id, [])
        if message["pinned"]:
            return _no_content()
        if len(pins) >= 250:
            return _error(400, "Maximum number of pins reached (250)", 30003)
        pinned_at = _iso(_now())
        pins.append((pinned_at, message_id))
        message["pinned"] = True
        self.channels[channel_id]["last_pin_timestamp"] = pinned_at
        await self._emit("MESSAGE_UPDATE", self.message_update_payload(message))
        notice = self._new_message(channel_id, author=self.bot_user, type=6,
                                   message_reference={"message_id": message_id,
                                                      "channel_id": channel_id})
        self._store_message(notice)
        await self._emit("MESSAGE_CREATE", self._gateway_message(notice))
        await self._emit("CHANNEL_PINS_UPDATE", self._pins_update(channel_id))
        return _no_content()

    async def _unpin(self, call: Call, channel_id: str, message_id: str) -> web.Response:
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        self._pins[channel_id] = [p for p in self._pins.get(channel_id, []) if p[1] != message_id]
        message["pinned"] = False
        await self._emit("MESSAGE_UPDATE", self.message_update_payload(message))
        await self._emit("CHANNEL_PINS_UPDATE", self._pins_update(channel_id))
        return _no_content()

    def _pins_update(self, channel_id: str) -> JSON:
        """CHANNEL_PINS_UPDATE: https://discord.com/developers/docs/events/gateway-events"""
        pins = self._pins.get(channel_id, [])
        payload: JSON = {"channel_id": channel_id,
                         "last_pin_timestamp": pins[-1][0] if pins else None}
        if (guild_id := self._guild_of(channel_id)) is not None:
            payload["guild_id"] = guild_id
        return payload

    async def _list_pins_legacy(self, call: Call, channel_id: str) -> web.Response:
        """GET /channels/{id}/pins (deprecated): an array of messages."""
        if channel_id not in self.channels:
            return _error(404, "Unknown Channel", 10003)
        return _json_response(self.pins(channel_id))

    async def _list_pins(self, call: Call, channel_id: str) -> web.Response:
        """GET /channels/{id}/messages/pins: ``{"items": [{"pinned_at", "message"}],
        "has_more"}``, newest first, with ``before`` (timestamp) and ``limit`` (1-50)."""
        if channel_id not in self.channels:
            return _error(404, "Unknown Channel", 10003)
        limit = max(1, min(50, int(call.query.get("limit", 50))))
        before = call.query.get("before")
        items = [{"pinned_at": at, "message": self.message(channel_id, mid)}
                 for at, mid in reversed(self._pins.get(channel_id, []))
                 if before is None or datetime.fromisoformat(at) < datetime.fromisoformat(before)]
        return _json_response({"items": items[:limit], "has_more": len(items) > limit})

    # ------------------------------------------------------------------ REST: threads

    async def _thread_from_message(self, call: Call, channel_id: str,
                                   message_id: str) -> web.Response:
        """POST /channels/{id}/messages/{id}/threads -> 201 thread (id = message id)."""
        message = self.message(channel_id, message_id)
        if message is None:
            return _error(404, "Unknown Message", 10008)
        if message.get("thread") is not None:
            return _error(400, "A thread has already been created for this message", 160004)
        body = call.json or {}
        if not body.get("name"):
            return _form_error(["name"], "BASE_TYPE_REQUIRED", "This field is required")
        parent = self.channels[channel_id]
        kind = ANNOUNCEMENT_THREAD if parent["type"] == GUILD_ANNOUNCEMENT else PUBLIC_THREAD
        thread = self.thread_payload(channel_id, body["name"], message_id=message_id, type=kind,
                                     auto_archive_duration=body.get("auto_archive_duration")
                                     or 1440)
        thread["rate_limit_per_user"] = body.get("rate_limit_per_user") or 0
        return _json_response(await self._open_thread(thread), status=201)

    async def _thread_without_message(self, call: Call, channel_id: str) -> web.Response:
        """POST /channels/{id}/threads -> 201 thread (type from the body, default private)."""
        parent = self.channels.get(channel_id)
        if parent is None:
            return _error(404, "Unknown Channel", 10003)
        body = call.json or {}
        if not body.get("name"):
            return _form_error(["name"], "BASE_TYPE_REQUIRED", "This field is required")
        thread = self.thread_payload(
            channel_id, body["name"], type=int(body.get("type") or PRIVATE_THREAD),
            auto_archive_duration=body.get("auto_archive_duration") or 1440,
            invitable=body.get("invitable", True),
        )
        return _json_response(await self._open_thread(thread), status=201)

    def _thread_or_error(self, channel_id: str) -> tuple[JSON | None, web.Response | None]:
        thread = self.channels.get(channel_id)
        if thread is None:
            return None, _error(404, "Unknown Channel", 10003)
        if thread["type"] not in THREAD_TYPES:
            return None, _error(400, "Invalid thread channel", 50024)
        return thread, None

    async def _set_thread_member(self, channel_id: str, user_id: str, add: bool) -> web.Response:
        """Add or remove a member; dispatches THREAD_MEMBERS_UPDATE."""
        thread, error = self._thread_or_error(channel_id)
        if error is not None:
            return error
        assert thread is not None
        if user_id not in self.members:
            return _error(404, "Unknown Member", 10007)
        members = self._thread_members.setdefault(channel_id, {})
        update: JSON = {"id": channel_id, "guild_id": self.guild_id}
        if add and user_id not in members:
            members[user_id] = {"id": channel_id, "user_id": user_id,
                                "join_timestamp": _iso(_now()), "flags": 0}
            update["added_members"] = [{**members[user_id], "member": self.members[user_id]}]
        elif not add and user_id in members:
            del members[user_id]
            update["removed_member_ids"] = [user_id]
        else:
            return _no_content()
        thread["member_count"] = update["member_count"] = len(members)
        await self._emit("THREAD_MEMBERS_UPDATE", update)
        return _no_content()

    async def _join_thread(self, call: Call, channel_id: str) -> web.Response:
        return await self._set_thread_member(channel_id, self.bot_user["id"], add=True)

    async def _leave_thread(self, call: Call, channel_id: str) -> web.Response:
        return await self._set_thread_member(channel_id, self.bot_user["id"], add=False)

    async def _add_thread_member(self, call: Call, channel_id: str, user_id: str) -> web.Response:
        """PUT /channels/{id}/thread-members/{user}: 204."""
        return await self._set_thread_member(channel_id, user_id, add=True)

    async def _remove_thread_member(self, call: Call, channel_id: str,
                                    user_id: str) -> web.Response:
        return await self._set_thread_member(channel_id, user_id, add=False)

    async def _list_thread_members(self, call: Call, channel_id: str) -> web.Response:
        _, error = self._thread_or_error(channel_id)
        return error or _json_response(list(self._thread_members.get(channel_id, {}).values()))
