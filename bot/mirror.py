"""The mirror: sends queued deliveries to each linked channel, in order, once.

Deliveries are rows the service wrote in the same transaction as the change they announce (an
outbox). For each channel link the mirror sends them strictly in the order they were queued; a
failure stops that link's queue, is retried with backoff, and nothing after it overtakes it. A
restart resumes from the rows still pending. Network calls happen outside any transaction; each
step's result (channel id, message id) is saved as soon as it is known, so a retry never creates
a second channel or posts a second summary.
"""

from __future__ import annotations

import asyncio
import logging
import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import DBAPIError

from bot.catalog import Catalog
from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    DeliveryState,
    EntryKind,
    Incident,
    LinkState,
    TimelineEntry,
)
from bot.notices import NoticeSender
from bot.people import Directory, mentioned_ids
from bot.ports import (
    ChannelNameTaken,
    ChatPort,
    Clock,
    CreatedChannel,
    DeliveryRejected,
    Finished,
    LeaseTake,
    RetryLater,
    Store,
    SystemClock,
    Unit,
)
from bot.render import Message, announcement, direct_message, entry_message, summary, topic
from bot.steps.http import HttpClient

logger = logging.getLogger(__name__)

MAX_NAME_SUFFIX = 20
QUEUE_BATCH = 100  # deliveries read per queue per pass
FINISH_ATTEMPTS = 5
WAIT_SECONDS = 1.0  # how soon a delivery waiting on another queue first looks again
WAIT_CAP = 30.0
ANNOUNCE_WAIT_MAX = 300.0  # after this, announce without naming a channel not yet open
LEASE_TTL = 60.0  # a queue's lease outlives a pass; a dead holder's is taken over after this
LEASE_RETRY = 0.25  # how soon to look again at queues another process was sending


# The actions whose sending reads the database (beyond the batch's one query).
_READS = frozenset({DeliveryAction.OPEN_CHANNEL, DeliveryAction.REFRESH_SUMMARY,
                    DeliveryAction.UPDATE_ENTRY, DeliveryAction.UPLOAD_FILE})


def slugify(text: str, limit: int = 40) -> str:
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_text.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > limit:
            break
        slug = candidate
    return slug or (words[0][:limit] if words else "incident")


def channel_name(prefix: str, number: int, title: str) -> str:
    return f"{prefix}-{number}-{slugify(title)}"


def in_thread(entry: TimelineEntry) -> bool:
    """Conversation goes to the timeline thread; changes to the incident go to the channel."""
    return (
        entry.kind is EntryKind.MESSAGE
        or entry.data.get("via") == "reaction"
        or "removed_entry" in entry.data
    )


async def summary_for(
    u: Unit, incident: Incident, catalog: Catalog, now: datetime, public_url: str | None = None
) -> Message:
    """The pinned summary of `incident` as the record in `u` has it; with `public_url` (the
    web view's address) it links to the incident's page."""
    assert incident.id is not None
    itype = catalog.incident_type(incident.type)
    own = {f.name: f.display for f in itype.fields} if itype else {}
    # A field kept from an earlier type is labelled as that type (any type defining it) did.
    labels = {f.name: f.display for t in reversed(catalog.incident_types) for f in t.fields}
    return summary(
        incident,
        cadence=update_cadence(catalog, incident),
        actions=await u.action_items(incident.id),
        key_events=await u.timeline(incident.id, key_only=True),
        field_labels=labels | own,
        now=now,
        extra_fields=[n for n in incident.custom_fields if n not in own] if itype else (),
        tz=catalog.tz,
        page_url=f"{public_url.rstrip('/')}/incidents/{incident.number}" if public_url else None,
        alerts_firing=await u.firing_alerts(incident.id),
    )


def update_cadence(catalog: Catalog, incident: Incident) -> timedelta | None:
    """The status-update cadence; None in a quiet status, where no update is asked for."""
    if incident.status in catalog.quiet_statuses:
        return None
    severity = catalog.severity(incident.severity) or catalog.severities[-1]
    return severity.update_interval


@dataclass
class Backoff:
    base: float = 1.0  # seconds before the first retry
    cap: float = 300.0

    def delay(self, attempts: int) -> float:
        # The exponent is capped: a delivery stuck for days must not overflow the float.
        return float(min(self.cap, self.base * 2 ** min(max(0, attempts - 1), 30)))


@dataclass(frozen=True)
class RateLimit:
    """How fast the bot may post to one channel: `per_second` on average, `burst` at once."""

    per_second: float
    burst: int = 1


class Bucket:
    """A token bucket for one channel. `delay(now)` takes a token and says how long to wait
    before using it (0 when one was there); `now` is a monotonic time in seconds."""

    def __init__(self, limit: RateLimit, now: float) -> None:
        self.limit = limit
        self.tokens = float(limit.burst)
        self.stamp = now

    def delay(self, now: float) -> float:
        rate = self.limit.per_second
        self.tokens = min(float(self.limit.burst), self.tokens + (now - self.stamp) * rate)
        self.stamp = now
        self.tokens -= 1  # below zero: a debt the next refills pay first
        return 0.0 if self.tokens >= 0 else -self.tokens / rate


class _GroupCommit:
    """Outcomes of several queues written in one transaction. Each queue still waits until its
    own are committed before it sends again, so no message is ever sent with an earlier one's
    id unrecorded: the duplicate window stays one message per channel."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._waiting: list[tuple[list[Finished], asyncio.Future[None]]] = []
        self._runner: asyncio.Task[None] | None = None

    async def record(self, outcomes: list[Finished]) -> None:
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((list(outcomes), done))
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run())
        await done

    async def _run(self) -> None:
        while self._waiting:
            await asyncio.sleep(0)  # let the queues that are sending right now join this write
            batch, self._waiting = self._waiting, []
            try:
                await self.store.record_outcomes([o for outcomes, _ in batch for o in outcomes])
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
            else:
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class _Skip(Exception):
    """Nothing to send for this delivery (superseded, or no announcement channel)."""


class _Wait(Exception):
    """Not yet: this delivery depends on another queue's progress. Not a failure."""


class Mirror:
    def __init__(
        self,
        *,
        store: Store,
        ports: Mapping[str, ChatPort],
        catalog: Catalog,
        clock: Clock | None = None,
        backoff: Backoff | None = None,
        holder: str | None = None,
        lease_ttl: float = LEASE_TTL,
        public_url: str | None = None,
        people: Directory | None = None,
        limits: Mapping[str, RateLimit] | None = None,
        http: HttpClient | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.public_url = public_url  # OPSROOM_PUBLIC_URL: summaries link to the web view
        # Mentions are stored as written; each platform is shown each person as themselves.
        self.people = people or Directory(catalog.people)
        self.ports = dict(ports)
        self.catalog = catalog
        self.clock: Clock = clock or SystemClock()
        self.backoff = backoff or Backoff()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()  # one sender at a time keeps each link's order
        self._stopping = False
        self.troubled = False  # the last pass hit a database error
        self._running = False
        self._stopped = asyncio.Event()
        self._announce_ids: dict[tuple[str, str], str] = {}
        # Every replica runs a mirror; each queue is sent by whichever holds its lease.
        self.holder = holder or f"mirror-{uuid.uuid4().hex[:12]}"
        self.lease_ttl = timedelta(seconds=lease_ttl)
        self.blocked = False  # the last pass left queues to another process
        # Deliveries the platform may have accepted without our record of it (the database
        # failed right after): their next attempt looks for them before posting again.
        self._suspect: set[int] = set()
        self._commits = _GroupCommit(store)
        # Per platform, how fast one channel may be posted to; 429s are still honoured.
        self.limits = dict(limits or {})
        self._buckets: dict[tuple[str, str], Bucket] = {}
        # What goes outside incident channels (triage, shift changes, pages, webhooks).
        self.notices = NoticeSender(
            store=store, ports=self.ports, catalog=catalog, holder=self.holder,
            lease_ttl=self.lease_ttl, delay=self.backoff.delay, clock=self.clock, http=http,
            env=env, people=self.people,
        )

    def wake(self) -> None:
        """Called after a commit that queued deliveries."""
        self._wake.set()

    # --- loops --------------------------------------------------------------------------

    async def run(self, poll: float = 5.0) -> None:
        """Deliver until `stop()`; sleeps until woken or the next retry is due."""
        self._running = True
        self._stopped.clear()
        try:
            while not self._stopping:
                self._wake.clear()
                try:
                    await self.deliver_due()
                    # After a database failure, pause: resending at once what could not be
                    # recorded would post it again and again.
                    wait = poll if self.troubled else await self._seconds_to_next(poll)
                    if self.blocked:  # another process is sending some queue: look again soon
                        wait = max(wait, LEASE_RETRY) if wait > 0 else LEASE_RETRY
                except (DBAPIError, OSError, TimeoutError) as exc:  # the database is away
                    logger.warning("mirror: delivery pass failed (%s: the database); retrying "
                                   "in %.0fs", type(exc).__name__, poll)
                    wait = poll
                except Exception:  # anything else: keep the loop alive, retry, show where
                    logger.exception("mirror: delivery pass failed; retrying in %.0fs", poll)
                    wait = poll
                if self._stopping:
                    break
                try:
                    await asyncio.wait_for(self._wake.wait(), timeout=wait)
                except TimeoutError:
                    pass
        finally:
            self._running = False
            self._stopped.set()

    async def stop(self) -> None:
        """Stop after the in-flight pass; pending deliveries stay queued for the next start."""
        self._stopping = True
        self._wake.set()
        if self._running:
            await self._stopped.wait()

    async def drain(self, timeout: float = 10.0) -> bool:
        """Deliver until nothing is pending or `timeout` passes; True when all was sent."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            await self.deliver_due()
            if self.troubled:
                await asyncio.sleep(min(1.0, max(0.0, deadline - loop.time())))
            async with self.store.unit() as u:
                pending = await u.any_pending() or await u.next_notice_due() is not None
            if not pending:
                return True
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            await asyncio.sleep(min(remaining, await self._seconds_to_next(0.05), 0.05) or 0.001)

    async def _seconds_to_next(self, cap: float) -> float:
        async with self.store.unit() as u:
            due = [await u.next_delivery_due(), await u.next_notice_due()]
        soonest = min((d for d in due if d is not None), default=None)
        if soonest is None:
            return cap
        return max(0.0, min(cap, (soonest - self.clock.now()).total_seconds()))

    async def deliver_due(self) -> int:
        """Send every delivery that is due, each queue in order; return how many were sent.

        A queue is one channel link's deliveries; its announcements form a queue of their own,
        so an announcement channel the bot cannot post in never holds up the incident channel.
        Each queue is sent under a lease (storage/claims.py), so with several replicas one
        process at a time sends it, in order, and a dead process's queue is taken over.
        """
        async with self._lock:
            async with self.store.unit() as u:
                pending = await u.pending_deliveries(per_queue=QUEUE_BATCH)
            queues: dict[tuple[int, bool], list[Delivery]] = {}
            for d in pending:
                key = (d.link_id, d.action is DeliveryAction.ANNOUNCE)
                queues.setdefault(key, []).append(d)
            now = self.clock.now()
            # A queue whose head is not due waits: nothing behind it may pass, no lease needed.
            due = {key: q for key, q in queues.items()
                   if not self._stopping and q[0].next_attempt_at <= now}
            names = {key: f"mirror:{key[0]}:{'announce' if key[1] else 'channel'}" for key in due}
            taken = await self._take_leases(sorted(names.values())) if names else {}
            self.blocked = any(t is LeaseTake.BUSY for t in taken.values())
            held = {key: q for key, q in due.items() if taken[names[key]] is not LeaseTake.BUSY}
            for key, q in held.items():
                if taken[names[key]] is LeaseTake.TAKEN_OVER:
                    # Its last holder stopped answering midway: the head may have been sent.
                    self._suspect.add(_id(q[0]))
            # Channel queues first, then announcements: each queue stays in order either way,
            # and people see a change in the incident channel before it is announced.
            results: list[int | BaseException] = []
            try:
                for announcements in (False, True):
                    batch = [(key, q) for key, q in held.items() if key[1] is announcements]
                    results += await asyncio.gather(
                        *(self._deliver_queue(q, names[key]) for key, q in batch),
                        return_exceptions=True,
                    )
            finally:
                await self._drop_leases([names[key] for key in held])
            sent = 0
            self.troubled = False
            try:
                sent += await self.notices.deliver_due(stopping=self._stopping)
            except Exception as exc:
                logger.error("mirror: sending notices failed: %r", exc)
                self.troubled = True
            self.blocked = self.blocked or self.notices.blocked
            for result in results:
                if isinstance(result, BaseException):
                    # Only the database can fail here (chat errors are handled per delivery);
                    # the rows stay pending, and the next pass waits a while (see run/drain).
                    logger.error("mirror: a delivery queue stopped: %r", result)
                    self.troubled = True
                else:
                    sent += result
            return sent

    async def _take_leases(self, names: list[str]) -> dict[str, LeaseTake]:
        """Every queue's lease in one transaction (in name order, as every replica takes them)."""
        async with self.store.unit() as u:
            return {
                name: await u.take_lease(
                    name, holder=self.holder, now=self.clock.now(), ttl=self.lease_ttl
                )
                for name in names
            }

    async def _drop_leases(self, names: list[str]) -> None:
        if not names:
            return
        try:
            async with self.store.unit() as u:
                for name in names:
                    await u.drop_lease(name, holder=self.holder)
        except Exception:  # they expire by themselves
            logger.warning("mirror: could not release %d queue leases", len(names))

    async def _lease(self, name: str) -> LeaseTake:
        async with self.store.unit() as u:
            return await u.take_lease(
                name, holder=self.holder, now=self.clock.now(), ttl=self.lease_ttl
            )

    async def _deliver_queue(self, queue: list[Delivery], lease: str) -> int:
        # What the whole batch needs, in one query; a row another process sent meanwhile (it
        # held the queue before us) is no longer pending and so not here.
        async with self.store.unit() as u:
            loaded = await u.deliveries_to_send([_id(d) for d in queue])
        refreshes = [i for i, row in enumerate(loaded)
                     if row[0].action is DeliveryAction.REFRESH_SUMMARY]
        last_refresh = refreshes[-1] if refreshes else -1
        full = len(queue) >= QUEUE_BATCH  # more may wait behind this batch
        sent = 0
        renewed = self.clock.now()
        skipped: list[Finished] = []  # written with the next outcome: nothing was sent for them
        try:
            for i, (delivery, link, incident, entry) in enumerate(loaded):
                now = self.clock.now()
                if self._stopping or delivery.next_attempt_at > now:
                    break  # the head of this link's queue is not due: nothing behind may pass
                if now - renewed > self.lease_ttl / 3:
                    if await self._lease(lease) is not LeaseTake.HELD:
                        break  # we were too slow and another process took the queue over
                    renewed = now
                # A summary refresh followed by another in this batch is superseded; the last
                # one asks the database only when the batch may not hold the whole queue.
                superseded = i < last_refresh or (None if full else False)
                if not await self._deliver(delivery, link, incident, entry, superseded, skipped):
                    break
                sent += 1
        finally:
            if skipped:
                await self._finish(skipped)
        return sent

    async def _deliver(
        self,
        delivery: Delivery,
        link: ChannelLink,
        incident: Incident,
        entry: TimelineEntry | None,
        superseded: bool | None,
        skipped: list[Finished],
    ) -> bool:
        try:
            message_id = await self._perform(delivery, link, incident, entry, superseded)
        except _Skip as skip:
            skipped.append(self._outcome(delivery, DeliveryState.SKIPPED, None, str(skip)))
            return True
        except _Wait:
            await self._postpone(delivery)
            return False
        except DeliveryRejected as exc:
            logger.error(
                "mirror: %s of delivery %s refused for good, not retried: %s",
                delivery.action.value,
                delivery.id,
                exc,
            )
            outcome = self._outcome(delivery, DeliveryState.FAILED, None, str(exc)[:500])
            await self._finish([*skipped, outcome])
            skipped.clear()
            return True
        except Exception as exc:
            await self._failed(delivery, exc)
            return False
        await self._finish([*skipped, self._outcome(delivery, DeliveryState.SENT, message_id, "")])
        skipped.clear()
        return True

    def _outcome(
        self, delivery: Delivery, state: DeliveryState, message_id: str | None, note: str
    ) -> Finished:
        return Finished(_id(delivery), state, message_id, note or None, self.clock.now())

    async def _finish(self, outcomes: list[Finished]) -> None:
        # The platform has the message now: a failed write here would send it again on the
        # next pass, so it is retried a few times before giving up. The write is committed
        # before this queue sends anything else (outcomes of other channels may share it).
        for attempt in range(FINISH_ATTEMPTS):
            try:
                await self._commits.record(outcomes)
                for outcome in outcomes:
                    self._suspect.discard(outcome.delivery_id)
                return
            except Exception:
                if attempt == FINISH_ATTEMPTS - 1:
                    self._suspect.update(o.delivery_id for o in outcomes)
                    raise
                logger.warning(
                    "mirror: recording deliveries %s failed; retrying",
                    [o.delivery_id for o in outcomes],
                )
                await asyncio.sleep(0.2 * (attempt + 1))

    async def _postpone(self, delivery: Delivery) -> None:
        """Look again later, less often the longer it waits (not a failure: nothing logged)."""
        async with self.store.unit() as u:
            row = await u.delivery(_id(delivery))
            assert row is not None
            row.attempts += 1
            delay = min(WAIT_SECONDS * 2 ** min(row.attempts - 1, 10), WAIT_CAP)
            row.next_attempt_at = self.clock.now() + timedelta(seconds=delay)

    async def _failed(self, delivery: Delivery, exc: Exception) -> None:
        async with self.store.unit() as u:
            row = await u.delivery(_id(delivery))
            assert row is not None
            row.attempts += 1
            delay = self.backoff.delay(row.attempts)
            if isinstance(exc, RetryLater):
                delay = max(delay, exc.retry_after)
            row.next_attempt_at = self.clock.now() + timedelta(seconds=delay)
            row.last_error = f"{type(exc).__name__}: {exc}"[:500]
            attempts = row.attempts
        logger.warning(
            "mirror: %s of delivery %s failed (attempt %d), retrying in %.1fs: %s",
            delivery.action.value,
            delivery.id,
            attempts,
            delay,
            row.last_error,
        )

    # --- actions ------------------------------------------------------------------------

    async def _perform(
        self,
        delivery: Delivery,
        link: ChannelLink,
        incident: Incident,
        entry: TimelineEntry | None,
        superseded: bool | None,
    ) -> str | None:
        port = self.ports.get(link.platform)
        if port is None:
            raise RuntimeError(f"{link.platform} is not connected")
        summary_msg = None  # built only for the deliveries that show it
        posted = None
        doc = None
        unknown = self._unknown_mentions(incident, entry)
        # Most deliveries (an entry posted, mentioning nobody new) need nothing more from the
        # database: no transaction is opened for them.
        if unknown or delivery.action in _READS:
            async with self.store.unit() as u:
                for (platform, uid), name in (await u.people_seen(unknown)).items():
                    self.people.learn(platform, uid, name)
                if delivery.action is DeliveryAction.REFRESH_SUMMARY and (
                    superseded
                    or (superseded is None and await u.has_later_summary_refresh(delivery))
                ):
                    raise _Skip("superseded by a later refresh")
                if delivery.action in (DeliveryAction.OPEN_CHANNEL,
                                       DeliveryAction.REFRESH_SUMMARY):
                    summary_msg = await summary_for(
                        u, incident, self.catalog, self.clock.now(), self.public_url
                    )
                    summary_msg = self.people.localize_message(summary_msg, link.platform)
                if delivery.action is DeliveryAction.UPDATE_ENTRY and entry is not None:
                    posted = await u.posted_message(_id(link), delivery.entry_id or 0)
                if delivery.action is DeliveryAction.UPLOAD_FILE and entry is not None:
                    doc = await u.postmortem(int(entry.data.get("postmortem") or 0))
        await self._pace(link, delivery.action)
        if delivery.action is DeliveryAction.OPEN_CHANNEL:
            assert summary_msg is not None
            try:
                return await self._open_channel(port, link, incident, summary_msg, delivery)
            except DeliveryRejected:
                await self._save_link(link, state=LinkState.FAILED)
                raise
        if delivery.action is DeliveryAction.DIRECT_MESSAGE:
            assert entry is not None
            # A page names the person's account on each platform (bot/paging.py).
            user = (entry.data.get("dm_accounts") or {}).get(link.platform) or entry.data.get("dm")
            if not user:
                raise _Skip("nobody to message")
            message = self.people.localize_message(direct_message(entry, incident), link.platform)
            await port.send_dm(user=str(user), message=message)
            return None
        if delivery.action is DeliveryAction.ANNOUNCE:
            assert entry is not None
            waited = (self.clock.now() - delivery.created_at).total_seconds()
            if link.state is LinkState.PENDING and waited < ANNOUNCE_WAIT_MAX:
                raise _Wait  # announce once the channel exists, so the announcement can name it
            return await self._announce(port, link, incident, entry, delivery)
        if link.channel_id is None:
            # Its opening came first in this queue and was refused (and logged): nothing that
            # follows can be shown there. The record keeps every entry.
            raise _Skip(f"the {link.platform} channel of #{incident.number} was never opened")
        if delivery.action is DeliveryAction.REFRESH_SUMMARY:
            if link.summary_message_id is None:
                raise _Skip("the channel has no summary message (its posting was refused)")
            assert summary_msg is not None
            await self._refresh(port, link, incident, summary_msg)
            return link.summary_message_id
        if delivery.action is DeliveryAction.ARCHIVE_CHANNEL:
            await port.archive(channel_id=link.channel_id)
            await self._save_link(link, state=LinkState.ARCHIVED)
            return None
        if delivery.action is DeliveryAction.UPLOAD_FILE:
            if doc is None or entry is None:
                raise _Skip("the postmortem version is gone")
            return await port.upload_file(
                channel_id=link.channel_id,
                filename=str(entry.data.get("filename") or f"postmortem-v{doc.version}.md"),
                content=doc.markdown.encode(),
                title=f"Postmortem #{incident.number} v{doc.version}",
                comment=entry.text,
            )
        assert entry is not None
        if delivery.action is DeliveryAction.UPDATE_ENTRY:
            # A runbook's progress: the entry's text now, edited into the message it was posted
            # as (its POST_ENTRY went first in this queue).
            if posted is None:
                raise _Skip("the entry was never posted here")
            message = entry_message(entry, incident, cross_platform=False)
            await port.update(channel_id=link.channel_id, message_id=posted, message=message)
            return posted
        return await self._post_entry(port, link, incident, entry, delivery)

    def _unknown_mentions(
        self, incident: Incident, entry: TimelineEntry | None
    ) -> list[tuple[str, str]]:
        """The raw mentions about to be shown whose names are not known yet: loaded from what
        chat taught us, so a Slack account shows on Discord as "@alice (Slack)", not as its
        id."""
        texts = [*incident.roles.values(), incident.declared_by]
        if entry is not None:
            texts.append(entry.text)
        return [
            key
            for key in mentioned_ids(texts)
            if key not in self.people.learned and self.people.by_account(*key) is None
        ]

    async def _pace(self, link: ChannelLink, action: DeliveryAction) -> None:
        """Wait for the channel's turn under its platform's rate limit (if one is set)."""
        limit = self.limits.get(link.platform)
        if limit is None:
            return
        channel = "#announce" if action is DeliveryAction.ANNOUNCE else str(link.channel_id)
        now = asyncio.get_running_loop().time()
        bucket = self._buckets.setdefault((link.platform, channel), Bucket(limit, now))
        wait = bucket.delay(now)
        if wait > 0:
            await asyncio.sleep(wait)

    def _post_key(self, delivery: Delivery, step: str = "") -> tuple[str, bool]:
        """The key a post of `delivery` carries, and whether it may have gone out already: a
        failed earlier attempt (a timeout may still have been accepted), a record that failed
        after the platform's answer, or a queue taken over from a process that stopped."""
        maybe_sent = delivery.attempts > 0 or _id(delivery) in self._suspect
        return f"opsroom-d{_id(delivery)}{step}", maybe_sent

    async def _save_link(self, link: ChannelLink, **changes: object) -> None:
        async with self.store.unit() as u:
            row = await u.link(_id(link))
            assert row is not None
            for key, value in changes.items():
                setattr(row, key, value)
                setattr(link, key, value)

    async def _open_channel(
        self,
        port: ChatPort,
        link: ChannelLink,
        incident: Incident,
        summary_msg: Message,
        delivery: Delivery,
    ) -> str | None:
        if link.channel_id is None:
            base = channel_name(self.catalog.channel_prefix, incident.number, incident.title)
            created = None
            for n in range(1, MAX_NAME_SUFFIX + 1):
                name = base if n == 1 else f"{base}-{n}"
                try:
                    created = await port.create_channel(
                        name=name, private=incident.private, workspace=link.workspace
                    )
                    break
                except ChannelNameTaken:
                    created = await self._orphan(port, link, name)
                    if created is not None:
                        break
            if created is None:
                raise RuntimeError(f"every channel name {base}[-2..-{MAX_NAME_SUFFIX}] is taken")
            await self._save_link(link, channel_id=created.id, channel_name=created.name)
        assert link.channel_id is not None
        if link.invite:
            await self._invite(port, link.channel_id, link.invite)
        if link.summary_message_id is None:
            key, recheck = self._post_key(delivery, "s")
            mid = await port.post(
                channel_id=link.channel_id, message=summary_msg, key=key, recheck=recheck
            )
            await self._save_link(link, summary_message_id=mid)
        assert link.summary_message_id is not None
        if not link.summary_pinned:
            await port.pin(channel_id=link.channel_id, message_id=link.summary_message_id)
            await self._save_link(link, summary_pinned=True)
        if link.thread_id is None:
            if link.timeline_message_id is None:  # kept: a 📌 on it is not a key event
                head = Message(text="🧵 Timeline: reply in this thread to add to the timeline.")
                key, recheck = self._post_key(delivery, "t")
                mid = await port.post(
                    channel_id=link.channel_id, message=head, key=key, recheck=recheck
                )
                await self._save_link(link, timeline_message_id=mid)
            assert link.timeline_message_id is not None
            thread = await port.start_thread(
                channel_id=link.channel_id, message_id=link.timeline_message_id, name="Timeline"
            )
            await self._save_link(link, thread_id=thread)
        await self._set_topic(port, link, incident)
        await self._mark_open(link)
        return link.channel_id

    async def _orphan(self, port: ChatPort, link: ChannelLink, name: str) -> CreatedChannel | None:
        """The channel called `name` when an earlier attempt of ours created it and died before
        recording it (no other incident links it): adopted instead of making `name-2`."""
        found = await port.find_own_channel(name=name, workspace=link.workspace)
        if found is None:
            return None
        async with self.store.unit() as u:
            if await u.link_for_channel(link.platform, found) is not None:
                return None
        logger.info("mirror: adopting %s channel %s (%s), created earlier", link.platform,
                    name, found)
        return CreatedChannel(id=found, name=name)

    async def _mark_open(self, link: ChannelLink) -> None:
        """PENDING -> OPEN; a link the service archived meanwhile (a cancel) stays archived,
        so a reopen that follows opens a new channel instead of using this one."""
        async with self.store.unit() as u:
            await u.incident_by_id(link.incident_id)  # the lock every change takes first
            row = await u.link(_id(link))
            assert row is not None
            await u.refresh(row)
            if row.state is LinkState.PENDING:
                row.state = LinkState.OPEN
            link.state = row.state

    async def _invite(self, port: ChatPort, channel_id: str, users: list[str]) -> None:
        """Invite people; one who cannot be invited must not keep the channel from working."""
        try:
            await port.invite(channel_id=channel_id, users=users)
        except DeliveryRejected as exc:
            logger.warning("mirror: could not invite %s to %s: %s", users, channel_id, exc)

    async def _set_topic(self, port: ChatPort, link: ChannelLink, incident: Incident) -> None:
        text = topic(
            incident, update_cadence(self.catalog, incident), self.clock.now(), self.catalog.tz
        )
        text = self.people.localize(text, link.platform)
        if text != link.topic and link.channel_id is not None:
            await port.set_topic(channel_id=link.channel_id, topic=text)
            await self._save_link(link, topic=text)

    async def _refresh(
        self, port: ChatPort, link: ChannelLink, incident: Incident, summary_msg: Message
    ) -> None:
        assert link.channel_id is not None and link.summary_message_id is not None
        await port.update(
            channel_id=link.channel_id, message_id=link.summary_message_id, message=summary_msg
        )
        await self._set_topic(port, link, incident)

    async def _post_entry(
        self,
        port: ChatPort,
        link: ChannelLink,
        incident: Incident,
        entry: TimelineEntry,
        delivery: Delivery,
    ) -> str:
        assert link.channel_id is not None
        invitee = entry.data.get("invite") if entry.source == link.platform else None
        invitee = (entry.data.get("invite_accounts") or {}).get(link.platform) or invitee
        if invitee:
            await self._invite(port, link.channel_id, [invitee])
        cross = entry.source not in (link.platform, "system")
        message = entry_message(entry, incident, cross_platform=cross)
        message = self.people.localize_message(message, link.platform)
        thread = link.thread_id if in_thread(entry) else None
        key, recheck = self._post_key(delivery)
        return await port.post(
            channel_id=link.channel_id, message=message, thread_id=thread, key=key,
            recheck=recheck,
        )

    async def _announce(
        self,
        port: ChatPort,
        link: ChannelLink,
        incident: Incident,
        entry: TimelineEntry,
        delivery: Delivery,
    ) -> str:
        if incident.private:
            raise _Skip("private incidents are not announced")
        name = self.catalog.announcement_channels.get(link.platform)
        if not name:
            raise _Skip(f"no announcement channel configured for {link.platform}")
        cached = (link.platform, name)
        channel_id = self._announce_ids.get(cached)
        if channel_id is None:
            channel_id = await port.find_channel(name=name, workspace=link.workspace)
            if channel_id is None:
                logger.warning(
                    "mirror: announcement channel #%s not found on %s", name, link.platform
                )
                raise _Skip(f"announcement channel #{name} not found")
            self._announce_ids[cached] = channel_id
        message = announcement(entry, incident, link.channel_name)
        message = self.people.localize_message(message, link.platform)
        key, recheck = self._post_key(delivery)
        try:
            return await port.post(channel_id=channel_id, message=message, key=key,
                                   recheck=recheck)
        except DeliveryRejected:
            # The channel may have been deleted and made again: look it up once more.
            self._announce_ids.pop(cached, None)
            fresh = await port.find_channel(name=name, workspace=link.workspace)
            if fresh is None or fresh == channel_id:
                raise
            self._announce_ids[cached] = fresh
            return await port.post(channel_id=fresh, message=message, key=key, recheck=recheck)


def _id(row: Delivery | ChannelLink) -> int:
    assert row.id is not None
    return row.id
