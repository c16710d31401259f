"""The fake Slack Web API, exercised through the real slack_sdk AsyncWebClient over HTTP.

These tests pin down what adapter tests rely on: the fake answers like Slack (shapes, errors,
state), failure injection reaches the client as Slack's would, and the inbound payload builders
are signed and shaped so that slack_sdk and Bolt accept them.
"""

from __future__ import annotations

import json
import time
import types
from collections.abc import AsyncIterator
from decimal import Decimal
from urllib.parse import parse_qs

import pytest
from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry import builtin_async_handlers
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.builtin_interval_calculators import FixedValueRetryIntervalCalculator
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient

from tests.fakes.slack import (
    ALICE,
    BOB,
    CAROL,
    SIGNING_SECRET,
    FakeSlack,
    block_actions_body,
    bot_message_event,
    event_callback,
    message_event,
    new_trigger_id,
    reaction_added_event,
    sign,
    slash_command_body,
    text_input,
    view_submission_body,
)

MODAL = {
    "type": "modal",
    "callback_id": "declare",
    "title": {"type": "plain_text", "text": "Declare incident"},
    "submit": {"type": "plain_text", "text": "Create"},
    "blocks": [
        {
            "type": "input",
            "block_id": "title",
            "label": {"type": "plain_text", "text": "Title"},
            "element": {"type": "plain_text_input", "action_id": "value"},
        }
    ],
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack() as server:
        yield server


@pytest.fixture
def client(fake: FakeSlack) -> AsyncWebClient:
    return AsyncWebClient(token=fake.token, base_url=fake.api_url)


async def api_error(call) -> SlackApiError:
    """Await ``call`` expecting Slack to refuse it; return the error."""
    with pytest.raises(SlackApiError) as info:
        await call
    return info.value


# -- auth and plumbing ----------------------------------------------------------------------


async def test_auth_test_names_the_bot_and_records_the_call(fake, client):
    resp = await client.auth_test()

    assert resp["ok"] is True
    assert resp["user_id"] == fake.bot_user_id
    assert resp["bot_id"] == fake.bot_id
    assert resp["team_id"] == fake.team_id
    assert resp["url"] == f"https://{fake.team_domain}.slack.com/"
    assert resp["team"] == fake.team_name and resp["user"] == fake.bot_name
    [call] = fake.calls
    assert call.method == "auth.test" and call.ok
    assert "authorization" not in {h.lower() for h in call.headers}
    assert fake.token not in json.dumps(call.headers)


async def test_missing_wrong_token_and_unknown_method_are_refused(fake, client):
    no_token = AsyncWebClient(base_url=fake.api_url)
    wrong = AsyncWebClient(token="xoxb-0-0-wrong", base_url=fake.api_url)

    assert (await api_error(no_token.auth_test())).response["error"] == "not_authed"
    assert (await api_error(wrong.auth_test())).response["error"] == "invalid_auth"
    err = await api_error(client.api_call("incidents.declare"))
    assert err.response["error"] == "unknown_method"
    err = await api_error(wrong.conversations_create(name="nope"))
    assert err.response["error"] == "invalid_auth" and fake.channel_by_name("nope") is None


async def test_form_encoded_body_with_json_string_fields_is_understood(fake, client):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*SEV1*"}}]

    resp = await client.api_call(
        "chat.postMessage",
        data={"channel": fake.incidents_id, "text": "SEV1", "blocks": json.dumps(blocks)},
    )

    call = fake.calls[-1]
    assert call.content_type == "application/x-www-form-urlencoded"
    assert call.params["blocks"][0]["type"] == "section"
    [stored] = fake.messages(fake.incidents_id)
    assert stored["ts"] == resp["ts"]
    assert stored["blocks"][0]["text"]["text"] == "*SEV1*"
    assert stored["blocks"][0]["block_id"]  # Slack assigns one


# -- channels -------------------------------------------------------------------------------


async def test_create_channel_then_same_name_is_taken(fake, client):
    resp = await client.conversations_create(name="inc-42-db-down")

    channel = resp["channel"]
    assert channel["id"].startswith("C") and channel["name"] == "inc-42-db-down"
    assert channel["is_private"] is False and channel["is_member"] is True
    assert isinstance(channel["created"], int) and channel["creator"] == fake.bot_user_id
    assert fake.channel_by_name("#inc-42-db-down")["id"] == channel["id"]

    err = await api_error(client.conversations_create(name="inc-42-db-down"))
    assert err.response["error"] == "name_taken"
    err = await api_error(client.conversations_create(name="Inc 42!"))
    assert err.response["error"] == "invalid_name_specials"
    private = await client.conversations_create(name="inc-43", is_private=True)
    assert private["channel"]["is_private"] is True
    names = [c["name"] for c in (await client.conversations_list())["channels"]]
    assert "inc-42-db-down" in names and "inc-43" not in names  # default types: public


async def test_channel_lifecycle_invite_topic_rename_archive(fake, client):
    channel_id = (await client.conversations_create(name="inc-7"))["channel"]["id"]

    await client.conversations_invite(channel=channel_id, users=[ALICE, BOB])
    err = await api_error(client.conversations_invite(channel=channel_id, users=[ALICE]))
    assert err.response["error"] == "already_in_channel"
    await client.conversations_setTopic(channel=channel_id, topic="SEV2 | investigating")
    await client.conversations_setPurpose(channel=channel_id, purpose="Database is down")
    await client.conversations_rename(channel=channel_id, name="inc-7-db")
    info = (await client.conversations_info(channel=channel_id, include_num_members=True))[
        "channel"
    ]
    members = (await client.conversations_members(channel=channel_id))["members"]

    assert set(members) == {fake.bot_user_id, ALICE, BOB} and info["num_members"] == 3
    assert info["topic"]["value"] == "SEV2 | investigating"
    assert info["purpose"]["value"] == "Database is down"
    assert info["name"] == "inc-7-db" and info["previous_names"] == ["inc-7"]
    history = (await client.conversations_history(channel=channel_id))["messages"]
    assert {"channel_join", "channel_topic", "channel_purpose", "channel_name"} <= {
        m.get("subtype") for m in history
    }
    assert fake.messages(channel_id) == []  # system messages are left out by default

    await client.conversations_archive(channel=channel_id)
    err = await api_error(client.chat_postMessage(channel=channel_id, text="late"))
    assert err.response["error"] == "is_archived"
    assert fake.channel(channel_id)["is_archived"] is True


# -- messages -------------------------------------------------------------------------------


async def test_post_message_gives_increasing_ts_and_threads_replies(fake, client):
    parent = await client.chat_postMessage(channel=fake.incidents_id, text="Timeline")
    first = await client.chat_postMessage(
        channel=fake.incidents_id, text="status -> investigating", thread_ts=parent["ts"]
    )
    second = await client.chat_postMessage(
        channel=fake.incidents_id, text="severity -> sev1", thread_ts=parent["ts"]
    )

    stamps = [parent["ts"], first["ts"], second["ts"]]
    assert all(len(ts.split(".")[1]) == 6 for ts in stamps)
    assert [Decimal(ts) for ts in stamps] == sorted({Decimal(ts) for ts in stamps})
    assert parent["channel"] == fake.incidents_id
    assert parent["message"]["bot_id"] == fake.bot_id
    assert first["message"]["thread_ts"] == parent["ts"]

    replies = await client.conversations_replies(channel=fake.incidents_id, ts=parent["ts"])
    assert [m["text"] for m in replies["messages"]] == [
        "Timeline",
        "status -> investigating",
        "severity -> sev1",
    ]
    assert replies["messages"][0]["reply_count"] == 2
    assert replies["messages"][0]["latest_reply"] == second["ts"]
    history = await client.conversations_history(channel=fake.incidents_id)
    assert [m["ts"] for m in history["messages"]] == [parent["ts"]]
    assert [m["text"] for m in fake.messages(fake.incidents_id, parent["ts"])] == [
        "status -> investigating",
        "severity -> sev1",
    ]


async def test_history_window_limit_and_cursor(fake, client):
    stamps = [
        (await client.chat_postMessage(channel=fake.general_id, text=f"m{i}"))["ts"]
        for i in range(4)
    ]

    def texts(resp):
        return [m["text"] for m in resp["messages"]]

    inside = await client.conversations_history(
        channel=fake.general_id, oldest=stamps[0], latest=stamps[3]
    )
    assert texts(inside) == ["m2", "m1"]
    inclusive = await client.conversations_history(
        channel=fake.general_id, oldest=stamps[0], latest=stamps[3], inclusive=True
    )
    assert texts(inclusive) == ["m3", "m2", "m1", "m0"]
    page = await client.conversations_history(channel=fake.general_id, limit=3)
    assert texts(page) == ["m3", "m2", "m1"] and page["has_more"] is True
    rest = await client.conversations_history(
        channel=fake.general_id, limit=3, cursor=page["response_metadata"]["next_cursor"]
    )
    assert texts(rest) == ["m0"] and rest["has_more"] is False


async def test_chat_update_edits_in_place(fake, client):
    posted = await client.chat_postMessage(channel=fake.incidents_id, text="SEV2: db slow")

    updated = await client.chat_update(
        channel=fake.incidents_id, ts=posted["ts"], text="SEV1: db down"
    )

    assert updated["ts"] == posted["ts"] and updated["text"] == "SEV1: db down"
    [stored] = fake.messages(fake.incidents_id)
    assert stored["text"] == "SEV1: db down" and stored["ts"] == posted["ts"]
    assert stored["edited"]["user"] == fake.bot_user_id
    err = await api_error(client.chat_update(channel=fake.incidents_id, ts="1.000001", text="x"))
    assert err.response["error"] == "message_not_found"


async def test_delete_permalink_reactions_and_ephemeral(fake, client):
    posted = await client.chat_postMessage(channel=fake.incidents_id, text="to be removed")
    person = fake.add_message(fake.incidents_id, "the db is on fire", user=ALICE)

    link = await client.chat_getPermalink(channel=fake.incidents_id, message_ts=posted["ts"])
    await client.reactions_add(channel=fake.incidents_id, timestamp=person["ts"], name="eyes")
    err = await api_error(
        client.reactions_add(channel=fake.incidents_id, timestamp=person["ts"], name="eyes")
    )
    await client.chat_postEphemeral(channel=fake.incidents_id, user=BOB, text="only you")
    not_in = await api_error(
        client.chat_postEphemeral(channel=fake.incidents_id, user=CAROL, text="x")
    )
    await client.chat_delete(channel=fake.incidents_id, ts=posted["ts"])

    assert link["permalink"].endswith(
        f"/archives/{fake.incidents_id}/p{posted['ts'].replace('.', '')}"
    )
    assert err.response["error"] == "already_reacted"
    assert fake.message(fake.incidents_id, person["ts"])["reactions"] == [
        {"name": "eyes", "users": [fake.bot_user_id], "count": 1}
    ]
    assert fake.ephemerals[-1]["user"] == BOB and not_in.response["error"] == "user_not_in_channel"
    assert [m["text"] for m in fake.messages(fake.incidents_id)] == ["the db is on fire"]


async def test_pins_add_then_list(fake, client):
    posted = await client.chat_postMessage(channel=fake.incidents_id, text="Summary: SEV1")

    await client.pins_add(channel=fake.incidents_id, timestamp=posted["ts"])
    again = await api_error(client.pins_add(channel=fake.incidents_id, timestamp=posted["ts"]))
    listed = await client.pins_list(channel=fake.incidents_id)

    assert again.response["error"] == "already_pinned"
    [item] = listed["items"]
    assert item["type"] == "message" and item["channel"] == fake.incidents_id
    assert item["created_by"] == fake.bot_user_id
    assert item["message"]["ts"] == posted["ts"] and item["message"]["text"] == "Summary: SEV1"
    assert [m["ts"] for m in fake.pins(fake.incidents_id)] == [posted["ts"]]
    await client.pins_remove(channel=fake.incidents_id, timestamp=posted["ts"])
    assert fake.pins(fake.incidents_id) == []


async def test_users_and_direct_messages(fake, client):
    alice = (await client.users_info(user=ALICE))["user"]
    by_mail = (await client.users_lookupByEmail(email="bob@example.com"))["user"]
    dm = await client.conversations_open(users=[CAROL])
    again = await client.conversations_open(users=[CAROL])
    await client.chat_postMessage(channel=dm["channel"]["id"], text="you are paged")

    assert alice["name"] == "alice" and alice["real_name"] == "Alice Smith"
    assert alice["tz"] == "America/New_York" and alice["is_bot"] is False
    assert alice["profile"]["display_name"] == "alice"
    assert by_mail["id"] == BOB
    assert (await client.users_info(user=fake.bot_user_id))["user"]["is_bot"] is True
    err = await api_error(client.users_lookupByEmail(email="nobody@example.com"))
    assert err.response["error"] == "users_not_found"
    assert dm["channel"]["id"].startswith("D") and again["already_open"] is True
    assert fake.dm_channel(CAROL) == dm["channel"]["id"]
    assert fake.messages(dm["channel"]["id"])[0]["text"] == "you are paged"


# -- views ----------------------------------------------------------------------------------


async def test_views_open_needs_a_fresh_trigger_id(fake, client):
    missing = await api_error(client.views_open(view=MODAL))
    trigger = new_trigger_id()
    opened = (await client.views_open(trigger_id=trigger, view=MODAL))["view"]
    reused = await api_error(client.views_open(trigger_id=trigger, view=MODAL))

    assert missing.response["error"] == "invalid_arguments"
    assert reused.response["error"] == "exchanged_trigger_id"
    assert opened["id"].startswith("V") and opened["hash"]
    assert opened["callback_id"] == "declare" and opened["state"] == {"values": {}}
    assert fake.views[opened["id"]]["title"]["text"] == "Declare incident"

    stale = await api_error(client.views_update(view_id=opened["id"], hash="0.stale", view=MODAL))
    assert stale.response["error"] == "hash_conflict"
    changed = {**MODAL, "title": {"type": "plain_text", "text": "Review"}}
    updated = await client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)
    assert updated["view"]["id"] == opened["id"] and updated["view"]["hash"] != opened["hash"]
    assert fake.views[opened["id"]]["title"]["text"] == "Review"


async def test_expired_trigger_id_is_refused(fake, client):
    old = new_trigger_id(issued_at=time.time() - 10)

    err = await api_error(client.views_open(trigger_id=old, view=MODAL))

    assert err.response["error"] == "expired_trigger_id" and fake.views == {}


# -- failure injection ----------------------------------------------------------------------


async def test_injected_429_surfaces_and_changes_nothing(fake, client):
    fake.fail_next("chat.postMessage", 1, status=429, retry_after=7)

    err = await api_error(client.chat_postMessage(channel=fake.incidents_id, text="lost"))

    assert err.response.status_code == 429
    assert err.response.headers["Retry-After"] == "7"
    assert err.response["error"] == "ratelimited"
    assert fake.messages(fake.incidents_id) == []
    [call] = fake.calls_to("chat.postMessage")
    assert call.injected and call.status == 429 and call.params["text"] == "lost"
    await client.chat_postMessage(channel=fake.incidents_id, text="kept")
    assert [m["text"] for m in fake.messages(fake.incidents_id)] == ["kept"]


async def test_injected_429_is_retried_by_slack_sdk_handler(fake, monkeypatch):
    # The handler sleeps Retry-After plus up to 1 s of jitter; drop the jitter to stay fast.
    monkeypatch.setattr(builtin_async_handlers, "random", types.SimpleNamespace(random=lambda: 0))
    client = AsyncWebClient(
        token=fake.token,
        base_url=fake.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    fake.fail_next("chat.postMessage", 2, status=429, retry_after=0)

    resp = await client.chat_postMessage(channel=fake.incidents_id, text="eventually")

    assert resp["ok"] is True
    assert [c.status for c in fake.calls_to("chat.postMessage")] == [429, 429, 200]
    assert [m["text"] for m in fake.messages(fake.incidents_id)] == ["eventually"]


async def test_server_errors_and_outages(fake, client):
    fake.fail_next("conversations.create", status=500)
    err = await api_error(client.conversations_create(name="inc-9"))
    assert err.response.status_code == 500 and fake.channel_by_name("inc-9") is None

    with fake.outage():
        for call in (client.auth_test(), client.users_info(user=ALICE)):
            assert (await api_error(call)).response.status_code == 503
    assert (await client.auth_test())["ok"] is True

    fake.outage(1, status=500, json_body=True)
    quick = FixedValueRetryIntervalCalculator(0.01)
    retrying = AsyncWebClient(
        token=fake.token,
        base_url=fake.api_url,
        retry_handlers=[AsyncServerErrorRetryHandler(max_retry_count=1, interval_calculator=quick)],
    )
    created = await retrying.conversations_create(name="inc-9")
    assert created["channel"]["name"] == "inc-9"
    assert [c.status for c in fake.calls_to("conversations.create")] == [500, 500, 200]


# -- inbound payloads -----------------------------------------------------------------------


def test_signature_is_accepted_and_tampering_is_rejected():
    body = slash_command_body("declare database is down")
    headers = sign(body, SIGNING_SECRET)
    verifier = SignatureVerifier(SIGNING_SECRET)

    assert headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert verifier.is_valid_request(body, headers)
    assert not verifier.is_valid_request(body.replace(b"database", b"dataBASE"), headers)
    assert not SignatureVerifier("another-secret").is_valid_request(body, headers)
    stale = sign(body, SIGNING_SECRET, timestamp=int(time.time()) - 600)
    assert not verifier.is_valid_request(body, stale)


def test_slash_command_and_event_bodies_are_complete():
    fields = {k: v[0] for k, v in parse_qs(slash_command_body("status sev1").decode()).items()}
    envelope = json.loads(event_callback(reaction_added_event(ts="1764220000.000100")))

    assert {
        "token",
        "team_id",
        "team_domain",
        "channel_id",
        "channel_name",
        "user_id",
        "user_name",
        "command",
        "text",
        "api_app_id",
        "is_enterprise_install",
        "response_url",
        "trigger_id",
    } <= fields.keys()
    assert fields["command"] == "/incident" and fields["text"] == "status sev1"
    assert envelope["type"] == "event_callback" and envelope["event_id"].startswith("Ev")
    assert envelope["authorizations"][0]["is_bot"] is True
    assert envelope["event"]["item"] == {
        "type": "message",
        "channel": envelope["event"]["item"]["channel"],
        "ts": "1764220000.000100",
    }
    assert envelope["event"]["type"] == "reaction_added" and envelope["event"]["event_ts"]
    assert envelope["event_context"].startswith("4-")


async def test_bolt_accepts_the_signed_payloads(fake, client):
    app = AsyncApp(client=client, signing_secret=SIGNING_SECRET, process_before_response=True)
    seen: dict[str, object] = {}

    @app.command("/incident")
    async def on_command(ack, command, context):
        await ack()
        seen["command"] = (command["text"], context.user_id, context.channel_id)

    @app.event("message")
    async def on_message(event):
        seen.setdefault("messages", []).append(event["text"])

    @app.event("reaction_added")
    async def on_reaction(ack, event):
        await ack()
        seen["reaction"] = (event["reaction"], event["item"]["ts"])

    @app.action("ack")
    async def on_action(ack, body):
        await ack()
        seen["action"] = (body["actions"][0]["value"], body["container"]["channel_id"])

    @app.view("declare")
    async def on_view(ack, view):
        await ack()
        seen["view"] = view["state"]["values"]["title"]["value"]["value"]

    opened = (await client.views_open(trigger_id=new_trigger_id(), view=MODAL))["view"]
    bodies = [
        slash_command_body("declare db down", ALICE, fake.incidents_id),
        event_callback(message_event("db is down", channel=fake.incidents_id)),
        event_callback(bot_message_event("echo of our own post")),
        event_callback(bot_message_event("legacy echo", subtype="bot_message", user=None)),
        event_callback(reaction_added_event("pushpin", ts="1764220000.000100")),
        block_actions_body("ack", "incident-42"),
        view_submission_body(fake.views[opened["id"]], {"title": {"value": text_input("DB")}}),
    ]
    for body in bodies:
        response = await app.async_dispatch(
            AsyncBoltRequest(body=body.decode(), headers=sign(body))
        )
        assert response.status == 200, response.body

    assert seen == {
        "command": ("declare db down", ALICE, fake.incidents_id),
        "messages": ["db is down"],  # Bolt drops the bot's own posts: ids match auth.test
        "reaction": ("pushpin", "1764220000.000100"),
        "action": ("incident-42", fake.incidents_id),
        "view": "DB",
    }
