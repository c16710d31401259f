"""The record: SQLModel tables for incidents and everything hanging off them.

Severity, priority, incident type and role names are catalog data (opsroom.yaml), so they are
stored as plain strings; the lifecycle enums below are fixed by the code.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored as naive UTC and always come back timezone-aware.

    SQLite has no timezone type; without this, values read back would be naive on SQLite and
    aware on PostgreSQL, and comparisons between them raise.
    """

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime stored; use timezone-aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _enum(cls: type[StrEnum]) -> sa.Enum:
    # Stored as VARCHAR with a CHECK-free constraint so adding a member needs no type migration.
    return sa.Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=24,
        values_callable=lambda members: [m.value for m in members],
    )


class Status(StrEnum):
    TRIGGERED = "triggered"
    ACKNOWLEDGED = "acknowledged"
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    CLOSED = "closed"
    # Declared by mistake: set only by `/incident cancel <reason>` (never picked as a status),
    # undone by `/incident reopen`, and kept out of metrics.
    CANCELLED = "cancelled"

    @property
    def is_open(self) -> bool:
        return self not in (Status.RESOLVED, Status.CLOSED, Status.CANCELLED)


class EntryKind(StrEnum):
    MESSAGE = "message"
    KEY_EVENT = "key_event"
    STATUS_CHANGE = "status_change"
    FIELD_CHANGE = "field_change"
    ROLE_CHANGE = "role_change"
    ACTION_ITEM = "action_item"
    STATUS_UPDATE = "status_update"
    RUNBOOK = "runbook"
    ALERT = "alert"
    REMINDER = "reminder"
    SYSTEM = "system"
    PAGE = "page"  # paging and escalation (bot/paging.py): paged, escalated, acknowledged


class ActionStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"  # claimed by a worker (see claimed_by / claimed_until)
    DONE = "done"
    CANCELLED = "cancelled"  # its reason went away before it was due
    FAILED = "failed"  # its handler raised on every attempt (see last_error)


class LinkState(StrEnum):
    PENDING = "pending"  # the channel is queued for creation
    OPEN = "open"
    ARCHIVED = "archived"
    FAILED = "failed"  # the platform refused to create it (see the delivery's last_error)


class DeliveryAction(StrEnum):
    OPEN_CHANNEL = "open_channel"  # create channel, invite, pin summary, start timeline thread
    POST_ENTRY = "post_entry"  # a timeline entry as a new message in channel or thread
    REFRESH_SUMMARY = "refresh_summary"  # edit the pinned summary (and topic) in place
    ANNOUNCE = "announce"  # a timeline entry to the platform's announcement channel
    ARCHIVE_CHANNEL = "archive_channel"  # the incident was cancelled: archive its channel
    DIRECT_MESSAGE = "direct_message"  # a timeline entry to one person (entry.data["dm"])
    UPLOAD_FILE = "upload_file"  # a postmortem version as a file (entry.data["postmortem"])
    UPDATE_ENTRY = "update_entry"  # edit the message an entry was posted as (a runbook's progress)


class DeliveryState(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"  # superseded (a later summary refresh covers it) or nothing to send
    FAILED = "failed"  # the platform refused it for good (see last_error); the record keeps it


# Open incidents as SQL: the partial index below and the queries that use it say it alike, so
# PostgreSQL and SQLite can prove the query is covered by the index.
OPEN_STATUS_SQL = "status NOT IN ('resolved', 'closed', 'cancelled')"


class Incident(SQLModel, table=True):
    __table_args__ = (
        # `list` (open, newest first) reads a page of these instead of every incident.
        sa.Index(
            "ix_incident_open_number",
            "number",
            postgresql_where=sa.text(OPEN_STATUS_SQL),
            sqlite_where=sa.text(OPEN_STATUS_SQL),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    number: int = Field(unique=True, index=True)
    title: str
    summary: str = ""
    description: str = ""
    type: str
    severity: str
    priority: str
    status: Status = Field(default=Status.TRIGGERED, sa_type=_enum(Status))
    private: bool = False
    # role name -> user mention (as the platform writes it: "@alice", "<@U123>", "<@4567>")
    roles: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    custom_fields: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    declared_by: str
    declared_on: str  # platform name
    # Indexed: reports read the incidents declared in a period.
    declared_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # When the impact began (may be before the declare); set at declare, corrected with
    # `/incident time impact_started <when>` (see bot/postmortem.py).
    impact_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    mitigated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_update_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    @property
    def commander(self) -> str | None:
        return self.roles.get("commander")


class IncidentCounter(SQLModel, table=True):
    """One row holding the last incident number handed out.

    `UPDATE ... SET value = value + 1 RETURNING value` takes a row lock on PostgreSQL and the
    write lock on SQLite, so two racing declares can never get the same number.
    """

    id: int = Field(default=1, primary_key=True)
    value: int = 0


class TimelineEntry(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("source", "external_id", name="uq_entry_external"),
        # An incident's timeline in order, and its key events (the pinned summary) in order.
        sa.Index("ix_entry_incident_time", "incident_id", "occurred_at", "id"),
        sa.Index("ix_entry_incident_kind_time", "incident_id", "kind", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    kind: EntryKind = Field(sa_type=_enum(EntryKind))
    text: str
    author_id: str = ""
    author_name: str = ""
    source: str = ""  # platform the entry came from ("console", "slack", "discord", "system")
    external_id: str | None = None  # platform id of the message it records, for dedupe and edits
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    deleted: bool = False
    occurred_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    edited_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ActionItem(SQLModel, table=True):
    __table_args__ = (sa.UniqueConstraint("incident_id", "number", name="uq_action_number"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    number: int  # 1, 2, 3... within the incident
    text: str
    assignee: str | None = None
    due_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: ActionStatus = Field(default=ActionStatus.OPEN, sa_type=_enum(ActionStatus))
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ChannelLink(SQLModel, table=True):
    __table_args__ = (
        sa.UniqueConstraint("platform", "channel_id", name="uq_link_channel"),
        # Thread replies find their incident by the thread id.
        sa.Index("ix_link_thread", "platform", "thread_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    platform: str
    workspace: str = ""  # Slack team id, Discord guild id; empty for the console
    state: LinkState = Field(default=LinkState.PENDING, sa_type=_enum(LinkState))
    channel_id: str | None = None
    channel_name: str | None = None
    thread_id: str | None = None
    timeline_message_id: str | None = None  # the message the timeline thread hangs under
    summary_message_id: str | None = None
    summary_pinned: bool = False
    topic: str | None = None  # last topic set, so an unchanged topic is not sent again
    invite: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # users to invite on open
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Delivery(SQLModel, table=True):
    """The outbox: one row per thing the mirror must send to one linked channel."""

    __table_args__ = (
        # A reaction on one of the bot's posts finds the entry it shows by the post's id.
        sa.Index("ix_delivery_message", "link_id", "message_id"),
        # The outbox: only pending rows, in queue order. Sent rows (nearly all of them, in a
        # database that has run for a while) are not in this index at all.
        sa.Index(
            "ix_delivery_queue_pending",
            "link_id",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    link_id: int = Field(foreign_key="channellink.id", index=True)
    action: DeliveryAction = Field(sa_type=_enum(DeliveryAction))
    entry_id: int | None = Field(default=None, foreign_key="timelineentry.id", index=True)
    state: DeliveryState = Field(default=DeliveryState.PENDING, sa_type=_enum(DeliveryState))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = None
    message_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class InboundEvent(SQLModel, table=True):
    """Platform events already applied (Slack event_id, Discord interaction id...)."""

    __table_args__ = (sa.UniqueConstraint("platform", "event_key", name="uq_inbound_event"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    event_key: str
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class InboxState(StrEnum):
    PENDING = "pending"  # acknowledged, not applied yet
    APPLIED = "applied"
    FAILED = "failed"  # applying it failed every attempt (see last_error); the queue moved on


class InboxItem(SQLModel, table=True):
    """The inbox: every platform input Opsroom acknowledges, stored before the acknowledgement.

    Rows of one `queue` (a channel: "slack:C123") are applied in `id` order, by whoever holds
    the queue's `Lease`; `claimed_by`/`claimed_until` say which worker is applying a row (see
    storage/claims.py). `key` is the platform's id for the input, so a replay is stored once.
    """

    __tablename__ = "inbox"
    __table_args__ = (
        sa.UniqueConstraint("platform", "key", name="uq_inbox_key"),
        sa.Index("ix_inbox_queue", "state", "queue", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    key: str
    queue: str
    kind: str  # what the platform sent: "command", "view", "event", "interaction"...
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)  # secrets stripped
    # Where the answer goes (a Slack response_url, a Discord interaction webhook): a secret that
    # is never logged, and forgotten once the row is applied.
    reply_to: str | None = None
    state: InboxState = Field(default=InboxState.PENDING, sa_type=_enum(InboxState))
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    attempts: int = 0
    last_error: str | None = None
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Lease(SQLModel, table=True):
    """A named piece of work that one process at a time may do: a channel's delivery queue, a
    channel's inbox. Held until `claimed_until`; an expired lease is taken over (see
    storage/claims.py, which claims jobs the same way)."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    claimed_by: str | None = None
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)


class Job(SQLModel, table=True):
    """Something to do at a time, at least once, effectively once (see bot/jobs.py).

    `key` is unique, so scheduling the same thing twice is one row. A worker claims a due job
    (storage/claims.py), runs its kind's handler and commits the handler's effects with the
    job's completion; a claim left by a dead process expires and is taken over.
    """

    __table_args__ = (sa.Index("ix_job_ready", "state", "due_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str
    key: str = Field(unique=True)
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    due_at: datetime = Field(sa_type=UTCDateTime)
    payload: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    state: JobState = Field(default=JobState.PENDING, sa_type=_enum(JobState))
    attempts: int = 0
    claimed_by: str | None = None
    # A claim's expiry; on a pending job, the end of a retry's backoff (claimed by nobody).
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    last_error: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class TokenScope(StrEnum):
    READ = "read"
    WRITE = "write"  # read and write


class ApiToken(SQLModel, table=True):
    """A bearer token for the REST API and the web view. Only its SHA-256 is kept: the token
    itself is shown once, when it is created."""

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True)
    scope: TokenScope = Field(sa_type=_enum(TokenScope))
    private: bool = False  # sees private incidents
    token_hash: str = Field(unique=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiIdempotency(SQLModel, table=True):
    """An API declare's idempotency key, per token: a retried declare returns the incident the
    first one made instead of declaring another."""

    __table_args__ = (sa.UniqueConstraint("token_id", "key", name="uq_idempotency_key"),)

    id: int | None = Field(default=None, primary_key=True)
    token_id: int = Field(foreign_key="apitoken.id")
    key: str
    fingerprint: str  # the request body's hash: the same key with another body is refused
    incident_number: int | None = None  # None while the first request is still declaring
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Postmortem(SQLModel, table=True):
    """One generated version of an incident's postmortem (each `/incident postmortem` adds one)."""

    __table_args__ = (sa.UniqueConstraint("incident_id", "version", name="uq_postmortem_version"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    version: int  # 1, 2, 3... within the incident
    markdown: str
    draft: bool = True  # generated before the incident was resolved
    model: str = ""  # the model that wrote the narrative, "" for the skeleton
    removed_citations: int = 0  # narrative sentences dropped for citing no existing entry
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class Alert(SQLModel, table=True):
    """One event received from monitoring (see bot/alerts.py), stored once.

    The key (source, fingerprint, starts_at, status) makes an Alertmanager HA pair, a resend or a
    retried webhook one row: a repeat only bumps `count` and `last_received_at`. A firing alert
    and its resolution are two rows of one episode (same source, fingerprint and starts_at).
    """

    __table_args__ = (
        sa.UniqueConstraint("source", "fingerprint", "starts_at", "status", name="uq_alert_event"),
        # An open incident for a group; the new groups of a route in the last minute (storms).
        sa.Index("ix_alert_group", "group_key", "id"),
        sa.Index("ix_alert_route_received", "route", "first_received_at"),
        sa.Index("ix_alert_episode", "source", "fingerprint", "id"),
        # Triage (bot/triage.py): the alerts held under one triage post; the posts waiting.
        sa.Index("ix_alert_triage_of", "triage_of"),
        sa.Index(
            "ix_alert_triage_pending",
            "id",
            postgresql_where=sa.text("triage = 'pending'"),
            sqlite_where=sa.text("triage = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    source: str  # alertmanager, grafana, pagerduty, generic
    fingerprint: str  # the source's fingerprint or dedup key
    starts_at: datetime = Field(sa_type=UTCDateTime)
    status: str  # firing, resolved, acknowledged
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    summary: str = ""
    severity: str = ""  # as the source said it (critical, error, warning, info)
    labels: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    annotations: dict[str, str] = Field(default_factory=dict, sa_type=sa.JSON)
    link: str = ""
    route: str = ""  # the catalog route that took it
    mode: str = ""  # declare, triage, ignore (the route's, when it was received)
    group_key: str = ""
    new_group: bool = False  # it opened (or was collected as) a group of its own
    storm: bool = False  # collected into its route's alert-storm incident
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    count: int = 1
    first_received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # A triage-mode firing alert (bot/triage.py): pending, declared, attached or ignored; None
    # for the others. `triage_of` is the alert whose triage post covers this one (a later alert
    # of the group while that one waited); `triage_by` who decided.
    triage: str | None = None
    triage_of: int | None = None
    triage_by: str | None = None
class RunState(StrEnum):
    RUNNING = "running"  # a runner may take it and do its current step
    WAITING = "waiting"  # its current step waits for people (checklist, approval) or a time
    FAILED = "failed"  # its current step failed; retry or cancel
    DONE = "done"
    CANCELLED = "cancelled"

    @property
    def active(self) -> bool:
        return self in (RunState.RUNNING, RunState.WAITING, RunState.FAILED)


class RunbookRun(SQLModel, table=True):
    """One run of a runbook on an incident (see bot/runbooks.py).

    The steps are copied from the catalog when the run starts, so a catalog reload never changes
    a run midway. `step_states` holds one dict per step: state (pending, running, done, failed,
    skipped, waiting), attempts, started_at, finished_at, detail, and the kind's own data
    (checklist items ticked, the HTTP status...).
    """

    __table_args__ = (sa.UniqueConstraint("incident_id", "number", name="uq_run_number"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True)
    number: int  # 1, 2, 3... within the incident
    runbook: str
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    step_states: list[dict[str, Any]] = Field(default_factory=list, sa_type=sa.JSON)
    current: int = 0
    state: RunState = Field(default=RunState.RUNNING, sa_type=_enum(RunState), index=True)
    started_by: str = ""
    trigger: str = ""  # "command", "auto_run", "workflow <name>"
    progress_entry_id: int | None = Field(default=None, foreign_key="timelineentry.id")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
class Person(SQLModel, table=True):
    """A chat account and the name the bot last saw it use (see bot/people.py). Accounts are
    linked into one person only by the catalog's `people:`, never by a matching name."""

    __table_args__ = (sa.UniqueConstraint("platform", "user_id", name="uq_person_account"),)

    id: int | None = Field(default=None, primary_key=True)
    platform: str
    user_id: str
    name: str
    seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class OncallOverride(SQLModel, table=True):
    """Somebody on call for a schedule instead of whoever its layers say, from start to end."""

    __table_args__ = (sa.Index("ix_override_schedule_end", "schedule", "end_at"),)

    id: int | None = Field(default=None, primary_key=True)
    schedule: str
    person: str  # a person's name (catalog `people:`), or a mention as typed
    start_at: datetime = Field(sa_type=UTCDateTime)
    end_at: datetime = Field(sa_type=UTCDateTime)
    created_by: str = ""
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    removed: bool = False


class Escalation(SQLModel, table=True):
    """One escalation policy (or one person) being paged for an incident (bot/paging.py).

    `round` and `step` name the next step to fire; each step is a job keyed by them, so a step
    fires once however many workers run. At most one is active per incident and policy."""

    __table_args__ = (sa.Index("ix_escalation_incident_state", "incident_id", "state"),)

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id")
    policy: str  # a policy name, or "@alice" / "<@U123>" for a page of one person
    state: str = "active"  # active, acknowledged, exhausted, cancelled
    round: int = 0
    step: int = 0
    paged: list[str] = Field(default_factory=list, sa_type=sa.JSON)  # everyone paged so far
    message: str = ""
    created_by: str = ""
    started_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    acknowledged_by: str | None = None


class NoticeKind(StrEnum):
    POST = "post"  # a message to a named channel (triage, shift changes, coverage problems)
    DM = "dm"  # a direct message to one person on one platform (target: their mention there)
    UPDATE = "update"  # edit the message an earlier notice posted (ref_key names that notice)
    WEBHOOK = "webhook"  # JSON to a person's notify_webhook (target: the person's name)


class Notice(SQLModel, table=True):
    """The outbox for what is sent outside an incident's channels (see bot/notices.py).

    A delivery belongs to one incident channel; a notice goes to a named channel, a person or a
    webhook, with or without an incident. `key` makes queueing idempotent: the same notice queued
    twice (two replicas, a retried job) is one row, sent once.
    """

    __table_args__ = (
        sa.Index(
            "ix_notice_queue_pending",
            "platform",
            "target",
            "id",
            postgresql_where=sa.text("state = 'pending'"),
            sqlite_where=sa.text("state = 'pending'"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(unique=True)
    kind: NoticeKind = Field(sa_type=_enum(NoticeKind))
    platform: str  # "slack", "discord", "console", or "webhook"
    workspace: str = ""
    target: str  # a channel name, a person's mention on `platform`, or a person's name
    body: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    ref_key: str | None = None  # UPDATE: the key of the notice whose message is edited
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    state: DeliveryState = Field(default=DeliveryState.PENDING, sa_type=_enum(DeliveryState))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_error: str | None = None
    channel_id: str | None = None  # where a POST went (an UPDATE edits it there)
    message_id: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
