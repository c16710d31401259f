"""Opsroom's real HTTP app with its Slack edge, served over loopback against the fake Slack."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.http import Readiness, create_app
from adapters.inbox import InboxWorker
from adapters.slack.app import SlackEdge
from bot.catalog import Catalog
from bot.mirror import Backoff, Mirror
from bot.ports import Suggester
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.store import SqlStore
from tests.adapters.inbox_support import applying
from tests.conftest import close_engine, open_engine
from tests.fakes import slack as fs


@asynccontextmanager
async def serve(app: Any) -> AsyncIterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(
            app, host="127.0.0.1", port=0, log_level="warning", lifespan="off", access_log=False
        )
    )
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


@dataclass
class SlackRig:
    fake: fs.FakeSlack
    edge: SlackEdge
    service: IncidentService
    mirror: Mirror
    store: SqlStore
    http: httpx.AsyncClient
    worker: InboxWorker

    async def post(
        self,
        body: bytes,
        *,
        signed: bool = True,
        content_type: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        sent = (
            fs.sign(body, content_type=content_type)
            if signed
            else {"Content-Type": content_type or "application/x-www-form-urlencoded"}
        )
        sent.update(headers or {})
        return await self.http.post("/slack/events", content=body, headers=sent)

    async def command(
        self,
        text: str,
        channel: str | None = None,
        user: str = fs.ALICE,
        trigger_id: str | None = None,
    ) -> httpx.Response:
        body = fs.slash_command_body(
            text,
            user_id=user,
            channel_id=channel or self.fake.general_id,
            response_url=self.fake.new_response_url(),
            trigger_id=trigger_id,
        )
        return await self.post(body)

    async def event(
        self, event: dict[str, Any], event_id: str | None = None, retry: int | None = None
    ) -> httpx.Response:
        body = fs.event_callback(event, event_id=event_id)
        headers = (
            {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
            if retry
            else None
        )
        return await self.post(body, content_type="application/json", headers=headers)

    async def settle(self, timeout: float = 10.0) -> None:
        """Wait for work after the acks (the inbox applied, then the mirror's deliveries)."""
        for _ in range(3):
            await asyncio.sleep(0.02)
            await self.edge.filled_in()
            assert await self.worker.drain(timeout=timeout)
            assert await self.mirror.drain(timeout=timeout)

    def incident_channel(self, number: int = 1) -> dict[str, Any]:
        channel = next(
            (c for c in self._channels() if c["name"].startswith(f"inc-{number}-")), None
        )
        assert channel is not None, f"no channel for incident #{number}"
        return channel

    def _channels(self) -> list[dict[str, Any]]:
        created = [
            c.response["channel"]["id"] for c in self.fake.calls_to("conversations.create") if c.ok
        ]
        return [self.fake.channel(channel_id) for channel_id in created]

    def bot_texts(self, channel_id: str, thread_ts: str | None = None) -> list[str]:
        """What the bot posted in a channel (top level), or in one of its threads."""
        return [
            m["text"]
            for m in self.fake.messages(channel_id, thread_ts)
            if m.get("bot_id")
            and (thread_ts is not None or "thread_ts" not in m or m["thread_ts"] == m["ts"])
        ]

    def ephemeral_texts(self) -> list[str]:
        texts = [
            p["body"].get("text", "")
            for p in self.fake.response_posts
            if isinstance(p["body"], dict)
        ]
        texts += [e.get("text", "") for e in self.fake.ephemerals]
        return texts


@asynccontextmanager
async def slack_rig(
    tmp_path: Path,
    catalog: Catalog,
    backend: str = "sqlite",
    *,
    suggester: Suggester | None = None,
) -> AsyncIterator[SlackRig]:
    engine: AsyncEngine
    engine, schema = await open_engine(backend, tmp_path)
    async with fs.FakeSlack() as fake:
        store = SqlStore(engine)
        mirror = Mirror(
            store=store, ports={}, catalog=catalog, backoff=Backoff(base=0.001, cap=0.02)
        )
        service = IncidentService(
            store=store,
            catalog=catalog,
            suggester=suggester or HeuristicSuggester(),
            platforms=["slack"],
            notify=mirror.wake,
        )
        client = AsyncWebClient(token=fake.token, base_url=fake.api_url)
        async with applying(store, mirror) as (inbox, worker):
            edge = SlackEdge(
                service=service,
                store=store,
                catalog=catalog,
                client=client,
                signing_secret=fs.SIGNING_SECRET,
                inbox=inbox,
            )
            worker.appliers["slack"] = edge
            mirror.ports["slack"] = edge.chat
            await edge.check_auth()
            readiness = Readiness()
            async with (
                serve(create_app(readiness, edge.app, slack_secret=fs.SIGNING_SECRET)) as url,
                httpx.AsyncClient(base_url=url, timeout=10) as http,
            ):
                yield SlackRig(fake, edge, service, mirror, store, http, worker)
                await edge.close()
    await close_engine(engine, schema)
