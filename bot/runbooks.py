"""Runbooks: the `/incident runbook ...` commands, the runner that does their steps, and the
job that ends a `wait` step.

The runner (`RunbookRunner.run_once`, driven with the job worker) takes runs that are running
under a named lease (`runbook-run:<id>`), so two replicas never do one run's step at the same
time. Each step's start is committed before it runs and its finish (with its effects) after, so
after a kill -9 a run resumes at the step it was on: a step whose effects were not committed is
done again, and an HTTP request that may have been sent is sent again with the same
Idempotency-Key (at least once).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any, ClassVar

from bot import commands as c
from bot import runs
from bot.base import Reply, ServiceBase, ServiceError, _one_of
from bot.catalog import Runbook
from bot.holders import holder_name
from bot.jobs import JobContext, handler
from bot.models import EntryKind, Incident, RunbookRun, RunState
from bot.ports import Actor, ChannelRef, Clock, LeaseTake, Store, SystemClock, Unit
from bot.steps import KINDS, Call, Done, Failed, StepContext, Tools, Waiting, parse_step
from bot.steps import wait as wait_step
from bot.templates import TemplateProblem

logger = logging.getLogger(__name__)

Apply = Callable[[Unit, Incident, c.Command, Actor], Awaitable[Reply]]


class Runbooks(ServiceBase):
    READS: ClassVar[dict[type[c.Command], str]] = {
        c.RunbookList: "_runbook_list",
        c.RunbookStatus: "_runbook_status",
    }
    CHANGES: ClassVar[dict[type[c.Command], str]] = {
        c.RunbookRun: "_runbook_run",
        c.RunbookCancel: "_runbook_cancel",
        c.RunbookRetry: "_runbook_retry",
        c.RunbookCheck: "_runbook_check",
        c.RunbookApprove: "_runbook_approve",
    }

    async def _runbook_list(self, cmd: c.RunbookList, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
        if not self.catalog.runbooks:
            return Reply("The catalog defines no runbooks (see runbooks: in opsroom.yaml).")
        itype = self.catalog.incident_type(incident.type)
        first = [r for r in (itype.runbooks if itype else []) if self.catalog.runbook(r)]
        ordered = first + [r for r in self.catalog.runbook_names if r not in first]
        lines = [f"Runbooks for #{incident.number} ({incident.type} first):"]
        for name in ordered:
            rb = self.catalog.runbook(name)
            assert rb is not None
            mark = "★ " if name in first else "• "
            steps = f"{len(rb.steps)} step{'s' if len(rb.steps) != 1 else ''}"
            lines.append(f"{mark}{name} ({steps}){': ' + rb.description if rb.description else ''}")
        lines.append("Run one: /incident runbook run <name>")
        return Reply("\n".join(lines), incident=incident.number)

    async def _runbook_status(self, cmd: c.RunbookStatus, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            all_runs = await u.runs(_iid(incident))
        if not all_runs:
            return Reply(
                f"No runbook has run on #{incident.number}: /incident runbook list",
                incident=incident.number,
            )
        shown = [r for r in all_runs if r.state.active] or all_runs[-1:]
        return Reply(
            "\n\n".join(runs.progress_text(incident, r) for r in shown), incident=incident.number
        )

    def _runbook_def(self, name: str) -> Runbook:
        rb = self.catalog.runbook(name)
        if rb is None:
            names = self.catalog.runbook_names
            use = f"use {_one_of(names)}" if names else "the catalog defines none"
            raise ServiceError(f'unknown runbook "{name}": {use}')
        return rb

    async def _runbook_run(self, u: Unit, inc: Incident, cmd: c.RunbookRun, actor: Actor) -> Reply:
        rb = self._runbook_def(cmd.name)
        run = await runs.start_run(
            u,
            inc,
            runbook=rb.name,
            steps=rb.steps,
            actor=actor,
            trigger="command",
            record=self._record,
            now=self.clock.now(),
        )
        return Reply(
            f"Started {rb.name} on #{inc.number} as run {run.number}; its progress is posted in "
            "the incident channel.",
            incident=inc.number,
        )

    async def _pick_run(self, u: Unit, inc: Incident, number: int | None) -> RunbookRun:
        all_runs = await u.runs(_iid(inc))
        if number is not None:
            run = next((r for r in all_runs if r.number == number), None)
            if run is None:
                have = ", ".join(str(r.number) for r in all_runs) or "none yet"
                raise ServiceError(f"#{inc.number} has no run {number} (runs: {have})")
        else:
            active = [r for r in all_runs if r.state.active]
            if len(active) != 1:
                which = ", ".join(f"{r.number} ({r.runbook})" for r in active)
                raise ServiceError(
                    f"#{inc.number} has no active run"
                    if not active
                    else f"#{inc.number} has several active runs ({which}): name one, "
                    "e.g. /incident runbook check 2 1"
                )
            run = active[0]
        locked = await u.run_by_id(_rid(run))
        assert locked is not None
        return locked

    async def _runbook_cancel(
        self, u: Unit, inc: Incident, cmd: c.RunbookCancel, actor: Actor
    ) -> Reply:
        run = await self._pick_run(u, inc, cmd.run)
        if not run.state.active:
            raise ServiceError(f"run {run.number} of #{inc.number} is {run.state.value} already")
        now = self.clock.now()
        run.state = RunState.CANCELLED
        if run.current < len(run.steps):
            runs.set_step(run, run.current, state="cancelled")
        await u.cancel_jobs(now=now, incident_id=inc.id, prefix=f"{wait_step.JOB}:{run.id}:")
        await self._record(
            u,
            inc,
            kind=EntryKind.RUNBOOK,
            actor=actor,
            text=f"{runs.label(inc, run)}: ⏹ cancelled by {actor.ref}",
            data={"runbook": run.runbook, "run": run.number, "outcome": "cancelled"},
        )
        await runs.show_progress(u, inc, run, now)
        return Reply(f"Cancelled run {run.number} ({run.runbook}) of #{inc.number}.")

    async def _runbook_retry(
        self, u: Unit, inc: Incident, cmd: c.RunbookRetry, actor: Actor
    ) -> Reply:
        run = await self._pick_run(u, inc, cmd.run)
        if run.state is not RunState.FAILED:
            raise ServiceError(
                f"run {run.number} of #{inc.number} is {run.state.value}: only a failed run "
                "can be retried"
            )
        step = run.current
        runs.set_step(run, step, state="pending", detail="")
        run.state = RunState.RUNNING
        await self._record(
            u,
            inc,
            kind=EntryKind.RUNBOOK,
            actor=actor,
            text=f"{runs.label(inc, run)}: retrying from step {step + 1}, asked by {actor.ref}",
            data={"runbook": run.runbook, "run": run.number, "outcome": "retry"},
        )
        await runs.show_progress(u, inc, run, self.clock.now())
        return Reply(f"Retrying run {run.number} of #{inc.number} from step {step + 1}.")

    async def _runbook_check(
        self, u: Unit, inc: Incident, cmd: c.RunbookCheck, actor: Actor
    ) -> Reply:
        run = await self._pick_run(u, inc, cmd.run)
        state = run.step_states[run.current] if run.current < len(run.steps) else {}
        if run.state is not RunState.WAITING or "marks" not in state:
            raise ServiceError(
                f"run {run.number} of #{inc.number} is not waiting on a checklist "
                f"({run.state.value})"
            )
        marks = list(state["marks"])
        if not 1 <= cmd.item <= len(marks):
            raise ServiceError(f"no item {cmd.item} in the checklist: use 1 to {len(marks)}")
        verb = "skipped" if cmd.skip else "done"
        marks[cmd.item - 1] = f"{verb} by {actor.ref}"
        now = self.clock.now()
        runs.set_step(run, run.current, marks=marks)
        item = state["items"][cmd.item - 1]
        await self._record(
            u,
            inc,
            kind=EntryKind.RUNBOOK,
            actor=actor,
            text=f"{runs.label(inc, run)} checklist item {cmd.item} {verb}: {item}",
            data={"runbook": run.runbook, "run": run.number, "item": cmd.item, "outcome": verb},
        )
        if all(marks):
            done = sum(1 for m in marks if m.startswith("done"))
            await runs.settle(
                u,
                inc,
                run,
                run.current,
                Done(detail=f"{done} of {len(marks)} done"),
                record=self._record,
                now=now,
            )
        else:
            await runs.show_progress(u, inc, run, now)
        left = sum(1 for m in marks if not m)
        return Reply(
            f"Item {cmd.item} {verb}"
            + (f"; {left} left." if left else "; the checklist is complete.")
        )

    async def _runbook_approve(
        self, u: Unit, inc: Incident, cmd: c.RunbookApprove, actor: Actor
    ) -> Reply:
        run = await self._pick_run(u, inc, cmd.run)
        spec = parse_step(run.steps[run.current]) if run.current < len(run.steps) else None
        if run.state is not RunState.WAITING or spec is None or spec.kind != "approve":
            raise ServiceError(
                f"run {run.number} of #{inc.number} is not waiting for an approval "
                f"({run.state.value})"
            )
        role = str(getattr(spec, "role", "commander"))
        holder = inc.roles.get(role)
        if holder is None or c.person_key(holder) != c.person_key(actor.ref):
            raise ServiceError(
                f"Only the {role} ({holder or 'nobody yet'}) may approve step {run.current + 1} "
                f"of run {run.number}; nothing was changed."
            )
        await runs.settle(
            u,
            inc,
            run,
            run.current,
            Done(detail=f"approved by {actor.ref}"),
            record=self._record,
            now=self.clock.now(),
            actor=actor,
        )
        return Reply(f"Approved; run {run.number} of #{inc.number} goes on.")

    async def apply_as_runbook(
        self, u: Unit, incident: Incident, command: c.Command, actor: Actor
    ) -> Reply:
        """Run a change command inside `u` as a runbook step does (same checks as people)."""
        fn = getattr(self, "_changes", {}).get(type(command))
        if fn is None:
            raise ServiceError(f"a runbook cannot run {type(command).__name__}")
        reply: Reply = await fn(u, incident, command, actor)
        return reply


class RunbookRunner:
    """Advances running runs: one step at a time, each under the run's lease."""

    def __init__(
        self,
        *,
        service: Any,  # IncidentService: its catalog, `record` and change commands
        store: Store,
        tools: Tools | None = None,
        clock: Clock | None = None,
        holder: str | None = None,
        ttl: timedelta = timedelta(seconds=10),
        batch: int = 50,
        concurrency: int = 16,
    ) -> None:
        self.service = service
        self.store = store
        self.tools = tools or Tools()
        self.clock: Clock = clock or SystemClock()
        self.holder = holder or holder_name()
        self.ttl = ttl
        self.batch = batch
        self._slots = asyncio.Semaphore(concurrency)
        self._lock = asyncio.Lock()

    async def run_once(self) -> int:
        """Advance every running run as far as it goes now; return how many steps settled."""
        async with self._lock:
            total = 0
            while True:
                async with self.store.unit() as u:
                    ready = await u.runnable_runs(self.batch)
                done = await asyncio.gather(*(self._slot(_rid(r)) for r in ready))
                total += sum(done)
                if not any(done):  # nothing moved: the rest are held by another replica
                    return total

    async def next_due(self) -> Any:
        async with self.store.unit() as u:
            return self.clock.now() if await u.runnable_runs(1) else None

    async def _slot(self, run_id: int) -> int:
        async with self._slots:
            return await self._drive(run_id)

    async def _drive(self, run_id: int) -> int:
        name = f"runbook-run:{run_id}"
        async with self.store.unit() as u:
            took = await u.take_lease(name, holder=self.holder, now=self.clock.now(), ttl=self.ttl)
        if took is LeaseTake.BUSY:
            return 0
        steps = 0
        try:
            while await self._step(run_id, name):
                steps += 1
                self.service._notify()  # the step queued deliveries
        except Exception:
            logger.exception("runbook run %s: the runner failed; the next pass tries again", run_id)
        finally:
            async with self.store.unit() as u:
                await u.drop_lease(name, holder=self.holder)
        return steps

    async def _step(self, run_id: int, lease: str) -> bool:
        """Do the current step of a running run; False when there is nothing more to do now."""
        catalog = self.service.catalog
        async with self.store.unit() as u:
            now = self.clock.now()
            head = await self._locked(u, run_id)
            if head is None:
                return False
            incident, run = head
            index = run.current
            spec = parse_step(run.steps[index])
            kind = KINDS[spec.kind]
            # Held for as long as the step can take, so no replica starts it meanwhile; a
            # process killed holding it delays the resumption by at most that.
            ttl = self.ttl + timedelta(seconds=spec.longest())
            if await u.take_lease(lease, holder=self.holder, now=now, ttl=ttl) is (
                LeaseTake.BUSY
            ):
                return False  # our lease expired and another replica has the run
            attempts = int(run.step_states[index].get("attempts", 0)) + 1
            runs.set_step(
                run,
                index,
                state="running",
                attempts=attempts,
                started_at=now.isoformat(timespec="seconds"),
                detail="",
            )
            ctx = await self._context(u, incident, run, index, catalog)
            outcome = await self._guarded(kind.run, spec, ctx)
            if not isinstance(outcome, Call):
                # Done inside this transaction: its start, its effects and its finish are
                # committed together (after a crash before the commit it is done again).
                await runs.settle(
                    u, incident, run, index, _settled(outcome),
                    record=self.service.record, now=now, state=ctx.state,
                )
                return True
            request = outcome.request
            await runs.show_progress(u, incident, run, now)  # ⏳ while the call is out
        # The start is committed before the call goes out: after a crash the step is found
        # running and its call made again (an HTTP step with the same Idempotency-Key).
        self.service._notify()
        assert kind.call is not None and kind.finish is not None
        result = await kind.call(spec, request, self.tools)  # outside any transaction
        finish = kind.finish

        async def finishing(s: Any, x: StepContext) -> Any:
            return await finish(s, x, result)

        async with self.store.unit() as u:
            now = self.clock.now()
            head = await self._locked(u, run_id)
            if head is None or head[1].current != index:
                return False  # cancelled meanwhile
            incident, run = head
            ctx = await self._context(u, incident, run, index, catalog)
            outcome = await self._guarded(finishing, spec, ctx)
            await runs.settle(
                u, incident, run, index, _settled(outcome),
                record=self.service.record, now=now, state=ctx.state,
            )
        return True

    async def _locked(self, u: Unit, run_id: int) -> tuple[Incident, RunbookRun] | None:
        probe = await u.run_by_id(run_id)
        if probe is None:
            return None
        incident = await u.incident_by_id(probe.incident_id)  # the incident first, then the run
        run = await u.run_by_id(run_id)
        if incident is None or run is None or run.state is not RunState.RUNNING:
            return None
        return incident, run

    async def _context(
        self, u: Unit, incident: Incident, run: RunbookRun, index: int, catalog: Any
    ) -> StepContext:
        actor = runs.runbook_actor(run)
        service = self.service

        async def apply(command: c.Command) -> str:
            reply: Reply = await service.apply_as_runbook(u, incident, command, actor)
            return reply.text

        return StepContext(
            u=u,
            incident=incident,
            run=run,
            index=index,
            state=dict(run.step_states[index]),
            catalog=catalog,
            now=self.clock.now(),
            template=await runs.template_context(u, incident, run, catalog),
            apply=apply,
        )

    @staticmethod
    async def _guarded(fn: Any, spec: Any, ctx: StepContext) -> Any:
        """A step's outcome; a refused change or a template error is a failed step, shown."""
        try:
            return await fn(spec, ctx)
        except (ServiceError, TemplateProblem) as exc:
            return Failed(str(exc))


def _settled(outcome: Any) -> Done | Waiting | Failed:
    if isinstance(outcome, Done | Waiting | Failed):
        return outcome
    return Failed(f"unexpected outcome {type(outcome).__name__}")


@handler(wait_step.JOB)
async def wait_over(ctx: JobContext) -> None:
    run_id, step = ctx.job.payload.get("run"), ctx.job.payload.get("step")
    if ctx.incident is None or not isinstance(run_id, int):
        return
    run = await ctx.u.run_by_id(run_id)
    if run is None or run.state is not RunState.WAITING or run.current != step:
        return  # cancelled or moved on since
    late = f" ({ctx.late_note})" if ctx.late_note else ""
    await runs.settle(
        ctx.u,
        ctx.incident,
        run,
        run.current,
        Done(detail=f"waited{late}"),
        record=ctx.record,
        now=ctx.now,
    )


def _iid(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id


def _rid(run: RunbookRun) -> int:
    assert run.id is not None
    return run.id


def env_secrets(environ: Mapping[str, str]) -> dict[str, str]:
    """The only variables an HTTP step may read."""
    return {k: v for k, v in environ.items() if k.startswith("OPSROOM_SECRET_")}
