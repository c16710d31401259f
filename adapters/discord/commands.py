"""`/incident` as a Discord app-command group with typed options, and "Add to timeline".

Each subcommand builds the same command the shared parser (`bot.commands.parse`) builds from
the text grammar, either as the dataclass itself or by writing its options out as the text the
parser reads, so a command means the same on every platform; names the catalog defines
(statuses, severities, priorities, roles) are offered as choices, and values are still checked
by the service, which names a bad one in its ephemeral answer.

Discord allows 25 subcommands and groups in a command, 25 subcommands in a group, and groups one
level deep, so the tree is not the flat grammar: the words that change one field of the incident
sit under `set`, the role commands under `role` (`DISCORD_PATHS` maps each grammar word to its
place). The text grammar is unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import discord
from discord import app_commands
from discord.app_commands import Choice

from bot import commands as c
from bot.oncall_commands import parse_oncall

if TYPE_CHECKING:
    from adapters.discord.app import DiscordEdge

F = TypeVar("F", bound=Callable[..., Any])

INCIDENT_HELP = "Incident number (implied in its channel)"
MAX_CHOICES = 25

# Where each command word of the text grammar lives under /incident on Discord. Top level: the
# commands people run most and the lifecycle, 18 subcommands and 5 groups (23 of Discord's 25);
# the groups are `set` (8 of 25), `role`, `action`, `runbook` (8 of 25) and `alerts` (show,
# triage, declare, attach, ignore: the words after `/incident alerts` in the text grammar).
DISCORD_PATHS: dict[str, tuple[str, ...]] = {
    "declare": ("declare",),
    "list": ("list",),
    "show": ("show",),
    "help": ("help",),
    "ack": ("ack",),
    "update": ("update",),
    "event": ("event",),
    "note": ("note",),
    "timeline": ("timeline",),
    "catchup": ("catchup",),
    "reminders": ("reminders",),
    "alerts": ("alerts", "show"),
    "resolve": ("resolve",),
    "reopen": ("reopen",),
    "cancel": ("cancel",),
    "page": ("page",),
    "postmortem": ("postmortem",),
    "close": ("close",),
    "mirror": ("mirror",),
    "status": ("set", "status"),
    "severity": ("set", "severity"),
    "priority": ("set", "priority"),
    "title": ("set", "title"),
    "summary": ("set", "summary"),
    "type": ("set", "type"),
    "set": ("set", "field"),
    "time": ("set", "time"),
    "assign": ("role", "assign"),
    "unassign": ("role", "unassign"),
    "action": ("action",),
    "runbook": ("runbook",),
}


def discord_help_note(topic: str | None) -> str:
    """Where a grammar word is on Discord when its place differs from the text grammar's."""
    if topic is not None:
        path = DISCORD_PATHS.get(topic, (topic,))
        return f"On Discord: /incident {' '.join(path)}" if path != (topic,) else ""
    moved: dict[str, list[str]] = {}
    for path in DISCORD_PATHS.values():
        if len(path) == 2:
            moved.setdefault(path[0], []).append(path[1])
    return "On Discord: " + "; ".join(
        f"/incident {group} {'|'.join(words)}" for group, words in moved.items()) + "."


def _choices(names: list[str], upper: bool = False) -> list[Choice[str]]:
    return [Choice(name=n.upper() if upper else n, value=n) for n in names[:MAX_CHOICES]]


def _due(text: str | None) -> c.DueSpec | None:
    """A due date as the grammar takes it; a bad one is a usage error naming it."""
    if not text:
        return None
    try:
        c.read_due(text)  # its form only: the service resolves it on its own clock
    except ValueError as exc:
        raise c.UsageError(str(exc)) from None
    return c.DueSpec(text)


def _mention(member: discord.abc.User | None) -> str | None:
    return f"<@{member.id}>" if member is not None else None


class OpsroomTree(app_commands.CommandTree[Any]):
    """The command tree; an error that escapes a command is answered, ephemeral."""

    def __init__(self, client: discord.Client, edge: DiscordEdge) -> None:
        super().__init__(client)
        self.edge = edge

    async def on_error(self, interaction: discord.Interaction[Any],
                       error: app_commands.AppCommandError, /) -> None:
        await self.edge.failed(interaction, error)


def build_tree(edge: DiscordEdge) -> OpsroomTree:
    tree = OpsroomTree(edge.client, edge)
    tree.add_command(incident_group(edge))
    tree.add_command(oncall_group(edge))

    @app_commands.guild_only()
    async def add_to_timeline(interaction: discord.Interaction, message: discord.Message) -> None:
        await edge.add_to_timeline(interaction, message)

    tree.add_command(app_commands.ContextMenu(name="Add to timeline", callback=add_to_timeline))
    return tree


def incident_group(edge: DiscordEdge) -> app_commands.Group:
    catalog = edge.catalog
    group = app_commands.Group(name="incident", description="Run incidents with Opsroom",
                               guild_only=True)
    set_ = app_commands.Group(name="set", description="Change the status, severity, title, "
                              "type or a field", parent=group)
    role = app_commands.Group(name="role", description="Give or take a role (commander, "
                              "scribe...)", parent=group)
    action = app_commands.Group(name="action", description="Action items of an incident",
                                parent=group)
    runbook = app_commands.Group(name="runbook", description="Runbooks of an incident",
                                 parent=group)
    alerts = app_commands.Group(name="alerts", description="Monitoring alerts and triage",
                                parent=group)
    run = edge.run

    def on_incident(fn: F) -> F:
        """The optional `incident` option every command that acts on one incident takes."""
        fn = app_commands.describe(incident=INCIDENT_HELP)(fn)
        return app_commands.autocomplete(incident=edge.complete_incident)(fn)

    async def run_text(interaction: discord.Interaction, text: str,
                       incident: int | None) -> None:
        """Run what `/incident [#<incident>] <text>` means in the text grammar."""
        prefix = f"#{incident} " if incident is not None else ""
        await run(interaction, c.parse(prefix + text))

    @group.command(name="declare", description="Declare an incident: review suggested fields, "
                   "then Create")
    @app_commands.describe(description="What is happening?",
                           type="Incident type (suggested from the description when left out)")
    @app_commands.autocomplete(type=edge.complete_type)
    async def declare(interaction: discord.Interaction, description: str,
                      type: str | None = None) -> None:
        await edge.quick_start(interaction, description, type)

    @group.command(name="list", description="List open (or all) incidents")
    @app_commands.choices(scope=_choices(["open", "all"]))
    async def list_(interaction: discord.Interaction, scope: str | None = None) -> None:
        await run(interaction, c.ListIncidents(include_closed=scope == "all"))

    @group.command(name="show", description="Show an incident's summary")
    @on_incident
    async def show(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.Show(incident=incident))

    async def complete_help(interaction: discord.Interaction,
                            current: str) -> list[Choice[str]]:
        wanted = current.strip().lower()
        return [Choice(name=n, value=n) for n in c.USAGE if wanted in n][:MAX_CHOICES]

    # Autocomplete, not choices: the grammar has more words than an option has choices.
    @group.command(name="help", description="How to use /incident")
    @app_commands.describe(command="A command to explain")
    @app_commands.autocomplete(command=complete_help)
    async def help_(interaction: discord.Interaction, command: str | None = None) -> None:
        parsed = c.parse(f"help {command or ''}")
        topic = parsed.topic if isinstance(parsed, c.Help) else None
        await run(interaction, parsed, note=discord_help_note(topic))

    @group.command(name="ack", description="Acknowledge the incident: it is yours to run")
    @on_incident
    async def ack(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.Acknowledge(incident=incident))

    def text_command(parent: app_commands.Group, name: str, description: str,
                     make: Callable[[str, int | None], c.Command],
                     required: bool = True) -> None:
        if required:
            async def with_text(interaction: discord.Interaction, text: str,
                                incident: int | None = None) -> None:
                await run(interaction, make(text, incident))
        else:
            async def with_text(interaction: discord.Interaction, text: str = "",  # type: ignore[misc]
                                incident: int | None = None) -> None:
                await run(interaction, make(text, incident))
        with_text = app_commands.describe(text=description)(with_text)
        parent.add_command(app_commands.Command(name=name, description=description,
                                                callback=on_incident(with_text)))

    text_command(group, "update", "Post a status update to stakeholders",
                 lambda t, n: c.StatusUpdate(text=t, incident=n))
    text_command(group, "event", "Add a key event",
                 lambda t, n: c.AddKeyEvent(text=t, incident=n))
    text_command(group, "note", "Add a note to the timeline",
                 lambda t, n: c.AddNote(text=t, incident=n))

    @group.command(name="timeline", description="Show the timeline (or only key events)")
    @app_commands.describe(key="Only key events")
    @on_incident
    async def timeline(interaction: discord.Interaction, key: bool = False,
                       incident: int | None = None) -> None:
        await run(interaction, c.ShowTimeline(key_only=key, incident=incident))

    @group.command(name="catchup", description="A summary of the timeline so far")
    @on_incident
    async def catchup(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.CatchUp(incident=incident))

    @group.command(name="reminders", description="What is scheduled: update, ack and action "
                   "item reminders")
    @on_incident
    async def reminders(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.ShowReminders(incident=incident))


    text_command(group, "resolve", "Resolve the incident (with a closing note)",
                 lambda t, n: c.Resolve(text=t, incident=n), required=False)
    text_command(group, "reopen", "Reopen a resolved or cancelled incident",
                 lambda t, n: c.Reopen(text=t, incident=n), required=False)

    @group.command(name="cancel", description="Cancel an incident declared by mistake")
    @app_commands.describe(reason="Why it is not an incident")
    @on_incident
    async def cancel(interaction: discord.Interaction, reason: str,
                     incident: int | None = None) -> None:
        await run_text(interaction, f"cancel {reason}", incident)

    @group.command(name="page", description="Page an escalation policy or a person")
    @app_commands.describe(policy="Escalation policy", person="Person to page",
                           message="What the people paged read")
    @on_incident
    async def page(interaction: discord.Interaction, policy: str | None = None,
                   person: discord.Member | None = None, message: str | None = None,
                   incident: int | None = None) -> None:
        target = _mention(person) or policy
        if not target:
            raise c.UsageError(f"name a policy or a person. Usage: {c.USAGE['page']}")
        await run(interaction, c.Page(target=target if person else target.lower(),
                                      message=(message or "").strip(), incident=incident))

    @group.command(name="postmortem", description="Write a new postmortem version (a file)")
    @on_incident
    async def postmortem(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.Postmortem(incident=incident))

    @group.command(name="close", description="Close a resolved incident")
    @app_commands.describe(force="Close anyway (commander or declarer): why")
    @on_incident
    async def close(interaction: discord.Interaction, force: str | None = None,
                    incident: int | None = None) -> None:
        await run_text(interaction, f"close force {force}" if force else "close", incident)

    @group.command(name="mirror", description="Give the incident a channel on another platform")
    @app_commands.choices(platform=[Choice(name="slack", value="slack"),
                                    Choice(name="discord", value="discord")])
    @on_incident
    async def mirror(interaction: discord.Interaction, platform: str,
                     incident: int | None = None) -> None:
        await run(interaction, c.MirrorTo(platform=platform, incident=incident))

    # --- alerts: an incident's, and the triage decisions ----------------------------------

    @alerts.command(name="show", description="The monitoring alerts of the incident")
    @on_incident
    async def alerts_show(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.ShowAlerts(incident=incident))

    @alerts.command(name="triage", description="Alerts waiting for triage")
    async def alerts_triage(interaction: discord.Interaction) -> None:
        await run(interaction, c.ShowTriage())

    @alerts.command(name="declare", description="Declare an incident from an alert")
    @app_commands.describe(alert="Alert number")
    async def alerts_declare(interaction: discord.Interaction,
                             alert: app_commands.Range[int, 1, c.MAX_NUMBER]) -> None:
        await run(interaction, c.AlertDeclare(alert=alert))

    @alerts.command(name="attach", description="Add an alert to an incident")
    @app_commands.describe(alert="Alert number")
    @on_incident
    async def alerts_attach(interaction: discord.Interaction,
                            alert: app_commands.Range[int, 1, c.MAX_NUMBER],
                            incident: int | None = None) -> None:
        await run(interaction, c.AlertAttach(alert=alert, incident=incident))

    @alerts.command(name="ignore", description="Ignore an alert")
    @app_commands.describe(alert="Alert number")
    async def alerts_ignore(interaction: discord.Interaction,
                            alert: app_commands.Range[int, 1, c.MAX_NUMBER]) -> None:
        await run(interaction, c.AlertIgnore(alert=alert))

    # --- set: one field of the incident -------------------------------------------------

    @set_.command(name="status", description="Change the status")
    @app_commands.choices(status=_choices(catalog.status_names))
    @on_incident
    async def status(interaction: discord.Interaction, status: str,
                     incident: int | None = None) -> None:
        await run(interaction, c.SetStatus(status=status, incident=incident))

    @set_.command(name="severity", description="Change the severity")
    @app_commands.choices(severity=_choices(catalog.severity_names, upper=True))
    @on_incident
    async def severity(interaction: discord.Interaction, severity: str,
                       incident: int | None = None) -> None:
        await run(interaction, c.SetSeverity(severity=severity, incident=incident))

    @set_.command(name="priority", description="Change the priority")
    @app_commands.choices(priority=_choices(catalog.priority_names, upper=True))
    @on_incident
    async def priority(interaction: discord.Interaction, priority: str,
                       incident: int | None = None) -> None:
        await run(interaction, c.SetPriority(priority=priority, incident=incident))

    text_command(set_, "title", "Change the title", lambda t, n: c.SetTitle(title=t, incident=n))
    text_command(set_, "summary", "Change the summary",
                 lambda t, n: c.SetSummary(summary=t, incident=n))

    @set_.command(name="type", description="Change the incident type (fields are checked again)")
    @app_commands.describe(type="The new incident type")
    @app_commands.autocomplete(type=edge.complete_type)
    @on_incident
    async def type_(interaction: discord.Interaction, type: str,
                    incident: int | None = None) -> None:
        await run_text(interaction, f"type {type}", incident)

    @set_.command(name="time", description="Correct one of the incident's times")
    @app_commands.choices(which=_choices(list(c.TIME_NAMES)))
    @app_commands.describe(which="Which time", when="When: 14:05, yesterday 9am, 20m ago...")
    @on_incident
    async def time_(interaction: discord.Interaction, which: str, when: str,
                    incident: int | None = None) -> None:
        await run(interaction, c.SetTime(which=which, when=when, incident=incident))

    @set_.command(name="field", description="Set a custom field of the incident's type")
    @app_commands.describe(field="Custom field", value="Its new value")
    @app_commands.autocomplete(field=edge.complete_field, value=edge.complete_value)
    @on_incident
    async def field(interaction: discord.Interaction, field: str, value: str,
                    incident: int | None = None) -> None:
        await run(interaction, c.SetField(field=field.lower(), value=value, incident=incident))

    # --- roles --------------------------------------------------------------------------

    @role.command(name="assign", description="Give someone a role (commander, scribe...)")
    @app_commands.choices(role=_choices(catalog.role_names))
    @app_commands.describe(person="Who takes the role")
    @on_incident
    async def assign(interaction: discord.Interaction, role: str, person: discord.Member,
                     incident: int | None = None) -> None:
        await run(interaction, c.AssignRole(role=role, user=f"<@{person.id}>", incident=incident))

    @role.command(name="unassign", description="Leave a role empty again")
    @app_commands.choices(role=_choices(catalog.role_names))
    @on_incident
    async def unassign(interaction: discord.Interaction, role: str,
                       incident: int | None = None) -> None:
        await run_text(interaction, f"unassign {role}", incident)

    # --- action items -------------------------------------------------------------------

    @action.command(name="add", description="Add an action item")
    @app_commands.describe(text="What needs doing", assignee="Who does it",
                           due="When: 2026-12-01, tomorrow, friday, in 3h...")
    @on_incident
    async def action_add(interaction: discord.Interaction, text: str,
                         assignee: discord.Member | None = None, due: str | None = None,
                         incident: int | None = None) -> None:
        await run(interaction, c.ActionAdd(text=text, assignee=_mention(assignee), due=_due(due),
                                           incident=incident))

    @action.command(name="list", description="List the action items")
    @on_incident
    async def action_list(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.ActionList(incident=incident))

    @action.command(name="done", description="Mark an action item done")
    @app_commands.describe(number="Action item number")
    @on_incident
    async def action_done(interaction: discord.Interaction,
                          number: app_commands.Range[int, 1, None],
                          incident: int | None = None) -> None:
        await run(interaction, c.ActionDone(number=number, incident=incident))

    @action.command(name="edit", description="Change an action item's text, assignee or due date")
    @app_commands.describe(number="Action item number", text="New text", assignee="New assignee",
                           due="New due date")
    @on_incident
    async def action_edit(interaction: discord.Interaction,
                          number: app_commands.Range[int, 1, None], text: str | None = None,
                          assignee: discord.Member | None = None, due: str | None = None,
                          incident: int | None = None) -> None:
        if not (text or assignee or due):
            raise c.UsageError(f"nothing to change. Usage: {c.USAGE['action']}")
        await run(interaction, c.ActionEdit(number=number, text=text, assignee=_mention(assignee),
                                            due=_due(due), incident=incident))

    @action.command(name="reopen", description="Open a done or cancelled action item again")
    @app_commands.describe(number="Action item number")
    @on_incident
    async def action_reopen(interaction: discord.Interaction,
                            number: app_commands.Range[int, 1, None],
                            incident: int | None = None) -> None:
        await run_text(interaction, f"action reopen {number}", incident)

    @action.command(name="cancel", description="Cancel an action item that is no longer needed")
    @app_commands.describe(number="Action item number")
    @on_incident
    async def action_cancel(interaction: discord.Interaction,
                            number: app_commands.Range[int, 1, None],
                            incident: int | None = None) -> None:
        await run_text(interaction, f"action cancel {number}", incident)

    # --- runbooks -----------------------------------------------------------------------

    @runbook.command(name="list", description="List the runbooks of the incident's type")
    @on_incident
    async def runbook_list(interaction: discord.Interaction, incident: int | None = None) -> None:
        await run(interaction, c.RunbookList(incident=incident))

    @runbook.command(name="run", description="Run a runbook")
    @on_incident
    async def runbook_run(interaction: discord.Interaction, name: str,
                          incident: int | None = None) -> None:
        await run(interaction, c.RunbookRun(name=name.lower(), incident=incident))

    @runbook.command(name="status", description="Where the running runbook is")
    @on_incident
    async def runbook_status(interaction: discord.Interaction,
                             incident: int | None = None) -> None:
        await run(interaction, c.RunbookStatus(incident=incident))

    @runbook.command(name="cancel", description="Cancel a run")
    @on_incident
    async def runbook_cancel(interaction: discord.Interaction, number: int | None = None,
                             incident: int | None = None) -> None:
        await run(interaction, c.RunbookCancel(run=number, incident=incident))

    @runbook.command(name="retry", description="Retry a failed run")
    @on_incident
    async def runbook_retry(interaction: discord.Interaction, number: int | None = None,
                            incident: int | None = None) -> None:
        await run(interaction, c.RunbookRetry(run=number, incident=incident))

    @runbook.command(name="check", description="Tick a checklist item")
    @on_incident
    async def runbook_check(interaction: discord.Interaction, item: int,
                            number: int | None = None, incident: int | None = None) -> None:
        await run(interaction, c.RunbookCheck(item=item, run=number, incident=incident))

    @runbook.command(name="skip", description="Skip a checklist item")
    @on_incident
    async def runbook_skip(interaction: discord.Interaction, item: int,
                           number: int | None = None, incident: int | None = None) -> None:
        await run(interaction, c.RunbookCheck(item=item, run=number, skip=True,
                                              incident=incident))

    @runbook.command(name="approve", description="Approve a waiting step")
    @on_incident
    async def runbook_approve(interaction: discord.Interaction, number: int | None = None,
                              incident: int | None = None) -> None:
        await run(interaction, c.RunbookApprove(run=number, incident=incident))

    return group


def oncall_group(edge: DiscordEdge) -> app_commands.Group:
    """`/oncall` beside `/incident`: each subcommand writes its options out as the text grammar
    (bot/oncall_commands.py) reads them, so it means the same as on Slack and the console."""
    group = app_commands.Group(name="oncall", description="Who is on call, schedules, overrides",
                               guild_only=True)
    schedules = _choices(edge.catalog.schedule_names)

    async def run_text(interaction: discord.Interaction, *words: str | None) -> None:
        await edge.run(interaction, parse_oncall(" ".join(w for w in words if w)))

    def on_schedule(fn: F) -> F:
        fn = app_commands.describe(schedule="On-call schedule")(fn)
        return app_commands.choices(schedule=schedules)(fn) if schedules else fn

    @group.command(name="who", description="Who is on call now, and until when")
    @on_schedule
    async def who(interaction: discord.Interaction, schedule: str | None = None) -> None:
        await run_text(interaction, "who", schedule)

    @group.command(name="schedule", description="The next shifts of a schedule")
    @on_schedule
    @app_commands.describe(days="How many days ahead (7 unless given)")
    async def schedule_(interaction: discord.Interaction, schedule: str,
                        days: app_commands.Range[int, 1, 90] | None = None) -> None:
        await run_text(interaction, "schedule", schedule, str(days) if days else None)

    @group.command(name="override", description="Put someone on call for a while")
    @on_schedule
    @app_commands.describe(person="Who is on call instead", length="How long, e.g. 4h (from now "
                           "or from `start`)", start="From when (now unless given)",
                           end="Until when (instead of a length)")
    async def override(interaction: discord.Interaction, schedule: str, person: discord.User,
                       length: str | None = None, start: str | None = None,
                       end: str | None = None) -> None:
        mention = _mention(person)
        if end:
            await run_text(interaction, "override", schedule, mention, start or "now", "to", end)
        elif length:
            await run_text(interaction, "override", schedule, mention, start, "for", length)
        else:
            raise c.UsageError("give the override a length (for example 4h) or an end")

    @group.command(name="overrides", description="Overrides now and ahead")
    @on_schedule
    async def overrides(interaction: discord.Interaction, schedule: str | None = None) -> None:
        await run_text(interaction, "overrides", schedule)

    @group.command(name="remove-override", description="Remove an override by its id")
    async def remove_override(interaction: discord.Interaction,
                              id: app_commands.Range[int, 1, 999_999_999]) -> None:
        await run_text(interaction, "remove-override", str(id))

    return group
