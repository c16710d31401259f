"""Settings from the environment and `.env` (pydantic-settings). Every one is in .env.example."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from storage.engine import safe_url, sqlite_path, with_sqlite_path

APP_NAME = "opsroom"
DB_FILE = "opsroom.db"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    # Unset: ./opsroom.db when one is here, else one database per user (resolve_database).
    # After loading it always holds the URL in use, relative SQLite paths made absolute.
    database_url: str = ""
    opsroom_catalog: Path | None = None
    opsroom_log_level: str = "INFO"
    opsroom_http_host: str = "127.0.0.1"
    opsroom_http_port: int = Field(default=8080, ge=0, le=65535)
    # Where people reach the web view (https://opsroom.example.com): channel summaries link
    # to each incident's page there.
    opsroom_public_url: str | None = None
    # The header an SSO proxy in front sets to the signed-in user (e.g. X-Forwarded-User).
    # Unset by default: only set it when every request comes through that proxy.
    opsroom_web_trusted_header: str | None = None
    # Test-only: the instant the process's clock starts at (it then moves with real time).
    opsroom_fake_now: datetime | None = None
    opsroom_tick_s: float = Field(default=15.0, gt=0)  # the job worker's safety tick
    # The token Alertmanager, Grafana, PagerDuty-speaking tools and generic senders present.
    opsroom_alert_token: SecretStr | None = None
    # Posts per second to one chat channel (after a short burst); 0: no pacing (429s still are).
    opsroom_channel_rate: float = Field(default=1.0, ge=0)
    # How long finished jobs and deliveries that map no message are kept (bot/retention.py).
    opsroom_retention: str = "30d"
    opsroom_max_body_bytes: int = Field(default=1_048_576, ge=1024)
    opsroom_inbox_max: int = Field(default=5000, ge=1)
    opsroom_db_timeout_s: float = Field(default=10.0, gt=0)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    discord_token: SecretStr | None = None
    # false: this replica uses Discord's REST API only (no gateway), see README "Several replicas"
    discord_gateway: bool = True
    discord_api_url: str = "https://discord.com/api/v10"
    discord_guild_id: int | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_budget_s: float = Field(default=8.0, gt=0)
    opsroom_redact_patterns: list[str] = []  # JSON list of extra regexes to mask
    # Signs the on-call calendar feed keys (`opsroom oncall ics-key`); unset: feeds are off.
    opsroom_ics_secret: SecretStr | None = None

    _database: DatabaseLocation | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _resolve_database(self) -> Settings:
        self._database = resolve_database(self.database_url or None)
        self.database_url = self._database.url
        return self

    @field_validator("opsroom_fake_now")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        # A bare "2026-11-25T14:20:00" means UTC, like every time Opsroom shows.
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @property
    def ai_enabled(self) -> bool:
        return self.openai_api_key is not None or bool(self.openai_base_url)

    @property
    def slack_enabled(self) -> bool:
        return self.slack_bot_token is not None

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None

    def platforms(self) -> list[str]:
        names = [
            name
            for name, on in (("slack", self.slack_enabled), ("discord", self.discord_enabled))
            if on
        ]
        return names or ["console"]


def user_data_dir() -> Path:
    """Where Opsroom keeps a person's files: ~/.local/share/opsroom on Linux (XDG_DATA_HOME),
    ~/Library/Application Support/opsroom on macOS, %LOCALAPPDATA%\\opsroom on Windows."""
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


@dataclass(frozen=True)
class DatabaseLocation:
    """Which database Opsroom uses, and why."""

    url: str
    origin: str  # "DATABASE_URL", "current directory" or "user data directory"
    path: Path | None  # the absolute SQLite file; None for PostgreSQL

    @property
    def shown(self) -> str:
        """What to tell people: the absolute file for SQLite, the URL without password else."""
        return str(self.path) if self.path is not None else safe_url(self.url)

    @property
    def note(self) -> str:
        """One line for stderr at start: where the record is, and why there."""
        if self.origin == "current directory":
            return (
                f"database: {self.shown} (DATABASE_URL is unset and ./{DB_FILE} exists here, "
                "so Opsroom uses it)"
            )
        if self.origin == "user data directory":
            return f"database: {self.shown} (the default; set DATABASE_URL to use another)"
        return f"database: {self.shown}"


def database_location(settings: Settings) -> DatabaseLocation:
    """The database these settings use, and why that one (for `run`, `shell`, `db upgrade`
    and `doctor` to print)."""
    return settings._database or resolve_database(settings.database_url or None)


def resolve_database(
    database_url: str | None, *, cwd: Path | None = None, data_dir: Path | None = None
) -> DatabaseLocation:
    """Resolve DATABASE_URL: as set (relative SQLite paths made absolute against `cwd`);
    unset, ./opsroom.db when it exists (so an upgrade from the old default finds its record),
    else opsroom.db in the user data directory. Creates nothing; see `prepare_database_dir`."""
    here = (cwd or Path.cwd()).resolve()
    if database_url is not None:
        url = database_url
        path = sqlite_path(url)
        if path is not None:
            # Relative to where Opsroom was started, made explicit so it can be printed.
            path = path if path.is_absolute() else here / path
            url = with_sqlite_path(url, path)
        return DatabaseLocation(url, "DATABASE_URL", path)
    local = here / DB_FILE
    if local.is_file():
        return DatabaseLocation(f"sqlite:///{local}", "current directory", local)
    path = (data_dir or user_data_dir()) / DB_FILE
    return DatabaseLocation(f"sqlite:///{path}", "user data directory", path)


def prepare_database_dir(location: DatabaseLocation) -> None:
    """Create the user data directory for the default database. A directory named in
    DATABASE_URL is not created: a typo there must be an error, not a new empty record."""
    if location.origin == "user data directory" and location.path is not None:
        location.path.parent.mkdir(parents=True, exist_ok=True)
