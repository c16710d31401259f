"""Runbook runs: starting one, its progress message, and moving it from step to step.

A run copies its runbook's steps when it starts and keeps one state dict per step. Its progress
is one timeline entry (kind runbook) whose text is rewritten as steps go, the mirror editing the
posted message in place (`DeliveryAction.UPDATE_ENTRY`); each step's outcome is a timeline entry
of kind runbook too. Everything here runs inside the caller's transaction with the incident
locked; bot/runbooks.py has the commands and the runner, bot/workflows.py the triggers.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from bot.catalog import Catalog
from bot.jobs import Record
from bot.models import (
    Delivery,
    DeliveryAction,
    EntryKind,
    Incident,
    LinkState,
    RunbookRun,
    RunState,
)
from bot.ports import Actor, Unit
from bot.steps import Done, Failed, Waiting, parse_step

logger = logging.getLogger(__name__)

ICONS = {
    "pending": "·",
    "running": "⏳",
    "done": "✅",
    "failed": "❌",
    "skipped": "⏭",
    "waiting": "☐",
    "cancelled": "⏹",
}
RUN_WORDS = {
    RunState.RUNNING: "⏳ running",
    RunState.WAITING: "☐ waiting",
    RunState.FAILED: "❌ failed: /incident runbook retry or cancel",
    RunState.DONE: "✅ done",
    RunState.CANCELLED: "⏹ cancelled",
}


def runbook_actor(run: RunbookRun) -> Actor:
    """Who the run's changes are recorded as."""
    return Actor(
        platform="system", user_id="opsroom", name=f"runbook {run.runbook}", mention="Opsroom"
    )


def label(incident: Incident, run: RunbookRun) -> str:
    return f"#{incident.number} run {run.number} ({run.runbook})"


async def template_context(
    u: Unit, incident: Incident, run: RunbookRun, catalog: Catalog
) -> dict[str, Any]:
    assert incident.id is not None
    itype = catalog.incident_type(incident.type)
    fields = {f.name: None for f in itype.fields} if itype else {}
    fields.update(incident.custom_fields)
    links = [lk for lk in await u.links(incident.id) if lk.channel_name]
    channel = f"#{links[0].channel_name}" if links else ""
    return {
        "incident": {
            "number": incident.number,
            "title": incident.title,
            "summary": incident.summary,
            "description": incident.description,
            "type": incident.type,
            "severity": incident.severity,
            "priority": incident.priority,
            "status": incident.status.value,
            "commander": incident.commander or "",
            "channel": channel,
        },
        "fields": fields,
        "roles": dict(incident.roles),
        "severity": incident.severity,
        "channel": channel,
        "run": {"number": run.number, "runbook": run.runbook},
    }


def step_line(run: RunbookRun, index: int) -> str:
    spec = parse_step(run.steps[index])
    state = run.step_states[index]
    line = f"{ICONS.get(state['state'], '·')} {index + 1}. {spec.title()}"
    if state.get("detail"):
        line += f": {state['detail']}"
    items = state.get("items")
    if items and state["state"] in ("waiting", "done", "running"):
        for n, (item, mark) in enumerate(zip(items, state.get("marks", []), strict=False), 1):
            box = "☑" if mark and mark.startswith("done") else ("⏭" if mark else "☐")
            line += f"\n    {box} {n}. {item}" + (f" ({mark})" if mark else "")
    return line


def progress_text(incident: Incident, run: RunbookRun) -> str:
    head = (
        f"Runbook {run.runbook} · run {run.number} of #{incident.number} · {RUN_WORDS[run.state]}"
    )
    lines = [head] + [step_line(run, i) for i in range(len(run.steps))]
    return "\n".join(lines)


def progress_buttons(incident: Incident, run: RunbookRun) -> list[dict[str, str]]:
    """Buttons (as `bot.render.Button` fields) for what a waiting run needs from people."""
    if run.state is not RunState.WAITING or run.current >= len(run.steps):
        return []
    state = run.step_states[run.current]
    spec = parse_step(run.steps[run.current])
    at = f"{incident.number}:{run.number}"
    if spec.kind == "approve":
        return [{"label": "Approve", "action": "runbook_approve", "value": at, "style": "primary"}]
    marks = state.get("marks") or []
    return [
        {"label": f"✓ {n}", "action": "runbook_check", "value": f"{at}:{n}"}
        for n, mark in enumerate(marks, 1)
        if not mark
    ][:20]


async def start_run(
    u: Unit,
    incident: Incident,
    *,
    runbook: str,
    steps: list[dict[str, Any]],
    actor: Actor,
    trigger: str,
    record: Record,
    now: datetime,
) -> RunbookRun:
    """A new run of `steps`, numbered after the incident's others, with its progress message."""
    assert incident.id is not None
    number = len(await u.runs(incident.id)) + 1  # the incident is locked: no race on numbers
    run = RunbookRun(
        incident_id=incident.id,
        number=number,
        runbook=runbook,
        steps=[dict(s) for s in steps],
        step_states=[{"state": "pending"} for _ in steps],
        started_by=actor.ref,
        trigger=trigger,
        created_at=now,
        updated_at=now,
    )
    await u.add(run)
    entry = await record(
        u,
        incident,
        kind=EntryKind.RUNBOOK,
        text=progress_text(incident, run),
        actor=actor,
        data={"runbook": runbook, "run": number, "progress": True},
    )
    run.progress_entry_id = entry.id
    return run


async def show_progress(u: Unit, incident: Incident, run: RunbookRun, now: datetime) -> None:
    """Rewrite the run's progress entry and have the mirror edit its posted message."""
    run.updated_at = now
    if run.progress_entry_id is None:
        return
    entry = await u.entry(run.progress_entry_id)
    if entry is None:
        return
    text = progress_text(incident, run)
    buttons = progress_buttons(incident, run)
    if entry.text == text and entry.data.get("buttons", []) == buttons:
        return
    entry.text, entry.edited_at = text, now
    entry.data = {**entry.data, "buttons": buttons}  # JSON is saved only when reassigned
    await u.queue(
        [
            Delivery(
                incident_id=run.incident_id,
                link_id=link.id,
                action=DeliveryAction.UPDATE_ENTRY,
                entry_id=entry.id,
                next_attempt_at=now,
                created_at=now,
            )
            for link in await u.links(run.incident_id)
            if link.id is not None and link.state not in (LinkState.FAILED, LinkState.ARCHIVED)
        ]
    )


def set_step(run: RunbookRun, index: int, **changes: Any) -> dict[str, Any]:
    """Change step `index`'s state; JSON columns are saved only when reassigned."""
    states = [dict(s) for s in run.step_states]
    states[index].update(changes)
    run.step_states = states
    return states[index]


async def settle(
    u: Unit,
    incident: Incident,
    run: RunbookRun,
    index: int,
    outcome: Done | Waiting | Failed,
    *,
    record: Record,
    now: datetime,
    state: dict[str, Any] | None = None,
    actor: Actor | None = None,
) -> None:
    """Record what step `index` came to and move the run on."""
    spec = parse_step(run.steps[index])
    who = actor or runbook_actor(run)
    # The step's own data (checklist marks, HTTP status); the outcome decides the rest.
    extra = {k: v for k, v in (state or {}).items() if k not in ("state", "detail", "finished_at")}
    at = now.isoformat(timespec="seconds")
    data = {"runbook": run.runbook, "run": run.number, "step": index + 1}
    if isinstance(outcome, Waiting):
        set_step(run, index, **extra, state="waiting", detail=outcome.detail)
        run.state = RunState.WAITING
        await record(
            u,
            incident,
            kind=EntryKind.RUNBOOK,
            actor=who,
            data=data | {"outcome": "waiting"},
            text=f"{label(incident, run)} step {index + 1} {spec.title()}: ☐ {outcome.detail}",
        )
    elif isinstance(outcome, Failed):
        set_step(run, index, **extra, state="failed", detail=outcome.reason, finished_at=at)
        run.state = RunState.FAILED
        logger.warning(
            "runbook %s run %d of #%d: step %d failed: %s",
            run.runbook,
            run.number,
            incident.number,
            index + 1,
            outcome.reason,
        )
        await record(
            u,
            incident,
            kind=EntryKind.RUNBOOK,
            actor=who,
            data=data | {"outcome": "failed"},
            text=(
                f"{label(incident, run)} step {index + 1} {spec.title()}: ❌ {outcome.reason} · "
                f"/incident runbook retry {run.number} or cancel {run.number}"
            ),
        )
    else:
        set_step(run, index, **extra, state="done", detail=outcome.detail, finished_at=at)
        text = outcome.text or f"{label(incident, run)} step {index + 1} {spec.title()}: ✅ " + (
            outcome.detail or "done"
        )
        await record(
            u,
            incident,
            kind=EntryKind.RUNBOOK,
            actor=who,
            text=text,
            announce=outcome.announce,
            data=data | {"outcome": "done"},
        )
        await advance(u, incident, run, index + 1, record=record, now=now)
        return
    await show_progress(u, incident, run, now)


async def advance(
    u: Unit, incident: Incident, run: RunbookRun, index: int, *, record: Record, now: datetime
) -> None:
    """Make step `index` current: the run is done past the last step, else a runner's again."""
    run.current = index
    if index >= len(run.steps):
        run.state = RunState.DONE
        await record(
            u,
            incident,
            kind=EntryKind.RUNBOOK,
            actor=runbook_actor(run),
            text=f"{label(incident, run)}: ✅ all {len(run.steps)} steps done",
            data={"runbook": run.runbook, "run": run.number, "outcome": "finished"},
        )
    else:
        run.state = RunState.RUNNING
    await show_progress(u, incident, run, now)
