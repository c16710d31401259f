"""The JSON shapes of the REST API (what /openapi.json documents)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from bot.models import ActionItem, ActionStatus, EntryKind, Incident, Status, TimelineEntry

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=4000)]
Short = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Mention = Annotated[str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100)]
FieldValue = Annotated[str, StringConstraints(max_length=1000)] | int | float | list[Short]


class IncidentOut(BaseModel):
    number: int
    title: str
    summary: str
    description: str
    type: str
    severity: str
    priority: str
    status: Status
    private: bool
    roles: dict[str, str]
    custom_fields: dict[str, Any]
    declared_by: str
    declared_on: str
    declared_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    updated_at: datetime
    url: str = Field(description="The incident's page in the web view")

    @classmethod
    def of(cls, incident: Incident, base: str) -> IncidentOut:
        data = incident.model_dump(exclude={"id", "last_update_at"})
        return cls(**data, url=f"{base}/incidents/{incident.number}")


class IncidentPage(BaseModel):
    items: list[IncidentOut]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null at end")


class EntryOut(BaseModel):
    id: int
    kind: EntryKind
    text: str
    author: str
    source: str
    key_event: bool
    occurred_at: datetime
    created_at: datetime
    edited_at: datetime | None

    @classmethod
    def of(cls, entry: TimelineEntry) -> EntryOut:
        assert entry.id is not None
        return cls(
            id=entry.id,
            kind=entry.kind,
            text=entry.text,
            author=entry.author_name,
            source=entry.source,
            key_event=entry.kind is EntryKind.KEY_EVENT,
            occurred_at=entry.occurred_at,
            created_at=entry.created_at,
            edited_at=entry.edited_at,
        )


class TimelinePage(BaseModel):
    items: list[EntryOut]
    next_cursor: str | None


class ActionItemOut(BaseModel):
    number: int
    text: str
    assignee: str | None
    due_at: datetime | None
    status: ActionStatus
    created_by: str
    created_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, item: ActionItem) -> ActionItemOut:
        return cls(**item.model_dump(exclude={"id", "incident_id", "updated_at"}))


# Optional fields are left out rather than sent as null: null means nothing here.
class DeclareIn(BaseModel):
    """Fields left out are filled by the suggester from the description (as chat's Quick Start)."""

    model_config = ConfigDict(extra="forbid")

    description: Text
    title: Short = None
    summary: Annotated[str, StringConstraints(max_length=4000)] = None
    type: Short = None
    severity: Short = None
    priority: Short = None
    commander: Mention = Field(default=None, description='A mention, e.g. "@alice"')
    custom_fields: dict[Short, FieldValue] = None
    idempotency_key: Short = Field(
        default=None,
        description="A retried declare with the same key (and body) returns the same incident",
    )


class IncidentPatch(BaseModel):
    """Every field given is changed, or none is: one transaction through the chat commands'
    rules. `roles` maps a role to a person, or to null to unassign it."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    title: Short = None
    summary: Text = None
    type: Short = None
    severity: Short = None
    priority: Short = None
    status: Status = None
    roles: dict[Short, Mention | None] = None
    custom_fields: dict[Short, FieldValue] = None


class TextIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text


class ActionItemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: Text
    assignee: Mention = None
    due: Short = Field(default=None, description='"2026-12-24", "friday", "in 3 days"...')


class ActionItemPatch(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    text: Text = None
    assignee: Mention = None
    due: Short = None
    status: ActionStatus = None
