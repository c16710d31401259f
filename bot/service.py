"""IncidentService: the one entry point for every use case.

Every change is written together with its timeline entry and the deliveries that mirror it to
each linked channel, in one transaction. The service never talks to chat itself; it returns a
`Reply` for the person who acted and wakes the mirror.

The use cases live in one module per area; each lists the commands it answers (READS,
CHANGES). A new area is one module and one more base class here.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from bot import commands as c
from bot.actions import ActionItems
from bot.ai import PlainSummarizer
from bot.base import NOT_PEOPLE, TITLE_LIMIT, Reply, ServiceBase, ServiceError, coerce_field
from bot.catalog import Catalog
from bot.lifecycle import Lifecycle
from bot.models import Incident
from bot.oncall import Oncall
from bot.oncall_commands import parse_oncall
from bot.paging import Paging
from bot.ports import (
    SYSTEM,
    Actor,
    ChannelRef,
    Clock,
    Store,
    Suggester,
    Summarizer,
    SystemClock,
    Unit,
)
from bot.postmortem import Postmortems
from bot.runbooks import Runbooks
from bot.timeline import Timeline
from bot.triage import Triage

logger = logging.getLogger(__name__)

Read = Callable[[Any, Actor, ChannelRef], Awaitable[Reply]]
Change = Callable[[Unit, Incident, Any, Actor], Awaitable[Reply]]


class IncidentService(
    Paging, Triage, Postmortems, Lifecycle, Timeline, ActionItems, Runbooks, Oncall, ServiceBase
):
    def __init__(
        self,
        *,
        store: Store,
        catalog: Catalog,
        suggester: Suggester,
        clock: Clock | None = None,
        platforms: Sequence[str] = ("console",),
        notify: Callable[[], None] | None = None,
        summarizer: Summarizer | None = None,
        not_people: Iterable[str] = NOT_PEOPLE,
    ) -> None:
        self.store = store
        self.not_people: set[str] = set()
        self.refuse_mentions(*not_people)
        self.catalog = catalog
        self.suggester = suggester
        self.summarizer: Summarizer = summarizer or PlainSummarizer()
        self.clock: Clock = clock or SystemClock()
        self.platforms = tuple(platforms)
        self._notify = notify or (lambda: None)
        self._handlers: dict[type[c.Command], Read] = {}
        self._changes: dict[type[c.Command], Change] = {}
        for area in reversed(type(self).__mro__):  # an area listed first wins a command
            for command, name in vars(area).get("READS", {}).items():
                self._handlers[command] = getattr(self, name)
            for command, name in vars(area).get("CHANGES", {}).items():
                self._changes[command] = getattr(self, name)
        self._handlers[c.Help] = self._help

    async def handle_text(self, text: str, *, actor: Actor, where: ChannelRef) -> Reply:
        """Parse `/incident` text and run it; a malformed command gets its usage, nothing else."""
        try:
            command = c.parse(text)
        except c.UsageError as exc:
            return Reply(str(exc), ok=False)
        return await self.handle(command, actor=actor, where=where)

    async def handle_oncall_text(self, text: str, *, actor: Actor, where: ChannelRef) -> Reply:
        """Parse `/oncall` text and run it; a malformed command gets its usage, nothing else."""
        try:
            command = parse_oncall(text)
        except c.UsageError as exc:
            return Reply(str(exc), ok=False)
        return await self.handle(command, actor=actor, where=where)

    async def handle(self, command: c.Command, *, actor: Actor, where: ChannelRef) -> Reply:
        """Run one parsed command; errors come back as a Reply with ok=False and change nothing."""
        try:
            handler = self._handlers.get(type(command))
            if handler is not None:
                return await handler(command, actor, where)
            change = self._changes.get(type(command))
            if change is not None:
                return await self._change(command, actor, where, change)
            return self._not_configured(command)
        except ServiceError as exc:
            return Reply(str(exc), ok=False)
        except Exception:
            # A bug or an unreachable database: the person gets a short answer, never a trace,
            # and the transaction (if any) rolled back, so nothing half-done was kept.
            logger.exception("%s failed", type(command).__name__)
            return Reply(
                "Sorry, that failed on our side and nothing was changed; try again in a moment.",
                ok=False,
            )

    async def handle_together(
        self, commands: Sequence[c.Command], *, actor: Actor, where: ChannelRef
    ) -> tuple[Reply, int | None]:
        """Run changes in one transaction, all or none (an API PATCH); returns the last reply,
        or the first refusal with the index of the command refused (nothing is then kept)."""
        replies: list[Reply] = []
        try:
            async with self.store.unit() as u:
                for command in commands:
                    change = self._changes.get(type(command))
                    if change is None:
                        raise ServiceError(f"{type(command).__name__} is not a change")
                    incident = await self._resolve_incident(u, command.incident, where)
                    replies.append(await change(u, incident, command, actor))
        except ServiceError as exc:  # the unit rolled back: nothing of the batch was kept
            return Reply(str(exc), ok=False), len(replies)
        self._notify()
        return (replies[-1] if replies else Reply("Nothing to change.")), None

    def _not_configured(self, command: c.Command) -> Reply:
        return Reply(
            f"/incident {type(command).__name__.lower()} is not available here; nothing was done.",
            ok=False,
        )

    async def _help(self, cmd: c.Help, actor: Actor, where: ChannelRef) -> Reply:
        if cmd.topic:
            detail = c.DETAILS.get(cmd.topic, "").replace("{timezone}", self.catalog.timezone)
            return Reply(f"Usage: {c.USAGE[cmd.topic]}" + (f"\n{detail}" if detail else ""))
        return Reply(c.HELP_TEXT)


__all__ = [
    "NOT_PEOPLE",
    "SYSTEM",
    "TITLE_LIMIT",
    "IncidentService",
    "Reply",
    "ServiceError",
    "coerce_field",
]
