"""`approve`: the run waits until a person holding a role (default: commander) approves, with a
button or `/incident runbook approve`."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from bot.steps import Outcome, StepContext, StepKind, StepSpec, Waiting, register
from bot.templates import render


class Spec(StepSpec):
    kind: Literal["approve"]
    role: str = "commander"
    prompt: str = ""
    TEMPLATED: ClassVar[tuple[str, ...]] = ("prompt",)

    def title(self) -> str:
        return self.name or f"Approval by the {self.role}"


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec)
    prompt = render(spec.prompt, ctx.template) if spec.prompt else ""
    holder = ctx.incident.roles.get(spec.role) or f"nobody is {spec.role} yet"
    ask = f"waiting for the {spec.role} ({holder}) to approve: /incident runbook approve"
    return Waiting(detail=f"{prompt} · {ask}" if prompt else ask)


register(StepKind("approve", Spec, run))
