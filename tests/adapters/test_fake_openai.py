"""The fake OpenAI server, exercised through the real ``openai.AsyncOpenAI`` client over HTTP."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import aiohttp
import openai
import pytest

from tests.fakes.openai import FakeOpenAI, RecordedRequest, Reply

API_KEY = "sk-test-0123456789"
MODEL = "gpt-4o-mini"
MESSAGES = [
    {"role": "system", "content": "You fill incident fields. Answer in JSON."},
    {"role": "user", "content": "checkout is returning 502s for everyone"},
]
SUGGESTION_SCHEMA = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "severity": {"type": "string", "enum": ["SEV1", "SEV2", "SEV3", "SEV4"]},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["title", "severity", "tags"],
    "additionalProperties": False,
}
JSON_SCHEMA_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "incident_fields", "strict": True, "schema": SUGGESTION_SCHEMA},
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    """No retries and a short timeout, so failures surface at once."""
    async with openai.AsyncOpenAI(
        api_key=API_KEY, base_url=fake.base_url, max_retries=0, timeout=2.0
    ) as c:
        yield c


async def test_json_schema_reply_is_parsed_and_schema_is_visible(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    suggestion = {"title": "Checkout 502s", "severity": "SEV1", "tags": ["payments"]}
    fake.reply_json(suggestion)

    completion = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format=JSON_SCHEMA_FORMAT
    )

    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == MODEL
    assert completion.system_fingerprint
    choice = completion.choices[0]
    assert choice.index == 0
    assert choice.finish_reason == "stop"
    assert choice.message.role == "assistant"
    assert choice.message.refusal is None
    assert json.loads(choice.message.content or "") == suggestion
    assert completion.usage is not None
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )
    assert completion._request_id and completion._request_id.startswith("req_")

    assert fake.last_schema() == SUGGESTION_SCHEMA
    assert fake.last_response_format() == JSON_SCHEMA_FORMAT
    request = fake.last_request()
    assert request.body["messages"] == MESSAGES
    assert request.headers["authorization"] == "[redacted]"
    assert API_KEY not in json.dumps(request.headers)
    assert request.status == 200


async def test_beta_parse_helper_reads_the_reply(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    """The SDK's own structured-output helper builds json_schema and parses the content."""
    pydantic = pytest.importorskip("pydantic")

    class Fields(pydantic.BaseModel):
        title: str
        severity: str

    fake.reply_json({"title": "Checkout 502s", "severity": "SEV2"})
    completion = await client.chat.completions.parse(
        model=MODEL, messages=MESSAGES, response_format=Fields
    )
    assert completion.choices[0].message.parsed == Fields(title="Checkout 502s", severity="SEV2")
    schema = fake.last_schema()
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"title", "severity"}


async def test_server_error_surfaces_as_internal_server_error(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.fail(500)
    with pytest.raises(openai.InternalServerError) as caught:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.status_code == 500
    assert isinstance(caught.value.body, dict)
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.body["type"] == "server_error"
    assert len(fake.chat_requests) == 1
    assert fake.last_request().status == 500


async def test_fail_counts_every_retry_attempt(fake: FakeOpenAI) -> None:
    fake.fail(500, n=2, retry_after=0.01).reply_text("recovered")
    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=2) as c:
        completion = await c.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == "recovered"
    assert [r.status for r in fake.chat_requests] == [500, 500, 200]
    assert [r.headers.get("x-stainless-retry-count") for r in fake.chat_requests] == [
        "0",
        "1",
        "2",
    ]


async def test_rate_limit_error(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.fail(429, n=1)
    with pytest.raises(openai.RateLimitError) as caught:
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert caught.value.code == "rate_limit_exceeded"
    # The queued failure is used up; the standing answer comes back.
    completion = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert completion.choices[0].message.content == "ok"


async def test_slow_answer_times_out_without_blocking_and_close_is_prompt() -> None:
    fake = FakeOpenAI()
    await fake.start()
    try:
        fake.delay(30)
        async with openai.AsyncOpenAI(
            api_key=API_KEY, base_url=fake.base_url, max_retries=0, timeout=0.2
        ) as slow_client:
            started = time.monotonic()
            with pytest.raises(openai.APITimeoutError):
                await slow_client.chat.completions.create(model=MODEL, messages=MESSAGES)
            assert time.monotonic() - started < 5.0  # vs. the 30 s delay
    finally:
        started = time.monotonic()
        await fake.close()
        assert time.monotonic() - started < 5.0


async def test_delayed_request_does_not_block_others_and_close_ends_it(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.delay(30, n=1)
    slow = asyncio.create_task(client.chat.completions.create(model=MODEL, messages=MESSAGES))
    await fake.wait_for_requests(1)  # the slow request is being answered

    started = time.monotonic()
    models = await client.models.list()
    fast = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert time.monotonic() - started < 5.0
    assert [m.id for m in models.data] == [MODEL]
    assert fast.choices[0].message.content == "ok"
    assert not slow.done()

    started = time.monotonic()
    await fake.close()
    assert time.monotonic() - started < 5.0
    with pytest.raises(openai.APIError):  # 503, or a dropped connection
        await slow


async def test_json_schema_refused_but_json_object_works(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.refuse_json_schema().reply_json({"title": "Checkout 502s"})

    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, response_format=JSON_SCHEMA_FORMAT
        )
    assert caught.value.body == {
        "message": "response_format json_schema is not supported",
        "type": "invalid_request_error",
        "param": "response_format",
        "code": None,
    }

    completion = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format={"type": "json_object"}
    )
    assert json.loads(completion.choices[0].message.content or "") == {"title": "Checkout 502s"}
    assert fake.last_response_format() == {"type": "json_object"}
    assert fake.last_schema() is None


@pytest.mark.parametrize("expected_key", [API_KEY, None])
async def test_missing_auth_is_rejected(expected_key: str | None) -> None:
    """With or without a configured key, no bearer token means 401."""
    async with (
        FakeOpenAI(api_key=expected_key) as fake,
        openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0) as c,
    ):
        with pytest.raises(openai.AuthenticationError) as caught:
            await c.chat.completions.create(
                model=MODEL, messages=MESSAGES, extra_headers={"Authorization": openai.omit}
            )
        assert "authorization" not in fake.last_request().headers
        assert fake.last_request().status == 401
    assert caught.value.status_code == 401
    assert "didn't provide an API key" in caught.value.message
    assert set(caught.value.body) == {"message", "type", "param", "code"}


async def test_wrong_api_key_is_rejected(fake: FakeOpenAI) -> None:
    async with openai.AsyncOpenAI(
        api_key="sk-wrong-key-999", base_url=fake.base_url, max_retries=0
    ) as wrong:
        with pytest.raises(openai.AuthenticationError) as caught:
            await wrong.models.list()
    assert caught.value.code == "invalid_api_key"
    assert "sk-wrong-key-999" not in caught.value.message


async def test_invalid_json_content(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply_invalid_json()
    completion = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format={"type": "json_object"}
    )
    content = completion.choices[0].message.content or ""
    assert content
    with pytest.raises(json.JSONDecodeError):
        json.loads(content)


async def test_queue_then_standing_answer(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply_text("first", n=1).reply_text("second", n=1).reply_text("always")
    answers = [
        (await client.chat.completions.create(model=MODEL, messages=MESSAGES))
        .choices[0]
        .message.content
        for _ in range(4)
    ]
    assert answers == ["first", "second", "always", "always"]


async def test_responder_decides_from_the_request(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    async def echo_severity(request: RecordedRequest) -> Reply:
        text = request.messages[-1]["content"]
        return Reply.json({"severity": "SEV1" if "everyone" in text else "SEV4"})

    fake.respond_with(echo_severity)
    loud = await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    quiet = await client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "one pod restarted"}]
    )
    assert json.loads(loud.choices[0].message.content or "") == {"severity": "SEV1"}
    assert json.loads(quiet.choices[0].message.content or "") == {"severity": "SEV4"}


async def test_responder_bug_becomes_a_visible_500(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    def broken(request: RecordedRequest) -> Reply:
        raise KeyError("oops")

    fake.respond_with(broken)
    with pytest.raises(openai.InternalServerError, match="oops"):
        await client.chat.completions.create(model=MODEL, messages=MESSAGES)
    assert isinstance(fake.errors[0], KeyError)


async def test_refusal_reply(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    fake.reply_refusal("I can't help with that.")
    completion = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format=JSON_SCHEMA_FORMAT
    )
    message = completion.choices[0].message
    assert message.content is None
    assert message.refusal == "I can't help with that."


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"messages": []}, "messages"),
        ({"messages": [{"content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        ({"messages": [{"role": "user"}]}, "messages[0].content"),
        (
            {
                "messages": [{"role": "user", "content": "hi"}],
                "response_format": {"type": "json_object"},
            },
            "messages",  # json_object needs the word "json" in the messages
        ),
        (
            {
                "messages": MESSAGES,
                "response_format": {"type": "json_schema", "json_schema": {"schema": {}}},
            },
            "response_format.json_schema.name",
        ),
        (
            {"messages": MESSAGES, "response_format": {"type": "xml"}},
            "response_format.type",
        ),
    ],
)
async def test_malformed_requests_get_400(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, kwargs: dict, param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        await client.chat.completions.create(model=MODEL, **kwargs)
    assert caught.value.param == param
    assert set(caught.value.body) == {"message", "type", "param", "code"}
    assert caught.value.type == "invalid_request_error"


async def test_non_strict_schema_rejected_in_strict_mode(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    loose = {"type": "object", "properties": {"title": {"type": "string"}}}
    response_format = {
        "type": "json_schema",
        "json_schema": {"name": "loose", "strict": True, "schema": loose},
    }
    with pytest.raises(openai.BadRequestError, match="additionalProperties"):
        await client.chat.completions.create(
            model=MODEL, messages=MESSAGES, response_format=response_format
        )


async def test_check_schema_hook(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    def severity_is_enum(schema: dict) -> None:
        assert "enum" in schema["properties"]["severity"], "severity must be an enum"

    fake.check_schema(severity_is_enum)
    await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, response_format=JSON_SCHEMA_FORMAT
    )
    bad = json.loads(json.dumps(JSON_SCHEMA_FORMAT))
    del bad["json_schema"]["schema"]["properties"]["severity"]["enum"]
    with pytest.raises(openai.BadRequestError, match="severity must be an enum"):
        await client.chat.completions.create(model=MODEL, messages=MESSAGES, response_format=bad)


async def test_raw_malformed_body_and_unknown_route(fake: FakeOpenAI) -> None:
    headers = {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        async with http.post(
            f"{fake.base_url}/chat/completions", data=b"{not json", headers=headers
        ) as resp:
            assert resp.status == 400
            body = await resp.json()
        async with http.post(
            f"{fake.base_url}/chat/completions", json={"messages": MESSAGES}, headers=headers
        ) as resp:
            assert resp.status == 400
            no_model = await resp.json()
        async with http.get(f"{fake.base_url}/nope", headers=headers) as resp:
            assert resp.status == 404
            unknown = await resp.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert "parse the JSON body" in body["error"]["message"]
    assert "model" in no_model["error"]["message"]
    assert unknown["error"]["message"] == "Invalid URL (GET /v1/nope)"
    assert fake.requests[0].body is None and fake.requests[0].raw == b"{not json"


async def test_streaming(fake: FakeOpenAI, client: openai.AsyncOpenAI) -> None:
    text = json.dumps({"title": "Checkout 502s", "severity": "SEV1", "tags": []})
    fake.reply_text(text)
    stream = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    pieces: list[str] = []
    finish_reasons: list[str | None] = []
    usage = None
    async for chunk in stream:
        assert chunk.object == "chat.completion.chunk"
        assert chunk.id.startswith("chatcmpl-")
        for choice in chunk.choices:
            pieces.append(choice.delta.content or "")
            finish_reasons.append(choice.finish_reason)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces) == text
    assert len(pieces) > 3  # really streamed in several chunks
    assert finish_reasons[-1] == "stop"
    assert usage is not None and usage.completion_tokens > 0
    assert fake.last_request().body["stream"] is True


async def test_max_tokens_truncates_with_length(
    fake: FakeOpenAI, client: openai.AsyncOpenAI
) -> None:
    fake.reply_json({"title": "Checkout 502s for everyone", "severity": "SEV1"})
    completion = await client.chat.completions.create(
        model=MODEL, messages=MESSAGES, max_completion_tokens=5
    )
    choice = completion.choices[0]
    assert choice.finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(choice.message.content or "")
