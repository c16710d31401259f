"""The AI parts wired into the service and the CLI: `/incident catchup`, the model recorded on
the declare entry, and `opsroom suggest` run as a process against FakeOpenAI.

These tests switch themselves on once the wiring of issue 5 is applied (`CatchUp` command,
`Summarizer` port, `Suggestion.model`); until then they are skipped.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import openai
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.openai_suggester import OpenAISuggester, OpenAISummarizer
from bot import commands, ports
from bot.ai import SERVICES, cited_ids, model_answer
from bot.catalog import Catalog
from bot.models import EntryKind
from bot.ports import Suggestion
from bot.service import IncidentService
from tests.conftest import Core, build_core
from tests.fakes.clock import FakeClock
from tests.fakes.openai import FakeOpenAI, RecordedRequest

pytestmark = pytest.mark.skipif(
    not (
        hasattr(commands, "CatchUp")
        and hasattr(ports, "Summarizer")
        and "model" in Suggestion.__dataclass_fields__
    ),
    reason="issue 5 wiring (CatchUp command, Summarizer port, Suggestion.model) not applied",
)

ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk-wiring-0123456789abcdef"
MODEL = "gpt-4o-mini"
CHECKOUT = "checkout 500s in EU since the 14:05 deploy, card payments failing"


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
        suggester=OpenAISuggester(client, MODEL, budget_s=2.0),
        summarizer=OpenAISummarizer(client, MODEL, budget_s=2.0),
    )
    return core


def _answer(catalog: Catalog) -> dict[str, object]:
    answer = model_answer(
        Suggestion(
            title="Checkout 500s in the EU",
            summary="Card payments fail",
            type="outage",
            severity="sev1",
            priority="p1",
        ),
        catalog,
    )
    answer[SERVICES] = ["checkout"]
    return answer


def _cite_and_invent(request: RecordedRequest) -> str:
    ids = [
        line.split("]")[0].removeprefix("[e")
        for line in request.messages[-1]["content"].splitlines()
        if line.startswith("[e")
    ]
    return (
        f"Checkout failed in the EU [e{ids[0]}]. A database was restored [e999]. "
        f"The team is monitoring [e{ids[-1]}][#1000]."
    )


async def test_declare_records_the_model_and_says_where_fields_came_from(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    fake.reply_json(_answer(catalog))
    reply = await core.run(f"declare {CHECKOUT}")
    assert reply.ok and reply.incident == 1
    assert f"Suggested by {MODEL} at 127.0.0.1:{fake.port}" in reply.text
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None and incident.id is not None
        assert (incident.title, incident.severity) == ("Checkout 500s in the EU", "sev1")
        declared = (await u.timeline(incident.id))[0]
    ai = declared.data["ai"]
    assert (ai["model"], ai["endpoint"]) == (MODEL, f"127.0.0.1:{fake.port}")
    assert ai["sources"]["severity"] == "model"
    assert API_KEY not in json.dumps(declared.data)


async def test_catchup_posts_only_real_citations(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    fake.reply_json(_answer(catalog), n=1)
    await core.run(f"declare {CHECKOUT}")
    where = core.where(core.incident_channel(1))
    await core.run("event rolled back deploy 4.12", where=where)
    await core.run("status monitoring", where=where)
    fake.respond_with(_cite_and_invent)
    reply = await core.run("catchup", where=where)
    assert reply.ok and reply.incident == 1
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None and incident.id is not None
        real = {e.id for e in await u.timeline(incident.id)}
    assert reply.text.startswith("Catch-up on #1 Checkout 500s in the EU:\n")
    assert cited_ids(reply.text) and set(cited_ids(reply.text)) <= real
    assert "restored" not in reply.text
    assert reply.text.endswith("(2 citations of entries that do not exist removed)")


async def test_catchup_of_a_type_with_ai_off_sends_nothing(
    fake: FakeOpenAI, client: openai.AsyncOpenAI, engine: AsyncEngine, catalog: Catalog
) -> None:
    core = ai_core(engine, catalog, client)
    await core.run("declare type=security leaked deploy token in ci logs")
    where = core.where(core.incident_channel(1))
    await core.run("event token revoked", where=where)
    reply = await core.run("catchup", where=where)
    assert fake.requests == []
    assert "token revoked [e" in reply.text


async def test_catchup_without_a_model_lists_the_latest_entries(core: Core) -> None:
    await core.run(f"declare {CHECKOUT}")
    where = core.where(core.incident_channel(1))
    await core.run("event rolled back deploy 4.12", where=where)
    reply = await core.run("catchup", where=where)
    async with core.store.unit() as u:
        incident = await u.incident(1)
        assert incident is not None and incident.id is not None
        key = next(e for e in await u.timeline(incident.id) if e.kind is EntryKind.KEY_EVENT)
    assert reply.text.endswith(f"rolled back deploy 4.12 [e{key.id}]")


# --- opsroom suggest, as a process ---------------------------------------------------------------


async def opsroom(tmp_path: Path, *args: str, env: dict[str, str]) -> tuple[int, str, str]:
    """Run the `opsroom` CLI of this checkout in `tmp_path` (no .env there)."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "OPSROOM_"))}
    code = f"import sys; sys.path.insert(0, {str(ROOT)!r}); from adapters.cli import main; main()"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code,
        *args,
        cwd=tmp_path,
        env={**clean, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_suggest_without_a_model_uses_the_heuristic(tmp_path: Path) -> None:
    code, out, _ = await opsroom(tmp_path, "suggest", CHECKOUT, "--json", env={})
    assert code == 0
    data = json.loads(out)
    assert (data["type"], data["severity"], data["custom_fields"]["region"]) == (
        "outage",
        "sev2",
        "eu",
    )
    assert data["sources"]["type"] == "heuristic" and data["model"] == ""


async def test_suggest_with_a_model_says_where_each_value_came_from(
    fake: FakeOpenAI, catalog: Catalog, tmp_path: Path
) -> None:
    fake.reply_json(_answer(catalog))
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url}
    code, out, err = await opsroom(tmp_path, "suggest", CHECKOUT, env=env)
    assert code == 0, err
    lines = out.splitlines()
    assert "severity           sev1  (model)" in lines
    assert "region             eu  (heuristic)" in lines  # the model left it null
    assert lines[-1] == f"note: Suggested by {MODEL} at 127.0.0.1:{fake.port}"
    assert API_KEY not in out + err
    assert fake.last_request().body["model"] == MODEL

    code, out, _ = await opsroom(tmp_path, "suggest", CHECKOUT, "--json", env=env)
    data = json.loads(out)
    assert data["sources"]["severity"] == "model" and data["endpoint"] == f"127.0.0.1:{fake.port}"


async def test_suggest_falls_back_when_the_endpoint_fails(fake: FakeOpenAI, tmp_path: Path) -> None:
    fake.fail(500, retry_after=0.01)
    env = {"OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake.base_url}
    code, out, _ = await opsroom(tmp_path, "suggest", CHECKOUT, "--json", env=env)
    assert code == 0
    data = json.loads(out)
    assert data["sources"]["severity"] == "heuristic"
    assert "answered HTTP 500" in data["note"]


async def test_suggest_with_an_unknown_type_is_refused(tmp_path: Path) -> None:
    code, out, err = await opsroom(tmp_path, "suggest", "db down", "--type", "alien", env={})
    assert code == 2 and out == ""
    assert 'unknown incident type "alien"' in err
