"""The durable inbox as the edges under test use it: one intake and a running worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from adapters.inbox import Inbox, InboxWorker
from bot.mirror import Mirror
from storage.store import SqlStore


@asynccontextmanager
async def applying(store: SqlStore, mirror: Mirror) -> AsyncIterator[tuple[Inbox, InboxWorker]]:
    """An Inbox and an InboxWorker running on `store`; register edges in `worker.appliers`."""
    inbox = Inbox(store)
    worker = InboxWorker(store=store, appliers={}, notify=mirror.wake, poll=0.05,
                         retry_base=0.01, retry_cap=0.2, turns=inbox.turns)
    inbox.on_stored = worker.wake
    task = asyncio.create_task(worker.run())
    try:
        yield inbox, worker
    finally:
        await worker.stop(grace=5.0)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await inbox.close()
