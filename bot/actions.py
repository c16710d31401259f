"""Action items: add, list, done, edit, reopen, cancel."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import ClassVar

from bot import commands as c
from bot.base import (
    Reply,
    ServiceBase,
    ServiceError,
    _id,
)
from bot.models import (
    ActionItem,
    ActionStatus,
    EntryKind,
    Incident,
)
from bot.ports import (
    Actor,
    ChannelRef,
    Unit,
)
from bot.render import action_line

logger = logging.getLogger(__name__)


class ActionItems(ServiceBase):
    """Follow-ups of an incident, with an assignee and a due date."""

    READS: ClassVar[dict[type[c.Command], str]] = {
        c.ActionList: "_action_list",
    }
    CHANGES: ClassVar[dict[type[c.Command], str]] = {
        c.ActionAdd: "_action_add",
        c.ActionDone: "_action_done",
        c.ActionEdit: "_action_edit",
        c.ActionReopen: "_action_reopen",
        c.ActionCancel: "_action_cancel",
    }

    async def _action_list(self, cmd: c.ActionList, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            items = await u.action_items(_id(incident))
        if not items:
            return Reply(f"#{incident.number} has no action items.", incident=incident.number)
        now = self.clock.now()
        lines = [f"Action items of #{incident.number}:"]
        lines += [action_line(a, now, self.catalog.tz) for a in items]
        return Reply("\n".join(lines), incident=incident.number)

    async def _action_add(self, u: Unit, inc: Incident, cmd: c.ActionAdd, actor: Actor) -> Reply:
        if cmd.assignee:
            self._person(cmd.assignee, "the assignee")
        now = self.clock.now()
        due = self._due(cmd.due, now) if cmd.due else None
        number = max((a.number for a in await u.action_items(_id(inc))), default=0) + 1
        item = ActionItem(
            incident_id=_id(inc),
            number=number,
            text=cmd.text,
            assignee=cmd.assignee,
            due_at=due,
            created_by=actor.ref,
            created_at=now,
            updated_at=now,
        )
        await u.add(item)
        await self._record_action(u, inc, item, actor, "Action item added", "added", now)
        return Reply(f"Action item {number} added to #{inc.number}.", incident=inc.number)

    async def _record_action(
        self,
        u: Unit,
        inc: Incident,
        item: ActionItem,
        actor: Actor,
        label: str,
        event: str,
        now: datetime,
    ) -> None:
        """The timeline entry of a change to `item`: "<label>: <the item as it is now>"."""
        await self._record(
            u,
            inc,
            kind=EntryKind.ACTION_ITEM,
            actor=actor,
            text=f"{label}: {action_line(item, now, self.catalog.tz)}",
            data={"action_item": item.number, "event": event},
        )

    def _due(self, spec: c.DueSpec, now: datetime) -> datetime:
        """The moment `spec` means now, read in the catalog's time zone; refused when past."""
        try:
            return spec.resolve(now, self.catalog.tz)
        except ValueError as exc:
            raise ServiceError(str(exc)) from None

    async def _action_item(self, u: Unit, inc: Incident, number: int) -> ActionItem:
        item = await u.action_item(_id(inc), number)
        if item is None:
            raise ServiceError(f"#{inc.number} has no action item {number}")
        return item

    async def _action_done(self, u: Unit, inc: Incident, cmd: c.ActionDone, actor: Actor) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if item.status is not ActionStatus.OPEN:
            raise ServiceError(f"action item {item.number} is already {item.status.value}")
        now = self.clock.now()
        item.status, item.completed_at, item.updated_at = ActionStatus.DONE, now, now
        await self._record_action(u, inc, item, actor, "Action item done", "done", now)
        return Reply(f"Action item {item.number} of #{inc.number} is done.", incident=inc.number)

    async def _action_reopen(
        self, u: Unit, inc: Incident, cmd: c.ActionReopen, actor: Actor
    ) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if item.status is ActionStatus.OPEN:
            raise ServiceError(f"action item {item.number} is already open")
        now = self.clock.now()
        was = item.status
        item.status, item.completed_at, item.updated_at = ActionStatus.OPEN, None, now
        label = f"Action item reopened (was {was.value})"
        await self._record_action(u, inc, item, actor, label, "reopened", now)
        return Reply(
            f"Action item {item.number} of #{inc.number} is open again.", incident=inc.number
        )

    async def _action_cancel(
        self, u: Unit, inc: Incident, cmd: c.ActionCancel, actor: Actor
    ) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if item.status is not ActionStatus.OPEN:
            raise ServiceError(f"action item {item.number} is already {item.status.value}")
        now = self.clock.now()
        item.status, item.updated_at = ActionStatus.CANCELLED, now
        await self._record_action(u, inc, item, actor, "Action item cancelled", "cancelled", now)
        return Reply(
            f"Action item {item.number} of #{inc.number} is cancelled "
            f"(/incident action reopen {item.number} undoes this).",
            incident=inc.number,
        )

    async def _action_edit(self, u: Unit, inc: Incident, cmd: c.ActionEdit, actor: Actor) -> Reply:
        item = await self._action_item(u, inc, cmd.number)
        if cmd.assignee:
            self._person(cmd.assignee, "the assignee")
        now = self.clock.now()
        if cmd.text:
            item.text = cmd.text
        if cmd.assignee:
            item.assignee = cmd.assignee
        if cmd.due:
            item.due_at = self._due(cmd.due, now)
        item.updated_at = now
        await self._record_action(u, inc, item, actor, "Action item edited", "edited", now)
        return Reply(f"Action item {item.number} of #{inc.number} updated.", incident=inc.number)


