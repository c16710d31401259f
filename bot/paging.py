"""Paging: reach the person on call, then the next one, until somebody acknowledges.

An escalation (`bot.models.Escalation`) runs an escalation policy (or pages one person) for one
incident. Each step is a durable job (bot/jobs.py) keyed by escalation, round and step, so it
fires once with any number of replicas and, after a restart, fires late and says so. A step
resolves its schedules (bot/oncall.py) and people when it fires; a step that reaches nobody is
reported in the channel and skipped at once. Each person paged gets a direct message with an
Acknowledge button on every platform they have an account on: as a delivery of the incident
where it has a channel, as a notice (bot/notices.py) on a connected platform where it has none;
and their `notify_webhook` is called (a notice too). A step's `channels` get a post naming the
incident and the step, on every connected platform.

`start_escalation(u, catalog, incident, policy, ...)` is the one way in: `/incident page`,
`page:` on a type or severity at declare, and (for whoever wires them) a runbook `page` step
and an alert route's policy.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from bot import commands as c
from bot.base import Reply, ServiceError
from bot.catalog import Catalog
from bot.jobs import JobContext, handler, new_job
from bot.lifecycle import Lifecycle
from bot.models import (
    ChannelLink,
    Delivery,
    DeliveryAction,
    EntryKind,
    Escalation,
    Incident,
    LinkState,
    Status,
)
from bot.notices import queue_dm, queue_post, queue_webhook
from bot.oncall import on_call_now
from bot.oncall_commands import OncallAck
from bot.people import Directory, platform_of
from bot.policies import EscalationPolicy, Step
from bot.ports import SYSTEM, Actor, ChannelRef, Unit
from bot.render import Message, direct_message
from bot.timing import format_duration

logger = logging.getLogger(__name__)

STEP = "escalation_step"
ACTIVE, ACKNOWLEDGED, EXHAUSTED, CANCELLED = "active", "acknowledged", "exhausted", "cancelled"


def _iid(incident: Incident) -> int:
    assert incident.id is not None
    return incident.id


def _eid(esc: Escalation) -> int:
    assert esc.id is not None
    return esc.id


def human(delta: timedelta) -> str:
    """ "2m 10s", "1h 5m", "45s": how long it took, for people."""
    seconds = max(0, int(delta.total_seconds()))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h"] if h else []
    parts += [f"{m}m"] if m else []
    parts += [f"{s}s"] if s or not parts else []
    return " ".join(parts)


def _policy(catalog: Catalog, esc: Escalation) -> EscalationPolicy:
    """The policy an escalation runs; a page of one person is a one-step policy of them."""
    if c.is_mention(esc.policy):
        return EscalationPolicy(name=esc.policy, steps=[Step(people=[esc.policy])])
    found = catalog.policy(esc.policy)
    if found is None:  # the catalog changed under a running escalation
        raise LookupError(f"escalation policy {esc.policy!r} is no longer in the catalog")
    return found


def _step_job(
    esc: Escalation, due: datetime, now: datetime, waited: timedelta | None = None
) -> Any:
    """The job of the escalation's next step; `waited` is how long the step before it waited
    for an acknowledgement (what the next lines say)."""
    key = f"esc:{_eid(esc)}:{esc.round}:{esc.step}"
    payload: dict[str, Any] = {"escalation": _eid(esc), "round": esc.round, "step": esc.step}
    if waited is not None:
        payload["waited"] = int(waited.total_seconds())
    return new_job(STEP, key, due, now=now, incident_id=esc.incident_id, payload=payload)


async def start_escalation(
    u: Unit,
    catalog: Catalog,
    incident: Incident,
    policy: str,
    *,
    actor: Actor,
    now: datetime,
    message: str = "",
) -> Escalation:
    """Start paging `policy` (a policy name, or one person's mention) for `incident`; its first
    step is a job due now. ServiceError when that policy is already paging for it. Call it in
    the transaction of the change, with the incident locked."""
    if not c.is_mention(policy) and catalog.policy(policy) is None:
        names = [p.name for p in catalog.escalation_policies]
        choices = ", ".join(names) if names else "none is configured"
        raise ServiceError(f'unknown escalation policy "{policy}": use {choices}, or @person')
    name = policy if c.is_mention(policy) else policy.lower()
    for esc in await u.escalations(_iid(incident)):
        if c.person_key(esc.policy) == c.person_key(name):
            raise ServiceError(
                f"#{incident.number} is already paging {name} (step {esc.step}); "
                "it stops when someone acknowledges: /incident ack"
            )
    esc = Escalation(
        incident_id=_iid(incident),
        policy=name,
        message=message,
        created_by=actor.ref,
        started_at=now,
    )
    await u.add(esc)
    await u.schedule(_step_job(esc, now, now))
    return esc


def _accounts(people: Directory, who: str) -> dict[str, str]:
    """Where person `who` (a name or a raw mention) can be messaged: platform -> their mention
    there ("<@U123>", "<@4567>", "@alice"), the form each platform's ChatPort reads."""
    if who.startswith("<@"):
        uid = who.strip("<@!>").split("|")[0]
        spec = people.by_account(platform_of(uid), uid)
        if spec is None:
            return {platform_of(uid): f"<@{uid}>"}
        who = spec.name
    spec = people.person(who)
    found = {"console": f"@{who.lstrip('@')}"}
    if spec is not None:
        found |= {p: f"<@{spec.account(p)}>" for p in spec.platforms}
    return found


def _label(who: str) -> str:
    return who if who.startswith(("<@", "@")) else f"@{who}"


async def _targets(
    u: Unit, catalog: Catalog, people: Directory, step: Step, now: datetime
) -> tuple[list[str], list[str]]:
    """Who a step pages (names or raw mentions), and what reached nobody."""
    found: list[str] = []
    empty: list[str] = []
    for schedule in step.schedules:
        shift = await on_call_now(u, catalog, schedule, now)
        if shift is None:
            empty.append(f"nobody is on call for {schedule}")
        elif shift.person not in found:
            found.append(shift.person)
    for person in step.people:
        name = people.name_of(person) if person.startswith(("<@", "@")) else person
        who = person if person.startswith("<@") and not people.person(name or "") else name
        if who and who not in found:
            found.append(who)
    return found, empty


def incident_link(
    incident: Incident, links: list[ChannelLink], public_url: str | None
) -> str:
    """Where people find the incident: its web page (OPSROOM_PUBLIC_URL), else its Slack or
    Discord channel once opened, else "" (not known yet)."""
    if public_url:
        return f"{public_url.rstrip('/')}/incidents/{incident.number}"
    for link in links:
        if link.channel_id is None or link.state in (LinkState.FAILED, LinkState.ARCHIVED):
            continue
        if link.platform == "slack" and link.workspace:
            return f"https://app.slack.com/client/{link.workspace}/{link.channel_id}"
        if link.platform == "discord" and link.workspace:
            return f"https://discord.com/channels/{link.workspace}/{link.channel_id}"
    return ""


async def _page(
    ctx: JobContext,
    people: Directory,
    incident: Incident,
    esc: Escalation,
    who: str,
    text: str,
) -> None:
    """Record the page of `who` (the channel line); queue their direct messages (deliveries
    where the incident has a channel, notices on the other connected platforms they have an
    account on) and their notify_webhook."""
    u, now = ctx.u, ctx.now
    accounts = _accounts(people, who)
    data = {
        "page": _eid(esc),
        "dm_accounts": accounts,
        "dm": next(iter(accounts.values())),
        "invite_accounts": accounts,  # the paged person is invited to the channel
    }
    entry = await ctx.record(u, incident, kind=EntryKind.PAGE, text=text, actor=SYSTEM, data=data)
    if who not in esc.paged:
        esc.paged = [*esc.paged, who]
    links = [
        link
        for link in await u.links(_iid(incident))
        if link.state not in (LinkState.FAILED, LinkState.ARCHIVED)
    ]
    dms = [
        Delivery(
            incident_id=_iid(incident),
            link_id=link.id,
            action=DeliveryAction.DIRECT_MESSAGE,
            entry_id=entry.id,
            next_attempt_at=now,
            created_at=now,
        )
        for link in links
        if link.id is not None and link.platform in accounts
    ]
    await u.queue(dms)
    key = f"page:{_eid(esc)}:{esc.round}:{esc.step}:{c.person_key(who)}"
    linked = {link.platform for link in links}
    for platform, user in accounts.items():
        if platform == "console" or platform in linked or platform not in ctx.platforms:
            continue
        await queue_dm(u, key=f"{key}:dm:{platform}", platform=platform, user=user,
                       message=direct_message(entry, incident), now=now,
                       incident_id=_iid(incident))
    name = people.name_of(who) if who.startswith("<@") else who
    if name:
        fields = {
            "incident": str(incident.number),
            "title": incident.title,
            "severity": incident.severity,
            "text": text,
            "link": incident_link(incident, links, ctx.public_url),
        }
        await queue_webhook(u, key=f"{key}:webhook", person=name, fields=fields,
                            catalog=ctx.catalog, now=now, incident_id=_iid(incident))


async def _post_to_channels(
    ctx: JobContext,
    incident: Incident,
    esc: Escalation,
    policy: EscalationPolicy,
    step: Step,
    paged: list[str],
) -> str:
    """Post the step in each of its channels on every connected platform; the channel line
    that says so ("" when the step names no channel)."""
    if not step.channels:
        return ""
    number = esc.step + 1
    again = f", round {esc.round + 1}" if esc.round else ""
    text = (f"📟 #{incident.number} {incident.title}: step {number} of {policy.name}{again} "
            f"({incident.severity.upper()})")
    if paged:
        text += f", paging {', '.join(_label(p) for p in paged)}"
    if esc.message:
        text += f": {esc.message}"
    link = incident_link(incident, await ctx.u.links(_iid(incident)), ctx.public_url)
    if link:
        text += f"\n{link}"
    for channel in step.channels:
        for platform in ctx.platforms:
            await queue_post(
                ctx.u,
                key=f"esc:{_eid(esc)}:{esc.round}:{esc.step}:post:{channel}:{platform}",
                platform=platform,
                channel=channel,
                message=Message(text=text),
                now=ctx.now,
                incident_id=_iid(incident),
            )
    return ", ".join(f"#{ch}" for ch in step.channels)


@handler(STEP)
async def escalation_step(ctx: JobContext) -> None:
    """Fire one step of an escalation: page its people, then plan the next step."""
    incident = ctx.incident
    esc = await ctx.u.escalation(int(ctx.job.payload.get("escalation", 0)))
    if incident is None or esc is None or esc.state != ACTIVE:
        return
    if (esc.round, esc.step) != (ctx.job.payload.get("round"), ctx.job.payload.get("step")):
        return  # moved on since (an older job that was not cancelled)
    if not incident.status.is_open:
        esc.state = CANCELLED
        return
    policy = _policy(ctx.catalog, esc)
    people = Directory(ctx.catalog.people)
    late = f" ({ctx.late_note})" if ctx.late_note else ""
    direct = c.is_mention(esc.policy)
    waited_for = timedelta(seconds=int(ctx.job.payload.get("waited", 0)))
    while True:
        if esc.step >= len(policy.steps):
            if esc.round < policy.repeat:
                esc.round, esc.step = esc.round + 1, 0
                continue
            esc.state = EXHAUSTED
            waited = format_duration(waited_for)
            await ctx.record(
                ctx.u,
                incident,
                kind=EntryKind.PAGE,
                actor=SYSTEM,
                text=f"⚠️ No acknowledgement after {waited}: {policy.name} has nobody left "
                f"to page{late}",
                data={"page": _eid(esc)},
                announce=True,
            )
            return
        step = policy.steps[esc.step]
        number = esc.step + 1
        again = f", round {esc.round + 1}" if esc.round else ""
        targets, empty = await _targets(ctx.u, ctx.catalog, people, step, ctx.now)
        if not targets and not step.channels:
            await ctx.record(
                ctx.u,
                incident,
                kind=EntryKind.PAGE,
                actor=SYSTEM,
                text=f"⚠️ Step {number} of {policy.name} reaches nobody ({'; '.join(empty)}): "
                f"skipped{late}",
                data={"page": _eid(esc)},
            )
            esc.step += 1
            continue
        # The first step that reaches anybody (a skipped step pages nobody; one that posted
        # in a channel waited for an acknowledgement like one that paged).
        first = not esc.paged and esc.round == 0 and "waited" not in ctx.job.payload
        for who in targets:
            shown = _label(who)
            where = "" if direct else f"{policy.name}, "
            if first:
                text = f"📟 Paged {shown} ({where}step {number}){late}"
            else:
                text = (
                    f"⬆️ No acknowledgement after {format_duration(waited_for)}: paging "
                    f"{shown} (step {number}{again}){late}"
                )
            if esc.message:
                text += f": {esc.message}"
            await _page(ctx, people, incident, esc, who, text)
        posted = await _post_to_channels(ctx, incident, esc, policy, step, targets)
        if posted:
            if first or targets:
                text = f"📟 Step {number} of {policy.name}{again}: posted in {posted}{late}"
            else:
                text = (
                    f"⬆️ No acknowledgement after {format_duration(waited_for)}: posted in "
                    f"{posted} (step {number} of {policy.name}{again}){late}"
                )
            await ctx.record(ctx.u, incident, kind=EntryKind.PAGE, actor=SYSTEM, text=text,
                             data={"page": _eid(esc)})
        if empty:
            await ctx.record(
                ctx.u,
                incident,
                kind=EntryKind.PAGE,
                actor=SYSTEM,
                text=f"⚠️ Step {number} of {policy.name}: {'; '.join(empty)}",
                data={"page": _eid(esc)},
            )
        esc.step += 1
        if direct:
            return  # one person paged: no one to escalate to; it stays open until acknowledged
        await ctx.u.schedule(_step_job(esc, ctx.now + step.wait, ctx.now, step.wait))
        return


class Paging(Lifecycle):
    """`/incident page`, `/incident ack` (your pages, then the incident), `/oncall ack`."""

    READS = {OncallAck: "_oncall_ack"}
    CHANGES = {c.Page: "_page_command", c.Acknowledge: "_ack_pages"}

    def _me(self, actor: Actor) -> set[str]:
        """Every way `actor` may appear among the people paged."""
        people = Directory(self.catalog.people)
        mine = {c.person_key(actor.ref), c.person_key(f"<@{actor.user_id}>")}
        spec = people.by_account(actor.platform, actor.user_id)
        if spec is not None:
            mine.add(spec.name)
        if actor.platform == "console":
            mine.add(actor.name.lower().lstrip("@"))
        return mine

    async def _ack_mine(self, u: Unit, inc: Incident, actor: Actor) -> list[str]:
        """Acknowledge `actor`'s open pages for `inc`; the lines recorded."""
        now = self.clock.now()
        mine = self._me(actor)
        done = []
        for esc in await u.escalations(_iid(inc)):
            if not any(c.person_key(p) in mine or p in mine for p in esc.paged):
                continue
            esc.state, esc.acknowledged_at, esc.acknowledged_by = ACKNOWLEDGED, now, actor.ref
            await u.cancel_jobs(now=now, incident_id=_iid(inc), prefix=f"esc:{_eid(esc)}:")
            text = f"✅ {actor.ref} acknowledged after {human(now - esc.started_at)}"
            what = "" if c.is_mention(esc.policy) else f" ({esc.policy})"
            await self._record(
                u,
                inc,
                kind=EntryKind.PAGE,
                text=text + what,
                actor=actor,
                data={"page": _eid(esc), "acknowledged": True},
            )
            done.append(esc.policy)
        return done

    async def _ack_pages(self, u: Unit, inc: Incident, cmd: c.Acknowledge, actor: Actor) -> Reply:
        acked = await self._ack_mine(u, inc, actor)
        if inc.status is Status.TRIGGERED or not acked:
            reply = await self._ack(u, inc, cmd, actor)
            if not acked:
                return reply
            return Reply(f"{reply.text} Paging stopped ({', '.join(acked)}).", incident=inc.number)
        return Reply(
            f"Acknowledged your page for #{inc.number} ({', '.join(acked)}); paging stopped.",
            incident=inc.number,
        )

    async def _page_command(self, u: Unit, inc: Incident, cmd: c.Page, actor: Actor) -> Reply:
        if not inc.status.is_open:
            raise ServiceError(f"#{inc.number} is {inc.status.value}: nobody is paged for it")
        target = cmd.target
        if c.is_mention(target):
            self._person(target, "the person to page")
        await start_escalation(
            u,
            self.catalog,
            inc,
            target,
            actor=actor,
            now=self.clock.now(),
            message=getattr(cmd, "message", ""),
        )
        return Reply(f"Paging {target} for #{inc.number}.", incident=inc.number)

    async def _on_declared(self, u: Unit, incident: Incident, actor: Actor) -> None:
        """`page:` of the incident's type, else of its severity, pages on declare."""
        itype = self.catalog.incident_type(incident.type)
        severity = self.catalog.severity(incident.severity)
        policy = (itype.page if itype else None) or (severity.page if severity else None)
        if policy:
            await start_escalation(
                u, self.catalog, incident, policy, actor=actor, now=self.clock.now()
            )

    async def _oncall_ack(self, cmd: OncallAck, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            ids = sorted({e.incident_id for e in await u.escalations()})
        acked: list[str] = []
        for iid in ids:  # one transaction per incident, each locked as every change does
            async with self.store.unit() as u:
                inc = await u.incident_by_id(iid)
                if inc is not None and await self._ack_mine(u, inc, actor):
                    acked.append(f"#{inc.number}")
        if not acked:
            return Reply("You have no open pages.", ok=False)
        self._notify()
        return Reply(f"Acknowledged your pages for {', '.join(acked)}; paging stopped.")
