"""OpenAISuggester and OpenAISummarizer: the real `openai` SDK against FakeOpenAI over HTTP."""

from __future__ import annotations

import dataclasses
import json
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.openai_suggester import OpenAISuggester, OpenAISummarizer, endpoint_host, make_client
from bot.ai import SERVICES, cited_ids, model_answer
from bot.catalog import Catalog, load_catalog
from bot.models import EntryKind, TimelineEntry
from bot.ports import Suggestion
from bot.redact import Redactor
from bot.service import IncidentService
from bot.suggest import ai_off_types_mentioned, heuristic_suggestion
from storage.store import SqlStore
from tests.conftest import ALICE, build_core
from tests.fakes.clock import FakeClock
from tests.fakes.openai import FakeOpenAI, RecordedRequest, Reply
from tests.labelled import load_labelled

API_KEY = "sk-test-0123456789abcdefghij"
MODEL = "gpt-4o-mini"
CHECKOUT = "checkout 500s in EU since the 14:05 deploy, card payments failing"
HAS_ORIGIN_FIELDS = {"model", "endpoint"} <= {f.name for f in dataclasses.fields(Suggestion)}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0) as c:
        yield c


@pytest.fixture
def suggester(client: openai.AsyncOpenAI) -> OpenAISuggester:
    return OpenAISuggester(client, MODEL, budget_s=5.0)


def good_answer(catalog: Catalog, **custom: Any) -> dict[str, Any]:
    answer = model_answer(
        Suggestion(
            title="Checkout 500s in the EU",
            summary="Card payments fail in the EU.",
            type="outage",
            severity="sev1",
            priority="p1",
        ),
        catalog,
    )
    answer[SERVICES] = ["checkout", "payments"]
    answer["custom_fields"].update({"region": "eu", "customers_affected": 1200, **custom})
    return answer


async def suggest(
    s: OpenAISuggester, catalog: Catalog, text: str = CHECKOUT, type_hint: str | None = None
) -> Suggestion:
    return await s.suggest(description=text, type_hint=type_hint, catalog=catalog)


def heuristic(catalog: Catalog, text: str = CHECKOUT) -> Suggestion:
    return heuristic_suggestion(text, None, catalog)


def same_fields(a: Suggestion, b: Suggestion) -> bool:
    return (a.title, a.summary, a.type, a.severity, a.priority, a.custom_fields, a.sources) == (
        b.title,
        b.summary,
        b.type,
        b.severity,
        b.priority,
        b.custom_fields,
        b.sources,
    )


# --- a good answer --------------------------------------------------------------------------


async def test_a_good_answer_fills_the_fields_from_the_model(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    fake.reply_json(good_answer(catalog))
    s = await suggest(suggester, catalog)
    assert (s.title, s.type, s.severity, s.priority) == (
        "Checkout 500s in the EU",
        "outage",
        "sev1",
        "p1",
    )
    assert s.custom_fields == {
        SERVICES: ["checkout", "payments"],
        "region": "eu",
        "customers_affected": 1200,
    }
    assert set(s.sources.values()) == {"model"}
    assert set(s.sources) == {
        "title",
        "summary",
        "type",
        "severity",
        "priority",
        SERVICES,
        "region",
        "customers_affected",
    }
    assert s.note == f"Suggested by {MODEL} at 127.0.0.1:{fake.port}"
    assert API_KEY not in s.note


async def test_the_request_carries_the_model_the_catalog_and_its_schema(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    def enums_are_the_catalog(schema: dict[str, Any]) -> None:
        props = schema["properties"]
        assert props["incident_type"]["enum"] == catalog.type_names
        assert props["severity"]["enum"] == catalog.severity_names
        assert props["priority"]["enum"] == catalog.priority_names

    fake.check_schema(enums_are_the_catalog).reply_json(good_answer(catalog))
    await suggest(suggester, catalog)
    assert fake.errors == []
    request = fake.last_request()
    assert request.body["model"] == MODEL
    system, user = request.messages
    assert system["role"] == "system" and user["role"] == "user"
    for item in [*catalog.incident_types, *catalog.severities, *catalog.priorities]:
        assert item.description in system["content"]
    assert CHECKOUT in user["content"]
    fmt = fake.last_response_format()
    assert fmt is not None and fmt["type"] == "json_schema"
    assert fmt["json_schema"]["strict"] is True
    schema = fake.last_schema()
    assert schema["properties"]["incident_type"]["enum"] == catalog.type_names
    assert schema["properties"]["severity"]["enum"] == catalog.severity_names
    assert schema["properties"]["priority"]["enum"] == catalog.priority_names
    custom = schema["properties"]["custom_fields"]["properties"]
    assert "security_lead" not in custom and "region" in custom
    assert request.headers["authorization"] == "[redacted]"  # a key was sent (and is hidden)


@pytest.mark.skipif(not HAS_ORIGIN_FIELDS, reason="Suggestion has no model/endpoint fields yet")
async def test_the_model_and_endpoint_are_recorded(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    fake.reply_json(good_answer(catalog))
    s = await suggest(suggester, catalog)
    recorded = dataclasses.asdict(s)  # the fields exist only once ports.py has them
    assert (recorded["model"], recorded["endpoint"]) == (MODEL, f"127.0.0.1:{fake.port}")


# --- the model cannot help: the heuristic answers, and says why -----------------------------


async def test_a_slow_model_is_cut_off_at_the_budget(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, catalog: Catalog
) -> None:
    fake.delay(6.0).reply_json(good_answer(catalog))
    suggester = OpenAISuggester(client, MODEL, budget_s=0.3)
    started = time.monotonic()
    s = await suggest(suggester, catalog)
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 2.0, elapsed  # far below the model's 6 s, with room for a busy box
    assert same_fields(s, heuristic(catalog))
    assert s.note.startswith("AI suggestion timed out after 0.3s; using the built-in heuristic")
    assert len(fake.chat_requests) == 1


async def test_an_http_500_falls_back_after_one_quick_retry(
    fake: FakeOpenAI, catalog: Catalog
) -> None:
    fake.fail(500, retry_after=0.01)
    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=1) as c:
        s = await suggest(OpenAISuggester(c, MODEL, budget_s=5.0), catalog)
    assert same_fields(s, heuristic(catalog))
    assert "answered HTTP 500" in s.note and "using the built-in heuristic" in s.note
    assert [r.status for r in fake.chat_requests] == [500, 500]


async def test_invalid_json_falls_back(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    fake.reply_invalid_json()
    s = await suggest(suggester, catalog)
    assert same_fields(s, heuristic(catalog))
    assert s.note.startswith("AI suggestion failed: the model's answer was not valid JSON")


async def test_a_refusal_falls_back(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    fake.reply_refusal("I can't help with that.")
    s = await suggest(suggester, catalog)
    assert same_fields(s, heuristic(catalog))
    assert s.note.startswith("AI suggestion was declined by the model")


async def test_an_unreachable_endpoint_falls_back(catalog: Catalog) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    async with openai.AsyncOpenAI(
        api_key=API_KEY, base_url=f"http://127.0.0.1:{port}/v1", max_retries=0
    ) as c:
        s = await suggest(OpenAISuggester(c, MODEL, budget_s=2.0), catalog)
    assert same_fields(s, heuristic(catalog))
    assert f"could not reach 127.0.0.1:{port}" in s.note


async def test_a_wrong_key_falls_back_and_is_never_shown(catalog: Catalog) -> None:
    async with (
        FakeOpenAI(api_key="sk-the-right-one-0000") as fake,
        openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0) as c,
    ):
        s = await suggest(OpenAISuggester(c, MODEL), catalog)
    assert "answered HTTP 401 (invalid_api_key)" in s.note
    assert API_KEY not in s.note and API_KEY[-4:] not in s.note


async def test_without_a_key_no_authorization_header_is_sent(
    fake: FakeOpenAI, catalog: Catalog
) -> None:
    client = make_client(api_key=None, base_url=fake.base_url)
    async with client:
        s = await suggest(OpenAISuggester(client, MODEL, send_auth=False), catalog)
    assert "authorization" not in fake.last_request().headers
    assert "answered HTTP 401" in s.note  # this fake wants a key; a local server would not


# --- values outside the catalog --------------------------------------------------------------


async def test_values_outside_the_catalog_never_reach_the_suggestion(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    answer = good_answer(catalog, region="mars", datastore="postgres")
    answer.update(incident_type="alien", severity="sev9", priority="p0")
    answer[SERVICES] = ["checkout", "warp-drive"]
    answer["custom_fields"]["security_lead"] = "@mallory"  # a person: never taken from a model
    fake.reply_json(answer)
    s = await suggest(suggester, catalog)
    h = heuristic(catalog)
    assert (s.type, s.severity, s.priority) == (h.type, h.severity, h.priority)
    assert s.sources["type"] == s.sources["severity"] == s.sources["priority"] == "heuristic"
    assert s.custom_fields["region"] == "eu" and s.sources["region"] == "heuristic"
    assert s.custom_fields[SERVICES] == ["checkout"]
    assert "security_lead" not in s.custom_fields and "datastore" not in s.custom_fields
    values = json.dumps(dataclasses.asdict(s) | {"note": ""})
    for bad in ("alien", "sev9", "p0", "mars", "warp-drive", "mallory", "postgres"):
        assert bad not in values
    assert 'severity "sev9"' in s.note and 'type "alien"' in s.note


async def test_declaring_with_bad_model_answers_still_succeeds(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = build_core(engine, catalog, FakeClock())
    service = IncidentService(
        store=SqlStore(engine),
        catalog=catalog,
        suggester=OpenAISuggester(client, MODEL, budget_s=0.5),
        clock=core.clock,
        notify=core.mirror.wake,
    )
    answer = good_answer(catalog, region="mars")
    answer.update(severity="sev9")
    answers = [  # values outside the catalog, an HTTP 500, and a model past the budget
        lambda: fake.reply_json(answer),
        lambda: fake.fail(500),
        lambda: fake.delay(2.0),
    ]
    for number, script in enumerate(answers, start=1):
        script()
        reply = await service.handle_text(f"declare {CHECKOUT}", actor=ALICE, where=core.general)
        assert reply.ok and reply.incident == number, reply.text
    async with core.store.unit() as u:
        incidents = [await u.incident(n) for n in (1, 2, 3)]
    h = heuristic(catalog)
    for incident in incidents:
        assert incident is not None
        assert incident.severity in catalog.severity_names
        assert incident.custom_fields.get("region") == "eu"
    assert incidents[0] is not None and incidents[0].title == "Checkout 500s in the EU"
    assert incidents[0].severity == h.severity  # sev9 was dropped for the heuristic's
    assert [i.severity for i in incidents[1:] if i] == [h.severity, h.severity]


# --- servers without Structured Outputs -----------------------------------------------------


async def test_a_server_refusing_json_schema_gets_json_object(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    fake.refuse_json_schema().reply_json(good_answer(catalog))
    s = await suggest(suggester, catalog)
    assert (s.type, s.severity) == ("outage", "sev1") and s.sources["severity"] == "model"
    assert "in JSON mode" in s.note
    first, second = fake.chat_requests
    assert first.status == 400 and first.response_format is not None
    assert first.response_format["type"] == "json_schema"
    assert second.status == 200 and second.response_format == {"type": "json_object"}
    assert '"incident_type"' in second.messages[0]["content"]  # the schema is in the prompt

    await suggest(suggester, catalog)  # remembered: no second refusal
    assert [r.response_format for r in fake.chat_requests[2:]] == [{"type": "json_object"}]


# --- privacy ---------------------------------------------------------------------------------


async def test_secrets_are_redacted_before_the_request(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, catalog: Catalog
) -> None:
    token = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp"
    text = (
        f"checkout down, alice@example.com pasted the bot token {token} and CUST-004217 is affected"
    )
    suggester = OpenAISuggester(client, MODEL, redactor=Redactor([r"CUST-\d{6}"]))
    fake.reply_json(good_answer(catalog))
    s = await suggest(suggester, catalog, text)
    raw = fake.last_request().raw.decode()
    for secret in ("alice@example.com", token, "CUST-004217"):
        assert secret not in raw
    assert "[redacted-email]" in raw and "[redacted-slack-token]" in raw
    assert s.type == "outage"


@pytest.mark.parametrize(
    ("text", "hint"),
    [
        ("leaked api token found on a public repo", "security"),
        ("ransomware note on the file server, customer data may be compromised", None),
    ],
)
async def test_no_request_for_a_type_with_ai_off(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog, text: str, hint: str | None
) -> None:
    security = catalog.incident_type("security")
    assert security is not None and security.ai is False
    s = await suggest(suggester, catalog, text, hint)
    assert fake.requests == []
    assert s.type == "security"
    assert s.note == "AI is off for security incidents; using the built-in heuristic"


# --- the labelled set end to end --------------------------------------------------------------


async def test_the_labelled_set_through_the_model_path(
    fake: FakeOpenAI, suggester: OpenAISuggester, catalog: Catalog
) -> None:
    """The fake answers with each description's label, so every field the suggestion takes
    from the model must equal the label: request, schema, parsing and validation all hold."""
    items = load_labelled()
    by_text = {i.text: i for i in items}

    def truth(request: RecordedRequest) -> Reply:
        description = request.messages[-1]["content"].split("Description:\n", 1)[1]
        item = by_text[description]
        itype = catalog.incident_type(item.type)
        assert itype is not None
        rank = catalog.severity_names.index(item.severity)
        return Reply.json(
            model_answer(
                Suggestion(
                    title=item.text[:60],
                    summary=item.text,
                    type=item.type,
                    severity=item.severity,
                    priority=catalog.priority_names[rank],
                ),
                catalog,
            )
        )

    fake.respond_with(truth)
    asked = 0
    for item in items:
        s = await suggest(suggester, catalog, item.text)
        if heuristic(catalog, item.text).type == "security" or ai_off_types_mentioned(
            item.text, catalog
        ):
            assert "AI is off" in s.note or "for which AI is off" in s.note, item.id
            continue
        assert item.type != "security", item.id  # a security incident must never be sent
        asked += 1
        assert (s.type, s.severity) == (item.type, item.severity), item.id
        assert s.sources["type"] == s.sources["severity"] == "model"
    assert fake.errors == []
    # Only the security descriptions and a few that mention secrets stay with the heuristic.
    assert len(fake.chat_requests) == asked >= sum(i.type != "security" for i in items) - 5


# --- catch-up -----------------------------------------------------------------------------------


async def _timeline(engine: AsyncEngine, catalog: Catalog) -> list[TimelineEntry]:
    core = build_core(engine, catalog, FakeClock())
    await core.run(f"declare {CHECKOUT}")
    where = core.where(core.incident_channel(1))
    await core.run("note payments gateway returning 502, ping ops@example.com", where=where)
    core.clock.advance(minutes=7)
    await core.run("event rolled back deploy 4.12, errors dropping", where=where)
    await core.run("status monitoring", where=where)
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None and incident.id is not None
        return await u.timeline(incident.id)


def _cite_everything_and_invent(request: RecordedRequest) -> str:
    ids = [int(n) for n in re.findall(r"^\[e(\d+)\]", request.messages[-1]["content"], re.M)]
    # As models answer: mostly the ids as shown, sometimes the older [#12] or a grouped bracket.
    return (
        f"Checkout failed for EU card payments [e{ids[0]}][#{ids[1]}]. "
        f"The database was restored from backup [e999]. "
        f"The deploy was rolled back and errors are dropping [e{ids[2]}, e998]. "
        f"The incident is being monitored [e{ids[-1]}]."
    )


async def test_catchup_cites_real_entries_and_drops_fabricated_ones(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    entries = await _timeline(engine, catalog)
    fake.respond_with(_cite_everything_and_invent)
    text, removed = await OpenAISummarizer(client, MODEL).summarize(entries)
    real = {e.id for e in entries}
    assert removed == 2
    assert cited_ids(text) and set(cited_ids(text)) <= real
    assert "999" not in text and "998" not in text and "restored from backup" not in text
    ids = sorted(e.id for e in entries if e.id is not None)
    assert text == (
        f"Checkout failed for EU card payments [e{ids[0]}][e{ids[1]}]. "
        f"The deploy was rolled back and errors are dropping [e{ids[2]}]. "
        f"The incident is being monitored [e{ids[-1]}]."
    )
    request = fake.last_request()
    assert request.body["model"] == MODEL and request.response_format is None
    prompt = request.messages[-1]["content"]
    for e in entries:
        assert f"[e{e.id}] " in prompt
    assert "ops@example.com" not in request.raw.decode()


async def test_catchup_falls_back_to_the_plain_catch_up_when_the_model_is_slow(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    entries = await _timeline(engine, catalog)
    fake.delay(6.0)
    started = time.monotonic()
    text, removed = await OpenAISummarizer(client, MODEL, budget_s=0.3).summarize(entries)
    assert time.monotonic() - started < 0.3 + 2.0
    assert removed == 0
    assert text.startswith(f"AI summary timed out after 0.3s ({MODEL} at 127.0.0.1:")
    key = next(e for e in entries if e.kind is EntryKind.KEY_EVENT)
    assert f"rolled back deploy 4.12, errors dropping [e{key.id}]" in text


async def test_catchup_of_an_empty_timeline_asks_nothing(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    assert await OpenAISummarizer(client, MODEL).summarize([]) == (
        "Nothing on the timeline yet.",
        0,
    )
    assert fake.requests == []


def test_endpoint_host_never_shows_credentials() -> None:
    assert endpoint_host("https://user:sk-secret@llm.example.com:8443/v1/") == (
        "llm.example.com:8443"
    )
    assert endpoint_host("https://api.openai.com/v1") == "api.openai.com"


@pytest.mark.parametrize("description", [
    "the deploy pipeline printed the prod database password to the build logs",
    "customer PII exported to a public S3 bucket by the nightly data job",
])
async def test_a_description_that_mentions_a_private_matter_never_reaches_the_model(
    description: str,
) -> None:
    async with FakeOpenAI() as fake:
        suggester = OpenAISuggester(
            openai.AsyncOpenAI(api_key="sk-test", base_url=fake.base_url, max_retries=0),
            "gpt-test")
        suggestion = await suggester.suggest(description=description, type_hint=None,
                                             catalog=load_catalog())
        assert fake.chat_requests == []
        assert "for which AI is off" in suggestion.note
