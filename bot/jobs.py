"""Jobs: something to do at a time, at least once, effectively once.

A job is a row (`bot.models.Job`) written in the same transaction as the change that causes it,
and cancelled or moved in the same transaction as a change that makes it moot. Its `key` is
unique, so scheduling the same thing twice is one row.

The worker claims due jobs (the store claims rows through storage/claims.py: `FOR UPDATE SKIP
LOCKED` on PostgreSQL, a conditional `UPDATE ... RETURNING` on SQLite), then runs each one's
handler in a transaction of its own that locks the job's incident first, checks the claim is
still ours, and commits the handler's effects (timeline entries, deliveries, next jobs) with
the job's completion. So two replicas never fire one job twice, and a process killed holding a
claim loses nothing: the claim expires and another worker (or the next start) takes it over.
A handler that raises is retried with backoff; after `max_attempts` the job is failed and
logged with the reason.

Handlers register by kind with `@handler("kind")` (see bot/reminders.py). They decide from the
record as it is when they run, not from what was true when they were scheduled.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from bot.catalog import Catalog
from bot.holders import holder_name
from bot.mirror import Backoff
from bot.models import EntryKind, Incident, Job, JobState, TimelineEntry
from bot.ports import Actor, Clock, Store, SystemClock, Unit
from bot.timing import format_lateness

logger = logging.getLogger(__name__)

DEFAULT_TICK = timedelta(seconds=15)
BATCH = 100  # jobs claimed at a time
CONCURRENCY = 8  # of those, run at once (each in its own transaction; one at a time on SQLite)
MAX_ATTEMPTS = 5


class Record(Protocol):
    """How a handler writes a timeline entry and queues its deliveries (the service's own
    recording, so a reminder reaches every linked channel exactly like any change)."""

    async def __call__(
        self,
        u: Unit,
        incident: Incident,
        *,
        kind: EntryKind,
        text: str,
        actor: Actor,
        data: dict[str, Any] | None = None,
        announce: bool = False,
        external_id: str | None = None,
    ) -> TimelineEntry: ...


@dataclass
class JobContext:
    """What a handler gets: the open transaction, the job and its incident (both locked)."""

    u: Unit
    job: Job
    incident: Incident | None
    now: datetime
    catalog: Catalog
    record: Record
    late: timedelta | None = None  # set when the job came due while nobody could fire it
    # The chat platforms this process is configured for (posts outside incident channels go
    # to each: a shift change, a page to a platform the incident has no channel on).
    platforms: tuple[str, ...] = ("console",)
    public_url: str | None = None  # OPSROOM_PUBLIC_URL: links to the web view, when set

    @property
    def late_note(self) -> str:
        """ "late by 12 min: Opsroom was not running", or "" when it fires on time."""
        if self.late is None:
            return ""
        return f"late by {format_lateness(self.late)}: Opsroom was not running"


Handler = Callable[[JobContext], Awaitable[None]]


class Pass(Protocol):
    """Work the worker does on each pass besides jobs (bot/runbooks.py's runner)."""

    async def run_once(self) -> int: ...

    async def next_due(self) -> datetime | None: ...
HANDLERS: dict[str, Handler] = {}


def handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the handler of jobs of `kind`."""

    def register(fn: Handler) -> Handler:
        if HANDLERS.get(kind, fn) is not fn:
            raise ValueError(f"a handler for job kind {kind!r} is registered already")
        HANDLERS[kind] = fn
        return fn

    return register


def new_job(
    kind: str,
    key: str,
    due_at: datetime,
    *,
    now: datetime,
    incident_id: int | None = None,
    payload: dict[str, Any] | None = None,
) -> Job:
    """A pending job; give it to `Unit.schedule`."""
    return Job(
        kind=kind,
        key=key,
        due_at=due_at,
        incident_id=incident_id,
        payload=payload or {},
        created_at=now,
    )


class JobWorker:
    """Fires due jobs. `run_once` is driven by the scheduler (adapters/scheduler.py), or by a
    test with a fake clock."""

    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        record: Record,
        clock: Clock | None = None,
        notify: Callable[[], None] | None = None,
        tick: timedelta = DEFAULT_TICK,
        holder: str | None = None,
        batch: int = BATCH,
        concurrency: int = CONCURRENCY,
        max_attempts: int = MAX_ATTEMPTS,
        backoff: Backoff | None = None,
        handlers: Mapping[str, Handler] | None = None,
        passes: list[Pass] | None = None,
        platforms: Sequence[str] = ("console",),
        public_url: str | None = None,
    ) -> None:
        self.store = store
        self.platforms = tuple(platforms)
        self.public_url = public_url
        self.catalog = catalog
        self.record = record
        self.clock: Clock = clock or SystemClock()
        self._notify = notify or (lambda: None)
        self.tick = tick
        self.holder = holder or holder_name()
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self.max_attempts = max_attempts
        self.backoff = backoff or Backoff(base=5.0, cap=600.0)
        self.handlers = HANDLERS if handlers is None else handlers
        self.passes = passes or []  # other work run with each pass (the runbook runner)
        # Handlers take milliseconds; the claim only has to outlive one batch. Short, so after
        # a kill -9 the next start (or another replica) takes the jobs over within two ticks.
        self.ttl = max(timedelta(seconds=2), 2 * tick)
        self._lock = asyncio.Lock()

    async def run_once(self) -> int:
        """Fire every job due now; return how many were done."""
        async with self._lock:
            done = 0
            while True:
                async with self.store.unit() as u:
                    claimed = await u.claim_jobs(
                        holder=self.holder, now=self.clock.now(), ttl=self.ttl, limit=self.batch
                    )
                results = await asyncio.gather(
                    *(self._run_in_slot(job) for job in claimed), return_exceptions=True
                )
                done += sum(r for r in results if isinstance(r, int))
                failures = [r for r in results if isinstance(r, BaseException)]
                if claimed:
                    self._notify()  # the handlers queued deliveries
                if failures:
                    # Recording a failure failed too (the database is gone): the claims expire
                    # and these jobs are taken over; the caller logs it.
                    raise failures[0]
                if len(claimed) < self.batch:
                    break
        for extra in self.passes:
            done += await extra.run_once()
        return done

    async def next_due(self) -> datetime | None:
        """When `run_once` next has something to do (None: nothing is scheduled)."""
        async with self.store.unit() as u:
            due = await u.next_job_at()
        for extra in self.passes:
            other = await extra.next_due()
            if other is not None and (due is None or other < due):
                due = other
        return due

    async def _run_in_slot(self, job: Job) -> int:
        async with self._slots:
            return await self._run(job)

    async def _run(self, job: Job) -> int:
        fn = self.handlers.get(job.kind)
        try:
            if fn is None:
                raise LookupError(f"no handler for job kind {job.kind!r}")
            async with self.store.unit() as u:
                # The incident first: every change locks it before it touches its jobs, so
                # taking the two in the same order can never deadlock.
                incident = (
                    await u.incident_by_id(job.incident_id) if job.incident_id is not None else None
                )
                row = await u.locked_job(_id(job))
                mine = row is not None and row.claimed_by == self.holder
                if row is None or not mine or row.state is not JobState.RUNNING:
                    return 0  # our claim expired and another worker has it (or had it)
                now = self.clock.now()
                ctx = JobContext(
                    u=u,
                    job=row,
                    incident=incident,
                    now=now,
                    catalog=self.catalog,
                    record=self.record,
                    late=self._lateness(row, now),
                    platforms=self.platforms,
                    public_url=self.public_url,
                )
                await fn(ctx)
                row.state, row.finished_at, row.claimed_until = JobState.DONE, now, None
            return 1
        except Exception as exc:
            await self._failed(job, exc)
            return 0

    def _lateness(self, job: Job, now: datetime) -> timedelta | None:
        """How late a job is because no worker ran when it came due; None when on time.

        A job scheduled for a moment already gone is not late, and neither is a retry (its
        delay is the backoff, not Opsroom being down)."""
        if job.last_error is not None:
            return None
        late = now - max(job.due_at, job.created_at)
        return late if late > 2 * self.tick else None

    async def _failed(self, job: Job, exc: Exception) -> None:
        reason = f"{type(exc).__name__}: {exc}"[:500]
        async with self.store.unit() as u:
            row = await u.locked_job(_id(job))
            if row is None or row.claimed_by != self.holder:
                return
            now = self.clock.now()
            row.last_error = reason
            if row.attempts >= self.max_attempts:
                row.state, row.finished_at, row.claimed_until = JobState.FAILED, now, None
                logger.error(
                    "job %s (%s %s) failed (attempt %d of %d), giving up: %s",
                    row.id,
                    row.kind,
                    row.key,
                    row.attempts,
                    self.max_attempts,
                    reason,
                    exc_info=exc,
                )
                return
            delay = self.backoff.delay(row.attempts)
            # Pending again, held by nobody until the backoff ends (claim() skips it till then).
            row.state, row.claimed_by = JobState.PENDING, None
            row.claimed_until = now + timedelta(seconds=delay)
        logger.warning(
            "job %s (%s %s) failed (attempt %d of %d), retrying in %.0fs: %s",
            job.id,
            job.kind,
            job.key,
            row.attempts,
            self.max_attempts,
            delay,
            reason,
        )


def _id(job: Job) -> int:
    assert job.id is not None
    return job.id
