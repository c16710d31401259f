"""Several processes, one record: each queue is sent by one mirror at a time (a lease), a dead
process's queue is taken over, a post that may have gone out is looked for before it is sent
again, and a channel created by an attempt that died is adopted, not made twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.catalog import Catalog
from bot.mirror import Backoff, Mirror, channel_name
from bot.render import Message, entry_message
from tests.conftest import ALICE, BACKENDS, BOB, Core, build_core, close_engine, open_engine
from tests.fakes.clock import FakeClock
from tests.storage.support import same_database


def second_mirror(core: Core, **kwargs: object) -> Mirror:
    """Another process's mirror: its own holder, the same database and chat platform."""
    return Mirror(store=core.store, ports={"console": core.chat}, catalog=core.mirror.catalog,
                  backoff=Backoff(base=0.001, cap=0.01), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("backend", BACKENDS)
async def test_two_mirrors_sending_at_once_post_each_entry_once_in_order(
    backend: str, tmp_path: Path, catalog: Catalog, clock: FakeClock
) -> None:
    engine, schema = await open_engine(backend, tmp_path)
    try:
        async with same_database(engine, 6) as other_engine:
            core = build_core(engine, catalog, clock)
            numbers = []
            for i in range(3):
                reply = await core.service.handle_text(
                    f"declare queue {i} is broken for all customers", actor=ALICE,
                    where=core.general)
                numbers.append(reply.incident)
            assert await core.mirror.drain(timeout=10)
            # A second process: its own engine (connections) and mirror, the same chat.
            other = build_core(other_engine, catalog, clock)
            replica = Mirror(store=other.store, ports={"console": core.chat}, catalog=catalog,
                             backoff=Backoff(base=0.001, cap=0.01))
            names = [core.incident_channel(n) for n in numbers]
            for step in range(1, 21):
                for name in names:
                    where = core.where(name)
                    svc = core.service if step % 2 else other.service
                    assert (await svc.handle_text(f"note step {step}", actor=BOB,
                                                  where=where)).ok
            # Both processes send as fast as they can, over and over, at the same time.
            await asyncio.gather(*(m.deliver_due() for m in (core.mirror, replica)
                                   for _ in range(15)))
            assert await core.mirror.drain(timeout=10) and await replica.drain(timeout=10)
            for name in names:
                notes = [t for t in core.chat.texts(name, thread=True) if "step" in t]
                assert notes == [f"💬 bob: step {i}" for i in range(1, 21)], name
    finally:
        await close_engine(engine, schema)


async def test_an_answer_lost_after_the_platform_accepted_is_not_posted_twice(
    core: Core,
) -> None:
    await core.run("declare checkout errors for all customers")
    name = core.incident_channel(1)
    core.chat.lose_answer_next(1)  # the post arrives, its answer times out
    await core.run("note the cache was flushed", where=core.where(name))
    assert core.chat.texts(name, thread=True) == ["💬 alice: the cache was flushed"]
    assert "recheck" in core.chat.calls


async def test_a_dead_process_s_queue_is_taken_over_and_its_last_post_not_repeated(
    core: Core,
) -> None:
    await core.run("declare checkout errors for all customers")
    name = core.incident_channel(1)
    where = core.where(name)
    clock = FakeClock(start=core.clock.now())
    dead = second_mirror(core, clock=clock, holder="dead", lease_ttl=30)
    # The dead process took the queue and posted the note; it died before recording that.
    assert (await core.service.handle_text("note first", actor=ALICE, where=where)).ok
    async with core.store.unit() as u:
        pending = await u.pending_deliveries(per_queue=10)
        head = next(d for d in pending if d.entry_id is not None)
        link = await u.link(head.link_id)
        assert link is not None
        await u.take_lease(f"mirror:{link.id}:channel", holder="dead", now=clock.now(),
                           ttl=dead.lease_ttl)
    assert link.thread_id is not None and link.channel_id is not None
    await core.chat.post(channel_id=link.channel_id, thread_id=link.thread_id,
                         message=(await _message(core, head.entry_id)), key=f"opsroom-d{head.id}")

    survivor = second_mirror(core, clock=clock)
    await survivor.deliver_due()
    assert survivor.blocked, "took a queue another process still held"
    assert core.chat.texts(name, thread=True) == ["💬 alice: first"]
    clock.advance(seconds=31)  # the dead process's lease runs out
    assert await survivor.drain(timeout=5)
    assert core.chat.texts(name, thread=True) == ["💬 alice: first"]  # found, not re-sent
    await core.service.handle_text("note second", actor=ALICE, where=where)
    assert await survivor.drain(timeout=5)
    assert core.chat.texts(name, thread=True) == ["💬 alice: first", "💬 alice: second"]


async def _message(core: Core, entry_id: int | None) -> Message:
    async with core.store.unit() as u:
        entry = await u.entry(entry_id or 0)
        assert entry is not None
        incident = await u.incident_by_id(entry.incident_id)
        assert incident is not None
        return entry_message(entry, incident, cross_platform=False)


async def test_a_channel_created_by_an_attempt_that_died_is_adopted(core: Core) -> None:
    # The process created the channel and died before recording it.
    await core.service.handle_text("declare checkout errors for all customers", actor=ALICE,
                                   where=core.general)
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None
        expected = channel_name(core.mirror.catalog.channel_prefix, 1, incident.title)
    orphan = await core.chat.create_channel(name=expected, private=False, workspace="")
    assert await core.mirror.drain(timeout=5)
    names = [c.name for c in core.chat.channels.values() if c.name.startswith("inc-1-")]
    assert names == [expected]
    async with core.store.unit() as u:
        links = await u.links(incident.id or 0)
    assert [link.channel_id for link in links] == [orphan.id]
    assert core.chat.by_name(expected).pins, "the adopted channel got its pinned summary"


async def test_a_channel_of_the_same_name_that_is_not_the_bot_s_is_never_adopted(
    core: Core,
) -> None:
    await core.service.handle_text("declare checkout errors for all customers", actor=ALICE,
                                   where=core.general)
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None
        expected = channel_name(core.mirror.catalog.channel_prefix, 1, incident.title)
    core.chat._new_channel(expected, private=False)  # someone else's channel
    assert await core.mirror.drain(timeout=5)
    assert core.incident_channel(1) == expected  # the first one found, by name...
    async with core.store.unit() as u:
        (link,) = await u.links(incident.id or 0)
    assert link.channel_name == f"{expected}-2"  # ...but the incident's own is -2
