"""APScheduler wakes the job worker; it holds no durable state.

Every job lives in our `job` table (bot/jobs.py). APScheduler 3.x (`AsyncIOScheduler`, memory
job store only: its stores must never be shared between processes) just decides when to call
`JobWorker.run_once`:

- a date trigger armed at the earliest pending `due_at`, re-armed whenever a commit may have
  added an earlier job (`wake`, called through the service's notify hook);
- an interval safety tick (`OPSROOM_TICK_S`), which also picks up jobs other processes added;
- one cron trigger per recurring catalog schedule (the action-item digest), in the catalog's
  timezone, which inserts a job keyed by the occurrence, so N replicas make one job.

`misfire_grace_time=None` and `coalesce=True`: APScheduler's default grace of one second would
silently drop a run after any pause of the event loop. Its jobs only set an event that one
worker task waits on: a trigger that fires while a pass is running is then never skipped
("maximum number of running instances reached"), it just makes the task run again.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from bot import reminders
from bot.catalog import Catalog
from bot.jobs import JobWorker
from bot.ports import Clock, Store, SystemClock

logger = logging.getLogger(__name__)

_DAY_NAMES = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]
_DAY_NUMBERS = {name: i for i, name in enumerate(_DAY_NAMES)}
_DUE = "due"
DIGEST_CATCH_UP = timedelta(hours=6)


def crontab_trigger(expr: str, tz: ZoneInfo) -> CronTrigger:
    """A standard crontab line as an APScheduler trigger.

    `CronTrigger.from_crontab` in 3.x counts weekdays from Monday = 0, where crontab has
    Sunday = 0 (and 7): the weekday field is rewritten as names, which both read the same.
    """
    minute, hour, day, month, weekday = expr.split()
    return CronTrigger(
        minute=minute,
        hour=hour,
        day=day,
        month=month,
        day_of_week=_weekday_names(weekday),
        timezone=tz,
    )


def _weekday_names(field: str) -> str:
    if field == "*":
        return "*"

    def number(token: str) -> int:
        return _DAY_NUMBERS[token] if token in _DAY_NUMBERS else int(token)

    days: set[int] = set()
    for part in field.lower().split(","):
        base, _, step = part.partition("/")
        if base == "*":
            low, high = 0, 6
        else:
            first, dash, last = base.partition("-")
            low = number(first)
            high = number(last) if dash else (6 if step else low)
        days.update(d % 7 for d in range(low, high + 1, int(step or 1)))
    return ",".join(_DAY_NAMES[d] for d in sorted(days))


def previous_fire(trigger: CronTrigger, now: datetime, within: timedelta) -> datetime | None:
    """The trigger's last occurrence at or before `now`, if one falls within `within`."""
    last = None
    moment = trigger.get_next_fire_time(None, now - within)
    while moment is not None and moment <= now:
        last = moment
        moment = trigger.get_next_fire_time(moment, moment + timedelta(seconds=1))
    return last


class JobScheduler:
    """Runs the worker on time: at the earliest due job, on every tick, and on cron schedules."""

    def __init__(
        self,
        *,
        worker: JobWorker,
        store: Store,
        catalog: Catalog,
        tick_s: float,
        clock: Clock | None = None,
    ) -> None:
        self.worker = worker
        self.store = store
        self.catalog = catalog
        self.tick_s = tick_s
        self.clock: Clock = clock or SystemClock()
        self.scheduler = AsyncIOScheduler(
            timezone=catalog.tz,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        self._digest: CronTrigger | None = (
            crontab_trigger(catalog.action_digest, catalog.tz) if catalog.action_digest else None
        )
        self._armed: datetime | None = None
        self._dirty = False
        self._rearming: asyncio.Task[None] | None = None
        self._stopping = False
        self._kicked = asyncio.Event()
        self._last_fired: int | None = None  # jobs the last pass fired (None: no pass yet)
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start the triggers, and fire at once what came due while nothing was running."""
        self._runner = asyncio.get_running_loop().create_task(self._run_when_kicked())
        self.scheduler.add_job(
            self._kick, IntervalTrigger(seconds=self.tick_s), id="tick", next_run_time=self._now()
        )
        if self._digest is not None:
            self.scheduler.add_job(self._digest_due, self._digest, id="digest")
            # A digest missed while down is made up now, once; one missed longer ago than
            # this is skipped rather than posted just before the next one.
            missed = previous_fire(self._digest, self._now(), DIGEST_CATCH_UP)
            if missed is not None:
                await self._schedule_digest(missed)
        self.scheduler.start()
        logger.info(
            "jobs: scheduler started (tick %ss, worker %s)", self.tick_s, self.worker.holder
        )

    async def stop(self) -> None:
        """Stop the triggers after the worker's in-flight pass; pending jobs stay in the table."""
        self._stopping = True
        self._kicked.set()
        if self._runner is not None:
            await self._runner  # the pass in flight ends; no new one starts
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self._rearming is not None:
            self._rearming.cancel()
            await asyncio.gather(self._rearming, return_exceptions=True)

    def wake(self) -> None:
        """A commit may have added an earlier job: look again at the earliest due time."""
        if self._stopping:
            return
        self._dirty = True
        if self._rearming is None or self._rearming.done():
            # In a context of its own: wake() is called inside the caller's transaction (the
            # inbox applies commands in one, the service wakes from inside it), and a task
            # inherits its creator's context variables, the store's ambient session among
            # them. The rearm must read on a session of its own, not use that one
            # concurrently (and then once it is committed and closed).
            self._rearming = asyncio.get_running_loop().create_task(
                self._rearm_while_dirty(), context=contextvars.Context()
            )

    def _now(self) -> datetime:
        return self.clock.now()

    async def _rearm_while_dirty(self) -> None:
        while self._dirty and not self._stopping:
            self._dirty = False
            await self._rearm()

    async def _rearm(self) -> None:
        try:
            due = await self.worker.next_due()
        except Exception as exc:  # the database is unreachable: the tick tries again
            logger.warning("jobs: cannot read the next due time (%s); the tick will retry", exc)
            return
        if due is None or self._stopping:
            return
        # APScheduler keeps real time. A pass that just found nothing it could claim, with the
        # earliest job already due, must not be followed at once by another (no spinning).
        real_now = datetime.now(UTC)
        if self._last_fired == 0 and due <= real_now:
            due = real_now + timedelta(seconds=1)
        armed = self.scheduler.get_job(_DUE) if self.scheduler.running else None
        if armed is not None and self._armed is not None and self._armed <= due:
            return
        self._armed = due
        if self.scheduler.running:
            self.scheduler.add_job(
                self._kick, DateTrigger(run_date=due), id=_DUE, replace_existing=True
            )

    async def _kick(self) -> None:
        """What every trigger runs (a coroutine: it runs on the event loop, not in a thread)."""
        self._kicked.set()

    async def _run_when_kicked(self) -> None:
        while not self._stopping:
            await self._kicked.wait()
            self._kicked.clear()
            if self._stopping:
                return
            try:
                self._last_fired = await self.worker.run_once()
            except Exception:
                self._last_fired = 0
                logger.exception("jobs: a worker pass failed; the next tick tries again")
            self._armed = None
            await self._rearm()
            self._last_fired = None

    async def _digest_due(self) -> None:
        assert self._digest is not None
        occurrence = previous_fire(self._digest, self._now(), timedelta(days=1)) or self._now()
        await self._schedule_digest(occurrence)
        self._kicked.set()

    async def _schedule_digest(self, occurrence: datetime) -> None:
        try:
            async with self.store.unit() as u:
                await u.schedule(reminders.digest_job(occurrence))
        except Exception as exc:
            logger.warning("jobs: cannot schedule the action digest (%s)", exc)
