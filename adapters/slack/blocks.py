"""Block Kit: platform-neutral messages as Slack blocks, and the Quick Start modal."""

from __future__ import annotations

import json
from typing import Any

from bot.catalog import Catalog, CustomField, FieldKind
from bot.ports import Suggestion
from bot.render import Message

ACTION_PREFIX = "opsroom_"
DECLARE_CALLBACK = "opsroom_declare"
KEY_EVENT_CALLBACK = "opsroom_key_event"
TIMELINE_PICK_CALLBACK = "opsroom_add_to_timeline"
TYPE_ACTION = "opsroom_declare_type"
FIELD_BLOCK = "cf:"

Block = dict[str, Any]


def _text(text: str, kind: str = "plain_text") -> dict[str, Any]:
    return {"type": kind, "text": text[:3000] if kind == "mrkdwn" else text[:150]}


def message_blocks(message: Message) -> list[Block]:
    """Blocks for a message; empty for a plain one (its text is all there is to show)."""
    if not (message.title or message.fields or message.buttons or message.context):
        return []
    blocks: list[Block] = []
    if message.title:
        blocks.append({"type": "header", "text": _text(message.title)})
    fields = [_text(f"*{f.label}*\n{f.value}", "mrkdwn") for f in message.fields]
    for i in range(0, len(fields), 10):  # Slack allows 10 fields per section
        blocks.append({"type": "section", "fields": fields[i : i + 10]})
    for section in message.sections or (() if message.title else (message.text,)):
        blocks.append({"type": "section", "text": _text(section, "mrkdwn")})
    if message.buttons:
        elements = []
        for b in message.buttons:
            button: dict[str, Any] = {
                "type": "button",
                "text": _text(b.label),
                "action_id": ACTION_PREFIX + b.action,
                "value": b.value,
            }
            if b.style:
                button["style"] = b.style
            elements.append(button)
        blocks.append({"type": "actions", "elements": elements})
    if message.context:
        blocks.append({"type": "context", "elements": [_text(message.context, "mrkdwn")]})
    return blocks


def _option(value: str, label: str | None = None) -> dict[str, Any]:
    return {"text": _text(label or value), "value": value}


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
        "label": _text(label),
        "element": element,
        "optional": optional,
    }
    if dispatch:
        block["dispatch_action"] = True
    if hint:
        block["hint"] = _text(hint)
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


def declare_modal(
    catalog: Catalog,
    *,
    description: str,
    suggestion: Suggestion | None,
    declarer: str,
    channel_id: str,
    loading: bool,
    note: str = "",
) -> dict[str, Any]:
    """The Quick Start modal; `loading` shows that suggestions are still being worked out."""
    s = suggestion
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
        title["initial_value"] = s.title
    desc = {"type": "plain_text_input", "action_id": "value", "multiline": True}
    if description:
        desc["initial_value"] = description
    type_select = {
        "type": "static_select",
        "action_id": TYPE_ACTION,
        "options": [
            _option(t.name, f"{t.name}: {t.description}"[:75]) for t in catalog.incident_types
        ],
        "initial_option": _option(itype.name, f"{itype.name}: {itype.description}"[:75]),
    }
    severity = {
        "type": "static_select",
        "action_id": "value",
        "options": [
            _option(x.name, f"{x.name.upper()}: {x.description}"[:75]) for x in catalog.severities
        ],
    }
    sev_name = s.severity if s else itype.default_severity
    sev = catalog.severity(sev_name)
    if sev is not None:
        severity["initial_option"] = _option(
            sev.name, f"{sev.name.upper()}: {sev.description}"[:75]
        )
    priority = {
        "type": "static_select",
        "action_id": "value",
        "options": [
            _option(p.name, f"{p.name.upper()}: {p.description}"[:75]) for p in catalog.priorities
        ],
    }
    pri_name = s.priority if s else itype.default_priority
    pri = next((p for p in catalog.priorities if p.name == pri_name), None)
    if pri is not None:
        priority["initial_option"] = _option(
            pri.name, f"{pri.name.upper()}: {pri.description}"[:75]
        )
    commander = {"type": "users_select", "action_id": "value", "initial_user": declarer}

    blocks: list[Block] = [
        {"type": "context", "elements": [_text(status, "mrkdwn")]},
        _input("title", "Title", title),
        _input("description", "What is happening?", desc),
        _input("type", "Incident type", type_select, dispatch=True),
        _input("severity", "Severity", severity),
        _input("priority", "Priority", priority),
        _input("commander", "Commander", commander),
    ]
    values = s.custom_fields if s else {}
    for f in itype.fields:
        blocks.append(
            _input(
                FIELD_BLOCK + f.name,
                f.display,
                _field_element(f, values.get(f.name)),
                optional=not f.required,
                hint=f.description,
            )
        )
    return {
        "type": "modal",
        "callback_id": DECLARE_CALLBACK,
        "title": _text("Declare incident"),
        "submit": _text("Declare"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"channel": channel_id}),
        "blocks": blocks,
    }


def key_event_modal(incident_number: int | None, channel_id: str) -> dict[str, Any]:
    return {
        "type": "modal",
        "callback_id": KEY_EVENT_CALLBACK,
        "title": _text("Add key event"),
        "submit": _text("Add"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"incident": incident_number, "channel": channel_id}),
        "blocks": [
            _input(
                "text",
                "What happened?",
                {"type": "plain_text_input", "action_id": "value", "multiline": True},
            )
        ],
    }


def pick_incident_modal(options: list[tuple[int, str]], message: dict[str, Any]) -> dict[str, Any]:
    """For "Add to timeline" outside an incident channel: which incident is it for?"""
    return {
        "type": "modal",
        "callback_id": TIMELINE_PICK_CALLBACK,
        "title": _text("Add to timeline"),
        "submit": _text("Add"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps(message),
        "blocks": [
            _input(
                "incident",
                "Incident",
                {
                    "type": "static_select",
                    "action_id": "value",
                    "options": [_option(str(n), f"#{n} {title}"[:75]) for n, title in options],
                },
            )
        ],
    }


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
