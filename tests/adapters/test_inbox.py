"""The inbox worker (adapters/inbox.py) on a real store and service: order per queue, replays,
crashes between a row's effects and its mark, claims taken over, failures and back-pressure.

The edge here is a small hand-written one: a row is `/incident` text applied by the real
service; what it may do wrong (fail, be slow) is set per key by the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlmodel import col

from adapters.inbox import (
    MAX_ATTEMPTS,
    Answer,
    Inbox,
    InboxWorker,
    Step,
    Transient,
    clean,
    command_from_json,
    command_json,
)
from bot import commands as c
from bot.catalog import Catalog
from bot.models import EntryKind, InboxItem, InboxState, TimelineEntry
from bot.ports import Actor, ChannelRef
from storage.store import SqlStore
from tests.conftest import ALICE, build_core
from tests.fakes.clock import FakeClock
from tests.storage.support import same_database


@dataclass
class TextEdge:
    """Applies stored `/incident` text as the console would; records what it answered."""

    core: Any
    answered: list[str] = field(default_factory=list)
    fail_apply: dict[str, int] = field(default_factory=dict)  # key -> times to raise in apply
    fail_prepare: dict[str, int] = field(default_factory=dict)  # key -> times to be unreachable
    hold: dict[str, asyncio.Event] = field(default_factory=dict)  # key -> wait in prepare
    prepared: list[str] = field(default_factory=list)

    async def prepare(self, item: InboxItem) -> Step:
        self.prepared.append(item.key)
        if item.key in self.hold:
            await self.hold[item.key].wait()
        if self.fail_prepare.get(item.key, 0) > 0:
            self.fail_prepare[item.key] -= 1
            raise Transient("the platform is down")
        text = item.payload["text"]
        where = ChannelRef("console", item.payload["channel"])

        async def apply() -> Answer:
            reply = await self.core.service.handle_text(text, actor=ALICE, where=where)
            if self.fail_apply.get(item.key, 0) > 0:  # after the effects: a crash before commit
                self.fail_apply[item.key] -= 1
                raise RuntimeError("crashed after the note was written")

            async def answer() -> None:
                self.answered.append(reply.text)

            return answer

        return Step(apply)


@asynccontextmanager
async def running(worker: InboxWorker, grace: float = 5) -> AsyncIterator[InboxWorker]:
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        await worker.stop(grace=grace)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def new_worker(store: SqlStore, edge: TextEdge, **options: Any) -> InboxWorker:
    options.setdefault("poll", 0.02)
    return InboxWorker(store=store, appliers={"console": edge}, retry_base=0.01,
                       retry_cap=0.05, **options)


async def put_notes(inbox: Inbox, channel: str, texts: list[str],
                    key: Callable[[str], str] = lambda t: t) -> None:
    await asyncio.gather(*(
        inbox.put(platform="console", key=key(t), queue=f"console:{channel}", kind="command",
                  payload={"text": f"#1 note {t}", "channel": channel})
        for t in texts))


async def notes(store: SqlStore) -> list[str]:
    async with store.transaction() as s:
        found = await s.execute(
            select(col(TimelineEntry.text))
            .where(col(TimelineEntry.kind) == EntryKind.MESSAGE)
            .order_by(col(TimelineEntry.id)))
        return [str(t) for t in found.scalars()]


async def inbox_rows(store: SqlStore) -> dict[str, InboxItem]:
    async with store.transaction() as s:
        return {r.key: r for r in (await s.execute(select(InboxItem))).scalars()}


@pytest.fixture
async def declared(any_engine: AsyncEngine, catalog: Catalog) -> Any:
    core = build_core(any_engine, catalog, FakeClock())
    reply = await core.service.handle_text("declare checkout is down", actor=ALICE,
                                           where=core.general)
    assert reply.incident == 1
    return core


async def test_rows_are_applied_once_each_in_the_order_they_were_stored(declared: Any) -> None:
    store, edge = declared.store, TextEdge(declared)
    worker = new_worker(store, edge, batch=7)
    inbox = Inbox(store, on_stored=worker.wake)
    texts = [f"step {i:02}" for i in range(30)]
    async with running(worker):
        await put_notes(inbox, "C1", texts[:15])
        await put_notes(inbox, "C1", texts[5:10] + texts[15:])  # five replays among them
        assert await worker.drain(timeout=10)
    assert await notes(store) == texts
    assert edge.answered == ["Note added to the timeline of #1."] * 30
    rows = await inbox_rows(store)
    assert {r.state for r in rows.values()} == {InboxState.APPLIED} and len(rows) == 30
    assert {r.reply_to for r in rows.values()} == {None}


async def test_a_crash_after_the_effects_and_before_the_commit_keeps_neither(
    declared: Any,
) -> None:
    store, edge = declared.store, TextEdge(declared, fail_apply={"b": 2})
    worker = new_worker(store, edge)
    inbox = Inbox(store, on_stored=worker.wake)
    async with running(worker):
        await put_notes(inbox, "C1", ["a", "b", "c"])
        assert await worker.drain(timeout=10)
    # "b" wrote its note twice and failed twice: both rolled back with the row left unapplied,
    # and "c" waited for it; the third try applied it once.
    assert await notes(store) == ["a", "b", "c"]
    assert (await inbox_rows(store))["b"].attempts == 3


async def test_a_row_that_keeps_failing_is_given_up_and_its_queue_moves_on(
    declared: Any,
) -> None:
    store, edge = declared.store, TextEdge(declared, fail_apply={"bad": 99},
                                           fail_prepare={"late": 7})
    worker = new_worker(store, edge)
    inbox = Inbox(store, on_stored=worker.wake)
    async with running(worker):
        await put_notes(inbox, "C1", ["bad", "after"])
        await put_notes(inbox, "C2", ["late"])
        assert await worker.drain(timeout=10)
    rows = await inbox_rows(store)
    assert (rows["bad"].state, rows["bad"].attempts) == (InboxState.FAILED, MAX_ATTEMPTS)
    assert rows["bad"].last_error == "RuntimeError: crashed after the note was written"
    # An unreachable platform is waited out: its tries are not counted against the row.
    assert (rows["late"].state, rows["late"].attempts) == (InboxState.APPLIED, 1)
    assert sorted(await notes(store)) == ["after", "late"]


async def test_a_worker_whose_claim_was_taken_over_rolls_its_effects_back(
    declared: Any,
) -> None:
    store, clock = declared.store, FakeClock()
    slow = TextEdge(declared, hold={"a": asyncio.Event()})
    fast = TextEdge(declared)
    ttl = timedelta(seconds=30)
    first = new_worker(store, slow, clock=clock, holder="first", lease_ttl=ttl)
    second = new_worker(store, fast, clock=clock, holder="second", lease_ttl=ttl)
    await put_notes(Inbox(store), "C1", ["a", "b"])
    async with running(first):
        while "a" not in slow.prepared:  # `first` holds the queue and is stuck on "a"
            await asyncio.sleep(0.01)
        clock.advance(seconds=31)  # its lease and claims expire
        async with running(second):
            assert await second.drain(timeout=10)
        slow.hold["a"].set()  # `first` comes back and finds its claim gone
        assert await first.drain(timeout=10)
    assert await notes(store) == ["a", "b"]
    assert len(slow.answered) == 0 and len(fast.answered) == 2


async def test_two_workers_on_two_engines_apply_every_row_once_in_order_per_queue(
    declared: Any, any_engine: AsyncEngine
) -> None:
    store = declared.store
    queues = {"C1": [f"one {i:02}" for i in range(40)], "C2": [f"two {i:02}" for i in range(40)]}
    inbox = Inbox(store)
    async with same_database(any_engine, 4) as other_engine:
        other = SqlStore(other_engine)
        a = new_worker(store, TextEdge(declared), batch=5, holder="a")
        b = new_worker(other, TextEdge(declared), batch=5, holder="b")
        async with running(a), running(b):
            for i in range(0, 40, 10):
                await asyncio.gather(*(put_notes(inbox, q, texts[i:i + 10])
                                       for q, texts in queues.items()))
                a.wake()
                b.wake()
            assert await a.drain(timeout=20) and await b.drain(timeout=20)
    recorded = await notes(store)
    for texts in queues.values():
        assert [t for t in recorded if t in texts] == texts


async def test_past_the_limit_inputs_are_still_stored_and_told_how_many_are_ahead(
    declared: Any,
) -> None:
    inbox = Inbox(declared.store, max_unapplied=3)
    receipts = [await inbox.put(platform="console", key=f"k{i}", queue="console:C1",
                                kind="command", payload={"text": "x\x00y", "channel": "C1"})
                for i in range(5)]
    again = await inbox.put(platform="console", key="k4", queue="console:C1", kind="command",
                            payload={})
    assert [(r.new, r.ahead, r.behind) for r in receipts] == [
        (True, 0, False), (True, 1, False), (True, 2, False), (True, 3, False), (True, 4, True)]
    assert not again.new
    rows = await inbox_rows(declared.store)
    assert len(rows) == 5 and {r.payload["text"] for r in rows.values()} == {"xy"}


def test_clean_strips_nul_bytes_everywhere_and_commands_survive_json() -> None:
    assert clean({"a\x00": ["b\x00c", {"d": "\x00"}], "n": 1}) == {"a": ["bc", {"d": ""}], "n": 1}
    for command in (c.parse("#4 action add check dns @bob due tomorrow"), c.parse("ack"),
                    c.parse("timeline key"), c.AddNote(text="x", incident=None)):
        assert command_from_json(command_json(command)) == command
    with pytest.raises(ValueError):
        command_from_json({"command": "Actor"})
    assert Actor  # the domain types a command refers to stay out of the stored JSON


async def test_a_queue_held_by_a_dead_process_of_this_host_is_taken_over_at_once(
    declared: Any,
) -> None:
    import socket
    import sys

    from storage import inbox as db
    from storage.claims import take_lease

    gone = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import os; print(os.getpid())", stdout=asyncio.subprocess.PIPE)
    out, _ = await gone.communicate()
    dead = f"{socket.gethostname()}:{int(out)}:0ld"
    store, clock = declared.store, FakeClock()
    await put_notes(Inbox(store), "C1", ["a", "b"])
    async with store.transaction() as s:  # as the killed process left them: held for an hour
        assert await take_lease(s, "inbox:console:C1", holder=dead, now=clock.now(),
                                ttl=timedelta(hours=1))
        await db.claim_head(s, "console:C1", holder=dead, now=clock.now(),
                            ttl=timedelta(hours=1), limit=5)
    alive = f"{socket.gethostname()}:1:n0w"  # pid 1 runs: its lease is respected
    await put_notes(Inbox(store), "C2", ["c"])
    async with store.transaction() as s:
        assert await take_lease(s, "inbox:console:C2", holder=alive, now=clock.now(),
                                ttl=timedelta(hours=1))
    worker = new_worker(store, TextEdge(declared), clock=clock)
    async with running(worker, grace=0.1):
        for _ in range(200):
            if len(await notes(store)) == 2:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
    assert await notes(store) == ["a", "b"]  # "c" waits for its live holder's lease
