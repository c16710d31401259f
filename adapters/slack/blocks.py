"""Block Kit: platform-neutral messages as Slack blocks, and the Quick Start modal."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from bot.catalog import Catalog, CustomField, FieldKind, Priority, Severity
from bot.ports import Suggestion
from bot.render import Message

ACTION_PREFIX = "opsroom_"
DECLARE_CALLBACK = "opsroom_declare"
KEY_EVENT_CALLBACK = "opsroom_key_event"
TIMELINE_PICK_CALLBACK = "opsroom_add_to_timeline"
TYPE_ACTION = "opsroom_declare_type"
FIELD_BLOCK = "cf:"

Block = dict[str, Any]

# Slack's documented length limits (docs.slack.dev, Block Kit reference), in characters.
HEADER_MAX = 150  # header block text
SECTION_TEXT_MAX = 3000  # section block text
SECTION_FIELD_MAX = 2000  # each text object in a section's fields (at most 10 of them)
SECTION_FIELDS_MAX = 10
CONTEXT_TEXT_MAX = 3000  # a text object in a context block (the text object's own limit)
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
OPTION_TEXT_MAX = 75
LABEL_MAX = 2000  # input block label
HINT_MAX = 2000  # input block hint
MODAL_TITLE_MAX = 24  # modal title, submit and close
METADATA_MAX = 3000  # a view's private_metadata


def clip(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, ending in "…" when it was longer."""
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "…" if limit > 0 else ""


def _text(text: str, kind: str = "plain_text", *, limit: int) -> dict[str, Any]:
    return {"type": kind, "text": clip(text, limit)}


def _mrkdwn(text: str, limit: int) -> dict[str, Any]:
    return _text(text, "mrkdwn", limit=limit)


def button_action(action_id: str) -> str:
    """The action a button's action_id names: "opsroom_triage_attach.2" is "triage_attach"."""
    return action_id.removeprefix(ACTION_PREFIX).partition(".")[0]


def message_blocks(message: Message) -> list[Block]:
    """Blocks for a message; empty for a plain one (its text is all there is to show)."""
    if not (message.title or message.fields or message.buttons or message.context):
        return []
    blocks: list[Block] = []
    if message.title:
        blocks.append({"type": "header", "text": _text(message.title, limit=HEADER_MAX)})
    fields = [_mrkdwn(f"*{f.label}*\n{f.value}", SECTION_FIELD_MAX) for f in message.fields]
    for i in range(0, len(fields), SECTION_FIELDS_MAX):
        blocks.append({"type": "section", "fields": fields[i : i + SECTION_FIELDS_MAX]})
    for section in message.sections or (() if message.title else (message.text,)):
        blocks.append({"type": "section", "text": _mrkdwn(section, SECTION_TEXT_MAX)})
    if message.buttons:
        elements = []
        seen: dict[str, int] = {}
        for b in message.buttons:
            # Slack wants each action_id once in a block: a repeated action ("Attach to #1",
            # "Attach to #2") gets ".2", ".3"... which `button_action` takes off again.
            seen[b.action] = seen.get(b.action, 0) + 1
            repeat = f".{seen[b.action]}" if seen[b.action] > 1 else ""
            button: dict[str, Any] = {
                "type": "button",
                "text": _text(b.label, limit=BUTTON_TEXT_MAX),
                "action_id": ACTION_PREFIX + b.action + repeat,
                "value": b.value[:BUTTON_VALUE_MAX],  # an id: cut, never decorated
            }
            if b.style:
                button["style"] = b.style
            elements.append(button)
        blocks.append({"type": "actions", "elements": elements})
    if message.context:
        blocks.append({"type": "context", "elements": [_mrkdwn(message.context, CONTEXT_TEXT_MAX)]})
    return blocks


def _option(value: str, label: str | None = None) -> dict[str, Any]:
    return {"text": _text(label or value, limit=OPTION_TEXT_MAX), "value": value}


def _input(
    block_id: str,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    dispatch: bool = False,
    hint: str = "",
) -> Block:
    block: Block = {
        "type": "input",
        "block_id": block_id,
        "label": _text(label, limit=LABEL_MAX),
        "element": element,
        "optional": optional,
    }
    if dispatch:
        block["dispatch_action"] = True
    if hint:
        block["hint"] = _text(hint, limit=HINT_MAX)
    return block


def _field_element(field: CustomField, value: Any) -> dict[str, Any]:
    action_id = "value"
    if field.kind is FieldKind.TEXT:
        element: dict[str, Any] = {"type": "plain_text_input", "action_id": action_id}
        if value:
            element["initial_value"] = str(value)
    elif field.kind is FieldKind.NUMBER:
        element = {"type": "number_input", "action_id": action_id, "is_decimal_allowed": True}
        if value is not None and value != "":
            element["initial_value"] = str(value)
    elif field.kind is FieldKind.SELECT:
        element = {
            "type": "static_select",
            "action_id": action_id,
            "options": [_option(c) for c in field.choices],
        }
        if value in field.choices:
            element["initial_option"] = _option(value)
    elif field.kind is FieldKind.MULTI_SELECT:
        element = {
            "type": "multi_static_select",
            "action_id": action_id,
            "options": [_option(c) for c in field.choices],
        }
        chosen = [v for v in (value or []) if v in field.choices]
        if chosen:
            element["initial_options"] = [_option(v) for v in chosen]
    else:
        element = {"type": "users_select", "action_id": action_id}
        if isinstance(value, str) and value.startswith("<@"):
            element["initial_user"] = value.strip("<@>").split("|")[0]
    return element


SUGGESTED_BY = {"model": "suggested by the model", "heuristic": "suggested by the heuristic"}
FIELD_SOURCES: frozenset[str] = frozenset({"model", "heuristic", "default", "person"})
TOP_FIELDS = ("title", "type", "severity", "priority")  # suggested fields with their own block


def _hint(description: str, source: str | None) -> str:
    """A field's own description, then where its value came from (when a suggester gave it)."""
    return " · ".join(p for p in (description, SUGGESTED_BY.get(source or "", "")) if p)


def field_block(name: str) -> str:
    """The block id of a suggested field: its own for the top fields, else the custom one."""
    return name if name in TOP_FIELDS else FIELD_BLOCK + name


def declare_metadata(channel_id: str, suggestion: Suggestion | None, fields: list[str]) -> str:
    """The Quick Start modal's private_metadata: the channel and, when fields were suggested,
    where each shown value came from and who suggested it (the values are the blocks' own
    initial values). Kept within Slack's 3,000 characters: the note is cut first."""
    data: dict[str, Any] = {"channel": channel_id}
    if suggestion is not None:
        data["suggested"] = {
            "sources": {k: v for k, v in suggestion.sources.items() if k in fields},
            "model": suggestion.model[:200],
            "endpoint": suggestion.endpoint[:200],
            "note": suggestion.note,
        }
    text = _compact(data)
    while len(text) > METADATA_MAX and "suggested" in data:
        carried = data["suggested"]
        if not carried["note"]:
            del data["suggested"]  # never seen with a real catalog; the modal still works
        else:
            over = len(text) - METADATA_MAX
            carried["note"] = clip(carried["note"], max(0, len(carried["note"]) - over - 1))
            if len(carried["note"]) <= 1:
                carried["note"] = ""
        text = _compact(data)
    return text


def _compact(data: dict[str, Any]) -> str:
    return json.dumps(data, separators=(",", ":"))


def read_metadata(view: dict[str, Any]) -> dict[str, Any]:
    """A view's private_metadata as we wrote it ({} when there is none or it is not ours)."""
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def carried_sources(metadata: dict[str, Any]) -> dict[str, str]:
    suggested = metadata.get("suggested") or {}
    sources = suggested.get("sources") or {}
    return {str(k): v for k, v in sources.items() if v in FIELD_SOURCES}


def _rank_select(items: Sequence[Severity | Priority], chosen: str) -> dict[str, Any]:
    """A select of severities or priorities ("SEV1: Critical..."), `chosen` picked if known."""

    def option(item: Severity | Priority) -> dict[str, Any]:
        return _option(item.name, f"{item.name.upper()}: {item.description}")

    select: dict[str, Any] = {
        "type": "static_select",
        "action_id": "value",
        "options": [option(item) for item in items],
    }
    picked = next((item for item in items if item.name == chosen), None)
    if picked is not None:
        select["initial_option"] = option(picked)
    return select


def declare_modal(
    catalog: Catalog,
    *,
    description: str,
    suggestion: Suggestion | None,
    declarer: str,
    channel_id: str,
    loading: bool,
    note: str = "",
    keep_suggestion: bool = True,
) -> dict[str, Any]:
    """The Quick Start modal; `loading` shows that suggestions are still being worked out.

    Each input holding a suggested value says in its hint whether the model or the heuristic
    suggested it. With `keep_suggestion` the suggestion's sources, model and endpoint travel in
    private_metadata, so the submission can record them (a value the person changed: "person").
    """
    s = suggestion
    sources = s.sources if s else {}
    type_name = s.type if s else catalog.incident_types[0].name
    itype = catalog.incident_type(type_name) or catalog.incident_types[0]
    if loading:
        status = "⏳ Suggesting fields from your description…"
    elif s is not None:
        by_model = any(v == "model" for v in s.sources.values())
        status = "✨ Fields suggested by " + (
            "the AI model" if by_model else "the built-in heuristic"
        )
        status += f". {s.note}" if s.note else ". Review and edit them, then declare."
    else:
        status = note or "Describe what is happening and fill in the fields."
    title = {"type": "plain_text_input", "action_id": "value", "max_length": 150}
    if s and s.title:
        title["initial_value"] = s.title[:150]
    desc = {"type": "plain_text_input", "action_id": "value", "multiline": True}
    if description:
        desc["initial_value"] = description
    type_select = {
        "type": "static_select",
        "action_id": TYPE_ACTION,
        "options": [_option(t.name, f"{t.name}: {t.description}") for t in catalog.incident_types],
        "initial_option": _option(itype.name, f"{itype.name}: {itype.description}"),
    }
    severity = _rank_select(catalog.severities, s.severity if s else itype.default_severity)
    priority = _rank_select(catalog.priorities, s.priority if s else itype.default_priority)
    commander = {"type": "users_select", "action_id": "value", "initial_user": declarer}

    def source(name: str, shown: bool) -> str | None:
        return sources.get(name) if shown else None

    blocks: list[Block] = [
        {"type": "context", "elements": [_mrkdwn(status, CONTEXT_TEXT_MAX)]},
        _input("title", "Title", title, hint=_hint("", source("title", "initial_value" in title))),
        _input("description", "What is happening?", desc),
        _input(
            "type",
            "Incident type",
            type_select,
            dispatch=True,
            hint=_hint("", source("type", s is not None)),
        ),
        _input(
            "severity",
            "Severity",
            severity,
            hint=_hint("", source("severity", "initial_option" in severity)),
        ),
        _input(
            "priority",
            "Priority",
            priority,
            hint=_hint("", source("priority", "initial_option" in priority)),
        ),
        _input("commander", "Commander", commander),
    ]
    values = s.custom_fields if s else {}
    for f in itype.fields:
        element = _field_element(f, values.get(f.name))
        shown = any(k.startswith("initial_") for k in element)
        blocks.append(
            _input(
                FIELD_BLOCK + f.name,
                f.display,
                element,
                optional=not f.required,
                hint=_hint(f.description, source(f.name, shown)),
            )
        )
    fields = [*TOP_FIELDS, *(f.name for f in itype.fields)]
    return {
        "type": "modal",
        "callback_id": DECLARE_CALLBACK,
        "title": _text("Declare incident", limit=MODAL_TITLE_MAX),
        "submit": _text("Declare", limit=MODAL_TITLE_MAX),
        "close": _text("Cancel", limit=MODAL_TITLE_MAX),
        "private_metadata": declare_metadata(channel_id, s if keep_suggestion else None, fields),
        "blocks": blocks,
    }


def key_event_modal(incident_number: int | None, channel_id: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": KEY_EVENT_CALLBACK,
        "title": _text("Add key event", limit=MODAL_TITLE_MAX),
        "submit": _text("Add", limit=MODAL_TITLE_MAX),
        "close": _text("Cancel", limit=MODAL_TITLE_MAX),
        "private_metadata": json.dumps({"incident": incident_number, "channel": channel_id}),
        "blocks": [
            _input(
                "text",
                "What happened?",
                {"type": "plain_text_input", "action_id": "value", "multiline": True},
            )
        ],
    }


def pick_incident_modal(
    options: list[tuple[int, str]], *, channel_id: str, ts: str, author_id: str
) -> dict[str, Any]:
    """For "Add to timeline" outside an incident channel: which incident is it for?

    Only where the message is travels in private_metadata (its text could be far longer than
    Slack's 3,000 characters there); the submission reads the message again.
    """
    carried = {"channel": channel_id, "ts": ts, "author": author_id}
    return {
        "type": "modal",
        "callback_id": TIMELINE_PICK_CALLBACK,
        "title": _text("Add to timeline", limit=MODAL_TITLE_MAX),
        "submit": _text("Add", limit=MODAL_TITLE_MAX),
        "close": _text("Cancel", limit=MODAL_TITLE_MAX),
        "private_metadata": _compact(carried),
        "blocks": [
            _input(
                "incident",
                "Incident",
                {
                    "type": "static_select",
                    "action_id": "value",
                    "options": [_option(str(n), f"#{n} {title}") for n, title in options],
                },
            )
        ],
    }


def initial_value(view: dict[str, Any], block_id: str) -> Any:
    """What an input block of `view` was opened with, in `state_value`'s terms (None: nothing)."""
    block = next((b for b in view.get("blocks", []) if b.get("block_id") == block_id), None)
    if block is None:
        return None
    element = block.get("element") or {}
    kind = element.get("type")
    if kind == "static_select":
        option = element.get("initial_option")
        return option["value"] if option else None
    if kind == "multi_static_select":
        return [o["value"] for o in element.get("initial_options") or []]
    if kind == "users_select":
        return element.get("initial_user")
    return element.get("initial_value")


def same_value(a: Any, b: Any) -> bool:
    """Equal as submitted values: every kind of empty is the same."""
    empty: tuple[Any, ...] = (None, "", [])
    if a in empty or b in empty:
        return a in empty and b in empty
    if isinstance(a, list) and isinstance(b, list):
        return sorted(map(str, a)) == sorted(map(str, b))
    return str(a).strip() == str(b).strip()


def state_value(state: dict[str, Any], block_id: str) -> Any:
    """The value a person gave in one input block of a submitted view (None when empty)."""
    block = state.get("values", {}).get(block_id, {})
    if not block:
        return None
    element = next(iter(block.values()))
    kind = element.get("type")
    if kind in ("plain_text_input", "number_input"):
        return element.get("value")
    if kind == "static_select":
        option = element.get("selected_option")
        return option["value"] if option else None
    if kind == "multi_static_select":
        return [o["value"] for o in element.get("selected_options") or []]
    if kind == "users_select":
        return element.get("selected_user")
    return element.get("value")
