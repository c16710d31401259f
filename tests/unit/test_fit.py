"""Texts longer than a platform takes are cut, saying where the full text is, never refused."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.discord.embeds import DESCRIPTION_LIMIT, render, reply_kwargs
from bot.models import EntryKind, Incident, TimelineEntry
from bot.render import CUT_NOTE, TEXT_LIMIT, announcement, entry_message, fit

AT = datetime(2026, 12, 6, 9, 0, tzinfo=UTC)
INCIDENT = Incident(id=1, number=7, title="Checkout down", type="outage", severity="sev1",
                    priority="p1", declared_by="@alice", declared_on="slack")


def note(text: str) -> TimelineEntry:
    return TimelineEntry(id=3, incident_id=1, kind=EntryKind.MESSAGE, text=text,
                         author_name="alice", occurred_at=AT, created_at=AT)


def test_fit_keeps_short_texts_and_cuts_long_ones_with_the_note() -> None:
    assert fit("short") == "short"
    assert fit("x" * TEXT_LIMIT) == "x" * TEXT_LIMIT
    cut = fit("x" * (TEXT_LIMIT + 1))
    assert len(cut) == TEXT_LIMIT and cut.endswith(CUT_NOTE) and cut.startswith("xxx")
    assert fit("word " * 30, 60) == "word word wor" + CUT_NOTE


def test_a_40001_character_note_is_posted_within_every_platform_limit() -> None:
    long = "y" * 40_001
    message = entry_message(note(long), INCIDENT, cross_platform=False)
    assert len(message.text) == TEXT_LIMIT and message.text.endswith(CUT_NOTE)
    assert len(announcement(note(long), INCIDENT, "inc-7").text) == TEXT_LIMIT
    rendered = render(message)  # Discord: an embed of at most 4,096 characters
    assert rendered.embed is not None and rendered.content is None
    description = rendered.embed.description or ""
    assert len(description) == DESCRIPTION_LIMIT and description.endswith(CUT_NOTE)
    answer = reply_kwargs(long)["embed"].description
    assert len(answer) == DESCRIPTION_LIMIT and answer.endswith(CUT_NOTE)
