"""Time as people write and read it: catalog durations (30s, 5m, 1h30m, 1d), cron syntax, and
moments shown in the catalog's timezone with the zone's name."""

from __future__ import annotations

import difflib
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_CRON_FIELDS: tuple[tuple[str, int, int, dict[str, int]], ...] = (
    ("minute", 0, 59, {}),
    ("hour", 0, 23, {}),
    ("day of month", 1, 31, {}),
    (
        "month",
        1,
        12,
        {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
    ),
    # Standard crontab: 0 and 7 are Sunday.
    ("day of week", 0, 7, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)


def parse_duration(text: str) -> timedelta:
    """`30s`, `5m`, `1h30m`, `1d` as a timedelta; ValueError naming the text otherwise."""
    compact = re.sub(r"\s+", "", str(text).lower())
    m = _DURATION_RE.match(compact)
    if not compact or not m or not any(m.groups()):
        raise ValueError(f'"{text}" is not a duration like 30s, 5m, 1h30m or 1d')
    seconds = sum(int(n) * s for n, s in zip(m.groups(), _UNITS.values(), strict=True) if n)
    if seconds <= 0:
        raise ValueError(f'"{text}" is not a duration longer than 0s, like 30s, 5m, 1h30m or 1d')
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """A duration the way the catalog writes one: 30s, 5m, 1h30m, 1d."""
    seconds = int(delta.total_seconds())
    if seconds <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS.items():
        n, seconds = divmod(seconds, size)
        if n:
            parts.append(f"{n}{unit}")
    return "".join(parts)


def format_lateness(delta: timedelta) -> str:
    """How late, for people: "45 s", "12 min", "2 h 5 min", "3 d 4 h"."""
    seconds = max(0, int(delta.total_seconds()))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def zone(name: str) -> ZoneInfo:
    """The IANA zone called `name`; ValueError naming it and the nearest real names."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        pass
    close = difflib.get_close_matches(name, sorted(available_timezones()), n=2)
    hint = f"did you mean {' or '.join(close)}?" if close else "use an IANA name like Europe/Paris"
    raise ValueError(f'unknown time zone "{name}": {hint}')


def local_when(moment: datetime, now: datetime, tz: ZoneInfo) -> str:
    """`moment` in `tz` with the zone's name: "14:30 UTC" today, "Sat 17:00 CET" within a week,
    "Sat 12 Dec 17:00 CET" otherwise."""
    local, today = moment.astimezone(tz), now.astimezone(tz)
    name = local.tzname() or tz.key
    if local.date() == today.date():
        return f"{local:%H:%M} {name}"
    if abs((local.date() - today.date()).days) < 7:
        return f"{local:%a %H:%M} {name}"
    return f"{local:%a %d %b %H:%M} {name}"


def relative(moment: datetime, now: datetime) -> str:
    """ "in 12m" or "12m ago", to the second under a minute."""
    delta = moment - now
    seconds = abs(int(delta.total_seconds()))
    if seconds >= 60:
        seconds -= seconds % 60  # minutes are precise enough beyond the first one
    shown = format_duration(timedelta(seconds=seconds))
    return f"in {shown}" if delta.total_seconds() > 0 else f"{shown} ago"


def check_cron(expr: str) -> str:
    """`expr` when it is a five-field crontab line (minute hour day month weekday); ValueError
    naming the bad field otherwise."""
    fields = expr.split()
    if len(fields) != 5:
        raise ValueError(
            f'"{expr}" is not a cron expression: use five fields, minute hour day month weekday, '
            'e.g. "0 9 * * *" (09:00 every day) or "30 8 * * mon-fri"'
        )
    for value, (what, low, high, names) in zip(fields, _CRON_FIELDS, strict=True):
        for part in value.lower().split(","):
            if not _cron_part_ok(part, low, high, names):
                raise ValueError(
                    f'"{expr}": bad {what} "{value}": use *, a number {low}-{high}'
                    + (", a name" if names else "")
                    + ", a range a-b, a list a,b or a step */n"
                )
    return expr


def _cron_part_ok(part: str, low: int, high: int, names: dict[str, int]) -> bool:
    base, slash, step = part.partition("/")
    if slash and not (step.isdigit() and int(step) > 0):
        return False
    if base == "*":
        return True
    start, dash, end = base.partition("-")
    bounds = [start, end] if dash else [start]
    values = []
    for b in bounds:
        if b in names:
            values.append(names[b])
        elif b.isascii() and b.isdigit():
            values.append(int(b))
        else:
            return False
    return all(low <= v <= high for v in values) and values == sorted(values)
