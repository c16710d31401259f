"""The REST API over real HTTP: tokens and scopes, filters and pages, idempotent declare,
all-or-nothing PATCH, entries written by the token's name, problem answers."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from tests.adapters.api_harness import ApiRig, api_rig
from tests.fakes.clock import FakeClock

PROBLEM = "application/problem+json"


@pytest.fixture
async def rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> AsyncIterator[ApiRig]:
    async with api_rig(engine, catalog, clock, public_url="https://ops.example") as r:
        await r.token("deploy-bot", "write")
        await r.token("dashboard", "read")
        yield r


@pytest.fixture
async def pg_rig(
    any_engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> AsyncIterator[ApiRig]:
    async with api_rig(any_engine, catalog, clock) as r:
        await r.token("deploy-bot", "write")
        yield r


# --- tokens ------------------------------------------------------------------------------


async def test_missing_wrong_or_revoked_tokens_get_the_same_401(rig: ApiRig) -> None:
    async with rig.core.store.unit() as u:
        await u.revoke_token("dashboard", now=rig.core.clock.now())
    answers = [
        await rig.http.get("/api/v1/incidents"),
        await rig.http.get("/api/v1/incidents", headers={"Authorization": "Bearer opsroom_nope"}),
        await rig.http.get("/api/v1/incidents", headers={"Authorization": "Basic abc"}),
        await rig.http.get("/api/v1/incidents", headers=rig.auth("dashboard")),  # revoked
    ]
    assert {a.status_code for a in answers} == {401}
    assert {a.text for a in answers} == {answers[0].text}  # nothing to tell them apart
    assert answers[0].headers["content-type"] == PROBLEM
    assert answers[0].headers["www-authenticate"] == "Bearer"


async def test_a_read_token_reads_and_may_not_write(rig: ApiRig) -> None:
    number = await rig.declare()
    got = await rig.http.get(f"/api/v1/incidents/{number}", headers=rig.auth("dashboard"))
    assert got.status_code == 200 and got.json()["number"] == number
    refused = await rig.http.post(
        f"/api/v1/incidents/{number}/notes", json={"text": "hi"}, headers=rig.auth("dashboard")
    )
    assert refused.status_code == 403
    assert refused.headers["content-type"] == PROBLEM
    timeline = await rig.http.get(
        f"/api/v1/incidents/{number}/timeline", headers=rig.auth("dashboard")
    )
    assert all(e["text"] != "hi" for e in timeline.json()["items"])


async def test_only_hashes_of_tokens_are_stored(rig: ApiRig) -> None:
    async with rig.core.store.unit() as u:
        rows = await u.tokens()
    assert {r.name for r in rows} == {"deploy-bot", "dashboard"}
    assert all(rig.tokens[r.name] not in r.token_hash for r in rows)
    assert all(len(r.token_hash) == 64 for r in rows)


# --- reading -----------------------------------------------------------------------------


async def test_an_incident_carries_its_number_and_page_link(rig: ApiRig) -> None:
    number = await rig.declare("checkout 500s in EU")
    body = (await rig.http.get(f"/api/v1/incidents/{number}", headers=rig.auth("dashboard"))).json()
    assert body["number"] == number
    assert body["title"].lower() == "checkout 500s in eu"
    assert body["status"] == "triggered"
    assert body["roles"] == {"commander": "@alice"}
    assert body["url"] == f"https://ops.example/incidents/{number}"


async def test_list_filters_by_status_severity_type_and_declared_time(rig: ApiRig) -> None:
    first = await rig.declare("checkout down", severity="sev1")
    rig.core.clock.advance(hours=2)
    second = await rig.declare("search slow", type="performance", severity="sev4")
    await rig.core.run(f"/incident #{first} status resolved")
    h = rig.auth("dashboard")

    async def numbers(query: str) -> list[int]:
        answer = await rig.http.get(f"/api/v1/incidents?{query}", headers=h)
        assert answer.status_code == 200, answer.text
        return [i["number"] for i in answer.json()["items"]]

    assert await numbers("") == [second, first]  # newest first
    assert await numbers("status=resolved") == [first]
    assert await numbers("status=triggered&status=resolved") == [second, first]
    assert await numbers("severity=SEV4") == [second]
    assert await numbers("type=performance") == [second]
    assert await numbers("declared_since=2026-11-25T15:00:00Z") == [second]
    assert await numbers("declared_until=2026-11-25T15:00:00Z") == [first]


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("severity=banana", '"banana"'),
        ("type=nope", '"nope"'),
        ("status=sleeping", "sleeping"),
        ("limit=0", "limit"),
        ("declared_since=yesterday", "yesterday"),
        ("cursor=garbage", "garbage"),
    ],
)
async def test_bad_filters_are_422_problems_naming_the_value(
    rig: ApiRig, query: str, named: str
) -> None:
    answer = await rig.http.get(f"/api/v1/incidents?{query}", headers=rig.auth("dashboard"))
    assert answer.status_code == 422
    assert answer.headers["content-type"] == PROBLEM
    assert named in answer.json()["detail"]


async def test_pages_walk_every_incident_once(pg_rig: ApiRig) -> None:
    made = [await pg_rig.declare(f"incident number {i}") for i in range(7)]
    seen: list[int] = []
    url = "/api/v1/incidents?limit=3"
    pages = 0
    while url:
        body = (await pg_rig.http.get(url, headers=pg_rig.auth("deploy-bot"))).json()
        seen += [i["number"] for i in body["items"]]
        pages += 1
        url = (
            f"/api/v1/incidents?limit=3&cursor={body['next_cursor']}" if body["next_cursor"] else ""
        )
    assert seen == sorted(made, reverse=True)
    assert pages == 3


async def test_timeline_pages_and_kind_filter(pg_rig: ApiRig) -> None:
    number = await pg_rig.declare("db failover")
    for i in range(5):
        await pg_rig.core.run(f"/incident #{number} note step {i}")
    await pg_rig.core.run(f"/incident #{number} event primary promoted")
    h = pg_rig.auth("deploy-bot")
    texts: list[str] = []
    cursor = ""
    while True:
        body = (
            await pg_rig.http.get(f"/api/v1/incidents/{number}/timeline?limit=2{cursor}", headers=h)
        ).json()
        texts += [e["text"] for e in body["items"]]
        if not body["next_cursor"]:
            break
        cursor = f"&cursor={body['next_cursor']}"
    assert texts[0].startswith("Incident declared")
    assert texts[1:] == [f"step {i}" for i in range(5)] + ["primary promoted"]
    keys = (
        await pg_rig.http.get(f"/api/v1/incidents/{number}/timeline?kind=key_event", headers=h)
    ).json()["items"]
    assert [(e["text"], e["key_event"]) for e in keys] == [("primary promoted", True)]


async def test_private_incidents_are_seen_only_by_private_tokens(rig: ApiRig) -> None:
    await rig.token("security-team", "read", private=True)
    public = await rig.declare("checkout down")
    secret = await rig.declare("credential leak in a public bucket", type="security")

    async def listed(name: str) -> list[int]:
        body = (await rig.http.get("/api/v1/incidents", headers=rig.auth(name))).json()
        return [i["number"] for i in body["items"]]

    assert await listed("dashboard") == [public]
    assert await listed("security-team") == [secret, public]
    hidden = await rig.http.get(f"/api/v1/incidents/{secret}", headers=rig.auth("deploy-bot"))
    assert hidden.status_code == 404  # as absent as a number never used
    note = await rig.http.post(
        f"/api/v1/incidents/{secret}/notes", json={"text": "x"}, headers=rig.auth("deploy-bot")
    )
    assert note.status_code == 404
    shown = await rig.http.get(f"/api/v1/incidents/{secret}", headers=rig.auth("security-team"))
    assert shown.json()["private"] is True


# --- declare -----------------------------------------------------------------------------


async def test_declare_with_explicit_fields(rig: ApiRig) -> None:
    answer = await rig.http.post(
        "/api/v1/incidents",
        json={
            "description": "payments provider timing out",
            "title": "Payments timeouts",
            "type": "outage",
            "severity": "sev1",
            "priority": "p1",
            "commander": "@carol",
        },
        headers=rig.auth("deploy-bot"),
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert (body["title"], body["severity"], body["priority"]) == (
        "Payments timeouts",
        "sev1",
        "p1",
    )
    assert body["roles"]["commander"] == "@carol"
    assert body["declared_by"] == "@deploy-bot"
    assert answer.headers["location"] == f"/api/v1/incidents/{body['number']}"


async def test_declare_fills_left_out_fields_from_the_suggester(rig: ApiRig) -> None:
    answer = await rig.http.post(
        "/api/v1/incidents",
        json={"description": "login page very slow, latency p99 at 9s"},
        headers=rig.auth("deploy-bot"),
    )
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["type"] == "performance"
    assert body["severity"] in {"sev1", "sev2", "sev3", "sev4"}
    assert body["title"]


async def test_declare_is_idempotent_by_key(rig: ApiRig) -> None:
    h = rig.auth("deploy-bot")
    request = {"description": "queue backlog growing", "idempotency_key": "alert-7781"}
    first = await rig.http.post("/api/v1/incidents", json=request, headers=h)
    again = await rig.http.post("/api/v1/incidents", json=request, headers=h)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["number"] == again.json()["number"]
    listed = (await rig.http.get("/api/v1/incidents", headers=h)).json()["items"]
    assert len(listed) == 1
    other = await rig.http.post(
        "/api/v1/incidents",
        json={"description": "something else", "idempotency_key": "alert-7781"},
        headers=h,
    )
    assert other.status_code == 422
    assert "alert-7781" in other.json()["detail"]


async def test_a_refused_declare_changes_nothing_and_frees_its_key(rig: ApiRig) -> None:
    h = rig.auth("deploy-bot")
    bad = await rig.http.post(
        "/api/v1/incidents",
        json={"description": "disk full", "severity": "banana", "idempotency_key": "k1"},
        headers=h,
    )
    assert bad.status_code == 422
    assert bad.headers["content-type"] == PROBLEM
    assert '"banana"' in bad.json()["detail"] and "sev1" in bad.json()["detail"]
    assert (await rig.http.get("/api/v1/incidents", headers=h)).json()["items"] == []
    fixed = await rig.http.post(
        "/api/v1/incidents",
        json={"description": "disk full", "severity": "sev2", "idempotency_key": "k1"},
        headers=h,
    )
    assert fixed.status_code == 201


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({}, "description"),
        ({"description": ""}, "description"),
        ({"description": "x", "colour": "red"}, "colour"),
        ({"description": "x", "type": "nope"}, '"nope"'),
        ({"description": "x", "commander": "carol"}, "carol"),
    ],
)
async def test_bad_declares_are_422_naming_the_value(
    rig: ApiRig, body: dict[str, str], named: str
) -> None:
    answer = await rig.http.post("/api/v1/incidents", json=body, headers=rig.auth("deploy-bot"))
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert named in str(answer.json())


# --- changes -----------------------------------------------------------------------------


async def test_patch_changes_every_field_through_the_service(rig: ApiRig) -> None:
    number = await rig.declare("checkout down")
    answer = await rig.http.patch(
        f"/api/v1/incidents/{number}",
        json={
            "title": "Checkout down in EU",
            "severity": "sev1",
            "status": "investigating",
            "roles": {"scribe": "@bob"},
        },
        headers=rig.auth("deploy-bot"),
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["title"], body["severity"], body["status"]) == (
        "Checkout down in EU",
        "sev1",
        "investigating",
    )
    assert body["roles"]["scribe"] == "@bob"
    timeline = (
        await rig.http.get(f"/api/v1/incidents/{number}/timeline", headers=rig.auth("dashboard"))
    ).json()["items"]
    by_token = [e for e in timeline if e["author"] == "deploy-bot"]
    assert len(by_token) == 4
    assert {e["source"] for e in by_token} == {"api"}


async def test_patch_is_all_or_nothing(rig: ApiRig) -> None:
    number = await rig.declare("checkout down")
    h = rig.auth("deploy-bot")
    before = (await rig.http.get(f"/api/v1/incidents/{number}", headers=h)).json()
    entries = (await rig.http.get(f"/api/v1/incidents/{number}/timeline", headers=h)).json()
    answer = await rig.http.patch(
        f"/api/v1/incidents/{number}",
        json={"title": "Renamed", "severity": "sev1", "custom_fields": {"blast_radius": "huge"}},
        headers=h,
    )
    assert answer.status_code == 422
    problem = answer.json()
    assert problem["invalid_params"][0]["name"] == "custom_fields.blast_radius"
    assert "nothing was changed" in problem["detail"]
    after = (await rig.http.get(f"/api/v1/incidents/{number}", headers=h)).json()
    assert after == before
    assert (await rig.http.get(f"/api/v1/incidents/{number}/timeline", headers=h)).json() == entries
    # The chat's rules hold too: resolving needs the required fields.
    refused = await rig.http.patch(
        f"/api/v1/incidents/{number}", json={"severity": "sev3", "status": "cancelled"}, headers=h
    )
    assert refused.status_code == 422
    assert (await rig.http.get(f"/api/v1/incidents/{number}", headers=h)).json()["severity"] == (
        before["severity"]
    )


@pytest.mark.parametrize(
    ("body", "named"),
    [({}, "nothing to change"), ({"status": "sleeping"}, "sleeping"), ({"title": ""}, "title")],
)
async def test_bad_patches_are_422(rig: ApiRig, body: dict[str, str], named: str) -> None:
    number = await rig.declare()
    answer = await rig.http.patch(
        f"/api/v1/incidents/{number}", json=body, headers=rig.auth("deploy-bot")
    )
    assert answer.status_code == 422
    assert named in answer.text


async def test_notes_key_events_and_updates_are_authored_by_the_token(rig: ApiRig) -> None:
    number = await rig.declare()
    h = rig.auth("deploy-bot")
    for path, kind in (
        ("notes", "message"),
        ("key-events", "key_event"),
        ("updates", "status_update"),
    ):
        answer = await rig.http.post(
            f"/api/v1/incidents/{number}/{path}", json={"text": f"via {path}"}, headers=h
        )
        assert answer.status_code == 201, answer.text
        entry = answer.json()
        assert (entry["kind"], entry["text"], entry["author"]) == (
            kind,
            f"via {path}",
            "deploy-bot",
        )
    assert await rig.core.mirror.drain(timeout=5)
    channel = rig.core.incident_channel(number)
    posted = "\n".join(rig.core.chat.texts(channel) + rig.core.chat.texts(channel, thread=True))
    assert "via notes" in posted and "via key-events" in posted


async def test_writes_to_an_unknown_incident_are_404(rig: ApiRig) -> None:
    answer = await rig.http.post(
        "/api/v1/incidents/999/notes", json={"text": "x"}, headers=rig.auth("deploy-bot")
    )
    assert answer.status_code == 404
    assert answer.json()["detail"] == "no incident #999"


async def test_action_items(rig: ApiRig) -> None:
    number = await rig.declare()
    h = rig.auth("deploy-bot")
    made = await rig.http.post(
        f"/api/v1/incidents/{number}/action-items",
        json={"text": "add a retry budget", "assignee": "@bob", "due": "2026-12-01"},
        headers=h,
    )
    assert made.status_code == 201, made.text
    assert made.json()["number"] == 1 and made.json()["assignee"] == "@bob"
    listed = (await rig.http.get(f"/api/v1/incidents/{number}/action-items", headers=h)).json()
    assert [(a["number"], a["status"]) for a in listed] == [(1, "open")]
    done = await rig.http.patch(
        f"/api/v1/incidents/{number}/action-items/1",
        json={"text": "add a retry budget to checkout", "status": "done"},
        headers=h,
    )
    assert done.status_code == 200, done.text
    assert (done.json()["text"], done.json()["status"]) == (
        "add a retry budget to checkout",
        "done",
    )
    bad_due = await rig.http.patch(
        f"/api/v1/incidents/{number}/action-items/1", json={"due": "someday"}, headers=h
    )
    assert bad_due.status_code == 422 and "someday" in bad_due.text
    missing = await rig.http.patch(
        f"/api/v1/incidents/{number}/action-items/9", json={"status": "done"}, headers=h
    )
    assert missing.status_code == 404


async def test_unknown_routes_and_methods_are_problems(rig: ApiRig) -> None:
    h = rig.auth("deploy-bot")
    nowhere = await rig.http.get("/api/v1/nowhere", headers=h)
    assert nowhere.status_code == 404 and nowhere.headers["content-type"] == PROBLEM
    method = await rig.http.delete("/api/v1/incidents/1", headers=h)
    assert method.status_code == 405 and method.headers["content-type"] == PROBLEM
    not_json = await rig.http.post(
        "/api/v1/incidents", content=b"{not json", headers={**h, "content-type": "application/json"}
    )
    assert not_json.status_code == 422 and not_json.headers["content-type"] == PROBLEM


async def test_openapi_document_and_offline_docs(rig: ApiRig) -> None:
    doc = (await rig.http.get("/openapi.json")).json()
    assert {
        "/api/v1/incidents",
        "/api/v1/incidents/{number}",
        "/api/v1/incidents/{number}/timeline",
        "/api/v1/incidents/{number}/notes",
        "/api/v1/incidents/{number}/key-events",
        "/api/v1/incidents/{number}/updates",
        "/api/v1/incidents/{number}/action-items",
        "/api/v1/incidents/{number}/action-items/{n}",
    } <= set(doc["paths"])
    assert doc["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    page = await rig.http.get("/docs")
    assert page.status_code == 200
    assert "//" not in page.text.replace("<!doctype", "").split("<body>")[0].replace("://", "")
    assert 'src="/docs/assets/swagger-ui-bundle.js"' in page.text
    asset = await rig.http.get("/docs/assets/swagger-ui-bundle.js")
    assert asset.status_code == 200 and len(asset.content) > 100_000
    assert (await rig.http.get("/docs/assets/..%2F__init__.py")).status_code == 404


async def test_a_key_left_by_a_request_that_died_is_taken_over_later(rig: ApiRig) -> None:
    async with rig.core.store.unit() as u:  # a declare that claimed its key, then its process died
        token = await u.token_by_name("deploy-bot")
        assert token is not None and token.id is not None
        body = json.dumps({"description": "disk full on db-3"}, sort_keys=True)
        same = hashlib.sha256(body.encode()).hexdigest()  # the same request as below
        await u.claim_idempotency_key(token.id, "k9", fingerprint=same, now=rig.core.clock.now())
    h = rig.auth("deploy-bot")
    request = {"description": "disk full on db-3", "idempotency_key": "k9"}
    running = await rig.http.post("/api/v1/incidents", json=request, headers=h)
    assert running.status_code == 409 and "k9" in running.json()["detail"]
    rig.core.clock.advance(minutes=3)
    taken = await rig.http.post("/api/v1/incidents", json=request, headers=h)
    assert taken.status_code == 201, taken.text
    again = await rig.http.post("/api/v1/incidents", json=request, headers=h)
    assert (again.status_code, again.json()["number"]) == (200, taken.json()["number"])


async def test_patch_status_follows_the_chat_lifecycle(rig: ApiRig) -> None:
    number = await rig.declare("search slow", type="performance")
    h = rig.auth("deploy-bot")
    acked = await rig.http.patch(
        f"/api/v1/incidents/{number}", json={"status": "acknowledged"}, headers=h
    )
    assert acked.status_code == 200 and acked.json()["acknowledged_at"] is not None
    resolved = await rig.http.patch(
        f"/api/v1/incidents/{number}", json={"status": "resolved"}, headers=h
    )
    assert resolved.status_code == 200, resolved.text
    assert resolved.json()["status"] == "resolved" and resolved.json()["resolved_at"]
    again = await rig.http.patch(
        f"/api/v1/incidents/{number}", json={"status": "resolved"}, headers=h
    )
    assert again.status_code == 422 and "already" in again.json()["detail"]
