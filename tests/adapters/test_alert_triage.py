"""Triage-mode alerts (bot/triage.py): posted once to the triage channel with Declare, Attach to
#n and Ignore; decided by command (or button) once; the post edited to say what was decided.
Real-shaped payloads over HTTP to the real app, the core on a real store, the fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.commands import AlertAttach, AlertDeclare, AlertIgnore, button_command
from bot.models import EntryKind, Status
from tests.adapters.alerts_support import AlertRig, alert_rig, am_alert, am_payload
from tests.conftest import BOB, Core, build_core
from tests.fakes.chat import Posted
from tests.fakes.clock import FakeClock

AM = "/alerts/alertmanager"


@pytest.fixture
async def rig(core: Core) -> AsyncIterator[AlertRig]:
    async with alert_rig(core) as r:
        yield r


def warning(rig: AlertRig, **kw: Any) -> dict[str, Any]:
    return am_alert(**{"starts": rig.core.clock.now(), "severity": "warning",
                       "alertname": "DiskFilling", **kw})


def triage_posts(rig: AlertRig) -> list[Posted]:
    return [m for m in rig.core.chat.by_name("general").messages
            if (m.message.title or "").startswith("🔔")]


async def test_a_warning_is_posted_once_with_its_buttons_and_resends_only_count(
    rig: AlertRig,
) -> None:
    first = warning(rig, instance="db-1:9100")
    for _ in range(3):  # Alertmanager resends the group on every group_interval
        response = await rig.post(AM, am_payload([first]))
        assert response.json()["incidents"] == []
    rig.core.clock.advance(seconds=30)
    # Another alert of the same group while the decision waits: no second post.
    await rig.post(AM, am_payload([first, warning(rig, instance="db-2:9100")]))
    general = rig.core.chat.by_name("general").messages
    assert len(general) == 1
    [post] = general
    assert post.text.startswith("🔔 Alert 1 needs triage: DiskFilling on checkout\n"
                                "Severity: warning · Source: Alertmanager")
    assert "Labels: alertname=DiskFilling, service=checkout, instance=db-1:9100" in post.text
    assert post.text.endswith("Decide: /incident alerts declare 1 | /incident alerts attach 1 "
                              "#<n> | /incident alerts ignore 1")
    # No incident is open: no Attach buttons.
    assert [(b.label, b.action, b.value, b.style) for b in post.message.buttons] == [
        ("Declare", "triage_declare", "1", "primary"),
        ("Ignore", "triage_ignore", "1", None),
    ]
    rows = await rig.alert_rows()
    assert [(r.count, r.triage, r.triage_of) for r in rows] == [
        (4, "pending", None), (1, "pending", 1)]
    listing = await rig.core.run("alerts triage")
    assert listing.text.splitlines()[0] == "Alerts waiting for triage (1):"
    assert "• alert 1 [warning] DiskFilling on checkout" in listing.text
    assert "received 4× · first 30s ago · +1 more of its group" in listing.text


async def test_attach_buttons_name_the_latest_open_incidents(rig: AlertRig) -> None:
    for i in range(4):
        await rig.post(AM, am_payload([am_alert(starts=rig.core.clock.now(),
                                                service=f"svc{i}")]))  # critical: declares
    await rig.core.run("#4 cancel a test alert, not an incident")
    await rig.post(AM, am_payload([warning(rig)]))
    [post] = triage_posts(rig)
    assert [b.label for b in post.message.buttons] == [
        "Declare", "Attach to #3", "Attach to #2", "Attach to #1", "Ignore"]
    assert [b.value for b in post.message.buttons][1:4] == ["5:3", "5:2", "5:1"]
    assert "/incident alerts attach 5 #3" in post.text


async def test_declare_opens_an_incident_the_group_then_joins(rig: AlertRig) -> None:
    await rig.post(AM, am_payload([warning(rig, instance="db-1:9100")]))
    await rig.post(AM, am_payload([warning(rig, instance="db-2:9100")]))  # waits with it
    reply = await rig.core.run("alert declare 1", actor=BOB)
    assert reply.ok, reply.text
    assert reply.text.startswith("Declared #1 from alert 1: DiskFilling on checkout (sev3)")
    [incident] = await rig.incidents()
    assert (incident.severity, incident.status, incident.commander) == (
        "sev3", Status.TRIGGERED, None)
    assert incident.declared_by == "@bob"
    assert any(t.startswith("ℹ️ Incident declared by bob: DiskFilling on checkout")
               for t in rig.channel())
    [post] = triage_posts(rig)
    assert post.edits == 1 and post.message.buttons == ()
    assert post.text.startswith("🔔 DiskFilling on checkout: Alert 1 declared as #1 by @bob "
                                "(with 1 more alert of its group).")
    firing = [e.text for e in await rig.entries() if e.kind is EntryKind.ALERT]
    assert len(firing) == 1 and "instance=db-2:9100" in firing[0]
    # A later alert of the group joins #1; no new triage post.
    await rig.post(AM, am_payload([warning(rig, instance="db-3:9100")]))
    assert len(triage_posts(rig)) == 1
    assert sum("instance=db-3:9100" in e.text for e in await rig.entries()) == 1
    # A second decision changes nothing and says who decided.
    again = await rig.core.run("alerts ignore 2")
    assert not again.ok
    assert again.text == "Alert 1 was already declared as #1 by @bob; nothing changed."
    assert len(await rig.incidents()) == 1
    # Its resolutions count for #1.
    start = rig.core.clock.now()
    for instance in ("db-1:9100", "db-2:9100", "db-3:9100"):
        await rig.post(AM, am_payload([am_alert(starts=start, severity="warning",
                                                alertname="DiskFilling", instance=instance,
                                                status="resolved", ends=start)]))
    await rig.at(timedelta(minutes=5, seconds=1))
    [incident] = await rig.incidents()
    assert incident.status is Status.MONITORING


async def test_attach_adds_the_alert_to_the_incident_and_a_closed_one_is_refused(
    rig: AlertRig,
) -> None:
    await rig.core.run("declare checkout is slow")
    await rig.core.run("declare type=outage payments are down")
    await rig.core.run("#2 cancel declared by mistake")
    await rig.post(AM, am_payload([warning(rig)]))
    [post] = triage_posts(rig)
    assert [b.label for b in post.message.buttons] == ["Declare", "Attach to #1", "Ignore"]
    refused = await rig.core.run("alerts attach 1 #2")
    assert not refused.ok
    assert refused.text == ("#2 is cancelled: attach alert 1 to an open incident, or declare "
                            "one: /incident alerts declare 1")
    nowhere = await rig.core.run("alerts attach 1")
    assert not nowhere.ok and nowhere.text == "which incident? /incident alerts attach 1 #<n>"
    reply = await rig.core.run("alerts attach 1 #1")
    assert reply.text == "Attached alert 1 to #1: Checkout is slow."
    assert any(t.startswith("🔔 firing: DiskFilling on checkout (") and
               "(attached from triage by @alice)" in t for t in rig.channel())
    assert post.text.startswith("🔔 DiskFilling on checkout: Alert 1 attached to #1 by @alice.")
    rows = await rig.alert_rows()
    [incident] = [i for i in await rig.incidents() if i.number == 1]
    assert [(r.triage, r.incident_id) for r in rows] == [("attached", incident.id)]
    # Inside #1's channel the incident is implied.
    await rig.post(AM, am_payload([warning(rig, alertname="InodesLow")]))
    here = rig.core.where(rig.core.incident_channel(1))
    implied = await rig.core.run("alerts attach 2", where=here)
    assert implied.text.startswith("Attached alert 2 to #1")


async def test_ignore_keeps_the_group_quiet_while_it_fires(rig: AlertRig) -> None:
    start = rig.core.clock.now()
    await rig.post(AM, am_payload([warning(rig, instance="db-1:9100")]))
    reply = await rig.core.run("alerts ignore 1")
    assert reply.text == "Ignored alert 1; new alerts of its group stay quiet while it fires."
    [post] = triage_posts(rig)
    assert post.message.buttons == ()
    assert post.text.startswith("🔔 DiskFilling on checkout: Alert 1 ignored by @alice; its "
                                "group stays quiet while it fires.")
    await rig.post(AM, am_payload([warning(rig, instance="db-2:9100")]))
    assert len(triage_posts(rig)) == 1
    assert [r.triage for r in await rig.alert_rows()] == ["ignored", "ignored"]
    # Once the group stopped firing, a new firing is a new question.
    rig.core.clock.advance(minutes=1)
    for instance in ("db-1:9100", "db-2:9100"):
        await rig.post(AM, am_payload([am_alert(starts=start, severity="warning",
                                                alertname="DiskFilling", instance=instance,
                                                status="resolved", ends=rig.core.clock.now())]))
    rig.core.clock.advance(minutes=1)
    await rig.post(AM, am_payload([warning(rig, instance="db-1:9100")]))
    posts = triage_posts(rig)
    assert len(posts) == 2 and posts[1].text.startswith("🔔 Alert 5 needs triage")
    assert await rig.incidents() == []


async def test_unknown_and_not_triage_alerts_are_refused_and_nothing_changes(
    rig: AlertRig,
) -> None:
    await rig.post(AM, am_payload([am_alert(starts=rig.core.clock.now())]))  # declares #1
    unknown = await rig.core.run("alerts declare 99")
    assert not unknown.ok
    assert unknown.text == "no alert 99: /incident alerts triage lists the alerts waiting"
    not_triage = await rig.core.run("alerts ignore 1")
    assert not not_triage.ok
    assert not_triage.text == "alert 1 is not waiting for triage (route urgent, mode declare)"
    assert len(await rig.incidents()) == 1
    assert (await rig.core.run("alerts triage")).text == "No alerts wait for triage."
    for text, usage in [("alerts declare", "missing alert number"),
                        ("alerts declare x", '"x" is not a number'),
                        ("alerts attach 1 2", '"2" is not an incident number (write #42)'),
                        ("alerts ignore 1 2", 'unexpected "2"'),
                        ("alerts shout 1", 'unknown alerts command "shout"')]:
        reply = await rig.core.run(text)
        assert not reply.ok and reply.text.startswith(usage), (text, reply.text)


async def test_more_new_groups_than_the_storm_threshold_post_one_note_a_minute(
    rig: AlertRig,
) -> None:
    alerts = [warning(rig, service=f"svc{i}") for i in range(14)]
    await rig.post(AM, am_payload(alerts))
    texts = rig.core.chat.texts("general")
    assert sum(t.startswith("🔔 Alert ") for t in texts) == 10  # storm_threshold
    assert [t for t in texts if t.startswith("🔔 More than")] == [
        "🔔 More than 10 new alert groups in a minute on route everything-else: the rest of "
        "this minute's wait without a post each. /incident alerts triage lists them."]
    listing = await rig.core.run("alerts triage")
    assert listing.text.splitlines()[0] == "Alerts waiting for triage (14):"
    # One of those without a post is decided all the same.
    assert (await rig.core.run("alerts ignore 14")).ok


def test_triage_buttons_are_commands() -> None:
    assert button_command("triage_declare", "17") == AlertDeclare(alert=17)
    assert button_command("triage_attach", "17:3") == AlertAttach(alert=17, incident=3)
    assert button_command("triage_ignore", "17") == AlertIgnore(alert=17)
    assert button_command("triage_attach", "17") is None
    assert button_command("triage_declare", "17:3") is None
    assert button_command("triage_declare", "x") is None


async def test_the_triage_queries_on_each_backend(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    core = build_core(any_engine, catalog, clock)
    async with alert_rig(core) as r:
        await r.post(AM, am_payload([warning(r, instance="db-1:9100")]))
        await r.post(AM, am_payload([warning(r, instance="db-2:9100")]))
        await r.post(AM, am_payload([warning(r, alertname="InodesLow")]))
        listing = await core.run("alerts triage")
        assert listing.text.splitlines()[0] == "Alerts waiting for triage (2):"
        assert "+1 more of its group" in listing.text
        assert (await core.run("alerts ignore 2")).text.startswith("Ignored alert 1 and 1 more")
        await r.post(AM, am_payload([warning(r, instance="db-3:9100")]))  # quiet: ignored
        declared = await core.run("alerts declare 3")
        assert declared.text.startswith("Declared #1 from alert 3")
        refused = await core.run("alerts attach 3 #1")
        assert refused.text == "Alert 3 was already declared as #1 by @alice; nothing changed."
        rows = await r.alert_rows()
        assert [(a.id, a.triage, a.triage_of) for a in rows] == [
            (1, "ignored", None), (2, "ignored", 1), (3, "declared", None), (4, "ignored", 1)]
        assert [m.edits for m in core.chat.by_name("general").messages
                if (m.message.title or "").startswith("🔔")] == [1, 1]
