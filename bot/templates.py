"""Runbook templates: Jinja2's sandboxed environment with StrictUndefined.

A template may use `incident` (number, title, summary, type, severity, priority, status,
commander, channel), `fields` (the incident's custom fields; every field its type defines is
there, None when unset), `roles`, `severity`, `channel` and `run` (number, runbook). `check`
renders a template against a sample incident when the catalog loads, so a misspelt name is an
error then, not in the middle of an outage.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from jinja2 import StrictUndefined, TemplateError, meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

NAMES = ("incident", "fields", "roles", "severity", "channel", "run")

_ENV = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


class TemplateProblem(ValueError):
    """A template that cannot be rendered; the message says why."""


def render(source: str, context: Mapping[str, Any]) -> str:
    """`source` rendered with `context`; TemplateProblem on any template error."""
    if "{" not in source:
        return source  # most texts are plain: no need to compile them
    try:
        return _ENV.from_string(source).render(**context)
    except TemplateError as exc:
        raise TemplateProblem(_why(exc)) from None


def render_value(value: Any, context: Mapping[str, Any]) -> Any:
    """Every string inside `value` (dicts and lists walked) rendered with `context`."""
    if isinstance(value, str):
        return render(value, context)
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    return value


def sample_context(field_names: Iterable[str], role_names: Iterable[str]) -> dict[str, Any]:
    """A context shaped like a real one, for checking templates when the catalog loads."""
    roles = {name: f"@{name}" for name in role_names}
    incident = {
        "number": 1,
        "title": "Sample",
        "summary": "Sample",
        "description": "Sample",
        "type": "sample",
        "severity": "sev1",
        "priority": "p1",
        "status": "investigating",
        "commander": "@commander",
        "channel": "#inc-1-sample",
    }
    return {
        "incident": incident,
        "fields": {name: "sample" for name in field_names},
        "roles": roles,
        "severity": "sev1",
        "channel": "#inc-1-sample",
        "run": {"number": 1, "runbook": "sample"},
    }


def check(source: str, context: Mapping[str, Any]) -> None:
    """Raise TemplateProblem when `source` does not parse, names something no template has,
    or fails to render against `context`."""
    if "{" not in source:
        return
    try:
        unknown = sorted(meta.find_undeclared_variables(_ENV.parse(source)) - set(NAMES))
    except TemplateError as exc:
        raise TemplateProblem(_why(exc)) from None
    if unknown:
        raise TemplateProblem(f'unknown name "{unknown[0]}": use {", ".join(NAMES)}')
    render(source, context)


def check_value(value: Any, context: Mapping[str, Any]) -> None:
    if isinstance(value, str):
        check(value, context)
    elif isinstance(value, dict):
        for v in value.values():
            check_value(v, context)
    elif isinstance(value, list):
        for v in value:
            check_value(v, context)


def _why(exc: TemplateError) -> str:
    line = getattr(exc, "lineno", None)
    where = f" (template line {line})" if line and line > 1 else ""
    return f"template error: {exc.message or type(exc).__name__}{where}"
