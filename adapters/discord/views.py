"""Discord components: the incident buttons, the Quick Start review, and the modals."""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import discord

from adapters.discord.embeds import BUTTON_TEMPLATE, EMBED_COLOR, clip, custom_id
from bot.catalog import Catalog, FieldKind
from bot.ports import Actor, ChannelRef, Suggestion

if TYPE_CHECKING:
    from adapters.discord.app import DiscordEdge

REVIEW_TIMEOUT = 15 * 60.0  # as long as Discord keeps an ephemeral message's components useful
MODAL_COMPONENTS = 5  # Discord allows five top-level components in a modal
TEXT_INPUT_LIMIT = 4000
LABEL_LIMIT = 45
OPTION_LIMIT = 100


def edge_of(interaction: discord.Interaction[Any]) -> DiscordEdge:
    edge: DiscordEdge = interaction.client.edge  # type: ignore[attr-defined]
    return edge


class IncidentButton(discord.ui.DynamicItem[discord.ui.Button[Any]], template=BUTTON_TEMPLATE):
    """`opsroom:<action>:<value>` on any channel message, answered from the custom id alone."""

    def __init__(self, action: str, value: str) -> None:
        super().__init__(discord.ui.Button(custom_id=custom_id(action, value), label=action))
        self.action, self.value = action, value

    @classmethod
    async def from_custom_id(cls, interaction: discord.Interaction[Any],
                             item: discord.ui.Item[Any], match: re.Match[str], /) -> IncidentButton:
        return cls(match["action"], match["value"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        await edge_of(interaction).on_button(interaction, self.action, self.value)


# --- Quick Start ---------------------------------------------------------------------------


@dataclass
class Draft:
    """An incident being reviewed before it is declared."""

    description: str
    title: str
    type: str
    severity: str
    priority: str
    summary: str
    actor: Actor
    where: ChannelRef
    custom_fields: dict[str, Any] = field(default_factory=dict)
    suggested_by: str = "the built-in heuristic"
    note: str = ""
    suggestion: Suggestion | None = None  # where the values came from (kept with the incident)
    declared: int | None = None  # the incident number once Create worked

    @classmethod
    def from_suggestion(cls, s: Suggestion, *, description: str, actor: Actor,
                        where: ChannelRef) -> Draft:
        by_model = any(v == "model" for v in s.sources.values())
        return cls(description=description, title=s.title, type=s.type, severity=s.severity,
                   priority=s.priority, summary=s.summary, actor=actor, where=where,
                   custom_fields=dict(s.custom_fields), note=s.note, suggestion=s,
                   suggested_by="the AI model" if by_model else "the built-in heuristic")


def draft_embed(draft: Draft, catalog: Catalog) -> discord.Embed:
    """The suggested fields, as the person reviews them."""
    embed = discord.Embed(title=clip(f"Declare: {draft.title}", 256),
                          description=clip(draft.description, 4096), color=EMBED_COLOR)
    embed.add_field(name="Type", value=draft.type)
    embed.add_field(name="Severity", value=draft.severity.upper())
    embed.add_field(name="Priority", value=draft.priority.upper())
    embed.add_field(name="Commander", value=draft.actor.ref)
    itype = catalog.incident_type(draft.type)
    for f in itype.fields if itype else []:
        value = draft.custom_fields.get(f.name)
        shown = ", ".join(value) if isinstance(value, list) else str(value)
        shown = "" if value is None else shown
        embed.add_field(name=clip(f.display, 256), value=clip(shown or "-", 1024))
    note = f" {draft.note}" if draft.note else ""
    embed.set_footer(text=clip(f"✨ Fields suggested by {draft.suggested_by}.{note} "
                               "Create declares it; Edit changes the fields.", 2048))
    return embed


class QuickStart(discord.ui.View):
    """Create / Edit / Cancel under the suggested fields (an ephemeral message)."""

    def __init__(self, edge: DiscordEdge, draft: Draft) -> None:
        super().__init__(timeout=REVIEW_TIMEOUT)
        self.edge, self.draft = edge, draft
        self.nonce = secrets.token_hex(6)
        for label, action, style in (("Create", "create", discord.ButtonStyle.primary),
                                     ("Edit", "edit", discord.ButtonStyle.secondary),
                                     ("Cancel", "cancel", discord.ButtonStyle.danger)):
            button: discord.ui.Button[QuickStart] = discord.ui.Button(
                label=label, style=style, custom_id=f"opsroom:qs:{action}:{self.nonce}")
            button.callback = getattr(self, f"on_{action}")
            self.add_item(button)

    async def on_create(self, interaction: discord.Interaction[Any]) -> None:
        await self.edge.create_from_draft(interaction, self)

    async def on_edit(self, interaction: discord.Interaction[Any]) -> None:
        async with self.edge.busy():
            await interaction.response.send_modal(DraftModal(self))

    async def on_cancel(self, interaction: discord.Interaction[Any]) -> None:
        async with self.edge.busy():
            self.stop()
            await interaction.response.edit_message(
                content="Cancelled: nothing was declared.", embed=None, view=None)


class DraftModal(discord.ui.Modal):
    """Edit the suggestion: title, description, severity, priority and the type's text fields
    (as many as fit in Discord's five modal components), each pre-filled."""

    def __init__(self, review: QuickStart) -> None:
        super().__init__(title="Declare incident", timeout=REVIEW_TIMEOUT,
                         custom_id=f"opsroom:qs:modal:{review.nonce}:{secrets.token_hex(3)}")
        self.review = review
        draft, catalog = review.draft, review.edge.catalog
        self.title_input: discord.ui.TextInput[DraftModal] = discord.ui.TextInput(
            label="Title", custom_id="title", default=clip(draft.title, 150), max_length=150)
        self.description_input: discord.ui.TextInput[DraftModal] = discord.ui.TextInput(
            label="What is happening?", custom_id="description", style=discord.TextStyle.long,
            default=clip(draft.description, TEXT_INPUT_LIMIT), max_length=TEXT_INPUT_LIMIT)
        self.severity: discord.ui.Select[DraftModal] = discord.ui.Select(
            custom_id="severity", options=[
                discord.SelectOption(label=clip(f"{s.name.upper()}: {s.description}", OPTION_LIMIT),
                                     value=s.name, default=s.name == draft.severity)
                for s in catalog.severities[:25]])
        self.priority: discord.ui.Select[DraftModal] = discord.ui.Select(
            custom_id="priority", options=[
                discord.SelectOption(label=clip(f"{p.name.upper()}: {p.description}", OPTION_LIMIT),
                                     value=p.name, default=p.name == draft.priority)
                for p in catalog.priorities[:25]])
        self.add_item(self.title_input)
        self.add_item(self.description_input)
        self.add_item(discord.ui.Label(text="Severity", component=self.severity))
        self.add_item(discord.ui.Label(text="Priority", component=self.priority))
        self.fields: dict[str, discord.ui.TextInput[DraftModal]] = {}
        itype = catalog.incident_type(draft.type)
        text_fields = [f for f in (itype.fields if itype else []) if f.kind is FieldKind.TEXT]
        for f in text_fields[: MODAL_COMPONENTS - 4]:
            value = draft.custom_fields.get(f.name)
            text_input: discord.ui.TextInput[DraftModal] = discord.ui.TextInput(
                label=clip(f.display, LABEL_LIMIT), custom_id=f"cf:{f.name}", required=f.required,
                default=clip(str(value), TEXT_INPUT_LIMIT) if value else None,
                placeholder=clip(f.description, OPTION_LIMIT) or None,
                max_length=TEXT_INPUT_LIMIT)
            self.fields[f.name] = text_input
            self.add_item(text_input)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        edge = self.review.edge
        async with edge.busy():
            draft = self.review.draft
            title = self.title_input.value.strip()
            if not title:
                await interaction.response.send_message("Give the incident a short title; "
                                                        "nothing was changed.", ephemeral=True)
                return
            before = (draft.title, draft.severity, draft.priority, dict(draft.custom_fields))
            draft.title = title
            draft.description = self.description_input.value.strip() or draft.description
            draft.severity = self.severity.values[0] if self.severity.values else draft.severity
            draft.priority = self.priority.values[0] if self.priority.values else draft.priority
            for name, text_input in self.fields.items():
                if text_input.value.strip():
                    draft.custom_fields[name] = text_input.value.strip()
                else:
                    draft.custom_fields.pop(name, None)
            changed = [n for n, old, new in zip(
                ("title", "severity", "priority"), before[:3],
                (draft.title, draft.severity, draft.priority), strict=True) if old != new]
            changed += [n for n in self.fields if before[3].get(n) != draft.custom_fields.get(n)]
            if draft.suggestion is not None and changed:
                draft.suggestion = replace(draft.suggestion, sources={
                    **draft.suggestion.sources, **dict.fromkeys(changed, "person")})
            draft.suggested_by = "you (edited)"
            draft.note = ""
            await interaction.response.edit_message(
                embed=draft_embed(draft, edge.catalog), view=self.review)

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception,
                       /) -> None:
        await self.review.edge.failed(interaction, error)


class KeyEventModal(discord.ui.Modal):
    """The "Add key event" button: what happened?"""

    def __init__(self, edge: DiscordEdge, number: int) -> None:
        super().__init__(title="Add key event", timeout=REVIEW_TIMEOUT,
                         custom_id=f"opsroom:key_event_modal:{number}:{secrets.token_hex(4)}")
        self.edge, self.number = edge, number
        self.text: discord.ui.TextInput[KeyEventModal] = discord.ui.TextInput(
            label="What happened?", custom_id="text", style=discord.TextStyle.long,
            max_length=TEXT_INPUT_LIMIT)
        self.add_item(self.text)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        await self.edge.key_event_submitted(interaction, self.number, self.text.value)

    async def on_error(self, interaction: discord.Interaction[Any], error: Exception,
                       /) -> None:
        await self.edge.failed(interaction, error)


class PickIncident(discord.ui.View):
    """"Add to timeline" outside an incident channel: which open incident is it for?"""

    def __init__(self, edge: DiscordEdge, incidents: list[tuple[int, str]],
                 message: dict[str, Any]) -> None:
        super().__init__(timeout=REVIEW_TIMEOUT)
        self.edge, self.message = edge, message
        select: discord.ui.Select[PickIncident] = discord.ui.Select(
            placeholder="Incident", custom_id=f"opsroom:pick:{secrets.token_hex(6)}",
            options=[discord.SelectOption(label=clip(f"#{n} {title}", OPTION_LIMIT), value=str(n))
                     for n, title in incidents[:25]])
        select.callback = self.on_pick  # type: ignore[method-assign]
        self.select = select
        self.add_item(select)

    async def on_pick(self, interaction: discord.Interaction[Any]) -> None:
        self.stop()
        await self.edge.timeline_picked(interaction, int(self.select.values[0]), self.message)
