"""Platform-neutral messages as Discord content, embeds and buttons, within Discord's limits."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import discord

from bot.render import Button, Message, fit
from bot.render import emoji_name as catalog_emoji_name

# https://discord.com/developers/docs/resources/message (create-message, embed limits)
CONTENT_LIMIT = 2000
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FIELD_COUNT_LIMIT = 25
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
BUTTON_LABEL_LIMIT = 80
CUSTOM_ID_LIMIT = 100
BUTTONS_LIMIT = 25  # 5 rows of 5

PREFIX = "opsroom"
# The buttons the mirror puts on channel messages; any bot process can answer them (no state).
BUTTON_TEMPLATE = (
    rf"{PREFIX}:(?P<action>ack|resolve|reopen|key_event|action_done|runbook_check|"
    rf"runbook_approve|triage_declare|triage_attach|triage_ignore):(?P<value>\d+(?::\d+){{0,2}})"
)
EMBED_COLOR = 0xE67E22

_STYLES = {"primary": discord.ButtonStyle.primary, "danger": discord.ButtonStyle.danger}

_MENTION = re.compile(r"^<@!?(\d{15,21})>$")


def user_id(mention: str) -> int | None:
    """The Discord user id in a mention like <@123>, or None for other platforms' people."""
    m = _MENTION.match(mention.strip())
    return int(m.group(1)) if m else None


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def custom_id(action: str, value: str) -> str:
    return f"{PREFIX}:{action}:{value}"[:CUSTOM_ID_LIMIT]


def emoji_name(emoji: discord.PartialEmoji) -> str:
    """A reaction's name as a catalog writes it: "pushpin" for 📌, the name of a custom emoji."""
    name = emoji.name or ""
    return catalog_emoji_name(name) if emoji.is_unicode_emoji() else name


@dataclass(frozen=True)
class Rendered:
    """What a message becomes on Discord; pass `kwargs()` to send/edit calls."""

    content: str | None
    embed: discord.Embed | None
    view: discord.ui.View | None

    def kwargs(self) -> dict[str, Any]:
        return {"content": self.content, "embed": self.embed, "view": self.view}


def embed_for(message: Message) -> discord.Embed:
    """A rich message (title, fields, sections, context) as one embed within Discord's limits:
    fields first (up to 25, each clipped), then the sections as the description with the room
    left of the 6,000 characters an embed may hold in all."""
    description = "\n\n".join(message.sections) if message.sections else (
        "" if message.title else message.text)
    embed = discord.Embed(title=clip(message.title, TITLE_LIMIT) if message.title else None,
                          color=EMBED_COLOR)
    if message.context:
        embed.set_footer(text=clip(message.context, FOOTER_LIMIT))
    # Keep room for (the start of) the description; the fields share what is left.
    room = EMBED_TOTAL_LIMIT - len(embed) - min(len(description), 2000)
    fields = list(message.fields)
    shown = 0
    for f in fields[:FIELD_COUNT_LIMIT]:
        name = clip(f.label or "-", FIELD_NAME_LIMIT)
        left = min(FIELD_VALUE_LIMIT, room - len(name))
        more = len(fields) - shown > 1 and shown == FIELD_COUNT_LIMIT - 1
        if left < 20 or more:
            break  # no room (or the last slot) left: say how many were left out
        value = clip(f.value or "-", left)
        embed.add_field(name=name, value=value, inline=len(value) <= 40)
        room -= len(name) + len(value)
        shown += 1
    if shown < len(fields):
        note = f"…and {len(fields) - shown} more"
        embed.add_field(name="More", value=note, inline=False)
    left = max(0, min(DESCRIPTION_LIMIT, EMBED_TOTAL_LIMIT - len(embed)))
    embed.description = clip(description, left) if description and left else None
    return embed


def buttons_view(buttons: tuple[Button, ...]) -> discord.ui.View | None:
    """Buttons as components. The view is stopped: it only carries the components; clicks are
    answered by the `opsroom:<action>:<value>` dynamic item, so no per-message state is kept."""
    if not buttons:
        return None
    view = discord.ui.View(timeout=None)
    for b in buttons[:BUTTONS_LIMIT]:
        view.add_item(discord.ui.Button(
            label=clip(b.label, BUTTON_LABEL_LIMIT), custom_id=custom_id(b.action, b.value),
            style=_STYLES.get(b.style or "", discord.ButtonStyle.secondary)))
    view.stop()
    return view


def render(message: Message) -> Rendered:
    """Rich messages become an embed; plain ones content (an embed when over 2,000 chars)."""
    view = buttons_view(message.buttons)
    if message.title or message.fields or message.sections or message.context:
        return Rendered(None, embed_for(message), view)
    if len(message.text) <= CONTENT_LIMIT:
        return Rendered(message.text or "-", None, view)
    # A key event quotes up to 2,000 characters plus its heading: keep it whole in an embed;
    # longer texts (a long note) are cut there, saying where the full text is.
    long = discord.Embed(description=fit(message.text, DESCRIPTION_LIMIT), color=EMBED_COLOR)
    return Rendered(None, long, view)


def reply_kwargs(text: str, message: Message | None = None) -> dict[str, Any]:
    """An ephemeral answer: `text`, or the message (an incident summary) as an embed."""
    out: dict[str, Any]
    rendered = render(message) if message is not None else None
    if rendered is not None and rendered.embed is not None:
        out = {"embed": rendered.embed}
        if rendered.view is not None:
            out["view"] = rendered.view
    elif len(text) <= CONTENT_LIMIT:
        out = {"content": text or "-"}
    else:
        out = {"embed": discord.Embed(description=fit(text, DESCRIPTION_LIMIT),
                                      color=EMBED_COLOR)}
    return out
