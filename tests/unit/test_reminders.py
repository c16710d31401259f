"""Reminders, rule by rule: the service, the job worker and the mirror on a real SQLite store,
driven by a fake clock (`at` moves it, runs the worker once and delivers what it queued)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.jobs import HANDLERS, JobContext, JobWorker, new_job
from bot.models import EntryKind, JobState
from bot.ports import SYSTEM, Actor, ChannelRef
from bot.reminders import digest_job
from bot.service import Reply
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock

CAROL = Actor(platform="console", user_id="carol", name="carol", mention="@carol")
T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # the fake clock's start, a Wednesday
DUE = "A status update for #1 is due"
OVERDUE = "A status update for #1 is overdue"


@dataclass
class Rig:
    core: Core
    worker: JobWorker
    clock: FakeClock

    async def run(self, text: str, actor: Actor = ALICE) -> Reply:
        reply = await self.core.run(text, actor=actor)
        assert reply.ok, reply.text
        return reply

    async def declare(self, severity: str = "sev1", title: str = "Checkout down") -> str:
        reply = await self.core.service.declare(
            actor=ALICE,
            where=self.core.general,
            description=f"{title}, customers see errors",
            title=title,
            type="outage",
            severity=severity,
            priority="p1",
        )
        assert reply.ok, reply.text
        assert await self.core.mirror.drain(timeout=5)
        assert reply.incident is not None
        return self.core.incident_channel(reply.incident)

    async def at(self, **delta: float) -> int:
        """Move the clock, fire what is due, deliver it; return how many jobs were done."""
        self.clock.advance(**delta)
        done = await self.worker.run_once()
        assert await self.core.mirror.drain(timeout=5)
        return done

    def nudges(self, channel: str) -> list[str]:
        return [t for t in self.core.chat.texts(channel) if t.startswith("⏰")]

    def announced(self) -> list[str]:
        """Reminders in the announcement channel (each names the command to run)."""
        return [t for t in self.core.chat.texts("general") if "/incident" in t]

    async def pending(self, number: int = 1) -> list[str]:
        async with self.core.store.unit() as u:
            inc = await u.incident(number)
            assert inc is not None and inc.id is not None
            return [j.key for j in await u.pending_jobs(inc.id)]


def make_rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock, **worker: object) -> Rig:
    core = build_core(engine, catalog, clock)
    core.mirror.clock = clock  # the summary's "overdue" is judged at the fake clock's time
    jobs = JobWorker(
        store=core.store,
        catalog=catalog,
        record=core.service.record,
        clock=clock,
        notify=core.mirror.wake,
        **worker,  # type: ignore[arg-type]
    )
    return Rig(core, jobs, clock)


@pytest.fixture
def rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> Rig:
    return make_rig(engine, catalog, clock)


# --- status updates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("severity", "every", "shown"),
    [
        ("sev1", timedelta(minutes=30), "30m"),
        ("sev2", timedelta(hours=1), "1h"),
        ("sev3", timedelta(hours=4), "4h"),
        ("sev4", timedelta(days=1), "1d"),
    ],
)
async def test_a_status_update_is_nudged_once_per_period_at_the_severity_cadence(
    rig: Rig, severity: str, every: timedelta, shown: str
) -> None:
    channel = await rig.declare(severity)
    await rig.run("#1 ack")

    await rig.at(seconds=every.total_seconds() - 1)
    assert rig.nudges(channel) == []
    await rig.at(seconds=1)
    assert rig.nudges(channel) == [
        f"⏰ A status update for #1 is due (every {shown} at {severity.upper()}): "
        "/incident update <text> · @alice"
    ]
    await rig.at(seconds=1)
    await rig.at(seconds=every.total_seconds() / 2)
    assert len(rig.nudges(channel)) == 1, "one nudge per period"


async def test_an_update_restarts_the_period_and_the_commander_and_comms_are_mentioned(
    rig: Rig,
) -> None:
    channel = await rig.declare("sev1")
    await rig.run("#1 ack")
    await rig.run("#1 assign comms @carol")
    await rig.at(minutes=20)
    await rig.run("#1 update Rolled back the deploy; error rate falling")
    await rig.at(minutes=29)  # 14:49: the old period would have ended at 14:30
    assert rig.nudges(channel) == []
    await rig.at(minutes=1)  # 14:50 = the update at 14:20 + 30m
    assert rig.nudges(channel) == [
        "⏰ A status update for #1 is due (every 30m at SEV1): /incident update <text> "
        "· @alice @carol"
    ]


async def test_a_second_missed_period_is_announced_once_per_overdue_stretch(rig: Rig) -> None:
    channel = await rig.declare("sev1")
    await rig.run("#1 ack")
    await rig.at(minutes=30)
    assert rig.announced() == []
    await rig.at(minutes=30)  # 15:00: a second period without an update
    overdue = (
        "A status update for #1 is overdue: none for 1h (every 30m at SEV1): "
        "/incident update <text> · @alice"
    )
    assert rig.nudges(channel)[-1] == f"⏰ {overdue}"
    assert rig.announced() == [f"[#1 Checkout down · SEV1 · #{channel}] {overdue}"]
    await rig.at(minutes=30)
    await rig.at(minutes=30)
    assert len(rig.nudges(channel)) == 4 and len(rig.announced()) == 1

    await rig.run("#1 update Still investigating")  # a new stretch starts
    await rig.at(minutes=30)
    await rig.at(minutes=30)
    assert len(rig.nudges(channel)) == 6 and len(rig.announced()) == 2


async def test_a_severity_change_recomputes_the_due_time(rig: Rig) -> None:
    channel = await rig.declare("sev3")  # every 4h: due 18:00
    await rig.run("#1 ack")
    await rig.at(minutes=50)
    assert rig.nudges(channel) == []
    await rig.run("#1 severity sev1")  # every 30m: due 14:30, which has passed
    await rig.at(seconds=1)
    assert rig.nudges(channel) == [
        "⏰ A status update for #1 is due (every 30m at SEV1): /incident update <text> · @alice"
    ]
    await rig.at(minutes=10)  # 15:00
    assert rig.nudges(channel)[-1].startswith(f"⏰ {OVERDUE}")

    await rig.run("#1 severity sev4")  # every 1d: nothing until tomorrow 14:00
    await rig.at(hours=22)
    assert len(rig.nudges(channel)) == 2
    assert await rig.pending() == ["update:1:2026-11-26T14:00:00+00:00"]


async def test_no_update_nudges_in_a_quiet_status_nor_after_resolve(rig: Rig) -> None:
    channel = await rig.declare("sev1")
    await rig.run("#1 ack")
    await rig.run("#1 status monitoring")
    assert await rig.pending() == []
    reply = await rig.run("#1 reminders")
    assert reply.text == "#1 has no reminders pending (none while monitoring)."
    await rig.at(hours=3)
    assert rig.nudges(channel) == []

    await rig.run("#1 status investigating")  # it came back: the update is due now
    await rig.at(seconds=1)
    assert [n.split(":")[0] for n in rig.nudges(channel)] == [f"⏰ {OVERDUE}"]
    await rig.run("#1 resolve fixed")
    # Only the postmortem reminder (days after resolution) is left; no update nudges.
    assert [key.split(":")[0] for key in await rig.pending()] == ["postmortem_due"]
    await rig.at(hours=5)
    assert len(rig.nudges(channel)) == 1


async def test_the_summary_and_topic_show_the_due_time_and_then_overdue(rig: Rig) -> None:
    channel_name = await rig.declare("sev1")
    channel = rig.core.chat.by_name(channel_name)
    summary = channel.messages[0]
    assert "Next update due: 14:30 UTC\n" in summary.text
    assert channel.topic.endswith("next update due 14:30 UTC")
    await rig.at(minutes=30)
    assert "Next update due: 14:30 UTC (overdue)" in summary.text
    assert channel.topic.endswith("next update due 14:30 UTC (overdue)")
    await rig.run("#1 status monitoring")
    assert "Next update due" not in summary.text and "next update" not in channel.topic


# --- acknowledgement -----------------------------------------------------------------------------


async def test_an_unacknowledged_incident_is_nudged_after_ack_within(rig: Rig) -> None:
    channel = await rig.declare("sev1")  # ack within 5m
    await rig.at(minutes=4, seconds=59)
    assert rig.nudges(channel) == []
    await rig.at(seconds=1)
    text = "#1 is still not acknowledged 5m after it was declared (SEV1): /incident ack · @alice"
    assert rig.nudges(channel) == [f"⏰ {text}"]
    assert rig.announced() == [f"[#1 Checkout down · SEV1 · #{channel}] {text}"]
    await rig.at(minutes=5)
    assert len(rig.nudges(channel)) == 1


async def test_acknowledging_in_time_cancels_the_nudge_and_severity_moves_it(rig: Rig) -> None:
    first = await rig.declare("sev2", title="Search slow")  # ack within 15m
    await rig.run("#1 severity sev1")  # 5m now
    await rig.at(minutes=5)
    assert rig.nudges(first)[0].startswith("⏰ #1 is still not acknowledged 5m after")

    second = await rig.declare("sev1", title="Login broken")
    await rig.at(minutes=4)
    await rig.run("#2 ack")
    await rig.at(minutes=30)
    assert not any("acknowledged" in n for n in rig.nudges(second))


# --- action items --------------------------------------------------------------------------------


async def test_a_due_action_item_mentions_and_messages_its_assignee_once(rig: Rig) -> None:
    channel = await rig.declare("sev4")
    await rig.run("#1 action add rotate the API keys @bob due in 2h")
    await rig.at(hours=1, minutes=59)
    assert rig.nudges(channel) == [] and rig.core.chat.dms == []
    await rig.at(minutes=1)
    text = "⏰ Action item 1 of #1 is due: rotate the API keys · @bob"
    assert rig.nudges(channel) == [text]
    assert [(who, m.text) for who, m in rig.core.chat.dms] == [("@bob", text)]
    await rig.at(hours=3)
    assert len(rig.nudges(channel)) == 1 and len(rig.core.chat.dms) == 1


async def test_done_and_edited_action_items_cancel_or_move_their_reminder(rig: Rig) -> None:
    channel = await rig.declare("sev4")
    await rig.run("#1 action add add a canary check @bob due in 1h")
    await rig.run("#1 action add write the postmortem @carol due in 1h")
    await rig.run("#1 action done 1")
    await rig.run("#1 action edit 2 due in 3h")
    await rig.at(hours=2)
    assert rig.nudges(channel) == [] and rig.core.chat.dms == []
    await rig.at(hours=1)  # 17:00 = 14:00 + 3h
    assert rig.nudges(channel) == ["⏰ Action item 2 of #1 is due: write the postmortem · @carol"]
    assert [who for who, _ in rig.core.chat.dms] == ["@carol"]
    # A new due date after the reminder was sent is a new reminder.
    await rig.run("#1 action edit 2 due in 1h")
    await rig.at(hours=1)
    assert len(rig.nudges(channel)) == 2


async def test_the_daily_digest_lists_overdue_items_per_channel_once_a_day(rig: Rig) -> None:
    first = await rig.declare("sev4", title="Checkout down")
    second = await rig.declare("sev4", title="Search slow")
    third = await rig.declare("sev4", title="Docs typo")
    await rig.run("#1 action add add a canary check @bob due in 1h")
    await rig.run("#1 action add write the postmortem due in 30d")
    await rig.run("#2 action add reindex @carol due in 2h")
    await rig.run("#3 action add fix the typo due in 1h")
    await rig.run("#3 action done 1")
    await rig.run("#2 resolve reindexed")  # resolved incidents are included
    await rig.at(hours=19)  # Thursday 09:00: the digest's occurrence

    occurrence = rig.clock.now()
    async with rig.core.store.unit() as u:
        await u.schedule(digest_job(occurrence))
        await u.schedule(digest_job(occurrence))  # a second replica: same row
    await rig.at(seconds=1)
    digests = {
        name: [n for n in rig.nudges(name) if "Overdue action items" in n]
        for name in (first, second, third)
    }
    assert digests[first] == [
        "⏰ Overdue action items of #1:\n"
        "[ ] 1. add a canary check · @bob · OVERDUE Wed 25 Nov 15:00 UTC"
    ]
    assert digests[second] == [
        "⏰ Overdue action items of #2:\n[ ] 1. reindex · @carol · OVERDUE Wed 25 Nov 16:00 UTC"
    ]
    assert digests[third] == []
    await rig.at(hours=1)
    assert len([n for n in rig.nudges(first) if "Overdue" in n]) == 1

    tomorrow = occurrence + timedelta(days=1)
    rig.clock.current = tomorrow
    async with rig.core.store.unit() as u:
        await u.schedule(digest_job(tomorrow))
    await rig.at(seconds=1)
    assert len([n for n in rig.nudges(first) if "Overdue" in n]) == 2


# --- the record, lateness, retries ---------------------------------------------------------------


async def test_each_reminder_is_a_timeline_entry_and_reminders_lists_what_is_pending(
    rig: Rig,
) -> None:
    await rig.declare("sev1")
    await rig.run("#1 action add rotate keys @bob due in 12m")
    await rig.run("#1 action add audit access @bob due saturday")
    reply = await rig.run("#1 reminders")
    assert reply.text == (
        "Reminders for #1:\n"
        "• acknowledgement due 14:05 UTC, in 5m\n"
        "• action 1 due 14:12 UTC, in 12m\n"
        "• status update due 14:30 UTC, in 30m\n"
        "• action 2 due Sat 17:00 UTC"
    )
    await rig.at(minutes=30)
    async with rig.core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        kinds = [(e.kind, e.text.split(":")[0]) for e in await u.timeline(inc.id)]
    assert [k for k in kinds if k[0] is EntryKind.REMINDER] == [
        (EntryKind.REMINDER, "#1 is still not acknowledged 5m after it was declared (SEV1)"),
        (EntryKind.REMINDER, "Action item 1 of #1 is due"),
        (EntryKind.REMINDER, "A status update for #1 is due (every 30m at SEV1)"),
    ]


async def test_reminders_are_shown_in_the_catalog_timezone(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    paris = catalog.model_copy(update={"timezone": "Europe/Paris"})
    rig = make_rig(engine, paris, clock)
    await rig.declare("sev1")
    await rig.run("#1 ack")
    reply = await rig.run("#1 reminders")
    assert reply.text == "Reminders for #1:\n• status update due 15:30 CET, in 30m"


async def test_missed_nudges_fire_once_late_and_say_so(rig: Rig) -> None:
    channel = await rig.declare("sev1")
    await rig.run("#1 ack")
    # Nobody runs the worker from 14:00 to 15:42: periods end at 14:30, 15:00 and 15:30.
    await rig.at(minutes=102)
    assert rig.nudges(channel) == [
        "⏰ A status update for #1 is overdue: none for 1h30m (every 30m at SEV1): "
        "/incident update <text> · @alice · late by 1 h 12 min: Opsroom was not running"
    ]
    assert len(rig.announced()) == 1
    await rig.at(minutes=18)  # 16:00, on time
    assert rig.nudges(channel)[-1] == (
        "⏰ A status update for #1 is due (every 30m at SEV1): /incident update <text> · @alice"
    )


async def test_a_failing_handler_is_retried_with_backoff_then_failed_and_logged(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[datetime] = []

    async def flaky(ctx: JobContext) -> None:
        calls.append(ctx.now)
        assert ctx.incident is not None
        # Its effects are written, then it fails: the transaction must keep none of them.
        await ctx.record(
            ctx.u, ctx.incident, kind=EntryKind.REMINDER, actor=SYSTEM, text="half done"
        )
        raise RuntimeError("the pager API said 502")

    rig = make_rig(engine, catalog, clock, handlers={**HANDLERS, "flaky": flaky}, max_attempts=3)
    channel = await rig.declare("sev4")
    async with rig.core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None
        await u.schedule(new_job("flaky", "flaky:1", T0, now=T0, incident_id=inc.id))
    with caplog.at_level(logging.WARNING, logger="bot.jobs"):
        await rig.at(seconds=1)
        await rig.at(seconds=4)  # the first backoff: 5s
        assert len(calls) == 1
        await rig.at(seconds=2)
        assert len(calls) == 2
        await rig.at(seconds=9)  # the second: 10s
        assert len(calls) == 2
        await rig.at(seconds=2)
        assert len(calls) == 3
        await rig.at(hours=1)
    assert len(calls) == 3
    assert not any("half done" in t for t in rig.core.chat.texts(channel))
    async with rig.core.store.unit() as u:
        failed = await u.jobs(states=[JobState.FAILED], limit=10)
    assert [(j.key, j.attempts, j.last_error) for j in failed] == [
        ("flaky:1", 3, "RuntimeError: the pager API said 502")
    ]
    gave_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in gave_up] == [
        "job 2 (flaky flaky:1) failed (attempt 3 of 3), giving up: RuntimeError: the pager API "
        "said 502"
    ]


async def test_a_job_kind_without_a_handler_fails_with_the_reason(rig: Rig) -> None:
    await rig.declare("sev4")
    async with rig.core.store.unit() as u:
        await u.schedule(new_job("no_such_kind", "x:1", T0, now=T0))
    for _ in range(5):
        await rig.at(minutes=20)
    async with rig.core.store.unit() as u:
        failed = await u.jobs(states=[JobState.FAILED], limit=10)
    assert [(j.key, j.last_error) for j in failed] == [
        ("x:1", "LookupError: no handler for job kind 'no_such_kind'")
    ]


async def test_bad_reminder_commands_get_their_usage(rig: Rig) -> None:
    await rig.declare("sev4")
    reply = await rig.core.run("#1 reminders please", actor=BOB)
    assert not reply.ok
    assert reply.text == (
        'unexpected "please". Usage: /incident reminders   (what Opsroom will nudge about, '
        "and when)"
    )
    outside = await rig.core.service.handle_text(
        "reminders", actor=BOB, where=ChannelRef("console", "nowhere")
    )
    assert not outside.ok and outside.text.startswith("no incident here")
