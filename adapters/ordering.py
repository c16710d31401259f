"""Per-channel ordering for inbound chat work.

Chat platforms deliver requests concurrently, and the database does not grant its write lock
first-come first-served. Work for one channel therefore takes a turn when it arrives (before
the ack) and runs when every earlier turn for that channel is done, so commands typed one after
another are recorded in the order they were typed.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class Turn:
    def __init__(self, previous: asyncio.Future[None] | None, mine: asyncio.Future[None]) -> None:
        self._previous = previous
        self._mine = mine

    async def __aenter__(self) -> Turn:
        if self._previous is not None:
            await asyncio.shield(self._previous)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        if not self._mine.done():
            self._mine.set_result(None)


class InOrder:
    def __init__(self) -> None:
        self._tails: dict[str, asyncio.Future[None]] = {}

    def claim(self, key: str) -> Turn:
        """Take the next turn for `key` now; enter it (async with) to wait for it."""
        mine: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        previous = self._tails.get(key)
        self._tails[key] = mine

        def forget(done: asyncio.Future[None]) -> None:
            if self._tails.get(key) is done:
                del self._tails[key]

        mine.add_done_callback(forget)
        return Turn(previous, mine)
