"""The catalog: incident types, custom fields, roles, severities... loaded from opsroom.yaml.

A default catalog ships beside this module; `OPSROOM_CATALOG` points to another. A broken file
stops start-up with a `CatalogError` naming the file, the path of the bad key and why.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, get_args
from zoneinfo import ZoneInfo

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from bot.models import Status
from bot.people import PersonSpec
from bot.policies import EscalationPolicy
from bot.schedules import Schedule
from bot.timing import check_cron, parse_duration, zone

# libyaml's loader when PyYAML was built with it: parsing is then ~10x faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


class CatalogError(Exception):
    """The catalog file cannot be used; the message says where and why."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError(
            f'"{value}" must be lowercase letters, digits, "-" or "_", starting with a letter'
        )
    return value


class Severity(_Strict):
    name: str
    description: str
    update_every: str = Field(description="status-update cadence, e.g. 30m, 2h, 1d")
    # How long an incident may stay triggered before its channel and the announcement
    # channel are told; none when unset.
    ack_within: str | None = None
    keywords: list[str] = []
    page: str | None = None  # an escalation policy paged when an incident is declared at it

    _name = field_validator("name")(_check_name)

    @field_validator("update_every", "ack_within")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @property
    def update_interval(self) -> timedelta:
        return parse_duration(self.update_every)

    @property
    def ack_interval(self) -> timedelta | None:
        return parse_duration(self.ack_within) if self.ack_within else None


class Priority(_Strict):
    name: str
    description: str = ""

    _name = field_validator("name")(_check_name)


class StatusInfo(_Strict):
    name: Status
    description: str = ""


class Role(_Strict):
    name: str
    description: str = ""

    _name = field_validator("name")(_check_name)


class FieldKind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    SELECT = "select"
    MULTI_SELECT = "multi-select"
    USER = "user"


class CustomField(_Strict):
    name: str
    label: str = ""
    kind: FieldKind
    required: bool = False
    choices: list[str] = []
    description: str = ""
    min: float | None = None  # the smallest value a number field takes (0 for counts)

    _name = field_validator("name")(_check_name)

    @model_validator(mode="after")
    def _choices_match_kind(self) -> CustomField:
        has_choices = self.kind in (FieldKind.SELECT, FieldKind.MULTI_SELECT)
        if has_choices and not self.choices:
            raise ValueError(f"a {self.kind.value} field needs choices")
        if not has_choices and self.choices:
            raise ValueError(f"a {self.kind.value} field takes no choices")
        if self.min is not None and self.kind is not FieldKind.NUMBER:
            raise ValueError(f"min applies to number fields only, not to a {self.kind.value} field")
        return self

    @property
    def display(self) -> str:
        return self.label or self.name.replace("_", " ").capitalize()


class IncidentType(_Strict):
    name: str
    description: str
    default_severity: str
    default_priority: str
    keywords: list[str] = []
    fields: list[CustomField] = []
    runbooks: list[str] = []
    private: bool = False
    ai: bool = True
    mirror_to: list[str] = []  # other platforms an incident of this type gets a channel on
    page: str | None = None  # an escalation policy paged when an incident of it is declared

    _name = field_validator("name")(_check_name)

    def field(self, name: str) -> CustomField | None:
        return next((f for f in self.fields if f.name == name), None)


# Who may do what to an incident (`permissions:`): a role name, or one of these.
DECLARER = "declarer"
ANYONE = "anyone"
ANYONE_IF_NO_COMMANDER = "anyone-if-no-commander"
DEFAULT_ALLOWED = ["commander", DECLARER, ANYONE_IF_NO_COMMANDER]


class Permissions(_Strict):
    """Who may cancel an incident and change its type. Each list names roles (`commander`,
    `scribe`...), `declarer`, `anyone`, or `anyone-if-no-commander`."""

    cancel: list[str] = DEFAULT_ALLOWED
    type: list[str] = DEFAULT_ALLOWED

    @field_validator("cancel", "type")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one who may, e.g. [commander]")
        return value


class Catalog(_Strict):
    severities: list[Severity]
    priorities: list[Priority]
    # `cancelled` is no status to pick: `/incident cancel <reason>` sets it.
    statuses: list[StatusInfo] = [StatusInfo(name=s) for s in Status if s is not Status.CANCELLED]
    roles: list[Role]
    incident_types: list[IncidentType]
    key_event_emoji: str = "pushpin"
    announcement_channels: dict[str, str] = {}
    channel_prefix: str = "inc"
    # Regexes redacted (besides emails, tokens and secrets) before any text reaches an AI model.
    redact_patterns: list[str] = []
    # Offer a catch-up summary (ephemeral) to each person who joins an incident channel.
    catchup_on_join: bool = False
    discord_category: str = "Incidents"  # Discord category incident channels are created in
    permissions: Permissions = Permissions()
    # The IANA time zone people's dates are read in ("due friday"), times are shown in, and cron
    # schedules run in.
    timezone: str = "UTC"
    # No status-update reminders while an incident is in one of these.
    quiet_statuses: list[Status] = [Status.MONITORING]
    # When the daily digest of overdue action items is posted (crontab, in `timezone`); null: never.
    action_digest: str | None = "0 9 * * *"
    # People with their chat accounts (the only link between a Slack and a Discord account).
    people: list[PersonSpec] = []
    # On-call schedules (bot/schedules.py); `/oncall who <name>`.
    schedules: list[Schedule] = []
    # Who is paged in what order (bot/paging.py); `/incident page <policy>`, `page:` above.
    escalation_policies: list[EscalationPolicy] = []

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)

    @field_validator("quiet_statuses", mode="before")
    @classmethod
    def _statuses(cls, value: Any) -> Any:
        names = [s.value for s in Status]
        for item in value if isinstance(value, list) else []:
            if item not in names:
                raise ValueError(f'"{item}" is not a status: use {", ".join(names)}')
        return value

    @field_validator("action_digest")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        return None if value is None else check_cron(value)

    @model_validator(mode="after")
    def _references(self) -> Catalog:
        for label, items in (
            ("severities", self.severities),
            ("priorities", self.priorities),
            ("roles", self.roles),
            ("incident_types", self.incident_types),
        ):
            names = [i.name for i in items]
            # These errors have no pydantic location, so each message starts with its own path.
            if not names:
                raise ValueError(f"{label}: must not be empty")
            for i, name in enumerate(names):
                if name in names[:i]:
                    raise ValueError(f'{label}[{i}] ({name}): duplicate name "{name}"')
        for i, pol in enumerate(self.escalation_policies):
            for j, step in enumerate(pol.steps):
                for name in step.schedules:
                    if name not in self.schedule_names:
                        raise ValueError(
                            f'escalation_policies[{i}] ({pol.name}).steps[{j}]: unknown schedule '
                            f'"{name}": use {", ".join(self.schedule_names) or "none defined"}'
                        )
        policies = [p.name for p in self.escalation_policies]
        pagers: list[tuple[str, int, str, str | None]] = [
            ("severities", i, s.name, s.page) for i, s in enumerate(self.severities)
        ] + [("incident_types", i, t.name, t.page) for i, t in enumerate(self.incident_types)]
        for label, i, item, page in pagers:
            if page is not None and page not in policies:
                raise ValueError(
                    f'{label}[{i}] ({item}).page: unknown escalation policy '
                    f'"{page}": use {", ".join(policies) or "none defined"}'
                )
        for label, named in (
            ("people", self.people),
            ("schedules", self.schedules),
            ("escalation_policies", self.escalation_policies),
        ):
            seen = [str(getattr(i, "name", "")) for i in named]
            for i, name in enumerate(seen):
                if name in seen[:i]:
                    raise ValueError(f'{label}[{i}] ({name}): duplicate name "{name}"')
        for i, sched in enumerate(self.schedules):
            if not NAME_RE.match(sched.name):
                raise ValueError(
                    f'schedules[{i}] ({sched.name}): "{sched.name}" must be lowercase letters, '
                    'digits, "-" or "_", starting with a letter'
                )
        if "commander" not in self.role_names:
            raise ValueError('roles: must include "commander"')
        for i, info in enumerate(self.statuses):
            if info.name is Status.CANCELLED:
                raise ValueError(
                    f"statuses[{i}] (cancelled): not a status to list; "
                    "/incident cancel <reason> sets it"
                )
        who = [*self.role_names, DECLARER, ANYONE, ANYONE_IF_NO_COMMANDER]
        for action in Permissions.model_fields:
            for i, name in enumerate(getattr(self.permissions, action)):
                if name not in who:
                    raise ValueError(
                        f'permissions.{action}[{i}]: "{name}" is not a role, declarer, anyone '
                        f"or anyone-if-no-commander (roles: {', '.join(self.role_names)})"
                    )
        for i, t in enumerate(self.incident_types):
            where = f"incident_types[{i}] ({t.name})"
            if t.default_severity not in self.severity_names:
                raise ValueError(
                    f'{where}.default_severity: "{t.default_severity}" is not one of '
                    f"{', '.join(self.severity_names)}"
                )
            if t.default_priority not in self.priority_names:
                raise ValueError(
                    f'{where}.default_priority: "{t.default_priority}" is not one of '
                    f"{', '.join(self.priority_names)}"
                )
        return self

    @property
    def severity_names(self) -> list[str]:
        return [s.name for s in self.severities]

    @property
    def priority_names(self) -> list[str]:
        return [p.name for p in self.priorities]

    @property
    def role_names(self) -> list[str]:
        return [r.name for r in self.roles]

    @property
    def type_names(self) -> list[str]:
        return [t.name for t in self.incident_types]

    @property
    def status_names(self) -> list[str]:
        return [s.name.value for s in self.statuses]

    def severity(self, name: str) -> Severity | None:
        return next((s for s in self.severities if s.name == name), None)

    def schedule(self, name: str) -> Schedule | None:
        return next((s for s in self.schedules if s.name == name.lower()), None)

    @property
    def schedule_names(self) -> list[str]:
        return [s.name for s in self.schedules]

    def policy(self, name: str) -> EscalationPolicy | None:
        return next((p for p in self.escalation_policies if p.name == name.lower()), None)

    def incident_type(self, name: str) -> IncidentType | None:
        return next((t for t in self.incident_types if t.name == name), None)


def _location(loc: tuple[int | str, ...], data: Any) -> str:
    """Render a pydantic error location as a YAML path using names where the list has them."""
    parts: list[str] = []
    node = data
    for key in loc:
        if isinstance(key, int):
            item = node[key] if isinstance(node, list) and key < len(node) else None
            name = item.get("name") if isinstance(item, dict) else None
            label = f"[{key}]" + (f" ({name})" if name else "")
            if parts:
                parts[-1] += label
            else:
                parts.append(label)
            node = item
        else:
            parts.append(str(key))
            node = node.get(key) if isinstance(node, dict) else None
    return ".".join(parts) or "(top level)"


def load_catalog(path: str | Path | None = None) -> Catalog:
    """Return the catalog at `path`, or the default one shipped with the package."""
    if path is None:
        text = resources.files("bot").joinpath("opsroom.yaml").read_text(encoding="utf-8")
        source = "default catalog (bot/opsroom.yaml)"
    else:
        source = str(path)
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise CatalogError(f"{source}: cannot read: {exc.strerror}") from None
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise CatalogError(f"{source}:{where}: {problem}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{source}: expected a mapping at the top level")
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors()
        # A misspelt key also makes the key it meant "missing": name the misspelling first.
        first = next((e for e in errors if e["type"] == "extra_forbidden"), errors[0])
        loc = tuple(first["loc"])
        others = len(errors) - 1
        more = f" (and {others} more problem{'s' if others > 1 else ''})" if others else ""
        if first["type"] == "extra_forbidden":
            msg = _unknown_key(loc)
        else:
            msg = first["msg"].removeprefix("Value error, ")
        where = f"{_location(loc, data)}: " if loc else ""  # model-level messages carry a path
        raise CatalogError(f"{source}: {where}{msg}{more}") from None


def _unknown_key(loc: tuple[int | str, ...]) -> str:
    """'unknown key', with the key it most likely means among those allowed there."""
    model: type[BaseModel] = Catalog
    for key in loc[:-1]:
        if isinstance(key, int):
            continue
        annotation = model.model_fields[key].annotation
        inner = get_args(annotation)[0] if get_args(annotation) else annotation
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return "unknown key"
        model = inner
    allowed = list(model.model_fields)
    close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
    if close:
        return f'unknown key (did you mean "{close[0]}"?)'
    return f"unknown key: use {', '.join(allowed)}"
