"""Runbooks end to end in the core: the service, the runner, the job worker and the mirror on a
real SQLite store, with a local aiohttp server as the target of HTTP steps."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import yaml
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.http_client import AiohttpClient
from bot.catalog import Catalog, load_catalog
from bot.jobs import JobWorker
from bot.runbooks import RunbookRunner
from bot.service import Reply
from bot.steps import Tools
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock
from tests.fakes.http_target import Target, running_target

SECRET = "s3cr3t-value-never-shown"


@pytest.fixture
async def target() -> AsyncIterator[Target]:
    async with running_target() as t:
        yield t


def catalog_with(base: Catalog, tmp_path: Any, extra: dict[str, Any]) -> Catalog:
    data = base.model_dump(mode="json", by_alias=True, exclude_defaults=False)
    data["workflows"] = []
    data.update(extra)
    path = tmp_path / "opsroom.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_catalog(path)


@dataclass
class Rig:
    core: Core
    runner: RunbookRunner
    worker: JobWorker
    clock: FakeClock
    http: AiohttpClient

    async def run(self, text: str, actor: Any = ALICE) -> Reply:
        reply = await self.core.run(text, actor=actor)
        return reply

    async def settle(self) -> None:
        await self.runner.run_once()
        await self.worker.run_once()
        await self.runner.run_once()
        assert await self.core.mirror.drain(timeout=5)

    async def declare(self, type_: str = "outage") -> str:
        reply = await self.core.service.declare(
            actor=ALICE,
            where=self.core.general,
            description="Checkout down",
            title="Checkout down",
            type=type_,
            severity="sev2",
            priority="p1",
        )
        assert reply.ok, reply.text
        await self.settle()
        assert reply.incident is not None
        return self.core.incident_channel(reply.incident)


async def make_rig(engine: AsyncEngine, catalog: Catalog, clock: FakeClock) -> Rig:
    core = build_core(engine, catalog, clock)
    core.mirror.clock = clock
    http = AiohttpClient()

    async def no_sleep(seconds: float) -> None:
        return None

    runner = RunbookRunner(
        service=core.service,
        store=core.store,
        clock=clock,
        tools=Tools(http=http, env={"OPSROOM_SECRET_TOKEN": SECRET}, sleep=no_sleep),
    )
    worker = JobWorker(
        store=core.store,
        catalog=catalog,
        record=core.service.record,
        clock=clock,
        notify=core.mirror.wake,
    )
    return Rig(core, runner, worker, clock, http)


def steps_catalog(base: Catalog, tmp_path: Any, url: str) -> Catalog:
    return catalog_with(
        base,
        tmp_path,
        {
            "runbooks": [
                {
                    "name": "triage",
                    "description": "First moves",
                    "steps": [
                        {
                            "kind": "message",
                            "text": "Triage for #{{ incident.number }}: {{ incident.title }}",
                        },
                        {
                            "kind": "http",
                            "name": "Open status page",
                            "url": url + "/status",
                            "headers": {"Authorization": "Bearer ${env:OPSROOM_SECRET_TOKEN}"},
                            "body": {"incident": "{{ incident.number }}"},
                            "retries": 2,
                            "save": {"region": "region"},
                        },
                        {"kind": "set", "severity": "sev1"},
                        {"kind": "checklist", "items": ["Check dashboards", "Page the owner"]},
                        {"kind": "approve"},
                        {"kind": "wait", "duration": "5m"},
                        {
                            "kind": "action_item",
                            "items": [{"text": "Write the postmortem", "due": "tomorrow"}],
                        },
                    ],
                },
            ]
        },
    )


async def test_a_run_goes_step_by_step_with_one_progress_message(
    engine: AsyncEngine,
    catalog: Catalog,
    clock: FakeClock,
    target: Target,
    tmp_path: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    cat = steps_catalog(catalog, tmp_path, target.url)
    target.plan = [(500, "oops"), (200, json.dumps({"region": "eu", "echo": SECRET}))]
    rig = await make_rig(engine, cat, clock)
    channel = await rig.declare()
    reply = await rig.run("#1 runbook run triage")
    assert reply.ok, reply.text
    await rig.settle()
    # The HTTP step: retried after the 500, same idempotency key, secret sent but never kept.
    assert len(target.seen) == 2
    keys = {s["headers"]["Idempotency-Key"] for s in target.seen}
    assert len(keys) == 1
    assert target.seen[0]["headers"]["Authorization"] == f"Bearer {SECRET}"
    assert target.seen[0]["body"] == {"incident": "1"}
    texts = rig.core.chat.texts(channel)
    assert any(t.startswith("📖 Triage for #1: Checkout down") for t in texts)
    async with rig.core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        assert inc.custom_fields["region"] == "eu"
        assert inc.severity == "sev1"
        runs = await u.runs(inc.id)
        record = json.dumps([r.model_dump(mode="json") for r in runs])
        entries = " ".join(e.text for e in await u.timeline(inc.id))
    assert SECRET not in record and SECRET not in entries and SECRET not in caplog.text
    assert SECRET not in " ".join(rig.core.chat.texts(channel))
    # The run waits on the checklist; the progress message was edited in place.
    progress = [t for t in rig.core.chat.texts(channel) if "Runbook triage · run 1" in t]
    assert len(progress) == 1
    assert "☐ waiting" in progress[0] and "✅ 2. Open status page: HTTP 200" in progress[0]
    assert (await rig.run("#1 runbook check 1")).ok
    assert (await rig.run("#1 runbook skip 2")).ok
    await rig.settle()
    # Only the commander (alice) may approve.
    denied = await rig.run("#1 runbook approve", actor=BOB)
    assert not denied.ok and "Only the commander (@alice)" in denied.text
    assert (await rig.run("#1 runbook approve")).ok
    await rig.settle()
    status = await rig.run("#1 runbook status")
    assert "☐ 6. Wait 5m: waiting 5m" in status.text
    rig.clock.advance(minutes=6)
    await rig.settle()
    status = await rig.run("#1 runbook status")
    assert "✅ done" in status.text, status.text
    progress = [t for t in rig.core.chat.texts(channel) if "Runbook triage · run 1" in t]
    assert len(progress) == 1 and "✅ done" in progress[0]
    items = await rig.run("#1 action list")
    assert "Write the postmortem" in items.text
    await rig.http.close()


async def test_a_failed_step_stops_the_run_until_retried(
    engine: AsyncEngine,
    catalog: Catalog,
    clock: FakeClock,
    target: Target,
    tmp_path: Any,
) -> None:
    cat = catalog_with(
        catalog,
        tmp_path,
        {
            "runbooks": [
                {
                    "name": "call",
                    "steps": [
                        {
                            "kind": "http",
                            "url": target.url + "/x",
                            "retries": 1,
                            "expect_status": 201,
                        },
                        {"kind": "message", "text": "after"},
                    ],
                }
            ]
        },
    )
    target.plan = [(200, "{}"), (201, "{}")]
    rig = await make_rig(engine, cat, clock)
    channel = await rig.declare()
    await rig.run("#1 runbook run call")
    await rig.settle()
    texts = rig.core.chat.texts(channel)
    assert any("❌ HTTP 200 (expected 201)" in t for t in texts)
    assert not any(t.startswith("📖 after") for t in texts)
    assert (await rig.run("#1 runbook retry")).ok
    await rig.settle()
    assert any(t.startswith("📖 after") for t in rig.core.chat.texts(channel))
    assert [s["headers"]["Idempotency-Key"] for s in target.seen] == ["1-0", "1-0"]
    await rig.http.close()


async def test_a_workflow_fires_once_per_entry_and_checks_its_conditions(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock, tmp_path: Any,
) -> None:
    cat = catalog_with(catalog, tmp_path, {
        "runbooks": [r.model_dump(mode="json") for r in catalog.runbooks],
        "workflows": [{"name": "triage-major-outages", "on": ["declared", "severity_changed"],
                       "if": {"type": "outage", "severity": {"at_least": "sev2"}},
                       "run": "outage-triage"}],
    })
    rig = await make_rig(engine, cat, clock)
    channel = await rig.declare("outage")  # sev2 outage: the workflow runs outage-triage
    await rig.settle()
    await rig.settle()
    texts = rig.core.chat.texts(channel)
    assert sum("Workflow triage-major-outages fired (on declared)" in t for t in texts) == 1
    status = await rig.run("#1 runbook status")
    assert "Runbook outage-triage · run 1" in status.text and "☐ waiting" in status.text
    async with rig.core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.status.value == "investigating"
    # A sev4 change does not match `severity: {at_least: sev2}`: no second run.
    assert (await rig.run("#1 severity sev4")).ok
    await rig.settle()
    async with rig.core.store.unit() as u:
        assert inc.id is not None
        assert len(await u.runs(inc.id)) == 1
    listing = await rig.run("#1 runbook list")
    assert listing.text.splitlines()[1].startswith("★ outage-triage")


async def test_a_types_auto_run_runbooks_start_with_the_declaration(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock, tmp_path: Any
) -> None:
    data = catalog.model_dump(mode="json", by_alias=True)
    for itype in data["incident_types"]:
        if itype["name"] == "outage":
            itype["auto_run"] = ["outage-triage"]
    cat = catalog_with(catalog, tmp_path, {"incident_types": data["incident_types"]})
    rig = await make_rig(engine, cat, clock)
    channel = await rig.declare("outage")
    await rig.declare("deploy")
    async with rig.core.store.unit() as u:
        first, second = await u.incident(1), await u.incident(2)
        assert first is not None and first.id is not None
        assert second is not None and second.id is not None
        runs = await u.runs(first.id)
        assert [(r.runbook, r.trigger) for r in runs] == [("outage-triage", "auto_run")]
        assert await u.runs(second.id) == []
    assert any("Runbook outage-triage · run 1 of #1" in t for t in rig.core.chat.texts(channel))


async def test_workflows_fire_on_alerts_joining_and_leaving_an_incident(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock, tmp_path: Any,
) -> None:
    """`alert_firing` / `alert_resolved`: one firing per alert entry, none for other entries."""
    from bot.alerts import AlertEvent

    cat = catalog_with(catalog, tmp_path, {
        "runbooks": [r.model_dump(mode="json") for r in catalog.runbooks],
        "workflows": [
            {"name": "note-firing", "on": ["alert_firing"],
             "steps": [{"kind": "message", "text": "An alert fired on #{{ incident.number }}"}]},
            {"name": "note-resolved", "on": ["alert_resolved"],
             "steps": [{"kind": "message", "text": "An alert cleared on #{{ incident.number }}"}]},
        ],
    })
    rig = await make_rig(engine, cat, clock)
    labels = {"alertname": "CheckoutDown", "service": "checkout"}

    def event(fingerprint: str, status: str) -> AlertEvent:
        return AlertEvent(source="alertmanager", fingerprint=fingerprint, status=status,
                          summary="Checkout is down", severity="critical",
                          labels={**labels, "pod": fingerprint},
                          starts_at=clock.now() - timedelta(minutes=1))

    await rig.core.service.receive([event("a1", "firing")])  # declares #1
    await rig.core.service.receive([event("a2", "firing")])  # joins #1: a firing entry
    await rig.core.service.receive([event("a2", "resolved")])  # a resolved entry
    await rig.settle()
    await rig.settle()
    texts = rig.core.chat.texts(rig.core.incident_channel(1))
    assert sum("Workflow note-firing fired (on alert_firing)" in t for t in texts) == 1
    assert sum("Workflow note-resolved fired (on alert_resolved)" in t for t in texts) == 1
    assert sum("An alert fired on #1" in t for t in texts) == 1
    assert sum("An alert cleared on #1" in t for t in texts) == 1
