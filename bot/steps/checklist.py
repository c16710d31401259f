"""`checklist`: items people tick (`/incident runbook check <n>`, `skip <n>`, or a button); the
run waits until every item is done or skipped."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import field_validator

from bot.steps import Done, Outcome, StepContext, StepKind, StepSpec, Waiting, register
from bot.templates import render


class Spec(StepSpec):
    kind: Literal["checklist"]
    items: list[str]
    TEMPLATED: ClassVar[tuple[str, ...]] = ("items",)

    @field_validator("items")
    @classmethod
    def _some(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("a checklist needs at least one item")
        return value

    def title(self) -> str:
        return self.name or "Checklist"


def progress(state: dict[str, Any]) -> str:
    marks = state.get("marks", [])
    done = sum(1 for m in marks if m)
    return f"{done} of {len(marks)} ticked"


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec)
    if "items" not in ctx.state:
        ctx.state["items"] = [render(item, ctx.template) for item in spec.items]
        ctx.state["marks"] = [None] * len(spec.items)  # None, or "done by @x" / "skipped by @x"
    if all(ctx.state["marks"]):
        return Done(detail=progress(ctx.state))
    return Waiting(detail=progress(ctx.state))


register(StepKind("checklist", Spec, run))
