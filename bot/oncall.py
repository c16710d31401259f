"""On-call use cases: who is on call, the next shifts, overrides, and the coverage check.

The schedule math is bot/schedules.py (pure); this area reads overrides from the store, resolves
what people typed (dates in the schedule's time zone, `@name` to a person) and shows people as
themselves on the platform that asked (bot/people.py).

Paging and escalation policies build on `on_call_now`: a policy step that names a schedule
notifies whoever `on_call_now(u, catalog, schedule, now)` returns.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from bot.base import Reply, ServiceBase, ServiceError
from bot.catalog import Catalog
from bot.dates import parse_due
from bot.models import OncallOverride
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
from bot.ports import Actor, ChannelRef, Unit
from bot.schedules import (
    Override,
    Schedule,
    Shift,
    ambiguous_handoffs,
    gaps,
    shifts,
    who,
)

logger = logging.getLogger(__name__)

MAX_OVERRIDE = timedelta(days=90)
ICS_DAYS = 90


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
        logger.info("oncall: override %s removed by %s", cmd.id, actor.ref)
        return Reply(f"Override {cmd.id} removed: {row.schedule} is back to its layers.")
