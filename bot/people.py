"""People: one person, several chat accounts, shown as themselves on every platform.

The catalog's `people:` links a person's Slack and Discord accounts; nothing else does (two
accounts with the same display name are two people until the catalog says otherwise). Names
the bot learns from chat (the `person` table) only label accounts the catalog does not know.

Mentions are stored as the platform wrote them: "<@U0ALICE001>" (Slack ids have letters),
"<@412345678901234567>" (Discord ids are digits), "@alice" (console, or typed by hand).
`Directory.localize` rewrites every mention in a text for the platform it is shown on: the
person's own account there when they have one, otherwise "@alice (Slack)".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from bot.render import Field, Message

logger = logging.getLogger(__name__)

PLATFORM_LABELS = {"slack": "Slack", "discord": "Discord", "console": "console"}
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
# "<@U123>", "<@U123|alice>", "<@!123>" and a plain "@alice" (not inside an e-mail address).
_MENTION_RE = re.compile(r"<@!?([A-Za-z0-9]+)(?:\|([^>]*))?>|(?<![\w@<])@([A-Za-z0-9][\w.\-]*)")
_GROUPS = {"here", "channel", "everyone"}


# What a notify_webhook body may say: "{person}", "{incident}", "{title}", "{severity}",
# "{text}" (the page line), "{link}" (the incident's channel or web page, when known).
WEBHOOK_FIELDS = ("person", "incident", "title", "severity", "text", "link")
DEFAULT_WEBHOOK_BODY: dict[str, Any] = {name: "{" + name + "}" for name in WEBHOOK_FIELDS}


def _check_template(value: Any, where: str = "body") -> None:
    if isinstance(value, str):
        try:
            value.format_map(dict.fromkeys(WEBHOOK_FIELDS, ""))
        except (KeyError, ValueError, IndexError) as exc:
            raise ValueError(
                f"{where}: {value!r} is not a template ({exc}); use "
                + ", ".join("{" + f + "}" for f in WEBHOOK_FIELDS)
            ) from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_template(v, f"{where}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_template(v, f"{where}[{i}]")


def fill_template(value: Any, fields: Mapping[str, str]) -> Any:
    """A webhook body with every string's placeholders filled in (the JSON shape kept)."""
    if isinstance(value, str):
        return value.format_map({name: fields.get(name, "") for name in WEBHOOK_FIELDS})
    if isinstance(value, dict):
        return {k: fill_template(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [fill_template(v, fields) for v in value]
    return value


class NotifyWebhook(BaseModel):
    """A person's `notify_webhook:`: where a page is also POSTed as JSON. The URL, or the
    environment variable holding it when it carries a secret; headers whose values come from
    environment variables (an Authorization token); the JSON body as a template."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str | None = None
    url_env: str | None = None
    headers_env: dict[str, str] = {}
    body: dict[str, Any] = DEFAULT_WEBHOOK_BODY

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError(f'"{value}" is not an http(s) URL')
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_template(value)
        return value

    def model_post_init(self, __context: Any) -> None:
        if (self.url is None) == (self.url_env is None):
            raise ValueError("notify_webhook needs exactly one of url or url_env")


class PersonSpec(BaseModel):
    """One entry of the catalog's `people:`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    slack: str | None = None  # Slack user id, U0ALICE001
    discord: str | None = None  # Discord user id (digits)
    # Pages also call this (an SMS or phone bridge): a URL, or url_env/headers_env/body.
    notify_webhook: NotifyWebhook | None = None

    @field_validator("notify_webhook", mode="before")
    @classmethod
    def _webhook(cls, value: object) -> object:
        return {"url": value} if isinstance(value, str) else value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        name = value.strip().lstrip("@").lower()
        if not _NAME_RE.match(name):
            raise ValueError(f'"{value}" is not a person name (letters, digits, ".", "-", "_")')
        return name

    @field_validator("discord")
    @classmethod
    def _discord(cls, value: str | None) -> str | None:
        if value is not None and not str(value).isdigit():
            raise ValueError(f'"{value}" is not a Discord user id (digits only)')
        return None if value is None else str(value)

    @field_validator("slack")
    @classmethod
    def _slack(cls, value: str | None) -> str | None:
        if value is not None and (value.isdigit() or not value.isalnum()):
            raise ValueError(f'"{value}" is not a Slack user id like U0ALICE001')
        return value

    def account(self, platform: str) -> str | None:
        return {"slack": self.slack, "discord": self.discord}.get(platform)

    @property
    def platforms(self) -> list[str]:
        return [p for p in ("slack", "discord") if self.account(p)]


def platform_of(user_id: str) -> str:
    """The platform a raw `<@id>` mention came from: Discord ids are all digits."""
    return "discord" if user_id.isdigit() else "slack"


class Directory:
    """Who is who: the catalog's people plus names learned from chat."""

    def __init__(
        self,
        people: Sequence[PersonSpec] = (),
        learned: Mapping[tuple[str, str], str] | None = None,
    ) -> None:
        self.people = {p.name: p for p in people}
        self._by_account = {
            (platform, p.account(platform)): p for p in people for platform in p.platforms
        }
        self.learned: dict[tuple[str, str], str] = dict(learned or {})

    def learn(self, platform: str, user_id: str, name: str) -> None:
        if name:
            self.learned[(platform, user_id)] = name

    def person(self, name: str) -> PersonSpec | None:
        return self.people.get(name.strip().lstrip("@").lower())

    def by_account(self, platform: str, user_id: str) -> PersonSpec | None:
        return self._by_account.get((platform, user_id))

    def name_of(self, mention: str) -> str | None:
        """The person's name behind one mention ("<@U1>", "@alice"), when it is known."""
        m = _MENTION_RE.fullmatch(mention.strip())
        if m is None:
            return None
        if m.group(3):
            return m.group(3).lower()
        uid = m.group(1)
        known = self.by_account(platform_of(uid), uid)
        if known is not None:
            return known.name
        return m.group(2) or self.learned.get((platform_of(uid), uid))

    def mention(self, name: str, platform: str, *, home: str | None = None) -> str:
        """How to name person `name` on `platform`: their account there, or "@name (Slack)"."""
        spec = self.person(name)
        if spec is not None:
            account = spec.account(platform)
            if account:
                return f"<@{account}>"
            home = home or (spec.platforms[0] if spec.platforms else None)
        label = PLATFORM_LABELS.get(home or "", "")
        if home is None or home == platform or platform == "console" or not label:
            return f"@{name}"
        return f"@{name} ({label})"

    def localize(self, text: str, platform: str) -> str:
        """`text` with every person mention shown as it should be on `platform`."""
        if "@" not in text:
            return text

        def one(m: re.Match[str]) -> str:
            if m.group(3):  # "@alice": a name, shown with the person's account where known
                name = m.group(3)
                if name.lower() in _GROUPS or self.person(name) is None:
                    return m.group(0)
                return self.mention(name.lower(), platform)
            uid = m.group(1)
            home = platform_of(uid)
            known = self.by_account(home, uid)
            if known is not None:
                return self.mention(known.name, platform, home=home)
            if home == platform:
                return m.group(0)
            name = m.group(2) or self.learned.get((home, uid)) or uid
            return f"@{name} ({PLATFORM_LABELS[home]})"

        return _MENTION_RE.sub(one, text)

    def localize_message(self, message: Message, platform: str) -> Message:
        """`message` with the mentions of every text in it localized for `platform`."""

        def t(text: str | None) -> str | None:
            return None if text is None else self.localize(text, platform)

        return replace(
            message,
            text=self.localize(message.text, platform),
            title=t(message.title),
            fields=tuple(Field(f.label, self.localize(f.value, platform)) for f in message.fields),
            sections=tuple(self.localize(s, platform) for s in message.sections),
            context=t(message.context),
        )

    def accounts(self, name: str) -> list[tuple[str, str]]:
        """(platform, user id) of every chat account person `name` has that the bot knows."""
        spec = self.person(name)
        found = [(p, spec.account(p) or "") for p in spec.platforms] if spec else []
        found += [
            key
            for key, learned in self.learned.items()
            if learned.lower() == name.lower() and key not in found and spec is None
        ]
        return found


def mentioned_ids(texts: Iterable[str]) -> set[tuple[str, str]]:
    """(platform, id) of every raw `<@id>` mention in `texts`: the names worth looking up."""
    out: set[tuple[str, str]] = set()
    for text in texts:
        for m in _MENTION_RE.finditer(text):
            if m.group(1):
                out.add((platform_of(m.group(1)), m.group(1)))
    return out
