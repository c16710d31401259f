"""On-call use cases: who is on call, the next shifts, overrides, and the coverage check.

The schedule math is bot/schedules.py (pure); this area reads overrides from the store, resolves
what people typed (dates in the schedule's time zone, `@name` to a person) and shows people as
themselves on the platform that asked (bot/people.py).

Paging and escalation policies build on `on_call_now`: a policy step that names a schedule
notifies whoever `on_call_now(u, catalog, schedule, now)` returns.

Two kinds of jobs (bot/jobs.py) live here:

- `handoff:<schedule>:<instant>`: for a schedule with a `channel`, due at its next shift change
  as the schedule computes it (layers, restrictions, overrides; wall-clock time across
  daylight-saving changes). It posts "🔁 primary: @bob is on call until Mon 7 Dec 09:00 CET
  (after @alice)" in that channel on every connected platform and plans the next one. There
  is one pending per schedule: planned at start, and again whenever an override is added or
  removed. It decides when it fires: a change that an override moved since posts nothing.
- `coverage:<day>`: once a day at 09:00 in the catalog's time zone, the coverage check over the
  next 14 days; what it finds is posted in the announcement channel of each platform.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from bot.base import Reply, ServiceBase, ServiceError
from bot.catalog import Catalog
from bot.dates import parse_due
from bot.jobs import JobContext, handler, new_job
from bot.models import Job, OncallOverride
from bot.notices import queue_post
from bot.oncall_commands import (
    DATE_HELP,
    ONCALL_HELP,
    OncallHelp,
    OncallOverrides,
    OncallRemoveOverride,
    OncallSchedule,
    OncallWho,
)
from bot.oncall_commands import (
    OncallOverride as OverrideCmd,
)
from bot.people import Directory
from bot.ports import Actor, ChannelRef, Store, Unit
from bot.render import Message
from bot.schedules import (
    Override,
    Schedule,
    Shift,
    ambiguous_handoffs,
    gaps,
    handoffs,
    instant,
    shifts,
    who,
)

logger = logging.getLogger(__name__)

MAX_OVERRIDE = timedelta(days=90)
ICS_DAYS = 90
HANDOFF = "handoff"
HANDOFF_LOOKAHEAD = timedelta(days=35)  # with no change within it, look again then
COVERAGE = "coverage"
COVERAGE_AT = time(9)  # local time (the catalog's zone) of the daily coverage check
COVERAGE_DAYS = 14
_TICK = timedelta(microseconds=1)


def _one_of(values: Sequence[str]) -> str:
    values = list(values)
    if not values:
        return "none is configured (add schedules: to the catalog)"
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " or " + values[-1]


def when(moment: datetime, tz: ZoneInfo) -> str:
    """ "Mon 7 Dec 09:00 CET": a moment in a schedule's zone, with the zone's name."""
    local = moment.astimezone(tz)
    return f"{local:%a} {local.day} {local:%b %H:%M} {local.tzname() or tz.key}"


def as_override(row: OncallOverride) -> Override:
    assert row.id is not None
    return Override(row.person, row.start_at, row.end_at, row.id)


async def overrides_of(u: Unit, schedule: str, since: datetime) -> list[Override]:
    return [as_override(r) for r in await u.overrides(schedule, ending_after=since)]


async def on_call_now(u: Unit, catalog: Catalog, schedule: str, now: datetime) -> Shift | None:
    """The shift of `schedule` on at `now` (overrides included), or None: nobody is on call.
    The hook paging (escalation steps) uses to find whom to notify."""
    found = catalog.schedule(schedule)
    if found is None:
        return None
    return who(found, now, await overrides_of(u, found.name, now))


async def shifts_between(
    u: Unit, schedule: Schedule, start: datetime, end: datetime
) -> list[Shift]:
    """`schedule`'s shifts over [start, end), its overrides included."""
    return shifts(schedule, start, end, await overrides_of(u, schedule.name, start))


@dataclass(frozen=True)
class Problem:
    """One thing the coverage check found."""

    schedule: str
    text: str


async def coverage_problems(
    u: Unit, catalog: Catalog, now: datetime, days: int = 14
) -> list[Problem]:
    """Gaps (nobody on call), people nobody can reach, and handoffs at ambiguous local times,
    over the next `days` of every schedule."""
    end = now + timedelta(days=days)
    people = Directory(catalog.people)
    learned = {name.lower() for name in (p.name for p in await u.all_people_seen())}
    out: list[Problem] = []
    for schedule in catalog.schedules:
        tz = schedule.tz
        found = await shifts_between(u, schedule, now, end)
        for a, b in gaps(found, now, end):
            out.append(
                Problem(schedule.name, f"nobody is on call from {when(a, tz)} to {when(b, tz)}")
            )
        named = sorted(
            {s.person for s in found} | {u_ for lay in schedule.layers for u_ in lay.users}
        )
        for name in named:
            spec = people.person(name)
            if name.startswith("<@"):
                continue  # an override for a raw chat account: reachable there
            if spec is None or not spec.platforms:
                known = " (seen in chat, but not in people:)" if name in learned else ""
                out.append(
                    Problem(
                        schedule.name,
                        f"@{name} cannot be reached: no Slack or Discord account in "
                        f"people:{known}",
                    )
                )
        for moment in ambiguous_handoffs(schedule, now, end):
            out.append(
                Problem(
                    schedule.name,
                    f"a handoff at {when(moment, tz)} falls in an hour that happens twice "
                    "(the first is used); move the handoff time",
                )
            )
    return out


# --- shift changes and the daily coverage check, as jobs ------------------------------------


def _person_label(person: str | None) -> str:
    if person is None:
        return "nobody"
    return person if person.startswith("<@") else f"@{person}"


def handoff_key(schedule: Schedule, at: datetime) -> str:
    return f"{HANDOFF}:{schedule.name}:{at.astimezone(UTC).isoformat()}"


async def next_handoff(
    u: Unit, schedule: Schedule, after: datetime
) -> tuple[datetime, str | None] | None:
    """The first instant after `after` where who is on call for `schedule` changes (within
    HANDOFF_LOOKAHEAD), and who is on call from then (None: nobody)."""
    end = after + HANDOFF_LOOKAHEAD
    found = handoffs(await shifts_between(u, schedule, after, end), after, end)
    return found[0] if found else None


async def plan_handoff(u: Unit, schedule: Schedule, now: datetime) -> Job | None:
    """Make the pending handoff job of `schedule` the one at its next shift change after `now`
    (or at the lookahead's end, to look again, when nothing changes before it); none for a
    schedule without a channel. Call it in the transaction that changes the shifts."""
    prefix = f"{HANDOFF}:{schedule.name}:"
    if schedule.channel is None:
        await u.cancel_jobs(now=now, prefix=prefix)
        return None
    change = await next_handoff(u, schedule, now)
    due = change[0] if change else now + HANDOFF_LOOKAHEAD
    job = new_job(HANDOFF, handoff_key(schedule, due), due, now=now,
                  payload={"schedule": schedule.name, "at": due.isoformat()})
    await u.cancel_jobs(now=now, prefix=prefix, keep=[job.key])
    await u.schedule(job)
    return job


async def plan_handoffs(store: Store, catalog: Catalog, now: datetime) -> list[Job]:
    """At start: each schedule's next handoff job (the same row however many replicas start),
    and those of schedules that no longer exist or lost their channel cancelled."""
    planned: list[Job] = []
    async with store.unit() as u:
        for schedule in catalog.schedules:
            job = await plan_handoff(u, schedule, now)
            if job is not None:
                planned.append(job)
        await u.cancel_jobs(now=now, prefix=f"{HANDOFF}:", keep=[j.key for j in planned])
    return planned


async def handoff_text(u: Unit, schedule: Schedule, at: datetime) -> str | None:
    """ "🔁 primary: @bob is on call until Mon 7 Dec 09:00 CET (after @alice)" for the shift
    change at `at`, or None when who is on call does not change at `at` (any more)."""
    start, end = at - _TICK, at + HANDOFF_LOOKAHEAD
    found = await shifts_between(u, schedule, start, end)
    changes = handoffs(found, start, end)
    if not changes or changes[0][0] != at:
        return None
    person = changes[0][1]
    before = next((s.person for s in found if s.start <= start < s.end), None)
    until = f"until {when(changes[1][0], schedule.tz)}" if len(changes) > 1 else "from now on"
    after = f" (after {_person_label(before)})" if before is not None else ""
    return f"🔁 {schedule.name}: {_person_label(person)} is on call {until}{after}"


@handler(HANDOFF)
async def shift_change(ctx: JobContext) -> None:
    """Announce the shift change the job was planned for, if it still happens then, in the
    schedule's channel on every connected platform; plan the next one."""
    schedule = ctx.catalog.schedule(str(ctx.job.payload.get("schedule", "")))
    if schedule is None:
        return  # gone from the catalog: nothing to announce, nothing more to plan
    at = datetime.fromisoformat(str(ctx.job.payload.get("at")))
    text = await handoff_text(ctx.u, schedule, at) if schedule.channel else None
    upcoming = await next_handoff(ctx.u, schedule, at)
    if text is not None and (upcoming is None or upcoming[0] > ctx.now):
        if ctx.late_note:
            text += f" ({ctx.late_note})"
        assert schedule.channel is not None
        for platform in ctx.platforms:
            await queue_post(ctx.u, key=f"{ctx.job.key}:{platform}", platform=platform,
                             channel=schedule.channel, message=Message(text=text), now=ctx.now)
    elif text is None:
        logger.info("oncall: no shift change on %s at %s any more", schedule.name, at)
    await plan_handoff(ctx.u, schedule, max(ctx.now, at))


def next_coverage_check(now: datetime, tz: ZoneInfo) -> datetime:
    """COVERAGE_AT local time today, or tomorrow once that has passed."""
    today = _local_day(now, tz)
    due = instant(datetime.combine(today, COVERAGE_AT), tz)
    if due <= now:
        due = instant(datetime.combine(today + timedelta(days=1), COVERAGE_AT), tz)
    return due


def _local_day(moment: datetime, tz: ZoneInfo) -> date:
    return moment.astimezone(tz).date()


def _coverage_job(due: datetime, tz: ZoneInfo, now: datetime) -> Job:
    day = _local_day(due, tz).isoformat()
    return new_job(COVERAGE, f"{COVERAGE}:{day}", due, now=now, payload={"day": day})


async def schedule_coverage_check(store: Store, catalog: Catalog, now: datetime) -> Job | None:
    """At start: the next daily coverage check (one per day however many replicas start); none
    without schedules."""
    if not catalog.schedules:
        return None
    job = _coverage_job(next_coverage_check(now, catalog.tz), catalog.tz, now)
    async with store.unit() as u:
        await u.schedule(job, move=True)
    return job


def coverage_message(problems: Sequence[Problem], days: int) -> Message:
    count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
    lines = [f"🗓️ On-call coverage over the next {days} days: {count}"]
    lines += [f"• {p.schedule}: {p.text}" for p in problems]
    lines.append("(opsroom oncall check shows the same; fix the schedules or add overrides)")
    return Message(text="\n".join(lines))


@handler(COVERAGE)
async def coverage_check(ctx: JobContext) -> None:
    """The daily coverage check: its problems posted in each platform's announcement channel
    (nothing when there are none); the next day's check planned."""
    problems = await coverage_problems(ctx.u, ctx.catalog, ctx.now, days=COVERAGE_DAYS)
    day = str(ctx.job.payload.get("day") or _local_day(ctx.now, ctx.catalog.tz).isoformat())
    if problems:
        message = coverage_message(problems, COVERAGE_DAYS)
        for platform, channel in ctx.catalog.announcement_channels.items():
            if platform in ctx.platforms:
                await queue_post(ctx.u, key=f"{COVERAGE}:{day}:{platform}", platform=platform,
                                 channel=channel, message=message, now=ctx.now)
    logger.info("oncall: coverage check of %s found %d problems", day, len(problems))
    tz = ctx.catalog.tz
    await ctx.u.schedule(_coverage_job(next_coverage_check(ctx.now + timedelta(hours=1), tz),
                                       tz, ctx.now))


class Oncall(ServiceBase):
    READS = {
        OncallWho: "_oncall_who",
        OncallSchedule: "_oncall_schedule",
        OverrideCmd: "_oncall_override",
        OncallOverrides: "_oncall_overrides",
        OncallRemoveOverride: "_oncall_remove_override",
        OncallHelp: "_oncall_help",
    }

    _directory: Directory | None = None

    @property
    def people(self) -> Directory:
        if self._directory is None:
            self._directory = Directory(self.catalog.people)
        return self._directory

    def _schedule(self, name: str) -> Schedule:
        found = self.catalog.schedule(name)
        if found is None:
            raise ServiceError(
                f'unknown schedule "{name}": use {_one_of(self.catalog.schedule_names)}'
            )
        return found

    def _show_person(self, person: str, platform: str) -> str:
        if person.startswith("<@"):
            return self.people.localize(person, platform)
        return self.people.mention(person, platform)

    async def _oncall_help(self, cmd: OncallHelp, actor: Actor, where: ChannelRef) -> Reply:
        return Reply(f"{ONCALL_HELP}\n{DATE_HELP}")

    async def _oncall_who(self, cmd: OncallWho, actor: Actor, where: ChannelRef) -> Reply:
        names = [cmd.schedule] if cmd.schedule else self.catalog.schedule_names
        if not names:
            raise ServiceError(
                "no on-call schedules are configured (add schedules: to the catalog)"
            )
        now = self.clock.now()
        lines = []
        async with self.store.unit() as u:
            for name in names:
                schedule = self._schedule(name)
                shift = who(schedule, now, await overrides_of(u, schedule.name, now))
                if shift is None:
                    lines.append(f"{schedule.name}: nobody is on call now")
                    continue
                lines.append(
                    f"{schedule.name}: {self._show_person(shift.person, where.platform)} until "
                    f"{when(shift.end, schedule.tz)} ({shift.source})"
                )
        return Reply("\n".join(lines))

    async def _oncall_schedule(self, cmd: OncallSchedule, actor: Actor, where: ChannelRef) -> Reply:
        schedule = self._schedule(cmd.schedule)
        now = self.clock.now()
        async with self.store.unit() as u:
            found = await shifts_between(u, schedule, now, now + timedelta(days=cmd.days))
        tz = schedule.tz
        lines = [f"{schedule.name} ({schedule.timezone}), the next {cmd.days} days:"]
        cursor = now
        for shift in found:
            if shift.start > cursor:
                lines.append(f"• {when(cursor, tz)} – {when(shift.start, tz)}  nobody")
            lines.append(
                f"• {when(shift.start, tz)} – {when(shift.end, tz)}  "
                f"{self._show_person(shift.person, where.platform)} ({shift.source})"
            )
            cursor = shift.end
        if cursor < now + timedelta(days=cmd.days):
            lines.append(f"• {when(cursor, tz)} onwards  nobody")
        return Reply("\n".join(lines))

    def _moment(self, text: str, now: datetime, tz: ZoneInfo) -> datetime:
        try:
            return parse_due(text, now, tz)
        except ValueError as exc:
            raise ServiceError(f"{exc}. {DATE_HELP}") from None

    async def _oncall_override(self, cmd: OverrideCmd, actor: Actor, where: ChannelRef) -> Reply:
        schedule = self._schedule(cmd.schedule)
        person = self._person(cmd.person, "the override")
        name = self.people.name_of(person)
        who_ = (
            name if name and (self.people.person(name) or not person.startswith("<@")) else person
        )
        now = self.clock.now()
        tz = schedule.tz
        start = now if cmd.start is None else self._moment(cmd.start, now, tz)
        if cmd.length is not None:
            end = start + cmd.length
        else:
            assert cmd.end is not None
            end = self._moment(cmd.end, now, tz)
        if end <= start:
            raise ServiceError(
                f"the override ends ({when(end, tz)}) before it starts ({when(start, tz)})"
            )
        if end - start > MAX_OVERRIDE:
            raise ServiceError("an override may last at most 90 days")
        row = OncallOverride(
            schedule=schedule.name,
            person=who_,
            start_at=start,
            end_at=end,
            created_by=actor.ref,
            created_at=now,
        )
        async with self.store.unit() as u:
            await u.add(row)
            await plan_handoff(u, schedule, now)
        logger.info("oncall: override %s on %s by %s", row.id, schedule.name, actor.ref)
        return Reply(
            f"Override {row.id}: {self._show_person(who_, where.platform)} is on call for "
            f"{schedule.name} from {when(start, tz)} to {when(end, tz)}."
        )

    async def _oncall_overrides(
        self, cmd: OncallOverrides, actor: Actor, where: ChannelRef
    ) -> Reply:
        if cmd.schedule:
            self._schedule(cmd.schedule)
        now = self.clock.now()
        async with self.store.unit() as u:
            rows = await u.overrides(cmd.schedule, ending_after=now)
        if not rows:
            return Reply("No overrides now or ahead.")
        lines = ["Overrides (remove one with /oncall remove-override <id>):"]
        for r in rows:
            sched = self.catalog.schedule(r.schedule)
            tz = sched.tz if sched else self.catalog.tz
            lines.append(
                f"• {r.id}: {r.schedule} {self._show_person(r.person, where.platform)} "
                f"{when(r.start_at, tz)} – {when(r.end_at, tz)} (by {r.created_by})"
            )
        return Reply("\n".join(lines))

    async def _oncall_remove_override(
        self, cmd: OncallRemoveOverride, actor: Actor, where: ChannelRef
    ) -> Reply:
        async with self.store.unit() as u:
            row = await u.override(cmd.id)
            if row is None or row.removed:
                raise ServiceError(f"no override {cmd.id} (/oncall overrides lists them)")
            row.removed = True
            await u.add(row)  # flushed, so the shifts planned next go without it
            schedule = self.catalog.schedule(row.schedule)
            if schedule is not None:
                await plan_handoff(u, schedule, self.clock.now())
        logger.info("oncall: override %s removed by %s", cmd.id, actor.ref)
        return Reply(f"Override {cmd.id} removed: {row.schedule} is back to its layers.")
