"""Alerts from monitoring, end to end: real-shaped payloads posted over HTTP to the real app,
the core on a real SQLite store, the fake clock and the job worker run by hand."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from bot.models import Alert, EntryKind, Incident, Status, TimelineEntry
from tests.adapters.alerts_support import (
    AlertRig,
    alert_rig,
    am_alert,
    am_payload,
    grafana_payload,
    pd_event,
)
from tests.conftest import BOB, Core

AM = "/alerts/alertmanager"


@pytest.fixture
async def rig(core: Core) -> AsyncIterator[AlertRig]:
    async with alert_rig(core) as r:
        yield r


def alerts_of(entries: list[TimelineEntry]) -> list[str]:
    return [e.text for e in entries if e.kind is EntryKind.ALERT]


async def test_a_critical_alert_declares_an_incident_without_a_commander(rig: AlertRig) -> None:
    now = rig.core.clock.now()
    response = await rig.post(AM, am_payload([am_alert(starts=now)]))
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ok", "received": 1, "new": 1, "incidents": [1]}
    [incident] = await rig.incidents()
    assert incident.title == "HighErrorRate on checkout"
    assert (incident.severity, incident.priority, incident.status) == (
        "sev1",
        "p1",
        Status.TRIGGERED,
    )
    assert incident.commander is None
    posted = rig.channel()
    assert any(
        t.startswith("ℹ️ Incident declared by Alertmanager: HighErrorRate on checkout (outage")
        for t in posted
    )
    # Whoever acknowledges becomes the commander.
    reply = await rig.core.run("#1 ack", actor=BOB)
    assert "you are its commander now" in reply.text
    [incident] = await rig.incidents()
    assert incident.commander == "@bob"


async def test_later_alerts_of_the_group_join_once_each_and_resends_only_count(
    rig: AlertRig,
) -> None:
    now = rig.core.clock.now()
    first = am_alert(starts=now, instance="checkout-a:8080")
    second = am_alert(starts=now, instance="checkout-b:8080")
    await rig.post(AM, am_payload([first]))
    rig.core.clock.advance(seconds=30)
    for _ in range(3):  # Alertmanager resends the whole group on every group_interval
        response = await rig.post(AM, am_payload([first, second]))
        assert response.status_code == 200
    assert len(await rig.incidents()) == 1
    firing = alerts_of(await rig.entries())
    assert firing == [
        "firing: HighErrorRate on checkout "
        "(instance=checkout-b:8080, job=checkout-api, namespace=prod, service=checkout)"
    ]
    rows = await rig.alert_rows()
    assert [(r.labels["instance"], r.count) for r in rows] == [
        ("checkout-a:8080", 4),
        ("checkout-b:8080", 3),
    ]
    assert sum(1 for t in rig.channel() if t.startswith("🔔 firing:")) == 1


async def test_an_alertmanager_ha_pair_sending_the_same_alert_makes_one_incident(
    rig: AlertRig,
) -> None:
    body = am_payload([am_alert(starts=rig.core.clock.now())])
    for _ in range(2):
        await rig.post(AM, body)
    assert len(await rig.incidents()) == 1
    assert [r.count for r in await rig.alert_rows()] == [2]
    assert alerts_of(await rig.entries()) == []


async def test_resolved_alerts_move_the_incident_to_monitoring_after_resolve_after(
    rig: AlertRig,
) -> None:
    start = rig.core.clock.now()
    await rig.post(AM, am_payload([am_alert(starts=start)]))
    rig.core.clock.advance(minutes=3)
    end = rig.core.clock.now()
    await rig.post(AM, am_payload([am_alert(starts=start, status="resolved", ends=end)]))
    assert any(t.startswith("🔔 resolved: HighErrorRate") for t in rig.channel())
    await rig.at(timedelta(minutes=4, seconds=59))
    [incident] = await rig.incidents()
    assert incident.status is Status.TRIGGERED  # not yet: 5 minutes must pass
    await rig.at(timedelta(seconds=2))
    [incident] = await rig.incidents()
    assert incident.status is Status.MONITORING
    assert any(
        "Status changed from triggered to monitoring: every alert resolved for 5m" in t
        for t in rig.channel()
    )
    reply = await rig.core.run("#1 alerts")
    assert reply.text.startswith("Alerts of #1 (0 firing of 1):")
    assert "[resolved] HighErrorRate on checkout" in reply.text


async def test_a_flapping_alert_keeps_one_incident_where_it_is(rig: AlertRig) -> None:
    clock = rig.core.clock
    for _ in range(3):
        start = clock.now()
        await rig.post(AM, am_payload([am_alert(starts=start)]))
        clock.advance(minutes=1)
        await rig.post(
            AM, am_payload([am_alert(starts=start, status="resolved", ends=clock.now())])
        )
        await rig.at(timedelta(minutes=2))  # fires again within resolve_after
    [incident] = await rig.incidents()
    assert incident.status is Status.TRIGGERED
    statuses = [e for e in await rig.entries() if e.kind is EntryKind.STATUS_CHANGE]
    assert statuses == []
    # Then it stays quiet: one move to monitoring, no ping-pong.
    await rig.at(timedelta(minutes=5))
    [incident] = await rig.incidents()
    assert incident.status is Status.MONITORING
    assert len([e for e in await rig.entries() if e.kind is EntryKind.STATUS_CHANGE]) == 1
    texts = alerts_of(await rig.entries())
    assert sum(t.startswith("firing:") for t in texts) == 2  # the 2nd and 3rd firing
    assert sum(t.startswith("resolved:") for t in texts) == 3


async def test_pagerduty_trigger_acknowledge_resolve_by_dedup_key(rig: AlertRig) -> None:
    response = await rig.post("/v2/enqueue", pd_event("trigger", "payments-p99"), token=None)
    assert response.status_code == 202
    assert response.json() == {
        "status": "success",
        "message": "Event processed",
        "dedup_key": "payments-p99",
    }
    [incident] = await rig.incidents()
    assert incident.title == "Payments API p99 above 2s in eu-west-1"
    # A retried trigger is the same alert.
    await rig.post("/alerts/pagerduty", pd_event("trigger", "payments-p99"), token=None)
    assert [r.count for r in await rig.alert_rows()] == [2]
    response = await rig.post("/v2/enqueue", pd_event("acknowledge", "payments-p99"), token=None)
    assert response.status_code == 202
    [incident] = await rig.incidents()
    assert incident.status is Status.ACKNOWLEDGED
    response = await rig.post("/v2/enqueue", pd_event("resolve", "payments-p99"), token=None)
    assert response.status_code == 202
    await rig.at(timedelta(minutes=5))
    [incident] = await rig.incidents()
    assert incident.status is Status.MONITORING
    # Once resolved, a trigger with the same dedup_key is a new alert.
    await rig.post("/v2/enqueue", pd_event("trigger", "payments-p99"), token=None)
    rows = await rig.alert_rows()
    assert [r.status for r in rows] == ["firing", "acknowledged", "resolved", "firing"]
    assert rows[3].starts_at > rows[0].starts_at
    assert rows[3].incident_id == rows[0].incident_id  # the group's incident is still open


async def test_grafana_alerts_declare_with_the_panel_link(rig: AlertRig) -> None:
    body = grafana_payload([am_alert(starts=rig.core.clock.now(), severity="error")])
    response = await rig.post("/alerts/grafana", body)
    assert response.status_code == 200, response.text
    [incident] = await rig.incidents()
    assert incident.severity == "sev2"
    assert any("https://grafana.example.com/d/checkout?viewPanel=2" in t for t in rig.channel())


async def test_warnings_go_to_triage_and_open_nothing(rig: AlertRig) -> None:
    body = am_payload([am_alert(starts=rig.core.clock.now(), severity="warning")])
    response = await rig.post(AM, body)
    assert response.json()["incidents"] == []
    assert await rig.incidents() == []
    [row] = await rig.alert_rows()
    assert (row.mode, row.route, row.incident_id) == ("triage", "everything-else", None)


async def test_a_hundred_alerts_of_one_group_make_one_incident(rig: AlertRig) -> None:
    now = rig.core.clock.now()
    alerts = [am_alert(starts=now, instance=f"checkout-{i}:8080") for i in range(100)]
    response = await rig.post(AM, am_payload(alerts))
    assert response.json()["new"] == 100
    assert len(await rig.incidents()) == 1
    assert len(rig.core.chat.channels) == 2  # general and the incident's
    reply = await rig.core.run("#1 alerts")
    assert reply.text.startswith("Alerts of #1 (100 firing of 100):")


async def test_five_hundred_groups_in_a_minute_open_one_storm_incident(rig: AlertRig) -> None:
    now = rig.core.clock.now()
    for batch in range(50):
        alerts = [
            am_alert(starts=now, alertname=f"Disk{batch % 5}", service=f"svc-{batch}-{i}")
            for i in range(10)
        ]
        rig.core.clock.advance(seconds=1)
        response = await rig.post(AM, am_payload(alerts))
        assert response.status_code == 200
    incidents = await rig.incidents()
    storms = [i for i in incidents if i.title == "Alert storm on route urgent"]
    assert len(storms) == 1
    assert len(incidents) == 11  # the ten under the threshold, then the storm
    assert len(rig.core.chat.channels) == 12  # with general
    before = len(rig.channel(storms[0].number))
    await rig.at(timedelta(minutes=1))
    digest = [t for t in rig.channel(storms[0].number) if t.startswith("🔔 storm digest:")]
    assert len(digest) == 1
    assert digest[0].startswith("🔔 storm digest: 490 alerts in 490 groups since 14:00 UTC:")
    assert "• Disk" in digest[0]
    messages = sum(len(c.messages) for c in rig.core.chat.channels.values())
    assert messages < 120, messages  # nothing like one message per alert
    assert len(rig.channel(storms[0].number)) <= before + 1


async def test_pinned_summary_shows_how_many_alerts_fire(rig: AlertRig) -> None:
    now = rig.core.clock.now()
    await rig.post(AM, am_payload([am_alert(starts=now, instance=f"c-{i}") for i in range(3)]))
    channel = rig.core.chat.by_name(rig.core.incident_channel(1))
    pinned = next(m for m in channel.messages if m.id in channel.pins)
    assert any(f.label == "Alerts firing" and f.value == "3" for f in pinned.message.fields)


async def count(rig: AlertRig, model: type[Alert] | type[Incident]) -> int:
    return await rig.count(model)
