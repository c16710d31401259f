"""The mirror sends different channels at once and batches its writes, yet never sends to a
channel before the previous delivery there has its message id committed; and it paces each
channel under the platform's rate limit."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.catalog import Catalog
from bot.mirror import Backoff, Bucket, Mirror, RateLimit
from bot.models import Delivery, DeliveryState
from bot.ports import ChannelRef
from bot.render import Message
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.store import SqlStore
from tests.conftest import ALICE
from tests.fakes.chat import RecordingChat
from tests.fakes.clock import FakeClock


class CheckingChat(RecordingChat):
    """Before each post to an incident channel, looks in the database: the delivery last posted
    there must be recorded as sent with the message id it got. (#general is left out: every
    incident's announcements are a queue of their own that share it.)"""

    def __init__(self, store: SqlStore) -> None:
        super().__init__(channels=("general",))
        self.store = store
        self.last: dict[str, tuple[int, str]] = {}  # channel -> (delivery id, message id)
        self.unrecorded: list[tuple[str, int]] = []
        self.overlap = 0  # most posts in flight at once
        self._in_flight = 0
        self.general = self.by_name("general").id

    async def post(self, *, channel_id: str, message: Message, thread_id: str | None = None,
                   key: str | None = None, recheck: bool = False) -> str:
        delivery = int(re.sub(r"\D", "", key or "")) if key else None
        before = self.last.get(channel_id)
        self._in_flight += 1
        self.overlap = max(self.overlap, self._in_flight)
        try:
            if before is not None and before[0] != delivery and channel_id != self.general:
                async with self.store.unit() as u:
                    row = await u.delivery(before[0])
                if row is None or row.state is not DeliveryState.SENT or row.message_id is None:
                    self.unrecorded.append((channel_id, before[0]))
            mid = await super().post(channel_id=channel_id, message=message, thread_id=thread_id,
                                     key=key, recheck=recheck)
        finally:
            self._in_flight -= 1
        if delivery is not None:
            self.last[channel_id] = (delivery, mid)
        return mid


async def test_channels_go_at_once_and_each_commits_before_its_next_send(
    any_engine: AsyncEngine, catalog: Catalog
) -> None:
    store = SqlStore(any_engine)
    chat = CheckingChat(store)
    mirror = Mirror(store=store, ports={"console": chat}, catalog=catalog,
                    backoff=Backoff(base=0.001, cap=0.01))
    service = IncidentService(store=store, catalog=catalog, suggester=HeuristicSuggester(),
                              clock=FakeClock(), notify=lambda: None)
    general = ChannelRef("console", chat.by_name("general").id)
    for n in range(1, 6):
        assert (await service.handle_text(f"declare database {n} is slow", actor=ALICE,
                                          where=general)).ok
    assert await mirror.drain(timeout=20)
    rooms = {n: next(c for c in chat.channels.values() if c.name.startswith(f"inc-{n}-"))
             for n in range(1, 6)}
    for i in range(12):
        for n, room in rooms.items():
            reply = await service.handle_text(f"note step {i} of {n}", actor=ALICE,
                                              where=ChannelRef("console", room.id))
            assert reply.ok
    assert await mirror.drain(timeout=20)

    assert chat.unrecorded == []
    assert chat.overlap > 1  # several channels were being sent to at the same time
    for n, room in rooms.items():
        posted = [m.text for m in room.messages if ": step " in m.text]
        assert [int(t.split(": step ")[1].split()[0]) for t in posted] == list(range(12))
        assert all(f" of {n}" in t for t in posted)
    async with any_engine.connect() as conn:
        left = (await conn.execute(select(func.count()).select_from(Delivery).where(
            Delivery.state == DeliveryState.PENDING))).scalar_one()  # type: ignore[arg-type]
    assert left == 0


def test_a_channel_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = Bucket(RateLimit(per_second=2.0, burst=3), now=100.0)
    waits: list[Any] = [bucket.delay(100.0) for _ in range(5)]
    assert waits == [0.0, 0.0, 0.0, 0.5, 1.0]  # the burst, then one every half second
    # After a quiet second and a half the debt (two tokens) is paid and one is saved again.
    assert bucket.delay(101.5) == 0.0
    assert bucket.delay(101.5) == 0.5
