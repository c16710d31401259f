"""`opsroom --version`, help and argument errors, through the real Typer app (in-process)."""

from __future__ import annotations

from importlib.metadata import version

import pytest
from typer.testing import CliRunner

from adapters.cli import app

runner = CliRunner()


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert (result.exit_code, result.stdout) == (0, f"opsroom {version('opsroom')}\n")


@pytest.mark.parametrize(
    "command", [[], ["run"], ["shell"], ["doctor"], ["suggest"], ["db"], ["db", "upgrade"]]
)
def test_help_shows_flags_as_flags(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "<bool>" not in result.stdout
    assert "--help " in result.stdout
    if command == ["suggest"]:
        assert "  --json " in result.stdout


def test_top_level_help_says_where_settings_come_from() -> None:
    result = runner.invoke(app, ["--help"])
    assert "Settings come from the environment and from a .env file" in " ".join(
        result.stdout.split()
    )
    assert "--version" in result.stdout


@pytest.mark.parametrize("text", ["", "   "])
def test_suggest_needs_a_description(text: str) -> None:
    result = runner.invoke(app, ["suggest", text])
    assert result.exit_code == 2
    assert result.stderr == (
        "opsroom: nothing to suggest from: describe what is happening, e.g. "
        'opsroom suggest "checkout 500s in EU since the 14:05 deploy"\n'
    )
    assert result.stdout == ""
