"""Postmortems, incident times and closing, through the service on a real SQLite store with the
recording chat and a fake clock: a scripted incident, then its postmortem section by section."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.incident_times import WhenError, parse_past
from bot.jobs import JobWorker
from bot.postmortem import strict_citations, to_html
from tests.conftest import ALICE, BOB, Core, build_core
from tests.fakes.clock import FakeClock

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)  # the fake clock's start, a Wednesday


async def scripted(core: Core) -> str:
    """#1: declared 14:00 by alice, acked 14:05 by bob, rollback 14:10, monitoring 14:20, an
    action item 14:30, resolved 14:40. Returns its channel's name."""
    reply = await core.service.declare(
        actor=ALICE, where=core.general, description="Checkout returns 502 for EU customers",
        title="Checkout 502s", type="outage", severity="sev2", priority="p2",
        custom_fields={"affected_services": "checkout", "region": "eu"},
    )
    assert reply.ok, reply.text
    assert await core.mirror.drain(timeout=5)
    channel = core.incident_channel(1)
    for minutes, text, actor in (
        (5, "ack", BOB),
        (5, "event Rolled back deploy 4521", ALICE),
        (10, "status monitoring", ALICE),
        (10, "action add Add a canary for checkout @bob", ALICE),
        (10, "resolve error rate back to normal", ALICE),
    ):
        core.clock.advance(minutes=minutes)
        r = await core.run(f"#1 {text}", actor=actor)
        assert r.ok, r.text
    return channel


def sections(markdown: str) -> dict[str, str]:
    """The document's `## ` and `### ` sections by heading."""
    parts = re.split(r"^#{2,3} (.+)$", markdown, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1].strip() for i in range(1, len(parts), 2)}


async def test_the_transitions_set_the_times_and_time_corrects_them(core: Core) -> None:
    await scripted(core)
    async with core.store.unit() as u:
        inc = await u.incident(1)
    assert inc is not None
    assert inc.impact_started_at == T0 and inc.declared_at == T0
    assert inc.acknowledged_at == T0 + timedelta(minutes=5)
    assert inc.mitigated_at == T0 + timedelta(minutes=20)
    assert inc.resolved_at == T0 + timedelta(minutes=40)
    assert inc.closed_at is None

    reply = await core.run("#1 time impact_started 13:50")
    assert reply.ok and reply.text == "#1 impact started is now 2026-11-25 13:50 UTC."
    bad = await core.run("#1 time acknowledged 13:55")
    assert not bad.ok
    assert bad.text == "acknowledged cannot be before declared (2026-11-25 14:00 UTC)"
    later = await core.run("#1 time acknowledged 14:30")
    assert later.text == "acknowledged cannot be after mitigated (2026-11-25 14:20 UTC)"
    future = await core.run("#1 time resolved in 2h")
    assert not future.ok and future.text.startswith('invalid time "in 2h"')
    unset = await core.run("#1 time closed 14:41")
    assert unset.text.startswith("#1 has no closed time yet (it is resolved)")
    usage = await core.run("#1 time lunch 12:00")
    assert usage.text.startswith('unknown time "lunch": use impact_started, declared')

    timeline = await core.run("#1 timeline")
    assert "Impact started time corrected from 2026-11-25 14:00 UTC to 2026-11-25 13:50 UTC" in (
        timeline.text
    )
    async with core.store.unit() as u:
        inc = await u.incident(1)
    assert inc is not None and inc.impact_started_at == T0 - timedelta(minutes=10)
    assert inc.acknowledged_at == T0 + timedelta(minutes=5)  # the refused ones changed nothing


async def test_time_to_resolve_counts_the_last_resolve_after_a_reopen(core: Core) -> None:
    await scripted(core)
    core.clock.advance(minutes=20)
    assert (await core.run("#1 reopen it came back")).ok
    core.clock.advance(minutes=30)
    assert (await core.run("#1 resolve for real")).ok
    async with core.store.unit() as u:
        inc = await u.incident(1)
    assert inc is not None
    assert inc.resolved_at == T0 + timedelta(minutes=90)
    assert inc.mitigated_at == T0 + timedelta(minutes=20)  # the first monitoring stays


def test_past_times_read_in_the_catalog_zone() -> None:
    from zoneinfo import ZoneInfo

    paris = ZoneInfo("Europe/Paris")  # UTC+1 in November
    now = T0  # 15:00 in Paris
    assert parse_past("14:05", now, paris) == datetime(2026, 11, 25, 13, 5, tzinfo=UTC)
    assert parse_past("16:00", now, paris) == datetime(2026, 11, 24, 15, 0, tzinfo=UTC)
    assert parse_past("yesterday 9am", now, paris) == datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert parse_past("20m ago", now, paris) == now - timedelta(minutes=20)
    assert parse_past("2026-11-20 10:00", now, paris) == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert parse_past("24 Nov 10:00", now, paris) == datetime(2026, 11, 24, 9, tzinfo=UTC)
    assert parse_past("26 Nov 10:00", now, paris) == datetime(2025, 11, 26, 9, tzinfo=UTC)
    with pytest.raises(WhenError, match='invalid time "teatime": use 14:05'):
        parse_past("teatime", now, paris)
    with pytest.raises(WhenError, match="in the future"):
        parse_past("2026-12-01 10:00", now, paris)


async def test_the_postmortem_of_a_scripted_incident_section_by_section(core: Core) -> None:
    channel = await scripted(core)
    assert (await core.run("#1 time impact_started 13:50")).ok
    reply = await core.run("#1 postmortem")
    assert reply.ok
    assert reply.text == "Postmortem v1 of #1 posted to its channel as a file: postmortem-1-v1.md."
    shared = [m for m in core.chat.by_name(channel).messages if m.file]
    assert len(shared) == 1 and shared[0].text == "Postmortem v1 of #1: postmortem-1-v1.md"
    name, content = shared[0].file or ("", b"")
    assert name == "postmortem-1-v1.md"
    doc = content.decode()
    assert doc.startswith("# Postmortem: #1 Checkout 502s\n")
    assert "DRAFT" not in doc
    s = sections(doc)
    assert s["Summary"].startswith("Checkout returns 502 for EU customers")
    assert s["Details"].splitlines() == [
        "- Type: outage", "- Severity: SEV2", "- Priority: P2", "- Status: resolved",
        "- affected_services: checkout", "- region: eu",
    ]
    times = s["Impact window and durations"]
    for row in ("| impact started | 2026-11-25 13:50 UTC |", "| declared | 2026-11-25 14:00 UTC |",
                "| acknowledged | 2026-11-25 14:05 UTC |", "| mitigated | 2026-11-25 14:20 UTC |",
                "| resolved | 2026-11-25 14:40 UTC |", "| closed | — |"):
        assert row in times
    assert "- Time to acknowledge: 5m" in times
    assert "- Time to mitigate: 20m" in times
    assert "- Time to resolve: 40m" in times
    assert "- Impact duration (impact start to mitigation): 30m" in times
    people = s["People and roles"].splitlines()
    assert people[:2] == ["- Declared by @alice on console", "- commander: @alice"]
    assert people[-1] == "- On the timeline: alice, bob"
    assert re.fullmatch(
        r"- \[e\d+\] 2026-11-25 14:10 UTC alice: Rolled back deploy 4521", s["Key events"]
    )
    assert s["Alerts"] == "None recorded." and s["Runbook runs"] == "None recorded."
    assert s["Action items"] == "- [ ] 1. Add a canary for checkout (@bob, open)"
    timeline = s["Timeline"].splitlines()
    assert [re.sub(r"^- \[e\d+\] ", "", line) for line in timeline] == [
        "2026-11-25 14:00 UTC alice: Incident declared: Checkout 502s (outage, SEV2, P2), "
        "commander @alice",
        "2026-11-25 14:05 UTC bob: Status changed from triggered to acknowledged",
        "2026-11-25 14:10 UTC alice: Rolled back deploy 4521",
        "2026-11-25 14:20 UTC alice: Status changed from acknowledged to monitoring",
        "2026-11-25 14:30 UTC alice: Action item added: [ ] 1. Add a canary for checkout · @bob",
        "2026-11-25 14:40 UTC alice: Status changed from monitoring to resolved: error rate back "
        "to normal Open action items: [ ] 1. Add a canary for checkout · @bob",
        "2026-11-25 14:40 UTC alice: Impact started time corrected from 2026-11-25 14:00 UTC to "
        "2026-11-25 13:50 UTC",
    ]
    for heading in ("What happened", "Impact", "Contributing factors", "What went well",
                    "What went badly", "Lessons"):
        assert s[heading] == "_To fill in._"

    again = await core.run("#1 postmortem")
    assert again.text.startswith("Postmortem v2 of #1")
    async with core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        versions = await u.postmortems(inc.id)
    assert [(v.version, v.draft, v.model) for v in versions] == [(1, False, ""), (2, False, "")]
    html = to_html(versions[0].markdown, "Postmortem #1")
    assert "<h1>Postmortem: #1 Checkout 502s</h1>" in html and "<td>resolved</td>" in html


async def test_a_postmortem_before_resolution_is_a_draft(core: Core) -> None:
    reply = await core.service.declare(
        actor=ALICE, where=core.general, description="Search is slow", title="Slow search",
        type="outage", severity="sev3", priority="p3",
    )
    assert reply.ok
    draft = await core.run("#1 postmortem")
    assert draft.text.startswith("Postmortem v1 (draft: not resolved yet) of #1")
    async with core.store.unit() as u:
        inc = await u.incident(1)
        assert inc is not None and inc.id is not None
        (doc,) = await u.postmortems(inc.id)
    assert doc.draft and "> **DRAFT**: #1 is still triggered" in doc.markdown


async def test_closing_needs_the_work_done_unless_forced_by_commander_or_declarer(
    core: Core,
) -> None:
    await scripted(core)
    refused = await core.run("#1 close")
    assert refused.text == (
        "#1 cannot be closed yet: action item 1 still open (/incident action done <n> or "
        "action cancel <n>); no postmortem yet (/incident postmortem). The commander or "
        "declarer may close it anyway: /incident close force <reason>"
    )
    same = await core.run("#1 status closed")
    assert same.text == refused.text
    not_theirs = await core.run("#1 close force tired", actor=BOB)
    assert not_theirs.text == "Only the commander (@alice) or the declarer (@alice) may " \
        "force-close #1."
    assert (await core.run("#1 action done 1")).ok
    still = await core.run("#1 close")
    assert still.text.startswith("#1 cannot be closed yet: no postmortem yet")
    assert (await core.run("#1 postmortem")).ok
    core.clock.advance(minutes=5)
    closed = await core.run("#1 close")
    assert closed.ok and closed.text == "#1 is now closed."
    async with core.store.unit() as u:
        inc = await u.incident(1)
    assert inc is not None and inc.closed_at == core.clock.now()


async def test_force_close_records_the_reason(core: Core) -> None:
    await scripted(core)
    forced = await core.run("#1 close force duplicate of #7")
    assert forced.ok
    timeline = (await core.run("#1 timeline")).text
    assert (
        "Status changed from resolved to closed: forced: duplicate of #7 (despite: action item 1 "
        "still open" in timeline
    )


async def test_a_severity_can_turn_the_close_rule_off(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    relaxed = catalog.model_copy(
        update={
            "severities": [
                s.model_copy(update={"close_requires_postmortem": s.name != "sev2"})
                for s in catalog.severities
            ]
        }
    )
    core = build_core(engine, relaxed, clock)
    await scripted(core)  # sev2
    assert (await core.run("#1 close")).text == "#1 is now closed."


async def test_the_commander_is_reminded_of_a_missing_postmortem(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    core = build_core(engine, catalog, clock)
    core.mirror.clock = clock
    worker = JobWorker(store=core.store, catalog=catalog, record=core.service.record, clock=clock)
    channel = await scripted(core)
    reminders = (await core.run("#1 reminders")).text
    assert reminders == "Reminders for #1:\n• postmortem due Mon 14:40 UTC"

    def nudges() -> list[str]:
        return [t for t in core.chat.texts(channel) if "no postmortem yet" in t]

    clock.advance(days=4, hours=23)
    await worker.run_once()
    assert await core.mirror.drain(timeout=5)
    assert nudges() == []
    clock.advance(hours=1)
    await worker.run_once()
    assert await core.mirror.drain(timeout=5)
    assert len(nudges()) == 1
    assert "@alice: #1 was resolved 5d ago and has no postmortem yet: /incident postmortem" in (
        nudges()[0]
    )


async def test_no_reminder_once_a_postmortem_exists(
    engine: AsyncEngine, catalog: Catalog, clock: FakeClock
) -> None:
    core = build_core(engine, catalog, clock)
    worker = JobWorker(store=core.store, catalog=catalog, record=core.service.record, clock=clock)
    channel = await scripted(core)
    assert (await core.run("#1 postmortem")).ok
    clock.advance(days=6)
    await worker.run_once()
    assert await core.mirror.drain(timeout=5)
    assert [t for t in core.chat.texts(channel) if "no postmortem yet" in t] == []


async def test_a_cancelled_incident_gets_no_postmortem(core: Core) -> None:
    reply = await core.service.declare(
        actor=ALICE, where=core.general, description="false alarm", title="False alarm",
        type="outage", severity="sev4", priority="p4",
    )
    assert reply.ok
    assert (await core.run("#1 cancel false alarm")).ok
    refused = await core.run("#1 postmortem")
    assert refused.text == "#1 is cancelled: it gets no postmortem"


def test_strict_citations_keep_only_sentences_citing_real_entries() -> None:
    text = (
        "### What happened\n"
        "Checkout failed after deploy 4521 [e3]. The team rolled back [e5][e99]. "
        "Everyone was calm. Aliens did it [e42].\n"
        "- Latency rose [#3].\n"
        "- Nobody knows why."
    )
    cleaned, removed = strict_citations(text, {3, 5})
    assert cleaned == (
        "### What happened\n"
        "Checkout failed after deploy 4521 [e3]. The team rolled back [e5].\n"
        "- Latency rose [e3]."
    )
    assert removed == 3
