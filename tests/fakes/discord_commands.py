"""Discord's validation of application commands, for the fake Discord's registration routes.

The limits, from https://discord.com/developers/docs/interactions/application-commands
(Application Command Naming, Application Command Structure, Option Structure, Option Choice
Structure, Registering a Command, Slash Commands, Subcommands and Subcommand Groups):

* ``CHAT_INPUT`` command and option names match
  ``^[-_'\\p{L}\\p{N}\\p{sc=Deva}\\p{sc=Thai}]{1,32}$`` and use the lowercase variant of every
  letter that has one; ``USER`` and ``MESSAGE`` command names are 1-32 characters of anything
  (mixed case, spaces).
* Descriptions of ``CHAT_INPUT`` commands and of every option: 1-100 characters.
* At most 25 options in a command, a subcommand group or a subcommand; at most 25 choices per
  option; a choice's name is 1-100 characters and a string value at most 100.
* Nesting: a command holds subcommands and groups, or value options, never both; a group holds
  only subcommands; a subcommand holds only value options (so groups go one level deep).
* Required options come before optional ones.
* A slash command's names, descriptions and choice names and values, the command's, its
  options', its subcommands' and groups', add up to at most 8000 characters (older versions of
  the page said 4000; the current one, and Discord's own error text, say 8000). Of localized
  fields only the longest variant counts.
* 100 ``CHAT_INPUT``, 5 ``USER`` and 5 ``MESSAGE`` commands per scope (global, or per guild).

Errors come back as Discord sends them: ``400 {"code": 50035, "message": "Invalid Form Body",
"errors": {...}}``, the ``errors`` object nested along the path of each bad field (array indexes
as string keys), each leaf an ``_errors`` list of ``{"code", "message"}``, every problem of the
request at once. The codes and messages for names, lengths, option and choice counts, required
order, mixed option types and the size are Discord's own, as its answers quoted in public bug
reports show; the rest (nesting, duplicate names, command count, malformed bodies) are this
fake's wording in the same style.
"""

from __future__ import annotations

import unicodedata
from typing import Any

JSON = dict[str, Any]

CHAT_INPUT, USER_COMMAND, MESSAGE_COMMAND = 1, 2, 3
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
OPTION_TYPES = range(1, 12)  # SUB_COMMAND .. ATTACHMENT
CHOICE_TYPES = {3, 4, 10}  # STRING, INTEGER, NUMBER

MAX_OPTIONS = 25
MAX_CHOICES = 25
MAX_NAME = 32
MAX_DESCRIPTION = 100
MAX_CHOICE_NAME = 100
MAX_CHOICE_VALUE = 100
MAX_COMMAND_SIZE = 8000
MAX_COMMANDS = {CHAT_INPUT: 100, USER_COMMAND: 5, MESSAGE_COMMAND: 5}
_KIND_NAMES = {CHAT_INPUT: "CHAT_INPUT", USER_COMMAND: "USER", MESSAGE_COMMAND: "MESSAGE"}

_NAME_PUNCTUATION = set("-_'")
# Devanagari and Thai, whose vowel signs are marks rather than letters, are allowed by script.
_SCRIPT_RANGES = ((0x0900, 0x097F), (0xA8E0, 0xA8FF), (0x0E00, 0x0E7F))


def _name_char(ch: str) -> bool:
    if ch in _NAME_PUNCTUATION or unicodedata.category(ch)[0] in "LN":
        return True
    return any(low <= ord(ch) <= high for low, high in _SCRIPT_RANGES)


def valid_chat_input_name(name: Any) -> bool:
    return (isinstance(name, str) and 1 <= len(name) <= MAX_NAME
            and all(_name_char(ch) for ch in name) and name == name.lower())


class FormErrors:
    """Discord's nested ``errors`` object, built one problem at a time."""

    def __init__(self) -> None:
        self.tree: JSON = {}

    def add(self, path: list[str | int], code: str, message: str) -> None:
        node = self.tree
        for key in path:
            node = node.setdefault(str(key), {})
        node.setdefault("_errors", []).append({"code": code, "message": message})

    def __bool__(self) -> bool:
        return bool(self.tree)

    def body(self) -> JSON:
        return {"message": "Invalid Form Body", "code": 50035, "errors": self.tree}


def _length(errors: FormErrors, path: list[str | int], value: Any, low: int, high: int) -> None:
    if not isinstance(value, str) or not low <= len(value) <= high:
        errors.add(path, "BASE_TYPE_BAD_LENGTH", f"Must be between {low} and {high} in length.")


def _longest(node: JSON, field: str) -> int:
    """Characters a field counts for: the longest of it and its localizations."""
    values = [node.get(field) or ""]
    values += list((node.get(f"{field}_localizations") or {}).values())
    return max(len(str(v)) for v in values)


def command_size(command: JSON) -> int:
    """The characters Discord counts against MAX_COMMAND_SIZE for one slash command."""

    def option_size(option: JSON) -> int:
        size = _longest(option, "name") + _longest(option, "description")
        for choice in option.get("choices") or []:
            size += _longest(choice, "name") + len(str(choice.get("value", "")))
        return size + sum(option_size(o) for o in option.get("options") or [])

    return option_size(command)


def _check_options(errors: FormErrors, path: list[str | int], options: Any,
                   parent: str) -> None:
    """`parent` is "command", "group" or "subcommand": what the options array belongs to."""
    if not isinstance(options, list):
        errors.add(path, "BASE_TYPE_ARRAY", "Must be an array.")
        return
    if len(options) > MAX_OPTIONS:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_OPTIONS} or fewer in length.")
    kinds = [o.get("type") if isinstance(o, dict) else None for o in options]
    nested = [k in (SUB_COMMAND, SUB_COMMAND_GROUP) for k in kinds]
    if parent == "command" and any(nested) and not all(nested):
        errors.add(path, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                   "Sub-command and sub-command group option types are mutually exclusive to "
                   "all other types")
    seen_optional = False
    for i, option in enumerate(options):
        here = [*path, i]
        if not isinstance(option, dict):
            errors.add(here, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
            continue
        kind = option.get("type")
        if kind not in OPTION_TYPES:
            allowed = ", ".join(str(t) for t in OPTION_TYPES)
            errors.add([*here, "type"], "BASE_TYPE_CHOICES", f"Value must be one of ({allowed}).")
            continue
        if not valid_chat_input_name(option.get("name")):
            errors.add([*here, "name"], "APPLICATION_COMMAND_INVALID_NAME",
                       "Command name is invalid")
        _length(errors, [*here, "description"], option.get("description"), 1, MAX_DESCRIPTION)
        if kind == SUB_COMMAND_GROUP and parent != "command":
            errors.add(here, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                       "Sub-command groups can only be options of a command (nesting is one "
                       "level deep)")
        elif kind == SUB_COMMAND and parent == "subcommand":
            errors.add(here, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                       "Sub-commands cannot contain sub-commands")
        elif kind != SUB_COMMAND and parent == "group":
            errors.add(here, "APPLICATION_COMMAND_OPTIONS_TYPE_INVALID",
                       "Sub-command groups can only contain sub-commands")
        if kind in (SUB_COMMAND, SUB_COMMAND_GROUP):
            if option.get("options") is not None:
                _check_options(errors, [*here, "options"], option["options"],
                               "group" if kind == SUB_COMMAND_GROUP else "subcommand")
            continue
        if option.get("required"):
            if seen_optional:
                errors.add(here, "APPLICATION_COMMAND_OPTIONS_REQUIRED_INVALID",
                           "Required options must be placed before non-required options")
        else:
            seen_optional = True
        choices = option.get("choices")
        if choices:
            _check_choices(errors, [*here, "choices"], choices, kind)


def _check_choices(errors: FormErrors, path: list[str | int], choices: Any, kind: int) -> None:
    if kind not in CHOICE_TYPES or not isinstance(choices, list):
        errors.add(path, "APPLICATION_COMMAND_OPTIONS_CHOICES_INVALID",
                   "Choices are only allowed on string, integer and number options")
        return
    if len(choices) > MAX_CHOICES:
        errors.add(path, "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CHOICES} or fewer in length.")
    for i, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        _length(errors, [*path, i, "name"], choice.get("name"), 1, MAX_CHOICE_NAME)
        value = choice.get("value")
        if isinstance(value, str) and len(value) > MAX_CHOICE_VALUE:
            errors.add([*path, i, "value"], "BASE_TYPE_MAX_LENGTH",
                       f"Must be {MAX_CHOICE_VALUE} or fewer in length.")


def check_command(errors: FormErrors, path: list[str | int], body: Any) -> None:
    """Every problem of one command body, recorded under `path` (its index in a bulk list)."""
    if not isinstance(body, dict):
        errors.add(path, "MODEL_TYPE_CONVERT", "Only dictionaries may be used in a ModelType")
        return
    kind = body.get("type", CHAT_INPUT)
    name = body.get("name")
    if not name:
        errors.add([*path, "name"], "BASE_TYPE_REQUIRED", "This field is required")
    elif kind == CHAT_INPUT and not valid_chat_input_name(name):
        errors.add([*path, "name"], "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    elif not isinstance(name, str) or len(name) > MAX_NAME:
        errors.add([*path, "name"], "BASE_TYPE_BAD_LENGTH",
                   f"Must be between 1 and {MAX_NAME} in length.")
    if kind != CHAT_INPUT:
        return
    _length(errors, [*path, "description"], body.get("description"), 1, MAX_DESCRIPTION)
    if body.get("options") is not None:
        _check_options(errors, [*path, "options"], body["options"], "command")
    if command_size(body) > MAX_COMMAND_SIZE:
        errors.add(path, "APPLICATION_COMMAND_TOO_LARGE",
                   f"Command exceeds maximum size ({MAX_COMMAND_SIZE})")


def check_bulk(bodies: Any) -> FormErrors:
    """A bulk overwrite (PUT .../commands): each command, unique names, the count per type."""
    errors = FormErrors()
    if not isinstance(bodies, list):
        errors.add([], "BASE_TYPE_ARRAY", "Must be an array.")
        return errors
    seen: set[tuple[Any, Any]] = set()
    counts: dict[Any, int] = {}
    for index, body in enumerate(bodies):
        check_command(errors, [index], body)
        if not isinstance(body, dict):
            continue
        key = (body.get("type", CHAT_INPUT), body.get("name"))
        if key in seen:
            errors.add([index, "name"], "APPLICATION_COMMANDS_DUPLICATE_NAME",
                       "Application command names must be unique")
        seen.add(key)
        counts[key[0]] = counts.get(key[0], 0) + 1
    for kind, limit in MAX_COMMANDS.items():
        if counts.get(kind, 0) > limit:
            errors.add([], "BASE_TYPE_MAX_LENGTH",
                       f"Must be {limit} or fewer {_KIND_NAMES[kind]} commands.")
    return errors


def check_one(body: Any) -> FormErrors:
    """One command (POST .../commands)."""
    errors = FormErrors()
    check_command(errors, [], body)
    return errors
