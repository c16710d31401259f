"""The web view in a real browser: headless Chromium (Debian's `chromium`) driven by Playwright.

Sign in with a token, open the list, open an incident, see an entry recorded while the page is
open arrive by itself, and see a note holding `<script>` shown as text and never run.
The API docs page renders offline. Screenshots go to test-artifacts/browser/ (or
$OPSROOM_TEST_ARTIFACTS/browser/).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from tests.adapters.api_harness import api_rig
from tests.fakes.clock import FakeClock

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = next(
    (p for p in (shutil.which("chromium"), "/usr/bin/chromium") if p and Path(p).exists()), None
)
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="no chromium binary (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]


def artifacts() -> Path:
    base = Path(os.environ.get("OPSROOM_TEST_ARTIFACTS", ROOT / "test-artifacts"))
    folder = base / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


async def test_sign_in_list_incident_live_entry_and_escaped_script(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock, tmp_path: Path
) -> None:
    from playwright.async_api import async_playwright, expect

    shots = artifacts()
    async with api_rig(engine, catalog, clock) as rig:
        token = await rig.token("alice-browser", "write")
        number = await rig.declare("checkout 500s in EU")
        await rig.core.run(
            f"/incident #{number} note <script>window.pwned = 1</script> seen in the logs"
        )
        async with async_playwright() as pw:
            browser = await pw.chromium.launch_persistent_context(
                user_data_dir=str(tmp_path / "profile"),  # a fresh profile every run
                executable_path=CHROMIUM,
                headless=True,
                args=FLAGS,
            )
            try:
                page = browser.pages[0] if browser.pages else await browser.new_page()
                await page.goto(f"{rig.url}/incidents")
                await expect(page).to_have_url(f"{rig.url}/signin?next=/incidents")
                await page.fill("#token", token)
                await page.click("button[type=submit]")
                await expect(page).to_have_url(f"{rig.url}/incidents")
                row = page.locator(f'a[href="/incidents/{number}"]').first
                await expect(row).to_be_visible()
                await page.screenshot(path=str(shots / "1-list.png"), full_page=True)

                await row.click()
                await expect(page.locator("h1")).to_contain_text(f"#{number}")
                script_note = page.locator("#timeline li", has_text="seen in the logs")
                await expect(script_note).to_contain_text("<script>window.pwned = 1</script>")
                assert await page.evaluate("typeof window.pwned") == "undefined"
                await expect(page.locator("#timeline-end")).to_be_visible()  # stream open
                await page.screenshot(path=str(shots / "2-incident.png"), full_page=True)

                # Someone else writes while the page is open: it shows up without a reload.
                answer = await rig.http.post(
                    f"/api/v1/incidents/{number}/key-events",
                    json={"text": "rolled back <b>deploy</b> 4411"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.status_code == 201
                arrived = page.locator("#timeline li.key", has_text="rolled back")
                await expect(arrived).to_contain_text(
                    "rolled back <b>deploy</b> 4411", timeout=10_000
                )
                await expect(arrived).to_contain_text("★ key event")
                await page.screenshot(path=str(shots / "3-live-entry.png"), full_page=True)

                # The page's own form (with its CSRF token) adds a note.
                await page.fill("#note", "checked from the browser")
                await page.click("form.note button[type=submit]")
                await expect(
                    page.locator("#timeline li", has_text="checked from the browser")
                ).to_contain_text("alice-browser")
                await page.screenshot(path=str(shots / "4-note-added.png"), full_page=True)

                # The API docs render from the app alone (no CDN), under their own CSP.
                blocked: list[str] = []
                # (leaving the incident page ends its live stream: not a failure of the docs)
                page.on(
                    "requestfailed",
                    lambda r: None if "/events" in r.url else blocked.append(r.url),
                )
                await page.goto(f"{rig.url}/docs")
                await expect(page.locator(".opblock-summary-path").first).to_be_visible()
                await expect(
                    page.locator('.opblock-summary-path[data-path="/api/v1/incidents"]').first
                ).to_be_visible()
                assert blocked == []
                await page.screenshot(path=str(shots / "5-api-docs.png"), full_page=False)
            finally:
                await browser.close()
