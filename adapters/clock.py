"""The process clock: real time, or (for tests, through OPSROOM_FAKE_NOW) real time shifted so
that the process starts at a chosen instant."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from bot.ports import Clock, SystemClock


class StartedAtClock:
    """Starts at `start` and moves forward with real (monotonic) time, so a running process
    still sees time pass (retries back off, updates fall due) from a known instant."""

    def __init__(self, start: datetime) -> None:
        self._start = start
        self._origin = time.monotonic()

    def now(self) -> datetime:
        return self._start + timedelta(seconds=time.monotonic() - self._origin)


def clock_from(fake_now: datetime | None) -> Clock:
    return StartedAtClock(fake_now) if fake_now is not None else SystemClock()
