"""`message`: post a templated text to the incident channel, or also the announcement channel."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from bot.steps import Done, Outcome, StepContext, StepKind, StepSpec, register
from bot.templates import render


class Spec(StepSpec):
    kind: Literal["message"]
    text: str
    to: Literal["incident", "announcement"] = "incident"
    TEMPLATED: ClassVar[tuple[str, ...]] = ("text",)

    def title(self) -> str:
        return self.name or ("Announce" if self.to == "announcement" else "Post a message")


async def run(spec: Any, ctx: StepContext) -> Outcome:
    assert isinstance(spec, Spec)
    text = render(spec.text, ctx.template)
    return Done(detail="posted", text=text, announce=spec.to == "announcement")


register(StepKind("message", Spec, run))
