"""Triage buttons on Slack and Discord, end to end: an Alertmanager payload posted over HTTP to
the real app puts a post with Declare / Attach to #n / Ignore in the platform's triage channel;
a press (a signed block_actions body to Slack's endpoint, an interaction from the fake Discord's
gateway) decides it, and the post is edited to say so, without buttons."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx

from adapters.alerts_http import AlertAuth
from adapters.http import Readiness, create_app
from bot.catalog import Catalog
from bot.models import Alert, Incident, Status
from bot.service import IncidentService
from storage.store import SqlStore
from tests.adapters.alerts_support import TOKEN, am_alert, am_payload
from tests.adapters.discord_harness import buttons, discord_rig, text_of
from tests.adapters.slack_harness import serve, slack_rig
from tests.fakes import slack as fs

AM = "/alerts/alertmanager"


@asynccontextmanager
async def alert_endpoint(service: IncidentService) -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app's alert endpoints, wired to the rig's service."""
    auth = AlertAuth(tokens={"alertmanager": TOKEN})
    async with serve(create_app(Readiness(), alerts=(service, auth))) as url, \
            httpx.AsyncClient(base_url=url, timeout=30,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        yield http


async def send(http: httpx.AsyncClient, severity: str, alertname: str) -> dict[str, Any]:
    from datetime import UTC, datetime

    body = am_payload([am_alert(starts=datetime.now(UTC), severity=severity,
                                alertname=alertname)])
    response = await http.post(AM, json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


async def incidents(store: SqlStore) -> list[Incident]:
    async with store.unit() as u:
        return await u.incidents(include_closed=True)


async def alert_row(store: SqlStore, alert_id: int) -> Alert:
    async with store.unit() as u:
        found = await u.alert(alert_id)
    assert found is not None
    return found


async def test_declare_pressed_on_slack(tmp_path: Path, catalog: Catalog) -> None:
    triage = catalog.model_copy(update={"triage_channels": {"slack": "#alerts-triage"}})
    async with slack_rig(tmp_path, triage) as rig, alert_endpoint(rig.service) as http:
        channel = rig.fake.add_channel("alerts-triage", members=[rig.fake.bot_user_id])["id"]
        assert (await send(http, "critical", "CheckoutDown"))["incidents"] == [1]
        assert (await send(http, "warning", "DiskFilling"))["incidents"] == []
        await rig.settle()
        [post] = [m for m in rig.fake.messages(channel) if m.get("bot_id")]
        assert post["text"].startswith("🔔 Alert 2 needs triage: DiskFilling on checkout")
        [actions] = [b for b in post["blocks"] if b["type"] == "actions"]
        pressed = [(e["text"]["text"], e["action_id"], e["value"]) for e in actions["elements"]]
        assert pressed == [
            ("Declare", "opsroom_triage_declare", "2"),
            ("Attach to #1", "opsroom_triage_attach", "2:1"),
            ("Ignore", "opsroom_triage_ignore", "2"),
        ]
        assert actions["elements"][0]["style"] == "primary"

        response = await rig.post(fs.block_actions_body(
            "opsroom_triage_declare", "2", channel_id=channel, message=post,
            response_url=rig.fake.new_response_url("actions")))
        assert response.status_code == 200
        await rig.settle()
        [first, second] = sorted(await incidents(rig.store), key=lambda i: i.number)
        assert second.title == "DiskFilling on checkout"
        assert (second.severity, second.status, second.commander) == (
            "sev3", Status.TRIGGERED, None)
        assert second.declared_by == f"<@{fs.ALICE}>"
        assert any("Declared #2 from alert 2" in t for t in rig.ephemeral_texts())
        # The post now says what was decided and by whom, without buttons.
        [update] = [c for c in rig.fake.calls_to("chat.update") if c.params["channel"] == channel]
        assert update.ok
        [edited] = [m for m in rig.fake.messages(channel) if m.get("bot_id")]
        assert edited["text"].startswith(
            f"🔔 DiskFilling on checkout: Alert 2 declared as #2 by <@{fs.ALICE}>.")
        assert not [b for b in edited.get("blocks", []) if b["type"] == "actions"]
        # Its incident has its channel, with the person who declared it in.
        created = rig.incident_channel(2)
        assert fs.ALICE in rig.fake.members(created["id"])
        assert (await alert_row(rig.store, 2)).incident_id == second.id

        # Pressing again (a second person, a stale client) changes nothing.
        await rig.post(fs.block_actions_body(
            "opsroom_triage_ignore", "2", channel_id=channel, message=post, user_id=fs.BOB,
            response_url=rig.fake.new_response_url("actions")))
        await rig.settle()
        assert any(t == f"Alert 2 was already declared as #2 by <@{fs.ALICE}>; nothing changed."
                   for t in rig.ephemeral_texts())
        assert len(await incidents(rig.store)) == 2 and first.number == 1


async def test_several_attach_buttons_have_distinct_slack_action_ids(
    tmp_path: Path, catalog: Catalog
) -> None:
    triage = catalog.model_copy(update={"triage_channels": {"slack": "alerts-triage"}})
    async with slack_rig(tmp_path, triage) as rig, alert_endpoint(rig.service) as http:
        channel = rig.fake.add_channel("alerts-triage", members=[rig.fake.bot_user_id])["id"]
        for name in ("CheckoutDown", "PaymentsDown"):
            await send(http, "critical", name)
        await send(http, "warning", "DiskFilling")
        await rig.settle()
        [post] = [m for m in rig.fake.messages(channel) if m.get("bot_id")]
        [actions] = [b for b in post["blocks"] if b["type"] == "actions"]
        ids = [e["action_id"] for e in actions["elements"]]
        assert ids == ["opsroom_triage_declare", "opsroom_triage_attach",
                       "opsroom_triage_attach.2", "opsroom_triage_ignore"]
        # The second Attach button (#1) works like the first.
        await rig.post(fs.block_actions_body(
            "opsroom_triage_attach.2", "3:1", channel_id=channel, message=post,
            response_url=rig.fake.new_response_url("actions")))
        await rig.settle()
        assert any(t.startswith("Attached alert 3 to #1") for t in rig.ephemeral_texts())
        one = rig.incident_channel(1)
        everything = [t for m in rig.fake.messages(one["id"])
                      for t in [m["text"], *rig.bot_texts(one["id"], m["ts"])]]
        assert any("🔔 firing: DiskFilling on checkout" in t and "attached from triage" in t
                   for t in everything)


async def test_attach_and_ignore_pressed_on_discord(tmp_path: Path, catalog: Catalog) -> None:
    triage = catalog.model_copy(update={"triage_channels": {"discord": "alerts-triage"}})
    async with discord_rig(tmp_path, triage) as rig, alert_endpoint(rig.service) as http:
        channel = (await rig.fake.create_channel("alerts-triage"))["id"]
        await rig.settle()
        await send(http, "critical", "CheckoutDown")
        await send(http, "warning", "DiskFilling")
        await send(http, "info", "CertExpiring")
        await rig.settle()
        posts = rig.fake.messages(channel)
        assert [text_of(m).split("\n")[0] for m in posts] == [
            "Alert 2 needs triage.", "Alert 3 needs triage."]
        assert posts[0]["embeds"][0]["title"] == "🔔 DiskFilling on checkout"
        assert buttons(posts[0]) == ["opsroom:triage_declare:2", "opsroom:triage_attach:2:1",
                                     "opsroom:triage_ignore:2"]

        await rig.click(posts[0], "Attach to #1")
        await rig.click(posts[1], "Ignore", user="bob")
        attached = rig.fake.message(channel, posts[0]["id"])
        ignored = rig.fake.message(channel, posts[1]["id"])
        assert attached is not None and ignored is not None
        assert attached["components"] == [] and ignored["components"] == []
        alice = rig.fake.user("alice")["id"]
        bob = rig.fake.user("bob")["id"]
        assert text_of(attached).startswith(f"📎 Alert 2 attached to #1 by <@{alice}>")
        assert text_of(ignored).startswith(f"🔕 Alert 3 ignored by <@{bob}>")
        one = rig.incident_channel(1)
        assert any(t.startswith("🔔 firing: DiskFilling on checkout") and
                   f"(attached from triage by <@{alice}>)" in t for t in rig.bot_texts(one["id"]))
        assert [(await alert_row(rig.store, i)).triage for i in (2, 3)] == [
            "attached", "ignored"]

        # The same from the command tree: the decision is refused, naming the first.
        answer = await rig.run("alerts", "declare", alert=3)
        assert answer["content"] == f"Alert 3 was already ignored by <@{bob}>; nothing changed."
        listing = await rig.run("alerts", "triage")
        assert listing["content"] == "No alerts wait for triage."
        assert len(await incidents(rig.store)) == 1
