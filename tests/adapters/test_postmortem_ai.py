"""The postmortem's narrative written by a model (the real OpenAI client against FakeOpenAI):
sentences citing real entries are kept, the others removed and counted; the timeline is
redacted before it is sent; a failing model leaves the headings to fill in."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.openai_suggester import OpenAISummarizer
from bot.catalog import Catalog
from bot.redact import Redactor
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from tests.conftest import ALICE, Core, build_core
from tests.fakes.clock import FakeClock
from tests.fakes.openai import FakeOpenAI, RecordedRequest
from tests.unit.test_postmortem import scripted, sections

API_KEY = "sk-postmortem-0123456789abcdef"
MODEL = "gpt-4o-mini"


@pytest.fixture
async def fake() -> AsyncIterator[FakeOpenAI]:
    async with FakeOpenAI(api_key=API_KEY) as server:
        yield server


@pytest.fixture
async def client(fake: FakeOpenAI) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=API_KEY, base_url=fake.base_url, max_retries=0) as c:
        yield c


def ai_core(engine: AsyncEngine, catalog: Catalog, client: openai.AsyncOpenAI) -> Core:
    core = build_core(engine, catalog, FakeClock())
    core.service = IncidentService(
        store=core.store,
        catalog=catalog,
        clock=core.clock,
        notify=core.mirror.wake,
        suggester=HeuristicSuggester(),
        summarizer=OpenAISummarizer(client, MODEL, budget_s=2.0, redactor=Redactor()),
    )
    return core


def ids_in(request: RecordedRequest) -> list[int]:
    return [int(n) for n in re.findall(r"^\[e(\d+)\]", request.messages[-1]["content"], re.M)]


def narrative(request: RecordedRequest) -> str:
    ids = ids_in(request)
    return (
        "### What happened\n"
        f"Checkout returned 502s after a deploy [e{ids[0]}]. "
        f"The deploy was rolled back [e{ids[2]}].\n"
        "### Impact\n"
        f"EU customers could not pay for 20 minutes [e{ids[0]}][e{ids[3]}]. "
        "Revenue dropped by a third.\n"  # cites nothing: removed
        "### Contributing factors\n"
        "A bad config in the database [e999].\n"  # cites no real entry: removed
        "### What went well\n"
        f"Bob acknowledged within five minutes [#{ids[1]}].\n"
        "### Lessons\n"
        f"- Add a canary for checkout [e{ids[4]}]."
    )


async def test_the_model_writes_the_narrative_and_every_sentence_cites_the_timeline(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    await scripted(core)
    assert (await core.run("#1 note paged carol@example.com about it", actor=ALICE)).ok
    fake.respond_with(narrative)
    reply = await core.run("#1 postmortem")
    assert reply.text == (
        "Postmortem v1 of #1 posted to its channel as a file: postmortem-1-v1.md. Narrative "
        f"written by {MODEL}; every sentence cites the timeline. 2 sentences citing no entry, "
        "or one that does not exist, removed."
    )
    (request,) = fake.chat_requests
    sent = request.messages[-1]["content"]
    assert "carol@example.com" not in sent and "paged [redacted-email] about it" in sent
    ids = ids_in(request)
    async with core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        (doc,) = await u.postmortems(inc.id)
    assert doc.model == MODEL and doc.removed_citations == 2
    s = sections(doc.markdown)
    assert s["What happened"] == (
        f"Checkout returned 502s after a deploy [e{ids[0]}]. The deploy was rolled back "
        f"[e{ids[2]}]."
    )
    assert s["Impact"] == f"EU customers could not pay for 20 minutes [e{ids[0]}][e{ids[3]}]."
    assert s["Contributing factors"] == "_To fill in._"
    assert s["What went well"] == f"Bob acknowledged within five minutes [e{ids[1]}]."
    assert s["What went badly"] == "_To fill in._"
    assert s["Lessons"] == f"- Add a canary for checkout [e{ids[4]}]."
    assert "Revenue" not in doc.markdown and "e999" not in doc.markdown


async def test_an_answer_citing_nothing_leaves_every_section_to_fill_in(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    await scripted(core)
    fake.reply_text("### What happened\nThings broke. Then they were fixed [e12345].")
    reply = await core.run("#1 postmortem")
    assert reply.text.endswith(
        "2 sentences citing no entry, or one that does not exist, removed."
    )
    async with core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        (doc,) = await u.postmortems(inc.id)
    assert sections(doc.markdown)["What happened"] == "_To fill in._"


async def test_a_failing_model_leaves_the_skeleton_and_says_why(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    await scripted(core)
    fake.fail(500)
    reply = await core.run("#1 postmortem")
    assert reply.ok
    assert "No narrative: the AI model" in reply.text
    async with core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        (doc,) = await u.postmortems(inc.id)
    assert doc.model == "" and "> No narrative: the AI model" in doc.markdown
    assert sections(doc.markdown)["Lessons"] == "_To fill in._"


async def test_a_type_with_ai_off_is_never_sent_to_the_model(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    reply = await core.service.declare(
        actor=ALICE, where=core.general, description="leaked token", title="Leaked token",
        type="security", severity="sev1", priority="p1",
    )
    assert reply.ok
    assert (await core.run("#1 postmortem")).ok
    assert fake.chat_requests == []
