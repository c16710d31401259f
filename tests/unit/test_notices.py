"""Notices (bot/notices.py): messages outside incident channels, queued in a transaction and
sent once, in order per target, retried; a person's notify_webhook over real HTTP."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.mirror import Backoff, Mirror
from bot.models import DeliveryState, Notice
from bot.notices import queue_dm, queue_post, queue_update, queue_webhook
from bot.people import PersonSpec
from bot.render import Button, Message
from storage.store import SqlStore
from tests.fakes.chat import RecordingChat
from tests.fakes.clock import FakeClock
from tests.fakes.http_target import running_target

pytestmark = pytest.mark.asyncio


def mirror(store: SqlStore, chat: RecordingChat, catalog: Catalog, **kw: object) -> Mirror:
    return Mirror(store=store, ports={"console": chat}, catalog=catalog,
                  backoff=Backoff(base=0.001, cap=0.01), **kw)  # type: ignore[arg-type]


async def rows(store: SqlStore) -> list[Notice]:
    async with store.unit() as u:
        return await u.pending_notices(limit=1000) + [
            n for i in range(1, 50) if (n := await u.notice(i)) is not None
            and n.state is not DeliveryState.PENDING]


async def test_a_post_goes_to_the_named_channel_once_and_an_update_edits_it(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    store = SqlStore(any_engine)
    chat = RecordingChat(channels=("general", "triage"))
    m = mirror(store, chat, catalog)
    button = Button("Declare", "triage_declare", "7", "primary")
    for _ in range(2):  # queued twice (a replayed job): one row, one message
        async with store.unit() as u:
            await queue_post(u, key="triage:7", platform="console", channel="#triage",
                             message=Message(text="🔔 disk full", buttons=(button,)),
                             now=clock.now())
    assert await m.drain(timeout=5)
    posted = chat.by_name("triage").messages
    assert [p.text for p in posted] == ["🔔 disk full"]
    assert posted[0].message.buttons == (button,)
    async with store.unit() as u:
        await queue_update(u, key="triage:7:done", of="triage:7",
                           message=Message(text="🔔 disk full: declared #3 by @alice"),
                           now=clock.now())
        assert await queue_update(u, key="x", of="no-such-notice",
                                  message=Message(text="?"), now=clock.now()) is None
    assert await m.drain(timeout=5)
    assert [(p.text, p.edits) for p in posted] == [("🔔 disk full: declared #3 by @alice", 1)]
    assert len(chat.by_name("triage").messages) == 1


async def test_failures_are_retried_in_order_and_a_missing_channel_is_skipped_with_a_reason(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    store = SqlStore(any_engine)
    chat = RecordingChat(channels=("general", "oncall"))
    m = mirror(store, chat, catalog)
    chat.fail_next(2)
    async with store.unit() as u:
        for i in range(3):
            await queue_post(u, key=f"shift:{i}", platform="console", channel="oncall",
                             message=Message(text=f"shift {i}"), now=clock.now())
    assert await m.drain(timeout=5)
    async with store.unit() as u:
        await queue_post(u, key="nowhere", platform="console", channel="gone",
                         message=Message(text="lost?"), now=clock.now())
        await queue_dm(u, key="dm:1", platform="console", user="@bob",
                       message=Message(text="you are paged"), now=clock.now())
        await queue_post(u, key="other-platform", platform="discord", channel="oncall",
                         message=Message(text="not connected"), now=clock.now())
    assert await m.drain(timeout=5)
    assert chat.texts("oncall") == ["shift 0", "shift 1", "shift 2"]
    assert [(who, msg.text) for who, msg in chat.dms] == [("@bob", "you are paged")]
    async with store.unit() as u:
        gone = await u.notice_by_key("nowhere")
        other = await u.notice_by_key("other-platform")
        first = await u.notice_by_key("shift:0")
    assert gone is not None and gone.state is DeliveryState.SKIPPED
    assert gone.last_error == "channel #gone not found on console"
    assert other is not None and other.state is DeliveryState.SKIPPED
    assert other.last_error == "discord is not connected"
    assert first is not None and first.state is DeliveryState.SENT and first.attempts == 3


async def test_two_senders_send_each_notice_once(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    store = SqlStore(any_engine)
    chat = RecordingChat(channels=("general", "a", "b"))
    one, two = mirror(store, chat, catalog), mirror(store, chat, catalog)
    async with store.unit() as u:
        for i in range(30):
            await queue_post(u, key=f"n{i}", platform="console", channel="ab"[i % 2],
                             message=Message(text=str(i)), now=clock.now())
    for _ in range(20):
        await asyncio.gather(one.deliver_due(), two.deliver_due())
    assert chat.texts("a") == [str(i) for i in range(0, 30, 2)]
    assert chat.texts("b") == [str(i) for i in range(1, 30, 2)]


async def test_a_webhook_is_called_with_its_template_filled_and_secrets_kept_out(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from adapters.http_client import AiohttpClient

    store = SqlStore(any_engine)
    chat = RecordingChat()
    hooked = catalog.model_copy(update={"people": [
        PersonSpec.model_validate({"name": "alice", "notify_webhook": {
            "url_env": "ALICE_SMS", "headers_env": {"Authorization": "SMS_TOKEN"},
            "body": {"to": "+4915550000", "text": "#{incident} {title}: {text}"}}}),
        PersonSpec.model_validate({"name": "bob", "notify_webhook": "http://127.0.0.1:9/"}),
        PersonSpec(name="carol"),
    ]})
    http = AiohttpClient()
    async with running_target() as target:
        target.plan = [(503, "busy"), (200, "{}")]
        env = {"ALICE_SMS": f"{target.url}/sms?token=s3cret", "SMS_TOKEN": "Bearer t0ken"}
        m = mirror(store, chat, hooked, http=http, env=env)
        fields = {"incident": "12", "title": "Checkout down", "severity": "sev1",
                  "text": "📟 Paged @alice (ops, step 1)", "link": ""}
        async with store.unit() as u:
            a = await queue_webhook(u, key="page:1:alice", person="alice", fields=fields,
                                    catalog=hooked, now=clock.now())
            again = await queue_webhook(u, key="page:1:alice", person="alice",
                                        fields=fields, catalog=hooked, now=clock.now())
            none = await queue_webhook(u, key="page:1:carol", person="carol", fields=fields,
                                       catalog=hooked, now=clock.now())
        assert a is not None and again is not None and a.id == again.id and none is None
        assert await m.drain(timeout=5)
        await http.close()
    assert [s["body"] for s in target.seen] == [
        {"to": "+4915550000", "text": "#12 Checkout down: 📟 Paged @alice (ops, step 1)"}] * 2
    assert target.seen[-1]["path"] == "/sms"
    assert target.seen[-1]["headers"]["Authorization"] == "Bearer t0ken"
    assert target.seen[0]["headers"]["Idempotency-Key"] == target.seen[1]["headers"][
        "Idempotency-Key"]
    async with store.unit() as u:
        row = await u.notice_by_key("page:1:alice")
    assert row is not None and row.state is DeliveryState.SENT
    assert "s3cret" not in caplog.text and "t0ken" not in caplog.text
    assert "s3cret" not in str(row.model_dump()) and "t0ken" not in str(row.model_dump())


async def test_a_refused_webhook_fails_for_good_and_an_unset_variable_is_named(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    from adapters.http_client import AiohttpClient

    store = SqlStore(any_engine)
    hooked = catalog.model_copy(update={"people": [
        PersonSpec.model_validate({"name": "alice", "notify_webhook": {"url_env": "A_URL"}}),
        PersonSpec.model_validate({"name": "bob", "notify_webhook": {"url_env": "B_URL"}}),
    ]})
    http = AiohttpClient()
    async with running_target() as target:
        target.plan = [(400, '{"error": "bad number"}')]
        m = mirror(store, RecordingChat(), hooked, http=http, env={"A_URL": target.url})
        async with store.unit() as u:
            for who in ("alice", "bob"):
                await queue_webhook(u, key=f"p:{who}", person=who, fields={}, catalog=hooked,
                                    now=clock.now())
        assert await m.drain(timeout=5)
        await http.close()
    assert len(target.seen) == 1
    assert target.seen[0]["body"]["person"] == "alice"
    async with store.unit() as u:
        alice, bob = await u.notice_by_key("p:alice"), await u.notice_by_key("p:bob")
    assert alice is not None and alice.state is DeliveryState.FAILED
    assert alice.last_error == 'alice\'s notify_webhook answered 400: {"error": "bad number"}'
    assert bob is not None and bob.state is DeliveryState.SKIPPED
    assert bob.last_error == "B_URL is not set: bob's notify_webhook has no URL"
