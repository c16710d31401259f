"""Requests that cannot hurt, and inputs stored before they are acknowledged: replays, malformed
and oversized bodies, NUL bytes, texts longer than Slack takes, back-pressure and /healthz,
over real HTTP to Opsroom's app with the fake Slack behind it."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from adapters.http import Health, Readiness, create_app
from bot.catalog import Catalog
from bot.models import InboxItem, TimelineEntry
from bot.render import CUT_NOTE
from storage import inbox as inbox_db
from tests.adapters.slack_harness import SlackRig, serve, slack_rig
from tests.adapters.test_slack import declare, entries, opened_view, submit_values
from tests.conftest import BACKENDS
from tests.fakes import slack as fs
from tests.fakes.clock import FakeClock


@pytest.fixture
async def rig(tmp_path: Path, catalog: Catalog) -> AsyncIterator[SlackRig]:
    async with slack_rig(tmp_path, catalog) as r:
        yield r


async def count(rig: SlackRig, model: Any) -> int:
    async with rig.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def test_a_replayed_slash_command_or_view_submission_is_applied_once(
    rig: SlackRig,
) -> None:
    await rig.command("declare checkout is down for everyone")
    await rig.settle()
    view = opened_view(rig)
    submission = fs.view_submission_body(view, submit_values(view))
    assert [(await rig.post(submission)).status_code for _ in range(3)] == [200, 200, 200]
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    note = fs.slash_command_body("note rolled back 4.12", channel_id=channel,
                                 response_url=rig.fake.new_response_url())
    assert [(await rig.post(note)).status_code for _ in range(3)] == [200, 200, 200]
    await rig.settle()
    assert [text for kind, text in await entries(rig) if kind == "message"] == ["rolled back 4.12"]
    assert [c.params["name"] for c in rig.fake.calls_to("conversations.create")] == [
        rig.incident_channel(1)["name"]]
    assert sum("Note added" in t for t in rig.ephemeral_texts()) == 1


MALFORMED = [
    ("payload=%7Bnot-json", "application/x-www-form-urlencoded", None,
     "payload= is not valid JSON"),
    ('payload=["block_actions"]', "application/x-www-form-urlencoded", None,
     "payload= is not a JSON object"),
    ("[1, 2, 3]", "application/json", None, "the JSON body is not an object"),
    ("command=%2Fincident&text=note+x", "application/json", None, "the body is not valid JSON"),
    ("command=%2Fincident&text=note+x", "application/x-www-form-urlencoded", "soon",
     "X-Slack-Request-Timestamp is not an integer"),
]


@pytest.mark.parametrize(("body", "content_type", "timestamp", "reason"), MALFORMED)
async def test_a_malformed_signed_request_gets_400_with_a_reason_and_no_traceback(
    rig: SlackRig, caplog: pytest.LogCaptureFixture, body: str, content_type: str,
    timestamp: str | None, reason: str,
) -> None:
    headers = fs.sign(body, content_type=content_type)
    if timestamp is not None:
        headers["X-Slack-Request-Timestamp"] = timestamp
    with caplog.at_level(logging.INFO):
        response = await rig.http.post("/slack/events", content=body, headers=headers)
    await rig.settle()
    assert (response.status_code, response.json()) == (400, {"error": reason})
    assert await count(rig, InboxItem) == 0
    assert "Traceback" not in caplog.text and not [r for r in caplog.records if r.exc_info]
    assert [r.getMessage() for r in caplog.records if r.name == "adapters.http"] == [
        f"http: 400 for POST /slack/events from 127.0.0.1: {reason}"]


async def test_a_body_over_the_limit_is_refused_unread_and_logged_in_one_line(
    rig: SlackRig, caplog: pytest.LogCaptureFixture
) -> None:
    big = fs.slash_command_body("note " + "x" * 1_100_000, response_url=rig.fake.new_response_url())

    async def streamed() -> AsyncIterator[bytes]:  # no Content-Length: chunked
        for i in range(0, len(big), 65536):
            yield big[i:i + 65536]

    with caplog.at_level(logging.INFO):
        declared = await rig.http.post("/slack/events", content=big, headers=fs.sign(big))
        chunked = await rig.http.post("/slack/events", content=streamed(), headers=fs.sign(big))
        health = await rig.http.request("GET", "/healthz", content=big)
    assert [r.status_code for r in (declared, chunked, health)] == [413, 413, 413]
    await rig.settle()
    assert await count(rig, InboxItem) == 0
    lines = [r.getMessage() for r in caplog.records if r.name == "adapters.http"]
    assert len(lines) == 3 and all(line.startswith("http: 413 for ") for line in lines)
    assert "xxxx" not in caplog.text and fs.VERIFICATION_TOKEN not in caplog.text
    assert "hooks" not in caplog.text  # no response_url either
    small = fs.slash_command_body("list", response_url=rig.fake.new_response_url())
    assert (await rig.post(small)).status_code == 200  # the limit is for bodies over it only


@pytest.mark.parametrize("backend", BACKENDS)
async def test_nul_bytes_are_stripped_at_the_edge(
    tmp_path: Path, catalog: Catalog, backend: str
) -> None:
    async with slack_rig(tmp_path, catalog, backend) as rig:
        await declare(rig)
        await rig.settle()
        channel = rig.incident_channel(1)["id"]
        ack = await rig.command("note db\x00 failover\x00 started", channel=channel)
        assert ack.status_code == 200
        await rig.settle()
        assert (await entries(rig))[-1] == ("message", "db failover started")
        assert any(t == "💬 alice: db failover started" for t in rig.bot_texts(
            channel, next(m["ts"] for m in rig.fake.messages(channel)
                          if m["text"].startswith("🧵"))))


async def test_a_note_longer_than_slack_takes_is_delivered_cut_and_kept_whole(
    rig: SlackRig,
) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    long = "y" * 40_001
    await rig.command(f"note {long}", channel=channel)
    await rig.settle()
    assert (await entries(rig))[-1] == ("message", long)
    posted = [c for c in rig.fake.calls_to("chat.postMessage")
              if c.params.get("channel") == channel and "yyyy" in str(c.params.get("text"))]
    assert len(posted) == 1 and posted[0].ok, posted[0].response
    text = posted[0].params["text"]
    assert len(text) <= 40_000 and text.endswith(CUT_NOTE)
    assert not [c for c in rig.fake.calls if c.method.startswith("chat.") and not c.ok]


async def test_past_the_inbox_limit_commands_are_queued_with_a_note_then_applied(
    rig: SlackRig,
) -> None:
    # Rows of a platform nothing applies here stand for a backlog of 4.
    async with rig.store.transaction() as session:
        await inbox_db.put(session, [
            inbox_db.NewItem("discord", f"backlog{i}", "discord:1", "command", {})
            for i in range(4)], now=FakeClock().now())
    rig.edge.inbox.max_unapplied = 3
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    ack = await rig.command("note still applied", channel=channel)
    assert ack.status_code == 200
    assert ack.json() == {"text": "Queued: 4 ahead of it. Opsroom is busy; it will be applied "
                                  "in order and you will get the answer then.",
                          "response_type": "ephemeral"}
    await rig.settle()
    assert (await entries(rig))[-1] == ("message", "still applied")
    assert "Note added to the timeline of #1." in rig.ephemeral_texts()


async def test_health_reports_a_stuck_inbox_and_the_process_is_live(
    rig: SlackRig,
) -> None:
    clock = FakeClock()
    app = create_app(Readiness(), health=Health(rig.store, clock=clock))
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as http:
        ok = await http.get("/healthz")
        assert ok.status_code == 200 and ok.json()["database"] == "ok"
        async with rig.store.transaction() as session:  # nothing here applies these
            await inbox_db.put(session, [inbox_db.NewItem("discord", "k", "discord:1", "x", {})],
                               now=clock.now())
        clock.advance(seconds=59)
        assert (await http.get("/readyz")).status_code == 200
        clock.advance(seconds=2)
        stuck = await http.get("/healthz")
        ready = await http.get("/readyz")
        live = await http.get("/livez")
    assert stuck.status_code == 503 and ready.status_code == 503
    assert stuck.json()["reason"] == "inbox stuck: the oldest of 1 unapplied inputs is 61s old"
    assert stuck.json()["inbox"] == {"unapplied": 1, "oldest_unapplied_s": 61.0}
    assert (live.status_code, live.json()) == (200, {"live": True})
    assert json.loads(ready.text)["ready"] is False
    assert await count(rig, TimelineEntry) == 0
