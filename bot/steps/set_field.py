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
    inc = ctx.incident
    command: c.Command
    # A value already in place is the step's aim reached (a second run, a retry), not a failure.
    if spec.severity:
        value = render(spec.severity, t).lower()
        if inc.severity == value:
            return Done(detail=f"severity already {value}")
        command = c.SetSeverity(severity=value)
    elif spec.priority:
        value = render(spec.priority, t).lower()
        if inc.priority == value:
            return Done(detail=f"priority already {value}")
        command = c.SetPriority(priority=value)
    elif spec.status:
        value = render(spec.status, t).lower()
        if inc.status.value == value:
            return Done(detail=f"status already {value}")
        command = c.SetStatus(status=value)
    elif spec.field:
        value = render(spec.value or "", t)
        if str(inc.custom_fields.get(spec.field, "")) == value:
            return Done(detail=f"{spec.field} already {value}")
        command = c.SetField(field=spec.field, value=value)
    else:
        value = render(spec.value or "", t)
        if inc.roles.get(spec.role or "") == value:
            return Done(detail=f"{spec.role} already {value}")
        command = c.AssignRole(role=spec.role or "", user=value)
    return Done(detail=await ctx.apply(command))


register(StepKind("set", Spec, run))
