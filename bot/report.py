"""`opsroom report`: response times of the incidents of a period, overall and by group.

Times are counted from the declare: to acknowledge (the first move out of `triggered`) and to
resolve (the last resolve, after any reopen). Percentiles interpolate linearly between the
two nearest values (p50 of 10 and 20 minutes is 15 minutes), as spreadsheets do.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from bot.models import Status

GROUPS = ("type", "severity", "week")


@dataclass(frozen=True)
class IncidentRow:
    """What the report needs of one incident (cancelled incidents are never rows)."""

    number: int
    type: str
    severity: str
    status: Status
    declared_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None  # only when resolved or closed now


@dataclass(frozen=True)
class Stats:
    """Count, mean, p50 and p90 of some durations in seconds (None when there are none)."""

    count: int
    mean: float | None
    p50: float | None
    p90: float | None


@dataclass(frozen=True)
class GroupReport:
    group: str  # "all", a type, a severity, or a week's Monday (2026-11-30)
    incidents: int
    resolved: int
    acknowledge: Stats
    resolve: Stats


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0..100) of `values`, interpolated linearly; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def stats(values: Sequence[float]) -> Stats:
    if not values:
        return Stats(0, None, None, None)
    return Stats(len(values), sum(values) / len(values), percentile(values, 50),
                 percentile(values, 90))


def week_of(moment: datetime, tz: tzinfo) -> str:
    """The Monday (in `tz`) of the week `moment` falls in, as 2026-11-30."""
    day = moment.astimezone(tz).date()
    return (day - timedelta(days=day.weekday())).isoformat()


def group_report(name: str, rows: Sequence[IncidentRow]) -> GroupReport:
    ack = [
        (r.acknowledged_at - r.declared_at).total_seconds()
        for r in rows
        if r.acknowledged_at is not None
    ]
    res = [(r.resolved_at - r.declared_at).total_seconds() for r in rows if r.resolved_at]
    return GroupReport(name, len(rows), len(res), stats(ack), stats(res))


def build(rows: Sequence[IncidentRow], by: str | None, tz: tzinfo) -> list[GroupReport]:
    """The report's lines: every incident ("all"), then one per group when `by` is given."""
    lines = [group_report("all", rows)]
    if by is None:
        return lines
    if by not in GROUPS:
        raise ValueError(f'cannot group by "{by}": use {", ".join(GROUPS)}')
    groups: dict[str, list[IncidentRow]] = {}
    for r in rows:
        key = week_of(r.declared_at, tz) if by == "week" else getattr(r, by)
        groups.setdefault(key, []).append(r)
    return lines + [group_report(k, groups[k]) for k in sorted(groups)]


def weekly(rows: Sequence[IncidentRow], tz: tzinfo) -> list[tuple[str, int, float | None]]:
    """Per week: incidents declared and the mean time to resolve in hours (for the chart)."""
    return [
        (g.group, g.incidents, g.resolve.mean / 3600 if g.resolve.mean is not None else None)
        for g in build(rows, "week", tz)[1:]
    ]
