"""Triage: a person decides what a triage-mode alert is.

A new firing alert on a `mode: triage` route that no open incident takes is posted as a notice
(bot/notices.py) to the catalog's `triage_channels:` (one channel per platform; the console's
#general unless it names another), with the buttons Declare, Attach to #n (the three most
recently declared open incidents) and Ignore. Later alerts of its group wait under that post
(their resends only count) until someone decides, by button or by command, the same on every
platform:

    /incident alerts declare <alert>      declare an incident from it as a declare route would
    /incident alerts attach <alert> #<n>  add it (and its group's waiting alerts) to #n
    /incident alerts ignore <alert>       nothing to do: its group stays quiet while it fires
    /incident alerts triage               the alerts waiting for a decision

A declared or attached group's later alerts join that incident (bot/alerts.py), and their
resolutions count there. A decision edits every platform's post to say what was decided and by
whom, without buttons; a second decision is refused and names the first. More than the route's
`storm_threshold` new triage groups in a minute post one note a minute instead of a post each
(the alerts wait all the same, listed by `/incident alerts triage`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import ClassVar

from bot import commands as c
from bot.alerts import (
    SOURCE_NAMES,
    STORM_WINDOW,
    Alerts,
    _describe,
    _minute,
    _named_route,
    actor_for,
)
from bot.base import Reply, ServiceError
from bot.catalog import AlertRoute, Catalog
from bot.models import Alert, Incident
from bot.notices import queue_post, queue_update
from bot.ports import Actor, ChannelRef, Unit
from bot.render import Button, Field, Message, clip
from bot.timing import format_duration

logger = logging.getLogger(__name__)

PENDING, DECLARED, ATTACHED, IGNORED = "pending", "declared", "attached", "ignored"
ATTACH_BUTTONS = 3  # "Attach to #n" for at most this many open incidents, the latest first
LIST_LIMIT = 50
CONSOLE_CHANNEL = "general"  # the console's triage channel unless the catalog names one


def triage_channels(catalog: Catalog, platforms: Sequence[str]) -> dict[str, str]:
    """The channel triage posts go to on each connected platform."""
    channels = {
        p: name.lstrip("#") for p, name in catalog.triage_channels.items() if p in platforms
    }
    if "console" in platforms:
        channels.setdefault("console", CONSOLE_CHANNEL)
    return channels


def post_key(alert_id: int, platform: str) -> str:
    return f"triage:{alert_id}:{platform}"


def _labels(alert: Alert, route: AlertRoute | None) -> str:
    """The labels worth reading: the route's group_by first, then the rest (not severity)."""
    first = [n for n in (route.group_by if route else []) if n in alert.labels]
    rest = sorted(n for n in alert.labels if n not in first and n != "severity")
    return clip(", ".join(f"{n}={alert.labels[n]}" for n in first + rest), 600)


def _card(alert: Alert, route: AlertRoute | None) -> tuple[str, tuple[Field, ...], list[str]]:
    """The alert as a triage card: its title, fields and sections."""
    summary = alert.summary or alert.labels.get("alertname", "") or alert.fingerprint
    title = clip(f"🔔 {summary}", 140)
    source = SOURCE_NAMES.get(alert.source, alert.source)
    fields = (
        Field("Severity", alert.severity or "not given"),
        Field("Source", source),
        Field("Alert", f"{alert.id} (route {alert.route})"),
    )
    sections = []
    labels = _labels(alert, route)
    if labels:
        sections.append(f"Labels: {labels}")
    description = alert.annotations.get("description", "")
    if description and description != alert.summary:
        sections.append(clip(description, 600))
    if alert.link:
        sections.append(alert.link)
    return title, fields, sections


def post_message(alert: Alert, route: AlertRoute | None, incidents: Sequence[Incident]) -> Message:
    """The triage post: the alert, and the buttons (and commands) that decide it."""
    aid = _id_of(alert)
    title, fields, sections = _card(alert, route)
    buttons = [Button("Declare", "triage_declare", str(aid), "primary")]
    buttons += [
        Button(f"Attach to #{i.number}", "triage_attach", f"{aid}:{i.number}")
        for i in incidents[:ATTACH_BUTTONS]
    ]
    buttons.append(Button("Ignore", "triage_ignore", str(aid)))
    attach = f"#{incidents[0].number}" if incidents else "#<n>"
    commands = (
        f"/incident alerts declare {aid} | /incident alerts attach {aid} {attach} | "
        f"/incident alerts ignore {aid}"
    )
    head = f"🔔 Alert {aid} needs triage: {title.removeprefix('🔔 ')}"
    facts = " · ".join(f"{f.label}: {f.value}" for f in fields[:2])
    text = "\n".join([head, facts, *sections, f"Decide: {commands}"])
    return Message(
        text=text,
        title=title,
        fields=fields,
        sections=(f"Alert {aid} needs triage.", *sections),
        buttons=tuple(buttons),
        context=f"Or type: {commands}",
    )


def decision_text(state: str, by: str, incident: Incident | None) -> str:
    if state == DECLARED and incident is not None:
        return f"declared as #{incident.number} by {by}"
    if state == ATTACHED and incident is not None:
        return f"attached to #{incident.number} by {by}"
    return f"ignored by {by}"


def decided_message(
    alert: Alert, route: AlertRoute | None, state: str, by: str, incident: Incident | None,
    more: int,
) -> Message:
    """The post once decided: what, by whom, and no buttons."""
    title, fields, sections = _card(alert, route)
    mark = {DECLARED: "✅", ATTACHED: "📎"}.get(state, "🔕")
    decided = f"{mark} Alert {_id_of(alert)} {decision_text(state, by, incident)}"
    if more:
        decided += f" (with {more} more alert{'s' if more > 1 else ''} of its group)"
    if state == IGNORED:
        decided += "; its group stays quiet while it fires"
    decided += "."
    text = "\n".join([f"{title}: {decided.removeprefix(mark + ' ')}", *sections])
    return Message(text=text, title=title, fields=fields, sections=(decided, *sections))


def _id_of(alert: Alert) -> int:
    assert alert.id is not None
    return alert.id


class Triage(Alerts):
    """Posting triage alerts, and the decisions on them."""

    READS: ClassVar[dict[type[c.Command], str]] = {
        c.ShowTriage: "_show_triage",
        c.AlertDeclare: "_alert_declare",
        c.AlertAttach: "_alert_attach",
        c.AlertIgnore: "_alert_ignore",
    }

    # --- a new alert ----------------------------------------------------------------------

    async def _triage(self, u: Unit, alert: Alert, route: AlertRoute, now: datetime) -> None:
        hold = await u.triage_hold(alert.group_key)
        if hold is not None and hold.id != alert.id:
            # Its group waits for a decision (or was ignored and still fires): no new post.
            alert.triage, alert.triage_by = hold.triage, hold.triage_by
            alert.triage_of = hold.triage_of or hold.id
            return
        recent = await u.new_alert_groups(route.name, now - STORM_WINDOW)
        alert.new_group, alert.triage = True, PENDING
        channels = triage_channels(self.catalog, self.platforms)
        if not channels:
            logger.info("alert %s waits for triage; no triage channel is set (triage_channels:)",
                        alert.id)
            return
        if recent >= route.storm_threshold:
            minute = _minute(now)
            note = Message(
                text=(
                    f"🔔 More than {route.storm_threshold} new alert groups in a minute on route "
                    f"{route.name}: the rest of this minute's wait without a post each. "
                    "/incident alerts triage lists them."
                )
            )
            for platform, channel in channels.items():
                await queue_post(
                    u, key=f"triage-storm:{route.name}:{minute.isoformat()}:{platform}",
                    platform=platform, channel=channel, message=note, now=now,
                )
            return
        incidents, _ = await u.incident_list_page(include_closed=False, limit=ATTACH_BUTTONS)
        message = post_message(alert, route, incidents)
        for platform, channel in channels.items():
            await queue_post(
                u, key=post_key(_id_of(alert), platform), platform=platform, channel=channel,
                message=message, now=now,
            )

    # --- decisions ------------------------------------------------------------------------

    async def _waiting(self, u: Unit, alert_id: int) -> tuple[Alert, list[Alert]]:
        """The triage post alert `alert_id` is under, and every alert waiting with it; an error
        when there is no such alert or it was decided already."""
        found = await u.alert(alert_id)
        if found is None:
            raise ServiceError(
                f"no alert {alert_id}: /incident alerts triage lists the alerts waiting"
            )
        if found.triage is None:
            raise ServiceError(
                f"alert {alert_id} is not waiting for triage (route {found.route or 'none'}, "
                f"mode {found.mode})"
            )
        # Decisions and new alerts of the route one at a time: a new alert of the group is
        # either waiting (and decided with the rest) or joins what was decided.
        await u.lock_name(f"alerts:{found.route}")
        head = await u.alert(found.triage_of or alert_id, lock=True)
        assert head is not None
        if head.triage != PENDING:
            raise ServiceError(await self._already(u, head))
        held = [a for a in await u.triaged_with(_id_of(head)) if a.triage == PENDING]
        return head, [head, *held]

    async def _already(self, u: Unit, head: Alert) -> str:
        incident = await u.incident_by_id(head.incident_id) if head.incident_id else None
        decided = decision_text(head.triage or "", head.triage_by or "someone", incident)
        return f"Alert {head.id} was already {decided}; nothing changed."

    def _route(self, alert: Alert) -> AlertRoute:
        return _named_route(self.catalog.routes, alert.route) or AlertRoute(
            name=alert.route, mode="triage"
        )

    async def _decided(
        self, u: Unit, head: Alert, members: list[Alert], state: str, actor: Actor,
        incident: Incident | None, now: datetime,
    ) -> None:
        for alert in members:
            alert.triage, alert.triage_by = state, actor.ref
            if incident is not None:
                alert.incident_id = incident.id
        message = decided_message(
            head, self._route(head), state, actor.ref, incident, len(members) - 1
        )
        for platform in triage_channels(self.catalog, self.platforms):
            key = post_key(_id_of(head), platform)
            await queue_update(u, key=f"{key}:decided", of=key, message=message, now=now)

    async def _alert_declare(self, cmd: c.AlertDeclare, actor: Actor, where: ChannelRef) -> Reply:
        now = self.clock.now()
        async with self.store.unit() as u:
            head, members = await self._waiting(u, cmd.alert)
            incident = await self._open(u, head, self._route(head), actor, now, where=where)
            head.incident_id = incident.id
            for alert in members[1:]:
                await self._join(u, incident, alert, actor_for(alert.source), storm=False, now=now)
            await self._decided(u, head, members, DECLARED, actor, incident, now)
        self._notify()
        n = incident.number
        return Reply(
            f"Declared #{n} from alert {head.id}: {incident.title} ({incident.severity}); no "
            f"commander yet: /incident #{n} ack takes it.",
            incident=n,
        )

    async def _alert_attach(self, cmd: c.AlertAttach, actor: Actor, where: ChannelRef) -> Reply:
        now = self.clock.now()
        async with self.store.unit() as u:
            if cmd.incident is None and (
                await u.incident_for_channel(where.platform, where.channel_id) is None
            ):
                raise ServiceError(
                    f"which incident? /incident alerts attach {cmd.alert} #<n>"
                )
            head, members = await self._waiting(u, cmd.alert)
            incident = await self._resolve_incident(u, cmd.incident, where)
            if not incident.status.is_open:
                raise ServiceError(
                    f"#{incident.number} is {incident.status.value}: attach alert {cmd.alert} "
                    f"to an open incident, or declare one: /incident alerts declare {cmd.alert}"
                )
            for alert in members:
                await self._join(
                    u, incident, alert, actor_for(alert.source), storm=False, now=now,
                    note=f" (attached from triage by {actor.ref})",
                )
            await self._decided(u, head, members, ATTACHED, actor, incident, now)
        self._notify()
        more = f" with {len(members) - 1} more of its group" if len(members) > 1 else ""
        return Reply(
            f"Attached alert {head.id}{more} to #{incident.number}: {incident.title}.",
            incident=incident.number,
        )

    async def _alert_ignore(self, cmd: c.AlertIgnore, actor: Actor, where: ChannelRef) -> Reply:
        now = self.clock.now()
        async with self.store.unit() as u:
            head, members = await self._waiting(u, cmd.alert)
            await self._decided(u, head, members, IGNORED, actor, None, now)
        self._notify()
        more = f" and {len(members) - 1} more of its group" if len(members) > 1 else ""
        return Reply(
            f"Ignored alert {head.id}{more}; new alerts of its group stay quiet while it fires."
        )

    # --- /incident alerts triage ----------------------------------------------------------

    async def _show_triage(self, cmd: c.ShowTriage, actor: Actor, where: ChannelRef) -> Reply:
        now = self.clock.now()
        async with self.store.unit() as u:
            rows = await u.pending_triage(limit=LIST_LIMIT + 1)
            held = {_id_of(a): len(await u.triaged_with(_id_of(a))) for a in rows[:LIST_LIMIT]}
        if not rows:
            return Reply("No alerts wait for triage.")
        lines = [f"Alerts waiting for triage ({len(held)}{'+' if len(rows) > LIST_LIMIT else ''}):"]
        for alert in rows[:LIST_LIMIT]:
            ago = format_duration(max(timedelta(0), now - alert.first_received_at))
            more = held[_id_of(alert)]
            lines.append(
                f"• alert {alert.id} [{alert.severity or '-'}] {_describe(alert)} · "
                f"{SOURCE_NAMES.get(alert.source, alert.source)} · received {alert.count}× · "
                f"first {ago} ago" + (f" · +{more} more of its group" if more else "")
            )
        lines.append("Decide: /incident alerts declare|ignore <alert>, alerts attach <alert> #<n>")
        return Reply("\n".join(lines))


__all__ = ["Triage", "decided_message", "post_message", "triage_channels"]
