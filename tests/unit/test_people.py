"""Mentions shown per platform: the person's own account, or their name and home platform."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from bot.people import Directory, PersonSpec

ALICE = PersonSpec(name="Alice", slack="U0ALICE001", discord="412345678901234567")
BOB = PersonSpec(name="bob", slack="U0BOB00002")


def test_each_platform_sees_the_persons_own_account() -> None:
    people = Directory([ALICE, BOB])
    text = "Commander <@U0ALICE001> · paged @bob"
    on_discord = "Commander <@412345678901234567> · paged @bob (Slack)"
    assert people.localize(text, "discord") == on_discord
    assert people.localize(text, "slack") == "Commander <@U0ALICE001> · paged <@U0BOB00002>"
    assert people.localize("<@!412345678901234567>", "console") == "@alice"
    assert people.name_of("<@412345678901234567>") == "alice"
    assert people.name_of("@Alice") == "alice"


def test_unknown_accounts_show_their_learned_name_and_home_never_raw_markup() -> None:
    people = Directory([], learned={("slack", "U0CAROL003"): "carol"})
    assert people.localize("by <@U0CAROL003>", "discord") == "by @carol (Slack)"
    assert people.localize("by <@U0DAVE0004|dave>", "discord") == "by @dave (Slack)"
    assert people.localize("by <@998877>", "slack") == "by @998877 (Discord)"
    assert people.localize("by <@998877>", "discord") == "by <@998877>"
    # Group mentions, e-mail addresses and names nobody knows stay as written.
    assert people.localize("@here mail ops@example.com @zed", "slack") == (
        "@here mail ops@example.com @zed"
    )


def test_same_display_name_is_not_a_link_between_accounts() -> None:
    people = Directory([], learned={("slack", "U0ALICE001"): "alice", ("discord", "42"): "alice"})
    assert people.localize("<@U0ALICE001>", "discord") == "@alice (Slack)"


def test_bad_accounts_are_refused() -> None:
    with pytest.raises(ValidationError, match="not a Discord user id"):
        PersonSpec(name="x", discord="alice#1")
    with pytest.raises(ValidationError, match="not a person name"):
        PersonSpec(name="Al ice")
