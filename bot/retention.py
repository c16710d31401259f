"""Retention: a daily job prunes what the record no longer needs once it is old.

Pruned, when older than the retention period (`OPSROOM_RETENTION`, 30 days by default: longer
than any platform's retry window, so no retried event can come back and find its row gone):
finished jobs (done, cancelled, failed), and the rows of finished deliveries that map no posted
message (summary refreshes, skipped ones, archives, DMs, refused ones), and finished notices
(bot/notices.py: triage posts, shift changes, pages outside a channel). Never pruned: the
timeline, and a sent entry's delivery, which maps the message the bot posted to its entry (a 📌
on a bot post finds its entry through it). The durable inbox's applied (and failed) rows are
pruned here too, through the hook storage/inbox.py registers in `PRUNE_HOOKS`.

The job runs once a day under a key naming the day, so any number of replicas run it once; it
schedules the next day's in the same transaction. A run prunes at most `BATCH` rows per kind
and, when there were more, schedules a follow-up a minute later instead of one long transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, time, timedelta

from bot.jobs import JobContext, handler, new_job
from bot.ports import Store, Unit

logger = logging.getLogger(__name__)

KIND = "retention"
DEFAULT_RETENTION = timedelta(days=30)
BATCH = 20_000  # rows per kind per run
FOLLOW_UP = timedelta(minutes=1)

# Other prunes (name -> prune(u, before, limit) returning rows pruned), e.g. the inbox's.
PRUNE_HOOKS: dict[str, Callable[[Unit, datetime, int], Awaitable[int]]] = {}


def _daily_key(day: datetime) -> str:
    return f"{KIND}:{day.date().isoformat()}"


def next_run(now: datetime) -> datetime:
    """03:00 UTC today, or tomorrow once that has passed: a quiet hour, never at start-up."""
    today = datetime.combine(now.astimezone(UTC).date(), time(3), tzinfo=UTC)
    return today if today > now else today + timedelta(days=1)


async def schedule_daily(store: Store, *, now: datetime, retention: timedelta) -> None:
    """The next run (one per day however often this is called), with `retention` as set now."""
    due = next_run(now)
    job = new_job(KIND, _daily_key(due), due, now=now,
                  payload={"retention_s": retention.total_seconds()})
    async with store.unit() as u:
        await u.schedule(job, move=True)


async def prune(u: Unit, *, before: datetime, limit: int = BATCH) -> dict[str, int]:
    """Prune what finished before `before`; how many rows of each kind went."""
    pruned = {
        "jobs": await u.prune_jobs(before=before, limit=limit),
        "deliveries": await u.prune_deliveries(before=before, limit=limit),
        "notices": await u.prune_notices(before=before, limit=limit),
    }
    for name, hook in PRUNE_HOOKS.items():
        pruned[name] = await hook(u, before, limit)
    return pruned


@handler(KIND)
async def run_retention(ctx: JobContext) -> None:
    retention = timedelta(seconds=float(ctx.job.payload.get("retention_s",
                                                            DEFAULT_RETENTION.total_seconds())))
    pruned = await prune(ctx.u, before=ctx.now - retention)
    logger.info("retention: pruned %s (older than %s)", pruned, retention)
    payload = dict(ctx.job.payload)
    if any(n >= BATCH for n in pruned.values()):
        await ctx.u.schedule(new_job(KIND, f"{KIND}:more:{ctx.now.isoformat()}",
                                     ctx.now + FOLLOW_UP, now=ctx.now, payload=payload))
    tomorrow = next_run(ctx.now + timedelta(hours=1))
    await ctx.u.schedule(new_job(KIND, _daily_key(tomorrow), tomorrow, now=ctx.now,
                                 payload=payload))
