"""The mirror: every entry reaches every linked channel once, in order, through failures
and restarts."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.mirror import Backoff, Mirror, channel_name, slugify
from bot.models import Delivery, DeliveryState
from bot.ports import DeliveryRejected
from tests.conftest import Core
from tests.fakes.chat import RecordingChat

NOTES = [f"note step {i}" for i in range(1, 9)]


async def pending(core: Core) -> int:
    async with core.store.engine.connect() as conn:
        result = await conn.execute(
            select(func.count())
            .select_from(Delivery)
            .where(Delivery.state == DeliveryState.PENDING)
        )
        return int(result.scalar_one())


async def declare(core: Core) -> str:
    await core.run("declare checkout errors for many customers")
    return core.incident_channel(1)


def thread_texts(chat: RecordingChat, name: str) -> list[str]:
    return chat.texts(name, thread=True)


async def test_chat_failures_then_recovery_deliver_every_entry_once_in_order(core: Core) -> None:
    name = await declare(core)
    where = core.where(name)
    core.chat.fail_next(7)  # a chat outage across several deliveries
    for note in NOTES:
        assert (await core.service.handle_text(note, actor=_alice(), where=where)).ok
    assert await core.mirror.drain(timeout=5)

    expected = [f"💬 alice: step {i}" for i in range(1, 9)]
    assert thread_texts(core.chat, name) == expected
    assert await pending(core) == 0
    # a rate-limited API is waited out the same way
    core.chat.rate_limit_next(3)
    await core.run("note after the rate limit", where=where)
    assert thread_texts(core.chat, name)[-1] == "💬 alice: after the rate limit"
    assert len(thread_texts(core.chat, name)) == 9


async def test_a_failing_delivery_holds_back_the_ones_behind_it(core: Core) -> None:
    name = await declare(core)
    where = core.where(name)
    core.chat.fail_next(1000)
    await core.service.handle_text("note first", actor=_alice(), where=where)
    await core.service.handle_text("note second", actor=_alice(), where=where)
    assert not await core.mirror.drain(timeout=0.2)
    assert thread_texts(core.chat, name) == []  # nothing overtook the failing first note

    async with core.store.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(Delivery.attempts, Delivery.last_error)
                .where(Delivery.state == DeliveryState.PENDING)
                .order_by(Delivery.id)
            )
        ).all()
    assert rows[0].attempts > 1 and "503" in rows[0].last_error
    assert all(r.attempts == 0 for r in rows[1:])

    core.chat.fail_next(0)
    assert await core.mirror.drain(timeout=5)
    assert thread_texts(core.chat, name) == ["💬 alice: first", "💬 alice: second"]


async def test_restart_resumes_pending_deliveries(core: Core) -> None:
    """Deliveries wait in the database: a new process (a new Mirror) sends them, once."""
    name = await declare(core)
    where = core.where(name)
    core.chat.fail_next(1000)
    for note in NOTES[:3]:
        await core.service.handle_text(note, actor=_alice(), where=where)
    await core.mirror.drain(timeout=0.1)
    assert await pending(core) > 0

    core.chat.fail_next(0)
    restarted = Mirror(
        store=core.store,
        ports={"console": core.chat},
        catalog=core.service.catalog,
        backoff=Backoff(base=0.001, cap=0.01),
    )
    assert await restarted.drain(timeout=5)
    assert thread_texts(core.chat, name) == [
        "💬 alice: step 1",
        "💬 alice: step 2",
        "💬 alice: step 3",
    ]
    assert await restarted.drain(timeout=1)
    assert len(thread_texts(core.chat, name)) == 3


async def test_channel_creation_failure_midway_never_duplicates_the_channel(core: Core) -> None:
    # create succeeds, then invite, post or pin fail a few times: retries continue from there
    core.chat.fail_next(0)
    core.chat.calls.clear()

    original_invite = core.chat.invite
    failures = {"invite": 2}

    async def flaky_invite(**kw):  # type: ignore[no-untyped-def]
        if failures["invite"]:
            failures["invite"] -= 1
            raise ConnectionError("invite: connection reset")
        await original_invite(**kw)

    core.chat.invite = flaky_invite  # type: ignore[method-assign]
    await core.run("declare login broken for everyone")
    incident_channels = [c for c in core.chat.channels.values() if c.name.startswith("inc-")]
    assert len(incident_channels) == 1
    channel = incident_channels[0]
    assert channel.members == ["@alice"]
    summaries = [m for m in channel.messages if m.text.startswith("📋")]
    assert len(summaries) == 1 and channel.pins == [summaries[0].id]
    assert core.chat.calls.count("create_channel") == 1


async def test_summary_refreshes_are_coalesced(core: Core) -> None:
    name = await declare(core)
    where = core.where(name)
    for note in NOTES:
        await core.service.handle_text(note, actor=_alice(), where=where)
    before = core.chat.by_name(name).messages[0].edits
    assert await core.mirror.drain()
    summary = core.chat.by_name(name).messages[0]
    assert summary.edits == before + 1  # eight changes, one edit of the pinned summary


async def test_deliveries_are_sent_after_the_transaction_commits_even_without_drain(
    core: Core,
) -> None:
    """The background loop (as `opsroom run` uses it) picks up work when woken."""
    import asyncio

    task = asyncio.create_task(core.mirror.run(poll=0.05))
    try:
        await core.service.handle_text(
            "declare api latency high", actor=_alice(), where=core.general
        )
        for _ in range(100):
            if any(c.name.startswith("inc-1-") and c.threads for c in core.chat.channels.values()):
                break
            await asyncio.sleep(0.02)
        assert core.incident_channel(1) == "inc-1-api-latency-high"
    finally:
        await core.mirror.stop()
        await task  # run() returns once stopped


def test_channel_names() -> None:
    assert channel_name("inc", 42, "Checkout errors!") == "inc-42-checkout-errors"
    assert slugify("Ünïcode & émojis 🔥 everywhere") == "unicode-emojis-everywhere"
    assert slugify("!!!") == "incident"
    assert len(slugify("word " * 40)) <= 40


def _alice():  # type: ignore[no-untyped-def]
    from tests.conftest import ALICE

    return ALICE


async def test_an_announcement_channel_that_refuses_never_holds_up_the_incident(
    core: Core,
) -> None:
    core.chat.refusing.add(core.general.channel_id)  # the bot may not post in #general
    name = await declare(core)
    where = core.where(name)
    assert (await core.run("severity sev1", where=where)).ok  # announced, and in the channel
    await core.run("note still here", where=where)
    assert core.chat.texts(name)[-1] == "✏️ Severity changed from SEV2 to SEV1 (alice)"
    assert thread_texts(core.chat, name) == ["💬 alice: still here"]
    async with core.store.engine.connect() as conn:
        failed = (await conn.execute(
            select(Delivery.last_error).where(Delivery.state == DeliveryState.FAILED))).all()
    assert [f.last_error for f in failed] == ["not_in_channel", "not_in_channel"]
    assert await pending(core) == 0


async def test_one_channel_in_a_long_outage_does_not_starve_the_others(core: Core) -> None:
    name = await declare(core)
    where = core.where(name)
    core.chat.down.add(core.chat.by_name(name).id)
    for i in range(130):  # more than one pass reads per queue
        await core.service.handle_text(f"note line {i}", actor=_alice(), where=where)
    await core.service.handle_text("declare payments api down", actor=_alice(),
                                   where=core.general)
    assert not await core.mirror.drain(timeout=1)  # incident 1's channel is still down...
    second = core.chat.by_name(core.incident_channel(2))
    assert second.pins and second.threads  # ...yet incident 2 got its channel
    core.chat.down.clear()
    assert await core.mirror.drain(timeout=10)
    assert len(thread_texts(core.chat, name)) == 130


def test_backoff_is_capped_and_never_overflows() -> None:
    backoff = Backoff(base=1.0, cap=300.0)
    assert [backoff.delay(n) for n in (1, 2, 3, 10)] == [1.0, 2.0, 4.0, 300.0]
    assert backoff.delay(5000) == 300.0


async def test_a_person_who_cannot_be_invited_does_not_keep_the_channel_from_opening(
    core: Core,
) -> None:
    core.chat.refuse_invites = True
    name = await declare(core)
    channel = core.chat.by_name(name)
    assert channel.members == []
    assert channel.pins and channel.threads
    assert core.chat.texts(name)[-1].startswith("ℹ️ Incident declared")


async def test_a_refused_channel_can_be_tried_again_with_mirror(core: Core) -> None:
    original = core.chat.create_channel
    refusals = {"left": 1}

    async def refusing_create(**kw):  # type: ignore[no-untyped-def]
        if refusals["left"]:
            refusals["left"] -= 1
            raise DeliveryRejected("restricted_action")
        return await original(**kw)

    core.chat.create_channel = refusing_create  # type: ignore[method-assign]
    await core.service.handle_text("declare checkout errors for all customers",
                                   actor=_alice(), where=core.general)
    assert await core.mirror.drain(timeout=5)
    assert not any(c.name.startswith("inc-1-") for c in core.chat.channels.values())
    await core.run("#1 note recorded while the channel is missing")
    reply = await core.run("#1 mirror console")
    assert reply.ok, reply.text
    channel = core.chat.by_name(core.incident_channel(1))
    assert channel.pins and channel.threads
    assert core.chat.texts(channel.name)[-1] == "ℹ️ Mirrored to console (alice)"
