"""Alerts: monitoring opens incidents, joins the open ones, and resolves them.

Every event a source sends (adapters/alerts_http.py turns Alertmanager, Grafana, PagerDuty and
generic payloads into `AlertEvent`s) is stored once as an `Alert` row keyed by (source,
fingerprint, starts at, status): a resend or an HA pair's copy only bumps its count.

A new firing alert is routed (catalog `alert_routes:`, first match wins) and grouped by the
route's `group_by` labels:
- `declare`: the group's open incident gets a "🔔 firing" entry; with none, one is declared
  (no commander until someone acknowledges);
- `triage`: the group's open incident gets it as for `declare`; with none, a person decides
  from a post in the triage channel (bot/triage.py: Declare, Attach to #n, Ignore);
- `ignore`: stored and counted only;
- more than `storm_threshold` new groups on a route within a minute open one alert-storm
  incident that collects the rest, summarised by a digest job once a minute.

A resolved alert is an entry; when none of an incident's alerts fires any more, a job due after
the route's `resolve_after` moves it to `auto_resolve` (monitoring or resolved). An alert firing
again before then keeps the incident where it is. PagerDuty's acknowledge acknowledges.

Alerts of one route are taken one request at a time (a database lock named after the route, so
replicas agree): two copies of one alert arriving together make one incident.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, ClassVar

from bot import commands as c
from bot.base import TITLE_LIMIT, Reply, ServiceError, _id, coerce_field
from bot.catalog import MATCHER_RE, AlertRoute, Catalog, IncidentType
from bot.jobs import JobContext, handler, new_job
from bot.lifecycle import Lifecycle
from bot.models import Alert, EntryKind, Incident, Status
from bot.ports import SYSTEM, Actor, ChannelRef, Unit
from bot.timing import format_duration

logger = logging.getLogger(__name__)

SOURCES = ("alertmanager", "grafana", "pagerduty", "generic")
SOURCE_NAMES = {
    "alertmanager": "Alertmanager",
    "grafana": "Grafana",
    "pagerduty": "PagerDuty",
    "generic": "Monitoring",
}
FIRING, RESOLVED, ACKNOWLEDGED = "firing", "resolved", "acknowledged"
STATUSES = (FIRING, RESOLVED, ACKNOWLEDGED)
SEVERITIES = ("critical", "error", "warning", "info")

RESOLVE = "alert_resolve"
DIGEST = "alert_digest"
STORM_WINDOW = timedelta(minutes=1)
ALERTS_PLATFORM = "alerts"  # the source of alert entries, for external-id lookups


@dataclass(frozen=True)
class AlertEvent:
    """One alert as a source reported it, in the shape every source maps onto."""

    source: str
    fingerprint: str
    status: str  # firing, resolved, acknowledged
    summary: str
    severity: str = ""  # critical, error, warning, info; "" when the source gave none
    labels: Mapping[str, str] = field(default_factory=dict)
    annotations: Mapping[str, str] = field(default_factory=dict)
    # None: the source has no start time (PagerDuty): the open episode's, or now.
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    link: str = ""


@dataclass(frozen=True)
class Outcome:
    """What became of one event: `new` (stored) or `repeat` (only counted), and the incident
    number it is on, if any."""

    fingerprint: str
    state: str
    incident: int | None = None


def actor_for(source: str) -> Actor:
    name = SOURCE_NAMES.get(source, source)
    return Actor(platform=ALERTS_PLATFORM, user_id=source, name=name, mention=name)


def matches(route: AlertRoute, labels: Mapping[str, str]) -> bool:
    """Whether every matcher of `route` holds for `labels` (a missing label is "")."""
    for matcher in route.match:
        found = MATCHER_RE.match(matcher)
        assert found is not None  # the catalog checked it
        name, op, value = found.groups()
        have = labels.get(name, "")
        if op == "=":
            ok = have == value
        elif op == "!=":
            ok = have != value
        elif op == "=~":
            ok = re.fullmatch(value, have) is not None
        else:
            ok = re.fullmatch(value, have) is None
        if not ok:
            return False
    return True


def route_for(routes: Sequence[AlertRoute], labels: Mapping[str, str]) -> AlertRoute | None:
    return next((r for r in routes if matches(r, labels)), None)


def _named_route(routes: Sequence[AlertRoute], name: str) -> AlertRoute | None:
    return next((r for r in routes if r.name == name), None)


def group_key(route: AlertRoute, labels: Mapping[str, str]) -> str:
    return route.name + "|" + ",".join(f"{n}={labels.get(n, '')}" for n in route.group_by)


def _labels(event: AlertEvent) -> dict[str, str]:
    """The labels routes match on: the event's, with its severity when it has no such label."""
    labels = dict(event.labels)
    if event.severity and "severity" not in labels:
        labels["severity"] = event.severity
    return labels


class Alerts(Lifecycle):
    """Receiving alerts, and `/incident alerts`."""

    READS: ClassVar[dict[type[c.Command], str]] = {c.ShowAlerts: "_show_alerts"}
    CHANGES: ClassVar[dict[type[c.Command], str]] = {}

    async def receive(self, events: Sequence[AlertEvent]) -> list[Outcome]:
        """Store and route `events` (one request of one source) in one transaction."""
        routes = self.catalog.routes
        routed = [(e, route_for(routes, _labels(e))) for e in events]
        now = self.clock.now()
        outcomes = []
        async with self.store.unit() as u:
            # Always in name order, so two requests touching the same routes never deadlock.
            for name in sorted({r.name for _, r in routed if r is not None}):
                await u.lock_name(f"alerts:{name}")
            for event, route in routed:
                outcomes.append(await self._receive_one(u, event, route, now))
        self._notify()
        return outcomes

    async def _receive_one(
        self, u: Unit, event: AlertEvent, route: AlertRoute | None, now: datetime
    ) -> Outcome:
        starts = event.starts_at
        if starts is None:
            latest = await u.latest_alert(event.source, event.fingerprint)
            reopened = latest is None or (latest.status == RESOLVED and event.status == FIRING)
            starts = now if reopened or latest is None else latest.starts_at
        labels = _labels(event)
        firing: Alert | None = None
        if event.status != FIRING:
            # A resolve or acknowledge follows its firing alert's route, labels and summary
            # (PagerDuty sends none of them again).
            firing = await u.alert_event(event.source, event.fingerprint, starts, FIRING)
            if firing is not None:
                route = _named_route(self.catalog.routes, firing.route) or route
                if not event.labels:
                    labels = dict(firing.labels)
                    event = replace(
                        event,
                        labels=firing.labels,
                        annotations=event.annotations or firing.annotations,
                        summary=event.summary or firing.summary,
                        severity=event.severity or firing.severity,
                        link=event.link or firing.link,
                    )
        row = Alert(
            source=event.source,
            fingerprint=event.fingerprint,
            starts_at=starts,
            status=event.status,
            ends_at=event.ends_at,
            summary=event.summary[:1000],
            severity=event.severity,
            labels=dict(event.labels),
            annotations=dict(event.annotations),
            link=event.link,
            route=route.name if route else "",
            mode=route.mode if route else "ignore",
            group_key=group_key(route, labels) if route else "",
            first_received_at=now,
            last_received_at=now,
        )
        alert, new = await u.record_alert(row)
        if not new:
            return Outcome(event.fingerprint, "repeat")
        if firing is not None and route is not None:
            incident = await self._settled(u, alert, firing, route, actor_for(event.source), now)
            return Outcome(event.fingerprint, "new", incident.number if incident else None)
        if route is None or route.mode == "ignore" or event.status != FIRING:
            return Outcome(event.fingerprint, "new")  # nothing fired: nothing to settle
        if route.mode == "triage":
            found = await u.alert_group_incident(alert.group_key)
            if found is None:  # a person decides (bot/triage.py)
                await self._triage(u, alert, route, now)
                return Outcome(event.fingerprint, "new")
            # Its group was declared or attached from triage: it joins that incident.
            joined, storm = found
            await self._join(u, joined, alert, actor_for(event.source), storm=storm, now=now)
            return Outcome(event.fingerprint, "new", joined.number)
        incident = await self._firing(u, alert, route, actor_for(event.source), now)
        return Outcome(event.fingerprint, "new", incident.number)

    async def _triage(self, u: Unit, alert: Alert, route: AlertRoute, now: datetime) -> None:
        """A new firing triage-mode alert no open incident takes (bot/triage.py posts it)."""
        logger.info("alert %s (%s) is for triage", alert.fingerprint, alert.summary)

    # --- firing ---------------------------------------------------------------------------------

    async def _firing(
        self, u: Unit, alert: Alert, route: AlertRoute, actor: Actor, now: datetime
    ) -> Incident:
        found = await u.alert_group_incident(alert.group_key)
        if found is not None:
            incident, storm = found
            await self._join(u, incident, alert, actor, storm=storm, now=now)
            return incident
        recent = await u.new_alert_groups(alert.route, now - STORM_WINDOW)
        alert.new_group = True
        if recent >= route.storm_threshold:
            storm_incident = await u.storm_incident(alert.route)
            if storm_incident is None:
                storm_incident = await self._open(u, alert, route, actor, now, storm=True)
            await self._join(u, storm_incident, alert, actor, storm=True, now=now)
            return storm_incident
        incident = await self._open(u, alert, route, actor, now)
        alert.incident_id = incident.id
        return incident

    async def _join(
        self,
        u: Unit,
        incident: Incident,
        alert: Alert,
        actor: Actor,
        *,
        storm: bool,
        now: datetime,
        note: str = "",
    ) -> None:
        alert.incident_id, alert.storm = incident.id, storm
        iid = _id(incident)
        # Firing again before the resolve window ended: the incident stays where it is.
        await u.cancel_jobs(now=now, incident_id=iid, key=f"{RESOLVE}:{iid}")
        if storm:
            due = _minute(now) + STORM_WINDOW
            payload = {"since": _minute(now).isoformat()}
            await u.schedule(
                new_job(
                    DIGEST,
                    f"{DIGEST}:{iid}:{due.isoformat()}",
                    due,
                    now=now,
                    incident_id=iid,
                    payload=payload,
                )
            )
            return
        if incident.impact_started_at is None or alert.starts_at < incident.impact_started_at:
            incident.impact_started_at = alert.starts_at  # the earliest alert's start
        await self._record(
            u,
            incident,
            kind=EntryKind.ALERT,
            actor=actor,
            text=f"firing: {_describe(alert)}{note}",
            external_id=f"alert:{alert.id}",
            data={"alert": alert.id, "status": FIRING},
        )

    async def _open(
        self,
        u: Unit,
        alert: Alert,
        route: AlertRoute,
        actor: Actor,
        now: datetime,
        *,
        storm: bool = False,
        where: ChannelRef | None = None,
    ) -> Incident:
        """Declare an incident for `alert` as a person would, but with no commander. `where`:
        the person who declared it from triage is there, and invited to its channel."""
        itype = self._type(route.type) if route.type else self.catalog.incident_types[0]
        ranks = self.catalog.severity_names
        severity = route.severity.get(alert.severity) or itype.default_severity
        if severity not in ranks:  # the default map on a catalog with other severities
            rank = SEVERITIES.index(alert.severity) if alert.severity in SEVERITIES else 1
            severity = ranks[min(rank, len(ranks) - 1)]
        priorities = self.catalog.priority_names
        priority = priorities[min(ranks.index(severity), len(priorities) - 1)]
        if storm:
            title = f"Alert storm on route {route.name}"
            summary = (
                f"More than {route.storm_threshold} new alert groups in a minute on route "
                f"{route.name}; the rest collect here."
            )
        else:
            title = alert.summary or alert.labels.get("alertname", "") or alert.fingerprint
            summary = alert.annotations.get("description", "") or alert.summary
        if len(title) > TITLE_LIMIT:
            title = title[: TITLE_LIMIT - 1] + "…"
        incident = Incident(
            number=await u.next_incident_number(),
            title=title,
            summary=summary,
            description=summary,
            type=itype.name,
            severity=severity,
            priority=priority,
            status=Status.TRIGGERED,
            private=itype.private,
            roles={},
            custom_fields={} if storm else self._fields_from(itype, alert),
            declared_by=actor.ref,
            declared_on=ALERTS_PLATFORM,
            declared_at=now,
            # The impact started when the alert did (metrics and postmortems count from it).
            impact_started_at=min(alert.starts_at, now),
            updated_at=now,
        )
        await u.add(incident)
        home = self.platforms[0] if self.platforms else "console"
        if where is not None and where.platform in self.platforms:
            home = where.platform
            await self._add_link(u, incident, home, where.workspace, invite=[actor.ref])
        else:
            await self._add_link(u, incident, home)
        for platform in itype.mirror_to:
            if platform in self.platforms and platform != home:
                await self._add_link(u, incident, platform)
        link = f" {alert.link}" if alert.link and not storm else ""
        text = (
            f"Incident declared by {actor.name}: {title} ({itype.name}, "
            f"{severity.upper()}, {priority.upper()}), no commander yet: "
            f"/incident ack takes it.{link}"
        )
        if storm:
            text = (
                f"Alert storm: more than {route.storm_threshold} new alert groups in a minute "
                f"on route {route.name}. Further alerts collect here, summarised once a minute "
                f"({itype.name}, {severity.upper()}, {priority.upper()}); /incident ack takes it."
            )
        data: dict[str, Any] = {"alert": alert.id, "route": route.name, "storm": storm}
        if route.page:
            data["page"] = route.page
        await self._record(
            u,
            incident,
            kind=EntryKind.SYSTEM,
            actor=actor,
            announce=True,
            text=text,
            external_id=f"alert-declared:{_id(incident)}",
            data=data,
        )
        if route.page:
            await self.page_from_route(u, incident, route.page)
        return incident

    async def page_from_route(self, u: Unit, incident: Incident, policy: str) -> None:
        """Page `policy` (the route's `page:`) for an incident the route declared, in the same
        transaction; a policy already paging for it, or one the catalog lacks, is logged."""
        from bot.paging import start_escalation  # bot.paging builds on the lifecycle too

        try:
            await start_escalation(
                u, self.catalog, incident, policy, actor=SYSTEM, now=self.clock.now(),
                message="declared by an alert route",
            )
        except ServiceError as exc:
            logger.warning("alerts: #%s could not page %s: %s", incident.number, policy, exc)

    def _fields_from(self, itype: IncidentType, alert: Alert) -> dict[str, Any]:
        """The type's custom fields the alert's labels or annotations name; a value the field
        does not accept is left out (the alert still declares)."""
        values: dict[str, Any] = {}
        for definition in itype.fields:
            raw = alert.labels.get(definition.name) or alert.annotations.get(definition.name)
            if not raw:
                continue
            try:
                values[definition.name] = coerce_field(definition, raw, not_people=self.not_people)
            except ServiceError:
                continue
        return values

    # --- resolved, acknowledged ---------------------------------------------------------------

    async def _settled(
        self, u: Unit, alert: Alert, firing: Alert, route: AlertRoute, actor: Actor, now: datetime
    ) -> Incident | None:
        if firing.incident_id is None:
            return None
        alert.incident_id, alert.storm = firing.incident_id, firing.storm
        incident = await u.incident_by_id(firing.incident_id)
        if incident is None or not incident.status.is_open:
            return incident
        if alert.status == ACKNOWLEDGED:
            if incident.status is Status.TRIGGERED:
                await self._move(
                    u, incident, Status.ACKNOWLEDGED, actor, note=f"acknowledged in {actor.name}"
                )
            return incident
        iid = _id(incident)
        if not alert.storm:
            await self._record(
                u,
                incident,
                kind=EntryKind.ALERT,
                actor=actor,
                text=f"resolved: {_describe(firing)}",
                external_id=f"alert:{alert.id}",
                data={"alert": alert.id, "status": RESOLVED},
            )
        if await u.firing_alerts(iid) == 0:
            due = now + route.resolve_interval
            payload = {"to": route.auto_resolve, "after": route.resolve_after}
            await u.schedule(
                new_job(
                    RESOLVE, f"{RESOLVE}:{iid}", due, now=now, incident_id=iid, payload=payload
                ),
                move=True,
            )
        return incident

    # --- /incident alerts -----------------------------------------------------------------------

    async def _show_alerts(self, cmd: c.ShowAlerts, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            rows = await u.alerts(_id(incident))
        text = describe(incident, rows, self.clock.now(), self.catalog)
        return Reply(text, incident=incident.number)


def episodes(rows: Sequence[Alert]) -> list[tuple[Alert, str, int, datetime]]:
    """One line's worth per alert episode (source, fingerprint, start): its firing row, its
    state now, how many times it was received, and when last."""
    by_key: dict[tuple[str, str, datetime], list[Alert]] = {}
    for row in rows:
        by_key.setdefault((row.source, row.fingerprint, row.starts_at), []).append(row)
    shown = []
    for group in by_key.values():
        first = next((r for r in group if r.status == FIRING), group[0])
        statuses = {r.status for r in group}
        state = (
            RESOLVED
            if RESOLVED in statuses
            else (ACKNOWLEDGED if ACKNOWLEDGED in statuses else FIRING)
        )
        count = sum(r.count for r in group)
        last = max(r.last_received_at for r in group)
        shown.append((first, state, count, last))
    return shown


def describe(incident: Incident, rows: Sequence[Alert], now: datetime, catalog: Catalog) -> str:
    """`/incident alerts`: each alert with its state, count, first and last seen, and link."""
    if not rows:
        return f"#{incident.number} has no alerts."
    shown = episodes(rows)
    firing = sum(1 for _, state, _, _ in shown if state == FIRING)
    lines = [f"Alerts of #{incident.number} ({firing} firing of {len(shown)}):"]
    limit = 50
    for first, state, count, last in shown[:limit]:
        ago = format_duration(max(timedelta(0), now - first.first_received_at))
        seen = format_duration(max(timedelta(0), now - last))
        link = f" {first.link}" if first.link else ""
        lines.append(
            f"• [{state}] {_describe(first)} · {SOURCE_NAMES.get(first.source, first.source)}"
            f" · received {count}× · first {ago} ago, last {seen} ago{link}"
        )
    if len(shown) > limit:
        lines.append(f"… and {len(shown) - limit} more")
    return "\n".join(lines)


def _describe(alert: Alert) -> str:
    name = alert.labels.get("alertname", "")
    summary = alert.summary or name or alert.fingerprint
    where = ", ".join(
        f"{k}={v}" for k, v in sorted(alert.labels.items()) if k not in ("alertname", "severity")
    )
    text = summary if not name or name in summary else f"{name}: {summary}"
    return text + (f" ({where[:200]})" if where else "")


def _minute(moment: datetime) -> datetime:
    return moment.replace(second=0, microsecond=0)


# --- jobs -----------------------------------------------------------------------------------


@handler(RESOLVE)
async def resolve_due(ctx: JobContext) -> None:
    """Every alert of the incident has stayed resolved for the route's `resolve_after`."""
    incident = ctx.incident
    if incident is None or not incident.status.is_open:
        return
    iid = _id(incident)
    if await ctx.u.firing_alerts(iid) > 0:
        return  # one fired again since: it keeps the incident where it is
    to = Status(str(ctx.job.payload.get("to", Status.MONITORING.value)))
    after = str(ctx.job.payload.get("after", ""))
    note = f"every alert resolved for {after}" if after else "every alert resolved"
    itype = ctx.catalog.incident_type(incident.type)
    missing = [
        f.name
        for f in (itype.fields if itype else [])
        if f.required and f.name not in incident.custom_fields
    ]
    if to is Status.RESOLVED and missing:
        to = Status.MONITORING
        note += f" (resolving needs {', '.join(missing)} set first)"
    if incident.status is to or (to is Status.MONITORING and incident.status is Status.MONITORING):
        return
    old = incident.status
    now = ctx.now
    incident.status = to
    incident.acknowledged_at = incident.acknowledged_at or now
    incident.mitigated_at = incident.mitigated_at or now
    if to is Status.RESOLVED:
        incident.resolved_at = incident.resolved_at or now
    await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.STATUS_CHANGE,
        actor=SYSTEM,
        text=f"Status changed from {old.value} to {to.value}: {note}",
        announce=to is Status.RESOLVED,
        external_id=f"{ctx.job.key}:{ctx.job.due_at.isoformat()}",
        data={"from": old.value, "to": to.value, "alerts": "resolved"},
    )


@handler(DIGEST)
async def storm_digest(ctx: JobContext) -> None:
    """One message for the alerts a storm incident collected in the minute before."""
    incident = ctx.incident
    if incident is None:
        return
    since = datetime.fromisoformat(str(ctx.job.payload["since"]))
    rows = [
        a
        for a in await ctx.u.alerts(_id(incident))
        if a.storm and a.status == FIRING and since <= a.first_received_at < ctx.job.due_at
    ]
    if not rows:
        return
    await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.ALERT,
        actor=SYSTEM,
        text=digest_text(rows, since),
        external_id=f"digest:{ctx.job.key}",
        data={"digest": len(rows)},
    )


def digest_text(rows: Sequence[Alert], since: datetime) -> str:
    """The alerts grouped by alert name, each with the labels all of its alerts share."""
    by_name: dict[str, list[Alert]] = {}
    for row in rows:
        by_name.setdefault(row.labels.get("alertname", row.summary or "?"), []).append(row)
    groups = len({r.group_key for r in rows})
    lines = [f"storm digest: {len(rows)} alerts in {groups} groups since {since:%H:%M} UTC:"]
    for name, items in sorted(by_name.items(), key=lambda kv: -len(kv[1]))[:20]:
        shared = dict(items[0].labels)
        for item in items[1:]:
            shared = {k: v for k, v in shared.items() if item.labels.get(k) == v}
        shared.pop("alertname", None)
        varying: Counter[str] = Counter()
        for item in items:
            varying.update(k for k in item.labels if k not in shared and k != "alertname")
        common = ", ".join(f"{k}={v}" for k, v in sorted(shared.items()))
        differ = ", ".join(f"{k}" for k, _ in varying.most_common(3))
        detail = "; ".join(p for p in (common, f"varying {differ}" if differ else "") if p)
        lines.append(f"• {name}: {len(items)}" + (f" ({detail})" if detail else ""))
    if len(by_name) > 20:
        lines.append(f"… and {len(by_name) - 20} more alert names")
    return "\n".join(lines)
