"""SqlStore on a real database: SQLite always, PostgreSQL when OPSROOM_TEST_DATABASE_URL is set.

Every test reads back through a new unit (a new session), so what is asserted is what the
database kept, not what the session still had in memory.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    DeliveryState,
    EntryKind,
    InboundEvent,
    Incident,
    IncidentCounter,
    LinkState,
    TimelineEntry,
)
from bot.ports import Finished
from storage.store import SqlStore

T0 = datetime(2026, 11, 25, 14, 0, tzinfo=UTC)


class Boom(Exception):
    """Raised inside a unit to abandon it."""


def incident_row(number: int, **values: Any) -> Incident:
    fields: dict[str, Any] = {
        "number": number, "title": f"Incident {number}", "type": "outage", "severity": "sev2",
        "priority": "p2", "declared_by": "@alice", "declared_on": "console",
        "declared_at": T0, "updated_at": T0,
    }
    return Incident(**(fields | values))


def entry_row(incident_id: int, text: str = "a note", **values: Any) -> TimelineEntry:
    fields: dict[str, Any] = {
        "incident_id": incident_id, "kind": EntryKind.MESSAGE, "text": text,
        "author_id": "alice", "author_name": "alice", "source": "console",
        "occurred_at": T0, "created_at": T0,
    }
    return TimelineEntry(**(fields | values))


def delivery_row(incident_id: int, link_id: int, action: DeliveryAction, **values: Any) -> Delivery:
    fields: dict[str, Any] = {
        "incident_id": incident_id, "link_id": link_id, "action": action,
        "next_attempt_at": T0, "created_at": T0,
    }
    return Delivery(**(fields | values))


async def seed(store: SqlStore, *links: ChannelLink, number: int = 1) -> tuple[int, list[int]]:
    """An incident with `links`; returns its id and the links' ids."""
    async with store.unit() as u:
        incident = incident_row(number)
        await u.add(incident)
        assert incident.id is not None
        for link in links:
            link.incident_id = incident.id
            await u.add(link)
        return incident.id, [link.id for link in links if link.id is not None]


def console_link(channel_id: str | None = "C1", thread_id: str | None = None) -> ChannelLink:
    return ChannelLink(incident_id=0, platform="console", channel_id=channel_id,
                       thread_id=thread_id, state=LinkState.OPEN, created_at=T0)


async def count(engine: AsyncEngine, model: type[Any]) -> int:
    async with engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(model))).scalar_one())


# --- timestamps -----------------------------------------------------------------------------


async def test_timestamps_come_back_aware_utc_and_equal(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    berlin = timezone(timedelta(hours=2))
    declared = datetime(2026, 11, 25, 15, 30, 12, 345678, tzinfo=berlin)  # 13:30:12.345678Z
    async with store.unit() as u:
        await u.add(incident_row(1, declared_at=declared))
        await u.add(incident_row(2, declared_at=datetime(2026, 11, 25, 14, 0, tzinfo=UTC)))

    async with store.unit() as u:
        first = await u.incident(1)
        # Compared in SQL: 15:45+02:00 is 13:45Z, after #1 and before #2 only if both were
        # stored as UTC.
        before = await u.session.execute(
            select(Incident.number).where(  # type: ignore[call-overload]
                Incident.declared_at < datetime(2026, 11, 25, 15, 45, tzinfo=berlin)
            )
        )
    assert first is not None
    assert first.declared_at == declared
    assert first.declared_at.tzinfo == UTC
    assert first.declared_at == datetime(2026, 11, 25, 13, 30, 12, 345678, tzinfo=UTC)
    assert first.updated_at == T0 and first.updated_at.tzinfo == UTC
    assert first.acknowledged_at is None
    assert list(before.scalars()) == [1]


async def test_naive_datetimes_are_refused(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    with pytest.raises(StatementError, match="naive datetime"):
        async with store.unit() as u:
            await u.add(incident_row(1, declared_at=datetime(2026, 11, 25, 14, 0)))
    assert await count(any_engine, Incident) == 0

    with pytest.raises(StatementError, match="naive datetime"):
        async with store.unit() as u:
            await u.session.execute(
                select(Incident).where(Incident.declared_at < datetime(2026, 11, 25))  # type: ignore[arg-type]
            )


# --- inbound events -------------------------------------------------------------------------


async def test_claim_event_is_true_once_per_platform_and_key(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    async with store.unit() as u:
        assert await u.claim_event("slack", "Ev01") is True
        assert await u.claim_event("slack", "Ev01") is False
    async with store.unit() as u:
        assert await u.claim_event("slack", "Ev01") is False
        assert await u.claim_event("discord", "Ev01") is True
        assert await u.claim_event("slack", "Ev02") is True
    assert await count(any_engine, InboundEvent) == 3


# --- timeline entries -----------------------------------------------------------------------


async def test_external_id_is_unique_per_source(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    incident_id, _ = await seed(store)
    async with store.unit() as u:
        await u.add(entry_row(incident_id, "first", source="slack", external_id="C1:1.0"))
        await u.add(entry_row(incident_id, "same id, other platform", source="discord",
                              external_id="C1:1.0"))
        # Entries with no platform id (commands) are never deduplicated.
        await u.add(entry_row(incident_id, "no id 1"))
        await u.add(entry_row(incident_id, "no id 2"))

    with pytest.raises(IntegrityError):
        async with store.unit() as u:
            await u.add(entry_row(incident_id, "written before the duplicate"))
            await u.add(entry_row(incident_id, "duplicate", source="slack", external_id="C1:1.0"))

    async with store.unit() as u:
        found = await u.entry_by_external("slack", "C1:1.0")
        other = await u.entry_by_external("discord", "C1:1.0")
        missing = await u.entry_by_external("slack", "C1:2.0")
        texts = [e.text for e in await u.timeline(incident_id)]
    assert found is not None and found.text == "first"
    assert other is not None and other.text == "same id, other platform"
    assert missing is None
    assert sorted(texts) == ["first", "no id 1", "no id 2", "same id, other platform"]


async def test_a_duplicate_in_one_unit_rolls_the_whole_unit_back(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    incident_id, (link_id,) = await seed(store, console_link())
    with pytest.raises(IntegrityError):
        async with store.unit() as u:
            entry = entry_row(incident_id, "first", source="slack", external_id="C1:1.0")
            await u.add(entry)
            await u.add(delivery_row(incident_id, link_id, DeliveryAction.POST_ENTRY,
                                     entry_id=entry.id))
            await u.add(entry_row(incident_id, "again", source="slack", external_id="C1:1.0"))

    async with store.unit() as u:
        assert await u.entry_by_external("slack", "C1:1.0") is None
        assert await u.timeline(incident_id, include_deleted=True) == []
        assert await u.pending_deliveries(per_queue=10) == []


# --- channels -------------------------------------------------------------------------------


async def test_incident_for_channel_finds_it_by_channel_and_by_thread(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    await seed(
        store,
        ChannelLink(incident_id=0, platform="slack", channel_id="C100", thread_id="1700.01",
                    created_at=T0),
        ChannelLink(incident_id=0, platform="discord", channel_id="D300", thread_id="D301",
                    created_at=T0),
        number=1,
    )
    await seed(
        store,
        # The same channel id on another platform belongs to another incident.
        ChannelLink(incident_id=0, platform="discord", channel_id="C100", created_at=T0),
        ChannelLink(incident_id=0, platform="slack", channel_id=None, created_at=T0),  # pending
        number=2,
    )

    async def number_for(platform: str, channel_id: str) -> int | None:
        async with store.unit() as u:
            incident = await u.incident_for_channel(platform, channel_id)
        return None if incident is None else incident.number

    assert await number_for("slack", "C100") == 1
    assert await number_for("slack", "1700.01") == 1
    assert await number_for("discord", "D300") == 1
    assert await number_for("discord", "D301") == 1
    assert await number_for("discord", "C100") == 2
    assert await number_for("slack", "C999") is None
    assert await number_for("console", "C100") is None


async def test_links_and_open_links(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    _, (slack, discord) = await seed(
        store,
        ChannelLink(incident_id=0, platform="slack", channel_id="C100", created_at=T0),
        ChannelLink(incident_id=0, platform="discord", channel_id=None, created_at=T0),
        number=1,
    )
    other, (other_slack,) = await seed(
        store, ChannelLink(incident_id=0, platform="slack", channel_id="C200", created_at=T0),
        number=2,
    )
    async with store.unit() as u:
        first = await u.incident(1)
        assert first is not None and first.id is not None
        assert [link.id for link in await u.links(first.id)] == [slack, discord]
        assert [link.id for link in await u.links(other)] == [other_slack]
        # Only links whose channel exists, oldest first, on the asked platform.
        assert [link.id for link in await u.open_links("slack")] == [slack, other_slack]
        assert await u.open_links("discord") == []


# --- the outbox -----------------------------------------------------------------------------


async def test_outcomes_are_recorded_in_one_commit_that_leaves_the_connection_as_it_was(
    any_engine: AsyncEngine,
) -> None:
    store = SqlStore(any_engine)
    incident_id, (link_id,) = await seed(store, console_link())
    async with store.unit() as u:
        rows = [delivery_row(incident_id, link_id, DeliveryAction.POST_ENTRY) for _ in range(3)]
        for row in rows:
            await u.add(row)
    sent, skipped, untouched = (row.id for row in rows)
    assert sent is not None and skipped is not None and untouched is not None
    at = T0 + timedelta(seconds=5)
    await store.record_outcomes([
        Finished(sent, DeliveryState.SENT, "M-1", None, at),
        Finished(skipped, DeliveryState.SKIPPED, None, "superseded", at),
    ])

    async with store.unit() as u:
        got = {d: await u.delivery(d) for d in (sent, skipped, untouched)}
    assert got[sent] is not None and got[skipped] is not None and got[untouched] is not None
    assert (got[sent].state, got[sent].message_id, got[sent].attempts) == (DeliveryState.SENT,
                                                                          "M-1", 1)
    assert got[sent].sent_at == at
    assert (got[skipped].state, got[skipped].last_error) == (DeliveryState.SKIPPED, "superseded")
    assert (got[untouched].state, got[untouched].attempts) == (DeliveryState.PENDING, 0)
    if any_engine.dialect.name == "postgresql":
        # The commit without waiting for the disk was for that one transaction only: the
        # connection goes back to the pool committing synchronously (timeline entries use it).
        assert any_engine.pool.checkedin() == 1  # type: ignore[attr-defined]
        async with any_engine.connect() as conn:
            setting = (await conn.execute(text("SHOW synchronous_commit"))).scalar_one()
        assert setting == "on"


async def test_pending_deliveries_come_in_id_order(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    incident_id, (link_id,) = await seed(store, console_link())
    ids = []
    async with store.unit() as u:
        for i in range(5):
            # Later rows are due earlier, so neither the (state, next_attempt_at) index nor a
            # sort by due time gives id order by accident.
            d = delivery_row(incident_id, link_id, DeliveryAction.POST_ENTRY,
                             next_attempt_at=T0 - timedelta(minutes=i))
            await u.add(d)
            ids.append(d.id)
    async with store.unit() as u:
        # The first failed once and is due again later (as the mirror reschedules it): its new
        # version sits last in a PostgreSQL heap and in the index, yet it must still come first.
        await u.session.execute(
            update(Delivery)
            .where(Delivery.id == ids[0])  # type: ignore[arg-type]
            .values(attempts=1, next_attempt_at=T0 + timedelta(minutes=1))
        )
        await u.session.execute(
            update(Delivery).where(Delivery.id == ids[2]).values(state=DeliveryState.SENT)  # type: ignore[arg-type]
        )

    async with store.unit() as u:
        pending = [d.id for d in await u.pending_deliveries(per_queue=10)]
        first_two = [d.id for d in await u.pending_deliveries(per_queue=2)]
    assert pending == [ids[0], ids[1], ids[3], ids[4]]
    assert first_two == [ids[0], ids[1]]


async def test_has_later_summary_refresh(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    incident_id, (a, b) = await seed(store, console_link("C1"), console_link("C2"))
    refresh, post = DeliveryAction.REFRESH_SUMMARY, DeliveryAction.POST_ENTRY
    rows = {}
    async with store.unit() as u:
        for name, link, action in [("a1", a, refresh), ("a_post", a, post), ("b1", b, refresh),
                                   ("a2", a, refresh), ("a_post2", a, post)]:
            rows[name] = delivery_row(incident_id, link, action)
            await u.add(rows[name])

    async def later(name: str) -> bool:
        async with store.unit() as u:
            row = await u.delivery(rows[name].id or 0)
            assert row is not None
            return await u.has_later_summary_refresh(row)

    assert await later("a1") is True  # a2 covers it
    assert await later("a2") is False  # only a post follows on link a
    assert await later("b1") is False  # a2 is on another link
    async with store.unit() as u:
        a2 = await u.delivery(rows["a2"].id or 0)
        assert a2 is not None
        a2.state = DeliveryState.SENT
    assert await later("a1") is False  # a sent refresh covers nothing still to do


# --- transactions ---------------------------------------------------------------------------


async def test_a_failing_unit_leaves_nothing_behind(any_engine: AsyncEngine) -> None:
    store = SqlStore(any_engine)
    with pytest.raises(Boom):
        async with store.unit() as u:
            number = await u.next_incident_number()
            incident = incident_row(number)
            await u.add(incident)
            assert incident.id is not None
            link = console_link()
            link.incident_id = incident.id
            await u.add(link)
            assert link.id is not None
            await u.add(delivery_row(incident.id, link.id, DeliveryAction.OPEN_CHANNEL))
            entry = entry_row(incident.id, "Incident declared", source="slack", external_id="X1")
            await u.add(entry)
            for action in (DeliveryAction.POST_ENTRY, DeliveryAction.REFRESH_SUMMARY):
                await u.add(delivery_row(incident.id, link.id, action, entry_id=entry.id))
            assert await u.claim_event("slack", "Ev01") is True
            raise Boom

    for model in (Incident, ChannelLink, TimelineEntry, Delivery, InboundEvent):
        assert await count(any_engine, model) == 0, model.__name__
    async with store.unit() as u:
        counter = await u.session.get(IncidentCounter, 1)
        assert counter is not None and counter.value == 0
        assert await u.incident_for_channel("console", "C1") is None
        assert await u.claim_event("slack", "Ev01") is True
        assert await u.next_incident_number() == 1
