"""Notices: the outbox for what goes outside an incident's channels.

An incident channel has its deliveries (bot/mirror.py). Some messages have no incident channel
to go to: a triage-mode alert in the triage channel, a shift change in a schedule's channel,
the daily coverage check's problems, a page to someone on a platform where the incident has no
channel, a page to a person's `notify_webhook`. They are notices: rows queued in the transaction
of the change that causes them (so nothing is sent for a change that did not commit, and nothing
committed is lost), keyed so that queueing the same notice twice is one row, and sent by
`NoticeSender` under a lease per target, in order, retried with backoff, with the message id
committed before the next send to that target (one duplicate window, as for deliveries).

    await queue_post(u, key="triage:17:slack", platform="slack", channel="alerts-triage",
                     message=Message(...), now=now)
    await queue_update(u, key="triage:17:slack:done", of="triage:17:slack", message=...)
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from bot.catalog import Catalog
from bot.models import DeliveryState, Notice, NoticeKind
from bot.people import Directory, fill_template
from bot.ports import (
    ChatPort,
    Clock,
    DeliveryRejected,
    LeaseTake,
    RetryLater,
    Store,
    SystemClock,
    Unit,
)
from bot.render import Button, Field, Message
from bot.steps.http import HttpClient

logger = logging.getLogger(__name__)

WEBHOOK = "webhook"  # the platform of a notify_webhook notice
BATCH = 200  # pending notices looked at per pass
WEBHOOK_TIMEOUT = 10.0
ERROR_MAX = 500


# --- messages as rows ------------------------------------------------------------------------


def message_body(message: Message) -> dict[str, Any]:
    return asdict(message)


def message_of(body: Mapping[str, Any]) -> Message:
    return Message(
        text=str(body.get("text", "")),
        title=body.get("title"),
        fields=tuple(Field(**f) for f in body.get("fields", ())),
        sections=tuple(body.get("sections", ())),
        buttons=tuple(Button(**b) for b in body.get("buttons", ())),
        context=body.get("context"),
    )


# --- queueing (in the transaction of the change) ----------------------------------------------


async def _queue(u: Unit, notice: Notice) -> Notice:
    found = await u.notice_by_key(notice.key)
    if found is not None:
        return found  # queued before (a replayed job, another replica): sent once
    await u.add(notice)
    return notice


async def queue_post(
    u: Unit,
    *,
    key: str,
    platform: str,
    channel: str,
    message: Message,
    now: datetime,
    workspace: str = "",
    incident_id: int | None = None,
) -> Notice:
    """A message to the channel named `channel` on `platform`."""
    return await _queue(u, Notice(
        key=key, kind=NoticeKind.POST, platform=platform, workspace=workspace,
        target=channel.lstrip("#"), body=message_body(message), incident_id=incident_id,
        next_attempt_at=now, created_at=now,
    ))


async def queue_dm(
    u: Unit,
    *,
    key: str,
    platform: str,
    user: str,
    message: Message,
    now: datetime,
    incident_id: int | None = None,
) -> Notice:
    """A direct message to `user` (their mention on `platform`: "<@U123>", "@alice")."""
    return await _queue(u, Notice(
        key=key, kind=NoticeKind.DM, platform=platform, target=user,
        body=message_body(message), incident_id=incident_id, next_attempt_at=now, created_at=now,
    ))


async def queue_update(
    u: Unit, *, key: str, of: str, message: Message, now: datetime
) -> Notice | None:
    """Edit the message notice `of` posted (a triage post once someone decided); None when
    there is no such notice. Queued behind it on the same target, so it is sent after it."""
    original = await u.notice_by_key(of)
    if original is None or original.kind is not NoticeKind.POST:
        return None
    return await _queue(u, Notice(
        key=key, kind=NoticeKind.UPDATE, platform=original.platform,
        workspace=original.workspace, target=original.target, ref_key=of,
        body=message_body(message), incident_id=original.incident_id,
        next_attempt_at=now, created_at=now,
    ))


async def queue_webhook(
    u: Unit,
    *,
    key: str,
    person: str,
    fields: Mapping[str, str],
    catalog: Catalog,
    now: datetime,
    incident_id: int | None = None,
) -> Notice | None:
    """The person's notify_webhook with its body filled in from `fields` (see
    bot.people.WEBHOOK_FIELDS); None when they have none. The URL and header values are read
    from the catalog and the environment when it is sent, never stored."""
    spec = Directory(catalog.people).person(person)
    if spec is None or spec.notify_webhook is None:
        return None
    body = fill_template(spec.notify_webhook.body, {"person": spec.name, **fields})
    return await _queue(u, Notice(
        key=key, kind=NoticeKind.WEBHOOK, platform=WEBHOOK, target=spec.name,
        body=body, incident_id=incident_id, next_attempt_at=now, created_at=now,
    ))


# --- sending ---------------------------------------------------------------------------------


class _Skip(Exception):
    """Nothing can be sent for this notice (no such channel, platform not connected)."""


class _Wait(Exception):
    """Not yet: the notice an update edits has not been sent."""


def _nid(notice: Notice) -> int:
    assert notice.id is not None
    return notice.id


class NoticeSender:
    """Sends pending notices, each target's in order, under a lease per target (bot/mirror.py
    drives it from its loop, so a commit that queues notices wakes it like deliveries)."""

    def __init__(
        self,
        *,
        store: Store,
        ports: Mapping[str, ChatPort],
        catalog: Catalog,
        holder: str,
        lease_ttl: timedelta,
        delay: Any,  # (attempts) -> seconds, bot.mirror.Backoff.delay
        clock: Clock | None = None,
        http: HttpClient | None = None,
        env: Mapping[str, str] | None = None,
        people: Directory | None = None,
    ) -> None:
        self.store = store
        self.ports = ports  # shared with the mirror: platforms join it as they connect
        self.catalog = catalog
        self.holder = holder
        self.lease_ttl = lease_ttl
        self.delay = delay
        self.clock: Clock = clock or SystemClock()
        self.http = http
        self.env = env if env is not None else os.environ
        self.people = people or Directory(catalog.people)
        self._channel_ids: dict[tuple[str, str, str], str] = {}
        self.blocked = False

    async def next_due(self) -> datetime | None:
        async with self.store.unit() as u:
            return await u.next_notice_due()

    async def deliver_due(self, *, stopping: bool = False) -> int:
        async with self.store.unit() as u:
            pending = await u.pending_notices(limit=BATCH)
        queues: dict[tuple[str, str], list[Notice]] = {}
        for n in pending:
            queues.setdefault((n.platform, n.target), []).append(n)
        now = self.clock.now()
        due = {k: q for k, q in queues.items() if not stopping and q[0].next_attempt_at <= now}
        if not due:
            self.blocked = False
            return 0
        names = {k: f"notice:{k[0]}:{k[1]}" for k in due}
        async with self.store.unit() as u:
            taken = {
                name: await u.take_lease(name, holder=self.holder, now=now, ttl=self.lease_ttl)
                for name in sorted(names.values())
            }
        self.blocked = any(t is LeaseTake.BUSY for t in taken.values())
        held = {k: q for k, q in due.items() if taken[names[k]] is not LeaseTake.BUSY}
        try:
            results = await asyncio.gather(
                *(self._send_queue(q) for q in held.values()), return_exceptions=True
            )
        finally:
            try:
                async with self.store.unit() as u:
                    for k in held:
                        await u.drop_lease(names[k], holder=self.holder)
            except Exception:  # they expire by themselves
                logger.warning("notices: could not release %d leases", len(held))
        sent = 0
        for result in results:
            if isinstance(result, BaseException):
                logger.error("notices: a queue stopped: %r", result)
            else:
                sent += result
        return sent

    async def _send_queue(self, queue: list[Notice]) -> int:
        sent = 0
        for notice in queue:
            # Another process may have sent it while it held the lease before us.
            async with self.store.unit() as u:
                fresh = await u.notice(_nid(notice))
            if fresh is None or fresh.state is not DeliveryState.PENDING:
                continue
            if fresh.next_attempt_at > self.clock.now():
                break  # the head waits: nothing behind it passes
            try:
                channel_id, message_id = await self._perform(fresh)
            except _Skip as skip:
                await self._finish(fresh, DeliveryState.SKIPPED, note=str(skip))
                continue
            except _Wait:
                await self._retry(fresh, None, 1.0)
                break
            except DeliveryRejected as exc:
                logger.error("notices: %s %s refused for good: %s", fresh.kind.value,
                             fresh.id, exc)
                await self._finish(fresh, DeliveryState.FAILED, note=str(exc))
                continue
            except Exception as exc:
                delay = self.delay(fresh.attempts + 1)
                if isinstance(exc, RetryLater):
                    delay = max(delay, exc.retry_after)
                await self._retry(fresh, exc, delay)
                break
            await self._finish(fresh, DeliveryState.SENT, channel_id=channel_id,
                               message_id=message_id)
            sent += 1
        return sent

    async def _finish(
        self,
        notice: Notice,
        state: DeliveryState,
        *,
        note: str | None = None,
        channel_id: str | None = None,
        message_id: str | None = None,
    ) -> None:
        async with self.store.unit() as u:
            row = await u.notice(_nid(notice))
            assert row is not None
            row.state, row.sent_at = state, self.clock.now()
            row.last_error = note[:ERROR_MAX] if note else None
            row.channel_id, row.message_id = channel_id, message_id
            row.attempts += 1

    async def _retry(self, notice: Notice, exc: Exception | None, delay: float) -> None:
        async with self.store.unit() as u:
            row = await u.notice(_nid(notice))
            assert row is not None
            row.attempts += 1
            row.next_attempt_at = self.clock.now() + timedelta(seconds=delay)
            if exc is not None:
                row.last_error = f"{type(exc).__name__}: {exc}"[:ERROR_MAX]
        if exc is not None:
            logger.warning("notices: %s %s failed (attempt %d), retrying in %.1fs: %s",
                           notice.kind.value, notice.id, notice.attempts + 1, delay,
                           f"{type(exc).__name__}: {exc}"[:ERROR_MAX])

    async def _perform(self, notice: Notice) -> tuple[str | None, str | None]:
        if notice.kind is NoticeKind.WEBHOOK:
            await self._webhook(notice)
            return None, None
        port = self.ports.get(notice.platform)
        if port is None:
            raise _Skip(f"{notice.platform} is not connected")
        message = self.people.localize_message(message_of(notice.body), notice.platform)
        key = f"notice:{notice.id}"
        if notice.kind is NoticeKind.DM:
            await port.send_dm(user=notice.target, message=message)
            return None, None
        if notice.kind is NoticeKind.UPDATE:
            async with self.store.unit() as u:
                original = await u.notice_by_key(notice.ref_key or "")
            if original is None or original.state in (DeliveryState.SKIPPED,
                                                       DeliveryState.FAILED):
                raise _Skip("the message to edit was never posted")
            if original.state is DeliveryState.PENDING or not original.message_id:
                raise _Wait()
            assert original.channel_id is not None
            await port.update(channel_id=original.channel_id, message_id=original.message_id,
                              message=message)
            return original.channel_id, original.message_id
        channel_id = await self._channel(port, notice)
        message_id = await port.post(channel_id=channel_id, message=message, key=key,
                                     recheck=notice.attempts > 0)
        return channel_id, message_id

    async def _channel(self, port: ChatPort, notice: Notice) -> str:
        cached = (notice.platform, notice.workspace, notice.target)
        found = self._channel_ids.get(cached)
        if found is None:
            found = await port.find_channel(name=notice.target, workspace=notice.workspace)
            if found is None:
                logger.warning("notices: channel #%s not found on %s", notice.target,
                               notice.platform)
                raise _Skip(f"channel #{notice.target} not found on {notice.platform}")
            self._channel_ids[cached] = found
        return found

    async def _webhook(self, notice: Notice) -> None:
        spec = self.people.person(notice.target)
        hook = spec.notify_webhook if spec is not None else None
        if hook is None:
            raise _Skip(f"{notice.target} has no notify_webhook any more")
        url = hook.url or self.env.get(hook.url_env or "", "")
        if not url:
            raise _Skip(f"{hook.url_env} is not set: {notice.target}'s notify_webhook has no URL")
        headers = {"Content-Type": "application/json", "Idempotency-Key": f"opsroom-{notice.key}"}
        for name, var in hook.headers_env.items():
            if var not in self.env:
                raise _Skip(f"{var} is not set (header {name} of {notice.target}'s webhook)")
            headers[name] = self.env[var]
        if self.http is None:
            raise _Skip("no HTTP client to call webhooks with")
        # Neither the URL nor the headers are logged or kept: they may carry secrets.
        try:
            status, text = await self.http.request(
                "POST", url, headers=headers, body=notice.body, timeout=WEBHOOK_TIMEOUT
            )
        except Exception as exc:  # its message may name the URL: say only what went wrong
            raise RetryLater(
                f"{notice.target}'s notify_webhook: {type(exc).__name__}", 0.0
            ) from None
        if status == 429:
            raise RetryLater(f"{notice.target}'s notify_webhook answered 429", 1.0)
        if status >= 500:
            raise RuntimeError(f"{notice.target}'s notify_webhook answered {status}")
        if status >= 400:
            raise DeliveryRejected(f"{notice.target}'s notify_webhook answered {status}: "
                                   f"{text[:200]}")
