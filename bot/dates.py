"""Due dates as people type them: `15 Dec`, `friday 3pm`, `in 3d`, `tomorrow 9am`, `eod`...

Reading is two steps so that the command grammar never needs a clock:

- `read_due(text)` checks the form and everything that does not depend on today (`31 Feb`
  is impossible in any year, `in 99999999w` is too far in any year) and returns a `DueForm`;
- `DueForm.resolve(now, tz)` gives the UTC moment it means for someone whose wall clock is
  `tz` at `now`, refusing a moment already gone.

Calendar dates (`15 Dec`, `Dec 15 2027`, ISO dates) are read with python-dateutil; the relative
forms (`in 3d`, `friday`, `next friday`, `tomorrow 9am`, `eod`) are ours.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from dateutil import parser as dateparser

END_OF_DAY = time(17, 0)  # a day without a time means the end of the working day
LAST_MINUTE = time(23, 59)
MAX_AHEAD = timedelta(days=5 * 366)  # an action item due later than this is a typo
MAX_AHEAD_TEXT = "5 years"

# The accepted forms, as `/incident help action` and every date error list them.
FORMS = (
    "15 Dec, Dec 15, 2026-12-15 14:00, today, eod, tomorrow, tomorrow 9am, friday, "
    "next friday 3pm, in 2h, in 3d"
)

WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAY = {d: i for i, d in enumerate(WEEKDAYS)} | {d[:3]: i for i, d in enumerate(WEEKDAYS)}
_WEEKDAY |= {"tues": 1, "thur": 3, "thurs": 3}
_MONTH = {m.lower(): i for i, m in enumerate(calendar.month_name) if m} | {
    m.lower(): i for i, m in enumerate(calendar.month_abbr) if m
}
_MONTH["sept"] = 9
_UNITS = {
    "m": timedelta(minutes=1),
    "h": timedelta(hours=1),
    "d": timedelta(days=1),
    "w": timedelta(weeks=1),
}
_RELATIVE_RE = re.compile(r"^in\s+(\d+)\s*(m|mins?|minutes?|h|hrs?|hours?|d|days?|w|wks?|weeks?)$")
_ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(?:t\d{1,2}:\d{2}(?::\d{2})?(?:z|[+-]\d{2}:?\d{2})?)?$")
_DAY_RE = re.compile(r"^(\d{1,2})(?:st|nd|rd|th)?$")
_YEAR_RE = re.compile(r"^\d{4}$")
_CLOCK_RE = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*(am|pm)?$")
# "end of day" and friends all mean eod; "on"/"by" in front of a date add nothing.
_PHRASES = (
    (re.compile(r"\b(?:end of (?:the )?(?:working )?day|close of business|cob)\b"), "eod"),
    (re.compile(r"^(?:on|by|before)\s+"), ""),
    (re.compile(r"\b(?:at|the|of)\b"), " "),
    (re.compile(r"[,.]"), " "),
)


class DueDateError(ValueError):
    """A due date that cannot be used; the message names the value and why."""


def _invalid(text: str, why: str | None = None) -> DueDateError:
    return DueDateError(f'invalid date "{text}": {why or "use " + FORMS}')


@dataclass(frozen=True)
class DueForm:
    """A due date read from its text; `resolve(now, tz)` gives the moment it means."""

    text: str
    kind: str  # "relative", "today", "eod", "tomorrow", "weekday", "next_weekday", "date"
    offset: timedelta = timedelta(0)  # relative
    weekday: int = 0  # weekday, next_weekday
    at: time | None = None  # a time of day given with the day
    day: date | None = None  # date: with a year
    month_day: tuple[int, int] | None = None  # date: without a year
    moment: datetime | None = None  # date: an ISO moment with its own offset

    def resolve(self, now: datetime, tz: tzinfo = UTC) -> datetime:
        """The UTC moment this means at `now` in `tz`; DueDateError when it is already past."""
        try:
            due = self._resolve(now, tz)
        except OverflowError:  # 9999-12-31 in a zone behind UTC is past datetime.max
            raise _invalid(self.text, f"more than {MAX_AHEAD_TEXT} ahead") from None
        if due <= now:
            shown = due.astimezone(tz).strftime("%a %d %b %Y %H:%M %Z")
            raise _invalid(self.text, f"that is in the past ({shown})")
        if due - now > MAX_AHEAD:
            raise _invalid(self.text, f"more than {MAX_AHEAD_TEXT} ahead")
        return due

    def _resolve(self, now: datetime, tz: tzinfo) -> datetime:
        local = now.astimezone(tz)
        today = local.date()
        if self.kind == "relative":
            due = now + self.offset
        elif self.moment is not None:
            due = self.moment
        else:
            due = self._at(self._day(today), tz)
            if self.at is None and self.kind in ("today", "eod", "date") and due <= now:
                # Late in the day "today" still means before midnight, never a time already gone.
                late = _combine(due.astimezone(tz).date(), LAST_MINUTE, tz)
                due = late if late.astimezone(tz).date() == today else due
        return due.astimezone(UTC)

    def _day(self, today: date) -> date:
        if self.kind in ("today", "eod"):
            return today
        if self.kind == "tomorrow":
            return today + timedelta(days=1)
        if self.kind == "weekday":  # the next one, never today
            return today + timedelta(days=(self.weekday - today.weekday()) % 7 or 7)
        if self.kind == "next_weekday":  # that day of next week (weeks start on Monday)
            monday = today + timedelta(days=7 - today.weekday())
            return monday + timedelta(days=self.weekday)
        if self.day is not None:
            return self.day
        assert self.month_day is not None
        month, day = self.month_day
        # No year: this year's, or the next one that has it once this year's is gone (29 Feb).
        for year in range(today.year, today.year + 9):
            if day <= calendar.monthrange(year, month)[1] and date(year, month, day) >= today:
                return date(year, month, day)
        raise _invalid(self.text, "no such day")  # unreachable: read_due checked the day

    def _at(self, day: date, tz: tzinfo) -> datetime:
        return _combine(day, self.at or END_OF_DAY, tz)


def _combine(day: date, at: time, tz: tzinfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz)


def _normalise(text: str) -> str:
    t = " ".join(text.lower().split())
    for pattern, replacement in _PHRASES:
        t = pattern.sub(replacement, t)
    return " ".join(t.split())


def _clock(words: list[str]) -> time | None:
    """A time of day: 9am, 9 am, 9:30pm, 14:00, noon; None when `words` is not one."""
    text = " ".join(words)
    if text == "noon":
        return time(12, 0)
    m = _CLOCK_RE.match(text)
    if not m or (m.group(2) is None and m.group(3) is None):  # a bare "9" is not a time
        return None
    hour, minute, half = int(m.group(1)), int(m.group(2) or 0), m.group(3)
    if minute > 59:
        return None
    if half:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half == "pm" else 0)
    elif hour > 23:
        return None
    return time(hour, minute)


def _day_word(words: list[str]) -> tuple[str, int] | None:
    """today / eod / tomorrow / friday / this friday / next friday."""
    if len(words) == 1:
        w = words[0]
        if w in ("today", "eod", "tomorrow", "tmrw"):
            return ("tomorrow" if w == "tmrw" else w), 0
        if w in _WEEKDAY:
            return "weekday", _WEEKDAY[w]
    if len(words) == 2 and words[1] in _WEEKDAY:
        if words[0] == "this":
            return "weekday", _WEEKDAY[words[1]]
        if words[0] == "next":
            return "next_weekday", _WEEKDAY[words[1]]
    return None


def _relative(text: str, t: str) -> DueForm | None:
    m = _RELATIVE_RE.match(t)
    if not m:
        return None
    n, step = int(m.group(1)), _UNITS[m.group(2)[0]]
    # Compared before multiplying: "in 99999999w" would overflow a timedelta.
    if n > MAX_AHEAD / step:
        raise _invalid(text, f"more than {MAX_AHEAD_TEXT} ahead")
    return DueForm(text, "relative", offset=n * step)


def _with_day_word(text: str, words: list[str]) -> DueForm | None:
    """A day word with an optional time before or after it: tomorrow 9am, 3pm friday."""
    for cut in range(len(words), 0, -1):
        for day_part, time_part in ((words[:cut], words[cut:]), (words[-cut:], words[:-cut])):
            found = _day_word(day_part)
            if found is None:
                continue
            kind, weekday = found
            if not time_part:
                return DueForm(text, kind, weekday=weekday)
            at = _clock(time_part)
            if at is None or kind == "eod":
                return None
            return DueForm(text, kind, weekday=weekday, at=at)
    return None


def _split_clock(words: list[str]) -> tuple[list[str], time | None]:
    """`words` without a time of day at either end, and that time (None when there is none)."""
    for n in (2, 1):
        if len(words) > n:
            for part, rest in ((words[-n:], words[:-n]), (words[:n], words[n:])):
                at = _clock(part)
                if at is not None:
                    return rest, at
    return words, None


def _iso(text: str, words: list[str]) -> DueForm | None:
    """2026-12-15, 2026-12-15 14:00, 2026-12-15T14:00+02:00, 2026-12-15 2pm."""
    if not _ISO_RE.match(words[0]):
        return None
    rest = words[1:]
    at = _clock(rest) if rest else None
    if rest and (at is None or len(words[0]) > 10):
        return None
    try:
        parsed = dateparser.isoparse(words[0].upper())
    except (ValueError, OverflowError):
        raise _invalid(text, "no such day or time") from None
    if parsed.tzinfo is not None:
        return DueForm(text, "date", moment=parsed.astimezone(UTC))
    if len(words[0]) > 10:
        at = parsed.time()
    return DueForm(text, "date", day=parsed.date(), at=at)


def _calendar(text: str, words: list[str]) -> DueForm | None:
    """15 Dec, Dec 15, 15th December 2027, Dec 15 3pm: one month, one day, maybe a year."""
    words, at = _split_clock(words)
    months = [w for w in words if w in _MONTH]
    days = [m.group(1) for w in words if (m := _DAY_RE.match(w))]
    years = [w for w in words if _YEAR_RE.match(w)]
    if len(months) != 1 or len(days) != 1 or len(years) > 1:
        return None
    if len(words) != 2 + len(years):
        return None
    month, day = _MONTH[months[0]], int(days[0])
    # The longest the month is in any year (29 Feb exists in leap years): beyond it, never.
    if not 1 <= day <= calendar.monthrange(2024, month)[1]:
        raise _invalid(text, "no such day")
    year = years[0] if years else "2024"
    try:
        # dateutil reads the day and month names; the default's day 1 fits every month.
        parsed = dateparser.parse(f"{day} {months[0]} {year}", default=datetime(2024, 1, 1))
    except (ValueError, OverflowError):
        raise _invalid(text, "no such day") from None
    if years:
        return DueForm(text, "date", day=parsed.date(), at=at)
    return DueForm(text, "date", month_day=(parsed.month, parsed.day), at=at)


def read_due(text: str) -> DueForm:
    """The due date `text` is written as, or DueDateError naming it and the accepted forms.

    Needs no clock: what depends on today (the year of `15 Dec`, the past) is for `resolve`.
    """
    t = _normalise(text)
    if not t:
        raise _invalid(text)
    form = _relative(text, t)
    if form is not None:
        return form
    words = t.split()
    for reader in (_with_day_word, _iso, _calendar):
        form = reader(text, words)
        if form is not None:
            return form
    raise _invalid(text)


def parse_due(text: str, now: datetime, tz: tzinfo = UTC) -> datetime:
    """The UTC moment `text` means at `now` in `tz`, or DueDateError (a ValueError)."""
    return read_due(text).resolve(now, tz)


_DATE_START = frozenset({"today", "tomorrow", "tmrw", "eod", "next", *_WEEKDAY, *_MONTH})


def looks_like_date(expr: str) -> bool:
    """Meant as a date though not one we read: a single word ("due never"), a date-like start
    ("due 2026-13-01", "due in 3 fortnights", "due Decmber 15") or a short phrase starting with
    a date word ("due next week", "due end of week"). "due to the cache change" is prose."""
    words = expr.lower().split()
    if len(words) <= 1 or (re.match(r"^(\d|in\s+\d)", expr.lower()) and len(words) <= 3):
        return True
    if words[0] == "end" and len(words) <= 4:
        return True
    return len(words) <= 3 and words[0] in _DATE_START
