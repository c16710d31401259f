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
from bot.steps import StepSpec, parse_step
from bot.templates import TemplateProblem, check_value, sample_context
from bot.timing import check_cron, parse_duration, zone

# libyaml's loader when PyYAML was built with it: parsing is then ~10x faster.
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
NAME_RE = re.compile(r"^[a-z][a-z0-9_-]*$")


class CatalogError(Exception):
    """The catalog file cannot be used; the message says where and why. `file` and `line`
    locate the problem when known (`opsroom catalog check` prints them as file:line)."""

    def __init__(self, message: str, *, file: str | None = None, line: int | None = None):
        super().__init__(message)
        self.message, self.file, self.line = message, file, line

    def located(self) -> str:
        """The message as `file:line: ...` when the line is known."""
        if self.file is None or self.line is None:
            return self.message
        rest = self.message.split(": ", 1)[1] if ": " in self.message else self.message
        if rest.startswith("line "):  # a YAML error names its line and column already
            return self.message
        return f"{self.file}:{self.line}: {rest}"


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
    # Whether closing needs every action item done or cancelled and a postmortem (unless the
    # commander or declarer forces it with a reason).
    close_requires_postmortem: bool = True
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
    auto_run: list[str] = []  # runbooks started when an incident of this type is declared
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


# Alert routes (`alert_routes:`, see bot/alerts.py): label matchers like Alertmanager's.
MATCHER_RE = re.compile(r'^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"?(.*?)"?\s*$')
ALERT_MODES = ("declare", "triage", "ignore")
AUTO_RESOLVE = ("monitoring", "resolved")
DEFAULT_ALERT_SEVERITIES = {"critical": "sev1", "error": "sev2", "warning": "sev3", "info": "sev4"}


class AlertRoute(_Strict):
    """Where alerts go: the first route whose matchers all hold takes an alert."""

    name: str = ""
    match: list[str] = []  # `label=value`, `label!=value`, `label=~regex`, `label!~regex`
    type: str | None = None  # the incident type declared; none: the catalog's first type
    severity: dict[str, str] = DEFAULT_ALERT_SEVERITIES  # the alert's severity -> ours
    group_by: list[str] = ["alertname", "service"]
    mode: str = "declare"
    resolve_after: str = "5m"
    auto_resolve: str = "monitoring"
    storm_threshold: int = Field(default=10, ge=1)
    # An escalation policy to page when this route declares (wired with on-call).
    page: str | None = None

    @field_validator("match")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        for item in value:
            found = MATCHER_RE.match(item)
            if found is None:
                raise ValueError(
                    f'"{item}" is not a matcher: use label=value, label!=value, '
                    "label=~regex or label!~regex"
                )
            if found.group(2) in ("=~", "!~"):
                try:
                    re.compile(found.group(3))
                except re.error as exc:
                    raise ValueError(f'"{item}": bad regular expression: {exc}') from None
        return value

    @field_validator("mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if value not in ALERT_MODES:
            raise ValueError(f'"{value}" is not a mode: use {", ".join(ALERT_MODES)}')
        return value

    @field_validator("auto_resolve")
    @classmethod
    def _auto(cls, value: str) -> str:
        if value not in AUTO_RESOLVE:
            raise ValueError(f'"{value}" is not a status to move to: use monitoring or resolved')
        return value

    @field_validator("resolve_after")
    @classmethod
    def _after(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def resolve_interval(self) -> timedelta:
        return parse_duration(self.resolve_after)


class AlertSource(_Strict):
    """Per alert source, the environment variables holding its own secrets."""

    token_env: str | None = None  # instead of OPSROOM_ALERT_TOKEN
    hmac_secret_env: str | None = None  # Grafana: verify its HMAC-SHA256 signature


ALERT_SOURCES = ("alertmanager", "grafana", "pagerduty", "generic")


DEFAULT_ALERT_ROUTES = [
    AlertRoute(name="urgent", match=['severity=~"critical|error"'], mode="declare"),
    AlertRoute(name="everything-else", mode="triage"),
]
class Runbook(_Strict):
    """A response procedure: steps run in order (see bot/steps/ for the kinds)."""

    name: str
    description: str = ""
    steps: list[dict[str, Any]]

    _name = field_validator("name")(_check_name)

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return check_steps(value)

    def specs(self) -> list[StepSpec]:
        return [parse_step(raw) for raw in self.steps]


def check_steps(value: list[Any]) -> list[Any]:
    if not value:
        raise ValueError("needs at least one step")
    for i, raw in enumerate(value):
        try:
            parse_step(raw)
        except ValueError as exc:
            raise ValueError(f"steps[{i}]: {exc}") from None
    return value


TRIGGERS = (
    "declared",
    "status_changed",
    "severity_changed",
    "role_assigned",
    "key_event",
    "action_item_overdue",
    "resolved",
    "alert_firing",
    "alert_resolved",
)


class Condition(_Strict):
    """`if:` of a workflow: every key given must hold (all-of); `any_of` lists alternatives."""

    type: list[str] = []
    severity: list[str] = []
    severity_at_least: str | None = None
    status: list[str] = []
    fields: dict[str, Any] = {}
    any_of: list[Condition] = []

    @model_validator(mode="before")
    @classmethod
    def _shapes(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        value = dict(value)
        sev = value.get("severity")
        if isinstance(sev, dict):
            if set(sev) != {"at_least"}:
                raise ValueError("severity takes a name, a list, or {at_least: <severity>}")
            value.pop("severity")
            value["severity_at_least"] = sev["at_least"]
        for key in ("type", "severity", "status"):
            if isinstance(value.get(key), str):
                value[key] = [value[key]]
        return value


class Workflow(_Strict):
    """When something happens to an incident (`on`) and it matches (`if`), run a runbook or
    inline steps, after an optional delay."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    on: list[str]
    when: Condition = Field(default=Condition(), alias="if")
    run: str | None = None
    steps: list[dict[str, Any]] = []
    delay: str | None = None

    _name = field_validator("name")(_check_name)

    @model_validator(mode="before")
    @classmethod
    def _yaml_on(cls, value: Any) -> Any:
        # YAML 1.1 reads a bare `on:` key as the boolean true.
        if isinstance(value, dict) and True in value and "on" not in value:
            value = dict(value)
            value["on"] = value.pop(True)
        return value

    @field_validator("on", mode="before")
    @classmethod
    def _on(cls, value: Any) -> Any:
        value = [value] if isinstance(value, str) else value
        for item in value if isinstance(value, list) else []:
            if item not in TRIGGERS:
                raise ValueError(f'unknown trigger "{item}": use {", ".join(TRIGGERS)}')
        return value

    @field_validator("delay")
    @classmethod
    def _delay(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return check_steps(value) if value else value

    @model_validator(mode="after")
    def _one_action(self) -> Workflow:
        if bool(self.run) == bool(self.steps):
            raise ValueError("give either run: <runbook> or steps:, not both or neither")
        return self


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
    # How long after resolution the commander is reminded of a missing postmortem; null: never.
    postmortem_due: str | None = "5d"
    # Where alerts from monitoring go (bot/alerts.py); first match wins.
    alert_routes: list[AlertRoute] = DEFAULT_ALERT_ROUTES
    # Per platform, the channel triage-mode alerts are posted in.
    triage_channels: dict[str, str] = {}
    # Per source (alertmanager, grafana, pagerduty, generic): its own secret variables.
    alert_sources: dict[str, AlertSource] = {}

    @field_validator("alert_sources")
    @classmethod
    def _sources(cls, value: dict[str, AlertSource]) -> dict[str, AlertSource]:
        for name in value:
            if name not in ALERT_SOURCES:
                raise ValueError(f'"{name}" is not an alert source: use {", ".join(ALERT_SOURCES)}')
        return value
    runbooks: list[Runbook] = []
    workflows: list[Workflow] = []
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

    @field_validator("postmortem_due")
    @classmethod
    def _postmortem_due(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
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
        for i, route in enumerate(self.alert_routes):
            where = f"alert_routes[{i}]" + (f" ({route.name})" if route.name else "")
            if route.type is not None and route.type not in self.type_names:
                raise ValueError(
                    f'{where}.type: "{route.type}" is not one of {", ".join(self.type_names)}'
                )
            # The default map names sev1..sev4; a catalog with other severities gets the one
            # at the same rank (bot/alerts.py), so only a map written out is checked.
            given = route.severity if "severity" in route.model_fields_set else {}
            for theirs, ours in given.items():
                if ours not in self.severity_names:
                    raise ValueError(
                        f'{where}.severity.{theirs}: "{ours}" is not one of '
                        f"{', '.join(self.severity_names)}"
                    )
        check_runbooks(self)
        return self

    def runbook(self, name: str) -> Runbook | None:
        return next((r for r in self.runbooks if r.name == name), None)

    @property
    def runbook_names(self) -> list[str]:
        return [r.name for r in self.runbooks]

    def warnings(self) -> list[str]:
        """Problems that do not stop Opsroom: a type naming a runbook nobody defined."""
        found = []
        for i, t in enumerate(self.incident_types):
            for j, name in enumerate(t.runbooks):
                if name not in self.runbook_names:
                    found.append(
                        f"incident_types[{i}] ({t.name}).runbooks[{j}]: "
                        f'runbook "{name}" is not defined'
                    )
        return found

    @property
    def routes(self) -> list[AlertRoute]:
        """The alert routes, each with a name (`route1`, `route2`... when the catalog gives
        none): the name keys storms and the record."""
        return [
            r if r.name else r.model_copy(update={"name": f"route{i + 1}"})
            for i, r in enumerate(self.alert_routes)
        ]

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
    """Return the catalog at `path` (a file, or a directory of YAML files merged by top-level
    key), or the default one shipped with the package."""
    if path is None:
        text = resources.files("bot").joinpath("opsroom.yaml").read_text(encoding="utf-8")
        sources = [("default catalog (bot/opsroom.yaml)", text)]
        source = sources[0][0]
    else:
        source = str(path)
        sources = _read_sources(Path(path))
    parts: list[tuple[str, dict[str, Any]]] = []
    for name, text in sources:
        try:
            data = yaml.load(text, Loader=_LOADER)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            problem = getattr(exc, "problem", None) or "invalid YAML"
            raise CatalogError(
                f"{name}:{where}: {problem}", file=name, line=mark and mark.line + 1
            ) from None
        if not isinstance(data, dict):
            raise CatalogError(f"{name}: expected a mapping at the top level", file=name)
        parts.append((name, data))
    data, origins = _merge(parts)
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
        file, line = _locate(where + msg, origins, dict(sources))
        shown = file if file and len(sources) > 1 else source
        raise CatalogError(f"{shown}: {where}{msg}{more}", file=file, line=line) from None


def _read_sources(path: Path) -> list[tuple[str, str]]:
    files = (
        sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
        if path.is_dir()
        else [path]
    )
    if path.is_dir() and not files:
        raise CatalogError(f"{path}: cannot read: the directory has no .yaml files")
    out = []
    for file in files:
        try:
            out.append((str(file), file.read_text(encoding="utf-8")))
        except OSError as exc:
            raise CatalogError(f"{file}: cannot read: {exc.strerror}") from None
    return out


# Where each top-level key came from (its first file), and each item of a top-level list
# (file, index there).
Origins = dict[str, tuple[str, list[tuple[str, int]]]]


def _merge(parts: list[tuple[str, dict[str, Any]]]) -> tuple[dict[str, Any], Origins]:
    """One mapping from several files: lists under one key are joined, in file order; any
    other key may be given by one file only."""
    data: dict[str, Any] = {}
    origins: Origins = {}
    for name, part in parts:
        for key, value in part.items():
            if key in data and not (isinstance(data[key], list) and isinstance(value, list)):
                first = origins[key][0]
                raise CatalogError(
                    f"{name}: {key}: given in {first} already (only lists are merged)", file=name
                )
            origins.setdefault(key, (name, []))
            if isinstance(value, list):
                data.setdefault(key, []).extend(value)
                origins[key][1].extend((name, i) for i in range(len(value)))
            else:
                data[key] = value
    return data, origins


_PATH_PART = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]")


def _locate(message: str, origins: Origins, texts: dict[str, str]) -> tuple[str | None, int | None]:
    """The file and line a message's leading YAML path ("runbooks[0] (x).steps[2]: ...")
    points at; the deepest node found when the path goes further than the file."""
    head = message.split(": ")
    path = ".".join(h for h in head[:-1] if re.fullmatch(r"[\w\[\]() .-]+", h)) or head[0]
    path = re.sub(r" \([^)]*\)", "", path)
    tokens: list[str | int] = [
        m.group(1) if m.group(1) else int(m.group(2)) for m in _PATH_PART.finditer(path)
    ]
    if not tokens or not isinstance(tokens[0], str) or tokens[0] not in origins:
        return None, None
    # "steps: steps[0]" (a list's message naming its own item) walks into the list once.
    tokens = [t for i, t in enumerate(tokens) if i == 0 or t != tokens[i - 1] or isinstance(t, int)]
    key = str(tokens[0])
    rest = tokens[1:]
    file, entries = origins[key]
    if rest and isinstance(rest[0], int) and rest[0] < len(entries):
        file, local = entries[rest[0]]
        rest = [local, *rest[1:]]
    try:
        node = yaml.compose(texts[file], Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return file, None
    line = None
    for token in [key, *rest]:
        nxt = None
        if isinstance(node, yaml.MappingNode) and isinstance(token, str):
            nxt = next((v for k, v in node.value if k.value == token), None)
            found = next((k for k, v in node.value if k.value == token), None)
            if found is not None:
                line = found.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and isinstance(token, int):
            nxt = node.value[token] if token < len(node.value) else None
            if nxt is not None:
                line = nxt.start_mark.line + 1
        if nxt is None:
            break
        node = nxt
    return file, line


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


def check_runbooks(catalog: Catalog) -> None:
    """Check runbooks and workflows against the rest of the catalog; ValueError with a path."""
    names = catalog.runbook_names
    fields = sorted({f.name for t in catalog.incident_types for f in t.fields})
    sample = sample_context(fields, catalog.role_names)
    for i, rb in enumerate(catalog.runbooks):
        if rb.name in names[:i]:
            raise ValueError(f'runbooks[{i}] ({rb.name}): duplicate name "{rb.name}"')
        _check_specs(catalog, f"runbooks[{i}] ({rb.name})", rb.steps, sample, fields)
    for i, t in enumerate(catalog.incident_types):
        for j, name in enumerate(t.auto_run):
            if name not in names:
                raise ValueError(
                    f'incident_types[{i}] ({t.name}).auto_run[{j}]: runbook "{name}" is not '
                    f"defined (runbooks: {', '.join(names) or 'none'})"
                )
    for i, wf in enumerate(catalog.workflows):
        where = f"workflows[{i}] ({wf.name})"
        if wf.name in [w.name for w in catalog.workflows[:i]]:
            raise ValueError(f'{where}: duplicate name "{wf.name}"')
        if wf.run and wf.run not in names:
            raise ValueError(
                f'{where}.run: runbook "{wf.run}" is not defined '
                f"(runbooks: {', '.join(names) or 'none'})"
            )
        _check_condition(catalog, f"{where}.if", wf.when)
        if wf.steps:
            _check_specs(catalog, where, wf.steps, sample, fields)


def _check_specs(
    catalog: Catalog,
    where: str,
    steps: list[dict[str, Any]],
    sample: dict[str, Any],
    fields: list[str],
) -> None:
    for j, raw in enumerate(steps):
        spec = parse_step(raw)
        at = f"{where}.steps[{j}]"
        try:
            check_value(spec.templates(), sample)
        except TemplateProblem as exc:
            raise ValueError(f"{at}: {exc}") from None
        role = getattr(spec, "role", None)
        if role and role not in catalog.role_names:
            raise ValueError(
                f'{at}.role: "{role}" is not a role: use {", ".join(catalog.role_names)}'
            )
        for key in ("severity", "priority", "status"):
            value = getattr(spec, key, None) if spec.kind == "set" else None
            allowed = {
                "severity": catalog.severity_names,
                "priority": catalog.priority_names,
                "status": catalog.status_names,
            }[key]
            if value and "{" not in value and value not in allowed:
                raise ValueError(f'{at}.{key}: "{value}" is not one of {", ".join(allowed)}')
        targets = [getattr(spec, "field", None), *(getattr(spec, "save", {}) or {})]
        for name in targets:
            if name and name not in fields:
                raise ValueError(
                    f'{at}: no incident type has a field "{name}" (fields: {", ".join(fields)})'
                )


def _check_condition(catalog: Catalog, where: str, cond: Condition) -> None:
    for name in cond.type:
        if name not in catalog.type_names:
            raise ValueError(
                f'{where}.type: "{name}" is not an incident type: '
                f"use {', '.join(catalog.type_names)}"
            )
    for name in [*cond.severity, *([cond.severity_at_least] if cond.severity_at_least else [])]:
        if name not in catalog.severity_names:
            raise ValueError(
                f'{where}.severity: "{name}" is not one of {", ".join(catalog.severity_names)}'
            )
    for name in cond.status:
        if name not in [s.value for s in Status]:
            raise ValueError(f'{where}.status: "{name}" is not a status')
    types = [t for t in catalog.incident_types if not cond.type or t.name in cond.type]
    for name in cond.fields:
        lacking = [t.name for t in types if t.field(name) is None]
        if lacking:
            raise ValueError(
                f'{where}.fields: type {lacking[0]} has no field "{name}"'
                + ("" if cond.type else " (limit the condition with type:)")
            )
    for k, alt in enumerate(cond.any_of):
        _check_condition(catalog, f"{where}.any_of[{k}]", alt)
