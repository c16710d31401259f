"""The timeline: notes, key events (by command, 📌 or "Add to timeline"), timeline-thread
replies and their edits, the timeline view and catch-up."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, ClassVar

from bot import commands as c
from bot.ai import PlainSummarizer
from bot.base import (
    Reply,
    ServiceBase,
    _id,
)
from bot.models import (
    ChannelLink,
    EntryKind,
    Incident,
    TimelineEntry,
)
from bot.ports import (
    Actor,
    ChannelRef,
    Unit,
)
from bot.render import PAGE_SIZE, entry_line, paged, short_id

logger = logging.getLogger(__name__)


class Timeline(ServiceBase):
    """What happened, in order: recording it and showing it."""

    READS: ClassVar[dict[type[c.Command], str]] = {
        c.ShowTimeline: "_timeline",
        c.CatchUp: "_catchup",
    }
    CHANGES: ClassVar[dict[type[c.Command], str]] = {
        c.AddKeyEvent: "_key_event",
        c.AddNote: "_note",
    }

    async def _timeline(self, cmd: c.ShowTimeline, actor: Actor, where: ChannelRef) -> Reply:
        """Return the latest PAGE_SIZE entries (page 2: the ones before those), oldest first."""
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            entries, total = await u.timeline_list_page(
                _id(incident),
                key_only=cmd.key_only,
                limit=PAGE_SIZE,
                offset=(cmd.page - 1) * PAGE_SIZE,
            )
        what = "Key events" if cmd.key_only else "Timeline"
        n = incident.number
        if not entries:
            if total:
                pages = -(-total // PAGE_SIZE)
                return Reply(
                    f"No page {cmd.page}: the {what.lower()} of #{n} has {total} entries, "
                    f"{pages} page(s).",
                    incident=n,
                )
            return Reply(f"{what} of #{n}: nothing yet.", incident=n)
        newest = (cmd.page - 1) * PAGE_SIZE
        head = f"{what} of #{n} {incident.title}"
        if total > len(entries):
            head = (
                f"{what} of #{n}, {total - newest - len(entries) + 1}-{total - newest} "
                f"of {total}: {incident.title}"
            )
        earlier = total - newest - len(entries)
        key = " key" if cmd.key_only else ""
        foot = f"{earlier} earlier: /incident timeline{key} page {cmd.page + 1}"
        now, tz = self.clock.now(), self.catalog.tz
        lines = [entry_line(e, now, tz) for e in entries]
        return Reply(paged(f"{head}:", lines, foot if earlier else None), incident=n)

    async def _catchup(self, cmd: c.CatchUp, actor: Actor, where: ChannelRef) -> Reply:
        """Summarise the timeline so far; returns text whose every citation is a real entry."""
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            entries = await u.timeline(_id(incident))
        itype = self.catalog.incident_type(incident.type)
        # A type with AI off (security by default) never has its timeline sent to a model.
        summarizer = self.summarizer if itype is None or itype.ai else PlainSummarizer()
        text, removed = await summarizer.summarize(
            entries, incident=incident, now=self.clock.now(), tz=self.catalog.tz
        )
        fixed = (
            f"\n({removed} citation{'s' if removed != 1 else ''} of entries that do not exist "
            "removed)"
            if removed
            else ""
        )
        return Reply(
            f"Catch-up on #{incident.number} {incident.title}:\n{text}{fixed}",
            incident=incident.number,
        )

    async def _key_event(self, u: Unit, inc: Incident, cmd: c.AddKeyEvent, actor: Actor) -> Reply:
        await self._record(u, inc, kind=EntryKind.KEY_EVENT, text=cmd.text, actor=actor)
        return Reply(f"Key event added to #{inc.number}.", incident=inc.number)

    async def _note(self, u: Unit, inc: Incident, cmd: c.AddNote, actor: Actor) -> Reply:
        await self._record(u, inc, kind=EntryKind.MESSAGE, text=cmd.text, actor=actor)
        return Reply(f"Note added to the timeline of #{inc.number}.", incident=inc.number)

    async def record_thread_message(
        self,
        *,
        where: ChannelRef,
        actor: Actor,
        text: str,
        message_id: str,
        occurred_at: datetime,
    ) -> TimelineEntry | None:
        """Record a reply in an incident's timeline thread; None when it is not one (or known)."""
        async with self.store.unit() as u:
            link = await self._thread_link(u, where)
            if link is None:
                return None
            external = f"{where.channel_id}:{message_id}"
            if await u.entry_by_external(where.platform, external) is not None:
                return None
            incident = await u.incident_by_id(link.incident_id)
            assert incident is not None
            entry = await self._record(
                u,
                incident,
                kind=EntryKind.MESSAGE,
                text=text,
                actor=actor,
                occurred_at=occurred_at,
                external_id=external,
                origin_link=link.id,
            )
        self._notify()
        return entry

    async def edit_thread_message(
        self, *, where: ChannelRef, message_id: str, text: str
    ) -> TimelineEntry | None:
        """Follow an edit of a recorded thread message; None when it was never recorded."""
        async with self.store.unit() as u:
            found = await self._locked_entry(u, where.platform, f"{where.channel_id}:{message_id}")
            if found is None or found[1].text == text:
                return None
            incident, entry = found
            entry.text, entry.edited_at = text, self.clock.now()
            await self._refresh_only(u, incident)
        self._notify()
        return entry

    async def delete_thread_message(
        self, *, where: ChannelRef, message_id: str
    ) -> TimelineEntry | None:
        """Mark a recorded thread message deleted; None when it was never recorded."""
        async with self.store.unit() as u:
            found = await self._locked_entry(u, where.platform, f"{where.channel_id}:{message_id}")
            if found is None or found[1].deleted:
                return None
            incident, entry = found
            entry.deleted, entry.edited_at = True, self.clock.now()
            await self._refresh_only(u, incident)
        self._notify()
        return entry

    async def reaction_added(
        self,
        *,
        where: ChannelRef,
        actor: Actor,
        emoji: str,
        message_id: str,
        text: str,
        author: str,
        occurred_at: datetime,
    ) -> Reply | None:
        """The key-event emoji on a message in an incident channel records it as a key event.

        Idempotent: the same reaction applied twice records one key event.
        """
        if emoji != self.catalog.key_event_emoji:
            return None
        return await self.key_event_from_message(
            where=where,
            actor=actor,
            message_id=message_id,
            text=text,
            author=author,
            occurred_at=occurred_at,
        )

    async def key_event_from_message(
        self,
        *,
        where: ChannelRef,
        actor: Actor,
        message_id: str,
        text: str,
        author: str,
        occurred_at: datetime,
        incident_number: int | None = None,
    ) -> Reply | None:
        """Record a chat message as a key event at its own time ("Add to timeline").

        The incident is the one whose channel the message is in, or `incident_number`. None
        when there is none, or when the message is already a key event of this person's. A
        post of the bot's that shows a timeline entry records that entry's text with a
        reference to it (`data["ref_entry"]`); the pinned summary and the timeline thread's
        root are refused (ok=False) and nothing is recorded.
        """
        async with self.store.unit() as u:
            incident: Incident | None
            if incident_number is not None:
                incident = await self._resolve_incident(u, incident_number, where)
            else:
                incident = await u.incident_for_channel(where.platform, where.channel_id)
            if incident is None:
                return None
            link = next(
                (
                    link
                    for link in await u.links(_id(incident))
                    if link.platform == where.platform and link.channel_id == where.channel_id
                ),
                None,
            )
            ref: TimelineEntry | None = None
            if link is not None:
                refused = _not_a_key_event(link, message_id)
                if refused:
                    return Reply(refused, ok=False, incident=incident.number)
                # One of our own posts: the key event is the entry it shows, not its rendering.
                ref = await u.posted_entry(_id(link), message_id)
                if ref is not None and ref.kind is EntryKind.KEY_EVENT:
                    return Reply(
                        f"That post is key event {short_id(ref.id)} of #{incident.number} "
                        "already; nothing added.",
                        ok=False,
                        incident=incident.number,
                    )
                if ref is not None:
                    text, occurred_at = ref.text, ref.occurred_at
                    author = ref.author_name or "Opsroom"
            external = f"key:{where.channel_id}:{message_id}"
            entry = await u.entry_by_external(where.platform, external)
            if entry is not None:
                reactors = list(entry.data.get("reactors", []))
                if actor.user_id in reactors and not entry.deleted:
                    return None
                entry.data = {**entry.data, "reactors": sorted({*reactors, actor.user_id})}
                if not entry.deleted:
                    return None
                entry.deleted = False
                await self._record(
                    u,
                    incident,
                    kind=EntryKind.SYSTEM,
                    actor=actor,
                    text=f"Key event restored: {text[:200]}",
                )
            else:
                data: dict[str, Any] = {
                    "reactors": [actor.user_id],
                    "via": "reaction",
                    "message_id": message_id,
                    "marked_by": actor.name,
                }
                if ref is not None:
                    data["ref_entry"] = ref.id
                await self._record(
                    u,
                    incident,
                    kind=EntryKind.KEY_EVENT,
                    text=text,
                    actor=actor,
                    author_name=author or actor.name,
                    occurred_at=occurred_at,
                    external_id=external,
                    data=data,
                )
        self._notify()
        marked = f" (it records {short_id(ref.id)})" if ref is not None else ""
        return Reply(f"Key event added to #{incident.number}{marked}.", incident=incident.number)

    async def reaction_removed(
        self, *, where: ChannelRef, actor: Actor, emoji: str, message_id: str
    ) -> Reply | None:
        """Removing the last key-event reaction from a message removes its key event."""
        if emoji != self.catalog.key_event_emoji:
            return None
        async with self.store.unit() as u:
            found = await self._locked_entry(
                u, where.platform, f"key:{where.channel_id}:{message_id}"
            )
            if found is None or found[1].deleted:
                return None
            incident, entry = found
            reactors = [r for r in entry.data.get("reactors", []) if r != actor.user_id]
            entry.data = {**entry.data, "reactors": reactors}
            if reactors:
                return None
            entry.deleted, entry.edited_at = True, self.clock.now()
            await self._record(
                u,
                incident,
                kind=EntryKind.SYSTEM,
                actor=actor,
                text=f"Key event removed: {entry.text[:200]}",
                data={"removed_entry": entry.id},
            )
        self._notify()
        return Reply(f"Key event removed from #{incident.number}.", incident=incident.number)

    async def _locked_entry(
        self, u: Unit, source: str, external_id: str
    ) -> tuple[Incident, TimelineEntry] | None:
        """An entry by its platform id, read after taking its incident's lock.

        Every change locks the incident first; reading the entry again under that lock means
        two people un-pinning at once both count, and lock order is the same everywhere.
        """
        entry = await u.entry_by_external(source, external_id)
        if entry is None:
            return None
        incident = await u.incident_by_id(entry.incident_id)
        assert incident is not None
        await u.refresh(entry)
        return incident, entry

    async def _thread_link(self, u: Unit, where: ChannelRef) -> ChannelLink | None:
        """The link whose timeline thread `where` is in."""
        if where.thread_id is None:
            return None
        incident = await u.incident_for_channel(where.platform, where.channel_id)
        if incident is None:
            return None
        for link in await u.links(_id(incident)):
            if link.platform == where.platform and link.thread_id == where.thread_id:
                return link
        return None


def _not_a_key_event(link: ChannelLink, message_id: str) -> str | None:
    """Why a 📌 on `message_id` records nothing: the pinned summary and the timeline thread's
    root message are the bot's frame around the timeline, not events in it. None otherwise."""
    if message_id == link.summary_message_id:
        return (
            "The pinned summary is not a key event (it shows the incident as it stands); "
            "📌 a message or a timeline post, or use /incident event <text>."
        )
    # On Slack and Discord the thread is addressed by its root message's id.
    if message_id in (link.timeline_message_id, link.thread_id):
        return (
            "The timeline thread's first message is not a key event; 📌 a message or a "
            "timeline post, or use /incident event <text>."
        )
    return None


