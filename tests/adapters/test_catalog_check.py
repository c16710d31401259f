"""`opsroom catalog check` on broken catalogs: each problem named with its file and line, and
`opsroom run` refusing the same catalogs. The catalog is a directory: the default catalog
without its runbooks in base.yaml, and the piece under test in runbooks.yaml."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner

from adapters.cli import app

runner = CliRunner()

RB = "runbooks:\n  - name: a\n    steps:\n"
OK_RB = RB + "      - kind: message\n        text: hi\n"

# name -> (runbooks.yaml text, line, what the message says)
BROKEN: dict[str, tuple[str, int, str]] = {
    "unknown step kind": (RB + "      - kind: page\n", 4, 'unknown step kind "page"'),
    "unknown step key": (
        RB + "      - kind: message\n        txt: hi\n",
        5,
        "txt: unknown key for a message step",
    ),
    "missing step key": (RB + "      - kind: wait\n", 4, "duration: Field required"),
    "no steps": ("runbooks:\n  - name: a\n    steps: []\n", 3, "needs at least one step"),
    "template syntax": (
        RB + '      - kind: message\n        text: "{{ incident.number "\n',
        4,
        "template error",
    ),
    "template unknown name": (
        RB + '      - kind: message\n        text: "{{ incdent.title }}"\n',
        4,
        'unknown name "incdent"',
    ),
    "template unknown attribute": (
        RB + '      - kind: message\n        text: "{{ incident.titel }}"\n',
        4,
        "titel",
    ),
    "bad wait duration": (RB + "      - kind: wait\n        duration: soon\n", 5, "soon"),
    "bad http timeout": (
        RB + "      - kind: http\n        url: http://x\n        timeout: forever\n",
        6,
        "forever",
    ),
    "a bot token as a secret": (
        RB + '      - kind: http\n        url: "http://x/${env:SLACK_BOT_TOKEN}"\n',
        4,
        "${env:SLACK_BOT_TOKEN} is not allowed",
    ),
    "approval by an unknown role": (
        RB + "      - kind: approve\n        role: ceo\n",
        5,
        '"ceo" is not a role',
    ),
    "set two things": (
        RB + "      - kind: set\n        severity: sev1\n        status: resolved\n",
        4,
        "exactly one of",
    ),
    "set an unknown severity": (
        RB + "      - kind: set\n        severity: sev9\n",
        5,
        '"sev9" is not one of',
    ),
    "set a field no type has": (
        RB + "      - kind: set\n        field: colour\n        value: red\n",
        4,
        'no incident type has a field "colour"',
    ),
    "duplicate runbook": (
        OK_RB + "  - name: a\n    steps:\n      - kind: message\n        text: x\n",
        6,
        'duplicate name "a"',
    ),
    "workflow runs an undefined runbook": (
        OK_RB + "workflows:\n  - name: w\n    on: declared\n    run: nope\n",
        9,
        'runbook "nope" is not defined',
    ),
    "workflow unknown trigger": (
        OK_RB + "workflows:\n  - name: w\n    on: [exploded]\n    run: a\n",
        8,
        'unknown trigger "exploded"',
    ),
    "workflow condition on a field the type lacks": (
        OK_RB + "workflows:\n  - name: w\n    on: declared\n    if:\n      type: deploy\n"
        "      fields: {region: eu}\n    run: a\n",
        11,
        'type deploy has no field "region"',
    ),
    "workflow bad delay": (
        OK_RB + "workflows:\n  - name: w\n    on: declared\n    delay: later\n    run: a\n",
        9,
        "later",
    ),
}


def catalog_dir(tmp_path: Path, piece: str) -> Path:
    default = resources.files("bot").joinpath("opsroom.yaml").read_text(encoding="utf-8")
    base = default.split("\n# Runbooks:")[0]
    base = base.replace("runbooks: [outage-triage]", "").replace(
        "runbooks: [security-response]", ""
    )
    folder = tmp_path / "catalog"
    folder.mkdir()
    (folder / "base.yaml").write_text(base)
    (folder / "runbooks.yaml").write_text(piece)
    return folder


@pytest.mark.parametrize("case", list(BROKEN), ids=list(BROKEN))
def test_check_names_file_line_and_reason_and_run_refuses(tmp_path: Path, case: str) -> None:
    piece, line, what = BROKEN[case]
    folder = catalog_dir(tmp_path, piece)
    result = runner.invoke(app, ["catalog", "check", str(folder)])
    assert result.exit_code == 1, result.output
    message = result.stderr.strip()
    assert message.startswith(f"error: {folder / 'runbooks.yaml'}:{line}: "), message
    assert what in message, message
    assert "Traceback" not in result.output
    refused = runner.invoke(app, ["run"], env={"OPSROOM_CATALOG": str(folder)})
    assert refused.exit_code == 2
    assert refused.stderr.strip() == message.replace("error: ", "opsroom: catalog error: ", 1)


def test_a_directory_merges_lists_and_a_good_one_checks_ok(tmp_path: Path) -> None:
    folder = catalog_dir(tmp_path, OK_RB)
    result = runner.invoke(app, ["catalog", "check", str(folder)])
    assert result.exit_code == 0, result.output
    assert "OK (6 types, 1 runbooks, 0 workflows)" in result.stdout


def test_a_type_naming_an_undefined_runbook_is_a_warning(tmp_path: Path) -> None:
    folder = catalog_dir(tmp_path, OK_RB)
    base = folder / "base.yaml"
    base.write_text(
        base.read_text().replace(
            "    private: true\n", "    private: true\n    runbooks: [ghost]\n"
        )
    )
    result = runner.invoke(app, ["catalog", "check", str(folder)])
    assert result.exit_code == 0, result.output
    assert 'runbook "ghost" is not defined' in result.stderr


def test_a_key_given_by_two_files_is_an_error(tmp_path: Path) -> None:
    folder = catalog_dir(tmp_path, OK_RB + "timezone: UTC\n")
    result = runner.invoke(app, ["catalog", "check", str(folder)])
    assert result.exit_code == 1
    assert "timezone: given in" in result.stderr


def test_sighup_reload_keeps_the_old_catalog_when_the_new_one_is_broken(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from types import SimpleNamespace

    from adapters.cli import reload_catalog
    from bot.catalog import load_catalog

    folder = catalog_dir(tmp_path, OK_RB)
    old = load_catalog(None)
    holders = [SimpleNamespace(catalog=old), SimpleNamespace(catalog=old), None]
    new = reload_catalog(folder, holders)
    assert new is not None and new.runbook_names == ["a"]
    assert all(h.catalog is new for h in holders if h is not None)
    (folder / "runbooks.yaml").write_text(RB + "      - kind: page\n")
    with caplog.at_level("ERROR"):
        assert reload_catalog(folder, holders) is None
    assert all(h.catalog is new for h in holders if h is not None)
    assert f"{folder / 'runbooks.yaml'}:4: " in caplog.text
    assert "keeping the catalog in use" in caplog.text
