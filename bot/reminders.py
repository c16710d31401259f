"""Reminders: the bot nudges on time. Rules, scheduling and the job handlers.

- Status updates: each severity's `update_every`. The next update is due one period after the
  last one (or the declaration); each period that passes without one gets one nudge in the
  incident channel mentioning the commander (and comms). From the second period on the
  update is overdue, and the announcement channel is told once per overdue stretch. Nothing
  while the status is in the catalog's `quiet_statuses` or once resolved; a severity change
  recomputes the due time.
- Acknowledgement: an incident still triggered `ack_within` after it was declared gets one
  nudge in its channel and the announcement channel.
- Action items: at the due time the assignee is mentioned in the incident channel and sent a
  direct message, once. Done, cancelled or edited items cancel or move their reminder.
- The daily digest (catalog `action_digest`, a cron in the catalog's timezone) lists overdue
  open items in each incident channel that has some, resolved incidents included.

Every reminder is a timeline entry of kind `reminder`. Jobs are (re)planned by `after_change`,
which the service calls in the transaction of every change that can move them.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta

from bot.catalog import Catalog
from bot.jobs import JobContext, handler, new_job
from bot.mirror import update_cadence
from bot.models import (
    ActionItem,
    ActionStatus,
    Delivery,
    DeliveryAction,
    EntryKind,
    Incident,
    Job,
    LinkState,
    Status,
    TimelineEntry,
)
from bot.ports import SYSTEM, Unit
from bot.render import action_line
from bot.timing import format_duration, local_when, relative

logger = logging.getLogger(__name__)

UPDATE = "status_update"
ACK = "ack"
ACTION = "action_item"
DIGEST = "action_digest"

_SOURCE = SYSTEM.platform  # the source of the bot's own entries, for external-id lookups


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def _iid(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id


# --- planning (in the transaction of the change) ---------------------------------------------


async def after_change(
    u: Unit,
    catalog: Catalog,
    incident: Incident,
    entry: TimelineEntry,
    platform: str,
    now: datetime,
) -> None:
    """Schedule, move or cancel the reminders a change recorded as `entry` affects."""
    if entry.kind is EntryKind.ACTION_ITEM:
        number = entry.data.get("action_item")
        item = await u.action_item(_iid(incident), number) if isinstance(number, int) else None
        if item is not None:
            await plan_action(u, incident, item, platform, now)
        return
    if entry.kind is EntryKind.FIELD_CHANGE and entry.data.get("field") != "severity":
        return
    if entry.kind in (
        EntryKind.STATUS_CHANGE,
        EntryKind.STATUS_UPDATE,
        EntryKind.FIELD_CHANGE,
        EntryKind.SYSTEM,
    ):
        await plan_incident(u, catalog, incident, now)


def anchor(incident: Incident) -> datetime:
    """When the current update period started: the last status update, or the declaration."""
    return incident.last_update_at or incident.declared_at


def update_every(catalog: Catalog, incident: Incident) -> timedelta | None:
    """The status-update cadence now in force; None when no reminders are due (resolved, a
    quiet status)."""
    if not incident.status.is_open:
        return None
    return update_cadence(catalog, incident)


def _update_job(incident: Incident, boundary: datetime, now: datetime) -> Job:
    iid = _iid(incident)
    return new_job(UPDATE, f"update:{iid}:{_iso(boundary)}", boundary, now=now, incident_id=iid)


async def plan_incident(u: Unit, catalog: Catalog, incident: Incident, now: datetime) -> None:
    """Make the incident's status-update and acknowledgement jobs match its state."""
    iid = _iid(incident)
    planned: list[Job] = []
    every = update_every(catalog, incident)
    if every is not None:
        start = anchor(incident)
        passed = max(0, (now - start) // every)
        # The latest period boundary already passed (a shorter cadence, or the end of a quiet
        # status: that update is due now; a no-op if it was nudged already) and the next one.
        periods = ([passed] if passed >= 1 else []) + [passed + 1]
        planned = [_update_job(incident, start + n * every, now) for n in periods]
    await u.cancel_jobs(
        now=now, incident_id=iid, prefix=f"update:{iid}:", keep=[j.key for j in planned]
    )
    for job in planned:
        await u.schedule(job)

    severity = catalog.severity(incident.severity)
    within = severity.ack_interval if severity else None
    if incident.status is Status.TRIGGERED and within is not None:
        due = incident.declared_at + within
        await u.schedule(new_job(ACK, f"ack:{iid}", due, now=now, incident_id=iid), move=True)
    else:
        await u.cancel_jobs(now=now, incident_id=iid, key=f"ack:{iid}")


async def plan_action(
    u: Unit, incident: Incident, item: ActionItem, platform: str, now: datetime
) -> None:
    """Make an action item's reminder match it: one at its due date while it is open."""
    iid = _iid(incident)
    prefix = f"action:{iid}:{item.number}:"
    if item.status is not ActionStatus.OPEN or item.due_at is None:
        await u.cancel_jobs(now=now, incident_id=iid, prefix=prefix)
        return
    # The due time is in the key: a new due date is a new reminder, even after one was sent.
    key = prefix + _iso(item.due_at)
    await u.cancel_jobs(now=now, incident_id=iid, prefix=prefix, keep=[key])
    payload = {"number": item.number, "platform": platform}
    await u.schedule(
        new_job(ACTION, key, item.due_at, now=now, incident_id=iid, payload=payload), move=True
    )


def digest_job(occurrence: datetime) -> Job:
    """The digest job of one cron occurrence: one row however many replicas schedule it.

    It counts as scheduled at the occurrence, so one made up after a downtime says it is late.
    """
    return new_job(DIGEST, f"{DIGEST}:{_iso(occurrence)}", occurrence, now=occurrence)


# --- showing (/incident reminders) -------------------------------------------------------------


async def describe(u: Unit, catalog: Catalog, incident: Incident, now: datetime) -> str:
    """The incident's pending reminders with their due times, in the catalog's timezone."""
    jobs = await u.pending_jobs(_iid(incident))
    lines = []
    for job in jobs:
        what = {
            UPDATE: "status update",
            ACK: "acknowledgement",
            ACTION: f"action {job.payload.get('number', '?')}",
            "postmortem_due": "postmortem",
        }.get(job.kind, job.kind.replace("_", " "))
        when = local_when(job.due_at, now, catalog.tz)
        if job.due_at <= now:
            when += ", now"
        elif job.due_at - now < timedelta(days=1):
            when += f", {relative(job.due_at, now)}"
        lines.append(f"• {what} due {when}")
    if not lines:
        quiet = (
            f" (none while {incident.status.value})"
            if incident.status in catalog.quiet_statuses
            else ""
        )
        return f"#{incident.number} has no reminders pending{quiet}."
    return "\n".join([f"Reminders for #{incident.number}:", *lines])


# --- handlers (when the job is due) ---------------------------------------------------------------


def _mentions(incident: Incident, roles: tuple[str, ...]) -> str:
    people = []
    for role in roles:
        who = incident.roles.get(role)
        if who and who not in people:
            people.append(who)
    return " ".join(people)


def _tail(*parts: str) -> str:
    shown = [p for p in parts if p]
    return "".join(f" · {p}" for p in shown)


@handler(UPDATE)
async def status_update_due(ctx: JobContext) -> None:
    incident = ctx.incident
    if incident is None:
        return
    every = update_every(ctx.catalog, incident)
    start = anchor(incident)
    if every is None or ctx.job.due_at < start + every:
        return  # quiet, resolved or updated since it was planned: nothing is due
    # Of several periods missed while nobody could fire them, only the latest is nudged.
    period = (ctx.now - start) // every
    boundary = start + period * every
    iid = _iid(incident)
    await ctx.u.schedule(_update_job(incident, boundary + every, ctx.now))
    if await ctx.u.entry_by_external(_SOURCE, f"update-due:{iid}:{_iso(boundary)}"):
        return
    overdue = await ctx.u.entry_by_external(_SOURCE, f"update-overdue:{iid}:{_iso(start)}")
    if overdue is not None and overdue.data.get("boundary") == _iso(boundary):
        return
    severity = incident.severity.upper()
    cadence = format_duration(every)
    mentions = _mentions(incident, ("commander", "comms"))
    announce = period >= 2 and overdue is None  # once per overdue stretch
    if announce:
        text = (
            f"A status update for #{incident.number} is overdue: none for "
            f"{format_duration(boundary - start)} (every {cadence} at {severity}): "
            "/incident update <text>"
        )
        external = f"update-overdue:{iid}:{_iso(start)}"
    else:
        text = (
            f"A status update for #{incident.number} is due (every {cadence} at {severity}): "
            "/incident update <text>"
        )
        external = f"update-due:{iid}:{_iso(boundary)}"
    await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.REMINDER,
        actor=SYSTEM,
        text=text + _tail(mentions, ctx.late_note),
        announce=announce,
        external_id=external,
        data={"reminder": UPDATE, "boundary": _iso(boundary), "period": period},
    )


@handler(ACK)
async def ack_due(ctx: JobContext) -> None:
    incident = ctx.incident
    if incident is None or incident.status is not Status.TRIGGERED:
        return
    iid = _iid(incident)
    if await ctx.u.entry_by_external(_SOURCE, f"ack:{iid}"):
        return
    waited = format_duration(ctx.job.due_at - incident.declared_at)
    text = (
        f"#{incident.number} is still not acknowledged {waited} after it was declared "
        f"({incident.severity.upper()}): /incident ack"
    )
    await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.REMINDER,
        actor=SYSTEM,
        text=text + _tail(_mentions(incident, ("commander",)), ctx.late_note),
        announce=True,
        external_id=f"ack:{iid}",
        data={"reminder": ACK},
    )


@handler(ACTION)
async def action_due(ctx: JobContext) -> None:
    incident = ctx.incident
    number = ctx.job.payload.get("number")
    if incident is None or not isinstance(number, int):
        return
    iid = _iid(incident)
    item = await ctx.u.action_item(iid, number)
    if item is None or item.status is not ActionStatus.OPEN or item.due_at != ctx.job.due_at:
        return  # done, cancelled or moved since: its reminder went with it
    who = item.assignee or "nobody is assigned"
    entry = await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.REMINDER,
        actor=SYSTEM,
        text=(
            f"Action item {number} of #{incident.number} is due: {item.text}"
            + _tail(who, ctx.late_note)
        ),
        external_id=f"action-due:{iid}:{number}:{_iso(item.due_at)}",
        data={"reminder": ACTION, "action_item": number, "dm": item.assignee},
    )
    if item.assignee:
        await _queue_dm(ctx, incident, entry, str(ctx.job.payload.get("platform", "")))


async def _queue_dm(
    ctx: JobContext, incident: Incident, entry: TimelineEntry, platform: str
) -> None:
    """A direct message of `entry` to its `dm` person, on the platform they were named on."""
    links = [
        link
        for link in await ctx.u.links(_iid(incident))
        if link.state not in (LinkState.FAILED, LinkState.ARCHIVED)
    ]
    link = next((lk for lk in links if lk.platform == platform), None)
    if link is None:
        link = links[0] if len(links) == 1 else None
    if link is None or link.id is None:
        logger.info("reminders: no %s channel of #%s to DM from", platform, incident.number)
        return
    await ctx.u.queue(
        [
            Delivery(
                incident_id=link.incident_id,
                link_id=link.id,
                action=DeliveryAction.DIRECT_MESSAGE,
                entry_id=entry.id,
                next_attempt_at=ctx.now,
                created_at=ctx.now,
            )
        ]
    )


@handler(DIGEST)
async def action_digest(ctx: JobContext) -> None:
    by_incident: dict[int, list[ActionItem]] = defaultdict(list)
    for item in await ctx.u.overdue_action_items(ctx.now):
        by_incident[item.incident_id].append(item)
    for iid in sorted(by_incident):  # incidents locked in one order, whatever runs beside
        incident = await ctx.u.incident_by_id(iid)
        if incident is None:
            continue
        external = f"digest:{iid}:{ctx.job.key}"
        if await ctx.u.entry_by_external(_SOURCE, external):
            continue
        lines = [action_line(item, ctx.now, ctx.catalog.tz) for item in by_incident[iid]]
        late = f" ({ctx.late_note})" if ctx.late_note else ""
        await ctx.record(
            ctx.u,
            incident,
            kind=EntryKind.REMINDER,
            actor=SYSTEM,
            text=f"Overdue action items of #{incident.number}{late}:\n" + "\n".join(lines),
            external_id=external,
            data={"reminder": DIGEST, "action_items": [i.number for i in by_incident[iid]]},
        )
