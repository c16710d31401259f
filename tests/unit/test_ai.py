"""The pure AI logic: the schema and prompt built from the catalog, checking a model's answer,
and catch-up prompts and citations."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from bot.ai import (
    CATCHUP_SYSTEM,
    SERVICES,
    ModelOutputError,
    PlainSummarizer,
    catchup_prompt,
    cited_ids,
    clean_citations,
    model_answer,
    parse_model_json,
    plain_catchup,
    response_format,
    suggestion_json,
    suggestion_schema,
    suggestion_text,
    system_prompt,
    user_prompt,
    validate_model_output,
)
from bot.catalog import Catalog
from bot.models import EntryKind, TimelineEntry
from bot.redact import Redactor
from bot.suggest import heuristic_suggestion

CHECKOUT = "checkout 500s in EU since the 14:05 deploy, card payments failing"


def _objects(schema: Any, path: str = "$") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema inside `schema`, with where it is."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(schema, dict):
        kind = schema.get("type")
        if kind == "object" or (isinstance(kind, list) and "object" in kind):
            found.append((path, schema))
        for key, value in schema.items():
            found += _objects(value, f"{path}.{key}")
    elif isinstance(schema, list):
        for i, value in enumerate(schema):
            found += _objects(value, f"{path}[{i}]")
    return found


# --- schema ---------------------------------------------------------------------------------


def test_schema_enums_are_the_catalog_names(catalog: Catalog) -> None:
    props = suggestion_schema(catalog)["properties"]
    assert props["incident_type"]["enum"] == catalog.type_names
    assert props["severity"]["enum"] == catalog.severity_names
    assert props["priority"]["enum"] == catalog.priority_names
    assert props["title"]["type"] == "string" and props["summary"]["type"] == "string"


def test_schema_is_strict_mode_compatible(catalog: Catalog) -> None:
    schema = suggestion_schema(catalog)
    objects = _objects(schema)
    assert len(objects) >= 2  # the root and custom_fields
    for path, obj in objects:
        assert obj["additionalProperties"] is False, path
        assert sorted(obj["required"]) == sorted(obj["properties"]), path
    fmt = response_format(catalog)
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True and fmt["json_schema"]["schema"] == schema


def test_custom_fields_are_the_union_of_every_types_fields_without_people(
    catalog: Catalog,
) -> None:
    custom = suggestion_schema(catalog)["properties"]["custom_fields"]["properties"]
    expected = {
        f.name for t in catalog.incident_types for f in t.fields if f.kind.value != "user"
    } - {SERVICES}
    assert set(custom) == expected
    assert "security_lead" not in custom  # a user field: the model never invents people
    assert custom["region"] == {
        "type": ["string", "null"],
        "enum": ["global", "eu", "us", "apac", None],
        "description": custom["region"]["description"],
    }
    assert "outage" in custom["region"]["description"]
    assert custom["customers_affected"]["type"] == ["number", "null"]
    assert custom["metric"]["type"] == ["string", "null"]
    assert custom["rolled_back"]["enum"] == ["yes", "no", "in progress", None]


def test_affected_services_is_a_top_level_list_of_the_catalog_choices(catalog: Catalog) -> None:
    services = suggestion_schema(catalog)["properties"][SERVICES]
    outage = catalog.incident_type("outage")
    assert outage is not None
    choices = next(f.choices for f in outage.fields if f.name == SERVICES)
    assert services["type"] == "array"
    assert services["items"] == {"type": "string", "enum": choices}


def test_a_multi_select_and_a_field_shared_with_different_kinds() -> None:
    catalog = Catalog.model_validate(
        {
            "severities": [{"name": "sev1", "description": "bad", "update_every": "1h"}],
            "priorities": [{"name": "p1"}],
            "roles": [{"name": "commander"}],
            "incident_types": [
                {
                    "name": "a",
                    "description": "A",
                    "default_severity": "sev1",
                    "default_priority": "p1",
                    "fields": [
                        {"name": "tags", "kind": "multi-select", "choices": ["x", "y"]},
                        {"name": "size", "kind": "number"},
                        {"name": "owner", "kind": "user"},
                    ],
                },
                {
                    "name": "b",
                    "description": "B",
                    "default_severity": "sev1",
                    "default_priority": "p1",
                    "fields": [
                        {"name": "tags", "kind": "multi-select", "choices": ["y", "z"]},
                        {"name": "size", "kind": "select", "choices": ["small", "large"]},
                    ],
                },
            ],
        }
    )
    schema = suggestion_schema(catalog)
    custom = schema["properties"]["custom_fields"]["properties"]
    assert set(custom) == {"tags", "size"}
    assert custom["tags"]["type"] == ["array", "null"]
    assert custom["tags"]["items"] == {"type": "string", "enum": ["x", "y", "z"]}
    assert custom["size"]["type"] == ["string", "null"]  # number in a, select in b
    assert schema["properties"][SERVICES]["items"] == {"type": "string"}


def test_system_prompt_explains_the_catalog(catalog: Catalog) -> None:
    prompt = system_prompt(catalog)
    for item in [*catalog.incident_types, *catalog.severities, *catalog.priorities]:
        assert item.name in prompt and item.description in prompt
    assert "json" in prompt.lower()
    assert "security_lead" not in prompt
    assert "Never name people" in prompt
    with_schema = system_prompt(catalog, schema_in_prompt=True)
    embedded = json.loads(with_schema.rsplit("\n", 1)[1])
    assert embedded == suggestion_schema(catalog)


def test_user_prompt_names_the_chosen_type() -> None:
    assert user_prompt("  db down ") == "Description:\ndb down"
    assert user_prompt("db down", "data").startswith("The person chose incident type data.")


# --- checking the model's answer --------------------------------------------------------------


def _answer(**overrides: Any) -> dict[str, Any]:
    answer: dict[str, Any] = {
        "title": "Checkout 500s in the EU",
        "summary": "Card payments fail at checkout for EU customers since the 14:05 deploy.",
        "incident_type": "outage",
        "severity": "sev2",
        "priority": "p1",
        SERVICES: ["checkout", "payments"],
        "custom_fields": {
            "region": "eu",
            "customers_affected": 1200,
            "metric": None,
            "attack_vector": None,
            "data_exposed": None,
            "datastore": None,
            "rows_affected": None,
            "change": None,
            "rolled_back": None,
            "provider": None,
            "component": None,
        },
    }
    custom = overrides.pop("custom_fields", {})
    answer.update(overrides)
    answer["custom_fields"] = {**answer["custom_fields"], **custom}
    return answer


def test_a_good_answer_fills_every_field_from_the_model(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    s = validate_model_output(_answer(), catalog, heuristic)
    assert (s.title, s.type, s.severity, s.priority) == (
        "Checkout 500s in the EU",
        "outage",
        "sev2",
        "p1",
    )
    assert s.summary.startswith("Card payments fail")
    assert s.custom_fields == {
        SERVICES: ["checkout", "payments"],
        "region": "eu",
        "customers_affected": 1200,
    }
    assert s.sources == {
        k: "model"
        for k in (
            "title",
            "summary",
            "type",
            "severity",
            "priority",
            SERVICES,
            "region",
            "customers_affected",
        )
    }
    assert s.note == ""


def test_values_outside_the_catalog_fall_back_to_the_heuristic(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    answer = _answer(
        incident_type="alien",
        severity="sev9",
        priority="P0",
        custom_fields={"region": "mars", "customers_affected": "lots"},
    )
    answer[SERVICES] = ["checkout", "teleporter"]
    s = validate_model_output(answer, catalog, heuristic)
    assert (s.type, s.severity, s.priority) == (
        heuristic.type,
        heuristic.severity,
        heuristic.priority,
    )
    assert s.sources["type"] == s.sources["severity"] == s.sources["priority"] == "heuristic"
    assert s.custom_fields["region"] == "eu"  # the heuristic read "EU" in the description
    assert s.sources["region"] == "heuristic"
    assert "customers_affected" not in s.custom_fields
    assert s.custom_fields[SERVICES] == ["checkout"]  # the known choice stays, from the model
    assert s.sources[SERVICES] == "model"
    for bad in (
        'type "alien"',
        'severity "sev9"',
        'priority "P0"',
        'region "mars"',
        'customers_affected "lots"',
        '"teleporter"',
    ):
        assert bad in s.note


def test_names_are_matched_without_case(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    s = validate_model_output(
        _answer(
            incident_type="Outage",
            severity="SEV1",
            priority="P1",
            custom_fields={"region": "EU", "customers_affected": "1,200"},
        ),
        catalog,
        heuristic,
    )
    assert (s.type, s.severity, s.priority) == ("outage", "sev1", "p1")
    assert s.custom_fields["region"] == "eu" and s.custom_fields["customers_affected"] == 1200


def test_fields_of_other_types_and_people_are_dropped(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion("payments down", None, catalog)
    answer = _answer(custom_fields={"datastore": "postgres", "provider": "aws"})
    answer["custom_fields"]["security_lead"] = "@mallory"
    s = validate_model_output(answer, catalog, heuristic)
    assert s.type == "outage"
    assert set(s.custom_fields) <= {f.name for f in catalog.incident_types[0].fields}
    assert "datastore" not in s.custom_fields and "provider" not in s.custom_fields
    assert "datastore (not a outage field)" in s.note

    security = heuristic_suggestion("leaked token", "security", catalog)
    answer = _answer(
        incident_type="security",
        custom_fields={"attack_vector": "phishing", "data_exposed": "none"},
    )
    answer["custom_fields"]["security_lead"] = "@mallory"
    s = validate_model_output(answer, catalog, security)
    assert s.custom_fields == {"attack_vector": "phishing", "data_exposed": "none"}
    assert "security_lead" not in s.sources
    assert "security_lead (a person)" in s.note


def test_a_type_the_person_chose_is_kept(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, "deploy", catalog)
    s = validate_model_output(
        _answer(custom_fields={"change": "release 4.12", "rolled_back": "in progress"}),
        catalog,
        heuristic,
    )
    assert s.type == "deploy" and s.sources["type"] == "person"
    assert s.custom_fields == {"change": "release 4.12", "rolled_back": "in progress"}
    assert "region" not in s.custom_fields


def test_missing_or_empty_values_use_the_heuristic_quietly(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    s = validate_model_output({"incident_type": "outage", "title": "  "}, catalog, heuristic)
    assert s.title == heuristic.title and s.sources["title"] == "heuristic"
    assert s.severity == heuristic.severity and s.sources["severity"] == "heuristic"
    assert s.custom_fields == heuristic.custom_fields
    assert s.sources["type"] == "model"
    assert 'title "  "' in s.note  # an empty title is not a title


def test_long_titles_are_cut(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    s = validate_model_output(_answer(title="x" * 300), catalog, heuristic)
    assert len(s.title) == 80 and s.title.endswith("…")


def test_an_answer_that_is_not_an_object_is_refused(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    with pytest.raises(ModelOutputError):
        validate_model_output(["outage"], catalog, heuristic)


def test_parse_model_json() -> None:
    assert parse_model_json('{"a": 1}') == {"a": 1}
    assert parse_model_json('```json\n{"a": 1}\n```') == {"a": 1}
    with pytest.raises(ModelOutputError, match="not valid JSON"):
        parse_model_json('{"title": "Checkout API returning 502s", "severity": "SEV')
    with pytest.raises(ModelOutputError, match="not a JSON object"):
        parse_model_json("[1, 2]")
    with pytest.raises(ModelOutputError):
        parse_model_json(None)


def test_model_answer_round_trips(catalog: Catalog) -> None:
    heuristic = heuristic_suggestion(CHECKOUT, None, catalog)
    answer = model_answer(heuristic, catalog)
    assert set(answer) == set(suggestion_schema(catalog)["properties"])
    assert set(answer["custom_fields"]) == set(
        suggestion_schema(catalog)["properties"]["custom_fields"]["properties"]
    )
    s = validate_model_output(answer, catalog, heuristic)
    assert (s.type, s.severity, s.priority, s.custom_fields) == (
        heuristic.type,
        heuristic.severity,
        heuristic.priority,
        heuristic.custom_fields,
    )
    assert set(s.sources.values()) == {"model"}


def test_suggestion_text_and_json(catalog: Catalog) -> None:
    s = heuristic_suggestion(CHECKOUT, None, catalog)
    assert suggestion_text(s).splitlines() == [
        "title              Checkout 500s in EU since the 14:05 deploy  (heuristic)",
        "type               outage  (heuristic)",
        "severity           sev2  (heuristic)",
        "priority           p2  (heuristic)",
        "affected_services  checkout, payments  (heuristic)",
        "region             eu  (heuristic)",
        f"summary            {CHECKOUT}  (heuristic)",
    ]
    noted = dataclasses.replace(s, note="Suggested by m at h")
    assert suggestion_text(noted).endswith("\nnote: Suggested by m at h")
    data = json.loads(suggestion_json(s))
    assert data["type"] == "outage" and data["sources"]["type"] == "heuristic"


# --- catch-up ---------------------------------------------------------------------------------

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


def _entry(
    id: int,
    text: str,
    *,
    minutes: int = 0,
    author: str = "alice",
    kind: EntryKind = EntryKind.MESSAGE,
    deleted: bool = False,
) -> TimelineEntry:
    return TimelineEntry(
        id=id,
        incident_id=1,
        kind=kind,
        text=text,
        author_name=author,
        occurred_at=T0 + timedelta(minutes=minutes),
        deleted=deleted,
    )


ENTRIES = [
    _entry(
        3, "Incident declared: Checkout 500s (outage, SEV2, P2)", author="", kind=EntryKind.SYSTEM
    ),
    _entry(7, "Rolled back deploy 4.12; errors dropping", minutes=12, kind=EntryKind.KEY_EVENT),
    _entry(5, "Seeing 502s from the payments gateway, mail bob@example.com", minutes=5),
    _entry(9, "oops wrong channel", minutes=13, deleted=True),
]


def test_catchup_prompt_lists_entries_with_their_ids() -> None:
    prompt = catchup_prompt(ENTRIES, Redactor().redact)
    assert prompt.splitlines() == [
        "Timeline (times in UTC):",
        "[e3] 14:00 Opsroom: Incident declared: Checkout 500s (outage, SEV2, P2)",
        "[e5] 14:05 alice: Seeing 502s from the payments gateway, mail [redacted-email]",
        "[e7] 14:12 alice (key event): Rolled back deploy 4.12; errors dropping",
    ]
    assert "[e12]" in CATCHUP_SYSTEM and "[#" not in CATCHUP_SYSTEM


def test_catchup_prompt_shows_dates_across_days() -> None:
    prompt = catchup_prompt([_entry(1, "a"), _entry(2, "b", minutes=60 * 24)])
    assert "[e2] 2026-11-26 14:00 alice: b" in prompt


def test_catchup_prompt_times_are_in_the_catalogs_zone() -> None:
    # 14:00 and 23:30 UTC are one day in UTC, two days in Tokyo (23:00, then 08:30 next day).
    prompt = catchup_prompt([_entry(1, "a"), _entry(2, "b", minutes=9 * 60 + 30)],
                            tz=ZoneInfo("Asia/Tokyo"))
    assert prompt.splitlines() == [
        "Timeline (times in Asia/Tokyo):",
        "[e1] 2026-11-25 23:00 alice: a",
        "[e2] 2026-11-26 08:30 alice: b",
    ]


def test_valid_citations_are_kept() -> None:
    text = "Checkout failed after a deploy [e3][e5]. It was rolled back [e7]."
    assert clean_citations(text, {3, 5, 7}) == (text, 0)
    assert cited_ids(text) == [3, 5, 7]


def test_citations_in_the_old_and_odd_forms_are_read_and_written_as_e_ids() -> None:
    # Models copy what they see, and older prompts said [#12]: every form means the entry.
    text = "Checkout failed [#3][E5]. Rolled back [#e7]. Monitoring [ e9 ]."
    assert cited_ids(text) == [3, 5, 7, 9]
    assert clean_citations(text, {3, 5, 7, 9}) == (
        "Checkout failed [e3][e5]. Rolled back [e7]. Monitoring [e9].", 0)
    assert cited_ids("see [12] and #4") == []  # a footnote or an incident is not an entry


def test_fabricated_citations_are_removed_and_counted() -> None:
    text = (
        "Checkout failed after a deploy [e3][e999]. The database was restored [e998]. "
        "It was rolled back [#7]."
    )
    cleaned, removed = clean_citations(text, {3, 5, 7})
    assert removed == 2
    assert cleaned == "Checkout failed after a deploy [e3]. It was rolled back [e7]."
    assert set(cited_ids(cleaned)) <= {3, 5, 7}


def test_grouped_citations_and_bullets() -> None:
    text = (
        "Status:\n- Payments errors began at 14:05 [e5, e42].\n"
        "- A fix was deployed [#41].\n- Rolled back at 14:12 [#7; #8]"
    )
    cleaned, removed = clean_citations(text, {5, 7})
    assert removed == 3
    assert cleaned == "Status:\n- Payments errors began at 14:05 [e5].\n- Rolled back at 14:12 [e7]"


def test_citation_after_the_full_stop() -> None:
    cleaned, removed = clean_citations("Deploy rolled back. [e7] Cause unknown. [e70]", {7})
    assert (cleaned, removed) == ("Deploy rolled back. [e7]", 1)


def test_plain_catchup_cites_the_latest_entry_of_every_kind() -> None:
    text = plain_catchup(ENTRIES)
    assert text.splitlines() == [
        "- 14:00 UTC ℹ️ Incident declared: Checkout 500s (outage, SEV2, P2) [e3]",
        "- 14:05 UTC 💬 alice: Seeing 502s from the payments gateway, mail bob@example.com [e5]",
        "- 14:12 UTC 📌 alice: Rolled back deploy 4.12; errors dropping [e7]",
    ]
    assert plain_catchup([]) == "Nothing on the timeline yet."
    only_notes = plain_catchup([_entry(1, "looking"), _entry(2, "still looking", minutes=1)])
    assert cited_ids(only_notes) == [1, 2]


def test_plain_catchup_keeps_every_kind_and_prefers_key_events() -> None:
    notes = [_entry(100 + i, f"note {i}", minutes=30 + i) for i in range(20)]
    old_key = _entry(2, "failover to the replica", minutes=1, kind=EntryKind.KEY_EVENT)
    old_status = _entry(4, "Status changed from triggered to investigating", minutes=2,
                        kind=EntryKind.STATUS_CHANGE)
    text = plain_catchup([old_key, old_status, *notes], limit=5)
    assert cited_ids(text) == [2, 4, 117, 118, 119]  # oldest first; the three newest notes


async def test_plain_summarizer_is_a_summarizer() -> None:
    text, removed = await PlainSummarizer().summarize(ENTRIES)
    assert (text, removed) == (plain_catchup(ENTRIES), 0)
