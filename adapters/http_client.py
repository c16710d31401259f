"""The HTTP client runbook `http` steps send with (bot.steps.http.HttpClient over aiohttp)."""

from __future__ import annotations

import logging
from typing import Any

import aiohttp

from bot.steps.http import HttpTimeout

logger = logging.getLogger(__name__)


class AiohttpClient:
    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def request(
        self, method: str, url: str, *, headers: dict[str, str], body: Any, timeout: float
    ) -> tuple[int, str]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        try:
            async with self._session.request(
                method,
                url,
                headers=headers,
                json=body if body is not None else None,
                timeout=aiohttp.ClientTimeout(total=timeout),
            ) as resp:
                return resp.status, await resp.text(errors="replace")
        except TimeoutError:
            raise HttpTimeout(url) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
