"""A fake Slack for adapter tests: a Web API server, and builders for what Slack posts to us.

Two halves, describing the same workspace:

* ``FakeSlack`` is an aiohttp server on 127.0.0.1 that answers the Slack Web API methods Opsroom
  uses (``https://slack.com/api/<method>``) with their documented response shapes, and keeps the
  workspace in memory (channels, members, messages and threads, pins, reactions, views, users).
  The real ``slack_sdk`` client talks to it over HTTP::

      async with FakeSlack() as fake:
          client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
          await client.chat_postMessage(channel=fake.incidents_id, text="hi")
          assert fake.messages(fake.incidents_id)[-1]["text"] == "hi"

* Module-level builders (``slash_command_body``, ``event_callback`` with ``message_event`` and
  friends, ``block_actions_body``, ``view_submission_body``, ``shortcut_body``,
  ``message_action_body``) return the complete bodies Slack POSTs to an app's Request URL, and
  ``sign`` returns the ``X-Slack-Signature`` headers for a body.

The builders' default ids (``TEAM_ID``, ``ALICE``, ``INCIDENTS_ID``, ...) are the ones a default
``FakeSlack`` is seeded with, so an event built with defaults refers to things the fake knows.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import hashlib
import hmac
import json
import random
import re
import socket
import string
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

__all__ = [
    "ALICE",
    "API_APP_ID",
    "BOB",
    "BOT_ID",
    "BOT_NAME",
    "BOT_SCOPES",
    "BOT_TOKEN",
    "BOT_USER_ID",
    "CAROL",
    "GENERAL_ID",
    "INCIDENTS_ID",
    "SIGNING_SECRET",
    "TEAM_DOMAIN",
    "TEAM_ID",
    "TEAM_NAME",
    "VERIFICATION_TOKEN",
    "Call",
    "FakeSlack",
    "Outage",
    "block_actions_body",
    "bot_message_event",
    "event_callback",
    "file_object",
    "file_share_event",
    "member_joined_channel_event",
    "message_action_body",
    "message_changed_event",
    "message_deleted_event",
    "message_event",
    "new_trigger_id",
    "new_ts",
    "reaction_added_event",
    "reaction_removed_event",
    "rich_text_blocks",
    "shortcut_body",
    "sign",
    "slash_command_body",
    "static_select",
    "text_input",
    "thread_broadcast_event",
    "url_verification_body",
    "users_select",
    "view_output",
    "view_submission_body",
]

# --------------------------------------------------------------------------------------------
# The workspace every default agrees on
# --------------------------------------------------------------------------------------------

TEAM_ID = "T0OPSRM0001"
TEAM_NAME = "Opsroom Test"
TEAM_DOMAIN = "opsroom-test"
API_APP_ID = "A0OPSRM0001"
BOT_ID = "B0OPSRM0001"
BOT_USER_ID = "U0OPSBOT001"
BOT_NAME = "opsroom"
BOT_TOKEN = "xoxb-1000000000001-2000000000002-FakeOpsroomBotToken0001"
# The deprecated verification token Slack still puts in every payload's `token` field.
VERIFICATION_TOKEN = "fAkEvErIfIcAtIoNtOkEn001"
SIGNING_SECRET = "e5c3b7f0a1d2c4b6987f0e1d2c3b4a59"
# What the bot token was granted, sent back in every Web API response's ``X-OAuth-Scopes``
# header as Slack does: slack-manifest.yaml's bot scopes, plus a few a workspace often adds.
BOT_SCOPES = (
    "commands", "chat:write", "chat:write.public", "channels:manage", "groups:write",
    "channels:read", "groups:read", "channels:history", "groups:history", "channels:join",
    "pins:write", "pins:read", "reactions:read", "reactions:write", "users:read",
    "users:read.email", "im:write", "files:write",
)

ALICE = "U0ALICE0001"
BOB = "U0BOB000002"
CAROL = "U0CAROL0003"
GENERAL_ID = "C0GENERAL01"
INCIDENTS_ID = "C0INCIDENT1"

# When the seeded workspace, channels and people "were created".
_SEED_CREATED = 1_700_000_000

_SEED_USERS: tuple[dict[str, Any], ...] = (
    {
        "user_id": ALICE,
        "name": "alice",
        "real_name": "Alice Smith",
        "display_name": "alice",
        "email": "alice@example.com",
        "title": "Site Reliability Engineer",
        "tz": "America/New_York",
        "tz_label": "Eastern Standard Time",
        "tz_offset": -18000,
        "is_admin": True,
    },
    {
        "user_id": BOB,
        "name": "bob",
        "real_name": "Bob Jones",
        "display_name": "bobby",
        "email": "bob@example.com",
        "title": "Backend Engineer",
        "tz": "Europe/Berlin",
        "tz_label": "Central European Time",
        "tz_offset": 3600,
    },
    {
        "user_id": CAROL,
        "name": "carol",
        "real_name": "Carol Tanaka",
        "display_name": "",
        "email": "carol@example.com",
        "title": "Support Lead",
        "tz": "Asia/Tokyo",
        "tz_label": "Japan Standard Time",
        "tz_offset": 32400,
    },
)
_SEED_USER_NAMES = {u["user_id"]: u["name"] for u in _SEED_USERS}
_SEED_CHANNEL_NAMES = {GENERAL_ID: "general", INCIDENTS_ID: "incidents"}

# Message subtypes Slack itself writes into a channel (joins, topic changes, pins...).
SYSTEM_SUBTYPES = frozenset(
    {
        "channel_join",
        "channel_leave",
        "channel_topic",
        "channel_purpose",
        "channel_name",
        "channel_archive",
        "channel_unarchive",
        "pinned_item",
        "unpinned_item",
    }
)

_ID_ALPHABET = string.ascii_uppercase + string.digits
_CHANNEL_NAME = re.compile(r"^[a-z0-9_-]+$")
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]+(::skin-tone-[2-6])?$")
_TRIGGER_ID = re.compile(r"^\d+\.\d+\.[0-9a-f]+$")
_MENTION = re.compile(r"<@([UW][A-Z0-9]+)(?:\|[^>]*)?>")

# --------------------------------------------------------------------------------------------
# Small shared helpers: ids, timestamps, cursors
# --------------------------------------------------------------------------------------------


class _TsSource:
    """Slack message timestamps: ``"<unix seconds>.<6 digits>"``, unique and strictly increasing."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._last_us = 0

    def next(self) -> str:
        us = max(int(self._clock() * 1_000_000), self._last_us + 1)
        self._last_us = us
        return f"{us // 1_000_000}.{us % 1_000_000:06d}"

    def observe(self, ts: str) -> None:
        """Never hand out a ts at or before one that was stored from elsewhere."""
        sec, frac = _ts_key(ts)
        self._last_us = max(self._last_us, sec * 1_000_000 + frac)


# One process-wide source, so event builders and fakes on the real clock never collide.
_GLOBAL_TS = _TsSource(time.time)


def new_ts() -> str:
    """A fresh message ``ts`` (e.g. ``"1764220000.000100"``), later than every one before it."""
    return _GLOBAL_TS.next()


def _ts_key(ts: str) -> tuple[int, int]:
    """Order ``ts`` strings exactly (floats lose the last microsecond digits)."""
    sec, _, frac = str(ts).partition(".")
    return int(sec or 0), int((frac + "000000")[:6])


def _random_id(prefix: str, rng: random.Random | None = None, length: int = 10) -> str:
    """Slack-looking ids: prefix + uppercase alphanumerics, e.g. ``C0A1B2C3D4E``."""
    rng = rng or random
    return prefix + "0" + "".join(rng.choice(_ID_ALPHABET) for _ in range(length - 1))


def _random_block_id(rng: random.Random | None = None) -> str:
    rng = rng or random
    return "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(5))


def new_trigger_id(issued_at: float | None = None) -> str:
    """A ``trigger_id`` as Slack puts in interactions: ``<digits>.<digits>.<hex>``.

    The middle part is the issue time in milliseconds, so ``FakeSlack`` can expire it the way
    Slack does (trigger ids are valid for 3 seconds and only once).
    """
    issued_ms = int((time.time() if issued_at is None else issued_at) * 1000)
    return f"{random.randint(10**10, 10**11 - 1)}.{issued_ms}.{uuid.uuid4().hex}"


def _new_event_id() -> str:
    return _random_id("Ev", length=9)


def _new_hash(rng: random.Random | None = None) -> str:
    """A view ``hash`` like ``"1764220000.a1B2c3D4"``."""
    rng = rng or random
    return f"{int(time.time())}.{''.join(rng.choice(string.ascii_letters) for _ in range(8))}"


def _encode_cursor(offset: int) -> str:
    return base64.b64encode(f"next:{offset}".encode()).decode()


def _decode_cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        kind, _, offset = base64.b64decode(cursor.encode(), validate=True).decode().partition(":")
        if kind != "next":
            raise ValueError(cursor)
        return int(offset)
    except ValueError as exc:
        raise SlackError("invalid_cursor") from exc


def _with_block_ids(blocks: Iterable[dict[str, Any]], rng: random.Random | None = None) -> list:
    """Slack gives every stored block a ``block_id``; keep the caller's, invent the rest."""
    out = copy.deepcopy(list(blocks))
    for block in out:
        block.setdefault("block_id", _random_block_id(rng))
    return out


def rich_text_blocks(text: str) -> list[dict[str, Any]]:
    """The ``rich_text`` block Slack attaches to a message typed by a person.

    ``<@U123>`` mentions become ``user`` elements, the rest ``text`` elements.
    """
    elements: list[dict[str, Any]] = []
    pos = 0
    for match in _MENTION.finditer(text):
        if match.start() > pos:
            elements.append({"type": "text", "text": text[pos : match.start()]})
        elements.append({"type": "user", "user_id": match.group(1)})
        pos = match.end()
    if pos < len(text):
        elements.append({"type": "text", "text": text[pos:]})
    return [
        {
            "type": "rich_text",
            "block_id": _random_block_id(),
            "elements": [{"type": "rich_text_section", "elements": elements}],
        }
    ]


def _bot_profile(bot_id: str, app_id: str, name: str, team_id: str) -> dict[str, Any]:
    """The ``bot_profile`` object Slack embeds in messages posted with a bot token."""
    return {
        "id": bot_id,
        "deleted": False,
        "name": name,
        "updated": _SEED_CREATED,
        "app_id": app_id,
        "icons": {
            "image_36": "https://a.slack-edge.com/80588/img/plugins/app/bot_36.png",
            "image_48": "https://a.slack-edge.com/80588/img/plugins/app/bot_48.png",
            "image_72": "https://a.slack-edge.com/80588/img/plugins/app/service_72.png",
        },
        "team_id": team_id,
    }


def _user_object(
    *,
    user_id: str,
    team_id: str,
    name: str,
    real_name: str,
    display_name: str = "",
    email: str | None = None,
    title: str = "",
    tz: str = "UTC",
    tz_label: str = "Coordinated Universal Time",
    tz_offset: int = 0,
    is_bot: bool = False,
    is_admin: bool = False,
    bot_id: str | None = None,
    api_app_id: str | None = None,
) -> dict[str, Any]:
    """A ``user`` object as ``users.info`` returns it."""
    avatar_hash = hashlib.md5(user_id.encode()).hexdigest()[:12]
    first, _, last = real_name.partition(" ")
    profile: dict[str, Any] = {
        "title": title,
        "phone": "",
        "skype": "",
        "real_name": real_name,
        "real_name_normalized": real_name,
        "display_name": display_name,
        "display_name_normalized": display_name,
        "fields": None,
        "status_text": "",
        "status_emoji": "",
        "status_emoji_display_info": [],
        "status_expiration": 0,
        "avatar_hash": avatar_hash,
        "first_name": first,
        "last_name": last,
        "status_text_canonical": "",
        "team": team_id,
    }
    for size in (24, 32, 48, 72, 192, 512):
        profile[f"image_{size}"] = (
            f"https://secure.gravatar.com/avatar/{avatar_hash}.jpg?s={size}&d=mp"
        )
    if email is not None:
        profile["email"] = email
    if is_bot:
        profile.update(bot_id=bot_id, api_app_id=api_app_id, always_active=True)
    return {
        "id": user_id,
        "team_id": team_id,
        "name": name,
        "deleted": False,
        "color": "9f69e7",
        "real_name": real_name,
        "tz": tz,
        "tz_label": tz_label,
        "tz_offset": tz_offset,
        "profile": profile,
        "is_admin": is_admin,
        "is_owner": False,
        "is_primary_owner": False,
        "is_restricted": False,
        "is_ultra_restricted": False,
        "is_bot": is_bot,
        "is_app_user": False,
        "updated": _SEED_CREATED,
        "is_email_confirmed": not is_bot,
        "who_can_share_contact_card": "EVERYONE",
    }


def view_output(
    view: dict[str, Any],
    *,
    view_id: str | None = None,
    team_id: str = TEAM_ID,
    api_app_id: str = API_APP_ID,
    bot_id: str = BOT_ID,
    view_hash: str | None = None,
    previous_view_id: str | None = None,
    root_view_id: str | None = None,
    state_values: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A view as Slack returns it from ``views.open`` and sends it in interaction payloads.

    ``view`` is what the app passed (``type``, ``title``, ``blocks``, ``callback_id``...) or an
    earlier output; ids, hash and state not given are taken from it, then invented.
    """
    view_id = view_id or view.get("id") or _random_id("V")
    kind = view.get("type", "modal")
    out: dict[str, Any] = {
        "id": view_id,
        "team_id": team_id,
        "type": kind,
        "blocks": _with_block_ids(view.get("blocks") or []),
        "private_metadata": view.get("private_metadata") or "",
        "callback_id": view.get("callback_id") or "",
        "state": {
            "values": copy.deepcopy(
                state_values
                if state_values is not None
                else (view.get("state") or {}).get("values", {})
            )
        },
        "hash": view_hash or view.get("hash") or _new_hash(),
        "title": view.get("title"),
        "clear_on_close": bool(view.get("clear_on_close", False)),
        "notify_on_close": bool(view.get("notify_on_close", False)),
        "close": view.get("close"),
        "submit": view.get("submit"),
        "previous_view_id": previous_view_id or view.get("previous_view_id"),
        "root_view_id": root_view_id or view.get("root_view_id") or view_id,
        "app_id": api_app_id,
        "external_id": view.get("external_id") or "",
        "app_installed_team_id": team_id,
        "bot_id": bot_id,
    }
    if kind == "home":
        for key in ("close", "submit", "clear_on_close", "notify_on_close"):
            out.pop(key)
        if out["title"] is None:
            out.pop("title")
    return out


# --------------------------------------------------------------------------------------------
# Records, errors, failure injection
# --------------------------------------------------------------------------------------------


class SlackError(Exception):
    """Answer ``{"ok": false, "error": <code>, ...extra}``, the way every Web API method fails."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> dict[str, Any]:
        return {"ok": False, "error": self.error, **self.extra}


def _missing(name: str) -> SlackError:
    return SlackError(
        "invalid_arguments",
        response_metadata={"messages": [f"[ERROR] missing required field: {name}"]},
    )


@dataclass
class Call:
    """One Web API request the fake received, whatever became of it.

    ``params`` merges query string and form/JSON body, minus ``token``; JSON-valued form fields
    (``blocks``, ``view``...) are decoded. ``headers`` leave out ``Authorization``.
    ``injected`` is true when ``fail_next``/``outage`` answered instead of the method.
    """

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    http_method: str
    content_type: str
    status: int = 200
    response: Any = None
    injected: bool = False

    @property
    def ok(self) -> bool:
        return isinstance(self.response, dict) and bool(self.response.get("ok"))


@dataclass
class _Failure:
    status: int
    retry_after: int | None
    error: str | None
    json_body: bool
    remaining: int | None  # None: until ended

    def take(self) -> bool:
        if self.remaining is None:
            return True
        if self.remaining <= 0:
            return False
        self.remaining -= 1
        return True


class Outage:
    """Every Web API method fails while this is active.

    Returned by ``FakeSlack.outage``; active from creation for ``calls`` calls (or until ended
    when ``calls`` is None). Works as a context manager: the outage ends when the block exits.
    """

    def __init__(self, failure: _Failure) -> None:
        self._failure = failure
        self._ended = False

    @property
    def active(self) -> bool:
        return not self._ended and (self._failure.remaining is None or self._failure.remaining > 0)

    def end(self) -> None:
        self._ended = True

    def _take(self) -> _Failure | None:
        if self._ended or not self._failure.take():
            return None
        return self._failure

    def __enter__(self) -> Outage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()


_HTTP_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def _failure_response(failure: _Failure) -> tuple[web.Response, Any]:
    """What Slack's edge answers when rate limiting (429 + Retry-After) or failing (5xx)."""
    headers = {}
    if failure.retry_after is not None:
        headers["Retry-After"] = str(failure.retry_after)
    if failure.status == 429:
        body: Any = {"ok": False, "error": failure.error or "ratelimited"}
        headers.setdefault("Retry-After", "1")
        return web.json_response(body, status=429, headers=headers), body
    if failure.status >= 500 and not failure.json_body:
        title = f"{failure.status} {_HTTP_REASONS.get(failure.status, 'Error')}"
        text = (
            f"<html><head><title>{title}</title></head><body><h1>{title}</h1>"
            "<p>Slack is having trouble. Please try again.</p></body></html>"
        )
        response = web.Response(
            text=text, status=failure.status, content_type="text/html", headers=headers
        )
        return response, text
    body = {"ok": False, "error": failure.error or "internal_error"}
    return web.json_response(body, status=failure.status, headers=headers), body


# --------------------------------------------------------------------------------------------
# Request parameters, read the way Slack reads them
# --------------------------------------------------------------------------------------------

# Form-encoded callers send these as JSON strings; Slack decodes them.
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")

# Slack's documented Block Kit length limits, in characters (docs.slack.dev, Block Kit).
_TEXT_LIMITS = {"header": 150, "section": 3000, "section_field": 2000, "context": 3000}
_ELEMENT_TEXT_MAX = {"button": 75}
_OPTION_TEXT_MAX = 75
_INPUT_TEXT_MAX = 2000  # an input block's label and hint
_FIELDS_MAX = 10
_PRIVATE_METADATA_MAX = 3000


def _text_of(obj: Any) -> str:
    return str(obj.get("text", "")) if isinstance(obj, dict) else ""


def _block_problems(blocks: list[dict[str, Any]], where: str = "blocks") -> list[str]:
    """What Slack refuses in ``blocks``: texts over the documented limits, too many fields."""
    problems: list[str] = []

    def over(text: str, limit: int, pointer: str) -> None:
        if len(text) > limit:
            problems.append(
                f"[ERROR] must be less than {limit + 1} characters [json-pointer:/{pointer}]"
            )

    for i, block in enumerate(blocks):
        at = f"{where}/{i}"
        kind = block.get("type")
        if kind == "header":
            over(_text_of(block.get("text")), _TEXT_LIMITS["header"], f"{at}/text/text")
        elif kind == "section":
            if "text" in block:
                over(_text_of(block["text"]), _TEXT_LIMITS["section"], f"{at}/text/text")
            fields = block.get("fields") or []
            if len(fields) > _FIELDS_MAX:
                problems.append(
                    f"[ERROR] must provide at most 10 items [json-pointer:/{at}/fields]"
                )
            for j, item in enumerate(fields):
                over(_text_of(item), _TEXT_LIMITS["section_field"], f"{at}/fields/{j}/text")
        elif kind == "context":
            for j, item in enumerate(block.get("elements") or []):
                over(_text_of(item), _TEXT_LIMITS["context"], f"{at}/elements/{j}/text")
        elif kind == "input":
            over(_text_of(block.get("label")), _INPUT_TEXT_MAX, f"{at}/label/text")
            over(_text_of(block.get("hint")), _INPUT_TEXT_MAX, f"{at}/hint/text")
        elements = block.get("elements") if kind == "actions" else [block.get("element")]
        for j, element in enumerate(elements or []):
            if not isinstance(element, dict):
                continue
            limit = _ELEMENT_TEXT_MAX.get(str(element.get("type")))
            if limit is not None:
                over(_text_of(element.get("text")), limit, f"{at}/elements/{j}/text/text")
            for k, option in enumerate(element.get("options") or []):
                if isinstance(option, dict):
                    over(_text_of(option.get("text")), _OPTION_TEXT_MAX, f"{at}/options/{k}")
    return problems


class _Params:
    """The arguments of one call: strings from query/form, typed values from JSON bodies."""

    def __init__(self, raw: dict[str, Any]) -> None:
        self.raw = raw

    def get(self, name: str) -> Any:
        value = self.raw.get(name)
        return None if value is None or value == "" else value

    def text(self, name: str, *, default: str | None = None) -> str | None:
        value = self.get(name)
        return default if value is None else str(value)

    def required(self, name: str, error: str | None = None) -> str:
        value = self.text(name)
        if value is None:
            raise SlackError(error) if error else _missing(name)
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        value = self.get(name)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        return str(value).lower() in ("1", "true", "yes")

    def integer(self, name: str, default: int) -> int:
        value = self.get(name)
        try:
            return default if value is None else int(value)
        except (TypeError, ValueError) as exc:
            raise SlackError("invalid_arguments") from exc

    def ids(self, name: str) -> list[str]:
        """A comma-separated list (``users=U1,U2``) or a JSON array."""
        value = self.get(name)
        if value is None:
            return []
        if isinstance(value, list):
            return [str(v) for v in value]
        return [v.strip() for v in str(value).split(",") if v.strip()]

    def blocks(self, name: str = "blocks", max_blocks: int = 50) -> list[dict[str, Any]] | None:
        value = self.get(name)
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or len(value) > max_blocks
            or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in value)
        ):
            raise SlackError(
                "invalid_blocks",
                response_metadata={"messages": [f"[ERROR] invalid `{name}` value"]},
            )
        problems = _block_problems(value, name)
        if problems:
            raise SlackError("invalid_blocks", response_metadata={"messages": problems})
        return value


# --------------------------------------------------------------------------------------------
# Workspace state
# --------------------------------------------------------------------------------------------


_EMPTY_TEXT_ATTR = {"value": "", "creator": "", "last_set": 0}


@dataclass
class _Channel:
    """One conversation: public/private channel, DM (``is_im``) or group DM (``is_mpim``)."""

    id: str
    name: str
    created: int
    creator: str
    is_private: bool = False
    is_im: bool = False
    is_mpim: bool = False
    is_general: bool = False
    is_archived: bool = False
    im_user: str | None = None
    members: list[str] = field(default_factory=list)
    topic: dict[str, Any] = field(default_factory=lambda: dict(_EMPTY_TEXT_ATTR))
    purpose: dict[str, Any] = field(default_factory=lambda: dict(_EMPTY_TEXT_ATTR))
    previous_names: list[str] = field(default_factory=list)
    updated_ms: int = 0
    messages: list[dict[str, Any]] = field(default_factory=list)  # oldest first, replies too
    pins: list[dict[str, Any]] = field(default_factory=list)  # {"ts", "created", "created_by"}

    def to_api(self, viewer: str, team_id: str, *, num_members: bool = False) -> dict[str, Any]:
        """The conversation object of ``conversations.info`` / ``.create`` / ``.list``."""
        if self.is_im:
            return {
                "id": self.id,
                "created": self.created,
                "is_archived": self.is_archived,
                "is_im": True,
                "is_org_shared": False,
                "context_team_id": team_id,
                "updated": self.updated_ms,
                "user": self.im_user,
                "is_user_deleted": False,
                "priority": 0,
            }
        out: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_mpim,
            "is_group": False,
            "is_im": False,
            "is_mpim": self.is_mpim,
            "is_private": self.is_private,
            "created": self.created,
            "is_archived": self.is_archived,
            "is_general": self.is_general,
            "unlinked": 0,
            "name_normalized": self.name,
            "is_shared": False,
            "is_org_shared": False,
            "is_pending_ext_shared": False,
            "pending_shared": [],
            "context_team_id": team_id,
            "updated": self.updated_ms,
            "parent_conversation": None,
            "creator": self.creator,
            "is_ext_shared": False,
            "shared_team_ids": [team_id],
            "pending_connected_team_ids": [],
            "is_member": viewer in self.members,
            "topic": dict(self.topic),
            "purpose": dict(self.purpose),
            "previous_names": list(self.previous_names),
            "priority": 0,
        }
        if viewer in self.members:
            out["last_read"] = self.messages[-1]["ts"] if self.messages else "0000000000.000000"
        if num_members:
            out["num_members"] = len(self.members)
        return out

    def find(self, ts: str | None) -> dict[str, Any] | None:
        for message in self.messages:
            if message["ts"] == ts:
                return message
        return None

    def replies(self, parent_ts: str) -> list[dict[str, Any]]:
        return [
            m for m in self.messages if m.get("thread_ts") == parent_ts and m["ts"] != parent_ts
        ]


def _with_metadata(messages: list[dict[str, Any]], include: bool) -> list[dict[str, Any]]:
    """Copies of `messages`; Slack returns message metadata only with include_all_metadata."""
    copies = copy.deepcopy(messages)
    if not include:
        for m in copies:
            m.pop("metadata", None)
    return copies


def _is_top_level(message: dict[str, Any]) -> bool:
    """In channel history: not a thread reply, unless broadcast to the channel."""
    thread_ts = message.get("thread_ts")
    return (
        thread_ts is None
        or thread_ts == message["ts"]
        or (message.get("subtype") == "thread_broadcast")
    )


def _in_range(ts: str, oldest: str | None, latest: str | None, inclusive: bool) -> bool:
    """``conversations.history``'s window: strictly between, bounds only when ``inclusive``."""
    key = _ts_key(ts)
    if oldest is not None:
        low = _ts_key(oldest)
        if key < low or (key == low and not inclusive):
            return False
    if latest is not None:
        high = _ts_key(latest)
        if key > high or (key == high and not inclusive):
            return False
    return True


# --------------------------------------------------------------------------------------------
# The fake Web API
# --------------------------------------------------------------------------------------------

_Handler = Callable[["FakeSlack", _Params], dict[str, Any]]
_METHODS: dict[str, _Handler] = {}


def _api(name: str) -> Callable[[_Handler], _Handler]:
    """Register a handler for the Web API method ``name`` (e.g. ``chat.postMessage``)."""

    def register(handler: _Handler) -> _Handler:
        _METHODS[name] = handler
        return handler

    return register


class FakeSlack:
    """A Slack workspace behind a local Web API server (``POST/GET /api/<method>``).

    Seeded with the bot (``bot_user_id``, ``bot_id``), three people (``ALICE``, ``BOB``,
    ``CAROL``) and two public channels the bot is in: ``#general`` (``general_id``) and
    ``#incidents`` (``incidents_id``). It also accepts POSTs to ``/hooks/...`` so that
    ``response_url``s made by ``new_response_url()`` are captured in ``response_posts``.

    Scopes are not enforced: the bot may post to public channels it is not in (as with
    ``chat:write.public``) but not read them. ``scopes`` is only what every response's
    ``X-OAuth-Scopes`` header says was granted. ``clock`` drives message ``ts`` values;
    ``trigger_ttl`` is how long a ``trigger_id`` stays valid (Slack: 3 seconds; None: forever).
    """

    def __init__(
        self,
        *,
        token: str = BOT_TOKEN,
        team_id: str = TEAM_ID,
        team_name: str = TEAM_NAME,
        team_domain: str = TEAM_DOMAIN,
        api_app_id: str = API_APP_ID,
        bot_id: str = BOT_ID,
        bot_user_id: str = BOT_USER_ID,
        bot_name: str = BOT_NAME,
        clock: Callable[[], float] | None = None,
        trigger_ttl: float | None = 3.0,
        seed: int = 0,
        latency: float = 0.0,
        scopes: Iterable[str] = BOT_SCOPES,
    ) -> None:
        self.token = token
        self.latency = latency  # seconds each Web API call takes before it is carried out
        self.scopes = list(scopes)
        self.team_id = team_id
        self.team_name = team_name
        self.team_domain = team_domain
        self.api_app_id = api_app_id
        self.bot_id = bot_id
        self.bot_user_id = bot_user_id
        self.bot_name = bot_name
        self.trigger_ttl = trigger_ttl
        self._clock = clock or time.time
        self._ts = _GLOBAL_TS if clock is None else _TsSource(clock)
        self._rng = random.Random(seed)

        self.calls: list[Call] = []
        self.users: dict[str, dict[str, Any]] = {}
        self.views: dict[str, dict[str, Any]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.response_posts: list[dict[str, Any]] = []
        self._channels: dict[str, _Channel] = {}
        # Files of the external upload flow, by id: name, length, title, the bytes once
        # uploaded, and whether files.completeUploadExternal finished them.
        self.files: dict[str, dict[str, Any]] = {}
        self._used_triggers: set[str] = set()
        self._modal_stack: list[str] = []
        self._home_views: dict[str, str] = {}
        self._failures: dict[str, list[_Failure]] = {}
        self._outages: list[Outage] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

        self._seed()

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> FakeSlack:
        """Listen on a free port of 127.0.0.1."""
        app = web.Application()
        app.router.add_route("*", "/api/{method}", self._handle_api)
        app.router.add_post("/hooks/{path:.*}", self._handle_hook)
        app.router.add_post("/upload/v1/{file_id}", self._handle_upload)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        await web.SockSite(self._runner, sock).start()
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeSlack:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("FakeSlack is not started")
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """The ``base_url`` for ``AsyncWebClient`` (and ``SLACK_API_URL``), trailing slash kept."""
        return f"{self.base_url}/api/"

    # -- seeding and test helpers ------------------------------------------------------------

    def _seed(self) -> None:
        self.users[self.bot_user_id] = _user_object(
            user_id=self.bot_user_id,
            team_id=self.team_id,
            name=self.bot_name,
            real_name=self.bot_name.capitalize(),
            tz="America/Los_Angeles",
            tz_label="Pacific Standard Time",
            tz_offset=-28800,
            is_bot=True,
            bot_id=self.bot_id,
            api_app_id=self.api_app_id,
        )
        for user in _SEED_USERS:
            self.add_user(**user)
        people = [u["user_id"] for u in _SEED_USERS]
        self.general_id = self.add_channel(
            "general",
            channel_id=GENERAL_ID,
            members=[*people, self.bot_user_id],
            creator=ALICE,
            is_general=True,
            purpose="This is the one channel that will always include everyone.",
        )["id"]
        self.incidents_id = self.add_channel(
            "incidents",
            channel_id=INCIDENTS_ID,
            members=[ALICE, BOB, self.bot_user_id],
            creator=ALICE,
            purpose="Incident declarations and announcements",
        )["id"]

    def add_user(
        self,
        user_id: str | None = None,
        *,
        name: str,
        real_name: str,
        display_name: str = "",
        email: str | None = None,
        title: str = "",
        tz: str = "UTC",
        tz_label: str = "Coordinated Universal Time",
        tz_offset: int = 0,
        is_admin: bool = False,
    ) -> dict[str, Any]:
        """Add a person to the workspace; returns their ``users.info`` object."""
        user_id = user_id or _random_id("U", self._rng)
        self.users[user_id] = _user_object(
            user_id=user_id,
            team_id=self.team_id,
            name=name,
            real_name=real_name,
            display_name=display_name,
            email=email,
            title=title,
            tz=tz,
            tz_label=tz_label,
            tz_offset=tz_offset,
            is_admin=is_admin,
        )
        return copy.deepcopy(self.users[user_id])

    def add_channel(
        self,
        name: str,
        *,
        channel_id: str | None = None,
        is_private: bool = False,
        members: Iterable[str] = (),
        creator: str = ALICE,
        is_general: bool = False,
        topic: str = "",
        purpose: str = "",
    ) -> dict[str, Any]:
        """Create a channel directly (no API call, no system messages); returns its object."""
        prefix = "G" if is_private else "C"
        channel = _Channel(
            id=channel_id or _random_id(prefix, self._rng),
            name=name,
            created=_SEED_CREATED,
            creator=creator,
            is_private=is_private,
            is_general=is_general,
            members=list(dict.fromkeys(members)),
            updated_ms=_SEED_CREATED * 1000,
        )
        for attr, value in (("topic", topic), ("purpose", purpose)):
            if value:
                setattr(
                    channel, attr, {"value": value, "creator": creator, "last_set": _SEED_CREATED}
                )
        self._channels[channel.id] = channel
        return channel.to_api(self.bot_user_id, self.team_id, num_members=True)

    def add_message(
        self,
        channel_id: str,
        text: str,
        *,
        user: str = ALICE,
        thread_ts: str | None = None,
        ts: str | None = None,
    ) -> dict[str, Any]:
        """Store a message a person typed (as if seen by Slack), e.g. before sending its event.

        Returns the stored message; its ``ts`` can be passed to ``message_event`` /
        ``reaction_added_event``.
        """
        channel = self._get_channel(channel_id)
        if ts is None:
            ts = self._ts.next()
        else:
            self._ts.observe(ts)
        message: dict[str, Any] = {
            "client_msg_id": str(uuid.uuid4()),
            "type": "message",
            "text": text,
            "user": user,
            "ts": ts,
            "blocks": rich_text_blocks(text),
            "team": self.team_id,
        }
        self._store(channel, message, thread_ts)
        return copy.deepcopy(message)

    def channel(self, channel_id: str) -> dict[str, Any]:
        """The ``conversations.info`` object of a channel (``KeyError`` if unknown)."""
        return self._channels[channel_id].to_api(self.bot_user_id, self.team_id, num_members=True)

    def channel_by_name(self, name: str) -> dict[str, Any] | None:
        """The channel called ``name`` (``#`` optional), or None."""
        name = name.lstrip("#")
        for channel in self._channels.values():
            if channel.name == name and not channel.is_im:
                return channel.to_api(self.bot_user_id, self.team_id, num_members=True)
        return None

    def members(self, channel_id: str) -> list[str]:
        return list(self._channels[channel_id].members)

    def join(self, channel_id: str, user: str) -> None:
        """A person joins a channel themselves (the app then gets ``member_joined_channel``)."""
        channel = self._channels[channel_id]
        if user not in channel.members:
            channel.members.append(user)

    def archive(self, channel_id: str, user: str) -> None:
        """A person archives a channel from Slack (posting there then answers ``is_archived``)."""
        channel = self._channels[channel_id]
        self._system_message(channel, "channel_archive", user, "archived the channel")
        channel.is_archived = True

    def messages(
        self, channel_id: str, thread_ts: str | None = None, *, system: bool = False
    ) -> list[dict[str, Any]]:
        """Messages oldest first: the channel's top level, or the replies under ``thread_ts``.

        The thread parent itself is not included. Messages Slack writes on its own (joins,
        topic changes, "pinned a message"...) are left out unless ``system`` is true.
        """
        channel = self._channels[channel_id]
        if thread_ts is None:
            found = [m for m in channel.messages if _is_top_level(m)]
        else:
            found = channel.replies(thread_ts)
        if not system:
            found = [m for m in found if m.get("subtype") not in SYSTEM_SUBTYPES]
        return copy.deepcopy(found)

    def message(self, channel_id: str, ts: str) -> dict[str, Any] | None:
        found = self._channels[channel_id].find(ts)
        return copy.deepcopy(found)

    def pins(self, channel_id: str) -> list[dict[str, Any]]:
        """The pinned messages of a channel, in the order they were pinned."""
        channel = self._channels[channel_id]
        return [copy.deepcopy(channel.find(pin["ts"])) for pin in channel.pins]

    def dm_channel(self, user_id: str) -> str | None:
        """The id of the bot's DM with ``user_id``, if one was opened."""
        for channel in self._channels.values():
            if channel.is_im and channel.im_user == user_id:
                return channel.id
        return None

    def home_view(self, user_id: str) -> dict[str, Any] | None:
        view_id = self._home_views.get(user_id)
        return copy.deepcopy(self.views[view_id]) if view_id else None

    def calls_to(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method]

    def new_response_url(self, kind: str = "commands") -> str:
        """A ``response_url`` on this fake; what the app POSTs there lands in ``response_posts``."""
        return (
            f"{self.base_url}/hooks/{kind}/{self.team_id}/"
            f"{self._rng.randint(10**12, 10**13 - 1)}/{uuid.uuid4().hex[:24]}"
        )

    # -- failure injection -------------------------------------------------------------------

    def fail_next(
        self,
        method: str,
        n: int = 1,
        *,
        status: int = 429,
        retry_after: int | None = 1,
        error: str | None = None,
        json_body: bool = False,
    ) -> None:
        """Make the next ``n`` calls of ``method`` fail without touching state.

        429 answers ``{"ok": false, "error": "ratelimited"}`` with ``Retry-After``; 5xx answers
        an HTML error page (``json_body=True``: ``{"ok": false, "error": "internal_error"}``);
        any other status answers JSON ``{"ok": false, "error": error}``.
        """
        self._failures.setdefault(method, []).append(
            _Failure(status, retry_after if status == 429 else None, error, json_body, n)
        )

    def outage(
        self,
        calls: int | None = None,
        *,
        status: int = 503,
        retry_after: int | None = None,
        json_body: bool = False,
    ) -> Outage:
        """Fail every method: for the next ``calls`` calls, or (None) until the outage ends.

        ``with fake.outage(): ...`` ends it on exit; ``fake.outage(3)`` needs no ending.
        """
        outage = Outage(_Failure(status, retry_after, None, json_body, calls))
        self._outages.append(outage)
        return outage

    def clear_failures(self) -> None:
        self._failures.clear()
        for outage in self._outages:
            outage.end()
        self._outages.clear()

    def _take_failure(self, method: str) -> _Failure | None:
        for outage in self._outages:
            failure = outage._take()
            if failure is not None:
                return failure
        for failure in self._failures.get(method, []):
            if failure.take():
                return failure
        return None

    # -- HTTP plumbing -----------------------------------------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        raw, bad_json = await self._read_params(request)
        token = self._extract_token(request, raw)
        call = Call(
            method=method,
            params=raw,
            headers={k: v for k, v in request.headers.items() if k.lower() != "authorization"},
            http_method=request.method,
            content_type=request.content_type,
        )
        self.calls.append(call)
        if self.latency:
            await asyncio.sleep(self.latency)

        failure = self._take_failure(method)
        if failure is not None:
            response, body = _failure_response(failure)
            call.status, call.response, call.injected = response.status, body, True
            return response

        if bad_json:
            body = SlackError("invalid_json").body()
        elif method not in _METHODS:
            body = {"ok": False, "error": "unknown_method", "req_method": method}
        elif token is None:
            body = SlackError("not_authed").body()
        elif token != self.token:
            body = SlackError("invalid_auth").body()
        else:
            try:
                body = {"ok": True, **_METHODS[method](self, _Params(raw))}
            except SlackError as exc:
                body = exc.body()
        call.response = body
        headers = {"X-Slack-Req-Id": uuid.uuid4().hex}
        if token == self.token:  # an unknown token has no grants to report
            headers["X-OAuth-Scopes"] = ",".join(self.scopes)
        return web.json_response(body, headers=headers)

    @staticmethod
    async def _read_params(request: web.Request) -> tuple[dict[str, Any], bool]:
        """Merge the query string with a form-encoded, multipart or JSON body."""
        params: dict[str, Any] = dict(request.query)
        bad_json = False
        if request.method == "POST" and request.can_read_body:
            if request.content_type == "application/json":
                try:
                    body = await request.json()
                except ValueError:
                    body, bad_json = {}, True
                if isinstance(body, dict):
                    params.update(body)
                else:
                    bad_json = True
            else:
                form = await request.post()
                for key, value in form.items():
                    if isinstance(value, web.FileField):
                        params[key] = {"filename": value.filename, "content": value.file.read()}
                    else:
                        params[key] = value
        for key in _JSON_FIELDS:
            value = params.get(key)
            if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
                try:
                    params[key] = json.loads(value)
                except ValueError:
                    pass  # left as a string; the method answers invalid_blocks/arguments
        return params, bad_json

    @staticmethod
    def _extract_token(request: web.Request, params: dict[str, Any]) -> str | None:
        """Bearer token from ``Authorization``, else the ``token`` argument Slack also accepts."""
        body_token = params.pop("token", None)
        header = request.headers.get("Authorization", "")
        if header.startswith("Bearer ") and header[7:].strip():
            return header[7:].strip()
        return str(body_token) if body_token else None

    async def _handle_hook(self, request: web.Request) -> web.StreamResponse:
        """A ``response_url`` / webhook POST: recorded, answered ``ok`` like hooks.slack.com."""
        text = await request.text()
        try:
            body: Any = json.loads(text)
        except ValueError:
            body = text
        self.response_posts.append({"url": str(request.url), "body": body})
        return web.Response(text="ok", content_type="text/html")

    # -- state helpers used by the methods ---------------------------------------------------

    def _now(self) -> int:
        return int(self._clock())

    def _get_channel(self, channel_id: str | None) -> _Channel:
        channel = self._channels.get(channel_id or "")
        if channel is None:
            raise SlackError("channel_not_found")
        return channel

    def _visible(self, p: _Params, name: str = "channel") -> _Channel:
        """A channel the bot may know of: private ones only when it is a member."""
        channel = self._get_channel(p.required(name, "channel_not_found"))
        if (channel.is_private or channel.is_im) and self.bot_user_id not in channel.members:
            raise SlackError("channel_not_found")
        return channel

    def _readable(self, p: _Params) -> _Channel:
        """A channel whose history the bot may read: it must be a member."""
        channel = self._visible(p)
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        return channel

    def _writable(self, channel: _Channel) -> _Channel:
        if channel.is_archived:
            raise SlackError("is_archived")
        return channel

    def _message_target(self, value: str | None) -> _Channel:
        """``chat.postMessage``'s ``channel``: an id, a ``#name``, or a user id (their DM)."""
        if not value:
            raise SlackError("channel_not_found")
        if value in self._channels:
            channel = self._channels[value]
        elif value in self.users and not self.users[value]["is_bot"]:
            channel = self._open_dm(value)[0]
        else:
            found = self.channel_by_name(value)
            if found is None:
                raise SlackError("channel_not_found")
            channel = self._channels[found["id"]]
        if (channel.is_private or channel.is_im) and self.bot_user_id not in channel.members:
            raise SlackError("channel_not_found")
        return self._writable(channel)

    def _message(self, channel: _Channel, ts: str | None) -> dict[str, Any]:
        message = channel.find(ts)
        if message is None:
            raise SlackError("message_not_found")
        return message

    def _store(self, channel: _Channel, message: dict[str, Any], thread_ts: str | None) -> None:
        """Append a message; a reply joins the thread of ``thread_ts`` (or of its parent)."""
        if thread_ts:
            parent = channel.find(thread_ts)
            if parent is not None and parent.get("thread_ts") not in (None, parent["ts"]):
                # Replying to a reply puts the message in the parent's thread.
                thread_ts = parent["thread_ts"]
                parent = channel.find(thread_ts)
            message["thread_ts"] = thread_ts
            if parent is not None:
                message["parent_user_id"] = parent.get("user") or parent.get("bot_id")
        channel.messages.append(message)
        channel.updated_ms = int(self._clock() * 1000)
        if thread_ts and channel.find(thread_ts) is not None:
            self._refresh_thread(channel, thread_ts)

    def _refresh_thread(self, channel: _Channel, parent_ts: str) -> None:
        """Keep a parent's ``reply_count``/``reply_users``/``latest_reply`` true to its thread."""
        parent = channel.find(parent_ts)
        if parent is None:
            return
        replies = channel.replies(parent_ts)
        if not replies:
            for key in (
                "reply_count",
                "reply_users_count",
                "latest_reply",
                "reply_users",
                "is_locked",
                "subscribed",
            ):
                parent.pop(key, None)
            if parent.get("subtype") != "tombstone":
                parent.pop("thread_ts", None)
            return
        users = list(dict.fromkeys(r.get("user") or r.get("bot_id") for r in replies))
        parent.update(
            thread_ts=parent_ts,
            reply_count=len(replies),
            reply_users_count=len(users),
            latest_reply=replies[-1]["ts"],
            reply_users=users,
            is_locked=False,
            subscribed=False,
        )

    def _system_message(
        self, channel: _Channel, subtype: str, user: str, text: str, **extra: Any
    ) -> None:
        """What Slack writes into a channel itself (``channel_join``, ``channel_topic``...)."""
        message = {
            "type": "message",
            "subtype": subtype,
            "ts": self._ts.next(),
            "user": user,
            "text": text,
            **extra,
        }
        self._store(channel, message, None)

    def _bot_message(
        self,
        *,
        text: str,
        blocks: list[dict[str, Any]] | None,
        attachments: Any,
        metadata: Any,
    ) -> dict[str, Any]:
        """A message as Slack stores one posted with the bot token."""
        message: dict[str, Any] = {
            "user": self.bot_user_id,
            "type": "message",
            "ts": self._ts.next(),
            "bot_id": self.bot_id,
            "app_id": self.api_app_id,
            "text": text,
            "team": self.team_id,
            "bot_profile": _bot_profile(self.bot_id, self.api_app_id, self.bot_name, self.team_id),
        }
        if blocks is not None:
            message["blocks"] = _with_block_ids(blocks, self._rng)
        if attachments:
            message["attachments"] = [
                {"id": i + 1, **a} for i, a in enumerate(attachments) if isinstance(a, dict)
            ]
        if metadata:
            message["metadata"] = copy.deepcopy(metadata)
        return message

    @staticmethod
    def _message_content(p: _Params) -> tuple[str, list[dict[str, Any]] | None, Any]:
        text = p.text("text", default="") or ""
        blocks = p.blocks()
        attachments = p.get("attachments")
        if not text and not blocks and not attachments:
            raise SlackError("no_text")
        if len(text) > 40_000:
            raise SlackError("msg_too_long")
        return text, blocks, attachments

    def _check_name(self, name: str | None, *, current: _Channel | None = None) -> str:
        """Slack's channel naming rules, with the error codes it uses for each."""
        if not name:
            raise SlackError("invalid_name_required")
        if len(name) > 80:
            raise SlackError("invalid_name_maxlength")
        if not _CHANNEL_NAME.match(name):
            raise SlackError("invalid_name_specials")
        if not re.search(r"[a-z0-9]", name):
            raise SlackError("invalid_name_punctuation")
        for other in self._channels.values():
            if other.name == name and other is not current and not other.is_im:
                raise SlackError("name_taken")
        return name

    def _open_dm(self, user_id: str) -> tuple[_Channel, bool]:
        """The bot's DM with ``user_id``, created on first use; also says if it existed."""
        existing = self.dm_channel(user_id)
        if existing is not None:
            return self._channels[existing], True
        channel = _Channel(
            id=_random_id("D", self._rng),
            name=user_id,
            created=self._now(),
            creator=self.bot_user_id,
            is_private=True,
            is_im=True,
            im_user=user_id,
            members=[self.bot_user_id, user_id],
            updated_ms=int(self._clock() * 1000),
        )
        self._channels[channel.id] = channel
        return channel, False

    def _use_trigger(self, p: _Params) -> None:
        """``views.open``/``views.push`` need a fresh, unused ``trigger_id``."""
        trigger = p.text("trigger_id") or p.text("interactivity_pointer")
        if trigger is None:
            raise _missing("trigger_id")
        if not _TRIGGER_ID.match(trigger):
            raise SlackError("invalid_trigger_id")
        if trigger in self._used_triggers:
            raise SlackError("exchanged_trigger_id")
        issued_ms = int(trigger.split(".")[1])
        if (
            self.trigger_ttl is not None
            and issued_ms > 10**12  # a millisecond timestamp, as new_trigger_id() makes
            and time.time() - issued_ms / 1000 > self.trigger_ttl
        ):
            raise SlackError("expired_trigger_id")
        self._used_triggers.add(trigger)

    def _view_arg(
        self, p: _Params, *, kinds: tuple[str, ...], current_id: str | None = None
    ) -> dict[str, Any]:
        view = p.get("view")
        if view is None:
            raise _missing("view")
        problems = []
        if not isinstance(view, dict):
            problems.append("[ERROR] `view` must be a JSON object")
        else:
            if view.get("type") not in kinds:
                problems.append(
                    f"[ERROR] `type` must be one of {list(kinds)} [json-pointer:/view/type]"
                )
            if view.get("type") == "modal" and not view.get("title"):
                problems.append("[ERROR] missing required field: title [json-pointer:/view]")
            blocks = view.get("blocks")
            if (
                not isinstance(blocks, list)
                or len(blocks) > 100
                or not all(isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks)
            ):
                problems.append("[ERROR] invalid `blocks` [json-pointer:/view/blocks]")
            else:
                problems += _block_problems(blocks, "view/blocks")
            if len(str(view.get("private_metadata") or "")) > _PRIVATE_METADATA_MAX:
                problems.append(
                    "[ERROR] must be less than 3001 characters "
                    "[json-pointer:/view/private_metadata]"
                )
        if problems:
            raise SlackError("invalid_arguments", response_metadata={"messages": problems})
        assert isinstance(view, dict)
        external_id = view.get("external_id")
        if external_id and any(
            v["external_id"] == external_id and v["id"] != current_id for v in self.views.values()
        ):
            raise SlackError("duplicate_external_id")
        return view

    def _new_view(self, view: dict[str, Any], **ids: Any) -> dict[str, Any]:
        out = view_output(
            view,
            view_id=ids.pop("view_id", None) or _random_id("V", self._rng),
            team_id=self.team_id,
            api_app_id=self.api_app_id,
            bot_id=self.bot_id,
            view_hash=_new_hash(self._rng),
            state_values={},
            **ids,
        )
        self.views[out["id"]] = out
        return out

    def _channel_api(self, channel: _Channel, **kwargs: Any) -> dict[str, Any]:
        return channel.to_api(self.bot_user_id, self.team_id, **kwargs)

    @staticmethod
    def _page(items: list[Any], p: _Params, default_limit: int) -> tuple[list[Any], str]:
        """Cursor pagination: a slice of ``items`` and the ``next_cursor`` ("" at the end)."""
        limit = p.integer("limit", default_limit)
        if limit <= 0:
            limit = default_limit
        start = _decode_cursor(p.text("cursor"))
        end = start + limit
        return items[start:end], (_encode_cursor(end) if end < len(items) else "")

    # -- auth --------------------------------------------------------------------------------

    @_api("auth.test")
    def _auth_test(self, p: _Params) -> dict[str, Any]:
        """``auth.test``: who the token is."""
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_name,
            "user": self.bot_name,
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    # -- conversations -----------------------------------------------------------------------

    @_api("conversations.create")
    def _conversations_create(self, p: _Params) -> dict[str, Any]:
        """``conversations.create``: a new channel with the bot as creator and member."""
        name = self._check_name(p.text("name"))
        is_private = p.flag("is_private")
        channel = _Channel(
            id=_random_id("G" if is_private else "C", self._rng),
            name=name,
            created=self._now(),
            creator=self.bot_user_id,
            is_private=is_private,
            members=[self.bot_user_id],
            updated_ms=int(self._clock() * 1000),
        )
        self._channels[channel.id] = channel
        self._system_message(
            channel,
            "channel_join",
            self.bot_user_id,
            f"<@{self.bot_user_id}> has joined the channel",
        )
        return {"channel": self._channel_api(channel)}

    @_api("conversations.info")
    def _conversations_info(self, p: _Params) -> dict[str, Any]:
        """``conversations.info``."""
        channel = self._visible(p)
        return {"channel": self._channel_api(channel, num_members=p.flag("include_num_members"))}

    @_api("conversations.list")
    def _conversations_list(self, p: _Params) -> dict[str, Any]:
        """``conversations.list`` with ``types``, ``exclude_archived``, ``limit``, ``cursor``."""
        types = set(p.ids("types") or ["public_channel"])
        exclude_archived = p.flag("exclude_archived")
        found = []
        for channel in self._channels.values():
            member = self.bot_user_id in channel.members
            kind = (
                "im"
                if channel.is_im
                else "mpim"
                if channel.is_mpim
                else "private_channel"
                if channel.is_private
                else "public_channel"
            )
            if kind not in types or (kind != "public_channel" and not member):
                continue
            if exclude_archived and channel.is_archived:
                continue
            found.append(self._channel_api(channel, num_members=not channel.is_im))
        page, cursor = self._page(found, p, 100)
        return {"channels": page, "response_metadata": {"next_cursor": cursor}}

    @_api("conversations.join")
    def _conversations_join(self, p: _Params) -> dict[str, Any]:
        """``conversations.join``: public channels only; joining twice warns."""
        channel = self._visible(p)
        if channel.is_private or channel.is_im or channel.is_mpim:
            raise SlackError("method_not_supported_for_channel_type")
        self._writable(channel)
        if self.bot_user_id in channel.members:
            return {
                "channel": self._channel_api(channel),
                "warning": "already_in_channel",
                "response_metadata": {"warnings": ["already_in_channel"]},
            }
        channel.members.append(self.bot_user_id)
        self._system_message(
            channel,
            "channel_join",
            self.bot_user_id,
            f"<@{self.bot_user_id}> has joined the channel",
        )
        return {"channel": self._channel_api(channel)}

    @_api("conversations.invite")
    def _conversations_invite(self, p: _Params) -> dict[str, Any]:
        """``conversations.invite``: comma-separated ``users``; the bot must be a member."""
        channel = self._writable(self._visible(p))
        users = p.ids("users")
        if not users:
            raise SlackError("no_user")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        errors = []
        for user in users:
            if user == self.bot_user_id:
                errors.append({"user": user, "ok": False, "error": "cant_invite_self"})
            elif user not in self.users:
                errors.append({"user": user, "ok": False, "error": "user_not_found"})
            elif user in channel.members:
                errors.append({"user": user, "ok": False, "error": "already_in_channel"})
        blocking = [e for e in errors if e["error"] != "already_in_channel"]
        if blocking:
            raise SlackError(blocking[0]["error"], errors=errors)
        new = [u for u in dict.fromkeys(users) if u not in channel.members]
        if not new:
            raise SlackError("already_in_channel", errors=errors)
        for user in new:
            channel.members.append(user)
            self._system_message(
                channel,
                "channel_join",
                user,
                f"<@{user}> has joined the channel",
                inviter=self.bot_user_id,
            )
        return {"channel": self._channel_api(channel)}

    @_api("conversations.members")
    def _conversations_members(self, p: _Params) -> dict[str, Any]:
        """``conversations.members``, cursor-paginated."""
        channel = self._visible(p)
        page, cursor = self._page(list(channel.members), p, 100)
        return {"members": page, "response_metadata": {"next_cursor": cursor}}

    def _set_text_attr(
        self, p: _Params, attr: str, arg: str, subtype: str, verb: str, max_len: int
    ) -> dict[str, Any]:
        channel = self._writable(self._visible(p))
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        value = p.text(arg, default="") or ""
        if len(value) > max_len:
            raise SlackError("too_long")
        setattr(
            channel, attr, {"value": value, "creator": self.bot_user_id, "last_set": self._now()}
        )
        self._system_message(
            channel, subtype, self.bot_user_id, f"{verb}: {value}", **{attr: value}
        )
        return {"channel": self._channel_api(channel)}

    @_api("conversations.setTopic")
    def _conversations_set_topic(self, p: _Params) -> dict[str, Any]:
        """``conversations.setTopic`` (max 250 characters)."""
        return self._set_text_attr(
            p, "topic", "topic", "channel_topic", "set the channel topic", 250
        )

    @_api("conversations.setPurpose")
    def _conversations_set_purpose(self, p: _Params) -> dict[str, Any]:
        """``conversations.setPurpose`` (max 250 characters)."""
        return self._set_text_attr(
            p, "purpose", "purpose", "channel_purpose", "set the channel description", 250
        )

    @_api("conversations.rename")
    def _conversations_rename(self, p: _Params) -> dict[str, Any]:
        """``conversations.rename``: same naming rules as ``conversations.create``."""
        channel = self._writable(self._visible(p))
        if channel.is_im or channel.is_mpim:
            raise SlackError("method_not_supported_for_channel_type")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        name = self._check_name(p.text("name"), current=channel)
        if name != channel.name:
            old = channel.name
            channel.previous_names.insert(0, old)
            channel.name = name
            self._system_message(
                channel,
                "channel_name",
                self.bot_user_id,
                f'renamed the channel from "{old}" to "{name}"',
                old_name=old,
                name=name,
            )
        return {"channel": self._channel_api(channel)}

    @_api("conversations.archive")
    def _conversations_archive(self, p: _Params) -> dict[str, Any]:
        """``conversations.archive``."""
        channel = self._visible(p)
        if channel.is_archived:
            raise SlackError("already_archived")
        if channel.is_general:
            raise SlackError("cant_archive_general")
        if channel.is_im:
            raise SlackError("method_not_supported_for_channel_type")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        self._system_message(channel, "channel_archive", self.bot_user_id, "archived the channel")
        channel.is_archived = True
        return {}

    @_api("conversations.history")
    def _conversations_history(self, p: _Params) -> dict[str, Any]:
        """``conversations.history``: top-level messages newest first, in the ``oldest``..
        ``latest`` window (bounds only with ``inclusive``), ``limit`` per page (default 100)."""
        channel = self._readable(p)
        latest, oldest = p.text("latest"), p.text("oldest")
        inclusive = p.flag("inclusive")
        found = [
            m
            for m in reversed(channel.messages)
            if _is_top_level(m) and _in_range(m["ts"], oldest, latest, inclusive)
        ]
        page, cursor = self._page(found, p, 100)
        return {
            "messages": _with_metadata(page, p.flag("include_all_metadata")),
            "has_more": bool(cursor),
            "pin_count": len(channel.pins),
            "channel_actions_ts": None,
            "channel_actions_count": 0,
            "response_metadata": {"next_cursor": cursor},
        }

    @_api("conversations.replies")
    def _conversations_replies(self, p: _Params) -> dict[str, Any]:
        """``conversations.replies``: the parent, then its replies oldest first."""
        channel = self._readable(p)
        ts = p.required("ts", "thread_not_found")
        message = channel.find(ts)
        if message is None:
            raise SlackError("thread_not_found")
        parent = channel.find(message.get("thread_ts") or ts) or message
        latest, oldest = p.text("latest"), p.text("oldest")
        inclusive = p.flag("inclusive")
        replies = [
            r
            for r in channel.replies(parent["ts"])
            if _in_range(r["ts"], oldest, latest, inclusive)
        ]
        page, cursor = self._page([parent, *replies], p, 1000)
        return {
            "messages": _with_metadata(page, p.flag("include_all_metadata")),
            "has_more": bool(cursor),
            "response_metadata": {"next_cursor": cursor},
        }

    @_api("conversations.open")
    def _conversations_open(self, p: _Params) -> dict[str, Any]:
        """``conversations.open``: the bot's DM with one user (group DMs not modelled)."""
        if p.get("channel"):
            channel = self._visible(p)
            return {"channel": self._channel_api(channel), "no_op": True, "already_open": True}
        users = [u for u in p.ids("users") if u != self.bot_user_id]
        if not users:
            raise SlackError("users_list_not_supplied")
        if len(users) > 1:
            raise SlackError("not_supported", detail="group DMs are not modelled by the fake")
        if users[0] not in self.users:
            raise SlackError("user_not_found")
        channel, existed = self._open_dm(users[0])
        body: dict[str, Any] = {
            "channel": self._channel_api(channel) if p.flag("return_im") else {"id": channel.id}
        }
        if existed:
            body.update(no_op=True, already_open=True)
        return body

    # -- chat --------------------------------------------------------------------------------

    @_api("chat.postMessage")
    def _chat_post_message(self, p: _Params) -> dict[str, Any]:
        """``chat.postMessage``: text/blocks/attachments, ``thread_ts``, ``reply_broadcast``."""
        channel = self._message_target(p.text("channel"))
        text, blocks, attachments = self._message_content(p)
        message = self._bot_message(
            text=text, blocks=blocks, attachments=attachments, metadata=p.get("metadata")
        )
        thread_ts = p.text("thread_ts")
        if thread_ts and p.flag("reply_broadcast"):
            message["subtype"] = "thread_broadcast"
        self._store(channel, message, thread_ts)
        return {"channel": channel.id, "ts": message["ts"], "message": copy.deepcopy(message)}

    # -- files: the external upload flow ------------------------------------------------------

    @_api("files.getUploadURLExternal")
    def _files_get_upload_url(self, p: _Params) -> dict[str, Any]:
        """``files.getUploadURLExternal``: a file id and the URL its bytes are POSTed to."""
        filename = p.required("filename", "invalid_arguments")
        length = p.text("length")
        if length is None or not length.isdigit() or int(length) < 1:
            raise SlackError("invalid_arguments")
        file_id = _random_id("F", self._rng)
        self.files[file_id] = {
            "id": file_id,
            "name": filename,
            "length": int(length),
            "title": filename,
            "data": None,
            "completed": False,
        }
        return {"upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    async def _handle_upload(self, request: web.Request) -> web.StreamResponse:
        """The upload URL: takes the bytes (raw or a multipart ``file`` part) once."""
        file = self.files.get(request.match_info["file_id"])
        if file is None or file["completed"]:
            return web.Response(status=404, text="Not Found")
        if request.content_type.startswith("multipart/"):
            form = await request.post()
            part = form.get("file")
            data = part.file.read() if hasattr(part, "file") else str(part or "").encode()
        else:
            data = await request.read()
        file["data"] = data
        return web.Response(status=200, text=f"OK - {len(data)}")

    @_api("files.completeUploadExternal")
    def _files_complete_upload(self, p: _Params) -> dict[str, Any]:
        """``files.completeUploadExternal``: finishes uploaded files and, with ``channel_id``,
        shares them there in one message whose text is ``initial_comment``."""
        raw = p.get("files")
        try:
            items = json.loads(raw) if isinstance(raw, str) else raw
        except ValueError:
            raise SlackError("invalid_arguments") from None
        if not isinstance(items, list) or not items:
            raise SlackError("invalid_arguments")
        files = []
        for item in items:
            file = self.files.get(str(item.get("id"))) if isinstance(item, dict) else None
            if file is None or file["completed"]:
                raise SlackError("file_not_found")
            if file["data"] is None:
                raise SlackError("file_upload_not_found")  # nothing was POSTed to the URL
            if len(file["data"]) != file["length"]:
                raise SlackError("file_size_mismatch")
            files.append((file, item.get("title")))
        channel = None
        if p.text("channel_id"):
            channel = self._writable(self._visible(p, "channel_id"))
            if self.bot_user_id not in channel.members:
                raise SlackError("not_in_channel")
        shown = []
        for file, title in files:
            file["completed"] = True
            file["title"] = title or file["name"]
            file["channels"] = [channel.id] if channel else []
            shown.append(self._file_object(file))
        if channel is not None:
            message = self._bot_message(
                text=p.text("initial_comment", default="") or "",
                blocks=None,
                attachments=None,
                metadata=None,
            )
            message["files"] = copy.deepcopy(shown)
            message["upload"] = True
            message["display_as_bot"] = False
            self._store(channel, message, p.text("thread_ts"))
        return {"files": [{"id": f["id"], "title": f["title"]} for f in shown]}

    def _file_object(self, file: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": file["id"],
            "created": self._now(),
            "timestamp": self._now(),
            "name": file["name"],
            "title": file["title"],
            "mimetype": "text/markdown" if file["name"].endswith(".md") else "text/plain",
            "filetype": "markdown" if file["name"].endswith(".md") else "text",
            "pretty_type": "Markdown" if file["name"].endswith(".md") else "Plain Text",
            "user": self.bot_user_id,
            "size": file["length"],
            "mode": "hosted",
            "is_external": False,
            "is_public": not file["channels"] or not self._channels[file["channels"][0]].is_private,
            "channels": list(file["channels"]),
            "url_private": f"{self.base_url}/files-pri/{self.team_id}-{file['id']}/{file['name']}",
        }

    def file_content(self, file_id: str) -> bytes | None:
        """The bytes uploaded for ``file_id`` (a test helper)."""
        file = self.files.get(file_id)
        return None if file is None else file["data"]

    @_api("chat.update")
    def _chat_update(self, p: _Params) -> dict[str, Any]:
        """``chat.update``: edits the bot's own message in place (same ``ts``)."""
        channel = self._writable(self._visible(p))
        message = self._message(channel, p.required("ts", "message_not_found"))
        if message.get("bot_id") != self.bot_id:
            raise SlackError("cant_update_message")
        text = p.text("text")
        blocks = p.blocks()
        attachments = p.get("attachments")
        if text is None and blocks is None and attachments is None:
            raise SlackError("no_text")
        if text is not None:
            if len(text) > 40_000:
                raise SlackError("msg_too_long")
            message["text"] = text
        if blocks is not None:
            message["blocks"] = _with_block_ids(blocks, self._rng)
        if attachments is not None:
            message["attachments"] = attachments
        message["edited"] = {"user": self.bot_user_id, "ts": self._ts.next()}
        return {
            "channel": channel.id,
            "ts": message["ts"],
            "text": message["text"],
            "message": copy.deepcopy(message),
        }

    @_api("chat.delete")
    def _chat_delete(self, p: _Params) -> dict[str, Any]:
        """``chat.delete``: a thread parent with replies becomes a tombstone, as in Slack."""
        channel = self._visible(p)
        message = self._message(channel, p.required("ts", "message_not_found"))
        if message.get("bot_id") != self.bot_id:
            raise SlackError("cant_delete_message")
        ts = message["ts"]
        channel.pins = [pin for pin in channel.pins if pin["ts"] != ts]
        if message.get("thread_ts") == ts and channel.replies(ts):
            kept = {
                k: message[k]
                for k in (
                    "ts",
                    "thread_ts",
                    "reply_count",
                    "reply_users",
                    "reply_users_count",
                    "latest_reply",
                )
                if k in message
            }
            message.clear()
            message.update(
                type="message",
                subtype="tombstone",
                text="This message was deleted.",
                user="USLACKBOT",
                hidden=True,
                **kept,
            )
        else:
            channel.messages.remove(message)
            if message.get("thread_ts") and message["thread_ts"] != ts:
                self._refresh_thread(channel, message["thread_ts"])
        return {"channel": channel.id, "ts": ts}

    @_api("chat.postEphemeral")
    def _chat_post_ephemeral(self, p: _Params) -> dict[str, Any]:
        """``chat.postEphemeral``: only ``user`` sees it; kept in ``fake.ephemerals``."""
        channel = self._message_target(p.text("channel"))
        user = p.required("user", "user_not_found")
        if user not in self.users:
            raise SlackError("user_not_found")
        if user not in channel.members:
            raise SlackError("user_not_in_channel")
        text, blocks, attachments = self._message_content(p)
        ts = self._ts.next()
        self.ephemerals.append(
            {
                "channel": channel.id,
                "user": user,
                "text": text,
                "blocks": blocks,
                "attachments": attachments,
                "thread_ts": p.text("thread_ts"),
                "message_ts": ts,
            }
        )
        return {"message_ts": ts}

    @_api("chat.getPermalink")
    def _chat_get_permalink(self, p: _Params) -> dict[str, Any]:
        """``chat.getPermalink``."""
        channel = self._visible(p)
        message = self._message(channel, p.required("message_ts", "message_not_found"))
        return {"channel": channel.id, "permalink": self._permalink(channel, message)}

    def _permalink(self, channel: _Channel, message: dict[str, Any]) -> str:
        link = (
            f"https://{self.team_domain}.slack.com/archives/{channel.id}/"
            f"p{message['ts'].replace('.', '')}"
        )
        thread_ts = message.get("thread_ts")
        if thread_ts and thread_ts != message["ts"]:
            link += f"?thread_ts={thread_ts}&cid={channel.id}"
        return link

    # -- pins and reactions ------------------------------------------------------------------

    @_api("pins.add")
    def _pins_add(self, p: _Params) -> dict[str, Any]:
        """``pins.add``: pinning twice answers ``already_pinned``."""
        channel = self._writable(self._visible(p))
        ts = p.required("timestamp", "no_item_specified")
        message = self._message(channel, ts)
        if any(pin["ts"] == ts for pin in channel.pins):
            raise SlackError("already_pinned")
        if self.bot_user_id not in channel.members:
            raise SlackError("not_in_channel")
        channel.pins.append({"ts": ts, "created": self._now(), "created_by": self.bot_user_id})
        message["pinned_to"] = [channel.id]
        self._system_message(
            channel,
            "pinned_item",
            self.bot_user_id,
            f"<@{self.bot_user_id}> pinned a message to this channel.",
            item_type="C",
            item={"type": "message", "channel": channel.id, "ts": ts},
        )
        return {}

    @_api("pins.remove")
    def _pins_remove(self, p: _Params) -> dict[str, Any]:
        """``pins.remove``: ``no_pin`` when the message is not pinned."""
        channel = self._visible(p)
        ts = p.required("timestamp", "no_item_specified")
        message = self._message(channel, ts)
        if not any(pin["ts"] == ts for pin in channel.pins):
            raise SlackError("no_pin")
        channel.pins = [pin for pin in channel.pins if pin["ts"] != ts]
        message.pop("pinned_to", None)
        return {}

    @_api("pins.list")
    def _pins_list(self, p: _Params) -> dict[str, Any]:
        """``pins.list``: newest pin first, each with the full message and its permalink."""
        channel = self._visible(p)
        items = []
        for pin in reversed(channel.pins):
            message = copy.deepcopy(self._message(channel, pin["ts"]))
            message["permalink"] = self._permalink(channel, message)
            items.append(
                {
                    "type": "message",
                    "created": pin["created"],
                    "created_by": pin["created_by"],
                    "channel": channel.id,
                    "message": message,
                }
            )
        return {"items": items}

    def _reaction_target(self, p: _Params) -> tuple[dict[str, Any], str]:
        channel = self._visible(p)
        message = self._message(channel, p.required("timestamp", "no_item_specified"))
        name = p.required("name", "invalid_name").strip(":")
        if not _EMOJI_NAME.match(name):
            raise SlackError("invalid_name")
        return message, name

    @_api("reactions.add")
    def _reactions_add(self, p: _Params) -> dict[str, Any]:
        """``reactions.add``: ``already_reacted`` on repeat."""
        message, name = self._reaction_target(p)
        reactions = message.setdefault("reactions", [])
        for reaction in reactions:
            if reaction["name"] == name:
                if self.bot_user_id in reaction["users"]:
                    raise SlackError("already_reacted")
                reaction["users"].append(self.bot_user_id)
                reaction["count"] += 1
                return {}
        reactions.append({"name": name, "users": [self.bot_user_id], "count": 1})
        return {}

    @_api("reactions.remove")
    def _reactions_remove(self, p: _Params) -> dict[str, Any]:
        """``reactions.remove``: ``no_reaction`` when the bot had not reacted so."""
        message, name = self._reaction_target(p)
        for reaction in message.get("reactions", []):
            if reaction["name"] == name and self.bot_user_id in reaction["users"]:
                reaction["users"].remove(self.bot_user_id)
                reaction["count"] -= 1
                if not reaction["count"]:
                    message["reactions"].remove(reaction)
                if not message["reactions"]:
                    del message["reactions"]
                return {}
        raise SlackError("no_reaction")

    # -- views -------------------------------------------------------------------------------

    @_api("views.open")
    def _views_open(self, p: _Params) -> dict[str, Any]:
        """``views.open``: needs a fresh ``trigger_id``; answers the view with ``id``/``hash``."""
        view = self._view_arg(p, kinds=("modal",))
        self._use_trigger(p)
        out = self._new_view(view)
        self._modal_stack = [out["id"]]
        return {"view": copy.deepcopy(out)}

    @_api("views.push")
    def _views_push(self, p: _Params) -> dict[str, Any]:
        """``views.push``: on top of the open modal (at most 3 deep)."""
        view = self._view_arg(p, kinds=("modal",))
        if len(self._modal_stack) >= 3:
            raise SlackError("push_limit_reached")
        self._use_trigger(p)
        previous = self._modal_stack[-1] if self._modal_stack else None
        out = self._new_view(
            view,
            previous_view_id=previous,
            root_view_id=self._modal_stack[0] if self._modal_stack else None,
        )
        self._modal_stack.append(out["id"])
        return {"view": copy.deepcopy(out)}

    @_api("views.update")
    def _views_update(self, p: _Params) -> dict[str, Any]:
        """``views.update`` by ``view_id`` or ``external_id``; a stale ``hash`` conflicts."""
        view_id, external_id = p.text("view_id"), p.text("external_id")
        if view_id is None and external_id is None:
            raise _missing("view_id")
        current = (
            self.views.get(view_id)
            if view_id
            else next((v for v in self.views.values() if v["external_id"] == external_id), None)
        )
        if current is None:
            raise SlackError("not_found")
        view = self._view_arg(p, kinds=(current["type"],), current_id=current["id"])
        view_hash = p.text("hash")
        if view_hash is not None and view_hash != current["hash"]:
            raise SlackError("hash_conflict")
        out = self._new_view(
            view,
            view_id=current["id"],
            previous_view_id=current["previous_view_id"],
            root_view_id=current["root_view_id"],
        )
        return {"view": copy.deepcopy(out)}

    @_api("views.publish")
    def _views_publish(self, p: _Params) -> dict[str, Any]:
        """``views.publish``: the App Home of ``user_id`` (one per user, id kept on republish)."""
        user_id = p.required("user_id")
        if user_id not in self.users:
            raise SlackError("user_not_found")
        current_id = self._home_views.get(user_id)
        view = self._view_arg(p, kinds=("home",), current_id=current_id)
        view_hash = p.text("hash")
        if current_id and view_hash is not None and view_hash != self.views[current_id]["hash"]:
            raise SlackError("hash_conflict")
        out = self._new_view(view, view_id=current_id)
        self._home_views[user_id] = out["id"]
        return {"view": copy.deepcopy(out)}

    # -- users -------------------------------------------------------------------------------

    @_api("users.info")
    def _users_info(self, p: _Params) -> dict[str, Any]:
        """``users.info``."""
        user = self.users.get(p.required("user", "user_not_found"))
        if user is None:
            raise SlackError("user_not_found")
        user = copy.deepcopy(user)
        if p.flag("include_locale"):
            user["locale"] = "en-US"
        return {"user": user}

    @_api("users.lookupByEmail")
    def _users_lookup_by_email(self, p: _Params) -> dict[str, Any]:
        """``users.lookupByEmail``: ``users_not_found`` when nobody has that address."""
        email = p.required("email", "users_not_found").lower()
        for user in self.users.values():
            if user["profile"].get("email", "").lower() == email:
                return {"user": copy.deepcopy(user)}
        raise SlackError("users_not_found")

    @_api("users.list")
    def _users_list(self, p: _Params) -> dict[str, Any]:
        """``users.list``, cursor-paginated."""
        page, cursor = self._page(list(self.users.values()), p, 100)
        return {
            "members": copy.deepcopy(page),
            "cache_ts": self._now(),
            "response_metadata": {"next_cursor": cursor},
        }


# --------------------------------------------------------------------------------------------
# Inbound: what Slack POSTs to the app, and its signature
# --------------------------------------------------------------------------------------------


def sign(
    body: bytes | str,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    *,
    content_type: str | None = None,
) -> dict[str, str]:
    """Headers Slack sends with a request: v0 HMAC-SHA256 of ``v0:{timestamp}:{body}``.

    ``Content-Type`` is JSON for a JSON body (Events API), form-encoded otherwise.
    """
    raw = body.encode() if isinstance(body, str) else body
    ts = int(time.time()) if timestamp is None else int(timestamp)
    digest = hmac.new(secret.encode(), b"v0:%d:" % ts + raw, hashlib.sha256).hexdigest()
    if content_type is None:
        is_json = raw.lstrip()[:1] == b"{"
        content_type = "application/json" if is_json else "application/x-www-form-urlencoded"
    return {
        "Content-Type": content_type,
        "X-Slack-Request-Timestamp": str(ts),
        "X-Slack-Signature": f"v0={digest}",
    }


def _user_name(user_id: str) -> str:
    return _SEED_USER_NAMES.get(user_id, user_id.lower())


def _hook_url(kind: str, team_id: str) -> str:
    return (
        f"https://hooks.slack.com/{kind}/{team_id}/"
        f"{random.randint(10**12, 10**13 - 1)}/{uuid.uuid4().hex[:24]}"
    )


def _form(fields: dict[str, Any]) -> bytes:
    return urlencode(fields).encode()


def _payload_form(payload: dict[str, Any]) -> bytes:
    """Interactivity requests: one form field, ``payload``, holding the JSON."""
    return _form({"payload": json.dumps(payload, separators=(",", ":"))})


def _actor(user_id: str, user_name: str | None, team_id: str) -> dict[str, Any]:
    name = user_name or _user_name(user_id)
    return {"id": user_id, "username": name, "name": name, "team_id": team_id}


def slash_command_body(
    text: str = "",
    user_id: str = ALICE,
    channel_id: str = INCIDENTS_ID,
    *,
    channel_name: str | None = None,
    user_name: str | None = None,
    command: str = "/incident",
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    enterprise_id: str | None = None,
    enterprise_name: str | None = None,
    api_app_id: str = API_APP_ID,
    response_url: str | None = None,
    trigger_id: str | None = None,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A slash command invocation: the form body Slack POSTs for ``/incident <text>``."""
    fields: dict[str, Any] = {"token": token, "team_id": team_id, "team_domain": team_domain}
    if enterprise_id:
        fields.update(enterprise_id=enterprise_id, enterprise_name=enterprise_name or "")
    fields.update(
        channel_id=channel_id,
        channel_name=channel_name or _SEED_CHANNEL_NAMES.get(channel_id, "directmessage"),
        user_id=user_id,
        user_name=user_name or _user_name(user_id),
        command=command,
        text=text,
        api_app_id=api_app_id,
        is_enterprise_install="true" if enterprise_id else "false",
        response_url=response_url or _hook_url("commands", team_id),
        trigger_id=trigger_id or new_trigger_id(),
    )
    return _form(fields)


def url_verification_body(
    challenge: str = "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """The Events API handshake Slack sends when the Request URL is saved."""
    payload = {"token": token, "challenge": challenge, "type": "url_verification"}
    return json.dumps(payload).encode()


def event_callback(
    event: dict[str, Any],
    event_id: str | None = None,
    *,
    team_id: str = TEAM_ID,
    api_app_id: str = API_APP_ID,
    token: str = VERIFICATION_TOKEN,
    event_time: int | None = None,
    authorized_user_id: str = BOT_USER_ID,
    is_ext_shared_channel: bool = False,
) -> bytes:
    """The Events API envelope (``type: event_callback``) around ``event``, as JSON bytes."""
    channel = event.get("channel") or (event.get("item") or {}).get("channel")
    context = {"et": event.get("type"), "tid": team_id, "aid": api_app_id}
    if channel:
        context["cid"] = channel
    event_context = "4-" + base64.urlsafe_b64encode(
        json.dumps(context, separators=(",", ":")).encode()
    ).decode().rstrip("=")
    if event_time is None:
        event_time = int(float(event.get("event_ts") or time.time()))
    envelope = {
        "token": token,
        "team_id": team_id,
        "context_team_id": team_id,
        "context_enterprise_id": None,
        "api_app_id": api_app_id,
        "event": event,
        "type": "event_callback",
        "event_id": event_id or _new_event_id(),
        "event_time": event_time,
        "authorizations": [
            {
                "enterprise_id": None,
                "team_id": team_id,
                "user_id": authorized_user_id,
                "is_bot": True,
                "is_enterprise_install": False,
            }
        ],
        "is_ext_shared_channel": is_ext_shared_channel,
        "event_context": event_context,
    }
    return json.dumps(envelope).encode()


def message_event(
    text: str,
    *,
    user: str = ALICE,
    channel: str = INCIDENTS_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str = BOT_USER_ID,
    team: str = TEAM_ID,
    channel_type: str = "channel",
    blocks: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A ``message`` event for something a person typed; a thread reply with ``thread_ts``.

    ``parent_user_id`` (who wrote the thread's parent) defaults to the bot, as Opsroom's
    timeline threads hang under the bot's message.
    """
    ts = ts or new_ts()
    event: dict[str, Any] = {
        "client_msg_id": str(uuid.uuid4()),
        "type": "message",
        "text": text,
        "user": user,
        "ts": ts,
        "blocks": blocks if blocks is not None else rich_text_blocks(text),
        "team": team,
    }
    if thread_ts:
        event.update(thread_ts=thread_ts, parent_user_id=parent_user_id)
    event.update(channel=channel, event_ts=ts, channel_type=channel_type)
    return event


def thread_broadcast_event(
    text: str,
    *,
    thread_ts: str,
    root: dict[str, Any],
    user: str = ALICE,
    channel: str = INCIDENTS_ID,
    ts: str | None = None,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A thread reply also sent to the channel: subtype ``thread_broadcast``, with ``root``
    (the thread's parent message as stored)."""
    event = message_event(
        text,
        user=user,
        channel=channel,
        ts=ts,
        thread_ts=thread_ts,
        parent_user_id=root.get("user") or root.get("bot_id") or BOT_USER_ID,
        team=team,
    )
    event.update(subtype="thread_broadcast", root=copy.deepcopy(root))
    return event


def file_object(
    name: str,
    *,
    user: str = ALICE,
    filetype: str = "text",
    mimetype: str = "text/plain",
    size: int = 2048,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``file`` object as a ``file_share`` message carries it."""
    file_id = _random_id("F")
    now = int(time.time())
    private = f"https://files.slack.com/files-pri/{team}-{file_id}/{name}"
    return {
        "id": file_id,
        "created": now,
        "timestamp": now,
        "name": name,
        "title": name,
        "mimetype": mimetype,
        "filetype": filetype,
        "pretty_type": filetype.capitalize(),
        "user": user,
        "user_team": team,
        "editable": filetype == "text",
        "size": size,
        "mode": "hosted",
        "is_external": False,
        "external_type": "",
        "is_public": True,
        "public_url_shared": False,
        "display_as_bot": False,
        "username": "",
        "url_private": private,
        "url_private_download": private.replace("files-pri", "files-pri-download"),
        "permalink": f"https://{TEAM_DOMAIN}.slack.com/files/{user}/{file_id}/{name}",
        "permalink_public": f"https://slack-files.com/{team}-{file_id}-{uuid.uuid4().hex[:10]}",
        "is_starred": False,
        "has_rich_preview": False,
        "file_access": "visible",
    }


def file_share_event(
    files: list[dict[str, Any]],
    text: str = "",
    *,
    user: str = ALICE,
    channel: str = INCIDENTS_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    parent_user_id: str = BOT_USER_ID,
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A message sharing ``files`` (subtype ``file_share``), with or without ``text``."""
    event = message_event(
        text,
        user=user,
        channel=channel,
        ts=ts,
        thread_ts=thread_ts,
        parent_user_id=parent_user_id,
        team=team,
    )
    if not text:
        event.pop("blocks")  # Slack sends no rich_text block for a file shared without text
    event.update(subtype="file_share", files=files, upload=False, display_as_bot=False)
    return event


def bot_message_event(
    text: str,
    *,
    channel: str = INCIDENTS_ID,
    ts: str | None = None,
    thread_ts: str | None = None,
    bot_id: str = BOT_ID,
    user: str | None = BOT_USER_ID,
    app_id: str = API_APP_ID,
    bot_name: str = BOT_NAME,
    team: str = TEAM_ID,
    subtype: str | None = None,
    blocks: list[dict[str, Any]] | None = None,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A ``message`` event for a bot's post (by default our own bot, as Slack echoes it).

    Posts made with a bot token carry ``bot_id``, ``app_id``, ``user`` (the bot user) and
    ``bot_profile``; ``subtype="bot_message"`` gives the legacy/integration shape (no ``user``,
    a ``username``).
    """
    ts = ts or new_ts()
    event: dict[str, Any] = {"type": "message"}
    if subtype:
        event["subtype"] = subtype
    event.update(text=text, ts=ts, bot_id=bot_id, app_id=app_id)
    if subtype == "bot_message":
        event["username"] = bot_name
    elif user:
        event["user"] = user
    event.update(team=team, bot_profile=_bot_profile(bot_id, app_id, bot_name, team))
    if blocks is not None:
        event["blocks"] = blocks
    if thread_ts:
        event.update(thread_ts=thread_ts, parent_user_id=user or bot_id)
    event.update(channel=channel, event_ts=ts, channel_type=channel_type)
    return event


def message_changed_event(
    channel: str,
    ts: str,
    text: str,
    *,
    previous_text: str,
    user: str = ALICE,
    thread_ts: str | None = None,
    parent_user_id: str = BOT_USER_ID,
    team: str = TEAM_ID,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A ``message`` event, subtype ``message_changed``: ``user`` edited message ``ts``."""
    edit_ts = new_ts()
    client_msg_id = str(uuid.uuid4())

    def version(body: str) -> dict[str, Any]:
        message: dict[str, Any] = {
            "client_msg_id": client_msg_id,
            "type": "message",
            "text": body,
            "user": user,
            "ts": ts,
            "blocks": rich_text_blocks(body),
            "team": team,
        }
        if thread_ts:
            message.update(thread_ts=thread_ts, parent_user_id=parent_user_id)
        return message

    message = version(text)
    message.update(edited={"user": user, "ts": edit_ts}, source_team=team, user_team=team)
    return {
        "type": "message",
        "subtype": "message_changed",
        "message": message,
        "previous_message": version(previous_text),
        "channel": channel,
        "hidden": True,
        "ts": edit_ts,
        "event_ts": edit_ts,
        "channel_type": channel_type,
    }


def message_deleted_event(
    channel: str,
    deleted_ts: str,
    *,
    previous_text: str,
    user: str = ALICE,
    thread_ts: str | None = None,
    parent_user_id: str = BOT_USER_ID,
    team: str = TEAM_ID,
    channel_type: str = "channel",
) -> dict[str, Any]:
    """A ``message`` event, subtype ``message_deleted``: message ``deleted_ts`` is gone."""
    ts = new_ts()
    previous: dict[str, Any] = {
        "client_msg_id": str(uuid.uuid4()),
        "type": "message",
        "text": previous_text,
        "user": user,
        "ts": deleted_ts,
        "blocks": rich_text_blocks(previous_text),
        "team": team,
    }
    if thread_ts:
        previous.update(thread_ts=thread_ts, parent_user_id=parent_user_id)
    return {
        "type": "message",
        "subtype": "message_deleted",
        "previous_message": previous,
        "channel": channel,
        "hidden": True,
        "deleted_ts": deleted_ts,
        "event_ts": ts,
        "ts": ts,
        "channel_type": channel_type,
    }


def _reaction_event(
    kind: str,
    reaction: str,
    user: str,
    channel: str,
    ts: str,
    item_user: str,
    event_ts: str | None,
) -> dict[str, Any]:
    return {
        "type": kind,
        "user": user,
        "reaction": reaction,
        "item": {"type": "message", "channel": channel, "ts": ts},
        "item_user": item_user,
        "event_ts": event_ts or new_ts(),
    }


def reaction_added_event(
    reaction: str = "pushpin",
    *,
    ts: str,
    user: str = ALICE,
    channel: str = INCIDENTS_ID,
    item_user: str = ALICE,
    event_ts: str | None = None,
) -> dict[str, Any]:
    """A ``reaction_added`` event: ``user`` reacted ``:reaction:`` to message ``ts``."""
    return _reaction_event("reaction_added", reaction, user, channel, ts, item_user, event_ts)


def reaction_removed_event(
    reaction: str = "pushpin",
    *,
    ts: str,
    user: str = ALICE,
    channel: str = INCIDENTS_ID,
    item_user: str = ALICE,
    event_ts: str | None = None,
) -> dict[str, Any]:
    """A ``reaction_removed`` event."""
    return _reaction_event("reaction_removed", reaction, user, channel, ts, item_user, event_ts)


def member_joined_channel_event(
    user: str,
    channel: str = INCIDENTS_ID,
    *,
    inviter: str | None = None,
    channel_type: str = "C",
    team: str = TEAM_ID,
) -> dict[str, Any]:
    """A ``member_joined_channel`` event (``channel_type`` ``C`` public, ``G`` private)."""
    event: dict[str, Any] = {
        "type": "member_joined_channel",
        "user": user,
        "channel": channel,
        "channel_type": channel_type,
        "team": team,
    }
    if inviter:
        event["inviter"] = inviter
    event["event_ts"] = new_ts()
    return event


def text_input(value: str | None) -> dict[str, Any]:
    """A ``plain_text_input`` state value, for ``view_submission_body(values=...)``."""
    return {"type": "plain_text_input", "value": value}


def static_select(value: str | None, text: str | None = None) -> dict[str, Any]:
    """A ``static_select`` state value (``None``: nothing selected)."""
    selected = None
    if value is not None:
        selected = {
            "text": {"type": "plain_text", "text": text or value, "emoji": True},
            "value": value,
        }
    return {"type": "static_select", "selected_option": selected}


def users_select(user_id: str | None) -> dict[str, Any]:
    """A ``users_select`` state value."""
    return {"type": "users_select", "selected_user": user_id}


def _default_action_message(
    action_id: str, value: str | None, block_id: str, channel_id: str
) -> dict[str, Any]:
    """A bot message holding the button that was clicked, as Slack echoes it back."""
    return {
        "user": BOT_USER_ID,
        "type": "message",
        "ts": new_ts(),
        "bot_id": BOT_ID,
        "app_id": API_APP_ID,
        "text": "Incident update",
        "team": TEAM_ID,
        "blocks": [
            {
                "type": "actions",
                "block_id": block_id,
                "elements": [
                    {
                        "type": "button",
                        "action_id": action_id,
                        "text": {"type": "plain_text", "text": value or action_id, "emoji": True},
                        "value": value,
                    }
                ],
            }
        ],
    }


def block_actions_body(
    action_id: str,
    value: str | None = None,
    *,
    block_id: str | None = None,
    action_type: str = "button",
    action: dict[str, Any] | None = None,
    user_id: str = ALICE,
    user_name: str | None = None,
    channel_id: str = INCIDENTS_ID,
    channel_name: str | None = None,
    message: dict[str, Any] | None = None,
    view: dict[str, Any] | None = None,
    state_values: dict[str, Any] | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = API_APP_ID,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A ``block_actions`` interaction: a click on ``action_id`` in a message or, with
    ``view``, in a modal/Home tab. ``action`` adds element-specific fields
    (e.g. ``{"selected_option": ...}`` for selects). Form body ``payload=<json>``."""
    block_id = block_id or _random_block_id()
    if view is None and message is None:
        # Built first so the message predates the click, as its ts must.
        message = _default_action_message(action_id, value, block_id, channel_id)
    act: dict[str, Any] = {"action_id": action_id, "block_id": block_id}
    if action_type == "button":
        act["text"] = {"type": "plain_text", "text": value or action_id, "emoji": True}
        act["value"] = value
    elif value is not None:
        act["value"] = value
    act.update(type=action_type, action_ts=new_ts())
    if action:
        act.update(action)
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": _actor(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
    }
    if view is not None:
        out = view_output(view, team_id=team_id, api_app_id=api_app_id, state_values=state_values)
        payload.update(
            container={"type": "view", "view_id": out["id"]},
            trigger_id=trigger_id or new_trigger_id(),
            team={"id": team_id, "domain": team_domain},
            enterprise=None,
            is_enterprise_install=False,
            view=out,
        )
    else:
        assert message is not None  # made above when not given
        payload.update(
            container={
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel_id,
                "is_ephemeral": False,
            },
            trigger_id=trigger_id or new_trigger_id(),
            team={"id": team_id, "domain": team_domain},
            enterprise=None,
            is_enterprise_install=False,
            channel={
                "id": channel_id,
                "name": channel_name or _SEED_CHANNEL_NAMES.get(channel_id, "privategroup"),
            },
            message=message,
            state={"values": state_values or {}},
            response_url=response_url or _hook_url("actions", team_id),
        )
    payload["actions"] = [act]
    return _payload_form(payload)


def view_submission_body(
    view: dict[str, Any],
    values: dict[str, dict[str, dict[str, Any]]],
    user_id: str = ALICE,
    *,
    user_name: str | None = None,
    trigger_id: str | None = None,
    response_urls: list[dict[str, Any]] | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    api_app_id: str = API_APP_ID,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A ``view_submission``: ``user_id`` pressed Submit on ``view``.

    ``view`` is the view as opened (e.g. ``fake.views[view_id]``, keeping its id and hash) or
    the dict the app passed to ``views.open``. ``values`` is ``state.values``:
    ``{block_id: {action_id: text_input("...")}}``.
    """
    payload = {
        "type": "view_submission",
        "team": {"id": team_id, "domain": team_domain},
        "user": _actor(user_id, user_name, team_id),
        "api_app_id": api_app_id,
        "token": token,
        "trigger_id": trigger_id or new_trigger_id(),
        "view": view_output(view, team_id=team_id, api_app_id=api_app_id, state_values=values),
        "response_urls": response_urls or [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    return _payload_form(payload)


def shortcut_body(
    callback_id: str,
    user_id: str = ALICE,
    *,
    user_name: str | None = None,
    trigger_id: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A global ``shortcut`` (from the lightning-bolt menu or search)."""
    payload = {
        "type": "shortcut",
        "token": token,
        "action_ts": new_ts(),
        "team": {"id": team_id, "domain": team_domain},
        "user": _actor(user_id, user_name, team_id),
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
    }
    return _payload_form(payload)


def message_action_body(
    callback_id: str,
    message: dict[str, Any],
    user_id: str = ALICE,
    *,
    channel_id: str = INCIDENTS_ID,
    channel_name: str | None = None,
    user_name: str | None = None,
    trigger_id: str | None = None,
    response_url: str | None = None,
    team_id: str = TEAM_ID,
    team_domain: str = TEAM_DOMAIN,
    token: str = VERIFICATION_TOKEN,
) -> bytes:
    """A ``message_action`` (message shortcut) on ``message`` (a stored or event message)."""
    payload = {
        "type": "message_action",
        "token": token,
        "action_ts": new_ts(),
        "team": {"id": team_id, "domain": team_domain},
        "user": _actor(user_id, user_name, team_id),
        "channel": {
            "id": channel_id,
            "name": channel_name or _SEED_CHANNEL_NAMES.get(channel_id, "privategroup"),
        },
        "is_enterprise_install": False,
        "enterprise": None,
        "callback_id": callback_id,
        "trigger_id": trigger_id or new_trigger_id(),
        "response_url": response_url or _hook_url("app", team_id),
        "message_ts": message["ts"],
        "message": message,
    }
    return _payload_form(payload)
