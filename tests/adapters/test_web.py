"""The web view over real HTTP: sign-in (cookie, trusted header), CSRF, escaping and CSP, the
list and incident pages, the live stream, reports; and the link in channel summaries."""

from __future__ import annotations

import asyncio
import html
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from tests.adapters.api_harness import ApiRig, api_rig
from tests.fakes.clock import FakeClock


@pytest.fixture
async def rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> AsyncIterator[ApiRig]:
    async with api_rig(engine, catalog, clock, trusted_header="X-Forwarded-User") as r:
        await r.token("alice-laptop", "write")
        await r.token("wallboard", "read")
        yield r


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "the form has no CSRF token"
    return found.group(1)


@asynccontextmanager
async def sign_in(rig: ApiRig, name: str) -> AsyncIterator[httpx.AsyncClient]:
    """A browser-like client signed in with the token `name` through the sign-in form."""
    async with httpx.AsyncClient(base_url=rig.url, timeout=10) as client:
        form = await client.get("/signin")
        answer = await client.post(
            "/signin",
            data={"csrf": csrf_of(form.text), "token": rig.tokens[name], "next": "/incidents"},
        )
        assert answer.status_code == 303 and answer.headers["location"] == "/incidents"
        yield client


async def test_pages_need_sign_in_and_come_back_after_it(rig: ApiRig) -> None:
    number = await rig.declare()
    answer = await rig.http.get(f"/incidents/{number}")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/signin?next=/incidents/{number}"
    form = await rig.http.get(answer.headers["location"])
    signed = await rig.http.post(
        "/signin",
        data={
            "csrf": csrf_of(form.text),
            "token": rig.tokens["wallboard"],
            "next": f"/incidents/{number}",
        },
    )
    assert signed.status_code == 303 and signed.headers["location"] == f"/incidents/{number}"
    cookie = signed.headers["set-cookie"]
    assert "opsroom_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    page = await rig.http.get(f"/incidents/{number}")
    assert page.status_code == 200 and f"#{number}" in page.text


async def test_sign_in_refuses_bad_tokens_forged_forms_and_foreign_next(rig: ApiRig) -> None:
    form = await rig.http.get("/signin")
    token = csrf_of(form.text)
    wrong = await rig.http.post("/signin", data={"csrf": token, "token": "opsroom_guess"})
    assert wrong.status_code == 401 and "That token is not valid." in wrong.text
    assert "opsroom_session" not in wrong.headers.get("set-cookie", "")
    async with httpx.AsyncClient(base_url=rig.url) as stranger:  # no CSRF cookie: a forged form
        forged = await stranger.post(
            "/signin", data={"csrf": token, "token": rig.tokens["alice-laptop"]}
        )
    assert forged.status_code == 403
    away = await rig.http.post(
        "/signin",
        data={"csrf": token, "token": rig.tokens["wallboard"], "next": "//evil.example/x"},
    )
    assert away.headers["location"] == "/incidents"


async def test_chat_text_is_shown_as_text_under_a_strict_csp(rig: ApiRig) -> None:
    number = await rig.declare()
    await rig.core.run(f"/incident #{number} note <script>alert('x')</script><img src=x onerror=1>")
    async with sign_in(rig, "wallboard") as client:
        page = await client.get(f"/incidents/{number}")
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&lt;img src=x onerror=1&gt;" in page.text
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    assert page.headers["x-content-type-options"] == "nosniff"
    assert not re.search(r"<script>[^<]", page.text)  # no inline script at all
    assert " style=" not in page.text


async def test_incident_page_shows_fields_roles_durations_key_events_and_actions(
    rig: ApiRig,
) -> None:
    number = await rig.declare("checkout 500s in EU")
    rig.core.clock.advance(minutes=12)
    await rig.core.run(f"/incident #{number} ack")
    await rig.core.run(f"/incident #{number} event rolled back deploy 4411")
    await rig.core.run(f"/incident #{number} assign scribe @bob")
    await rig.core.run(f"/incident #{number} action add write the postmortem @bob")
    async with sign_in(rig, "wallboard") as client:
        page = (await client.get(f"/incidents/{number}")).text
    assert "Time to acknowledge</dt><dd>12m" in page
    assert "Scribe</dt><dd>@bob" in page
    key = re.search(r'<li id="entry-\d+" class="entry kind-key_event key">(.*?)</li>', page, re.S)
    assert key and "★ key event" in key.group(1) and "rolled back deploy 4411" in key.group(1)
    assert "1. write the postmortem · @bob" in page
    assert "Add a note" not in page  # a read token gets no form


async def test_list_shows_open_first_and_filters(rig: ApiRig) -> None:
    old = await rig.declare("search slow", type="performance")
    await rig.declare("checkout down", severity="sev1")
    await rig.core.run(f"/incident #{old} status resolved")
    newest = await rig.declare("queue backlog")
    await rig.core.run(f"/incident #{newest} status resolved")
    async with sign_in(rig, "wallboard") as client:
        default = (await client.get("/incidents")).text
        everything = (await client.get("/incidents?status=all")).text
        sev1 = (await client.get("/incidents?status=all&severity=sev1")).text
        bad = await client.get("/incidents?severity=banana")

    def numbers(html: str) -> list[int]:
        return [int(n) for n in re.findall(r'<td><a href="/incidents/\d+">#(\d+)</a>', html)]

    assert numbers(default) == [2]
    assert numbers(everything) == [2, 3, 1]  # open first, then the rest, newest first
    assert numbers(sev1) == [2]
    assert bad.status_code == 200 and 'unknown severity "banana"' in html.unescape(bad.text)


async def test_a_note_from_the_page_needs_the_csrf_token(rig: ApiRig) -> None:
    number = await rig.declare()
    async with sign_in(rig, "alice-laptop") as client:
        page = await client.get(f"/incidents/{number}")
        forged = await client.post(
            f"/incidents/{number}/notes", data={"csrf": "guess" * 8, "text": "forged"}
        )
        assert forged.status_code == 403
        foreign = await client.post(
            f"/incidents/{number}/notes",
            data={"csrf": csrf_of(page.text), "text": "from elsewhere"},
            headers={"Origin": "https://evil.example"},
        )
        assert foreign.status_code == 403
        sent = await client.post(
            f"/incidents/{number}/notes", data={"csrf": csrf_of(page.text), "text": "from the web"}
        )
        assert sent.status_code == 303
        after = (await client.get(f"/incidents/{number}")).text
    assert "from the web" in after and "forged" not in after and "from elsewhere" not in after
    async with rig.core.store.unit() as u:
        entries = await u.timeline(1)
    assert [(e.author_name, e.source) for e in entries if e.text == "from the web"] == [
        ("alice-laptop", "api")
    ]


async def test_a_trusted_header_signs_in_but_never_shows_private_incidents(rig: ApiRig) -> None:
    public = await rig.declare("checkout down")
    secret = await rig.declare("credential leak", type="security")
    headers = {"X-Forwarded-User": "carol@example.com"}
    listing = await rig.http.get("/incidents", headers=headers)
    assert listing.status_code == 200 and "carol@example.com" in listing.text
    assert f'href="/incidents/{public}"' in listing.text
    assert f'href="/incidents/{secret}"' not in listing.text
    assert (await rig.http.get(f"/incidents/{secret}", headers=headers)).status_code == 404


async def test_the_header_is_ignored_unless_configured(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    async with api_rig(engine, catalog, clock) as plain:
        answer = await plain.http.get("/incidents", headers={"X-Forwarded-User": "mallory"})
    assert answer.status_code == 303


async def test_the_stream_sends_entries_recorded_after_the_page_loaded(rig: ApiRig) -> None:
    number = await rig.declare()
    async with sign_in(rig, "wallboard") as client:
        page = (await client.get(f"/incidents/{number}")).text
        stream_url = re.search(r'data-stream="([^"]+)"', page)
        assert stream_url
        events: list[dict[str, object]] = []
        async with client.stream("GET", stream_url.group(1).replace("&amp;", "&")) as stream:
            assert stream.headers["content-type"].startswith("text/event-stream")
            await rig.core.run(f"/incident #{number} note written while the page is open")
            lines = stream.aiter_lines()
            async with asyncio.timeout(5):
                async for line in lines:
                    if line.startswith("data: "):
                        events.append(json.loads(line[6:]))
                        break
    assert events[0]["text"] == "written while the page is open"
    assert events[0]["author"] == "alice"


async def test_reports_count_incidents(rig: ApiRig) -> None:
    await rig.declare("checkout down", severity="sev1")
    await rig.declare("search slow", type="performance", severity="sev4")
    async with sign_in(rig, "wallboard") as client:
        page = await client.get("/reports")
    assert page.status_code == 200
    assert page.text.count('class="bar"') >= 5  # status (1), severity (2), type (2)
    assert '<text x="0" y="17" class="label">triggered</text>' in page.text


async def test_summaries_link_to_the_page_when_a_public_url_is_set(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    async with api_rig(engine, catalog, clock, public_url="https://ops.example/") as r:
        r.core.mirror.public_url = "https://ops.example/"
        number = await r.declare()
        channel = r.core.chat.by_name(r.core.incident_channel(number))
        summary = next(m for m in channel.messages if m.id in channel.pins)
    assert f"Incident page: https://ops.example/incidents/{number}" in summary.message.text
