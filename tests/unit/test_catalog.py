"""The catalog: the default one, one from a file, and broken files that must say where and why."""

from __future__ import annotations

import copy
import functools
import os
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.catalog import Catalog, CatalogError, FieldKind, load_catalog
from bot.models import Status

DEFAULT_TEXT = resources.files("bot").joinpath("opsroom.yaml").read_text(encoding="utf-8")


@functools.cache
def _default_data() -> dict[str, Any]:
    data = yaml.safe_load(DEFAULT_TEXT)
    assert isinstance(data, dict)
    return data


def default_data() -> dict[str, Any]:
    """The default catalog as plain data, a fresh copy to break."""
    return copy.deepcopy(_default_data())


def write(tmp_path: Path, data: Any, name: str = "opsroom.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return path


# --- the default catalog ----------------------------------------------------------------------


def test_default_catalog_loads(catalog: Catalog) -> None:
    assert catalog.severity_names == ["sev1", "sev2", "sev3", "sev4"]
    assert catalog.priority_names == ["p1", "p2", "p3", "p4"]
    assert catalog.status_names == [s.value for s in Status if s is not Status.CANCELLED]
    assert {"commander", "scribe", "comms"} <= set(catalog.role_names)


def test_default_catalog_permissions_and_count_minimums(catalog: Catalog) -> None:
    everyone_default = ["commander", "declarer", "anyone-if-no-commander"]
    assert catalog.permissions.cancel == everyone_default
    assert catalog.permissions.type == everyone_default
    counts = [f for t in catalog.incident_types for f in t.fields if f.kind is FieldKind.NUMBER]
    assert {f.name for f in counts} == {"customers_affected", "rows_affected"}
    assert all(f.min == 0 for f in counts)


def test_default_incident_types_reference_real_names(catalog: Catalog) -> None:
    assert len(catalog.incident_types) >= 4
    for itype in catalog.incident_types:
        assert itype.default_severity in catalog.severity_names, itype.name
        assert itype.default_priority in catalog.priority_names, itype.name
        assert itype.description and itype.keywords, itype.name
        for field in itype.fields:
            if field.kind in (FieldKind.SELECT, FieldKind.MULTI_SELECT):
                assert field.choices, f"{itype.name}.{field.name}"
    assert {"outage", "security"} <= set(catalog.type_names)


def test_default_severities_have_update_cadences(catalog: Catalog) -> None:
    intervals = [s.update_interval for s in catalog.severities]
    assert intervals == [timedelta(minutes=30), timedelta(hours=1), timedelta(hours=4),
                         timedelta(days=1)]


def test_lookups(catalog: Catalog) -> None:
    outage = catalog.incident_type("outage")
    assert outage is not None
    region = outage.field("region")
    assert region is not None and region.kind is FieldKind.SELECT and "eu" in region.choices
    assert region.display == "Region"
    assert outage.field("nope") is None
    assert catalog.incident_type("nope") is None
    sev1 = catalog.severity("sev1")
    assert sev1 is not None and sev1.update_interval == timedelta(minutes=30)
    assert catalog.severity("sev9") is None


def test_the_default_is_what_load_catalog_gives_without_a_path() -> None:
    assert load_catalog() == load_catalog(None)


# --- a catalog from a file (what OPSROOM_CATALOG points to) -----------------------------------


def test_catalog_from_a_file_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = default_data()
    data["incident_types"].append({
        "name": "billing",
        "description": "Customers are charged wrongly.",
        "default_severity": "sev3",
        "default_priority": "p3",
        "keywords": ["invoice", "charged"],
        "fields": [{"name": "invoices", "kind": "number"}],
    })
    data["roles"].append({"name": "liaison", "description": "Talks to finance."})
    path = write(tmp_path, data, "custom.yaml")
    monkeypatch.setenv("OPSROOM_CATALOG", str(path))
    for given in (os.environ["OPSROOM_CATALOG"], Path(os.environ["OPSROOM_CATALOG"])):
        loaded = load_catalog(given)
        billing = loaded.incident_type("billing")
        assert billing is not None and billing.default_priority == "p3"
        field = billing.field("invoices")
        assert field is not None and field.kind is FieldKind.NUMBER
        assert "liaison" in loaded.role_names
    assert load_catalog().incident_type("billing") is None  # the default is untouched


def test_a_minimal_catalog_gets_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, """
severities:
  - {name: high, description: Bad, update_every: 15m}
priorities:
  - {name: now}
roles:
  - {name: commander}
incident_types:
  - {name: generic, description: Anything, default_severity: high, default_priority: now}
""")
    loaded = load_catalog(path)
    # "cancelled" is set by /incident cancel only: it is not among the statuses to pick.
    assert loaded.status_names == [s.value for s in Status if s is not Status.CANCELLED]
    assert loaded.permissions.cancel == ["commander", "declarer", "anyone-if-no-commander"]
    assert loaded.key_event_emoji == "pushpin"
    assert loaded.severities[0].update_interval == timedelta(minutes=15)


# --- broken catalogs ----------------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], Any]


def _set(path: tuple[str | int, ...], value: Any) -> Mutation:
    def mutate(data: dict[str, Any]) -> dict[str, Any]:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        return data
    return mutate


def _delete(path: tuple[str | int, ...]) -> Mutation:
    def mutate(data: dict[str, Any]) -> dict[str, Any]:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]
        return data
    return mutate


def _rename(path: tuple[str | int, ...], new: str) -> Mutation:
    def mutate(data: dict[str, Any]) -> dict[str, Any]:
        node: Any = data
        for key in path[:-1]:
            node = node[key]
        node[new] = node.pop(path[-1])
        return data
    return mutate


def _without_commander(data: dict[str, Any]) -> dict[str, Any]:
    data["roles"] = [r for r in data["roles"] if r["name"] != "commander"]
    return data


BROKEN: dict[str, tuple[Mutation, str]] = {
    # name: (how to break the default catalog, what the message must say after the file path)
    "top-level typo": (
        _rename(("severities",), "severites"),
        'severites: unknown key (did you mean "severities"?)'),
    "nested typo": (
        _rename(("severities", 0, "update_every"), "updte_every"),
        'severities[0] (sev1).updte_every: unknown key (did you mean "update_every"?)'),
    "field typo": (
        _rename(("incident_types", 0, "fields", 1, "choices"), "choises"),
        'incident_types[0] (outage).fields[1] (region).choises: unknown key '
        '(did you mean "choices"?)'),
    "select without choices": (
        _delete(("incident_types", 0, "fields", 1, "choices")),
        "incident_types[0] (outage).fields[1] (region): a select field needs choices"),
    "multi-select with empty choices": (
        _set(("incident_types", 0, "fields", 0, "choices"), []),
        "incident_types[0] (outage).fields[0] (affected_services): "
        "a multi-select field needs choices"),
    "text field with choices": (
        _set(("incident_types", 1, "fields", 1, "choices"), ["a", "b"]),
        "incident_types[1] (performance).fields[1] (metric): a text field takes no choices"),
    "bad kind": (
        _set(("incident_types", 0, "fields", 1, "kind"), "dropdown"),
        "incident_types[0] (outage).fields[1] (region).kind: Input should be 'text', 'number', "
        "'select', 'multi-select' or 'user'"),
    "duplicate severity": (
        _set(("severities", 1, "name"), "sev1"),
        'severities[1] (sev1): duplicate name "sev1"'),
    "duplicate type": (
        _set(("incident_types", 2, "name"), "outage"),
        'incident_types[2] (outage): duplicate name "outage"'),
    "default_severity not a severity": (
        _set(("incident_types", 1, "default_severity"), "sev9"),
        'incident_types[1] (performance).default_severity: "sev9" is not one of '
        "sev1, sev2, sev3, sev4"),
    "default_priority not a priority": (
        _set(("incident_types", 3, "default_priority"), "urgent"),
        'incident_types[3] (data).default_priority: "urgent" is not one of p1, p2, p3, p4'),
    "bad duration": (
        _set(("severities", 2, "update_every"), "soon"),
        'severities[2] (sev3).update_every: "soon" is not a duration like 30s, 5m, 1h30m or 1d'),
    "bad name": (
        _set(("roles", 1, "name"), "Scribe Person"),
        'roles[1] (Scribe Person).name: "Scribe Person" must be lowercase letters'),
    "missing required key": (
        _delete(("incident_types", 4, "description")),
        "incident_types[4] (deploy).description: Field required"),
    "unknown status": (
        _set(("statuses", 2, "name"), "pondering"),
        "statuses[2] (pondering).name: Input should be 'triggered'"),
    "no commander role": (_without_commander, 'roles: must include "commander"'),
    "empty priorities": (_set(("priorities",), []), "priorities: must not be empty"),
    "cancelled listed as a status": (
        _set(("statuses", 6, "name"), "cancelled"),
        "statuses[6] (cancelled): not a status to list; /incident cancel <reason> sets it"),
    "permission for an unknown role": (
        _set(("permissions", "cancel"), ["commander", "boss"]),
        'permissions.cancel[1]: "boss" is not a role, declarer, anyone or '
        "anyone-if-no-commander (roles: commander, scribe, comms, lead)"),
    "permission list empty": (
        _set(("permissions", "type"), []),
        "permissions.type: must name at least one who may, e.g. [commander]"),
    "permission typo": (
        _rename(("permissions", "cancel"), "cancle"),
        'permissions.cancle: unknown key (did you mean "cancel"?)'),
    "permission not a list": (
        _set(("permissions", "cancel"), "commander"),
        "permissions.cancel: Input should be a valid list"),
    "min on a select field": (
        _set(("incident_types", 0, "fields", 1, "min"), 0),
        "incident_types[0] (outage).fields[1] (region): min applies to number fields only, "
        "not to a select field"),
    "min not a number": (
        _set(("incident_types", 0, "fields", 2, "min"), "none"),
        "incident_types[0] (outage).fields[2] (customers_affected).min: Input should be a "
        "valid number"),
    "wrong type of value": (
        _set(("incident_types", 2, "private"), "sometimes"),
        "incident_types[2] (security).private: Input should be a valid boolean"),
}


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_broken_catalog_names_file_key_and_reason(tmp_path: Path, case: str) -> None:
    mutate, expected = BROKEN[case]
    path = write(tmp_path, mutate(default_data()))
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {expected}"), message
    assert "\n" not in message


def test_several_problems_are_counted(tmp_path: Path) -> None:
    data = default_data()
    data["severities"][0]["update_every"] = "soon"
    data["incident_types"][0]["fields"][1]["kind"] = "dropdown"
    path = write(tmp_path, data)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value).endswith("(and 1 more problem)")


def test_typo_is_named_rather_than_the_key_it_hides(tmp_path: Path) -> None:
    # The misspelt key also leaves "severities" missing: the typo is what to point at.
    data = default_data()
    data["severites"] = data.pop("severities")
    path = write(tmp_path, data)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert "severites" in str(err.value)
    assert "Field required" not in str(err.value)


def test_unknown_key_without_a_near_match_lists_the_allowed_ones(tmp_path: Path) -> None:
    data = default_data()
    data["priorities"][0]["colour"] = "red"
    path = write(tmp_path, data)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    expected = "priorities[0] (p1).colour: unknown key: use name, description"
    assert str(err.value) == f"{path}: {expected}"


@pytest.mark.parametrize(
    ("text", "line", "column"),
    [
        ("severities:\n  - name: sev1\n   description: [oops\n", 3, 4),
        ("roles: [commander\npriorities: []\n", 2, 11),
        ("severities:\n\t- name: sev1\n", 2, 1),
    ],
)
def test_invalid_yaml_names_line_and_column(
    tmp_path: Path, text: str, line: int, column: int
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line {line}, column {column}: "), message


@pytest.mark.parametrize("text", ["- severities\n- roles\n", "just a string\n", "", "42\n"])
def test_top_level_must_be_a_mapping(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value) == f"{path}: expected a mapping at the top level"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "opsroom.yaml"
    with pytest.raises(CatalogError) as err:
        load_catalog(path)
    assert str(err.value) == f"{path}: cannot read: No such file or directory"


def test_a_directory_is_not_a_catalog(tmp_path: Path) -> None:
    with pytest.raises(CatalogError) as err:
        load_catalog(tmp_path)
    assert str(err.value).startswith(f"{tmp_path}: cannot read: ")
