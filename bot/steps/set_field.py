"""`set`: severity, priority, status, a custom field or a role, through the same checks as the
commands people type."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import model_validator

from bot import commands as c
from bot.steps import Done, Outcome, StepContext, StepKind, StepSpec, register
from bot.templates import render


class Spec(StepSpec):
    kind: Literal["set"]
    severity: str | None = None
    priority: str | None = None
    status: str | None = None
    field: str | None = None
    role: str | None = None
    value: str | None = None  # of `field`, or the person given `role`
    TEMPLATED: ClassVar[tuple[str, ...]] = ("severity", "priority", "status", "value")

    @model_validator(mode="after")
    def _one_thing(self) -> Spec:
        chosen = [
            k for k in ("severity", "priority", "status", "field", "role") if getattr(self, k)
        ]
        if len(chosen) != 1:
            raise ValueError(
                "a set step sets exactly one of severity, priority, status, field, role"
            )
        if chosen[0] in ("field", "role") and self.value is None:
            raise ValueError(f"setting a {chosen[0]} needs a value")
        if chosen[0] not in ("field", "role") and self.value is not None:
            raise ValueError("value goes with field or role only")
        return self

    def templates(self) -> list[Any]:
        return [v for v in super().templates() if v is not None]

    def title(self) -> str:
        if self.name:
            return self.name
        for key in ("severity", "priority", "status"):
            if getattr(self, key):
                return f"Set {key} {getattr(self, key)}"
        return f"Set {self.field}" if self.field else f"Assign {self.role}"


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec)
    t = ctx.template
    command: c.Command
    if spec.severity:
        command = c.SetSeverity(severity=render(spec.severity, t).lower())
    elif spec.priority:
        command = c.SetPriority(priority=render(spec.priority, t).lower())
    elif spec.status:
        command = c.SetStatus(status=render(spec.status, t).lower())
    elif spec.field:
        command = c.SetField(field=spec.field, value=render(spec.value or "", t))
    else:
        command = c.AssignRole(role=spec.role or "", user=render(spec.value or "", t))
    return Done(detail=await ctx.apply(command))


register(StepKind("set", Spec, run))
