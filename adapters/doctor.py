"""`opsroom doctor`: a self-test of the real set-up, and the start-up warning for misspelt names.

Every check runs, whatever failed before it: the configuration (each variable read, names no
setting reads, token shapes, the combination `run` needs), the catalog, the database, and each
configured platform over plain HTTP (Slack `auth.test` and scopes, Discord login, guild,
permissions and intent, the OpenAI-compatible endpoint's models and one tiny structured call).
Each finding is ok, skip (not configured), warning or error, errors carry the fix, and the
report is text for people or JSON for machines. Secrets are never shown: not in a finding, not
in a fix, not in the JSON.
"""

from __future__ import annotations

import asyncio
import difflib
import json
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, get_args
from urllib.parse import urljoin, urlsplit

import yaml
from pydantic import SecretStr, ValidationError, create_model
from pydantic_settings import SettingsError

from adapters.settings import Settings
from bot.catalog import Catalog, CatalogError, load_catalog
from storage.engine import MIGRATIONS, async_url, make_engine, safe_url

if TYPE_CHECKING:
    import aiohttp

Status = Literal["ok", "skip", "warning", "error"]
SECTIONS = ("configuration", "catalog", "database", "slack", "discord", "openai")
TITLES = {
    "configuration": "Configuration",
    "catalog": "Catalog",
    "database": "Database",
    "slack": "Slack",
    "discord": "Discord",
    "openai": "AI endpoint (OpenAI-compatible)",
}

# Doctor looks at all four families; the start-up warning leaves OPENAI_ out, since other tools
# on the same machine read OPENAI_ names of their own and a warning at every start is noise.
DOCTOR_PREFIXES = ("OPSROOM_", "SLACK_", "DISCORD_", "OPENAI_")
STARTUP_PREFIXES = ("OPSROOM_", "SLACK_", "DISCORD_")
# Known without being a setting: read by the test suite, by the openai SDK itself, or by
# features that read them directly (runbook secrets are OPSROOM_SECRET_<NAME>).
KNOWN_NAMES = frozenset(
    {
        "OPSROOM_TEST_DATABASE_URL",
        "OPSROOM_FAKE_NOW",  # the fixed start instant process tests may give (issue 8, item 0)
        "OPSROOM_ALERT_TOKEN",
        "OPENAI_ORG_ID",
        "OPENAI_PROJECT_ID",
        "OPENAI_LOG",
    }
)
KNOWN_PREFIXES = ("OPSROOM_SECRET_",)
_REFERENCE = re.compile(r"\b(?:OPSROOM|SLACK|DISCORD|OPENAI)_[A-Z0-9_]*[A-Z0-9]\b")
_SECRET_WORDS = ("TOKEN", "SECRET", "KEY", "PASSWORD")

MANIFEST = Path(__file__).resolve().parent.parent / "slack-manifest.yaml"
DEFAULT_OPENAI_URL = "https://api.openai.com/v1"
USER_AGENT = "DiscordBot (opsroom doctor, 0.1)"  # Discord asks for "DiscordBot (url, version)"

# https://discord.com/developers/docs/topics/permissions#permissions-bitwise-permission-flags
ADMINISTRATOR = 1 << 3
ALL_PERMISSIONS = (1 << 64) - 1
CATEGORY_PERMISSIONS = {  # what the bot uses in incident channels (adapters/discord/README.md)
    "View Channels": 10,
    "Manage Channels": 4,
    "Manage Roles": 28,
    "Send Messages": 11,
    "Send Messages in Threads": 38,
    "Create Public Threads": 35,
    "Manage Threads": 34,
    "Embed Links": 14,
    "Attach Files": 15,
    "Read Message History": 16,
    "Add Reactions": 6,
    "Manage Messages": 13,
    "Pin Messages": 51,
}
ANNOUNCE_PERMISSIONS = {"View Channels": 10, "Send Messages": 11, "Embed Links": 14}
INVITE_PERMISSIONS = sum(1 << bit for bit in CATEGORY_PERMISSIONS.values())
# Application flags: the Message Content intent, and its "limited" form for apps in < 100 servers.
MESSAGE_CONTENT_FLAGS = (1 << 18) | (1 << 19)
TEXT_CHANNEL, CATEGORY_CHANNEL, ANNOUNCEMENT_CHANNEL = 0, 4, 5

# The structured-output probe: small enough for any model, strict enough to tell.
PROBE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"answer": {"type": "string", "enum": ["ready"]}},
    "required": ["answer"],
    "additionalProperties": False,
}


@dataclass(frozen=True)
class Check:
    section: str
    status: Status
    message: str
    fix: str | None = None


@dataclass(frozen=True)
class Variable:
    name: str
    set: bool
    source: str  # "environment", ".env" or "default"
    secret: bool
    value: str | None  # None for secrets and for what is not set


@dataclass(frozen=True)
class UnknownVariable:
    name: str
    source: str  # "environment" or ".env"
    suggestion: str | None

    def describe(self) -> str:
        return f"{self.name} ({'from .env' if self.source == '.env' else 'environment'})"


@dataclass
class Report:
    checks: list[Check] = field(default_factory=list)
    variables: list[Variable] = field(default_factory=list)

    def count(self, status: Status) -> int:
        return sum(1 for c in self.checks if c.status == status)

    @property
    def ok(self) -> bool:
        return self.count("error") == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "errors": self.count("error"),
            "warnings": self.count("warning"),
            "checks": [asdict(c) for c in self.checks],
            "variables": [asdict(v) for v in self.variables],
        }


class _Findings:
    """The checks of one section, in the order they were made."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.checks: list[Check] = []

    def ok(self, message: str) -> None:
        self.checks.append(Check(self.section, "ok", message))

    def skip(self, message: str) -> None:
        self.checks.append(Check(self.section, "skip", message))

    def warning(self, message: str, fix: str | None = None) -> None:
        self.checks.append(Check(self.section, "warning", message, fix))

    def error(self, message: str, fix: str | None = None) -> None:
        self.checks.append(Check(self.section, "error", message, fix))


# --- the environment ----------------------------------------------------------------------


def dotenv_path() -> Path | None:
    """The `.env` file Settings reads, when there is one."""
    env_file = Settings.model_config.get("env_file")
    if not isinstance(env_file, str | os.PathLike):
        return None
    path = Path(env_file)
    return path if path.is_file() else None


def dotenv_values_of(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    from dotenv import dotenv_values

    try:
        return {k: v or "" for k, v in dotenv_values(path).items()}
    except (OSError, UnicodeDecodeError):
        return {}


def setting_names() -> set[str]:
    return {name.upper() for name in Settings.model_fields}


def catalog_references(catalog_path: Path | None) -> set[str]:
    """The OPSROOM_/SLACK_/DISCORD_/OPENAI_ names the catalog's text mentions."""
    try:
        if catalog_path is None:
            text = resources.files("bot").joinpath("opsroom.yaml").read_text(encoding="utf-8")
        else:
            text = Path(catalog_path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return set()
    return set(_REFERENCE.findall(text))


def unknown_variables(
    *,
    environ: Mapping[str, str],
    dotenv: Mapping[str, str],
    catalog_path: Path | None,
    prefixes: tuple[str, ...] = DOCTOR_PREFIXES,
) -> list[UnknownVariable]:
    """Names with one of `prefixes` that nothing reads, each with the nearest known name."""
    known = setting_names() | KNOWN_NAMES | catalog_references(catalog_path)
    found: list[UnknownVariable] = []
    seen: set[str] = set()
    for source, names in (("environment", environ), (".env", dotenv)):
        for raw in names:
            name = raw.upper()
            if not name.startswith(prefixes) or name in known or name in seen:
                continue
            if name.startswith(KNOWN_PREFIXES):
                continue
            seen.add(name)
            close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.7)
            found.append(UnknownVariable(raw, source, close[0] if close else None))
    return found


def startup_warnings(settings: Settings) -> list[str]:
    """One line per misspelt OPSROOM_/SLACK_/DISCORD_ name, for `run` and `shell` to print."""
    path = dotenv_path()
    lines = []
    for u in unknown_variables(
        environ=os.environ,
        dotenv=dotenv_values_of(path),
        catalog_path=settings.opsroom_catalog,
        prefixes=STARTUP_PREFIXES,
    ):
        hint = f"; did you mean {u.suggestion}?" if u.suggestion else ""
        lines.append(
            f"opsroom: warning: {u.describe()} is not a setting Opsroom reads{hint} "
            "(`opsroom doctor` checks the whole set-up)"
        )
    return lines


def _no_password(value: str) -> str:
    """A URL-like value with the password of its user part masked (proxies, gateways)."""
    try:
        parts = urlsplit(value)
        if parts.password is None:
            return value
    except ValueError:
        return value
    return value.replace(f":{parts.password}@", ":***@", 1)


def _is_secret(name: str, annotation: Any) -> bool:
    types = (annotation, *get_args(annotation))
    return SecretStr in types or any(word in name for word in _SECRET_WORDS)


def variables(environ: Mapping[str, str], dotenv: Mapping[str, str]) -> list[Variable]:
    """Every setting: whether it is set and where from; the value only when it is no secret."""
    env = {k.upper(): v for k, v in environ.items()}
    dot = {k.upper(): v for k, v in dotenv.items()}
    out = []
    for attr, info in Settings.model_fields.items():
        name = attr.upper()
        secret = _is_secret(name, info.annotation)
        # Empty values count as unset, as Settings reads them (env_ignore_empty).
        if env.get(name):
            source, value = "environment", env[name]
        elif dot.get(name):
            source, value = ".env", dot[name]
        else:
            out.append(Variable(name, False, "default", secret, None))
            continue
        shown = (
            None if secret else (safe_url(value) if name == "DATABASE_URL" else _no_password(value))
        )
        out.append(Variable(name, True, source, secret, shown))
    return out


def load_settings_leniently(findings: _Findings) -> Settings:
    """Settings from the environment; a value that cannot be read is reported and defaulted."""
    defaults: dict[str, Any] = {}
    cls: type[Settings] = Settings
    for _ in range(len(Settings.model_fields) + 1):
        try:
            return cls(**defaults)
        except ValidationError as exc:
            bad = [e for e in exc.errors() if e["loc"] and e["loc"][0] in Settings.model_fields]
            if not bad or all(e["loc"][0] in defaults for e in bad):
                break
            for e in bad:
                attr = str(e["loc"][0])
                if attr in defaults:
                    continue
                findings.error(
                    f"{attr.upper()}: {e['msg']} (its default is used for the other checks)",
                    fix=f"correct {attr.upper()} (every setting is explained in .env.example)",
                )
                defaults[attr] = Settings.model_fields[attr].get_default(call_default_factory=True)
        except SettingsError as exc:
            match = re.search(r'field "(\w+)"', str(exc))
            attr = match.group(1) if match else ""
            if attr not in Settings.model_fields or attr in defaults:
                break
            findings.error(
                f'{attr.upper()} cannot be read: it must be JSON (e.g. ["regex"])',
                fix=f"correct {attr.upper()} (every setting is explained in .env.example)",
            )
            defaults[attr] = Settings.model_fields[attr].get_default(call_default_factory=True)
            # A subclass that takes the raw text, so the environment parses; the default wins.
            fields: Any = {attr: (Any, None)}
            cls = create_model("LenientSettings", __base__=cls, **fields)
    findings.error("the settings cannot be read; the checks below use the defaults")
    return Settings.model_construct()


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _secret(value: SecretStr | None) -> str:
    return value.get_secret_value() if value is not None else ""


def check_configuration(
    settings: Settings,
    findings: _Findings,
    unknown: Iterable[UnknownVariable],
    dotenv: Path | None,
    given: set[str],
) -> None:
    """`given`: the names of the settings that are set (in the environment or .env)."""
    if dotenv is not None:
        findings.ok(f"settings read from the environment and {dotenv.resolve()}")
    else:
        findings.ok("settings read from the environment (no .env in the working directory)")
    for u in unknown:
        findings.warning(
            f"{u.describe()} is not a setting Opsroom reads",
            fix=(f"did you mean {u.suggestion}? Rename it" if u.suggestion else "remove it")
            + " (every setting is listed in .env.example)",
        )
    _check_token_shapes(settings, findings)
    _check_combination(settings, findings, given)


def _check_token_shapes(s: Settings, findings: _Findings) -> None:
    bot, app = _secret(s.slack_bot_token), _secret(s.slack_app_token)
    signing, discord = _secret(s.slack_signing_secret), _secret(s.discord_token)
    for name, value in (
        ("SLACK_BOT_TOKEN", bot),
        ("SLACK_APP_TOKEN", app),
        ("SLACK_SIGNING_SECRET", signing),
        ("DISCORD_TOKEN", discord),
        ("OPENAI_API_KEY", _secret(s.openai_api_key)),
    ):
        if value and (value != value.strip() or value[:1] in "'\"" or "\n" in value):
            findings.error(
                f"{name} has spaces, quotes or a line break around it",
                fix=f"set {name} to the bare value",
            )
    if bot.startswith("xapp-") and app.startswith("xoxb-"):
        findings.error(
            "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are swapped: the bot token is xoxb-…, "
            "the app-level token xapp-…",
            fix="swap the two values",
        )
    else:
        if bot and not bot.startswith("xoxb-"):
            findings.error(
                "SLACK_BOT_TOKEN is " + _slack_token_kind(bot) + ", not a bot token (xoxb-…)",
                fix="use the Bot User OAuth Token from OAuth & Permissions (it starts with xoxb-)"
                + (
                    "; an xapp- token belongs in SLACK_APP_TOKEN" if bot.startswith("xapp-") else ""
                ),
            )
        if app and not app.startswith("xapp-"):
            findings.error(
                "SLACK_APP_TOKEN is " + _slack_token_kind(app) + ", not an app-level token "
                "(xapp-…)",
                fix="make an app-level token with connections:write under Basic Information "
                "(it starts with xapp-)"
                + (
                    "; an xoxb- token belongs in SLACK_BOT_TOKEN" if app.startswith("xoxb-") else ""
                ),
            )
    if signing and signing.startswith(("xox", "xapp-")):
        findings.error(
            "SLACK_SIGNING_SECRET holds a token, not the signing secret",
            fix="copy the Signing Secret from Basic Information → App Credentials",
        )
    elif signing and not re.fullmatch(r"[0-9a-f]{32}", signing):
        findings.warning(
            "SLACK_SIGNING_SECRET does not look like a signing secret (32 hexadecimal characters)",
            fix="copy the Signing Secret from Basic Information → App Credentials",
        )
    if discord.lower().startswith("bot "):
        findings.error(
            'DISCORD_TOKEN starts with "Bot ": Opsroom adds that itself',
            fix='remove the "Bot " prefix',
        )
    elif discord.startswith(("xox", "xapp-")):
        findings.error(
            "DISCORD_TOKEN holds a Slack token",
            fix="copy the bot token from the Developer Portal → Bot → Reset Token",
        )
    elif discord and discord.count(".") != 2:
        findings.warning(
            "DISCORD_TOKEN does not look like a bot token (three parts separated by dots); "
            "the application's Client Secret or Public Key is not the token",
            fix="copy the bot token from the Developer Portal → Bot → Reset Token",
        )
    if s.openai_api_key is not None and _secret(s.openai_api_key).startswith(("xox", "xapp-")):
        findings.error("OPENAI_API_KEY holds a Slack token", fix="set your OpenAI API key")
    if not s.slack_api_url.endswith("/"):
        findings.error(
            f"SLACK_API_URL {s.slack_api_url} has no trailing slash: method names would replace "
            "its last part",
            fix=f"set SLACK_API_URL={s.slack_api_url}/",
        )


def _slack_token_kind(token: str) -> str:
    for prefix, kind in (
        ("xapp-", "an app-level token (xapp-…)"),
        ("xoxb-", "a bot token (xoxb-…)"),
        ("xoxp-", "a user token (xoxp-…)"),
        ("xoxe", "a refresh token (xoxe…)"),
    ):
        if token.startswith(prefix):
            return kind
    return "not a Slack token"


def _check_combination(s: Settings, findings: _Findings, given: set[str]) -> None:
    if s.slack_enabled and not (s.slack_signing_secret or s.slack_app_token):
        findings.error(
            "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (HTTP mode) nor "
            "SLACK_APP_TOKEN (Socket Mode) is: `opsroom run` refuses to start",
            fix="set SLACK_SIGNING_SECRET (Basic Information → App Credentials), or enable Socket "
            "Mode and set SLACK_APP_TOKEN",
        )
    for name, value in (
        ("SLACK_SIGNING_SECRET", s.slack_signing_secret),
        ("SLACK_APP_TOKEN", s.slack_app_token),
    ):
        if value is not None and not s.slack_enabled:
            findings.warning(
                f"{name} is set but SLACK_BOT_TOKEN is not: Slack is not started",
                fix="set SLACK_BOT_TOKEN too, or remove " + name,
            )
    if s.discord_guild_id is not None and not s.discord_enabled:
        findings.warning(
            "DISCORD_GUILD_ID is set but DISCORD_TOKEN is not: Discord is not started",
            fix="set DISCORD_TOKEN too, or remove DISCORD_GUILD_ID",
        )
    if not s.ai_enabled and "OPENAI_MODEL" in given:
        findings.warning(
            "OPENAI_MODEL is set but neither OPENAI_API_KEY nor OPENAI_BASE_URL is: suggestions "
            "use the built-in heuristic",
            fix="set OPENAI_API_KEY (or OPENAI_BASE_URL for a self-hosted endpoint)",
        )
    if s.slack_enabled and not (s.slack_signing_secret or s.slack_app_token):
        return
    started = []
    if s.slack_enabled:
        started.append("Slack (" + ("Socket Mode" if s.slack_app_token else "HTTP mode") + ")")
    if s.discord_enabled:
        started.append("Discord")
    if started:
        findings.ok(
            f"`opsroom run` starts {' and '.join(started)}, and serves HTTP on "
            f"{s.opsroom_http_host}:{s.opsroom_http_port}"
        )
    else:
        findings.ok("no chat platform is configured: `opsroom run` starts the console chat")


# --- catalog -------------------------------------------------------------------------------


def check_catalog(settings: Settings, findings: _Findings) -> Catalog | None:
    path = settings.opsroom_catalog
    where = str(Path(path).resolve()) if path else "built-in default (bot/opsroom.yaml)"
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        findings.error(f"{exc}", fix="correct the catalog, or unset OPSROOM_CATALOG")
        return None
    findings.ok(
        f"{where}: {len(catalog.incident_types)} incident types, "
        f"{len(catalog.severities)} severities, {len(catalog.roles)} roles"
    )
    return catalog


# --- database ------------------------------------------------------------------------------


async def check_database(settings: Settings, findings: _Findings, timeout: float) -> None:
    from sqlalchemy.engine import make_url

    url = settings.database_url
    try:
        parsed = make_url(url)
        async_url(url)
    except ValueError as exc:
        findings.error(
            str(exc),
            fix="set DATABASE_URL to sqlite:///path/to/opsroom.db or "
            "postgresql://user:password@host:5432/dbname",
        )
        return
    except Exception:
        findings.error(
            "DATABASE_URL cannot be parsed",
            fix="set DATABASE_URL to sqlite:///path/to/opsroom.db or "
            "postgresql://user:password@host:5432/dbname",
        )
        return
    if parsed.get_backend_name() == "sqlite":
        db = parsed.database or ""
        if db in ("", ":memory:") or db.startswith("file:"):
            findings.warning(
                f"{safe_url(url)} is not a plain SQLite file (in memory or a URI): "
                "nothing may be kept after the process ends",
                fix="set DATABASE_URL=sqlite:////absolute/path/opsroom.db",
            )
            return
        path = _sqlite_file(db, findings)
        if path is None:
            return
        where = str(path)
        connect_args: dict[str, Any] = {}
    else:
        host, port = parsed.host or "localhost", parsed.port or 5432
        where = f"{host}:{port}"
        connect_args = {"timeout": timeout}
    engine = make_engine(url, timeout_s=timeout, connect_args=connect_args)
    try:
        # The driver's own connect timeout fires first; this one bounds the rest.
        async with asyncio.timeout(timeout + 1):
            revision, server = await _read_revision(engine)
    except TimeoutError:
        findings.error(
            f"no answer from {where} within {timeout:g}s",
            fix="check the host and port in DATABASE_URL and that a firewall lets them through",
        )
        return
    except Exception as exc:
        _database_error(exc, parsed, where, timeout, findings)
        return
    finally:
        await engine.dispose()
    if server:
        findings.ok(
            f"PostgreSQL {server} at {where}, database {parsed.database or parsed.username}"
        )
    _check_schema(revision, findings)


def _sqlite_file(db: str, findings: _Findings) -> Path | None:
    """The SQLite file's absolute path when there is a database to open there, else None."""
    path = Path(db).resolve()
    findings.ok(f"SQLite file {path}")
    if not path.parent.is_dir():
        findings.error(
            f"the directory {path.parent} does not exist",
            fix=f"create it (mkdir -p {path.parent}) or point DATABASE_URL elsewhere",
        )
        return None
    if path.is_dir():
        findings.error(f"{path} is a directory", fix="point DATABASE_URL at a file")
        return None
    if not path.exists():
        if os.access(path.parent, os.W_OK):
            findings.ok(
                "the file does not exist yet: `opsroom run` or `opsroom db upgrade` creates "
                f"it with the schema ({_plural(_migration_count(), 'migration')})"
            )
        else:
            findings.error(
                f"the file does not exist and {path.parent} is not writable",
                fix="make the directory writable, or point DATABASE_URL elsewhere",
            )
        return None
    return path


async def _read_revision(engine: Any) -> tuple[str | None, str | None]:
    from alembic.runtime.migration import MigrationContext

    async with engine.connect() as conn:
        revision = await conn.run_sync(
            lambda c: MigrationContext.configure(c).get_current_revision()
        )
        info = conn.dialect.server_version_info if conn.dialect.name == "postgresql" else None
    return revision, ".".join(str(p) for p in info) if info else None


def _script() -> Any:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def _migration_count() -> int:
    return sum(1 for _ in _script().walk_revisions())


def _check_schema(revision: str | None, findings: _Findings) -> None:
    script = _script()
    head = script.get_current_head()
    if revision == head:
        findings.ok(f"schema at the latest revision ({head})")
        return
    try:
        behind = (
            _migration_count()
            if revision is None
            else sum(1 for _ in script.iterate_revisions(head, revision))  # excludes `revision`
        )
    except Exception:  # a revision this Opsroom does not have: a newer version wrote it
        findings.error(
            f"the schema is at revision {revision}, which this Opsroom does not know (was it "
            "upgraded by a newer version?)",
            fix="run the Opsroom version that upgraded it, or restore a backup",
        )
        return
    state = "empty" if revision is None else f"at {revision}"
    findings.warning(
        f"schema {state}: {behind} migration{'s' if behind != 1 else ''} behind the latest "
        f"({head})",
        fix="run `opsroom db upgrade` (`opsroom run` also upgrades at start); back it up first",
    )


def _database_error(
    exc: BaseException, parsed: Any, where: str, timeout: float, findings: _Findings
) -> None:
    chain: list[BaseException] = []
    node: BaseException | None = exc
    while node is not None and node not in chain:
        chain.append(node)
        node = node.__cause__ or getattr(node, "orig", None)
    sqlstate = next(
        (getattr(e, "sqlstate", None) for e in chain if getattr(e, "sqlstate", None)), None
    )
    text = next((str(e) for e in reversed(chain) if str(e)), type(exc).__name__)
    text = text.splitlines()[0]
    if any(isinstance(e, TimeoutError) for e in chain):
        findings.error(
            f"no answer from {where} within {timeout:g}s",
            fix="check the host and port in DATABASE_URL and that a firewall lets them through",
        )
    elif sqlstate == "3D000":
        name = parsed.database or parsed.username or "opsroom"
        options = [
            f"-h {parsed.host}" if parsed.host else "",
            f"-p {parsed.port}" if parsed.port else "",
            f"-U {parsed.username}" if parsed.username else "",
        ]
        command = " ".join(["createdb", *[o for o in options if o], name])
        findings.error(
            f'PostgreSQL at {where} has no database "{name}"', fix=f"create it with `{command}`"
        )
    elif sqlstate in ("28P01", "28000"):
        findings.error(
            f"PostgreSQL at {where} refused the login: {text}",
            fix="check the user and password in DATABASE_URL",
        )
    elif any(isinstance(e, OSError) for e in chain):
        findings.error(
            f"cannot connect to {where}: {text}",
            fix="is the database server running there? Check the host and port in DATABASE_URL",
        )
    else:
        findings.error(
            f"{where}: {type(chain[-1]).__name__}: {text}",
            fix="check DATABASE_URL and the database server's log",
        )


# --- HTTP helpers --------------------------------------------------------------------------


class _Unreachable(Exception):
    """A request got no usable answer; the message says why, without credentials."""


async def _request(
    session: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    timeout: float,
    **kwargs: Any,
) -> tuple[int, Any, Mapping[str, str]]:
    """(status, JSON body or None, headers); _Unreachable when nothing usable came back."""
    import aiohttp

    host = urlsplit(url).netloc or url
    try:
        async with session.request(
            method, url, timeout=aiohttp.ClientTimeout(total=timeout), **kwargs
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            return resp.status, body, resp.headers
    except TimeoutError:
        raise _Unreachable(f"no answer from {host} within {timeout:g}s") from None
    except aiohttp.InvalidURL:
        raise _Unreachable(f"{url} is not a valid URL") from None
    except (aiohttp.ClientError, OSError) as exc:
        reason = getattr(exc, "os_error", None) or exc
        detail = getattr(reason, "strerror", None) or type(reason).__name__
        raise _Unreachable(f"cannot reach {host} ({detail})") from None


# --- Slack ---------------------------------------------------------------------------------


def manifest_scopes(path: Path = MANIFEST) -> list[str] | None:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
        return [str(s) for s in data["oauth_config"]["scopes"]["bot"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


async def check_slack(
    settings: Settings, catalog: Catalog | None, findings: _Findings, timeout: float
) -> None:
    if settings.slack_bot_token is None:
        findings.skip("not configured (set SLACK_BOT_TOKEN to use Slack)")
        return
    import aiohttp

    base = settings.slack_api_url
    headers = {"Authorization": f"Bearer {_secret(settings.slack_bot_token)}"}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def call(method: str, **params: Any) -> tuple[int, Any, Mapping[str, str]]:
            return await _request(
                session, "POST", urljoin(base, method), data=params, timeout=timeout
            )

        try:
            status, body, resp_headers = await call("auth.test")
        except _Unreachable as exc:
            findings.error(f"auth.test: {exc}", fix="check SLACK_API_URL and the network")
            return
        if status != 200 or not isinstance(body, dict):
            findings.error(
                f"auth.test at {urljoin(base, 'auth.test')} answered HTTP {status}"
                + ("" if isinstance(body, dict) else " without a JSON body"),
                fix="SLACK_API_URL is the Web API base with its trailing slash "
                "(https://slack.com/api/)",
            )
            return
        if not body.get("ok"):
            error = body.get("error", "unknown error")
            findings.error(
                f"Slack refused SLACK_BOT_TOKEN ({error})",
                fix="copy the Bot User OAuth Token (xoxb-…) from OAuth & Permissions; reinstall "
                "the app to the workspace if it was revoked",
            )
            return
        findings.ok(
            f"auth.test: team {body.get('team')} ({body.get('team_id')}), bot user "
            f"@{body.get('user')} ({body.get('user_id')})"
        )
        granted = _check_scopes(resp_headers, findings)
        await _check_slack_announcement(call, catalog, granted, body.get("user"), findings)


def _check_scopes(headers: Mapping[str, str], findings: _Findings) -> set[str] | None:
    wanted = manifest_scopes()
    header = headers.get("X-OAuth-Scopes")
    if header is None:
        findings.warning("Slack did not say which scopes the token has (no X-OAuth-Scopes)")
        return None
    granted = {s.strip() for s in header.split(",") if s.strip()}
    if wanted is None:
        findings.warning(f"slack-manifest.yaml not found at {MANIFEST}: scopes not compared")
        return granted
    missing = [s for s in wanted if s not in granted]
    if missing:
        findings.error(
            f"the bot token lacks {len(missing)} scope{'s' if len(missing) > 1 else ''} of "
            f"slack-manifest.yaml: {', '.join(missing)}",
            fix="add them under OAuth & Permissions → Bot Token Scopes (or update the app from "
            "slack-manifest.yaml), then reinstall the app to the workspace",
        )
    else:
        findings.ok(f"the token has all {len(wanted)} scopes slack-manifest.yaml asks for")
    return granted


async def _check_slack_announcement(
    call: Callable[..., Awaitable[tuple[int, Any, Mapping[str, str]]]],
    catalog: Catalog | None,
    granted: set[str] | None,
    bot_name: Any,
    findings: _Findings,
) -> None:
    if catalog is None:
        findings.skip("announcement channel not checked: the catalog did not load")
        return
    name = catalog.announcement_channels.get("slack")
    if not name:
        findings.ok("no announcement channel (announcement_channels.slack in the catalog)")
        return
    wanted = name.lstrip("#")
    cursor = ""
    found: dict[str, Any] | None = None
    for _ in range(100):  # 20,000 channels
        try:
            status, body, _ = await call(
                "conversations.list",
                types="public_channel,private_channel",
                exclude_archived="true",
                limit="200",
                cursor=cursor,
            )
        except _Unreachable as exc:
            findings.error(f"conversations.list: {exc}")
            return
        if status != 200 or not isinstance(body, dict) or not body.get("ok"):
            error = body.get("error") if isinstance(body, dict) else f"HTTP {status}"
            findings.error(
                f"cannot list channels to find #{wanted} ({error})",
                fix="the app needs channels:read and groups:read; reinstall it after adding them",
            )
            return
        found = next((c for c in body.get("channels", []) if c.get("name") == wanted), None)
        cursor = (body.get("response_metadata") or {}).get("next_cursor") or ""
        if found is not None or not cursor:
            break
    invite = f"/invite @{bot_name}" if bot_name else "/invite the bot"
    if found is None:
        findings.error(
            f"announcement channel #{wanted} not found (a private one is only visible once the "
            "bot is in it)",
            fix=f"create #{wanted} and {invite} there, or change announcement_channels.slack "
            "in the catalog",
        )
    elif found.get("is_member"):
        findings.ok(f"announcement channel #{wanted} ({found.get('id')}): the bot is a member")
    elif not found.get("is_private") and granted is not None and "chat:write.public" in granted:
        findings.warning(
            f"the bot is not a member of the announcement channel #{wanted}; it can post "
            "there (chat:write.public) but sees nothing else",
            fix=f"{invite} in #{wanted}",
        )
    else:
        findings.error(
            f"the bot is not a member of the announcement channel #{wanted} and cannot post there",
            fix=f"{invite} in #{wanted}",
        )


# --- Discord -------------------------------------------------------------------------------


def _invite_url(application_id: str) -> str:
    return (
        f"https://discord.com/oauth2/authorize?client_id={application_id}"
        f"&scope=bot%20applications.commands&permissions={INVITE_PERMISSIONS}"
    )


def _base_permissions(guild: Mapping[str, Any], roles: list[str], user_id: str) -> int:
    if str(guild.get("owner_id")) == user_id:
        return ALL_PERMISSIONS
    by_id = {str(r["id"]): int(r["permissions"]) for r in guild.get("roles", [])}
    permissions = by_id.get(str(guild["id"]), 0)
    for role in roles:
        permissions |= by_id.get(str(role), 0)
    return ALL_PERMISSIONS if permissions & ADMINISTRATOR else permissions


def channel_permissions(
    base: int, channel: Mapping[str, Any], guild_id: str, roles: list[str], user_id: str
) -> int:
    """The bot's permissions in `channel` (Discord's documented overwrite order)."""
    if base & ADMINISTRATOR:
        return ALL_PERMISSIONS
    overwrites = channel.get("permission_overwrites") or []
    permissions = base
    for o in overwrites:
        if str(o["id"]) == guild_id:
            permissions = (permissions & ~int(o["deny"])) | int(o["allow"])
    allow = deny = 0
    for o in overwrites:
        if int(o.get("type", 0)) == 0 and str(o["id"]) in roles:
            allow, deny = allow | int(o["allow"]), deny | int(o["deny"])
    permissions = (permissions & ~deny) | allow
    for o in overwrites:
        if int(o.get("type", 0)) == 1 and str(o["id"]) == user_id:
            permissions = (permissions & ~int(o["deny"])) | int(o["allow"])
    return permissions


def _missing(permissions: int, wanted: Mapping[str, int]) -> list[str]:
    return [name for name, bit in wanted.items() if not permissions & (1 << bit)]


async def check_discord(
    settings: Settings, catalog: Catalog | None, findings: _Findings, timeout: float
) -> None:
    if settings.discord_token is None:
        findings.skip("not configured (set DISCORD_TOKEN to use Discord)")
        return
    import aiohttp

    base = settings.discord_api_url.rstrip("/")
    headers = {"Authorization": f"Bot {_secret(settings.discord_token)}", "User-Agent": USER_AGENT}
    async with aiohttp.ClientSession(headers=headers) as session:

        async def get(path: str) -> tuple[int, Any]:
            status, body, _ = await _request(session, "GET", base + path, timeout=timeout)
            return status, body

        try:
            await _discord_checks(get, settings, catalog, findings)
        except _Unreachable as exc:
            findings.error(f"{exc}", fix="check DISCORD_API_URL and the network")


async def _discord_checks(
    get: Callable[[str], Awaitable[tuple[int, Any]]],
    settings: Settings,
    catalog: Catalog | None,
    findings: _Findings,
) -> None:
    status, me = await get("/users/@me")
    if status == 401:
        findings.error(
            "Discord refused DISCORD_TOKEN (401 Unauthorized)",
            fix="copy the bot token from the Developer Portal → Bot → Reset Token",
        )
        return
    if status != 200 or not isinstance(me, dict):
        findings.error(
            f"GET {settings.discord_api_url.rstrip('/')}/users/@me answered HTTP {status}",
            fix="DISCORD_API_URL is the REST base with its version (https://discord.com/api/v10)",
        )
        return
    user_id = str(me["id"])
    findings.ok(f"logged in as {me.get('username')} ({user_id})")

    status, application = await get("/applications/@me")
    app_id = str(application.get("id", user_id)) if isinstance(application, dict) else user_id
    if status != 200 or not isinstance(application, dict):
        findings.warning(f"cannot read the application (HTTP {status}): intents not checked")
    elif int(application.get("flags") or 0) & MESSAGE_CONTENT_FLAGS:
        findings.ok("the Message Content intent is enabled")
    else:
        findings.error(
            "the Message Content intent is off: Discord refuses the bot's connection (4014) and "
            "timeline replies could not be read",
            fix="Developer Portal → your application → Bot → Privileged Gateway Intents → turn "
            "on Message Content Intent",
        )

    guild_id = await _discord_guild(get, settings, app_id, findings)
    if guild_id is None:
        return
    status, guild = await get(f"/guilds/{guild_id}")
    if status != 200 or not isinstance(guild, dict):
        findings.error(
            f"guild {guild_id} is not reachable (HTTP {status}): the bot is not in it",
            fix=f"invite the bot: {_invite_url(app_id)}, or correct DISCORD_GUILD_ID",
        )
        return
    findings.ok(f"guild {guild.get('name')} ({guild_id})")
    status, member = await get(f"/guilds/{guild_id}/members/{user_id}")
    status_c, channels = await get(f"/guilds/{guild_id}/channels")
    if status != 200 or status_c != 200 or not isinstance(channels, list):
        findings.error(
            f"cannot read the bot's roles or the channels of {guild.get('name')} "
            f"(HTTP {status}, {status_c})"
        )
        return
    roles = [str(r) for r in (member or {}).get("roles", [])]
    base = _base_permissions(guild, roles, user_id)
    if catalog is None:
        findings.skip("category and announcement channel not checked: the catalog did not load")
        return
    _discord_category(catalog, channels, base, guild_id, roles, user_id, app_id, findings)
    _discord_announcement(catalog, channels, base, guild_id, roles, user_id, findings)


async def _discord_guild(
    get: Callable[[str], Awaitable[tuple[int, Any]]],
    settings: Settings,
    app_id: str,
    findings: _Findings,
) -> str | None:
    if settings.discord_guild_id is not None:
        return str(settings.discord_guild_id)
    status, guilds = await get("/users/@me/guilds")
    if status != 200 or not isinstance(guilds, list):
        findings.error(f"cannot list the bot's servers (HTTP {status})")
        return None
    if not guilds:
        findings.error("the bot is in no server", fix=f"invite it: {_invite_url(app_id)}")
        return None
    if len(guilds) > 1:
        names = ", ".join(f"{g.get('name')} ({g.get('id')})" for g in guilds[:5])
        findings.warning(
            f"the bot is in {len(guilds)} servers and DISCORD_GUILD_ID is not set: commands sync "
            "globally (up to an hour) and mirrored incidents have no server to go to",
            fix=f"set DISCORD_GUILD_ID to one of: {names}",
        )
        return None
    return str(guilds[0]["id"])


def _discord_category(
    catalog: Catalog,
    channels: list[Any],
    base: int,
    guild_id: str,
    roles: list[str],
    user_id: str,
    app_id: str,
    findings: _Findings,
) -> None:
    name = catalog.discord_category
    category = next(
        (
            c
            for c in channels
            if c.get("type") == CATEGORY_CHANNEL and str(c.get("name", "")).lower() == name.lower()
        ),
        None,
    )
    if category is None:
        where = f'the server (the category "{name}" is created with the first incident)'
        permissions = base
    else:
        where = f'the category "{category["name"]}"'
        permissions = channel_permissions(base, category, guild_id, roles, user_id)
    missing = _missing(permissions, CATEGORY_PERMISSIONS)
    if missing:
        findings.error(
            f"the bot lacks {', '.join(missing)} in {where}",
            fix="allow them for the bot's role (Server Settings → Roles) and in the category's "
            f"permissions, or re-invite the bot with them: {_invite_url(app_id)}",
        )
    else:
        findings.ok(f"the bot has every permission incident channels need in {where}")


def _discord_announcement(
    catalog: Catalog,
    channels: list[Any],
    base: int,
    guild_id: str,
    roles: list[str],
    user_id: str,
    findings: _Findings,
) -> None:
    name = catalog.announcement_channels.get("discord")
    if not name:
        findings.ok("no announcement channel (announcement_channels.discord in the catalog)")
        return
    wanted = name.lstrip("#").lower()
    channel = next(
        (
            c
            for c in channels
            if c.get("type") in (TEXT_CHANNEL, ANNOUNCEMENT_CHANNEL)
            and str(c.get("name", "")).lower() == wanted
        ),
        None,
    )
    if channel is None:
        findings.error(
            f"announcement channel #{wanted} not found",
            fix=f"create a text channel #{wanted}, or change announcement_channels.discord in "
            "the catalog",
        )
        return
    missing = _missing(
        channel_permissions(base, channel, guild_id, roles, user_id), ANNOUNCE_PERMISSIONS
    )
    if missing:
        findings.error(
            f"the bot lacks {', '.join(missing)} in the announcement channel #{wanted}",
            fix=f"allow them for the bot in #{wanted}'s permissions",
        )
    else:
        findings.ok(f"announcement channel #{wanted} ({channel['id']}): the bot can post there")


# --- OpenAI-compatible endpoint ------------------------------------------------------------


async def check_openai(settings: Settings, findings: _Findings, timeout: float) -> None:
    if not settings.ai_enabled:
        findings.skip(
            "not configured (set OPENAI_API_KEY, or OPENAI_BASE_URL for a self-hosted endpoint): "
            "suggestions use the built-in heuristic"
        )
        return
    import aiohttp

    base = (settings.openai_base_url or DEFAULT_OPENAI_URL).rstrip("/")
    host = urlsplit(base).netloc or base
    model = settings.openai_model
    headers = {}
    if settings.openai_api_key is not None:  # a self-hosted server may take no key at all
        headers["Authorization"] = f"Bearer {_secret(settings.openai_api_key)}"
    async with aiohttp.ClientSession(headers=headers) as session:
        try:
            status, body, _ = await _request(session, "GET", f"{base}/models", timeout=timeout)
        except _Unreachable as exc:
            findings.error(f"{exc}", fix="check OPENAI_BASE_URL and that the server is running")
            return
        if status in (401, 403):
            findings.error(
                f"{host} refused the API key (HTTP {status})",
                fix="set OPENAI_API_KEY to a valid key for this endpoint",
            )
            return
        if status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
            offered = [str(m.get("id")) for m in body["data"] if isinstance(m, dict)]
            findings.ok(f"{base} answers ({_plural(len(offered), 'model')})")
            if model not in offered:
                close = difflib.get_close_matches(model, offered, n=1, cutoff=0.6)
                listed = ", ".join(offered[:8]) + (", …" if len(offered) > 8 else "")
                findings.error(
                    f'model "{model}" is not offered by {host}',
                    fix=(f"did you mean {close[0]}? " if close else "")
                    + f"set OPENAI_MODEL to one it offers: {listed or '(none listed)'}",
                )
                return
            findings.ok(f'model "{model}" is offered')
        else:
            findings.warning(
                f"{base}/models answered HTTP {status}: the model name is not checked",
                fix="OPENAI_BASE_URL is the API base, usually ending in /v1",
            )
        await _probe(session, base, host, model, settings.openai_budget_s, findings)


async def _probe(
    session: aiohttp.ClientSession,
    base: str,
    host: str,
    model: str,
    budget: float,
    findings: _Findings,
) -> None:
    request = {
        "model": model,
        "messages": [
            {"role": "system", "content": "You answer with JSON only."},
            {"role": "user", "content": 'Reply with {"answer": "ready"}.'},
        ],
        "response_format": {
            "type": "json_schema",
            "json_schema": {"name": "doctor_probe", "strict": True, "schema": PROBE_SCHEMA},
        },
    }
    started = time.monotonic()
    try:
        status, body, _ = await _request(
            session, "POST", f"{base}/chat/completions", json=request, timeout=budget
        )
    except _Unreachable as exc:
        findings.error(
            f"structured-output call: {exc} (OPENAI_BUDGET_S={budget:g})",
            fix="use a faster model or endpoint, or raise OPENAI_BUDGET_S; until then "
            "suggestions fall back to the built-in heuristic",
        )
        return
    elapsed = time.monotonic() - started
    if status != 200 or not isinstance(body, dict):
        message = ""
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            message = str(body["error"].get("message", ""))[:160]
        if status in (400, 422) and ("response_format" in message or "json_schema" in message):
            findings.warning(
                f"{host} does not do Structured Outputs (json_schema): suggestions use JSON mode, "
                "which a model may not follow",
                fix="use a server or model with Structured Outputs (or guided decoding)",
            )
        else:
            findings.error(
                f"structured-output call answered HTTP {status}"
                + (f": {message}" if message else ""),
                fix="check OPENAI_MODEL and the endpoint's log",
            )
        return
    try:
        choice = body["choices"][0]
        refusal = choice["message"].get("refusal")
        content = choice["message"].get("content")
    except (KeyError, IndexError, TypeError, AttributeError):
        findings.error(
            "the structured-output call answered without choices",
            fix="check that OPENAI_BASE_URL is an OpenAI-compatible chat endpoint",
        )
        return
    if refusal:
        findings.error(f"the model refused the structured-output call: {str(refusal)[:120]}")
        return
    try:
        answer = json.loads(content or "")
    except ValueError:
        answer = None
    if answer != {"answer": "ready"}:
        shown = (content or "")[:80].replace("\n", " ")
        findings.error(
            f'the model\'s answer is not in the schema it was given: "{shown}"',
            fix="use a model and server with Structured Outputs (json_schema), or guided decoding "
            "on a self-hosted server; until then suggestions may fall back to the heuristic",
        )
        return
    findings.ok(f"a structured-output call answered in schema in {elapsed:.1f}s")


# --- running it all ------------------------------------------------------------------------


async def _guarded(findings: _Findings, limit: float, work: Awaitable[None]) -> None:
    """Run one section so that nothing it does can stop the others, or hang."""
    try:
        async with asyncio.timeout(limit):
            await work
    except TimeoutError:
        findings.error(f"the {findings.section} checks took longer than {limit:g}s in all")
    except Exception as exc:  # a surprise in one section must not hide the others' findings
        findings.error(f"the check failed unexpectedly: {type(exc).__name__}: {exc}"[:300])


async def diagnose(*, timeout: float = 5.0) -> Report:
    """Run every check and return the report."""
    found = {name: _Findings(name) for name in SECTIONS}
    settings = load_settings_leniently(found["configuration"])
    env_file = dotenv_path()
    dotenv = dotenv_values_of(env_file)
    unknown = unknown_variables(
        environ=os.environ, dotenv=dotenv, catalog_path=settings.opsroom_catalog
    )
    read = variables(os.environ, dotenv)
    given = {v.name for v in read if v.set}
    check_configuration(settings, found["configuration"], unknown, env_file, given)
    catalog = check_catalog(settings, found["catalog"])
    # A section makes a few requests one after another; this bounds the whole of it.
    limit = timeout * 8 + settings.openai_budget_s
    await asyncio.gather(
        _guarded(found["database"], limit, check_database(settings, found["database"], timeout)),
        _guarded(found["slack"], limit, check_slack(settings, catalog, found["slack"], timeout)),
        _guarded(
            found["discord"], limit, check_discord(settings, catalog, found["discord"], timeout)
        ),
        _guarded(found["openai"], limit, check_openai(settings, found["openai"], timeout)),
    )
    report = Report(variables=read)
    for name in SECTIONS:
        report.checks.extend(found[name].checks)
    return report


def _wrapped(label: str, text: str, width: int = 100) -> list[str]:
    """`text` after a status column, continuation lines indented under it."""
    import textwrap

    return textwrap.wrap(
        text,
        width=width,
        initial_indent=f"  {label:<8} ",
        subsequent_indent=" " * 13,
        break_long_words=False,
        break_on_hyphens=False,
    ) or [f"  {label}"]


def render_text(report: Report) -> str:
    lines = ["Opsroom doctor"]
    for section in SECTIONS:
        lines += ["", TITLES[section]]
        if section == "configuration":
            for v in report.variables:
                if v.set:
                    value = "(secret, not shown)" if v.secret else v.value
                    lines += _wrapped("set", f"{v.name} = {value}  [{v.source}]")
            defaults = [v.name for v in report.variables if not v.set]
            if defaults:
                lines += _wrapped("default", ", ".join(defaults))
        for c in report.checks:
            if c.section != section:
                continue
            lines += _wrapped(c.status, c.message)
            if c.fix and c.status in ("warning", "error"):
                lines += _wrapped("", f"fix: {c.fix}")
    errors, warnings = report.count("error"), report.count("warning")
    summary = f"{_plural(errors, 'error')}, {_plural(warnings, 'warning')}"
    lines += [
        "",
        f"{summary}: fix the errors above, then run `opsroom doctor` again."
        if errors
        else f"{summary}: Opsroom is ready to run.",
    ]
    return "\n".join(lines)


def run_doctor(*, as_json: bool, timeout: float, echo: Callable[[str], None]) -> int:
    """Print the report; the exit code is 1 when any check is an error, else 0."""
    report = asyncio.run(diagnose(timeout=timeout))
    echo(json.dumps(report.to_json(), indent=2) if as_json else render_text(report))
    return 0 if report.ok else 1


__all__ = [
    "Check",
    "Report",
    "Variable",
    "diagnose",
    "run_doctor",
    "startup_warnings",
    "unknown_variables",
]
