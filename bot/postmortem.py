"""Postmortems, incident times and closing.

`/incident postmortem` turns the record into a Markdown document: the facts (fields, times and
durations, people, key events, the full timeline, alerts, runbook runs, action items) and the
narrative sections. With a model configured the narrative is written by it, and every sentence
must cite timeline entries as `[e12]`: a sentence citing nothing, or only entries that do not
exist, is removed and counted. Without a model the narrative headings are left to fill in.
Each generation is a new stored version, posted to the incident's channels as a file.

`/incident time <which> <when>` corrects one of the incident's times; `/incident close` needs
the work finished (action items, a postmortem) unless forced; a durable job reminds the
commander when a resolved incident still has no postmortem.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import ClassVar

from bot import commands as c
from bot.ai import _SENTENCE_END_RE, CITATION_RE, _canonical, catchup_prompt
from bot.base import Reply, ServiceError, _delivery, _id
from bot.incident_times import FIELDS, WhenError, check_order, durations, parse_past
from bot.jobs import JobContext, handler, new_job
from bot.lifecycle import Lifecycle
from bot.models import (
    ActionItem,
    ActionStatus,
    DeliveryAction,
    EntryKind,
    Incident,
    LinkState,
    Postmortem,
    Status,
    TimelineEntry,
)
from bot.ports import SYSTEM, Actor, ChannelRef, Unit
from bot.render import short_id
from bot.timing import format_duration, parse_duration

logger = logging.getLogger(__name__)

POSTMORTEM_DUE = "postmortem_due"  # job kind: remind the commander of a missing postmortem

# The narrative sections, in order; the model writes them under these headings.
NARRATIVE = (
    "What happened",
    "Impact",
    "Contributing factors",
    "What went well",
    "What went badly",
    "Lessons",
)
TO_FILL = "_To fill in._"

NARRATIVE_SYSTEM = (
    "You write the narrative of an incident postmortem from its timeline. You get the facts and "
    "the timeline as lines starting with the entry id, like [e12]. Write these sections, each "
    "under a Markdown heading of exactly this name: "
    + ", ".join(f"### {n}" for n in NARRATIVE)
    + ". Under each, write short plain sentences. End every sentence with the ids of the "
    "entries it comes from, like [e12] or [e12][e15]; a sentence without one will be removed. "
    "Use only ids that appear in the timeline; state nothing the timeline does not say. Write "
    "'Nothing recorded.' [e<id of the declaration>] when the timeline says nothing for a "
    "section. Text like [redacted-email] hides private data: leave it out."
)


def _when(moment: datetime | None, tz: tzinfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M %Z") if moment else "—"


def _dur(delta: timedelta | None) -> str:
    return format_duration(delta) if delta is not None else "—"


def strict_citations(text: str, valid_ids: set[int]) -> tuple[str, int]:
    """`text` keeping only the sentences that cite at least one entry of `valid_ids` (citations
    of others are dropped from the sentences kept), and how many sentences were removed.
    Headings are kept as they are."""
    removed = 0
    out: list[str] = []
    for line in _canonical(text).splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            out.append(line)
            continue
        bullet = re.match(r"\s*(?:[-*•]|\d+[.)])\s+", line)
        prefix = bullet.group(0) if bullet else ""
        kept: list[str] = []
        for sentence in _SENTENCE_END_RE.split(line[len(prefix) :]):
            if not sentence.strip():
                continue
            cited = [int(n) for n in CITATION_RE.findall(sentence)]
            if not any(n in valid_ids for n in cited):
                removed += 1
                continue
            sentence = CITATION_RE.sub(
                lambda m: m.group(0) if int(m.group(1)) in valid_ids else "", sentence
            )
            kept.append(re.sub(r"[ \t]{2,}", " ", sentence).strip())
        if kept:
            out.append(prefix + " ".join(kept))
    return "\n".join(out).strip(), removed


def split_narrative(text: str) -> dict[str, str]:
    """The model's text by section (the headings of NARRATIVE, matched loosely)."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    wanted = {n.lower(): n for n in NARRATIVE}
    for line in text.splitlines():
        heading = re.match(r"\s*#+\s*(.+?)\s*:?\s*$", line)
        if heading:
            current = wanted.get(heading.group(1).strip("*_ ").lower())
            continue
        if current is not None:
            sections.setdefault(current, []).append(line)
    return {k: "\n".join(v).strip() for k, v in sections.items() if "\n".join(v).strip()}


@dataclass(frozen=True)
class Record:
    """What a postmortem is made of, read in one transaction."""

    incident: Incident
    entries: list[TimelineEntry]
    actions: list[ActionItem]


def facts_markdown(rec: Record, *, tz: tzinfo, version: int, generated: datetime) -> list[str]:
    """The postmortem's factual sections, as Markdown lines."""
    inc = rec.incident
    d = durations(inc)
    draft = inc.status.is_open
    lines = [f"# Postmortem: #{inc.number} {inc.title}", ""]
    if draft:
        lines += [
            f"> **DRAFT**: #{inc.number} is still {inc.status.value}; generate it again once "
            "it is resolved.",
            "",
        ]
    lines += [
        f"Version {version}, generated {_when(generated, tz)}.",
        "",
        "## Summary",
        "",
        inc.summary or inc.description or TO_FILL,
        "",
        "## Details",
        "",
        f"- Type: {inc.type}",
        f"- Severity: {inc.severity.upper()}",
        f"- Priority: {inc.priority.upper()}",
        f"- Status: {inc.status.value}",
    ]
    for name, value in sorted(inc.custom_fields.items()):
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        lines.append(f"- {name}: {shown}")
    lines += [
        "",
        "## Impact window and durations",
        "",
        "| | when |",
        "|---|---|",
    ]
    for which, attr in FIELDS.items():
        lines.append(f"| {which.replace('_', ' ')} | {_when(getattr(inc, attr), tz)} |")
    lines += [
        "",
        f"- Time to acknowledge: {_dur(d.to_acknowledge)}",
        f"- Time to mitigate: {_dur(d.to_mitigate)}",
        f"- Time to resolve: {_dur(d.to_resolve)}",
        f"- Impact duration (impact start to mitigation): {_dur(d.impact)}",
        "",
        "## People and roles",
        "",
        f"- Declared by {inc.declared_by} on {inc.declared_on}",
    ]
    lines += [f"- {role}: {who}" for role, who in inc.roles.items()]
    people = sorted({e.author_name for e in rec.entries if e.author_name and e.source != "system"})
    if people:
        lines.append(f"- On the timeline: {', '.join(people)}")
    live = [e for e in rec.entries if not e.deleted]

    def entry(e: TimelineEntry) -> str:
        author = f"{e.author_name}: " if e.author_name else ""
        text = " ".join(e.text.split())
        return f"- [{short_id(e.id)}] {_when(e.occurred_at, tz)} {author}{text}"

    for title, kinds in (
        ("Key events", {EntryKind.KEY_EVENT}),
        ("Alerts", {EntryKind.ALERT}),
        ("Runbook runs", {EntryKind.RUNBOOK}),
    ):
        chosen = [entry(e) for e in live if e.kind in kinds]
        lines += ["", f"## {title}", ""] + (chosen or ["None recorded."])
    lines += ["", "## Action items", ""]
    marks = {ActionStatus.OPEN: "[ ]", ActionStatus.DONE: "[x]", ActionStatus.CANCELLED: "[-]"}
    for a in rec.actions:
        owner = a.assignee or "no owner"
        due = f", due {_when(a.due_at, tz)}" if a.due_at else ""
        lines.append(f"- {marks[a.status]} {a.number}. {a.text} ({owner}, {a.status.value}{due})")
    if not rec.actions:
        lines.append("None recorded.")
    lines += ["", "## Timeline", ""] + ([entry(e) for e in live] or ["Nothing recorded."])
    return lines


def narrative_markdown(sections: dict[str, str], note: str = "") -> list[str]:
    lines = ["", "## Narrative", ""]
    if note:
        lines += [f"> {note}", ""]
    for name in NARRATIVE:
        lines += [f"### {name}", "", sections.get(name) or TO_FILL, ""]
    return lines


def to_html(markdown: str, title: str) -> str:
    """The postmortem's Markdown as a standalone HTML page (headings, lists, tables, quotes,
    paragraphs: what `facts_markdown` and the narrative write)."""
    out = [
        "<!doctype html>",
        f'<html><head><meta charset="utf-8"><title>{html.escape(title)}</title></head><body>',
    ]
    in_list = in_table = False
    for line in markdown.splitlines():
        text = html.escape(line)
        text = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", text)
        text = re.sub(r"(?<!\w)_(.+?)_(?!\w)", r"<em>\1</em>", text)
        if in_list and not line.startswith("- "):
            out.append("</ul>")
            in_list = False
        if in_table and not line.startswith("|"):
            out.append("</table>")
            in_table = False
        if m := re.match(r"(#{1,6}) (.*)", text):
            level = len(m.group(1))
            out.append(f"<h{level}>{m.group(2)}</h{level}>")
        elif line.startswith("- "):
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{text[2:]}</li>")
        elif line.startswith("|"):
            cells = [cell.strip() for cell in text.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            if not in_table:
                out.append("<table>")
                in_table = True
            out.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
        elif line.startswith("&gt; "):
            out.append(f"<blockquote>{text[5:]}</blockquote>")
        elif line.strip():
            out.append(f"<p>{text}</p>")
    if in_list:
        out.append("</ul>")
    if in_table:
        out.append("</table>")
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def filename(incident: Incident, version: int) -> str:
    return f"postmortem-{incident.number}-v{version}.md"


def _due_key(incident: Incident) -> str:
    resolved = incident.resolved_at.isoformat() if incident.resolved_at else ""
    return f"{POSTMORTEM_DUE}:{_id(incident)}:{resolved}"


class Postmortems(Lifecycle):
    """Postmortems, the incident's times and closing (a lifecycle step it guards)."""

    READS: ClassVar[dict[type[c.Command], str]] = {c.Postmortem: "_postmortem"}
    CHANGES: ClassVar[dict[type[c.Command], str]] = {
        c.SetTime: "_set_time",
        c.Close: "_close",
    }

    # --- postmortem -----------------------------------------------------------------------

    async def _postmortem(self, cmd: c.Postmortem, actor: Actor, where: ChannelRef) -> Reply:
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, cmd.incident, where)
            iid = _id(incident)
            rec = Record(incident, await u.timeline(iid), await u.action_items(iid))
        if incident.status is Status.CANCELLED:
            raise ServiceError(f"#{incident.number} is cancelled: it gets no postmortem")
        reply, _ = await self.generate_postmortem(rec, actor)
        return reply

    async def postmortem_for(self, number: int, actor: Actor) -> tuple[Reply, Postmortem]:
        """A new postmortem version of incident `number` (stored, and queued to its channels
        as a file); ServiceError when there is no such incident or it is cancelled."""
        async with self.store.unit() as u:
            incident = await self._resolve_incident(u, number, ChannelRef("cli", ""))
            iid = _id(incident)
            rec = Record(incident, await u.timeline(iid), await u.action_items(iid))
        if incident.status is Status.CANCELLED:
            raise ServiceError(f"#{incident.number} is cancelled: it gets no postmortem")
        return await self.generate_postmortem(rec, actor)

    async def generate_postmortem(self, rec: Record, actor: Actor) -> tuple[Reply, Postmortem]:
        """Write the narrative (the model is asked outside any transaction), then store the
        version with the record as it is then."""
        narrative, model, removed, note = await self.write_postmortem(rec)
        return await self._store_postmortem(rec.incident, narrative, model, removed, note, actor)

    async def write_postmortem(self, rec: Record) -> tuple[list[str], str, int, str]:
        """The document's facts and narrative lines (without the version line filled in yet),
        the model that wrote the narrative ("" for none), how many of its sentences were
        removed, and a note on how the narrative came about."""
        itype = self.catalog.incident_type(rec.incident.type)
        live = [e for e in rec.entries if not e.deleted and e.id is not None]
        sections: dict[str, str] = {}
        model, removed, note = "", 0, ""
        # A type with AI off (security by default) never has its timeline sent to a model.
        if live and (itype is None or itype.ai):
            prompt = self._narrative_prompt(rec, live)
            written = await self.summarizer.write(system=NARRATIVE_SYSTEM, prompt=prompt)
            if written.text is not None:
                valid = {e.id for e in live if e.id is not None}
                text, removed = strict_citations(written.text, valid)
                sections = split_narrative(text)
                model = written.model
                note = f"Narrative written by {model}; every sentence cites the timeline."
                if removed:
                    note += (
                        f" {removed} sentence{'s' if removed != 1 else ''} citing no entry, or "
                        "one that does not exist, removed."
                    )
            elif written.model:  # a model is configured but failed: say so in the document
                note = f"No narrative: {written.note}. Fill in the sections below."
        return narrative_markdown(sections, note), model, removed, note

    def _narrative_prompt(self, rec: Record, live: Sequence[TimelineEntry]) -> str:
        inc = rec.incident
        d = durations(inc)
        facts = [
            f"Incident #{inc.number}: {inc.title}",
            f"Type {inc.type}, severity {inc.severity.upper()}, status {inc.status.value}.",
            f"Summary: {inc.summary}",
            f"Time to acknowledge {_dur(d.to_acknowledge)}, to mitigate {_dur(d.to_mitigate)}, "
            f"to resolve {_dur(d.to_resolve)}.",
        ]
        for a in rec.actions:
            facts.append(f"Action item {a.number} ({a.status.value}): {a.text}")
        return "\n".join(facts) + "\n\n" + catchup_prompt(live, tz=self.catalog.tz)

    async def _store_postmortem(
        self,
        incident: Incident,
        narrative: list[str],
        model: str,
        removed: int,
        note: str,
        actor: Actor,
    ) -> tuple[Reply, Postmortem]:
        now = self.clock.now()
        async with self.store.unit() as u:
            inc = await u.incident(incident.number)
            assert inc is not None
            rec = Record(inc, await u.timeline(_id(inc)), await u.action_items(_id(inc)))
            version = len(await u.postmortems(_id(inc))) + 1
            lines = facts_markdown(rec, tz=self.catalog.tz, version=version, generated=now)
            markdown = "\n".join(lines + narrative).rstrip() + "\n"
            draft = inc.status.is_open
            doc = Postmortem(
                incident_id=_id(inc),
                version=version,
                markdown=markdown,
                draft=draft,
                model=model,
                removed_citations=removed,
                created_by=actor.ref,
                created_at=now,
            )
            await u.add(doc)
            name = filename(inc, version)
            text = f"Postmortem v{version}{' (draft)' if draft else ''} of #{inc.number}: {name}"
            entry = TimelineEntry(
                incident_id=_id(inc),
                kind=EntryKind.SYSTEM,
                text=text,
                author_id=actor.user_id,
                author_name=actor.name,
                source=actor.platform,
                data={"postmortem": doc.id, "version": version, "filename": name},
                occurred_at=now,
                created_at=now,
            )
            await u.append(entry)
            links = [
                link
                for link in await u.links(_id(inc))
                if link.state not in (LinkState.FAILED, LinkState.ARCHIVED)
            ]
            upload = DeliveryAction.UPLOAD_FILE
            await u.queue([_delivery(link, upload, now, entry) for link in links])
            await u.cancel_jobs(now=now, key=_due_key(inc))
        self._notify()
        where_to = "posted to its channel as a file" if links else "stored (it has no channel)"
        extra = f" {note}" if note and (removed or not model) else ""
        return Reply(
            f"Postmortem v{version}{' (draft: not resolved yet)' if draft else ''} of "
            f"#{inc.number} {where_to}: {name}.{extra}",
            incident=inc.number,
        ), doc

    # --- times ----------------------------------------------------------------------------

    async def _set_time(self, u: Unit, inc: Incident, cmd: c.SetTime, actor: Actor) -> Reply:
        attr = FIELDS[cmd.which]
        old: datetime | None = getattr(inc, attr)
        if old is None:
            raise ServiceError(
                f"#{inc.number} has no {cmd.which} time yet (it is {inc.status.value}): the "
                f"transition sets it, then /incident time corrects it"
            )
        now, tz = self.clock.now(), self.catalog.tz
        try:
            when = parse_past(cmd.when, now, tz)
            check_order(inc, cmd.which, when)
        except WhenError as exc:
            raise ServiceError(str(exc)) from None
        if when == old:
            raise ServiceError(f"#{inc.number} {cmd.which} is already {_when(old, tz)}")
        setattr(inc, attr, when)
        label = cmd.which.replace("_", " ")
        await self._record(
            u,
            inc,
            kind=EntryKind.FIELD_CHANGE,
            actor=actor,
            text=f"{label.capitalize()} time corrected from {_when(old, tz)} to {_when(when, tz)}",
            data={"field": f"time:{cmd.which}", "from": old.isoformat(), "to": when.isoformat()},
        )
        return Reply(f"#{inc.number} {label} is now {_when(when, tz)}.", incident=inc.number)

    # --- closing --------------------------------------------------------------------------

    async def _set_status(self, u: Unit, inc: Incident, cmd: c.SetStatus, actor: Actor) -> Reply:
        if cmd.status == Status.CLOSED.value and inc.status is not Status.CANCELLED:
            return await self._close(u, inc, c.Close(), actor)
        return await super()._set_status(u, inc, cmd, actor)

    async def _close(self, u: Unit, inc: Incident, cmd: c.Close, actor: Actor) -> Reply:
        if inc.status is Status.CANCELLED:
            raise ServiceError(f"#{inc.number} is cancelled: reopen it before closing it")
        if inc.status is Status.CLOSED:
            raise ServiceError(f"#{inc.number} is already closed")
        self._check_required(inc, "closed")
        severity = next((s for s in self.catalog.severities if s.name == inc.severity), None)
        problems: list[str] = []
        if severity is None or severity.close_requires_postmortem:
            still_open = [
                str(a.number)
                for a in await u.action_items(_id(inc))
                if a.status is ActionStatus.OPEN
            ]
            if still_open:
                problems.append(
                    f"action item{'s' if len(still_open) > 1 else ''} {', '.join(still_open)} "
                    "still open (/incident action done <n> or action cancel <n>)"
                )
            if not await u.postmortems(_id(inc)):
                problems.append("no postmortem yet (/incident postmortem)")
        note = ""
        if problems:
            if cmd.force_reason is None:
                raise ServiceError(
                    f"#{inc.number} cannot be closed yet: {'; '.join(problems)}. The commander "
                    f"or declarer may close it anyway: /incident close force <reason>"
                )
            me = c.person_key(actor.ref)
            allowed = {c.person_key(p) for p in (inc.commander, inc.declared_by) if p}
            if me not in allowed:
                raise ServiceError(
                    f"Only the commander ({inc.commander or 'nobody now'}) or the declarer "
                    f"({inc.declared_by}) may force-close #{inc.number}."
                )
            note = f"forced: {cmd.force_reason} (despite: {'; '.join(problems)})"
        elif cmd.force_reason:
            note = cmd.force_reason
        return await self._move(u, inc, Status.CLOSED, actor, note=note)

    async def _move(
        self, u: Unit, inc: Incident, new: Status, actor: Actor, note: str = "", after: str = ""
    ) -> Reply:
        reply = await super()._move(u, inc, new, actor, note=note, after=after)
        due = self.catalog.postmortem_due
        if new is Status.RESOLVED and due is not None and inc.resolved_at is not None:
            # After a reopen, the reminder counts from the last resolve.
            await u.cancel_jobs(
                now=self.clock.now(), incident_id=_id(inc), prefix=f"{POSTMORTEM_DUE}:{_id(inc)}:"
            )
            await u.schedule(
                new_job(
                    POSTMORTEM_DUE,
                    _due_key(inc),
                    inc.resolved_at + parse_duration(due),
                    now=self.clock.now(),
                    incident_id=_id(inc),
                )
            )
        return reply


@handler(POSTMORTEM_DUE)
async def postmortem_due(ctx: JobContext) -> None:
    """Remind the commander of a resolved incident that still has no postmortem."""
    incident = ctx.incident
    if incident is None or incident.status is not Status.RESOLVED or incident.resolved_at is None:
        return  # reopened, closed or cancelled since: nothing is due
    if await ctx.u.postmortems(_id(incident)):
        return
    key = _due_key(incident)
    if await ctx.u.entry_by_external(SYSTEM.platform, key):
        return
    ago = format_duration(ctx.now - incident.resolved_at)
    who = incident.commander or incident.declared_by
    late = f" ({ctx.late_note})" if ctx.late_note else ""
    await ctx.record(
        ctx.u,
        incident,
        kind=EntryKind.REMINDER,
        actor=SYSTEM,
        text=(
            f"{who}: #{incident.number} was resolved {ago} ago and has no postmortem yet: "
            f"/incident postmortem{late}"
        ),
        external_id=key,
        data={"reminder": POSTMORTEM_DUE},
    )


__all__ = ["POSTMORTEM_DUE", "Postmortems", "Record", "facts_markdown", "to_html"]
