"""The times an incident keeps for its metrics, and reading a past moment as people write it.

The transitions set them (bot/lifecycle.py `_move`): acknowledged at the first move out of
`triggered` (an ack or a page ack), mitigated at the first `monitoring` (or resolve), resolved
at the last resolve (a reopen clears it), closed at the close. `impact_started` is set at the
declare; `/incident time <which> <when>` corrects any of them, keeping their order.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from dateutil import parser as dateparser

from bot.dates import _clock, read_due
from bot.models import Incident

# `/incident time` names -> Incident attributes, in the order the times must keep.
FIELDS: dict[str, str] = {
    "impact_started": "impact_started_at",
    "declared": "declared_at",
    "acknowledged": "acknowledged_at",
    "mitigated": "mitigated_at",
    "resolved": "resolved_at",
    "closed": "closed_at",
}

FORMS = "14:05, yesterday 14:05, 2026-12-15 14:05, 15 Dec 14:05, 20m ago, 2h ago, now"

_AGO_RE = re.compile(r"^(\d{1,6})\s*(m|mins?|minutes?|h|hrs?|hours?|d|days?)\s+ago$")
_UNIT = {"m": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1)}
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}")
MAX_BACK = timedelta(days=366)


class WhenError(ValueError):
    """A moment that cannot be used; the message names it and the accepted forms."""


def _bad(text: str, why: str | None = None) -> WhenError:
    return WhenError(f'invalid time "{text}": {why or "use " + FORMS}')


def _local(day: date, at: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def parse_past(text: str, now: datetime, tz: tzinfo = UTC) -> datetime:
    """The UTC moment `text` means, looking back from `now` in `tz` ("14:05" is the latest
    14:05 not after now); WhenError when it is unreadable or in the future."""
    t = " ".join(text.lower().replace(",", " ").split())
    local_now = now.astimezone(tz)
    when: datetime | None = None
    if t == "now":
        return now
    if m := _AGO_RE.match(t):
        n, step = int(m.group(1)), _UNIT[m.group(2)[0]]
        if n * step > MAX_BACK:
            raise _bad(text, "more than a year ago")
        return now - n * step
    words = t.split()
    if words and words[0] in ("today", "yesterday"):
        at = _clock(words[1:]) if len(words) > 1 else None
        if at is None:
            raise _bad(text, f'give a time of day, e.g. "{words[0]} 14:05"')
        day = local_now.date() - timedelta(days=1 if words[0] == "yesterday" else 0)
        when = _local(day, at, tz)
    elif (at := _clock(words)) is not None:
        when = _local(local_now.date(), at, tz)
        if when > now:
            when = _local(local_now.date() - timedelta(days=1), at, tz)
    elif _ISO_RE.match(t) and "t" in words[0] and len(words) == 1:
        try:
            parsed = dateparser.isoparse(words[0].upper())
        except (ValueError, OverflowError):
            raise _bad(text, "no such day or time") from None
        when = (parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)).astimezone(UTC)
    else:
        try:
            form = read_due(t)
        except ValueError:
            raise _bad(text) from None
        if form.kind != "date" or (form.at is None and form.moment is None):
            raise _bad(text)
        if form.moment is not None:
            when = form.moment
        elif form.day is not None:
            assert form.at is not None
            when = _local(form.day, form.at, tz)
        else:
            assert form.month_day is not None and form.at is not None
            month, mday = form.month_day
            for year in range(local_now.year, local_now.year - 5, -1):
                try:
                    when = _local(date(year, month, mday), form.at, tz)
                except ValueError:  # 29 Feb in a year without it
                    continue
                if when <= now:
                    break
    if when is None:
        raise _bad(text)
    if when > now:
        shown = when.astimezone(tz).strftime("%a %d %b %Y %H:%M %Z")
        raise _bad(text, f"that is in the future ({shown})")
    if now - when > MAX_BACK:
        raise _bad(text, "more than a year ago")
    return when


def check_order(incident: Incident, which: str, when: datetime) -> None:
    """Raise WhenError unless setting `which` to `when` keeps impact_started <= declared <=
    acknowledged <= mitigated <= resolved <= closed (times not set yet are skipped)."""
    names = list(FIELDS)
    at = names.index(which)
    for other in names[:at]:
        value: datetime | None = getattr(incident, FIELDS[other])
        if value is not None and value > when:
            raise WhenError(f"{which} cannot be before {other} ({_iso(value)})")
    for other in names[at + 1 :]:
        value = getattr(incident, FIELDS[other])
        if value is not None and value < when:
            raise WhenError(f"{which} cannot be after {other} ({_iso(value)})")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Durations:
    """How long each stage took; None when the stage has not happened."""

    to_acknowledge: timedelta | None
    to_mitigate: timedelta | None
    to_resolve: timedelta | None
    impact: timedelta | None  # impact start to mitigation (or resolution)


def durations(incident: Incident) -> Durations:
    """Times to acknowledge, mitigate and resolve, counted from the declare; the impact window
    from the impact's start."""
    start = incident.declared_at

    def since(moment: datetime | None, origin: datetime | None = start) -> timedelta | None:
        return None if moment is None or origin is None else moment - origin

    end = incident.mitigated_at or incident.resolved_at
    return Durations(
        to_acknowledge=since(incident.acknowledged_at),
        to_mitigate=since(incident.mitigated_at),
        to_resolve=since(incident.resolved_at),
        impact=since(end, incident.impact_started_at or start),
    )
