"""What the REST API and the web view need from the rest of the house."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from bot.ports import ChannelRef
from bot.service import IncidentService
from storage.store import SqlStore


@dataclass
class WebContext:
    service: IncidentService
    store: SqlStore
    # OPSROOM_PUBLIC_URL: where people reach the web view (links in chat, cookies' Secure flag).
    public_url: str | None = None
    # OPSROOM_WEB_TRUSTED_HEADER: the header an SSO proxy in front sets to the signed-in user.
    trusted_header: str | None = None
    poll_seconds: float = 1.0  # how often a live page's stream looks for new entries
    heartbeat_seconds: float = 15.0
    stopping: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def base(self) -> str:
        return (self.public_url or "").rstrip("/")

    @property
    def secure_cookies(self) -> bool:
        return (self.public_url or "").lower().startswith("https://")

    def declare_where(self) -> ChannelRef:
        """Where an API declare opens its channel: the first configured chat platform."""
        return ChannelRef(platform=self.service.platforms[0], channel_id="")
