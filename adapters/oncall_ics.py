"""On-call schedules as iCalendar feeds: `GET /oncall/<schedule>.ics?key=<key>`.

The next 90 days of shifts (overrides included), one event per shift, so people subscribe from
their calendar. Each schedule has its own key, an HMAC of its name under OPSROOM_ICS_SECRET
(`opsroom oncall ics-key <schedule>` prints it): a leaked key shows one schedule, and changing
the secret revokes every key. Without the secret the feeds are off.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from datetime import datetime, timedelta

from fastapi import APIRouter, Response
from icalendar import Calendar, Event

from bot.catalog import Catalog
from bot.oncall import ICS_DAYS, shifts_between
from bot.people import Directory
from bot.ports import Clock, Store
from bot.schedules import Schedule, Shift

logger = logging.getLogger(__name__)


def ics_key(secret: str, schedule: str) -> str:
    """The feed key of `schedule` under `secret`."""
    digest = hmac.new(secret.encode(), f"oncall-ics:{schedule}".encode(), hashlib.sha256)
    return digest.hexdigest()[:32]


def calendar(schedule: Schedule, found: list[Shift], now: datetime) -> bytes:
    """`found` shifts of `schedule` as an iCalendar document."""
    cal = Calendar()
    cal.add("prodid", "-//Opsroom//on-call//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", f"On call: {schedule.name}")
    cal.add("x-wr-timezone", schedule.timezone)
    for shift in found:
        event = Event()
        # Stable across fetches, so a calendar updates a shift instead of duplicating it.
        uid = f"{schedule.name}-{int(shift.start.timestamp())}-{shift.person}@opsroom"
        event.add("uid", uid)
        event.add("dtstamp", now)
        event.add("dtstart", shift.start)
        event.add("dtend", shift.end)
        event.add("summary", f"On call: @{shift.person.lstrip('@')} ({schedule.name})")
        event.add("description", f"{schedule.name}, {shift.source}")
        cal.add_component(event)
    return cal.to_ical()


def oncall_router(*, store: Store, catalog: Catalog, clock: Clock, secret: str | None) -> APIRouter:
    router = APIRouter()
    people = Directory(catalog.people)

    @router.get("/oncall/{name}.ics")
    async def feed(name: str, key: str = "") -> Response:
        schedule = catalog.schedule(name)
        if secret is None:
            return Response("calendar feeds are off: set OPSROOM_ICS_SECRET\n", status_code=404)
        # The same answer for a wrong key and an unknown schedule: names are not probed.
        expected = ics_key(secret, schedule.name) if schedule else ""
        if schedule is None or not hmac.compare_digest(key, expected):
            return Response("no such calendar, or a wrong key\n", status_code=404)
        now = clock.now()
        async with store.unit() as u:
            found = await shifts_between(u, schedule, now, now + timedelta(days=ICS_DAYS))
        shown = [
            Shift(people.localize(s.person, "console").lstrip("@"), s.start, s.end, s.source)
            for s in found
        ]
        return Response(calendar(schedule, shown, now), media_type="text/calendar")

    return router
