"""The console session driven as a person at a terminal would, with scripted answers read
through the real line reader, on a real store: what is asked, what is refused, what is created."""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.console import ConsoleChat, ConsoleCompleter, ConsoleSession, PipeReader
from bot.catalog import Catalog
from bot.mirror import Backoff, Mirror
from bot.models import Incident
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.store import SqlStore
from tests.fakes.clock import FakeClock


@dataclass
class Terminal:
    session: ConsoleSession
    chat: ConsoleChat
    store: SqlStore
    shown: list[str]
    prompts: io.StringIO

    @property
    def text(self) -> str:
        return "\n".join(self.shown)

    async def incidents(self) -> list[Incident]:
        async with self.store.unit() as u:
            return await u.incidents(include_closed=True)


Script = Callable[[str], Awaitable[Terminal]]


@pytest.fixture
def terminal_for(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> Script:
    """Run a whole session over `script`, as typed at a terminal (interactive)."""

    async def run(script: str) -> Terminal:
        shown: list[str] = []
        chat = ConsoleChat("alice", out=shown.append, clock=clock)
        store = SqlStore(engine)
        mirror = Mirror(
            store=store, ports={"console": chat}, catalog=catalog,
            backoff=Backoff(base=0.001, cap=0.01),
        )
        service = IncidentService(
            store=store, catalog=catalog, suggester=HeuristicSuggester(), clock=clock,
            notify=mirror.wake,
        )
        prompts = io.StringIO()
        session = ConsoleSession(
            service=service, mirror=mirror, store=store, chat=chat,
            reader=PipeReader(io.StringIO(script), prompts=prompts), interactive=True,
        )
        task = asyncio.create_task(mirror.run())
        try:
            await asyncio.wait_for(session.run(), timeout=20)
        finally:
            await mirror.stop()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        return Terminal(session, chat, store, shown, prompts)

    return run


async def test_anything_but_yes_asks_again_and_end_of_input_cancels(terminal_for: Script) -> None:
    t = await terminal_for(
        "/incident declare checkout 500s in EU, card payments failing\nmaybe\ncancel\nquit\n"
    )
    for answer in ("maybe", "cancel", "quit"):
        assert (
            f'(only you) "{answer}" is not an answer here: y, yes or Enter creates it, '
            "e edits the fields, n (or Ctrl-D) cancels."
        ) in t.shown
    assert t.shown[-1] == "(only you) Cancelled (end of input): not declared."
    assert t.prompts.getvalue().count("Create it? [Y]es / [e]dit / [n]o: ") == 4
    assert await t.incidents() == []
    assert list(t.chat.channels) == ["general"]
    assert not any("channel created" in line for line in t.shown)


@pytest.mark.parametrize("answer", ["", "y", "yes", "YES", " Y "])
async def test_yes_or_an_empty_line_creates_it(terminal_for: Script, answer: str) -> None:
    t = await terminal_for(f"/incident declare checkout is down\n{answer}\n")
    assert [i.number for i in await t.incidents()] == [1]
    assert any(line.startswith("(only you) Declared incident #1") for line in t.shown)


@pytest.mark.parametrize("answer", ["n", "no", "NO"])
async def test_no_creates_nothing(terminal_for: Script, answer: str) -> None:
    t = await terminal_for(f"/incident declare checkout is down\n{answer}\n")
    assert "(only you) Not declared." in t.shown
    assert await t.incidents() == []


async def test_the_edit_step_asks_for_custom_fields_and_refuses_bad_values_as_typed(
    terminal_for: Script,
) -> None:
    script = "\n".join([
        "/incident declare checkout 500s in EU, card payments failing",
        "e",
        "",            # title: kept
        "",            # type: kept (outage)
        "sev9",        # refused at once
        "sev1",
        "",            # priority: kept
        "web, teapot", # affected_services: refused
        "web, api",
        "mars",        # region: refused
        "us",
        "lots",        # customers_affected: refused
        "1,200",
        "y",
    ]) + "\n"
    t = await terminal_for(script)
    assert '(only you) unknown severity "sev9": use sev1, sev2, sev3 or sev4; try again ' \
           "(Enter keeps sev2)." in t.shown
    assert any('unknown affected_services "teapot": use api, web' in line for line in t.shown)
    assert any('unknown region "mars": use global, eu, us or apac' in line for line in t.shown)
    assert any('customers_affected must be a number, not "lots"' in line for line in t.shown)
    prompts = t.prompts.getvalue()
    assert "  region [eu] (one of global, eu, us or apac; - clears it): " in prompts
    assert "  customers_affected [] (a number): " in prompts
    [incident] = await t.incidents()
    assert incident.severity == "sev1"
    assert incident.custom_fields == {
        "affected_services": ["web", "api"], "region": "us", "customers_affected": 1200,
    }
    now = t.text.split("(only you) Now:")[1]
    assert "severity: sev1   (person)" in now and "region: us   (person)" in now


async def test_a_new_type_asks_for_its_own_fields_including_required_ones(
    terminal_for: Script,
) -> None:
    script = "\n".join([
        "/incident declare checkout 500s in EU, card payments failing",
        "edit",
        "Suspicious logins on checkout",
        "security",
        "", "",        # severity, priority kept
        "guess",       # attack_vector: refused
        "credentials",
        "",            # data_exposed: left empty
        "bob",         # security_lead: refused, not a person
        "@bob",
        "yes",
    ]) + "\n"
    t = await terminal_for(script)
    assert (
        "(only you) affected_services, region: not a field of type security, so left out."
        in t.shown
    )
    prompts = t.prompts.getvalue()
    assert (
        "  attack_vector [] (one of unknown, credentials, vulnerability, phishing, insider, "
        "ddos or other; required before resolve): " in prompts
    )
    assert any('unknown attack_vector "guess"' in line for line in t.shown)
    assert any('security_lead must be a person: "bob" is not a person (write @name)' in line
               for line in t.shown)
    [incident] = await t.incidents()
    assert (incident.type, incident.title) == ("security", "Suspicious logins on checkout")
    assert incident.custom_fields == {"attack_vector": "credentials", "security_lead": "@bob"}
    assert incident.private


async def test_a_field_can_be_cleared_and_end_of_input_while_editing_creates_nothing(
    terminal_for: Script,
) -> None:
    t = await terminal_for(
        "/incident declare checkout 500s in EU, card payments failing\ne\n\n\n\n\n-\n"
    )
    assert "(only you) Editing stopped (end of input); the fields so far are kept." in t.shown
    assert "affected_services:" not in t.text.split("(only you) Now:")[1]
    assert t.shown[-1] == "(only you) Cancelled (end of input): not declared."
    assert await t.incidents() == []


async def test_stop_ends_a_session_that_waits_for_input(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    """SIGINT/SIGTERM call stop(): the session must not wait for a line that never comes."""
    read_end, write_end = os.pipe()
    shown: list[str] = []
    chat = ConsoleChat("alice", out=shown.append, clock=clock)
    store = SqlStore(engine)
    mirror = Mirror(store=store, ports={"console": chat}, catalog=catalog)
    service = IncidentService(store=store, catalog=catalog, suggester=HeuristicSuggester(),
                              clock=clock, notify=mirror.wake)
    with os.fdopen(read_end) as stream, os.fdopen(write_end, "w") as writer:
        session = ConsoleSession(service=service, mirror=mirror, store=store, chat=chat,
                                 reader=PipeReader(stream), interactive=False)
        running = asyncio.create_task(session.run())
        writer.write("hello\n")
        writer.flush()
        for _ in range(200):
            if any("alice: hello" in line for line in shown):
                break
            await asyncio.sleep(0.01)
        session.stop()
        await asyncio.wait_for(running, timeout=5)
    assert "[#general] (1) alice: hello" in shown


async def test_a_long_line_from_a_pipe_arrives_whole() -> None:
    line = "word " * 20_000  # 100 KB
    reader = PipeReader(io.StringIO(line + "\nnext\n"))
    assert await reader.read("") == line
    assert await reader.read("") == "next"
    assert await reader.read("") is None
    assert await reader.read("") is None  # end of input stays the end


@pytest.fixture
def completer() -> ConsoleCompleter:
    return ConsoleCompleter(incidents=lambda: [3, 42], channels=lambda: ["general", "inc-3-db"])


@pytest.mark.parametrize(("typed", "word", "offered"), [
    ("/inc", "/inc", ["/incident"]),
    ("/j", "/j", ["/join"]),
    ("/join #i", "#i", ["#inc-3-db"]),
    ("/incident dec", "dec", ["declare"]),
    ("/incident s", "s", ["show", "status", "severity", "set", "summary"]),
    ("/incident #", "#", ["#3", "#42"]),
    ("/incident #4", "#4", ["#42"]),
    ("/incident #42 sev", "sev", ["severity"]),
    ("/incident action ", "", ["add", "list", "done", "edit", "reopen", "cancel"]),
    ("/incident #3 action d", "d", ["done"]),
    ("/incident runbook ", "", ["list", "run", "status", "cancel", "retry", "check", "skip",
                             "approve"]),
    ("/incident help ac", "ac", ["ack", "action"]),
    ("/incident note some", "some", []),
    ("hello", "hello", []),
])
def test_completion_offers_what_can_come_next(
    completer: ConsoleCompleter, typed: str, word: str, offered: list[str]
) -> None:
    assert completer.candidates(typed) == (word, offered)


def test_completion_through_prompt_toolkit(completer: ConsoleCompleter) -> None:
    from prompt_toolkit.completion import CompleteEvent
    from prompt_toolkit.document import Document

    from adapters.console import prompt_completer

    found = prompt_completer(completer).get_completions(
        Document("/incident #42 ac"), CompleteEvent(completion_requested=True)
    )
    assert [(c.text, c.start_position) for c in found] == [("ack", -2), ("action", -2)]
