"""Settings from the environment and `.env` (pydantic-settings). Every one is in .env.example."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", env_ignore_empty=True
    )

    database_url: str = "sqlite:///opsroom.db"
    opsroom_catalog: Path | None = None
    opsroom_log_level: str = "INFO"
    opsroom_http_host: str = "127.0.0.1"
    opsroom_http_port: int = Field(default=8080, ge=0, le=65535)
    opsroom_tick_s: float = Field(default=15.0, gt=0)  # the job worker's safety tick

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"

    discord_token: SecretStr | None = None
    discord_api_url: str = "https://discord.com/api/v10"
    discord_guild_id: int | None = None

    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None
    openai_model: str = "gpt-4o-mini"
    openai_budget_s: float = Field(default=8.0, gt=0)
    opsroom_redact_patterns: list[str] = []  # JSON list of extra regexes to mask

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
