"""The heuristic suggester: fields for a new incident from its description alone."""

from __future__ import annotations

import random
from typing import get_args

import pytest

from bot.catalog import Catalog, FieldKind
from bot.ports import FieldSource, Suggestion
from bot.suggest import TITLE_LIMIT, HeuristicSuggester, heuristic_suggestion, title_from

# --- title ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("description", "title"),
    [
        ("checkout is down for EU customers, 500s since 14:02",
         "Checkout is down for EU customers"),
        ("db down; failover started", "DB down"),
        ("payments failing - card auth timeouts", "Payments failing"),
        ("payments failing — card auth timeouts", "Payments failing"),
        ("everything is on fire! help", "Everything is on fire"),
        ("is the VPN down? nobody can connect", "Is the VPN down"),
        ("Disk full on db-3. Paging storage", "Disk full on db-3"),
        ("\n   disk full on db-3\nmore detail below", "Disk full on db-3"),
        # a full stop inside a word does not end the clause
        ("api.example.com returns 503 for everyone", "Api.example.com returns 503 for everyone"),
        ("release v2.3.1 broke login. Rolling back", "Release v2.3.1 broke login"),
        ("card-auth p99 at 4s", "Card-auth p99 at 4s"),
    ],
)
def test_title_is_the_first_clause_capitalised(description: str, title: str) -> None:
    assert title_from(description) == title


@pytest.mark.parametrize(
    ("description", "title"),
    [
        ("api errors in eu since 14:00", "API errors in EU since 14:00"),
        ("dns not resolving for sso and the cdn", "DNS not resolving for SSO and the CDN"),
        ("tls cert expired on the vpn", "TLS cert expired on the VPN"),
        ("ios app crashes on launch", "iOS app crashes on launch"),
        # as typed when not all lowercase; names that contain one are left alone
        ("Api and ApI and API", "Api and ApI and API"),
        ("apis in eu-west-1 and api.example.com", "APIs in eu-west-1 and api.example.com"),
        # "us" is a word before it is a region
        ("customers can't reach us", "Customers can't reach us"),
    ],
)
def test_title_keeps_acronyms_in_capitals(description: str, title: str) -> None:
    assert title_from(description) == title


def test_long_title_is_cut_at_a_word_within_60() -> None:
    description = ("the nightly billing export job has been failing for three days because the "
                   "warehouse credentials rotated")
    title = title_from(description)
    assert len(title) <= TITLE_LIMIT == 60
    assert title == "The nightly billing export job has been failing for three"
    assert description[len(title)] == " "  # ends on a whole word


def test_long_single_word_title_is_cut_at_60() -> None:
    title = title_from("x" * 80 + " is broken")
    assert title == "X" + "x" * 59


# --- realistic descriptions ---------------------------------------------------------------------

REALISTIC = [
    # description, type, severity, priority, fields
    ("Checkout is down for all customers, 502s from the API gateway",
     "outage", "sev1", "p1", {"affected_services": {"checkout", "api"}}),
    ("Payments failing with elevated 5xx in EU; card auth timeouts",
     "outage", "sev2", "p2", {"affected_services": {"payments", "auth"}, "region": "eu"}),
    ("Search is slow for some customers, p99 latency at 4s",
     "performance", "sev3", "p3", {"affected_services": {"search"}}),
    ("Leaked AWS credentials found in a public GitHub repo",
     "security", "sev1", "p1", {"attack_vector": "credentials"}),
    ("Duplicate rows in the orders table after the postgres migration",
     "data", "sev2", "p2", {"datastore": "postgres"}),
    ("DNS resolution failing in us-east, cloudflare reports issues",
     "infrastructure", "sev2", "p2", {"provider": "cloudflare"}),
    ("Rollout of version 41 needs a rollback", "deploy", "sev3", "p2", {}),
    ("typo on the internal dashboard", "outage", "sev4", "p4", {}),
]


@pytest.mark.parametrize(
    ("description", "type_", "severity", "priority", "fields"),
    REALISTIC, ids=[r[0][:30] for r in REALISTIC],
)
def test_realistic_descriptions(
    catalog: Catalog, description: str, type_: str, severity: str, priority: str,
    fields: dict[str, object],
) -> None:
    s = heuristic_suggestion(description, None, catalog)
    assert (s.type, s.severity, s.priority) == (type_, severity, priority)
    got = {k: set(v) if isinstance(v, list) else v for k, v in s.custom_fields.items()}
    assert got == fields
    assert s.summary == description
    assert s.title == title_from(description)


def test_sources_say_where_each_value_came_from(catalog: Catalog) -> None:
    s = heuristic_suggestion("Payments failing with elevated 5xx in EU", None, catalog)
    assert s.sources == {
        "title": "heuristic", "summary": "heuristic", "type": "heuristic",
        "severity": "heuristic", "priority": "heuristic",
        "affected_services": "heuristic", "region": "heuristic",
    }


def test_defaults_of_the_type_when_severity_has_no_keyword(catalog: Catalog) -> None:
    s = heuristic_suggestion("Duplicate rows in the orders table", None, catalog)
    data = catalog.incident_type("data")
    assert data is not None
    assert s.type == "data" and s.sources["type"] == "heuristic"
    assert (s.severity, s.priority) == (data.default_severity, data.default_priority)
    assert s.sources["severity"] == s.sources["priority"] == "default"


def test_nothing_recognised_gives_the_first_type_and_its_defaults(catalog: Catalog) -> None:
    s = heuristic_suggestion("something odd is happening", None, catalog)
    first = catalog.incident_types[0]
    assert (s.type, s.severity, s.priority) == (
        first.name, first.default_severity, first.default_priority)
    assert s.sources["type"] == s.sources["severity"] == s.sources["priority"] == "default"
    assert s.custom_fields == {}


# --- the type= hint ---------------------------------------------------------------------------


def test_type_hint_is_honoured_and_marked_person(catalog: Catalog) -> None:
    description = "Checkout is completely down for everyone in the EU"
    assert heuristic_suggestion(description, None, catalog).type == "outage"
    s = heuristic_suggestion(description, "data", catalog)
    assert s.type == "data" and s.sources["type"] == "person"
    # Fields come from the hinted type: "region" belongs to outage, not to data.
    assert "region" not in s.custom_fields
    assert s.severity == "sev1" and s.sources["severity"] == "heuristic"  # from the words


def test_type_hint_picks_that_types_fields(catalog: Catalog) -> None:
    s = heuristic_suggestion("phishing mail asked staff for their password", "security", catalog)
    assert s.type == "security" and s.sources["type"] == "person"
    assert s.custom_fields == {"attack_vector": "phishing"}
    assert s.sources["attack_vector"] == "heuristic"


def test_unknown_type_hint_falls_back_to_the_description(catalog: Catalog) -> None:
    s = heuristic_suggestion("Search is slow, p99 latency up", "nonsense", catalog)
    assert s.type == "performance" and s.sources["type"] == "heuristic"


async def test_the_suggester_port(catalog: Catalog) -> None:
    s = await HeuristicSuggester().suggest(
        description="TLS certificate for the CDN expired", type_hint=None, catalog=catalog)
    assert isinstance(s, Suggestion)
    assert s.type == "infrastructure"
    assert s == heuristic_suggestion("TLS certificate for the CDN expired", None, catalog)


# --- select fields from text ------------------------------------------------------------------


def test_multi_select_picks_every_choice_mentioned(catalog: Catalog) -> None:
    s = heuristic_suggestion(
        "API and web errors; search and mobile timing out", "outage", catalog)
    assert sorted(s.custom_fields["affected_services"]) == ["api", "mobile", "search", "web"]
    assert s.sources["affected_services"] == "heuristic"


def test_select_picks_one_choice(catalog: Catalog) -> None:
    s = heuristic_suggestion("outage in APAC", "outage", catalog)
    assert s.custom_fields["region"] == "apac"


def test_choices_match_whole_words_only(catalog: Catalog) -> None:
    s = heuristic_suggestion(
        "webhooks failing, authentication down for automobile dealers, usual latency, "
        "researchers see apis time out", "outage", catalog)
    assert "affected_services" not in s.custom_fields  # no web, auth, mobile, search or api
    assert "region" not in s.custom_fields  # "usual" is not "us"


def test_text_and_number_fields_are_not_guessed(catalog: Catalog) -> None:
    s = heuristic_suggestion("checkout p99 latency is 4s for 1200 customers", "performance",
                             catalog)
    assert "metric" not in s.custom_fields
    s = heuristic_suggestion("1200 customers cannot pay, checkout down", "outage", catalog)
    assert "customers_affected" not in s.custom_fields


# --- never a value outside the catalog --------------------------------------------------------

NOISE = ("the of and widget team customer some 42 since yesterday after tea ok nope hmm "
         "Ünïcödé 🔥 \"quoted\" 100% p99 eu-west-1 v2.3 api.example.com ??? -- ;;").split()


def _vocabulary(catalog: Catalog) -> list[str]:
    words = list(NOISE)
    for itype in catalog.incident_types:
        words += itype.keywords
        for f in itype.fields:
            words += f.choices
    for sev in catalog.severities:
        words += sev.keywords
    return words


def _check_within(catalog: Catalog, s: Suggestion) -> None:
    assert s.type in catalog.type_names
    assert s.severity in catalog.severity_names
    assert s.priority in catalog.priority_names
    itype = catalog.incident_type(s.type)
    assert itype is not None
    for name, value in s.custom_fields.items():
        field = itype.field(name)
        assert field is not None, name
        if field.kind is FieldKind.MULTI_SELECT:
            assert isinstance(value, list) and value and set(value) <= set(field.choices)
        else:
            assert field.kind is FieldKind.SELECT and value in field.choices
    assert set(s.sources.values()) <= set(get_args(FieldSource))
    assert {"title", "summary", "type", "severity", "priority"} <= set(s.sources)
    assert set(s.custom_fields) <= set(s.sources)
    assert len(s.title) <= TITLE_LIMIT


def test_random_descriptions_stay_within_the_catalog(catalog: Catalog) -> None:
    rng = random.Random(20261125)
    words = _vocabulary(catalog)
    hints = [None, None, None, *catalog.type_names, "nonsense"]
    for _ in range(300):
        description = " ".join(rng.choice(words) for _ in range(rng.randint(1, 25)))
        _check_within(catalog, heuristic_suggestion(description, rng.choice(hints), catalog))


def test_within_a_catalog_with_fewer_priorities_than_severities() -> None:
    small = Catalog.model_validate({
        "severities": [
            {"name": "critical", "description": "All down", "update_every": "15m",
             "keywords": ["down"]},
            {"name": "major", "description": "Broken", "update_every": "1h",
             "keywords": ["broken"]},
            {"name": "minor", "description": "Slow", "update_every": "4h", "keywords": ["slow"]},
            {"name": "trivial", "description": "Cosmetic", "update_every": "1d",
             "keywords": ["typo"]},
        ],
        "priorities": [{"name": "urgent"}, {"name": "later"}],
        "roles": [{"name": "commander"}],
        "incident_types": [
            {"name": "generic", "description": "Anything", "default_severity": "minor",
             "default_priority": "later",
             "fields": [{"name": "zone", "kind": "select", "choices": ["north", "south"]}]},
        ],
    })
    s = heuristic_suggestion("a typo in the footer, north side", None, small)
    assert (s.severity, s.priority) == ("trivial", "later")
    assert s.custom_fields == {"zone": "north"}
    s = heuristic_suggestion("everything is down", None, small)
    assert (s.severity, s.priority) == ("critical", "urgent")
    rng = random.Random(7)
    words = [*NOISE, "down", "broken", "slow", "typo", "north", "south"]
    for _ in range(100):
        description = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
        _check_within(small, heuristic_suggestion(description, None, small))
