"""What an AI model is asked and how its answers are checked. Pure logic: no SDK, no network.

Field suggestion: `suggestion_schema(catalog)` is the JSON schema (Structured Outputs, strict
mode) a model must answer with, `system_prompt(catalog)` explains the catalog to it, and
`validate_model_output(...)` keeps only what the catalog allows, taking every other field from
the heuristic and saying so in `Suggestion.sources`.

Catch-up: `catchup_prompt(entries)` lists timeline entries with their ids, the model cites them
as `[e12]` (as `/incident timeline` shows them), and `clean_citations(...)` removes citations
of entries that do not exist (and the sentences that rested only on them) before anything is
posted.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict
from datetime import UTC, datetime, tzinfo
from typing import Any

from bot.catalog import Catalog, CustomField, FieldKind, IncidentType
from bot.models import EntryKind, Incident, TimelineEntry
from bot.ports import FieldSource, Suggestion, Written
from bot.render import clip, hhmm, icon, short_id, when

SCHEMA_NAME = "incident_fields"
TITLE_MAX = 80
SUMMARY_MAX = 1000
TEXT_FIELD_MAX = 200
# A top-level list the model fills with the services it reads in the description. It feeds the
# custom field of the same name when the chosen type has one.
SERVICES = "affected_services"
_FIXED = ("title", "summary", "incident_type", "severity", "priority", SERVICES, "custom_fields")


class ModelOutputError(ValueError):
    """The model's answer is not a JSON object; nothing in it can be used."""


# --- the schema -----------------------------------------------------------------------------


def _suggestable(f: CustomField) -> bool:
    """User fields are never asked for: the model must not invent people."""
    return f.kind is not FieldKind.USER


def _merged_fields(catalog: Catalog) -> dict[str, tuple[list[CustomField], list[str]]]:
    """Every suggestable custom field name -> (its definitions, the types that have it)."""
    merged: dict[str, tuple[list[CustomField], list[str]]] = {}
    for t in catalog.incident_types:
        for f in t.fields:
            if _suggestable(f):
                defs, types = merged.setdefault(f.name, ([], []))
                defs.append(f)
                types.append(t.name)
    return merged


def _union(items: Sequence[list[str]]) -> list[str]:
    out: list[str] = []
    for choices in items:
        out += [c for c in choices if c not in out]
    return out


def _field_schema(name: str, defs: list[CustomField], types: list[str]) -> dict[str, Any]:
    kinds = {d.kind for d in defs}
    descriptions = _union([[d.description] for d in defs if d.description])
    note = f"Only for incident type {', '.join(types)}; null otherwise or when unknown."
    description = " ".join([*descriptions, note])
    kind = kinds.pop() if len(kinds) == 1 else None
    choices = _union([d.choices for d in defs])
    schema: dict[str, Any]
    if kind is FieldKind.SELECT:
        schema = {"type": ["string", "null"], "enum": [*choices, None]}
    elif kind is FieldKind.MULTI_SELECT:
        schema = {"type": ["array", "null"], "items": {"type": "string", "enum": choices}}
    elif kind is FieldKind.NUMBER:
        schema = {"type": ["number", "null"]}
    else:  # text, or the same name with different kinds in different types
        schema = {"type": ["string", "null"]}
    return {**schema, "description": description}


def suggestion_schema(catalog: Catalog) -> dict[str, Any]:
    """The JSON schema of a suggestion for `catalog`, valid for Structured Outputs' strict mode.

    Every object lists all its properties in `required` and forbids others; optional values are
    nullable instead. Custom fields are one flat object (the model picks the type as it fills
    them): the union of every type's fields except user fields, checked per type afterwards.
    """
    merged = _merged_fields(catalog)
    services_defs = merged.pop(SERVICES, None)
    if services_defs is not None:
        choices = _union([d.choices for d in services_defs[0]])
        services_items: dict[str, Any] = (
            {"type": "string", "enum": choices} if choices else {"type": "string"}
        )
    else:
        services_items = {"type": "string"}
    custom = {name: _field_schema(name, defs, types) for name, (defs, types) in merged.items()}
    properties: dict[str, Any] = {
        "title": {
            "type": "string",
            "description": f"A short title, at most {TITLE_MAX} characters.",
        },
        "summary": {
            "type": "string",
            "description": "One or two sentences: what is happening and who is affected.",
        },
        "incident_type": {"type": "string", "enum": catalog.type_names},
        "severity": {"type": "string", "enum": catalog.severity_names},
        "priority": {"type": "string", "enum": catalog.priority_names},
        SERVICES: {
            "type": "array",
            "items": services_items,
            "description": "Services the description says are affected; empty when none.",
        },
        "custom_fields": {
            "type": "object",
            "properties": custom,
            "required": list(custom),
            "additionalProperties": False,
        },
    }
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def response_format(catalog: Catalog) -> dict[str, Any]:
    """`response_format` for chat completions asking for `suggestion_schema` in strict mode."""
    return {
        "type": "json_schema",
        "json_schema": {"name": SCHEMA_NAME, "strict": True, "schema": suggestion_schema(catalog)},
    }


# --- the prompt ---------------------------------------------------------------------------


def _type_lines(t: IncidentType) -> list[str]:
    lines = [f"- {t.name}: {t.description} (usually {t.default_severity}, {t.default_priority})"]
    for f in t.fields:
        if not _suggestable(f):
            continue
        what = f.kind.value + (f" of {', '.join(f.choices)}" if f.choices else "")
        desc = f" - {f.description}" if f.description else ""
        lines.append(f"    field {f.name} ({what}){desc}")
    return lines


def system_prompt(catalog: Catalog, *, schema_in_prompt: bool = False) -> str:
    """Instructions for filling an incident from its description, with the catalog's words.

    `schema_in_prompt` adds the JSON schema itself, for servers that only offer JSON mode.
    """
    lines = [
        "You help an on-call engineer declare an incident. From the description they typed in a "
        "hurry, fill in the incident's fields as JSON.",
        "Use only the names listed below for incident_type, severity, priority and choices. "
        "Set a custom field only when the description supports it and it belongs to the "
        "incident type you chose; otherwise set it to null. Never name people. Text like "
        "[redacted-email] hides private data: leave it out.",
        "",
        "Incident types:",
    ]
    for t in catalog.incident_types:
        lines += _type_lines(t)
    lines += ["", "Severities:"]
    lines += [f"- {s.name}: {s.description}" for s in catalog.severities]
    lines += ["", "Priorities:"]
    lines += [f"- {p.name}: {p.description}" for p in catalog.priorities]
    if schema_in_prompt:
        lines += [
            "",
            "Answer with one JSON object and nothing else, following this JSON schema:",
            json.dumps(suggestion_schema(catalog), separators=(",", ":")),
        ]
    else:
        lines += ["", "Answer in JSON."]
    return "\n".join(lines)


def user_prompt(description: str, type_hint: str | None = None) -> str:
    """The person's description (already redacted), and the type they chose if any."""
    chosen = f"The person chose incident type {type_hint}.\n" if type_hint else ""
    return f"{chosen}Description:\n{description.strip()}"


# --- checking the answer ------------------------------------------------------------------


def parse_model_json(content: str | None) -> dict[str, Any]:
    """The JSON object in a model's answer (a ```json fence around it is tolerated)."""
    text = (content or "").strip()
    fenced = re.match(r"^```(?:json)?\s*(.*?)\s*```$", text, re.DOTALL)
    if fenced:
        text = fenced.group(1)
    try:
        data = json.loads(text)
    except ValueError:
        raise ModelOutputError("the model's answer was not valid JSON") from None
    if not isinstance(data, dict):
        raise ModelOutputError("the model's answer was not a JSON object")
    return data


def _name(value: Any, names: Collection[str]) -> str | None:
    """The catalog name `value` stands for (case-insensitive), or None."""
    if not isinstance(value, str):
        return None
    wanted = value.strip().lower()
    return next((n for n in names if n.lower() == wanted), None)


def _number(value: Any) -> int | float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value.replace(",", "").strip())
        except ValueError:
            return None
    if not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value) if float(value).is_integer() else value


def _text(value: Any, limit: int) -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = " ".join(value.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def field_value(f: CustomField, value: Any) -> Any:
    """`value` as `f` stores it, or None when the catalog does not allow it."""
    if value is None or f.kind is FieldKind.USER:
        return None
    if f.kind is FieldKind.SELECT:
        return _name(value, f.choices)
    if f.kind is FieldKind.MULTI_SELECT:
        items = value if isinstance(value, list) else [value]
        picked: list[str] = []
        for item in items:
            choice = _name(item, f.choices)
            if choice is not None and choice not in picked:
                picked.append(choice)
        return picked or None
    if f.kind is FieldKind.NUMBER:
        return _number(value)
    return _text(value, TEXT_FIELD_MAX)


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False) if not isinstance(value, str) else f'"{value}"'
    return text if len(text) <= 40 else text[:39] + "…"


def validate_model_output(data: Any, catalog: Catalog, heuristic: Suggestion) -> Suggestion:
    """The model's answer reduced to what the catalog allows; every other field from `heuristic`.

    Each field's source says where it came from: "model" for a value the model gave and the
    catalog accepts, otherwise the heuristic's own source for it. A type the person chose
    ("person") is kept whatever the model says. Custom fields that do not belong to the chosen
    type, user fields and unknown keys are dropped. `note` lists the rejected values.
    """
    if not isinstance(data, dict):
        raise ModelOutputError("the model's answer was not a JSON object")
    sources: dict[str, FieldSource] = {}
    rejected: list[str] = []

    def pick(key: str, value: Any, ok: Any, fallback: Any, what: str | None = None) -> Any:
        if ok is not None:
            sources[key] = "model"
            return ok
        if value is not None:
            rejected.append(f"{what or key} {_shown(value)}")
        sources[key] = heuristic.sources.get(key, "heuristic")
        return fallback

    title = pick("title", data.get("title"), _text(data.get("title"), TITLE_MAX), heuristic.title)
    summary = pick(
        "summary", data.get("summary"), _text(data.get("summary"), SUMMARY_MAX), heuristic.summary
    )

    raw_type = data.get("incident_type", data.get("type"))
    if heuristic.sources.get("type") == "person":
        type_name = heuristic.type
        sources["type"] = "person"
    else:
        type_name = pick("type", raw_type, _name(raw_type, catalog.type_names), heuristic.type)
    itype = catalog.incident_type(type_name)
    assert itype is not None, "the heuristic always names a catalog type"

    raw_sev = data.get("severity")
    severity = pick("severity", raw_sev, _name(raw_sev, catalog.severity_names), heuristic.severity)
    raw_pri = data.get("priority")
    priority = pick("priority", raw_pri, _name(raw_pri, catalog.priority_names), heuristic.priority)

    raw_fields = data.get("custom_fields")
    raw_fields = raw_fields if isinstance(raw_fields, dict) else {}
    if raw_fields.get(SERVICES) is None and data.get(SERVICES):
        raw_fields = {**raw_fields, SERVICES: data.get(SERVICES)}
    same_type = heuristic.type == itype.name
    fields: dict[str, Any] = {}
    for f in itype.fields:
        raw = raw_fields.get(f.name)
        if raw in ([], ""):
            raw = None
        if f.kind is FieldKind.USER:
            if raw is not None:
                rejected.append(f"{f.name} (a person)")
            continue
        ok = field_value(f, raw)
        if isinstance(raw, list) and ok is not None and len(ok) < len(raw):
            rejected += [f"{f.name} {_shown(r)}" for r in raw if field_value(f, r) is None]
        fallback = heuristic.custom_fields.get(f.name) if same_type else None
        if ok is None and raw is not None:
            rejected.append(f"{f.name} {_shown(raw)}")
        if ok is not None:
            fields[f.name], sources[f.name] = ok, "model"
        elif fallback is not None:
            fields[f.name] = fallback
            sources[f.name] = heuristic.sources.get(f.name, "heuristic")

    # Keys of other types are expected in the flat object (null); a value there is off-type.
    own = {f.name for f in itype.fields}
    for key, raw in raw_fields.items():
        if key not in own and raw not in (None, [], ""):
            rejected.append(f"{key} (not a {itype.name} field)")

    note = ""
    if rejected:
        shown = ", ".join(rejected[:6]) + (
            f" and {len(rejected) - 6} more" if len(rejected) > 6 else ""
        )
        note = f"ignored values outside the catalog: {shown}"
    return Suggestion(
        title=title,
        summary=summary,
        type=itype.name,
        severity=severity,
        priority=priority,
        custom_fields=fields,
        sources=sources,
        note=note,
    )


def model_answer(s: Suggestion, catalog: Catalog) -> dict[str, Any]:
    """A suggestion written as the model would answer it (complete for the strict schema).

    Used by tests and benchmarks that play the model, and handy for prompt examples.
    """
    custom = {name: None for name in _merged_fields(catalog) if name != SERVICES}
    custom.update({k: v for k, v in s.custom_fields.items() if k != SERVICES})
    services = s.custom_fields.get(SERVICES) or []
    return {
        "title": s.title,
        "summary": s.summary,
        "incident_type": s.type,
        "severity": s.severity,
        "priority": s.priority,
        SERVICES: list(services),
        "custom_fields": custom,
    }


def suggestion_json(s: Suggestion) -> str:
    """A suggestion as one JSON object: its fields, where each came from, and the note."""
    return json.dumps(asdict(s), ensure_ascii=False)


def suggestion_text(s: Suggestion) -> str:
    """A suggestion as aligned lines, each value with where it came from (`opsroom suggest`)."""
    rows: list[tuple[str, str, str]] = [
        ("title", s.title, s.sources.get("title", "")),
        ("type", s.type, s.sources.get("type", "")),
        ("severity", s.severity, s.sources.get("severity", "")),
        ("priority", s.priority, s.sources.get("priority", "")),
    ]
    for name, value in s.custom_fields.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        rows.append((name, shown, s.sources.get(name, "")))
    rows.append(("summary", " ".join(s.summary.split()), s.sources.get("summary", "")))
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value}  ({source or '?'})" for name, value, source in rows]
    if s.note:
        lines.append(f"note: {s.note}")
    return "\n".join(lines)


# --- catch-up -----------------------------------------------------------------------------

# An entry is cited as [e12] (what `/incident timeline` shows); [#12] and [#e12], which models
# also write, are read as the same citation and written back as [e12].
_CITE = r"(?:#\s*[eE]?|[eE])"
CITATION_RE = re.compile(rf"\[\s*{_CITE}(\d+)\s*\]")
# Several citations in one bracket, as models like to write them: [e3, e4] or [#3, #4].
_GROUPED_RE = re.compile(rf"\[\s*{_CITE}\d+(?:\s*[,;]\s*{_CITE}?\d+)+\s*\]")
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+(?!\[e)|(?<=\])\s+(?=[A-Z])")

CATCHUP_SYSTEM = (
    "You write catch-up summaries of an incident for someone who just joined. You get the "
    "timeline as lines starting with the entry id, like [e12]. Write at most 8 short sentences "
    "in plain text: what happened, what is known about the cause, what is being done, and what "
    "is still open. End every sentence with the ids of the entries it comes from, like [e12] "
    "or [e12][e15]. Use only ids that appear in the timeline; state nothing the timeline does "
    "not say. Text like [redacted-email] hides private data: leave it out."
)

_KIND_LABEL = {
    EntryKind.KEY_EVENT: "key event",
    EntryKind.STATUS_CHANGE: "status",
    EntryKind.FIELD_CHANGE: "field",
    EntryKind.ROLE_CHANGE: "role",
    EntryKind.ACTION_ITEM: "action item",
    EntryKind.STATUS_UPDATE: "status update",
}


def catchup_prompt(
    entries: Sequence[TimelineEntry],
    redact: Callable[[str], str] | None = None,
    tz: tzinfo = UTC,
) -> str:
    """The timeline as `[e<entry id>] time author: text` lines, oldest first.

    Deleted entries are left out. `redact` masks each line before it leaves for a model. Times
    are in `tz` (the catalog's zone); the date is shown when the timeline spans more than one day.
    """
    kept = [e for e in entries if not e.deleted and e.id is not None]
    kept.sort(key=lambda e: (e.occurred_at, e.id or 0))
    days = {e.occurred_at.astimezone(tz).date() for e in kept}
    fmt = "%H:%M" if len(days) <= 1 else "%Y-%m-%d %H:%M"
    lines = []
    for e in kept:
        author = e.author_name or "Opsroom"
        label = _KIND_LABEL.get(e.kind)
        kind = f" ({label})" if label else ""
        text = " ".join(e.text.split())
        at = e.occurred_at.astimezone(tz).strftime(fmt)
        line = f"[{short_id(e.id)}] {at} {author}{kind}: {text}"
        lines.append(redact(line) if redact else line)
    return f"Timeline (times in {tz}):\n" + "\n".join(lines)


def _ungroup(match: re.Match[str]) -> str:
    return "".join(f"[{short_id(int(n))}]" for n in re.findall(r"\d+", match.group(0)))


def _canonical(text: str) -> str:
    """Every citation written as [e12], one per bracket."""
    text = _GROUPED_RE.sub(_ungroup, text)
    return CITATION_RE.sub(lambda m: f"[{short_id(int(m.group(1)))}]", text)


def clean_citations(text: str, valid_ids: Collection[int]) -> tuple[str, int]:
    """`text` without citations of entries not in `valid_ids`, and how many were removed.

    A sentence whose every citation was invalid rested on nothing real, so it is removed too;
    sentences with at least one valid citation (or none at all, like a heading) stay. The
    citations kept are written [e12] whatever form the model used.
    """
    valid = set(valid_ids)
    text = _canonical(text)
    removed = 0
    out_lines: list[str] = []
    for line in text.splitlines():
        kept: list[str] = []
        for sentence in _SENTENCE_END_RE.split(line):
            cited = [int(n) for n in CITATION_RE.findall(sentence)]
            bad = [n for n in cited if n not in valid]
            removed += len(bad)
            if cited and len(bad) == len(cited):
                continue
            if bad:
                sentence = CITATION_RE.sub(
                    lambda m: m.group(0) if int(m.group(1)) in valid else "", sentence
                )
                sentence = re.sub(r"[ \t]+([.!?,;:])", r"\1", sentence)
                sentence = re.sub(r"[ \t]{2,}", " ", sentence).rstrip()
            kept.append(sentence)
        joined = " ".join(s for s in kept if s.strip())
        if joined.strip() or not line.strip():
            # A bullet whose only sentence was dropped leaves "- "; drop the whole line then.
            if re.fullmatch(r"\s*(?:[-*•]|\d+[.)])\s*", joined):
                continue
            out_lines.append(joined)
    cleaned = re.sub(r"\n{3,}", "\n\n", "\n".join(out_lines)).strip()
    return cleaned, removed


def cited_ids(text: str) -> list[int]:
    """The entry ids `text` cites, in order of first citation."""
    seen: list[int] = []
    for n in CITATION_RE.findall(_GROUPED_RE.sub(_ungroup, text)):
        if int(n) not in seen:
            seen.append(int(n))
    return seen


_FIRST = (EntryKind.KEY_EVENT, EntryKind.STATUS_CHANGE, EntryKind.STATUS_UPDATE)


def plain_catchup(
    entries: Sequence[TimelineEntry],
    limit: int = 8,
    *,
    incident: Incident | None = None,
    now: datetime | None = None,
    tz: tzinfo = UTC,
) -> str:
    """A catch-up without a model: where the incident stands (status, severity, commander),
    then its latest entries, the newest of every kind and the rest key events first, each
    cited and dated when it is not from today (`now` in `tz`)."""
    head = []
    if incident is not None:
        lead = f"commander {incident.commander}" if incident.commander else "no commander"
        head.append(f"Now {incident.status.value} · {incident.severity.upper()} · {lead}.")
    live = [e for e in entries if not e.deleted and e.id is not None]
    live.sort(key=lambda e: (e.occurred_at, e.id or 0))
    if not live:
        return "\n".join([*head, "Nothing on the timeline yet."])
    newest = list(reversed(live))
    chosen: dict[int, TimelineEntry] = {}
    kinds: set[EntryKind] = set()
    for e in newest:  # the latest of every kind, however old
        if e.kind not in kinds:
            kinds.add(e.kind)
            chosen[e.id or 0] = e
    for e in [e for e in newest if e.kind in _FIRST] + newest:
        if len(chosen) >= limit:
            break
        chosen.setdefault(e.id or 0, e)
    shown = sorted(chosen.values(), key=lambda e: (e.occurred_at, e.id or 0))
    lines = []
    for e in shown:
        at = when(e.occurred_at, now, tz) if now is not None else hhmm(e.occurred_at, tz)
        author = f"{e.author_name}: " if e.author_name else ""
        text = clip(" ".join(e.text.split()), 200)
        lines.append(f"- {at} {icon(e.kind)} {author}{text} [{short_id(e.id)}]")
    if head:
        head.append("Latest on the timeline:")
    return "\n".join([*head, *lines])


class PlainSummarizer:
    """The catch-up used without a model (or for types with AI off): where the incident stands
    and its latest entries, each cited."""

    async def summarize(
        self,
        entries: Sequence[TimelineEntry],
        *,
        incident: Incident | None = None,
        now: datetime | None = None,
        tz: tzinfo = UTC,
    ) -> tuple[str, int]:
        return plain_catchup(entries, incident=incident, now=now, tz=tz), 0

    async def write(self, *, system: str, prompt: str) -> Written:
        return Written(None, note="no AI model is configured")
