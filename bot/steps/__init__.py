"""The runbook step registry: a step kind is one module here plus one line at the bottom.

A kind is a pydantic model of its catalog entry (`Spec`, with `kind: Literal[...]`) and how it
runs. `run` is called in the runner's transaction with the incident locked and returns an
outcome: `Done`, `Waiting` (people or a time finish it: a checklist, an approval, a wait),
`Failed`, or `Call` for work that must happen outside any transaction (an HTTP request); the
runner then commits the step as started, makes the call with `call`, and hands its result to
`finish` in a new transaction.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, ValidationError

if TYPE_CHECKING:  # the ports import the catalog, which checks steps through this registry
    from bot.catalog import Catalog
    from bot.commands import Command
    from bot.models import Incident, RunbookRun
    from bot.ports import Unit


class StepSpec(BaseModel):
    """A step as the catalog writes it. Each kind adds its own keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: str
    name: str = ""  # shown in the progress message; each kind has a default
    TEMPLATED: ClassVar[tuple[str, ...]] = ()  # the keys rendered as templates

    def title(self) -> str:
        return self.name or self.kind.replace("_", " ")

    def templates(self) -> list[Any]:
        return [getattr(self, key) for key in self.TEMPLATED]

    def longest(self) -> float:
        """The most seconds the step can take outside a transaction (its runner's lease must
        outlive it); 0 for steps done inside one."""
        return 0.0


@dataclass
class Done:
    detail: str = ""
    text: str | None = None  # the step's own timeline text (a message step's message)
    announce: bool = False


@dataclass
class Waiting:
    detail: str


@dataclass
class Failed:
    reason: str


@dataclass
class Call:
    request: dict[str, Any]


Outcome = Done | Waiting | Failed | Call


@dataclass
class StepContext:
    """What a step gets: the open transaction, its incident and run (both locked), its own state
    (a dict the runner stores back), the template context, and `apply` to run a command as the
    runbook in this transaction (ServiceError when the command is refused)."""

    u: Unit
    incident: Incident
    run: RunbookRun
    index: int
    state: dict[str, Any]
    catalog: Catalog
    now: datetime
    template: dict[str, Any]
    apply: Callable[[Command], Awaitable[str]]


@dataclass
class Tools:
    """What `call` may use: an HTTP client and the environment secrets are read from."""

    http: Any = None  # bot.steps.http.HttpClient
    env: Mapping[str, str] = field(default_factory=dict)
    sleep: Callable[[float], Awaitable[None]] | None = None


RunFn = Callable[[Any, StepContext], Awaitable[Outcome]]
CallFn = Callable[[Any, dict[str, Any], Tools], Awaitable[dict[str, Any]]]
FinishFn = Callable[[Any, StepContext, dict[str, Any]], Awaitable[Outcome]]


@dataclass(frozen=True)
class StepKind:
    name: str
    spec: type[StepSpec]
    run: RunFn
    call: CallFn | None = None
    finish: FinishFn | None = None


KINDS: dict[str, StepKind] = {}


def register(kind: StepKind) -> StepKind:
    if kind.name in KINDS:
        raise ValueError(f"step kind {kind.name!r} is registered already")
    KINDS[kind.name] = kind
    return kind


def parse_step(raw: Any) -> StepSpec:
    """The step `raw` (a catalog mapping) as its kind's model; ValueError saying what is wrong."""
    if not isinstance(raw, dict):
        raise ValueError("a step must be a mapping with a kind, e.g. {kind: message, text: ...}")
    name = raw.get("kind")
    kind = KINDS.get(str(name)) if name is not None else None
    if kind is None:
        what = f'unknown step kind "{name}"' if name is not None else "missing step kind"
        raise ValueError(f"{what}: use {', '.join(sorted(KINDS))}")
    try:
        return kind.spec.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also makes the key it meant "missing": name the misspelling first.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "extra_forbidden":
            allowed = ", ".join(k for k in kind.spec.model_fields if k != "kind")
            raise ValueError(f"{where}: unknown key for a {name} step: use {allowed}") from None
        msg = first["msg"].removeprefix("Value error, ")
        raise ValueError(f"{where}: {msg}" if where else msg) from None


SECRET_RE = re.compile(r"\$\{env:([^}]*)\}")
SECRET_PREFIX = "OPSROOM_SECRET_"


def secret_names(value: Any) -> list[str]:
    """The `${env:NAME}` names used anywhere inside `value`."""
    if isinstance(value, str):
        return SECRET_RE.findall(value)
    if isinstance(value, dict):
        return [n for v in value.values() for n in secret_names(v)]
    if isinstance(value, list):
        return [n for v in value for n in secret_names(v)]
    return []


# The registrations: one line per kind.
from bot.steps import (  # noqa: E402
    action_item,
    approve,
    checklist,
    http,
    message,
    set_field,
    wait,
)

__all__ = [
    "KINDS",
    "Call",
    "Done",
    "Failed",
    "Outcome",
    "StepContext",
    "StepKind",
    "StepSpec",
    "Tools",
    "Waiting",
    "action_item",
    "approve",
    "checklist",
    "http",
    "message",
    "parse_step",
    "register",
    "set_field",
    "wait",
]
