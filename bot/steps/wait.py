"""`wait`: a pause of a catalog duration, as a durable job (bot/runbooks.py handles it)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import field_validator

from bot.models import Job
from bot.steps import Outcome, StepContext, StepKind, StepSpec, Waiting, register
from bot.timing import format_duration, parse_duration

JOB = "runbook_wait"


class Spec(StepSpec):
    kind: Literal["wait"]
    duration: str

    @field_validator("duration")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    def title(self) -> str:
        return self.name or f"Wait {self.duration}"


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec) and ctx.run.id is not None
    due = ctx.now + parse_duration(spec.duration)
    attempt = ctx.state.get("attempts", 1)
    key = f"{JOB}:{ctx.run.id}:{ctx.index}:{attempt}"
    payload = {"run": ctx.run.id, "step": ctx.index}
    # A Job row as bot.jobs.new_job makes it (that module needs the catalog, which needs us).
    job = Job(
        kind=JOB,
        key=key,
        due_at=due,
        incident_id=ctx.incident.id,
        payload=payload,
        created_at=ctx.now,
    )
    await ctx.u.schedule(job)
    return Waiting(detail=f"waiting {format_duration(parse_duration(spec.duration))}")


register(StepKind("wait", Spec, run))
