"""Alert routes from the catalog: matchers, first match wins, groups, and the errors a broken
route gives at start-up."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.alerts import AlertEvent, group_key, route_for
from bot.catalog import AlertRoute, Catalog, CatalogError, load_catalog
from tests.conftest import Core
from tests.fakes.clock import FakeClock

ROUTES = [
    AlertRoute(name="db", match=['service=~"postgres|mysql"', "env!=staging"], mode="declare"),
    AlertRoute(name="noise", match=['alertname!~"Watchdog|InfoInhibitor"'], mode="ignore"),
    AlertRoute(name="watchdog", match=["alertname=Watchdog"], mode="ignore"),
]


def test_the_first_route_whose_matchers_all_hold_takes_the_alert() -> None:
    assert route_for(ROUTES, {"service": "postgres", "env": "prod"}) is ROUTES[0]
    # env!=staging fails, the next route matches any other alertname
    assert route_for(ROUTES, {"service": "postgres", "env": "staging"}) is ROUTES[1]
    assert route_for(ROUTES, {"alertname": "Watchdog"}) is ROUTES[2]
    # A regex matches the whole value, as Alertmanager's do.
    assert route_for(ROUTES, {"service": "postgres-replica", "alertname": "Watchdog"}) is ROUTES[2]
    assert route_for(ROUTES[:1], {"env": "prod"}) is None  # a missing label is ""


def test_a_group_is_the_route_and_its_group_by_labels() -> None:
    route = AlertRoute(name="urgent", group_by=["alertname", "service"])
    a = group_key(route, {"alertname": "HighErrorRate", "service": "checkout", "instance": "a"})
    b = group_key(route, {"alertname": "HighErrorRate", "service": "checkout", "instance": "b"})
    c = group_key(route, {"alertname": "HighErrorRate", "service": "search"})
    assert a == b == "urgent|alertname=HighErrorRate,service=checkout"
    assert c != a


def write(tmp_path: Path, routes: str) -> Path:
    base = (Path(__file__).resolve().parents[2] / "bot" / "opsroom.yaml").read_text()
    path = tmp_path / "opsroom.yaml"
    path.write_text(base + "\nalert_routes:\n" + routes)
    return path


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        ("  - match: ['severity~critical']\n", '"severity~critical" is not a matcher'),
        ("  - match: ['service=~\"(\"']\n", "bad regular expression"),
        ("  - mode: page\n", '"page" is not a mode: use declare, triage, ignore'),
        ("  - type: outages\n", 'alert_routes[0].type: "outages" is not one of outage'),
        ("  - severity: {critical: sev0}\n", 'alert_routes[0].severity.critical: "sev0"'),
        ("  - resolve_after: soon\n", "soon"),
        ("  - auto_resolve: closed\n", '"closed" is not a status to move to'),
        ("  - group_bi: [service]\n", 'unknown key (did you mean "group_by"?)'),
    ],
)
def test_a_broken_route_stops_start_up_naming_it(tmp_path: Path, routes: str, message: str) -> None:
    with pytest.raises(CatalogError) as error:
        load_catalog(write(tmp_path, routes))
    assert message in str(error.value)


def test_the_default_catalog_routes_urgent_alerts_to_declare(catalog: Catalog) -> None:
    names = [(r.name, r.mode) for r in catalog.routes]
    assert names == [("urgent", "declare"), ("everything-else", "triage")]
    assert route_for(catalog.routes, {"severity": "error"}).name == "urgent"  # type: ignore[union-attr]
    assert route_for(catalog.routes, {"severity": "warning"}).name == "everything-else"  # type: ignore[union-attr]


async def test_a_route_that_pages_starts_its_escalation_policy(core: Core) -> None:
    from bot.people import PersonSpec
    from bot.policies import EscalationPolicy

    policy = EscalationPolicy.model_validate(
        {"name": "database-oncall", "steps": [{"people": ["bob"], "after": "5m"}]})
    core.service.catalog = core.service.catalog.model_copy(update={
        "alert_routes": [AlertRoute(name="db", page="database-oncall")],
        "people": [PersonSpec(name="bob")],
        "escalation_policies": [policy],
    })
    event = AlertEvent(
        source="generic",
        fingerprint="disk-db-1",
        status="firing",
        summary="Disk 95% full on db-1",
        severity="critical",
        labels={"alertname": "DiskFull", "service": "database"},
    )
    [outcome] = await core.service.receive([event])
    assert outcome.incident == 1
    async with core.store.unit() as u:
        declared = (await u.timeline(1))[0]
        jobs = await u.pending_jobs(1)
    assert declared.data["page"] == "database-oncall"
    assert [j.kind for j in jobs if j.kind == "escalation_step"] == ["escalation_step"]


async def test_the_impact_starts_with_the_earliest_alert(core: Core, clock: FakeClock) -> None:
    def event(fingerprint: str, minutes_ago: int) -> AlertEvent:
        return AlertEvent(
            source="generic", fingerprint=fingerprint, status="firing",
            summary="Checkout is down", severity="critical",
            labels={"alertname": "CheckoutDown", "service": "checkout", "pod": fingerprint},
            starts_at=clock.now() - timedelta(minutes=minutes_ago),
        )

    await core.service.receive([event("p1", 10)])
    await core.service.receive([event("p2", 25)])  # joins #1, and started earlier
    await core.service.receive([event("p3", 5)])
    async with core.store.unit() as u:
        incident = await u.incident(1)
    assert incident is not None
    assert incident.impact_started_at == clock.now() - timedelta(minutes=25)
    assert incident.declared_at == clock.now()
