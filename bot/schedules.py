"""On-call schedule math: who is on call when. Pure: no clock, no store, no chat.

A schedule has an IANA time zone and layers. A layer hands off between its users at wall-clock
times in that zone: a weekly `mon 09:00` handoff stays at 09:00 local on both sides of a
daylight-saving change (the shift around it is 167 h or 169 h long), because shift boundaries are
computed as local wall times and only then turned into instants, never by adding 7 x 24 h in UTC.
A local time that happens twice (autumn) means its first occurrence; one that does not exist
(spring) means the instant the clocks jump over it (dateutil's `resolve_imaginary`).

Layers listed later sit on top of earlier ones: where a later layer has somebody, that person is
on call; where it has nobody (a restriction, a layer not started yet), the layer below shows
through. Overrides sit on top of every layer; of two overlapping overrides, the later one wins.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from dateutil import tz as dtz
from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from bot.timing import parse_duration, zone

logger = logging.getLogger(__name__)

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HANDOFF_RE = re.compile(r"^(?:(mon|tue|wed|thu|fri|sat|sun)[a-z]*\s+)?(\d{1,2}):(\d{2})$")
_HOURS_RE = re.compile(r"^(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})$")
DAY = timedelta(days=1)
WEEK = timedelta(days=7)


def _clock(hours: str, minutes: str, text: str) -> time:
    h, m = int(hours), int(minutes)
    if h > 23 or m > 59:
        raise ValueError(f'"{text}" is not a time of day (00:00 to 23:59)')
    return time(h, m)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Restriction(_Strict):
    """When a layer has anybody at all: some weekdays, some hours of the day (local)."""

    weekdays: list[str] = list(WEEKDAYS)
    hours: str | None = None  # "09:00-17:00"; "22:00-06:00" runs past midnight

    @field_validator("weekdays")
    @classmethod
    def _days(cls, value: list[str]) -> list[str]:
        days = [d.strip().lower()[:3] for d in value]
        for given, day in zip(value, days, strict=True):
            if day not in WEEKDAYS:
                raise ValueError(f'"{given}" is not a weekday: use {", ".join(WEEKDAYS)}')
        if not days:
            raise ValueError("weekdays must name at least one day")
        return days

    @field_validator("hours")
    @classmethod
    def _hours(cls, value: str | None) -> str | None:
        if value is not None:
            m = _HOURS_RE.match(value.strip())
            if not m:
                raise ValueError(f'"{value}" is not hours like 09:00-17:00')
            start = _clock(m.group(1), m.group(2), value)
            end = _clock(m.group(3), m.group(4), value)
            if start == end:
                raise ValueError(f'"{value}" is an empty range of hours')
        return value

    def span(self) -> tuple[time, time] | None:
        if self.hours is None:
            return None
        m = _HOURS_RE.match(self.hours.strip())
        assert m is not None
        return _clock(m.group(1), m.group(2), ""), _clock(m.group(3), m.group(4), "")


class Layer(_Strict):
    name: str = ""
    users: list[str]  # people by name (see the catalog's `people:`), in rotation order
    rotation: str = "weekly"  # daily, weekly, or a duration (12h, 2d)
    handoff: str = "mon 09:00"  # "mon 09:00" for weekly; "09:00" otherwise
    start: date
    restrict: Restriction | None = None

    @field_validator("users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a layer needs at least one user")
        return [u.strip().lstrip("@").lower() for u in value]

    @field_validator("rotation")
    @classmethod
    def _rotation(cls, value: str) -> str:
        if value in ("daily", "weekly"):
            return value
        try:
            length = parse_duration(value)
        except ValueError:
            raise ValueError(
                f'"{value}" is not a rotation: use daily, weekly or a duration like 12h or 2d'
            ) from None
        if length < timedelta(hours=1):
            raise ValueError(f'rotation "{value}" is shorter than 1h')
        return value

    @model_validator(mode="after")
    def _handoff(self) -> Layer:
        m = _HANDOFF_RE.match(self.handoff.strip().lower())
        if not m:
            raise ValueError(f'handoff "{self.handoff}" is not like "mon 09:00" or "09:00"')
        _clock(m.group(2), m.group(3), self.handoff)
        if m.group(1) and self.rotation != "weekly":
            raise ValueError(
                f'handoff "{self.handoff}" names a weekday, which only a weekly rotation has '
                '(write "09:00")'
            )
        return self

    @cached_property
    def period(self) -> timedelta:
        """The length of one shift in local wall-clock time."""
        if self.rotation == "daily":
            return DAY
        if self.rotation == "weekly":
            return WEEK
        return parse_duration(self.rotation)

    def anchor(self) -> datetime:
        return self._anchor

    @cached_property
    def _anchor(self) -> datetime:
        """The first handoff, as a naive local wall time: the start date (or the first of the
        handoff's weekday on or after it) at the handoff time."""
        m = _HANDOFF_RE.match(self.handoff.strip().lower())
        assert m is not None
        day = self.start
        if m.group(1):
            day += timedelta(days=(WEEKDAYS.index(m.group(1)) - day.weekday()) % 7)
        return datetime.combine(day, _clock(m.group(2), m.group(3), self.handoff))


class Schedule(_Strict):
    name: str
    timezone: str = "UTC"
    layers: list[Layer]
    description: str = ""
    # Shift changes are announced in the channel of this name on every connected platform.
    channel: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        if value is None:
            return None
        name = value.strip().lstrip("#")
        if not name or any(ch.isspace() for ch in name):
            raise ValueError(f'"{value}" is not a channel name (like oncall)')
        return name

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @field_validator("layers")
    @classmethod
    def _layers(cls, value: list[Layer]) -> list[Layer]:
        if not value:
            raise ValueError("a schedule needs at least one layer")
        return value

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    def layer_name(self, index: int) -> str:
        return self.layers[index].name or f"layer {index + 1}"


@dataclass(frozen=True)
class Override:
    """Somebody on call instead of whoever the layers say, from `start` to `end` (UTC)."""

    person: str
    start: datetime
    end: datetime
    id: int = 0


@dataclass(frozen=True)
class Shift:
    """`person` is on call from `start` to `end` (aware UTC instants); `source` says why: a
    layer's name or "override"."""

    person: str
    start: datetime
    end: datetime
    source: str


# --- wall-clock to instants -----------------------------------------------------------------


def instant(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of naive local wall time `local` in `tz`: an ambiguous time is its first
    occurrence; a time skipped by a daylight-saving jump is the moment the clocks jump."""
    aware = local.replace(tzinfo=tz, fold=0)
    if not dtz.datetime_exists(aware):
        # Not resolve_imaginary's "02:30 -> 03:30": a handoff at any time in the gap happens
        # when the clocks jump, so shifts stay in order and none is skipped or doubled.
        aware = _gap_end(local, tz)
    return aware.astimezone(UTC)


def _gap_end(local: datetime, tz: ZoneInfo) -> datetime:
    """The first existing local time after `local` (which does not exist), to the minute."""
    probe = local
    while not dtz.datetime_exists(probe.replace(tzinfo=tz, fold=0)):
        probe += timedelta(minutes=1)
    return probe.replace(tzinfo=tz, fold=0)


def is_ambiguous(local: datetime, tz: ZoneInfo) -> bool:
    """`local` happens twice in `tz` (the autumn hour)."""
    return bool(dtz.datetime_ambiguous(local.replace(tzinfo=tz)))


def _local(moment: datetime, tz: ZoneInfo) -> datetime:
    return moment.astimezone(tz).replace(tzinfo=None)


# --- one layer ------------------------------------------------------------------------------


def _boundary(layer: Layer, tz: ZoneInfo, k: int) -> datetime:
    return instant(layer.anchor() + k * layer.period, tz)


def _layer_shifts(layer: Layer, tz: ZoneInfo, start: datetime, end: datetime) -> Iterator[Shift]:
    """The layer's rotation shifts that meet [start, end), unrestricted, in order."""
    anchor, period = layer.anchor(), layer.period
    first = max(0, (_local(start, tz) - anchor) // period - 1)
    k = first
    while True:
        s, e = _boundary(layer, tz, k), _boundary(layer, tz, k + 1)
        if s >= end:
            return
        if e > start and e > s:  # a shift wholly inside a skipped hour has no length
            yield Shift(layer.users[k % len(layer.users)], s, e, "")
        k += 1


def _windows(
    restrict: Restriction, tz: ZoneInfo, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The instants in [start, end) the restriction allows, as (from, to) pairs."""
    span = restrict.span()
    day = _local(start, tz).date() - DAY  # a window that began yesterday may still be open
    last = _local(end, tz).date()
    out: list[tuple[datetime, datetime]] = []
    while day <= last:
        if WEEKDAYS[day.weekday()] in restrict.weekdays:
            if span is None:
                a, b = datetime.combine(day, time()), datetime.combine(day + DAY, time())
            else:
                a = datetime.combine(day, span[0])
                b = datetime.combine(day + (DAY if span[1] <= span[0] else timedelta()), span[1])
            s, e = max(instant(a, tz), start), min(instant(b, tz), end)
            if s < e:
                if out and out[-1][1] >= s:  # whole days run into each other
                    out[-1] = (out[-1][0], max(out[-1][1], e))
                else:
                    out.append((s, e))
        day += DAY
    return out


def layer_shifts(schedule: Schedule, index: int, start: datetime, end: datetime) -> list[Shift]:
    """Layer `index`'s shifts within [start, end), cut to its restrictions."""
    layer, tz = schedule.layers[index], schedule.tz
    name = schedule.layer_name(index)
    shifts = [
        Shift(s.person, max(s.start, start), min(s.end, end), name)
        for s in _layer_shifts(layer, tz, start, end)
    ]
    if layer.restrict is None:
        return shifts
    out = []
    windows = _windows(layer.restrict, tz, start, end)
    for s in shifts:
        for a, b in windows:
            lo, hi = max(a, s.start), min(b, s.end)
            if lo < hi:
                out.append(Shift(s.person, lo, hi, name))
    return out


# --- the whole schedule ---------------------------------------------------------------------


def shifts(
    schedule: Schedule,
    start: datetime,
    end: datetime,
    overrides: Sequence[Override] = (),
) -> list[Shift]:
    """Who is on call over [start, end): consecutive shifts, none overlapping, merged where the
    same person stays on from the same source. Stretches with nobody are simply absent."""
    # Each source, bottom first; a later source covers an earlier one where it has somebody.
    levels: list[list[Shift]] = [
        layer_shifts(schedule, i, start, end) for i in range(len(schedule.layers))
    ]
    levels += [
        [Shift(o.person, max(o.start, start), min(o.end, end), "override")]
        for o in sorted(overrides, key=lambda o: o.id)
        if o.start < end and o.end > start and o.start < o.end
    ]
    cuts = sorted({start, end, *(t for lv in levels for s in lv for t in (s.start, s.end))})
    out: list[Shift] = []
    pointers = [0] * len(levels)
    for a, b in itertools.pairwise(cuts):
        top: Shift | None = None
        for i, level in enumerate(levels):
            # Each level's shifts are in order and disjoint: advance past those that ended.
            while pointers[i] < len(level) and level[pointers[i]].end <= a:
                pointers[i] += 1
            j = pointers[i]
            if j < len(level) and level[j].start <= a:
                top = level[j]
        if top is None:
            continue
        if (
            out
            and out[-1].end == a
            and (out[-1].person, out[-1].source)
            == (
                top.person,
                top.source,
            )
        ):
            out[-1] = Shift(top.person, out[-1].start, b, top.source)
        else:
            out.append(Shift(top.person, a, b, top.source))
    return out


LOOKAHEAD = timedelta(days=35)  # how far `who` looks for the end of the current shift


def who(
    schedule: Schedule,
    at: datetime,
    overrides: Sequence[Override] = (),
    *,
    lookahead: timedelta = LOOKAHEAD,
) -> Shift | None:
    """The shift on at `at` (its end merged across handoffs to the same person, within
    `lookahead`), or None when nobody is on call then."""
    # From a period back, so the shift's true start is known, not just `at`.
    back = max(layer.period for layer in schedule.layers) + DAY
    found = shifts(schedule, at - back, at + lookahead, overrides)
    i = next((i for i, sh in enumerate(found) if sh.start <= at < sh.end), None)
    if i is None:
        return None
    first = found[i]
    for nxt in found[i + 1 :]:
        if nxt.start != first.end or nxt.person != first.person:
            break
        first = Shift(first.person, first.start, nxt.end, first.source)
    return first


def who_at(schedule: Schedule, at: datetime, overrides: Sequence[Override] = ()) -> str | None:
    """Just the person on call at `at` (or None); cheap: looks only at the shifts around it."""
    for o in sorted(overrides, key=lambda o: -o.id):
        if o.start <= at < o.end:
            return o.person
    tz = schedule.tz
    for i in range(len(schedule.layers) - 1, -1, -1):
        layer = schedule.layers[i]
        person = _layer_person(layer, tz, at)
        if person is None:
            continue
        if layer.restrict is not None and not _allowed(layer.restrict, tz, at):
            continue
        return person
    return None


def _layer_person(layer: Layer, tz: ZoneInfo, at: datetime) -> str | None:
    anchor, period = layer.anchor(), layer.period
    k = (_local(at, tz) - anchor) // period
    # The local estimate is off by one at most around a daylight-saving change.
    first = max(0, k - 1)
    bounds = [_boundary(layer, tz, j) for j in range(first, k + 3)]
    for i in range(len(bounds) - 1):
        if bounds[i] <= at < bounds[i + 1]:
            return layer.users[(first + i) % len(layer.users)]
    return None


def _allowed(restrict: Restriction, tz: ZoneInfo, at: datetime) -> bool:
    return any(a <= at < b for a, b in _windows(restrict, tz, at, at + timedelta(seconds=1)))


def ambiguous_handoffs(schedule: Schedule, start: datetime, end: datetime) -> list[datetime]:
    """Handoffs within [start, end) at a local time that happens twice (resolved to the first)."""
    out = []
    tz = schedule.tz
    for layer in schedule.layers:
        for s in _layer_shifts(layer, tz, start, end):
            if s.start >= start and is_ambiguous(_local(s.start, tz), tz):
                out.append(s.start)
    return sorted(set(out))


def gaps(
    shifts_: Sequence[Shift], start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The stretches of [start, end) that `shifts_` (as `shifts` returns them) leave uncovered."""
    out = []
    cursor = start
    for s in shifts_:
        if s.start > cursor:
            out.append((cursor, s.start))
        cursor = max(cursor, s.end)
    if cursor < end:
        out.append((cursor, end))
    return out


def handoffs(
    shifts_: Sequence[Shift], start: datetime, end: datetime
) -> list[tuple[datetime, str | None]]:
    """The instants in (start, end) where who is on call changes, with who is on from then
    (None: nobody), from `shifts_` as `shifts` returns them over [start, end). A change of
    source with the same person on call (a layer to an override of them) is not a handoff."""
    segments: list[tuple[datetime, str | None]] = []
    cursor = start
    for s in shifts_:
        if s.start > cursor:
            segments.append((cursor, None))
        segments.append((s.start, s.person))
        cursor = max(cursor, s.end)
    if cursor < end:
        segments.append((cursor, None))
    out = []
    before: str | None = segments[0][1] if segments and segments[0][0] <= start else None
    for at, person in segments:
        if at > start and person != before:
            out.append((at, person))
        before = person
    return out
