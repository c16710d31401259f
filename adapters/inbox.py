"""The durable inbox: every platform input is stored before it is acknowledged, then applied.

Intake (`Inbox.put`, called by an edge before it acknowledges): the input is stripped of NUL
bytes, written to the `inbox` table with the platform's own id as its key, and committed.
Inputs arriving together are written in one transaction (a group commit), so storing costs
one commit per burst, not one per request. A key stored before (a replay of the same signed
request, a retried event) is not stored again: the edge acknowledges it and nothing happens.

Apply (`InboxWorker`, started by `opsroom run`): rows are applied per queue (a channel, e.g.
"slack:C123") in the order they were stored, by whichever process holds the queue's `Lease`
(storage/claims.py); a process that dies loses its lease when it expires (at once when it
ran on this host and its restart finds it gone) and another takes over. For each batch:

1. the edge *prepares* each row: the platform reads it needs (who a user is, the message a
   reaction is on), outside any transaction, so a slow platform never holds the database;
2. the worker opens one transaction with the store in *ambient* mode (SqlStore.transaction):
   the service's own units become savepoints of it, so a row's effects and the update that
   marks it applied commit together, or not at all. A crash before the commit leaves the row
   unapplied and its effects unwritten; after the commit it is applied and never re-applied.
   The mark is conditional on our claim still holding, so a worker whose claim was taken over
   rolls its effects back instead of applying a row twice;
3. after the commit the answers (ephemeral replies) are sent: at most once, so a crash right
   there loses an answer, never a change.

Steps that wait on something slow (a model writing a catch-up) and change nothing run outside
the transaction and are marked applied after: at-least-once, and repeating them is harmless.
A row whose apply raises is retried with backoff (its queue waits, to keep the order) and after
`MAX_ATTEMPTS` is marked failed so its queue moves on; a platform that cannot be reached
(`Transient`) is waited out without counting attempts. Storing and applying take turns in one
process (`Turns`), so under load acknowledgements keep pace with what is applied instead of
piling up a backlog.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Protocol

from bot import commands as c
from bot import oncall_commands
from bot.models import InboxItem
from bot.ports import Clock, SystemClock
from storage import inbox as db
from storage.claims import (
    drop_lease,
    holder_gone,
    holder_id,
    lease_holder,
    release,
    take_lease,
)
from storage.inbox import NewItem
from storage.store import SqlStore

logger = logging.getLogger(__name__)

DEFAULT_MAX_UNAPPLIED = 5000
MAX_ATTEMPTS = 5
GROUP_MAX = 500  # rows written in one intake transaction at most
LOOK_EVERY = 0.02  # seconds between two looks for queues with work
BATCH_SECONDS = 0.3  # a transaction applying rows takes no more rows after this long


def clean(value: Any) -> Any:
    """`value` with every NUL byte removed from its strings (PostgreSQL refuses them in text)."""
    if isinstance(value, str):
        return value.replace("\x00", "") if "\x00" in value else value
    if isinstance(value, dict):
        return {clean(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def queued_note(ahead: int) -> str:
    return (
        f"Queued: {ahead} ahead of it. Opsroom is busy; it will be applied in order and you "
        "will get the answer then."
    )


# --- commands as stored JSON ------------------------------------------------------------------


def command_json(command: c.Command) -> dict[str, Any]:
    """A parsed command as JSON, to store and rebuild with `command_from_json`."""
    out: dict[str, Any] = {"command": type(command).__name__}
    for f in dataclasses.fields(command):
        value = getattr(command, f.name)
        if isinstance(value, c.DueSpec):
            value = {"due": value.text}
        elif isinstance(value, timedelta):  # `/oncall override ... for 4h`
            value = {"seconds": value.total_seconds()}
        out[f.name] = value
    return out


def command_from_json(data: dict[str, Any]) -> c.Command:
    name = str(data.get("command"))
    # /incident's commands, then /oncall's (their own module, the same Command base).
    cls = getattr(c, name, None) or getattr(oncall_commands, name, None)
    if not (isinstance(cls, type) and issubclass(cls, c.Command)):
        raise ValueError(f"not a command: {data.get('command')!r}")
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name in data:
            value = data[f.name]
            if isinstance(value, dict) and "due" in value:
                value = c.DueSpec(value["due"])
            elif isinstance(value, dict) and "seconds" in value:
                value = timedelta(seconds=value["seconds"])
            kwargs[f.name] = value
    return cls(**kwargs)


# --- intake -----------------------------------------------------------------------------------


class Turns:
    """Storing inputs and applying them take turns in this process.

    Storing is cheap and applying is not, and on one event loop fifty requests in flight get
    many more turns than one worker: left alone, a busy Opsroom acknowledges several times
    faster than it applies, and the backlog only grows. So a batch being applied makes the
    next group commit wait for it, and acknowledgements keep pace with what is applied. The
    wait is at most `patience` seconds: an acknowledgement stays well within Slack's 3.
    """

    def __init__(self, patience: float = 1.0) -> None:
        self.patience = patience
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def applying(self) -> AsyncIterator[None]:
        async with self._lock:
            yield

    @asynccontextmanager
    async def storing(self) -> AsyncIterator[None]:
        try:
            await asyncio.wait_for(self._lock.acquire(), self.patience)
            turn = True
        except TimeoutError:
            turn = False  # a batch is slow (a busy database): store anyway
        try:
            yield
        finally:
            if turn:
                self._lock.release()



@dataclass(frozen=True)
class Receipt:
    """An input as stored: `new` is False for a replay (nothing to do); `ahead` counts the
    rows waiting before it, and `behind` says the inbox is past OPSROOM_INBOX_MAX."""

    new: bool
    ahead: int
    behind: bool


class Inbox:
    """Stores inputs before they are acknowledged; see the module docstring."""

    def __init__(
        self,
        store: SqlStore,
        *,
        max_unapplied: int = DEFAULT_MAX_UNAPPLIED,
        clock: Clock | None = None,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.max_unapplied = max_unapplied
        self.clock: Clock = clock or SystemClock()
        self.on_stored = on_stored or (lambda: None)
        self.turns = Turns()  # give it to the InboxWorker of this process
        # Inputs waiting for the next group commit: one per request in flight, never more.
        self._waiting: list[tuple[NewItem, asyncio.Future[db.Stored]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def put(
        self,
        *,
        platform: str,
        key: str,
        queue: str,
        kind: str,
        payload: dict[str, Any],
        reply_to: str | None = None,
    ) -> Receipt:
        """Store one input and commit it; raises when the database cannot take it (then the
        edge must not acknowledge, so the platform or the person tries again)."""
        item = NewItem(platform, clean(key), clean(queue), kind, clean(payload), reply_to)
        done: asyncio.Future[db.Stored] = asyncio.get_running_loop().create_future()
        self._waiting.append((item, done))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write())
        stored = await done
        if stored.new:
            self.on_stored()
        return Receipt(stored.new, stored.ahead, stored.ahead > self.max_unapplied)

    async def _write(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting[:GROUP_MAX], self._waiting[GROUP_MAX:]
            batch = [(item, done) for item, done in batch if not done.done()]
            if not batch:
                continue
            try:
                async with self.turns.storing(), self.store.transaction() as session:
                    stored = await db.put(session, [i for i, _ in batch], now=self.clock.now())
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for (_, done), result in zip(batch, stored, strict=True):
                if not done.done():
                    done.set_result(result)

    async def close(self) -> None:
        if self._writer is not None:
            await asyncio.gather(self._writer, return_exceptions=True)


# --- apply ------------------------------------------------------------------------------------

Answer = Callable[[], Awaitable[None]]


@dataclass(frozen=True)
class Step:
    """How to apply one row: `apply` makes the record changes (inside the worker's transaction)
    and returns what to tell the person, sent after the commit. `alone`: a slow step that
    changes nothing (a catch-up by the model), run outside the transaction."""

    apply: Callable[[], Awaitable[Answer | None]]
    alone: bool = False


class Applier(Protocol):
    """An edge's half of applying its rows."""

    async def prepare(self, item: InboxItem) -> Step | None:
        """The platform reads a row needs, then its Step; None when there is nothing to do.
        Raise only for trouble that may pass (the row is tried again later)."""
        ...


class Transient(Exception):
    """The platform cannot be reached just now: try the row again later, without counting an
    attempt (an outage must not make stored inputs fail for good)."""


_TRANSIENT: tuple[type[BaseException], ...] = (Transient, OSError, TimeoutError)
try:
    import aiohttp

    _TRANSIENT = (*_TRANSIENT, aiohttp.ClientError)
except ImportError:  # pragma: no cover
    pass


class ClaimLost(Exception):
    """Our claim on a row expired and another worker took it over: it applies the row."""


class InboxWorker:
    """Applies stored inputs, per queue and in order; see the module docstring."""

    def __init__(
        self,
        *,
        store: SqlStore,
        appliers: Mapping[str, Applier],
        notify: Callable[[], None] | None = None,
        clock: Clock | None = None,
        holder: str | None = None,
        batch: int = 50,
        concurrency: int = 4,
        lease_ttl: timedelta = timedelta(seconds=30),
        poll: float = 1.0,
        retry_base: float = 0.5,
        retry_cap: float = 30.0,
        turns: Turns | None = None,
    ) -> None:
        self.store = store
        self.appliers = dict(appliers)
        self.notify = notify or (lambda: None)
        self.clock: Clock = clock or SystemClock()
        self.holder = holder or holder_id()
        self.batch = batch
        self.concurrency = concurrency
        self.lease_ttl = lease_ttl
        self.poll = poll
        self.retry_base, self.retry_cap = retry_base, retry_cap
        self.turns = turns or Turns()  # the Inbox's, so storing waits for applying (see Turns)
        self._wake = asyncio.Event()
        self._active: dict[str, asyncio.Task[None]] = {}
        self._retry_at: dict[str, float] = {}  # queue -> loop time; only queues that failed
        self._answering: dict[str, asyncio.Task[None]] = {}  # queue -> its last batch's answers
        self._stopping = False
        self._stopped = asyncio.Event()
        self._stopped.set()  # not running yet
        self._outage = 0.0  # the current wait for an unreachable platform (0: none)

    def wake(self) -> None:
        self._wake.set()

    # --- the loop -----------------------------------------------------------------------

    async def run(self) -> None:
        """Apply rows until stopped; survives the database going away and coming back."""
        loop = asyncio.get_running_loop()
        self._stopped.clear()
        try:
            await self._loop(loop)
        finally:
            self._stopped.set()

    async def _loop(self, loop: asyncio.AbstractEventLoop) -> None:
        delay = 0.0
        while not self._stopping:
            self._wake.clear()
            try:
                await self._start_drains()
                delay = 0.0
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                delay = min(max(delay * 2, 0.5), 10.0)
                logger.warning(
                    "inbox: cannot read the inbox (%s); trying again in %.1fs",
                    type(exc).__name__, delay,
                )
            timeout = delay or self._next_timeout(loop.time())
            try:
                await asyncio.wait_for(self._wake.wait(), timeout)
            except TimeoutError:
                pass
            # Every stored input wakes the loop; looking for queues at most this often keeps
            # that look (a GROUP BY over what waits) from competing with the work itself.
            await asyncio.sleep(LOOK_EVERY)

    def _next_timeout(self, now: float) -> float:
        waits = [at - now for at in self._retry_at.values()]
        return max(0.01, min([self.poll, *waits]))

    async def _start_drains(self) -> None:
        free = self.concurrency - len(self._active)
        if free <= 0 or not self.appliers:
            return
        now = asyncio.get_running_loop().time()
        async with self.store.transaction() as session:
            queues = await db.pending_queues(
                session, platforms=list(self.appliers), limit=self.concurrency * 4
            )
        for queue in queues:
            if free <= 0:
                break
            if queue in self._active or self._retry_at.get(queue, 0.0) > now:
                continue
            task = asyncio.create_task(self._drain(queue), name=f"inbox:{queue}")
            self._active[queue] = task
            task.add_done_callback(lambda _t, q=queue: self._finished(q))
            free -= 1

    def _finished(self, queue: str) -> None:
        self._active.pop(queue, None)
        self._wake.set()

    async def _left(self) -> int:
        async with self.store.transaction() as session:
            queues = await db.pending_queues(session, platforms=list(self.appliers), limit=1)
        return len(queues)

    # --- one queue ----------------------------------------------------------------------

    async def _drain(self, queue: str) -> None:
        lease = f"inbox:{queue}"
        try:
            while not self._stopping:
                now = self.clock.now()
                async with self.store.transaction() as session:
                    if not await self._take(session, lease, now):
                        return  # another process is applying this queue
                    items = await db.claim_head(
                        session, queue, holder=self.holder, now=now, ttl=self.lease_ttl,
                        limit=self.batch,
                    )
                if not items:
                    self._retry_at.pop(queue, None)  # emptied: any backoff is over
                    self._outage = 0.0
                    break
                applied = await self._apply(items)
                if applied < len(items):  # a row failed: the queue waits (see _count_failure)
                    async with self.store.transaction() as session:
                        await release(
                            session, InboxItem, [i.id for i in items[applied:] if i.id],
                            holder=self.holder,
                        )
                    break
        except asyncio.CancelledError:
            raise
        except ClaimLost:
            logger.info("inbox: %s was taken over by another worker", queue)
        except Exception as exc:
            self._back_off(queue)
            logger.warning("inbox: applying %s failed (%s); trying again later", queue,
                           type(exc).__name__)
            return
        finally:
            answering = self._answering.pop(queue, None)
            if answering is not None:
                await asyncio.gather(answering, return_exceptions=True)
        try:
            async with self.store.transaction() as session:
                await drop_lease(session, lease, holder=self.holder)
        except Exception:  # it expires by itself
            logger.debug("inbox: could not drop the lease of %s", queue)

    async def _take(self, session: Any, lease: str, now: Any) -> bool:
        """Take the queue's lease; one held by a dead process of this host (killed, then
        restarted) is taken over at once instead of when it expires."""
        if await take_lease(session, lease, holder=self.holder, now=now, ttl=self.lease_ttl):
            return True
        holder = await lease_holder(session, lease, now=now)
        if holder is None or not self._dead_here(holder):
            return False
        freed = await db.release_holder(session, holder)
        await drop_lease(session, lease, holder=holder)
        logger.info("inbox: %s was held by %s, a process that is gone; %d rows taken over",
                    lease, holder, freed)
        return await take_lease(session, lease, holder=self.holder, now=now, ttl=self.lease_ttl)

    def _dead_here(self, holder: str) -> bool:
        return holder_gone(holder, me=self.holder)

    def _back_off(self, queue: str, attempts: int = 1) -> None:
        delay = min(self.retry_cap, self.retry_base * 2 ** max(0, attempts - 1))
        self._retry_at[queue] = asyncio.get_running_loop().time() + delay

    async def _prepare(self, item: InboxItem) -> Step | None:
        applier = self.appliers[item.platform]
        return await applier.prepare(item)

    async def _apply(self, items: Sequence[InboxItem]) -> int:
        """Apply `items` (one queue's head, in order); returns how many were applied before
        the first that failed."""
        prepared = await asyncio.gather(
            *(self._prepare(i) for i in items), return_exceptions=True
        )
        done = 0
        while done < len(items):
            first = prepared[done]
            if isinstance(first, BaseException):
                await self._failed(items[done], first)
                return done
            if first is not None and first.alone:
                answer = await self._alone(items[done], first)
                if answer is None:
                    return done
                await self._send([answer])
                done += 1
                continue
            end = done
            while end < len(items):
                step = prepared[end]
                if isinstance(step, BaseException) or (step is not None and step.alone):
                    break
                end += 1
            applied, answers, failed = await self._in_transaction(
                items[done:end], prepared[done:end]
            )
            self.notify()
            await self._answer_soon(items[0].queue, answers)
            done += applied
            if failed:
                return done
        return done

    async def _in_transaction(
        self, items: Sequence[InboxItem], steps: Sequence[Step | BaseException | None]
    ) -> tuple[int, list[Answer], bool]:
        """Apply `items` in one transaction, for up to BATCH_SECONDS (storing waits for it);
        returns how many were applied, their answers, and whether one of them failed."""
        answers: list[Answer] = []
        applied: list[int] = []
        failed = False
        loop = asyncio.get_running_loop()
        async with self.turns.applying(), self.store.transaction(ambient=True) as session:
            started = loop.time()
            for item, step in zip(items, steps, strict=True):
                assert item.id is not None and not isinstance(step, BaseException)
                if applied and loop.time() - started > BATCH_SECONDS:
                    break  # the rest in the next transaction: acknowledgements wait no longer
                try:
                    # A savepoint per row: an error after its changes undoes them, not others.
                    async with session.begin_nested():
                        answer = await step.apply() if step is not None else None
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    await self._count_failure(session, item, exc)
                    failed = True
                    break
                if answer is not None:
                    answers.append(answer)
                applied.append(item.id)
            # In the same transaction as their effects, and only if they are still ours.
            if not await db.mark_applied(
                session, applied, holder=self.holder, now=self.clock.now()
            ):
                raise ClaimLost(items[0].queue)
        return len(applied), answers, failed

    async def _alone(self, item: InboxItem, step: Step) -> Answer | None:
        """A slow, read-only step: run it, then mark the row applied; returns its answer
        (a no-op answer when there is none), or None when it failed."""
        assert item.id is not None
        try:
            answer = await step.apply()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            await self._failed(item, exc)
            return None
        async with self.store.transaction() as session:
            if not await db.mark_applied(session, [item.id], holder=self.holder,
                                         now=self.clock.now()):
                raise ClaimLost(item.queue)
        return answer or _nothing

    async def _failed(self, item: InboxItem, exc: BaseException) -> None:
        async with self.store.transaction() as session:
            await self._count_failure(session, item, exc)

    async def _count_failure(self, session: Any, item: InboxItem, exc: BaseException) -> None:
        assert item.id is not None
        if isinstance(exc, _TRANSIENT):
            await release(session, InboxItem, [item.id], holder=self.holder)
            self._outage = min(max(self._outage * 2, self.retry_base), self.retry_cap)
            self._retry_at[item.queue] = asyncio.get_running_loop().time() + self._outage
            logger.warning(
                "inbox: %s is unreachable (%s); %s waits %.1fs", item.platform,
                type(exc).__name__, item.queue, self._outage,
            )
            return
        give_up = item.attempts + 1 >= MAX_ATTEMPTS
        error = f"{type(exc).__name__}: {exc}"
        attempts = await db.record_failure(
            session, item.id, holder=self.holder, error=error, give_up=give_up
        )
        if give_up:
            logger.error(
                "inbox: %s %s row %d failed %d times; giving up on it (%s)",
                item.platform, item.kind, item.id, attempts, type(exc).__name__,
                exc_info=exc,
            )
        else:
            logger.warning(
                "inbox: %s %s row %d failed (%s); attempt %d of %d",
                item.platform, item.kind, item.id, type(exc).__name__, attempts, MAX_ATTEMPTS,
            )
            self._back_off(item.queue, attempts)

    async def _answer_soon(self, queue: str, answers: Sequence[Answer]) -> None:
        """Send a batch's answers while the next batch is applied; one batch in flight per
        queue at most (the previous one is awaited first), so nothing piles up in memory."""
        previous = self._answering.pop(queue, None)
        if previous is not None:
            await previous
        if answers:
            self._answering[queue] = asyncio.create_task(self._send(answers))

    async def _send(self, answers: Sequence[Answer]) -> None:
        results = await asyncio.gather(*(a() for a in answers), return_exceptions=True)
        for result in results:
            if isinstance(result, Exception):
                logger.warning("inbox: an answer could not be sent: %s", type(result).__name__)

    # --- stopping and waiting -----------------------------------------------------------

    async def stop(self, grace: float = 10.0) -> None:
        """Apply what is stored for up to `grace` seconds, then stop: the queues in flight end
        after their current batch (cut only if that takes more than another `grace`); what is
        left is applied by the next process that runs. `run()` returns by itself."""
        if not await self.drain(grace):
            logger.warning("inbox: stopping with rows not applied yet; the next start applies them")
        self._stopping = True
        self._wake.set()
        tasks = list(self._active.values())
        # Not cancelled mid-transaction while they can finish: a database driver cut in the
        # middle of a statement may leave its connection unusable.
        _, late = await asyncio.wait(tasks, timeout=grace) if tasks else (set(), set())
        for task in late:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            await asyncio.wait_for(self._stopped.wait(), grace)
        except TimeoutError:
            logger.warning("inbox: the worker loop did not stop in time")

    async def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every row this worker can apply is applied (tests, shutdown)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while loop.time() < deadline:
            self._wake.set()
            try:
                if not self._active and not await self._left():
                    return True
            except Exception:
                pass
            await asyncio.sleep(0.01)
        return False


async def _nothing() -> None:
    return None


__all__ = [
    "Answer",
    "Applier",
    "Inbox",
    "InboxWorker",
    "Receipt",
    "Step",
    "Transient",
    "Turns",
    "clean",
    "command_from_json",
    "command_json",
    "queued_note",
]
