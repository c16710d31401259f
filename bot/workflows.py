"""Workflows: when something happens to an incident, run a runbook (or inline steps).

`after_record` is called in the transaction of every timeline entry. For each workflow whose
`on:` names what the entry records, it schedules a job keyed by the workflow and the entry, so a
workflow fires at most once per triggering entry however many replicas see it; the job checks
the `if:` conditions when it fires (after the `delay:`) against the incident as it is then, and
starts the run. Runbooks named by the type's `auto_run:` start with the declaration itself.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot import runs
from bot.catalog import Catalog, Condition
from bot.jobs import JobContext, Record, handler, new_job
from bot.models import EntryKind, Incident, Status, TimelineEntry
from bot.ports import SYSTEM, Unit
from bot.timing import parse_duration

logger = logging.getLogger(__name__)

JOB = "workflow"
DECLARED = "Incident declared:"  # the declaration's entry (bot/lifecycle.py) starts so


def triggers(entry: TimelineEntry) -> list[str]:
    """What `entry` records, in the names workflows' `on:` uses."""
    kind, data = entry.kind, entry.data
    if kind is EntryKind.SYSTEM and entry.text.startswith(DECLARED):
        return ["declared"]
    if kind is EntryKind.STATUS_CHANGE:
        resolved = data.get("to") == Status.RESOLVED.value
        return ["status_changed"] + (["resolved"] if resolved else [])
    if kind is EntryKind.FIELD_CHANGE and data.get("field") == "severity":
        return ["severity_changed"]
    if kind is EntryKind.ROLE_CHANGE:
        return ["role_assigned"]
    if kind is EntryKind.KEY_EVENT:
        return ["key_event"]
    if kind is EntryKind.REMINDER and data.get("reminder") == "action_item":
        return ["action_item_overdue"]
    if kind is EntryKind.ALERT and data.get("status") in ("firing", "resolved"):
        return [f"alert_{data['status']}"]  # one alert joining or leaving (not a storm digest)
    return []


async def after_record(
    u: Unit,
    catalog: Catalog,
    incident: Incident,
    entry: TimelineEntry,
    record: Record,
    now: datetime,
) -> None:
    happened = triggers(entry)
    if not happened:
        return
    if "declared" in happened:
        itype = catalog.incident_type(incident.type)
        for name in itype.auto_run if itype else []:
            rb = catalog.runbook(name)
            if rb is not None:
                await runs.start_run(
                    u,
                    incident,
                    runbook=rb.name,
                    steps=rb.steps,
                    actor=SYSTEM,
                    trigger="auto_run",
                    record=record,
                    now=now,
                )
    for wf in catalog.workflows:
        on = [t for t in happened if t in wf.on]
        if not on or not matches(wf.when, incident, catalog):
            continue  # checked again when it fires (after its delay)
        delay = parse_duration(wf.delay) if wf.delay else timedelta(0)
        await u.schedule(
            new_job(
                JOB,
                f"{JOB}:{wf.name}:{entry.id}",
                now + delay,
                now=now,
                incident_id=incident.id,
                payload={"workflow": wf.name, "entry": entry.id, "on": on[0]},
            )
        )


def matches(cond: Condition, incident: Incident, catalog: Catalog) -> bool:
    """Whether `incident` meets every key of `cond` (and one of its any_of, when given)."""
    if cond.type and incident.type not in cond.type:
        return False
    if cond.severity and incident.severity not in cond.severity:
        return False
    if cond.severity_at_least:
        names = catalog.severity_names  # most severe first
        if names.index(incident.severity) > names.index(cond.severity_at_least):
            return False
    if cond.status and incident.status.value not in cond.status:
        return False
    for name, want in cond.fields.items():
        have = incident.custom_fields.get(name)
        wanted = want if isinstance(want, list) else [want]
        got = have if isinstance(have, list) else [have]
        if not any(str(w).lower() == str(g).lower() for w in wanted for g in got):
            return False
    if cond.any_of and not any(matches(alt, incident, catalog) for alt in cond.any_of):
        return False
    return True


@handler(JOB)
async def workflow_due(ctx: JobContext) -> None:
    incident = ctx.incident
    name = ctx.job.payload.get("workflow")
    wf = next((w for w in ctx.catalog.workflows if w.name == name), None)
    if incident is None or wf is None:
        return  # the workflow left the catalog since
    if not matches(wf.when, incident, ctx.catalog):
        logger.info("workflow %s: #%d does not match its conditions now", wf.name, incident.number)
        return
    steps: list[dict[str, Any]]
    if wf.run:
        rb = ctx.catalog.runbook(wf.run)
        if rb is None:
            return
        runbook, steps = rb.name, rb.steps
    else:
        runbook, steps = f"workflow-{wf.name}", wf.steps
    await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.RUNBOOK,
        actor=SYSTEM,
        text=f"Workflow {wf.name} fired (on {ctx.job.payload.get('on')}): running {runbook}",
        data={"workflow": wf.name, "entry": ctx.job.payload.get("entry")},
    )
    await runs.start_run(
        ctx.u,
        incident,
        runbook=runbook,
        steps=steps,
        actor=SYSTEM,
        trigger=f"workflow {wf.name}",
        record=ctx.record,
        now=ctx.now,
    )
