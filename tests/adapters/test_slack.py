"""Slack end to end: signed requests to our real HTTP app, the fake Slack Web API behind it."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from bot.catalog import Catalog
from bot.models import EntryKind, Incident, TimelineEntry
from tests.adapters.slack_harness import SlackRig, slack_rig
from tests.fakes import slack as fs


@pytest.fixture
async def rig(tmp_path: Path, catalog: Catalog):  # type: ignore[no-untyped-def]
    async with slack_rig(tmp_path, catalog) as r:
        yield r


async def count(rig: SlackRig, model: Any) -> int:
    async with rig.store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


async def entries(rig: SlackRig) -> list[tuple[str, str]]:
    async with rig.store.engine.connect() as conn:
        rows = await conn.execute(
            select(TimelineEntry.kind, TimelineEntry.text)
            .where(TimelineEntry.deleted == False)  # noqa: E712
            .order_by(TimelineEntry.id)
        )
        return [(k.value if hasattr(k, "value") else k, t) for k, t in rows.all()]


def opened_view(rig: SlackRig, index: int = -1) -> dict[str, Any]:
    call = rig.fake.calls_to("views.open")[index]
    return call.response["view"]


def submit_values(view: dict[str, Any], **changes: dict[str, Any]) -> dict[str, Any]:
    """The state Slack sends on submit: each input block's current (initial) value."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
        if block["type"] != "input":
            continue
        element = block["element"]
        kind, action = element["type"], element["action_id"]
        if kind == "plain_text_input":
            value: dict[str, Any] = fs.text_input(element.get("initial_value"))
        elif kind == "number_input":
            value = {"type": "number_input", "value": element.get("initial_value")}
        elif kind == "static_select":
            option = element.get("initial_option")
            value = fs.static_select(option["value"] if option else None)
        elif kind == "multi_static_select":
            value = {"type": kind, "selected_options": element.get("initial_options", [])}
        else:
            value = fs.users_select(element.get("initial_user"))
        values[block["block_id"]] = {action: value}
    for block_id, value in changes.items():
        action = next(iter(values[block_id]))
        values[block_id] = {action: value}
    return values


async def declare(
    rig: SlackRig,
    text: str = "checkout 500s in EU since the 14:05 deploy, card payments failing",
    changes: dict[str, Any] | None = None,
) -> httpx.Response:
    response = await rig.command(f"declare {text}")
    assert response.status_code == 200
    await rig.settle()
    view = opened_view(rig)
    return await rig.post(fs.view_submission_body(view, submit_values(view, **(changes or {}))))


async def test_forged_and_stale_requests_are_rejected_and_change_nothing(rig: SlackRig) -> None:
    body = fs.slash_command_body("declare payments down", response_url=rig.fake.new_response_url())
    unsigned = await rig.post(body, signed=False)
    bad = await rig.http.post(
        "/slack/events",
        content=body,
        headers={**fs.sign(body), "X-Slack-Signature": "v0=" + "0" * 64},
    )
    stale = await rig.http.post(
        "/slack/events", content=body, headers=fs.sign(body, timestamp=int(time.time()) - 6 * 60)
    )
    wrong_secret = await rig.http.post(
        "/slack/events", content=body, headers=fs.sign(body, secret="not-the-secret")
    )
    tampered = await rig.http.post("/slack/events", content=body + b"x", headers=fs.sign(body))
    await rig.settle()
    assert [r.status_code for r in (unsigned, bad, stale, wrong_secret, tampered)] == [401] * 5
    assert rig.fake.calls_to("views.open") == []
    assert await count(rig, Incident) == 0


async def test_a_malformed_command_gets_a_short_ephemeral_error(rig: SlackRig) -> None:
    response = await rig.command("severity")
    assert response.status_code == 200
    body = response.json()
    assert body["response_type"] == "ephemeral"
    assert body["text"] == "expected one severity. Usage: /incident severity <sev>" or body[
        "text"
    ].startswith("missing severity")
    unknown = await rig.command("#7 status investigating")
    assert unknown.status_code == 200
    await rig.settle()
    assert "no incident #7" in rig.ephemeral_texts()
    assert await count(rig, Incident) == 0


async def test_declare_through_the_modal_creates_channel_summary_and_thread(
    rig: SlackRig,
) -> None:
    started = time.perf_counter()
    ack = await rig.command(
        "declare checkout 500s in EU since the 14:05 deploy, card payments failing"
    )
    assert ack.status_code == 200 and time.perf_counter() - started < 3
    await rig.settle()
    view = opened_view(rig)
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert blocks["title"]["element"]["initial_value"] == (
        "Checkout 500s in EU since the 14:05 deploy"
    )
    assert blocks["type"]["element"]["initial_option"]["value"] == "outage"
    assert blocks["severity"]["element"]["initial_option"]["value"] == "sev2"
    assert blocks["commander"]["element"]["initial_user"] == fs.ALICE
    assert [o["value"] for o in blocks["cf:region"]["element"]["options"]] == [
        "global",
        "eu",
        "us",
        "apac",
    ]
    assert blocks["cf:region"]["element"]["initial_option"]["value"] == "eu"

    submitted = await rig.post(
        fs.view_submission_body(
            view,
            submit_values(
                view, severity=fs.static_select("sev1"), commander=fs.users_select(fs.BOB)
            ),
        )
    )
    assert submitted.status_code == 200 and submitted.text == ""
    await rig.settle()

    channel = rig.incident_channel(1)
    assert channel["name"] == "inc-1-checkout-500s-in-eu-since-the-14-05"
    assert set(rig.fake.members(channel["id"])) >= {fs.ALICE, fs.BOB}
    pins = rig.fake.pins(channel["id"])
    assert len(pins) == 1
    summary = rig.fake.message(channel["id"], pins[0]["ts"])
    assert summary["text"].startswith("📋 #1 Checkout 500s in EU")
    assert summary["blocks"][0]["type"] == "header"
    buttons = [
        e["action_id"] for b in summary["blocks"] if b["type"] == "actions" for e in b["elements"]
    ]
    assert buttons == ["opsroom_ack", "opsroom_key_event", "opsroom_resolve"]
    assert channel["topic"]["value"].startswith(f"SEV1 · triggered · Commander <@{fs.BOB}>")
    texts = rig.bot_texts(channel["id"])
    assert texts[1].startswith("🧵 Timeline")
    assert texts[2].startswith("ℹ️ Incident declared: Checkout 500s in EU since the 14:05 deploy")
    announced = rig.bot_texts(rig.fake.incidents_id)
    assert len(announced) == 1 and "Incident declared" in announced[0]
    assert any("Declared incident #1" in e["text"] for e in rig.fake.ephemerals)


async def test_changing_the_type_rerenders_the_custom_fields(rig: SlackRig) -> None:
    await rig.command("declare login page is slow")
    await rig.settle()
    view = opened_view(rig)
    state = submit_values(view, type=fs.static_select("security"))
    response = await rig.post(
        fs.block_actions_body(
            "opsroom_declare_type",
            action_type="static_select",
            view=view,
            state_values=state,
            block_id="type",
            action={
                "selected_option": {
                    "text": {"type": "plain_text", "text": "security"},
                    "value": "security",
                }
            },
        )
    )
    assert response.status_code == 200
    await rig.settle()
    updated = rig.fake.calls_to("views.update")[-1].params["view"]
    block_ids = [b.get("block_id") for b in updated["blocks"]]
    assert "cf:attack_vector" in block_ids and "cf:region" not in block_ids
    title = next(b for b in updated["blocks"] if b.get("block_id") == "title")
    assert title["element"]["initial_value"] == "Login page is slow"


async def test_invalid_modal_input_is_shown_on_the_field(rig: SlackRig) -> None:
    response = await declare(
        rig,
        changes={
            "cf:customers_affected": {"type": "number_input", "value": "lots"},
            "title": fs.text_input(""),
        },
    )
    assert response.status_code == 200
    body = response.json()
    assert body["response_action"] == "errors"
    assert body["errors"] == {
        "cf:customers_affected": 'customers_affected must be a number, not "lots"',
        "title": "Give the incident a short title",
    }
    await rig.settle()
    assert await count(rig, Incident) == 0


async def test_running_an_incident_from_slack(rig: SlackRig) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    thread = next(m["ts"] for m in rig.fake.messages(channel) if m["text"].startswith("🧵"))

    # a reply in the timeline thread becomes an entry; its author's own message is not re-posted
    reply = rig.fake.add_message(channel, "db failover started", user=fs.BOB, thread_ts=thread)
    await rig.event(
        fs.message_event(
            "db failover started", user=fs.BOB, channel=channel, ts=reply["ts"], thread_ts=thread
        )
    )
    # a 📌 on a channel message, delivered twice (Slack's retry): one key event
    said = rig.fake.add_message(channel, "error rate back under 1%", user=fs.BOB)
    reaction = fs.reaction_added_event(
        "pushpin", ts=said["ts"], user=fs.ALICE, channel=channel, item_user=fs.BOB
    )
    await rig.event(reaction, event_id="Ev0PUSHPIN1")
    await rig.event(reaction, event_id="Ev0PUSHPIN1", retry=1)
    await rig.settle()
    await rig.command(
        "action add verify payment retries <@U0BOB0001> due tomorrow", channel=channel
    )
    await rig.settle()
    done_button = next(m for m in rig.fake.messages(channel) if "Action item added" in m["text"])
    await rig.post(
        fs.block_actions_body("opsroom_action_done", "1:1", channel_id=channel, message=done_button)
    )
    await rig.command("update Rolled back; error rate falling", channel=channel)
    await rig.command("resolve error rate normal for 15 minutes", channel=channel)
    await rig.settle()

    assert await entries(rig) == [
        ("system", await _declared_text(rig)),
        ("message", "db failover started"),
        ("key_event", "error rate back under 1%"),
        ("action_item", (await entries(rig))[3][1]),
        ("action_item", (await entries(rig))[4][1]),
        ("status_update", "Rolled back; error rate falling"),
        (
            "status_change",
            "Status changed from triggered to resolved: error rate normal for 15 minutes",
        ),
    ]
    texts = rig.bot_texts(channel)
    assert sum("Key event" in t for t in rig.bot_texts(channel, thread)) == 1
    assert [t for t in rig.bot_texts(channel, thread)] == [
        "📌 Key event by bobby (marked by alice):\n> error rate back under 1%"
    ]
    assert any(t.startswith("☑️ Action item done: [x] 1. verify payment retries") for t in texts)
    assert texts[-2].startswith("📣 Status update on #1")
    assert texts[-1].startswith("🔄 Status changed from triggered to resolved")
    assert len(texts) == len(set(texts))  # nothing posted twice
    announced = rig.bot_texts(rig.fake.incidents_id)
    assert [a.split("] ", 1)[1] for a in announced] == [
        await _declared_text(rig),
        "Rolled back; error rate falling",
        "Status changed from triggered to resolved: error rate normal for 15 minutes",
    ]
    summary = rig.fake.message(channel, rig.fake.pins(channel)[0]["ts"])
    assert "Status*\nresolved" in json.dumps(summary["blocks"], ensure_ascii=False).replace(
        "\\n", "\n"
    )


async def _declared_text(rig: SlackRig) -> str:
    async with rig.store.engine.connect() as conn:
        return str(
            (
                await conn.execute(
                    select(TimelineEntry.text)
                    .where(TimelineEntry.kind == EntryKind.SYSTEM)
                    .order_by(TimelineEntry.id)
                )
            )
            .scalars()
            .first()
        )


async def test_rate_limits_and_outages_lose_nothing_and_keep_order(rig: SlackRig) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    rig.fake.fail_next("chat.postMessage", 3, status=429, retry_after=0)
    outage = rig.fake.outage(6, status=500)
    notes = [f"note step {i}" for i in range(1, 7)]
    for note in notes:
        assert (await rig.command(note, channel=channel)).status_code == 200
    await rig.settle(timeout=20)
    assert not outage.active
    thread = next(m["ts"] for m in rig.fake.messages(channel) if m["text"].startswith("🧵"))
    assert rig.bot_texts(channel, thread) == [f"💬 alice: step {i}" for i in range(1, 7)]
    failed = [c for c in rig.fake.calls if c.injected]
    assert len(failed) >= 9  # the failures really happened, and were retried


async def test_a_reaction_with_another_emoji_or_outside_incidents_records_nothing(
    rig: SlackRig,
) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    said = rig.fake.add_message(channel, "lunch?", user=fs.BOB)
    await rig.event(fs.reaction_added_event("tada", ts=said["ts"], channel=channel))
    general = rig.fake.add_message(rig.fake.general_id, "hello", user=fs.BOB)
    await rig.event(
        fs.reaction_added_event("pushpin", ts=general["ts"], channel=rig.fake.general_id)
    )
    await rig.settle()
    assert [k for k, _ in await entries(rig)] == ["system"]


async def test_thread_edits_and_deletes_follow_and_bot_messages_are_ignored(
    rig: SlackRig,
) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    thread = next(m["ts"] for m in rig.fake.messages(channel) if m["text"].startswith("🧵"))
    msg = rig.fake.add_message(channel, "cache flushd", user=fs.BOB, thread_ts=thread)
    await rig.event(
        fs.message_event(
            "cache flushd", user=fs.BOB, channel=channel, ts=msg["ts"], thread_ts=thread
        )
    )
    await rig.settle()  # Slack delivers events concurrently; an edit follows a recorded message
    await rig.event(
        fs.message_changed_event(
            channel,
            msg["ts"],
            "cache flushed",
            previous_text="cache flushd",
            user=fs.BOB,
            thread_ts=thread,
        )
    )
    await rig.settle()
    assert (await entries(rig))[-1] == ("message", "cache flushed")
    await rig.event(
        fs.message_deleted_event(
            channel, msg["ts"], previous_text="cache flushed", thread_ts=thread
        )
    )
    await rig.event(fs.bot_message_event("from the bot", channel=channel, thread_ts=thread))
    await rig.settle()
    assert [k for k, _ in await entries(rig)] == ["system"]


async def test_add_to_timeline_shortcut_records_the_message(rig: SlackRig) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    said = rig.fake.add_message(channel, "customer support sees refunds failing", user=fs.BOB)
    await rig.post(fs.message_action_body("opsroom_add_to_timeline", said, channel_id=channel))
    await rig.settle()
    assert (await entries(rig))[-1] == ("key_event", "customer support sees refunds failing")


async def test_a_taken_channel_name_gets_a_suffix(rig: SlackRig) -> None:
    rig.fake.add_channel("inc-1-payments-down")
    await declare(rig, "payments down")
    await rig.settle()
    assert rig.incident_channel(1)["name"] == "inc-1-payments-down-2"
    assert [c.response.get("error") for c in rig.fake.calls_to("conversations.create")] == [
        "name_taken", None]


async def test_the_declare_shortcut_opens_an_empty_quick_start(rig: SlackRig) -> None:
    response = await rig.post(fs.shortcut_body("opsroom_declare_incident"))
    assert response.status_code == 200
    await rig.settle()
    view = opened_view(rig)
    blocks = {b.get("block_id"): b for b in view["blocks"]}
    assert "initial_value" not in blocks["title"]["element"]
    assert blocks["type"]["element"]["initial_option"]["value"] == "outage"


async def test_catch_up_is_offered_to_people_joining_when_enabled(
    tmp_path: Path, catalog: Catalog
) -> None:
    async with slack_rig(tmp_path, catalog.model_copy(update={"catchup_on_join": True})) as rig:
        await declare(rig)
        await rig.settle()
        channel = rig.incident_channel(1)["id"]
        await rig.command("event rolled back deploy 2211", channel=channel)
        await rig.settle()
        rig.fake.join(channel, fs.CAROL)
        await rig.event(fs.member_joined_channel_event(fs.CAROL, channel))
        await rig.settle()
        offered = [e for e in rig.fake.ephemerals if e["user"] == fs.CAROL]
        assert len(offered) == 1
        assert offered[0]["text"].startswith("Catch-up on #1 Checkout 500s in EU")
        assert "rolled back deploy 2211" in offered[0]["text"]


# --- review fixes -------------------------------------------------------------------------------


def timeline_thread(rig: SlackRig, channel: str) -> str:
    return next(m["ts"] for m in rig.fake.messages(channel) if m["text"].startswith("🧵"))


async def test_a_pushpin_on_a_thread_reply_is_recorded(rig: SlackRig) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    parent = rig.fake.add_message(channel, "who changed the payments config?", user=fs.ALICE)
    reply = rig.fake.add_message(
        channel, "me: rolled back config push 381", user=fs.BOB, thread_ts=parent["ts"]
    )
    rig.fake.add_message(channel, "thanks", user=fs.ALICE, thread_ts=parent["ts"])
    await rig.event(
        fs.reaction_added_event(
            "pushpin", ts=reply["ts"], user=fs.ALICE, channel=channel, item_user=fs.BOB
        )
    )
    await rig.settle()
    assert (await entries(rig))[-1] == ("key_event", "me: rolled back config push 381")
    assert rig.bot_texts(channel, timeline_thread(rig, channel)) == [
        "📌 Key event by bobby (marked by alice):\n> me: rolled back config push 381"
    ]


async def test_thread_broadcasts_and_shared_files_in_the_timeline_thread_are_recorded(
    rig: SlackRig,
) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    thread = timeline_thread(rig, channel)
    root = rig.fake.message(channel, thread)
    assert root is not None
    await rig.event(
        fs.thread_broadcast_event(
            "deploy 4.12 rolled back", thread_ts=thread, root=root, user=fs.BOB, channel=channel
        )
    )
    log = fs.file_object("checkout-errors.log", user=fs.BOB)
    await rig.event(fs.file_share_event([log], user=fs.BOB, channel=channel, thread_ts=thread))
    graph = fs.file_object("p99.png", user=fs.ALICE, filetype="png", mimetype="image/png")
    await rig.event(
        fs.file_share_event(
            [graph], "latency is back to normal", user=fs.ALICE, channel=channel, thread_ts=thread
        )
    )
    # the same subtypes outside a thread are not timeline entries
    await rig.event(fs.file_share_event([fs.file_object("notes.txt")], channel=channel))
    await rig.settle()
    assert sorted((await entries(rig))[1:]) == [  # Slack delivers events concurrently
        ("message", "deploy 4.12 rolled back"),
        ("message", "latency is back to normal\n📎 p99.png"),
        ("message", "📎 checkout-errors.log"),
    ]


def test_the_manifest_matches_what_the_app_listens_for() -> None:
    import yaml

    from adapters.slack.app import DECLARE_SHORTCUT, TIMELINE_SHORTCUT

    root = Path(__file__).resolve().parents[2]
    manifest = yaml.safe_load((root / "slack-manifest.yaml").read_text())
    features, settings = manifest["features"], manifest["settings"]
    command, oncall = features["slash_commands"]
    assert command["command"] == "/incident"
    assert oncall["command"] == "/oncall" and oncall["should_escape"] is True
    assert command["should_escape"] is True  # mentions arrive as <@U…>, as the parser expects
    assert {(s["type"], s["callback_id"]) for s in features["shortcuts"]} == {
        ("global", DECLARE_SHORTCUT),
        ("message", TIMELINE_SHORTCUT),
    }
    # message (public and private channels), reaction_added/removed, member_joined_channel
    assert {
        "message.channels",
        "message.groups",
        "reaction_added",
        "reaction_removed",
        "member_joined_channel",
    } <= set(settings["event_subscriptions"]["bot_events"])
    assert settings["interactivity"]["is_enabled"] is True
    urls = {
        command["url"],
        settings["event_subscriptions"]["request_url"],
        settings["interactivity"]["request_url"],
    }
    assert {u.rsplit("/", 2)[-2:] == ["slack", "events"] for u in urls} == {True}
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert {"commands", "channels:history", "groups:history", "reactions:read"} <= scopes


async def test_add_to_timeline_outside_incidents_carries_no_message_text(rig: SlackRig) -> None:
    await declare(rig)
    await rig.settle()
    general = rig.fake.general_id
    # 2,700 characters; as JSON (each emoji escaped to 12) far more than Slack's 3,000
    said = rig.fake.add_message(general, '💳 "refunds" failing; ' * 120, user=fs.BOB)
    await rig.post(fs.message_action_body("opsroom_add_to_timeline", said, channel_id=general))
    await rig.settle()
    opened = rig.fake.calls_to("views.open")[-1]
    assert opened.ok, opened.response
    view = opened.response["view"]
    assert json.loads(view["private_metadata"]) == {
        "channel": general,
        "ts": said["ts"],
        "author": fs.BOB,
    }
    submitted = await rig.post(
        fs.view_submission_body(view, {"incident": {"value": fs.static_select("1")}})
    )
    assert submitted.status_code == 200
    await rig.settle()
    assert (await entries(rig))[-1] == ("key_event", said["text"])
    assert any(e["text"] == "Key event added to #1." for e in rig.fake.ephemerals)


MODEL = "gpt-4o-mini"
AI_KEY = "sk-slack-0123456789abcdef"


async def test_quick_start_shows_and_records_who_suggested_each_field(
    tmp_path: Path, catalog: Catalog
) -> None:
    import openai

    from adapters.openai_suggester import OpenAISuggester
    from bot.ai import model_answer
    from bot.ports import Suggestion
    from tests.fakes.openai import FakeOpenAI

    answer = model_answer(
        Suggestion(
            title="Checkout 500s in the EU",
            summary="Card payments fail",
            type="outage",
            severity="sev1",
            priority="p1",
            custom_fields={"region": "eu", "customers_affected": 1200},
        ),
        catalog,
    )
    answer["priority"] = None  # left to the heuristic
    async with (
        FakeOpenAI(api_key=AI_KEY) as ai,
        openai.AsyncOpenAI(api_key=AI_KEY, base_url=ai.base_url, max_retries=0) as client,
    ):
        ai.reply_json(answer)
        suggester = OpenAISuggester(client, MODEL, budget_s=5.0)
        async with slack_rig(tmp_path, catalog, suggester=suggester) as rig:
            await rig.command("declare checkout 500s in EU since the 14:05 deploy, card payments")
            await rig.settle()
            # the modal as it stands: opened with the suggestion, or filled in once it came
            view = rig.fake.views[opened_view(rig)["id"]]
            blocks = {b.get("block_id"): b for b in view["blocks"]}
            hints = {k: b["hint"]["text"] for k, b in blocks.items() if "hint" in b}
            assert hints == {
                "title": "suggested by the model",
                "type": "suggested by the model",
                "severity": "suggested by the model",
                "priority": "suggested by the heuristic",
                "cf:affected_services": "suggested by the heuristic",
                "cf:region": "suggested by the model",
                "cf:customers_affected": (
                    "Rough count of affected customers. · suggested by the model"
                ),
            }
            assert len(view["private_metadata"]) <= 3000
            submitted = await rig.post(
                fs.view_submission_body(
                    view,
                    submit_values(
                        view,
                        severity=fs.static_select("sev2"),
                        **{"cf:region": fs.static_select("global")},
                    ),
                )
            )
            assert submitted.status_code == 200 and submitted.text == ""
            await rig.settle()
            async with rig.store.unit() as u:
                incident = await u.incident(1)
                assert incident is not None and incident.id is not None
                declared = (await u.timeline(incident.id))[0]
    assert (incident.severity, incident.custom_fields["region"]) == ("sev2", "global")
    recorded = declared.data["ai"]
    assert (recorded["model"], recorded["endpoint"]) == (MODEL, f"127.0.0.1:{ai.port}")
    assert recorded["note"].startswith(f"Suggested by {MODEL} at 127.0.0.1:{ai.port}")
    assert recorded["sources"] == {
        "title": "model",
        "type": "model",
        "severity": "person",
        "priority": "heuristic",
        "affected_services": "heuristic",
        "region": "person",
        "customers_affected": "model",
    }


async def test_socket_mode_without_a_signing_secret_mounts_no_request_url(
    tmp_path: Path,
) -> None:
    import asyncio
    import os
    import signal
    import sys

    from tests.e2e.test_service import ROOT, free_port

    port = free_port()
    async with fs.FakeSlack() as fake:
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_"))
        }
        env.update(
            {
                "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}",
                "SLACK_BOT_TOKEN": fake.token,
                "SLACK_APP_TOKEN": "xapp-1-A0OPSRM0001-1000000000001-FakeAppLevelToken",
                "SLACK_API_URL": fake.api_url,
                "OPSROOM_HTTP_PORT": str(port),
                "PYTHONPATH": ROOT,
            }
        )
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "adapters.cli",
            "run",
            cwd=tmp_path,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
                health = None
                for _ in range(300):
                    assert proc.returncode is None, "opsroom run exited early"
                    try:
                        health = await http.get("/healthz")
                        break
                    except httpx.TransportError:
                        await asyncio.sleep(0.05)
                assert health is not None and health.status_code in (200, 503)
                assert "slack" in health.json()["adapters"]
                body = fs.slash_command_body("list", response_url=fake.new_response_url())
                for secret in ("", fs.SIGNING_SECRET):
                    posted = await http.post(
                        "/slack/events", content=body, headers=fs.sign(body, secret=secret)
                    )
                    assert posted.status_code == 404
        finally:
            proc.send_signal(signal.SIGTERM)
            await asyncio.wait_for(proc.communicate(), timeout=20)
    assert not fake.response_posts


async def test_cancel_archives_the_slack_channel_and_reopen_opens_a_new_one(
    rig: SlackRig,
) -> None:
    await declare(rig)
    await rig.settle()
    old = rig.incident_channel(1)
    await rig.command("cancel it was a drill", channel=old["id"])
    await rig.settle()
    assert rig.fake.channel(old["id"])["is_archived"]
    assert rig.bot_texts(old["id"])[-1].startswith(
        "🔄 Incident cancelled (was triggered): it was a drill"
    )
    assert not [c for c in rig.fake.calls if c.method.startswith("chat.") and not c.ok]

    await rig.command("#1 reopen it was not a drill", channel=rig.fake.general_id)
    await rig.settle()
    new = [c for c in rig._channels() if c["name"].startswith("inc-1-")][-1]
    assert new["id"] != old["id"] and new["name"] == f"{old['name']}-2"
    assert not new["is_archived"]
    assert rig.bot_texts(new["id"])[-1].startswith("🔄 Reopened (was cancelled), now triggered")


async def test_the_bot_itself_is_not_a_person_to_assign(rig: SlackRig) -> None:
    """auth.test told the edge the bot's user id: the bot is refused as commander and assignee."""
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    bot = f"<@{fs.BOT_USER_ID}|{fs.BOT_NAME}>"
    await rig.command(f"assign commander {bot}", channel=channel)
    await rig.command(f"action add check the logs {bot}", channel=channel)
    await rig.settle()
    assert f'commander must be a person, not the bot ("{bot}")' in rig.ephemeral_texts()
    assert f'the assignee must be a person, not the bot ("{bot}")' in rig.ephemeral_texts()
    async with rig.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None and incident.id is not None
        assert incident.commander == f"<@{fs.ALICE}>"
        assert await u.action_items(incident.id) == []


async def test_long_field_values_are_clipped_to_slacks_limits(rig: SlackRig) -> None:
    await declare(rig, "checkout p99 latency is slow for some customers")
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    metric = "checkout p99 latency " + "x" * 2500
    await rig.command(f"set metric {metric}", channel=channel)
    await rig.command(f"title {'Checkout latency ' * 11}", channel=channel)  # 186 characters
    await rig.settle(timeout=3)
    async with rig.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None
    assert incident.custom_fields["metric"] == metric  # the record keeps it whole
    summary = rig.fake.message(channel, rig.fake.pins(channel)[0]["ts"])
    assert summary is not None
    header = summary["blocks"][0]["text"]["text"]
    assert len(header) == 150 and header.endswith("…")
    fields = [
        f["text"] for b in summary["blocks"] if b["type"] == "section" for f in b.get("fields", [])
    ]
    shown = next(f for f in fields if f.startswith("*Metric*"))
    assert len(shown) == 2000 and shown.endswith("…")
    assert not [c for c in rig.fake.calls if c.method.startswith("chat.") and not c.ok]


async def test_messages_slack_refuses_for_good_are_not_retried(rig: SlackRig) -> None:
    await declare(rig)
    await rig.settle()
    channel = rig.incident_channel(1)["id"]
    rig.fake.archive(channel, fs.ALICE)
    before = len(rig.fake.calls_to("chat.postMessage"))
    await rig.command("#1 note archived by mistake?", channel=rig.fake.general_id)
    await rig.settle(timeout=3)  # the mirror moves on instead of retrying for ever
    refused = rig.fake.calls_to("chat.postMessage")[before:]
    assert [c.response["error"] for c in refused if c.params["channel"] == channel] == [
        "is_archived"
    ]


async def test_a_person_who_cannot_be_invited_does_not_stop_the_channel(rig: SlackRig) -> None:
    gone = "U0GONE00009"  # a deactivated account, still offered by an old people picker
    await declare(rig, changes={"commander": fs.users_select(gone)})
    await rig.settle(timeout=3)
    channel = rig.incident_channel(1)["id"]
    assert fs.ALICE in rig.fake.members(channel) and gone not in rig.fake.members(channel)
    assert len(rig.fake.pins(channel)) == 1
    assert rig.bot_texts(channel)[1].startswith("🧵 Timeline")


async def test_a_slow_suggestion_opens_the_modal_at_once_and_fills_it_in_later(
    tmp_path: Path, catalog: Catalog
) -> None:
    import openai

    from adapters.openai_suggester import OpenAISuggester
    from bot.ai import model_answer
    from bot.ports import Suggestion
    from tests.fakes.openai import FakeOpenAI

    answer = model_answer(
        Suggestion(title="Checkout 500s in the EU", summary="", type="outage",
                   severity="sev1", priority="p1"),
        catalog,
    )
    async with (
        FakeOpenAI(api_key=AI_KEY) as ai,
        openai.AsyncOpenAI(api_key=AI_KEY, base_url=ai.base_url, max_retries=0) as client,
    ):
        ai.delay(0.8).reply_json(answer)
        suggester = OpenAISuggester(client, MODEL, budget_s=5.0)
        async with slack_rig(tmp_path, catalog, suggester=suggester) as rig:
            await rig.command("declare checkout 500s in EU since the 14:05 deploy")
            for _ in range(300):  # the modal opens after the ack, before the model answers
                if rig.fake.calls_to("views.open"):
                    break
                await asyncio.sleep(0.01)
            assert rig.fake.calls_to("views.update") == []
            first = opened_view(rig)
            blocks = {b.get("block_id"): b for b in first["blocks"]}
            assert first["blocks"][0]["elements"][0]["text"].startswith("⏳ Suggesting fields")
            assert "initial_value" not in blocks["title"]["element"]
            await rig.settle()
            updated = rig.fake.calls_to("views.update")[-1].params["view"]
            title = next(b for b in updated["blocks"] if b.get("block_id") == "title")
            assert title["element"]["initial_value"] == "Checkout 500s in the EU"
            assert title["hint"]["text"] == "suggested by the model"
