"""The ports: every method the core calls on the outside world is listed here."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Literal, Protocol

from bot.catalog import Catalog
from bot.models import (
    ActionItem,
    Alert,
    ChannelLink,
    Delivery,
    DeliveryState,
    Escalation,
    Incident,
    Job,
    JobState,
    Notice,
    OncallOverride,
    Person,
    Postmortem,
    RunbookRun,
    TimelineEntry,
)
from bot.render import Message


@dataclass(frozen=True)
class Actor:
    """Who did something: their platform, platform user id, display name and mention text."""

    platform: str
    user_id: str
    name: str
    mention: str = ""

    @property
    def ref(self) -> str:
        return self.mention or f"@{self.name}"


SYSTEM = Actor(platform="system", user_id="opsroom", name="Opsroom", mention="Opsroom")


@dataclass(frozen=True)
class ChannelRef:
    """Where something happened: a channel, and the thread in it if any."""

    platform: str
    channel_id: str
    thread_id: str | None = None
    workspace: str = ""


@dataclass(frozen=True)
class CreatedChannel:
    id: str
    name: str


class ChannelNameTaken(Exception):
    """The platform already has a channel with that name; the mirror tries a suffix."""


class RetryLater(Exception):
    """A chat API asked us to wait (rate limit); the mirror waits at least `retry_after` s."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class DeliveryRejected(Exception):
    """The platform refused for good (no such channel, not allowed, too long...): retrying
    cannot help. The mirror records the delivery as failed, logs why, and moves on."""


class ChatPort(Protocol):
    """Outbound chat actions. Every adapter implements all of them.

    Users are passed as the mention text the platform writes ("@alice", "<@U123>", "<@4567>").
    Any exception means "not done": the mirror retries it later.
    """

    platform: str

    async def create_channel(self, *, name: str, private: bool, workspace: str) -> CreatedChannel:
        """Create a channel; raise ChannelNameTaken when the name exists."""
        ...

    async def invite(self, *, channel_id: str, users: Sequence[str]) -> None: ...

    async def post(
        self,
        *,
        channel_id: str,
        message: Message,
        thread_id: str | None = None,
        key: str | None = None,
        recheck: bool = False,
    ) -> str:
        """Post a message; return its platform message id.

        `key` names this post for good (the delivery it carries out): the platform keeps it
        with the message where it can (Slack message metadata, Discord's enforced nonce). With
        `recheck`, the post may have gone out already (a process died, or a database outage,
        between the platform's answer and our record of it): a message carrying `key` found
        in the channel's recent history is returned instead of posting again.
        """
        ...

    async def update(self, *, channel_id: str, message_id: str, message: Message) -> None: ...

    async def pin(self, *, channel_id: str, message_id: str) -> None: ...

    async def set_topic(self, *, channel_id: str, topic: str) -> None: ...

    async def start_thread(self, *, channel_id: str, message_id: str, name: str) -> str:
        """Start a thread under a message; return the id replies are addressed to."""
        ...

    async def rename(self, *, channel_id: str, name: str) -> None: ...

    async def archive(self, *, channel_id: str) -> None: ...

    async def send_dm(self, *, user: str, message: Message) -> None: ...

    async def find_channel(self, *, name: str, workspace: str) -> str | None:
        """Return the id of the channel called `name`, or None."""
        ...

    async def find_own_channel(self, *, name: str, workspace: str) -> str | None:
        """The id of the open channel called `name` if this bot created it (an earlier
        attempt's that was never recorded), else None."""
        ...

    async def upload_file(
        self, *, channel_id: str, filename: str, content: bytes, title: str, comment: str
    ) -> str:
        """Share a file in the channel with `comment` as its message; return the message (or
        file) id. The console writes it to a directory and says where."""
        ...


FieldSource = Literal["model", "heuristic", "default", "person"]


@dataclass
class Suggestion:
    """Suggested fields for a new incident and where each value came from."""

    title: str
    summary: str
    type: str
    severity: str
    priority: str
    custom_fields: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, FieldSource] = field(default_factory=dict)
    note: str = ""  # why a fallback was used, shown to the person
    model: str = ""  # the AI model that was asked, "" when none was
    endpoint: str = ""  # host[:port] of the endpoint it was asked at


class Suggester(Protocol):
    async def suggest(
        self, *, description: str, type_hint: str | None, catalog: Catalog
    ) -> Suggestion: ...


@dataclass(frozen=True)
class Written:
    """What `Summarizer.write` got: the text (None: no model, or it failed), the model that
    wrote it ("" for none) and a note for people when it did not."""

    text: str | None
    model: str = ""
    note: str = ""


class Summarizer(Protocol):
    async def summarize(
        self,
        entries: Sequence[TimelineEntry],
        *,
        incident: Incident | None = None,
        now: datetime | None = None,
        tz: tzinfo = UTC,
    ) -> tuple[str, int]:
        """A catch-up of `entries` (of `incident`, as it stands at `now`; times in `tz`) citing
        them as [e12], and how many citations of entries that do not exist were removed from
        it. Never raises."""
        ...

    async def write(self, *, system: str, prompt: str) -> Written:
        """Free text from the model for `prompt` (redacted before it is sent), e.g. a
        postmortem's narrative. Never raises: without a model, or when it fails, the text is
        None and `note` says why."""
        ...


class Clock(Protocol):
    def now(self) -> datetime: ...


class SystemClock:
    def now(self) -> datetime:
        return datetime.now(UTC)


class LeaseTake(StrEnum):
    """What taking a lease found (see storage/claims.py)."""

    BUSY = "busy"  # another process holds it: leave its work alone
    TAKEN = "taken"  # it was free
    HELD = "held"  # it was ours already
    TAKEN_OVER = "taken_over"  # another process held it and let it expire: it may have died
    # midway, so the first thing it was doing may or may not have happened


@dataclass(frozen=True)
class Finished:
    """A delivery's outcome, as the mirror records it (see Unit.finish_deliveries)."""

    delivery_id: int
    state: DeliveryState
    message_id: str | None
    note: str | None
    at: datetime


class Unit(Protocol):
    """One database transaction. Leaving the `Store.unit()` block commits it."""

    async def add(self, obj: Any) -> None:
        """Add a new row and flush, so its id is set."""
        ...

    async def append(self, entry: TimelineEntry) -> None:
        """Insert a new (append-only) timeline entry and set its id; cheaper than `add`."""
        ...

    async def queue(self, deliveries: Sequence[Delivery]) -> None:
        """Add outbox rows in one statement; their ids are not loaded."""
        ...

    async def refresh(self, row: Any) -> None:
        """Read a row again from the database (after taking a lock)."""
        ...

    async def next_incident_number(self) -> int: ...

    async def incident(self, number: int) -> Incident | None: ...

    async def incident_by_id(self, incident_id: int) -> Incident | None: ...

    async def incident_for_channel(self, platform: str, channel_id: str) -> Incident | None:
        """The incident whose channel or timeline thread is `channel_id`."""
        ...

    async def incidents(self, *, include_closed: bool) -> list[Incident]: ...

    async def incident_list_page(
        self,
        *,
        include_closed: bool,
        limit: int,
        offset: int = 0,
        severity: str | None = None,
        incident_type: str | None = None,
        person: str | None = None,
        roles: Sequence[str] = (),
    ) -> tuple[list[Incident], int]:
        """Up to `limit` incidents, newest first, skipping `offset`, matching every filter given
        (`person` holds one of `roles`); and how many match in all."""
        ...

    async def open_incident_choices(self, typed: str, *, limit: int) -> list[Incident]:
        """Open incidents whose number starts with `typed` or whose title contains it
        (`typed` in lower case), newest first, at most `limit`."""
        ...

    async def timeline_list_page(
        self, incident_id: int, *, key_only: bool, limit: int, offset: int = 0
    ) -> tuple[list[TimelineEntry], int]:
        """The `limit` entries before the `offset` newest ones, oldest first; and how many
        there are in all (deleted entries left out)."""
        ...

    async def timeline(
        self, incident_id: int, *, key_only: bool = False, include_deleted: bool = False
    ) -> list[TimelineEntry]: ...

    async def entry(self, entry_id: int) -> TimelineEntry | None: ...

    async def entry_by_external(self, source: str, external_id: str) -> TimelineEntry | None: ...

    async def posted_entry(self, link_id: int, message_id: str) -> TimelineEntry | None:
        """The timeline entry the mirror posted to `link_id`'s channel as `message_id`."""
        ...

    async def action_items(self, incident_id: int) -> list[ActionItem]: ...

    async def action_item(self, incident_id: int, number: int) -> ActionItem | None: ...

    async def links(self, incident_id: int) -> list[ChannelLink]: ...

    async def link(self, link_id: int) -> ChannelLink | None: ...

    async def link_for_channel(self, platform: str, channel_id: str) -> ChannelLink | None:
        """The link recording the channel `channel_id` on `platform`, if any."""
        ...

    async def take_lease(
        self, name: str, *, holder: str, now: datetime, ttl: timedelta
    ) -> LeaseTake:
        """Hold the lease `name` until `now + ttl` unless another process holds it."""
        ...

    async def drop_lease(self, name: str, *, holder: str) -> None: ...

    async def open_links(self, platform: str) -> list[ChannelLink]:
        """Links on `platform` whose channel exists, oldest first."""
        ...

    async def event_seen(self, platform: str, key: str) -> bool:
        """Whether an inbound event key was claimed already."""
        ...

    async def claim_event(self, platform: str, key: str) -> bool:
        """Record an inbound event key; False when it was already recorded."""
        ...

    async def next_delivery_due(self) -> datetime | None:
        """When the soonest pending queue head is due (None: nothing is pending)."""
        ...

    async def any_pending(self) -> bool:
        """Whether any delivery is pending."""
        ...

    async def pending_deliveries(self, *, per_queue: int) -> list[Delivery]:
        """The first `per_queue` pending deliveries of every queue (a channel link; its
        announcements form a queue of their own), in the order they were queued."""
        ...

    async def delivery(self, delivery_id: int) -> Delivery | None: ...

    async def has_later_summary_refresh(self, delivery: Delivery) -> bool: ...

    async def deliveries_to_send(
        self, ids: Sequence[int]
    ) -> list[tuple[Delivery, ChannelLink, Incident, TimelineEntry | None]]:
        """Those of `ids` still pending, in queue order, each with what sending it needs: its
        link, its incident and its entry (one query)."""
        ...

    async def finish_deliveries(self, done: Sequence[Finished]) -> None:
        """Record outcomes (one statement for all; each counts one attempt)."""
        ...

    # --- jobs (bot/jobs.py) -------------------------------------------------------------

    async def prune_jobs(self, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` jobs finished (done, cancelled, failed) before `before`."""
        ...

    async def notice_by_key(self, key: str) -> Notice | None:
        """The notice queued under `key` (bot/notices.py), if any."""
        ...

    async def notice(self, notice_id: int) -> Notice | None: ...

    async def pending_notices(self, *, limit: int) -> list[Notice]:
        """Up to `limit` pending notices, oldest first (each queue's head before the rest)."""
        ...

    async def next_notice_due(self) -> datetime | None:
        """When the soonest pending notice is due (None: nothing is pending)."""
        ...

    async def prune_notices(self, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` finished notices older than `before`; how many went."""
        ...

    async def prune_deliveries(self, *, before: datetime, limit: int) -> int:
        """Delete up to `limit` finished deliveries older than `before` that map no posted
        entry (a sent post_entry with its message id is kept); how many went."""
        ...

    async def schedule(self, job: Job, *, move: bool = False) -> None:
        """Insert `job` unless one with its key exists. A cancelled one with that key becomes
        pending again (its reason is back) with `job`'s due time and payload; with `move`, a
        pending one takes them too. Running, done and failed ones are left alone."""
        ...

    async def cancel_jobs(
        self,
        *,
        now: datetime,
        incident_id: int | None = None,
        key: str | None = None,
        prefix: str | None = None,
        keep: Sequence[str] = (),
    ) -> int:
        """Cancel the pending jobs with `key`, or whose key starts with `prefix` (of
        `incident_id`), except those whose key is in `keep`; return how many."""
        ...

    async def pending_jobs(self, incident_id: int) -> list[Job]:
        """The incident's pending and running jobs, soonest first."""
        ...

    async def jobs(self, *, states: Sequence[JobState], limit: int) -> list[Job]:
        """Jobs of the whole database in `states`, soonest first."""
        ...

    async def claim_jobs(
        self, *, holder: str, now: datetime, ttl: timedelta, limit: int
    ) -> list[Job]:
        """Claim up to `limit` ready jobs (pending and due, or running under an expired claim)
        for `holder` until `now + ttl`; they are running from now on, one attempt more."""
        ...

    async def locked_job(self, job_id: int) -> Job | None:
        """A job read again under a row lock (lock its incident first)."""
        ...

    async def next_job_at(self) -> datetime | None:
        """When a job next needs a worker: the earliest unclaimed pending due time, or the
        earliest claim or backoff that ends."""
        ...

    async def overdue_action_items(self, now: datetime) -> list[ActionItem]:
        """Open action items due before `now`, of every incident, by incident and number."""
        ...

    # --- postmortems (bot/postmortem.py) ------------------------------------------------

    async def postmortems(self, incident_id: int) -> list[Postmortem]:
        """The incident's postmortem versions, oldest first."""
        ...

    async def postmortem(self, postmortem_id: int) -> Postmortem | None: ...
    # --- alerts (bot/alerts.py) ---------------------------------------------------------

    async def lock_name(self, name: str) -> None:
        """Hold a lock named `name` until the unit ends (PostgreSQL: an advisory transaction
        lock, so replicas agree; SQLite's write lock already serializes units)."""
        ...

    async def record_alert(self, alert: Alert) -> tuple[Alert, bool]:
        """Insert `alert`, or bump the count and last-received time of the row with its key
        (source, fingerprint, starts_at, status); the row (tracked) and whether it is new."""
        ...

    async def latest_alert(self, source: str, fingerprint: str) -> Alert | None: ...

    async def alert_event(
        self, source: str, fingerprint: str, starts_at: datetime, status: str
    ) -> Alert | None: ...

    async def alert_group_incident(self, group_key: str) -> tuple[Incident, bool] | None:
        """The open incident (locked) the group's latest alert is on, and whether it was
        collected there by a storm."""
        ...

    async def new_alert_groups(self, route: str, since: datetime) -> int:
        """How many alerts opened a group of their own on `route` since `since`."""
        ...

    async def storm_incident(self, route: str) -> Incident | None:
        """The open alert-storm incident of `route` (locked), if any."""
        ...

    async def firing_alerts(self, incident_id: int) -> int:
        """How many of the incident's alerts fire: firing rows with no resolution."""
        ...

    async def alerts(self, incident_id: int) -> list[Alert]:
        """Every alert row of the incident, oldest first."""
        ...

    async def alert(self, alert_id: int, *, lock: bool = False) -> Alert | None:
        """One alert row by id, read afresh (`lock`: locked until the unit ends)."""
        ...

    async def triage_hold(self, group_key: str) -> Alert | None:
        """The alert that keeps a new triage alert of the group quiet: the group's oldest alert
        waiting for a decision, else an ignored one still firing (no resolution)."""
        ...

    async def triaged_with(self, alert_id: int) -> list[Alert]:
        """The alerts held under alert `alert_id`'s triage post, oldest first."""
        ...

    async def pending_triage(self, *, limit: int) -> list[Alert]:
        """Up to `limit` triage posts waiting for a decision, oldest first."""
    # --- runbook runs (bot/runbooks.py) ----------------------------------------------------

    async def runs(self, incident_id: int) -> list[RunbookRun]:
        """The incident's runbook runs, by number."""
        ...

    async def run_by_id(self, run_id: int) -> RunbookRun | None:
        """A run read again under a row lock (lock its incident first)."""
        ...

    async def runnable_runs(self, limit: int) -> list[RunbookRun]:
        """Runs a runner may advance now (state running), least recently moved first."""
        ...

    async def posted_message(self, link_id: int, entry_id: int) -> str | None:
        """The platform id of the message `entry_id` was posted as in `link_id`'s channel."""
    # --- people and on-call (bot/people.py, bot/oncall.py) -----------------------------------

    async def learn_person(self, platform: str, user_id: str, name: str, now: datetime) -> None:
        """Remember the name chat account (platform, user_id) goes by."""
        ...

    async def people_seen(self, accounts: Sequence[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The learned names of those of `accounts` the bot has seen."""
        ...

    async def all_people_seen(self) -> list[Person]: ...

    async def overrides(
        self, schedule: str | None, *, ending_after: datetime
    ) -> list[OncallOverride]:
        """Overrides (of `schedule`, or of all) not removed that end after `ending_after`."""
        ...

    async def override(self, override_id: int) -> OncallOverride | None: ...

    async def escalation(self, escalation_id: int) -> Escalation | None: ...

    async def escalations(
        self, incident_id: int | None = None, *, active: bool = True
    ) -> list[Escalation]:
        """Escalations (of one incident, or all), the active ones only unless `active=False`."""
        ...


class Store(Protocol):
    def unit(self) -> AbstractAsyncContextManager[Unit]: ...

    async def record_outcomes(self, done: Sequence[Finished]) -> None:
        """Record delivery outcomes in a transaction of their own (one statement for all; each
        counts one attempt), committed when this returns: visible to every later transaction
        and never lost if this process dies. (On PostgreSQL the commit does not wait for the
        disk; see SqlStore.record_outcomes for what a crash of the database server costs.)"""
        ...
