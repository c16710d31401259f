"""Escalation policies (`escalation_policies:` in the catalog): who is paged, in what order."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel, ConfigDict, field_validator, model_validator

from bot.timing import parse_duration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    """Notify whoever is on call for `schedules`, the `people` named and the `channels` (by
    name, posted on every platform Opsroom is connected to); wait `after` for an
    acknowledgement before the next step."""

    schedules: list[str] = []
    people: list[str] = []
    channels: list[str] = []
    after: str = "5m"

    @field_validator("after")
    @classmethod
    def _after(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("people")
    @classmethod
    def _people(cls, value: list[str]) -> list[str]:
        return [p.strip().lstrip("@").lower() for p in value]

    @field_validator("channels")
    @classmethod
    def _channels(cls, value: list[str]) -> list[str]:
        names = [ch.strip().lstrip("#") for ch in value]
        for given, name in zip(value, names, strict=True):
            if not name or any(ch.isspace() for ch in name):
                raise ValueError(f'"{given}" is not a channel name (like oncall-ops)')
        return names

    @model_validator(mode="after")
    def _someone(self) -> Step:
        if not (self.schedules or self.people or self.channels):
            raise ValueError("a step needs schedules, people or channels to notify")
        return self

    @property
    def wait(self) -> timedelta:
        return parse_duration(self.after)


class EscalationPolicy(_Strict):
    name: str
    description: str = ""
    steps: list[Step]
    repeat: int = 0  # how many more times the whole chain runs when nobody acknowledges

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[Step]) -> list[Step]:
        if not value:
            raise ValueError("a policy needs at least one step")
        return value

    @field_validator("repeat")
    @classmethod
    def _repeat(cls, value: int) -> int:
        if not 0 <= value <= 10:
            raise ValueError(f"repeat must be 0 to 10, not {value}")
        return value
