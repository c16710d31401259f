"""`action_item`: create action items (text, assignee, due) as `/incident action add` does."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, field_validator

from bot import commands as c
from bot.dates import read_due
from bot.steps import Done, Outcome, StepContext, StepKind, StepSpec, register
from bot.templates import render


class Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    text: str
    assignee: str | None = None
    due: str | None = None  # as people write it: "tomorrow 5pm", "in 2 days", "2026-12-24"

    @field_validator("due")
    @classmethod
    def _due(cls, value: str | None) -> str | None:
        if value is not None:
            read_due(value)
        return value


class Spec(StepSpec):
    kind: Literal["action_item"]
    items: list[Item]
    TEMPLATED: ClassVar[tuple[str, ...]] = ()

    def templates(self) -> list[Any]:
        return [[i.text, i.assignee or ""] for i in self.items]

    def title(self) -> str:
        n = len(self.items)
        return self.name or f"Add {n} action item{'s' if n != 1 else ''}"


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec)
    added = []
    for item in spec.items:
        assignee = render(item.assignee, ctx.template) if item.assignee else None
        due = c.DueSpec(item.due) if item.due else None
        text = render(item.text, ctx.template)
        added.append(await ctx.apply(c.ActionAdd(text=text, assignee=assignee or None, due=due)))
    return Done(detail=f"{len(added)} added")


register(StepKind("action_item", Spec, run))
