"""`opsroom doctor` against the fake Slack, Discord and OpenAI servers over real HTTP, with a real
SQLite or PostgreSQL database: every failure mode gives its line and its fix, an all-green
set-up exits 0, `--json` has its shape, and misspelt variables are named at start-up."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from adapters.cli import app
from tests.conftest import PG_URL, _migrated_sqlite_template, needs_pg
from tests.fakes import slack as fs
from tests.fakes.discord import FakeDiscord
from tests.fakes.openai import DEFAULT_MODEL, FakeOpenAI

ROOT = Path(__file__).resolve().parents[2]
PREFIXES = ("OPSROOM_", "SLACK_", "DISCORD_", "OPENAI_", "DATABASE_URL")
OPENAI_KEY = "sk-doctor-test-key-0123456789abcdef"
STATUSES = ("ok", "skip", "warning", "error")


@dataclass
class Rig:
    slack: fs.FakeSlack
    discord: FakeDiscord
    ai: FakeOpenAI
    tmp: Path
    monkeypatch: pytest.MonkeyPatch

    def set(self, **env: str) -> None:
        for name, value in env.items():
            self.monkeypatch.setenv(name, value)

    def unset(self, *names: str) -> None:
        for name in names:
            self.monkeypatch.delenv(name, raising=False)

    def catalog(self, old: str, new: str) -> Path:
        """A copy of the default catalog with `old` replaced by `new`, set as OPSROOM_CATALOG."""
        text = (ROOT / "bot" / "opsroom.yaml").read_text(encoding="utf-8")
        assert old in text
        path = self.tmp / f"catalog-{uuid.uuid4().hex[:6]}.yaml"
        path.write_text(text.replace(old, new, 1), encoding="utf-8")
        self.set(OPSROOM_CATALOG=str(path))
        return path

    @property
    def secrets(self) -> list[str]:
        return [self.slack.token, fs.SIGNING_SECRET, self.discord.token, OPENAI_KEY]


@pytest.fixture
async def rig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Rig]:
    """Everything configured and healthy: a migrated SQLite file, Slack, Discord and a model."""
    for name in list(os.environ):
        if name.upper().startswith(PREFIXES):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    shutil.copyfile(await _migrated_sqlite_template(), tmp_path / "opsroom.db")
    async with fs.FakeSlack() as slack, FakeDiscord() as discord, FakeOpenAI(
        api_key=OPENAI_KEY
    ) as ai:
        await discord.create_channel("incidents")
        ai.reply_json({"answer": "ready"})
        rig = Rig(slack, discord, ai, tmp_path, monkeypatch)
        rig.set(
            DATABASE_URL=f"sqlite:///{tmp_path / 'opsroom.db'}",
            SLACK_BOT_TOKEN=slack.token,
            SLACK_SIGNING_SECRET=fs.SIGNING_SECRET,
            SLACK_API_URL=slack.api_url,
            DISCORD_TOKEN=discord.token,
            DISCORD_API_URL=discord.api_base,
            DISCORD_GUILD_ID=discord.guild_id,
            OPENAI_API_KEY=OPENAI_KEY,
            OPENAI_BASE_URL=ai.base_url,
            OPENAI_MODEL=DEFAULT_MODEL,
        )
        yield rig


async def doctor(*args: str) -> Result:
    """`opsroom doctor` in-process; in a thread, since it runs its own event loop while this
    one keeps serving the fakes."""
    return await asyncio.to_thread(
        CliRunner().invoke, app, ["doctor", "--timeout", "2", *args], catch_exceptions=False
    )


@dataclass(frozen=True)
class Line:
    status: str
    message: str
    fix: str | None
    section: str


def lines(output: str) -> list[Line]:
    """The report as a person reads it: each status line with its wrapped text and its fix."""
    found: list[Line] = []
    section = ""
    for raw in output.splitlines():
        head = re.match(r"^  (ok|skip|warning|error|set|default) +(.*)$", raw)
        if raw and not raw.startswith(" "):
            section = raw
        elif head:
            found.append(Line(head.group(1), head.group(2), None, section))
        elif raw.startswith(" " * 11 + "fix: "):
            last = found[-1]
            found[-1] = Line(last.status, last.message, raw.strip()[5:], section)
        elif raw.startswith(" " * 13):
            last = found[-1]
            if last.fix is None:
                found[-1] = Line(last.status, f"{last.message} {raw.strip()}", None, section)
            else:
                found[-1] = Line(last.status, last.message, f"{last.fix} {raw.strip()}", section)
    return found


def line(result: Result, status: str, text: str) -> Line:
    """The one line of `status` whose message holds `text`."""
    matches = [ln for ln in lines(result.stdout) if ln.status == status and text in ln.message]
    assert len(matches) == 1, f"no single {status} line with {text!r} in:\n{result.stdout}"
    return matches[0]


def statuses(result: Result, status: str) -> list[Line]:
    return [ln for ln in lines(result.stdout) if ln.status == status]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- all green, and the JSON ------------------------------------------------------------------


async def test_a_healthy_setup_passes_every_check_and_shows_no_secret(rig: Rig) -> None:
    result = await doctor()
    assert result.exit_code == 0, result.stdout
    assert statuses(result, "error") == [] and statuses(result, "warning") == []
    line(result, "ok", "`opsroom run` starts Slack (HTTP mode) and Discord")
    line(result, "ok", "built-in default (bot/opsroom.yaml): 6 incident types")
    line(result, "ok", f"SQLite file {rig.tmp / 'opsroom.db'}")
    line(result, "ok", "schema at the latest revision")
    line(result, "ok", f"team {fs.TEAM_NAME} ({fs.TEAM_ID}), bot user @{fs.BOT_NAME}")
    line(result, "ok", "the token has all 14 scopes slack-manifest.yaml asks for")
    line(result, "ok", f"announcement channel #incidents ({fs.INCIDENTS_ID}): the bot is a member")
    line(result, "ok", f"logged in as opsroom ({rig.discord.bot_user['id']})")
    line(result, "ok", "the Message Content intent is enabled")
    line(result, "ok", f"guild Opsroom Test ({rig.discord.guild_id})")
    line(result, "ok", 'every permission incident channels need in the category "Incidents"')
    assert line(result, "ok", "the bot can post there").section == "Discord"
    line(result, "ok", f'model "{DEFAULT_MODEL}" is offered')
    line(result, "ok", "a structured-output call answered in schema")
    line(result, "set", "SLACK_BOT_TOKEN = (secret, not shown)  [environment]")
    line(result, "set", f"OPENAI_MODEL = {DEFAULT_MODEL}  [environment]")
    assert result.stdout.rstrip().endswith("0 errors, 0 warnings: Opsroom is ready to run.")
    for secret in rig.secrets:
        assert secret not in result.output
    # The probe asked for a strict schema, as the suggester does.
    assert rig.ai.last_response_format()["type"] == "json_schema"  # type: ignore[index]


async def test_json_has_every_check_and_variable_and_no_secret(rig: Rig) -> None:
    rig.set(SLACK_BOT_TOKN="xoxb-typo")
    rig.slack.scopes.remove("pins:write")
    result = await doctor("--json")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert set(report) == {"ok", "errors", "warnings", "checks", "variables"}
    assert report["ok"] is False
    checks = report["checks"]
    assert all(set(c) == {"section", "status", "message", "fix"} for c in checks)
    assert all(c["status"] in STATUSES for c in checks)
    sections = [c["section"] for c in checks]
    order = ["configuration", "catalog", "database", "slack", "discord", "openai"]
    assert sorted(set(sections), key=order.index) == list(dict.fromkeys(sections)) == order
    assert report["errors"] == sum(c["status"] == "error" for c in checks) == 1
    assert report["warnings"] == sum(c["status"] == "warning" for c in checks) == 1
    scope_error = next(c for c in checks if c["status"] == "error")
    assert scope_error["section"] == "slack" and "pins:write" in scope_error["message"]
    assert "reinstall" in scope_error["fix"]
    typo = next(c for c in checks if c["status"] == "warning")
    assert "SLACK_BOT_TOKN" in typo["message"] and "SLACK_BOT_TOKEN" in typo["fix"]
    variables = {v["name"]: v for v in report["variables"]}
    assert variables["SLACK_BOT_TOKEN"] == {
        "name": "SLACK_BOT_TOKEN", "set": True, "source": "environment", "secret": True,
        "value": None,
    }
    assert variables["OPENAI_MODEL"]["value"] == DEFAULT_MODEL
    assert variables["OPSROOM_HTTP_PORT"] == {
        "name": "OPSROOM_HTTP_PORT", "set": False, "source": "default", "secret": False,
        "value": None,
    }
    for secret in rig.secrets:
        assert secret not in result.stdout


# --- configuration ---------------------------------------------------------------------------


async def test_a_misspelt_variable_is_named_with_the_nearest_setting(rig: Rig) -> None:
    rig.set(SLACK_BOT_TOKN="xoxb-1", OPSROOM_HTTP_PROT="9000", OPSROOM_SECRET_PAGERDUTY="x")
    (rig.tmp / ".env").write_text("DISCORD_GUILD=1\nOPENAI_MODLE=gpt-4o\n", encoding="utf-8")
    result = await doctor()
    assert result.exit_code == 0  # warnings only
    typo = line(result, "warning", "SLACK_BOT_TOKN (environment) is not a setting")
    assert typo.fix is not None and typo.fix.startswith("did you mean SLACK_BOT_TOKEN?")
    assert "OPSROOM_HTTP_PORT?" in line(result, "warning", "OPSROOM_HTTP_PROT").fix  # type: ignore[operator]
    assert "DISCORD_GUILD_ID?" in line(result, "warning", "DISCORD_GUILD (from .env)").fix  # type: ignore[operator]
    assert "OPENAI_MODEL?" in line(result, "warning", "OPENAI_MODLE (from .env)").fix  # type: ignore[operator]
    assert "OPSROOM_SECRET_PAGERDUTY" not in result.stdout  # runbook secrets are known
    line(result, "ok", f"settings read from the environment and {rig.tmp / '.env'}")


async def test_names_the_catalog_refers_to_are_known(rig: Rig) -> None:
    rig.catalog("channel_prefix: inc", "channel_prefix: inc  # webhook: OPSROOM_WEBHOOK_URL")
    rig.set(OPSROOM_WEBHOOK_URL="https://example.com/hook", OPSROOM_WEBHOOK_URI="x")
    result = await doctor()
    assert "OPSROOM_WEBHOOK_URL (environment)" not in result.stdout
    warning = line(result, "warning", "OPSROOM_WEBHOOK_URI (environment) is not a setting")
    assert warning.fix is not None and "OPSROOM_WEBHOOK_URL?" in warning.fix


async def test_swapped_slack_tokens_are_one_error(rig: Rig) -> None:
    rig.set(SLACK_BOT_TOKEN="xapp-1-A0OPSRM0001-1234-abcdef", SLACK_APP_TOKEN=rig.slack.token)
    result = await doctor()
    assert result.exit_code == 1
    swapped = line(result, "error", "SLACK_BOT_TOKEN and SLACK_APP_TOKEN are swapped")
    assert swapped.fix == "swap the two values"
    assert "not a bot token" not in result.stdout
    assert rig.slack.token not in result.output and "xapp-1-A0OPSRM0001" not in result.output


@pytest.mark.parametrize(
    ("env", "expected", "fix"),
    [
        (
            {"SLACK_BOT_TOKEN": "xapp-1-A0-1-abc"},
            "SLACK_BOT_TOKEN is an app-level token (xapp-…), not a bot token (xoxb-…)",
            "an xapp- token belongs in SLACK_APP_TOKEN",
        ),
        (
            {"SLACK_APP_TOKEN": fs.BOT_TOKEN},
            "SLACK_APP_TOKEN is a bot token (xoxb-…), not an app-level token (xapp-…)",
            "an xoxb- token belongs in SLACK_BOT_TOKEN",
        ),
        (
            {"SLACK_BOT_TOKEN": "xoxp-123-456-user"},
            "SLACK_BOT_TOKEN is a user token (xoxp-…)",
            "Bot User OAuth Token",
        ),
        (
            {"SLACK_SIGNING_SECRET": fs.BOT_TOKEN},
            "SLACK_SIGNING_SECRET holds a token",
            "Signing Secret",
        ),
        ({"DISCORD_TOKEN": "Bot abc.def.ghi"}, 'DISCORD_TOKEN starts with "Bot "', "remove"),
        ({"DISCORD_TOKEN": fs.BOT_TOKEN}, "DISCORD_TOKEN holds a Slack token", "Reset Token"),
    ],
)
async def test_token_shapes(rig: Rig, env: dict[str, str], expected: str, fix: str) -> None:
    rig.set(**env)
    result = await doctor()
    assert result.exit_code == 1
    found = line(result, "error", expected)
    assert found.section == "Configuration" and found.fix is not None and fix in found.fix
    for value in env.values():
        assert value not in result.output


async def test_slack_without_a_signing_secret_or_app_token_is_what_run_refuses(rig: Rig) -> None:
    rig.unset("SLACK_SIGNING_SECRET")
    result = await doctor()
    assert result.exit_code == 1
    refused = line(result, "error", "`opsroom run` refuses to start")
    assert "SLACK_SIGNING_SECRET" in refused.message and "SLACK_APP_TOKEN" in refused.message
    assert "`opsroom run` starts" not in result.stdout
    line(result, "ok", "auth.test: team")  # the other checks still run


async def test_values_that_cannot_be_read_are_reported_and_the_rest_still_checked(
    rig: Rig,
) -> None:
    rig.set(OPSROOM_HTTP_PORT="eighty", OPSROOM_REDACT_PATTERNS="[not json")
    result = await doctor()
    assert result.exit_code == 1
    line(result, "error", "OPSROOM_HTTP_PORT: Input should be a valid integer")
    line(result, "error", "OPSROOM_REDACT_PATTERNS cannot be read: it must be JSON")
    line(result, "ok", "schema at the latest revision")
    line(result, "ok", "a structured-output call answered in schema")
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:hunter2@db/opsroom", "unsupported database 'mysql'"),
        ("postgres://u:hunter2@[bad", "[bad"),
        ("not a url at all hunter2", "DATABASE_URL cannot be parsed"),
    ],
)
async def test_an_unusable_database_url_is_said_without_its_password(
    rig: Rig, url: str, expected: str
) -> None:
    rig.set(DATABASE_URL=url)
    result = await doctor()
    assert result.exit_code == 1
    assert [ln.section for ln in statuses(result, "error")] == ["Database"]
    assert expected in statuses(result, "error")[0].message
    assert "hunter2" not in result.output and "Traceback" not in result.output


# --- catalog ---------------------------------------------------------------------------------


async def test_a_broken_catalog_is_named_and_the_checks_that_need_it_are_skipped(
    rig: Rig,
) -> None:
    path = rig.catalog("key_event_emoji: pushpin", "key_event_emoj: pushpin")
    result = await doctor()
    assert result.exit_code == 1
    broken = line(result, "error", f"{path}: key_event_emoj: unknown key")
    assert 'did you mean "key_event_emoji"' in broken.message
    skipped = [(ln.section, ln.message) for ln in statuses(result, "skip")]
    assert skipped == [
        ("Slack", "announcement channel not checked: the catalog did not load"),
        ("Discord", "category and announcement channel not checked: the catalog did not load"),
    ]
    line(result, "ok", "auth.test: team")


async def test_a_custom_catalog_is_named_by_its_absolute_path(rig: Rig) -> None:
    path = rig.catalog("channel_prefix: inc", "channel_prefix: incident")
    rig.set(OPSROOM_CATALOG=path.name)  # relative to the working directory
    result = await doctor()
    line(result, "ok", f"{path}: 6 incident types")


# --- database --------------------------------------------------------------------------------


def _migrations() -> int:
    return len(list((ROOT / "storage" / "migrations" / "versions").glob("[0-9]*.py")))


async def test_a_database_behind_the_code_says_how_many_migrations(rig: Rig) -> None:
    db = rig.tmp / "old.db"
    sqlite3.connect(db).close()  # an existing file without the schema
    rig.set(DATABASE_URL=f"sqlite:///{db}")
    result = await doctor()
    assert result.exit_code == 0  # `opsroom run` upgrades it by itself
    n = _migrations()
    behind = line(result, "warning", f"schema empty: {n} migration{'s' if n > 1 else ''} behind")
    assert behind.fix is not None and "opsroom db upgrade" in behind.fix


async def test_a_schema_from_a_newer_opsroom_is_an_error(rig: Rig) -> None:
    with sqlite3.connect(rig.tmp / "opsroom.db") as conn:
        conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    result = await doctor()
    assert result.exit_code == 1
    line(result, "error", "the schema is at revision ffff9999, which this Opsroom does not know")


async def test_a_sqlite_file_not_there_yet_is_fine_and_not_created(rig: Rig) -> None:
    rig.set(DATABASE_URL="sqlite:///fresh.db")  # relative: shown absolute
    result = await doctor()
    assert result.exit_code == 0
    line(result, "ok", f"SQLite file {rig.tmp / 'fresh.db'}")
    line(result, "ok", "the file does not exist yet")
    assert not (rig.tmp / "fresh.db").exists()


async def test_a_sqlite_file_in_a_missing_directory(rig: Rig) -> None:
    rig.set(DATABASE_URL="sqlite:////nonexistent/dir/x.db")
    result = await doctor()
    assert result.exit_code == 1
    missing = line(result, "error", "the directory /nonexistent/dir does not exist")
    assert missing.fix is not None and "mkdir -p /nonexistent/dir" in missing.fix


async def test_an_unreachable_postgresql_server(rig: Rig) -> None:
    port = closed_port()
    rig.set(DATABASE_URL=f"postgresql://opsroom:hunter2@127.0.0.1:{port}/opsroom")
    result = await doctor()
    assert result.exit_code == 1
    down = line(result, "error", f"cannot connect to 127.0.0.1:{port}")
    assert down.fix is not None and "running" in down.fix
    assert "hunter2" not in result.output


async def test_a_server_that_never_answers_is_given_up_on_in_time(rig: Rig) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, answer nothing, until the client hangs up
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    rig.set(DATABASE_URL=f"postgresql://opsroom@127.0.0.1:{port}/opsroom")
    async with server:
        result = await asyncio.to_thread(
            CliRunner().invoke, app, ["doctor", "--timeout", "0.5"], catch_exceptions=False
        )
    assert result.exit_code == 1
    line(result, "error", f"no answer from 127.0.0.1:{port} within 0.5s")


@needs_pg
async def test_a_missing_postgresql_database_says_how_to_create_it(rig: Rig) -> None:
    assert PG_URL is not None
    name = f"opsroom_doctor_{uuid.uuid4().hex[:8]}"
    url = make_url(PG_URL).set(database=name)
    rig.set(DATABASE_URL=url.render_as_string(hide_password=False))
    result = await doctor()
    assert result.exit_code == 1
    missing = line(result, "error", f'has no database "{name}"')
    parts = [f"-h {url.host}" if url.host else "", f"-p {url.port}" if url.port else "",
             f"-U {url.username}" if url.username else ""]
    command = " ".join(["createdb", *[p for p in parts if p], name])
    assert missing.fix == f"create it with `{command}`"


@needs_pg
async def test_a_reachable_postgresql_database_names_its_server(rig: Rig) -> None:
    assert PG_URL is not None
    rig.set(DATABASE_URL=PG_URL)
    result = await doctor()
    url = make_url(PG_URL)
    line(result, "ok", f"at {url.host}:{url.port or 5432}, database {url.database}")


# --- Slack -----------------------------------------------------------------------------------


async def test_slack_refuses_a_bad_token(rig: Rig) -> None:
    rig.set(SLACK_BOT_TOKEN="xoxb-1-2-NotTheRightToken")
    result = await doctor()
    assert result.exit_code == 1
    refused = line(result, "error", "Slack refused SLACK_BOT_TOKEN (invalid_auth)")
    assert refused.fix is not None and "Bot User OAuth Token" in refused.fix
    assert "NotTheRightToken" not in result.output
    line(result, "ok", "logged in as opsroom")  # Discord is still checked


async def test_missing_scopes_are_named(rig: Rig) -> None:
    for scope in ("pins:write", "reactions:read"):
        rig.slack.scopes.remove(scope)
    result = await doctor()
    assert result.exit_code == 1
    missing = line(result, "error", "the bot token lacks 2 scopes of slack-manifest.yaml")
    assert missing.message.endswith(": pins:write, reactions:read")
    assert missing.fix is not None and "reinstall the app" in missing.fix


async def test_a_missing_slack_announcement_channel(rig: Rig) -> None:
    rig.catalog("  slack: incidents", "  slack: war-room")
    result = await doctor()
    assert result.exit_code == 1
    missing = line(result, "error", "announcement channel #war-room not found")
    assert missing.fix is not None and "create #war-room and /invite @opsroom" in missing.fix


async def test_an_announcement_channel_the_bot_is_not_in(rig: Rig) -> None:
    rig.slack.add_channel("war-room", members=[fs.ALICE])
    rig.catalog("  slack: incidents", "  slack: war-room")
    result = await doctor()
    outside = line(result, "warning", "the bot is not a member of the announcement channel")
    assert "#war-room; it can post there (chat:write.public)" in outside.message
    assert outside.fix == "/invite @opsroom in #war-room"
    rig.slack.scopes.remove("chat:write.public")  # without it, it cannot post there at all
    result = await doctor()
    assert result.exit_code == 1
    line(result, "error", "not a member of the announcement channel #war-room and cannot post")


async def test_an_unreachable_slack_api(rig: Rig) -> None:
    port = closed_port()
    rig.set(SLACK_API_URL=f"http://127.0.0.1:{port}/api/")
    result = await doctor()
    line(result, "error", f"auth.test: cannot reach 127.0.0.1:{port}")


async def test_a_slack_api_url_without_its_trailing_slash(rig: Rig) -> None:
    rig.set(SLACK_API_URL=rig.slack.api_url.rstrip("/"))
    result = await doctor()
    bad = line(result, "error", "has no trailing slash")
    assert bad.fix == f"set SLACK_API_URL={rig.slack.api_url}"


# --- Discord ---------------------------------------------------------------------------------


async def test_discord_refuses_a_bad_token(rig: Rig) -> None:
    rig.set(DISCORD_TOKEN="MTIz.bad.token")
    result = await doctor()
    assert result.exit_code == 1
    refused = line(result, "error", "Discord refused DISCORD_TOKEN (401 Unauthorized)")
    assert refused.fix is not None and "Reset Token" in refused.fix
    assert "guild" not in " ".join(ln.message for ln in lines(result.stdout)
                                   if ln.section == "Discord" and ln is not refused)


async def test_the_message_content_intent_switched_off(rig: Rig) -> None:
    rig.discord.message_content_intent = False
    result = await doctor()
    assert result.exit_code == 1
    off = line(result, "error", "the Message Content intent is off")
    assert off.fix is not None and "Privileged Gateway Intents" in off.fix


def _bot_role(fake: FakeDiscord) -> dict[str, object]:
    return next(r for r in fake.guild["roles"] if r["id"] == fake.bot_role_id)


async def test_permissions_missing_from_the_bots_role(rig: Rig) -> None:
    role = _bot_role(rig.discord)
    role["permissions"] = str(int(str(role["permissions"])) & ~(1 << 4) & ~(1 << 51))
    result = await doctor()
    assert result.exit_code == 1
    lacks = line(result, "error", 'the bot lacks Manage Channels, Pin Messages in the category')
    assert lacks.fix is not None and f"client_id={rig.discord.application_id}" in lacks.fix


async def test_a_permission_denied_in_the_category_itself(rig: Rig) -> None:
    category = rig.discord.channel(rig.discord.category_id)
    assert category is not None
    category["permission_overwrites"].append(
        {"id": rig.discord.bot_role_id, "type": 0, "allow": "0", "deny": str(1 << 13)}
    )
    result = await doctor()
    assert result.exit_code == 1
    line(result, "error", 'the bot lacks Manage Messages in the category "Incidents"')


async def test_a_missing_discord_announcement_channel(rig: Rig) -> None:
    rig.catalog("  discord: incidents", "  discord: status")
    result = await doctor()
    assert result.exit_code == 1
    missing = line(result, "error", "announcement channel #status not found")
    assert missing.section == "Discord"


async def test_without_a_guild_id_the_one_server_the_bot_is_in_is_checked(rig: Rig) -> None:
    rig.unset("DISCORD_GUILD_ID")
    result = await doctor()
    assert result.exit_code == 0, result.stdout
    line(result, "ok", f"guild Opsroom Test ({rig.discord.guild_id})")


async def test_a_guild_the_bot_is_not_in(rig: Rig) -> None:
    rig.set(DISCORD_GUILD_ID="123456789012345678")
    result = await doctor()
    assert result.exit_code == 1
    line(result, "error", "guild 123456789012345678 is not reachable (HTTP 404)")


# --- the OpenAI-compatible endpoint ---------------------------------------------------------


async def test_an_unreachable_model_endpoint(rig: Rig) -> None:
    port = closed_port()
    rig.set(OPENAI_BASE_URL=f"http://127.0.0.1:{port}/v1")
    result = await doctor()
    assert result.exit_code == 1
    down = line(result, "error", f"cannot reach 127.0.0.1:{port}")
    assert down.section.startswith("AI endpoint") and down.fix is not None


async def test_an_unknown_model_gets_the_nearest_offered_one(rig: Rig) -> None:
    rig.set(OPENAI_MODEL="gpt-4o-mni")
    result = await doctor()
    assert result.exit_code == 1
    unknown = line(result, "error", 'model "gpt-4o-mni" is not offered by 127.0.0.1')
    assert unknown.fix == f"did you mean {DEFAULT_MODEL}? set OPENAI_MODEL to one it offers: " \
        f"{DEFAULT_MODEL}"
    assert rig.ai.chat_requests == []  # no call to a model that is not there


async def test_a_refused_api_key(rig: Rig) -> None:
    rig.set(OPENAI_API_KEY="sk-wrong-key-000000")
    result = await doctor()
    line(result, "error", "127.0.0.1")
    assert "sk-wrong-key" not in result.output
    assert "refused the API key (HTTP 401)" in result.stdout


async def test_an_answer_out_of_schema(rig: Rig) -> None:
    rig.ai.reply_json({"answer": "maybe", "why": "no schema here"})
    result = await doctor()
    assert result.exit_code == 1
    off = line(result, "error", "the model's answer is not in the schema it was given")
    assert '"answer": "maybe"' in off.message


async def test_a_model_slower_than_the_budget(rig: Rig) -> None:
    rig.set(OPENAI_BUDGET_S="0.3")
    rig.ai.delay(5)
    result = await doctor()
    assert result.exit_code == 1
    slow = line(result, "error", "within 0.3s (OPENAI_BUDGET_S=0.3)")
    assert slow.fix is not None and "heuristic" in slow.fix


async def test_a_server_without_structured_outputs_is_a_warning(rig: Rig) -> None:
    rig.ai.refuse_json_schema()
    result = await doctor()
    assert result.exit_code == 0
    line(result, "warning", "does not do Structured Outputs (json_schema)")


# --- nothing configured, and whole processes ------------------------------------------------


async def test_platforms_not_configured_are_skipped_not_errors(rig: Rig) -> None:
    rig.unset("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "DISCORD_TOKEN", "DISCORD_GUILD_ID",
              "OPENAI_API_KEY", "OPENAI_BASE_URL")
    result = await doctor()
    assert result.exit_code == 0
    line(result, "skip", "not configured (set SLACK_BOT_TOKEN")
    line(result, "skip", "not configured (set DISCORD_TOKEN")
    line(result, "skip", "not configured (set OPENAI_API_KEY")
    line(result, "ok", "no chat platform is configured: `opsroom run` starts the console chat")
    assert rig.slack.calls == [] and rig.discord.calls == [] and rig.ai.requests == []


def _process_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.upper().startswith(PREFIXES)}


@pytest.mark.e2e
async def test_doctor_as_a_process(rig: Rig) -> None:
    rig.slack.scopes.remove("pins:write")
    env = dict(os.environ)  # the rig's settings, and nothing else of ours
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "doctor", "--json", "--timeout", "3",
        cwd=rig.tmp, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 1, err.decode()
    report = json.loads(out)
    errors = [c for c in report["checks"] if c["status"] == "error"]
    assert [(c["section"], "pins:write" in c["message"]) for c in errors] == [("slack", True)]
    assert any("structured-output" in c["message"] for c in report["checks"] if c["status"] == "ok")
    assert b"Traceback" not in err
    for secret in rig.secrets:
        assert secret.encode() not in out + err


@pytest.mark.e2e
def test_shell_warns_about_a_misspelt_variable_at_start(tmp_path: Path) -> None:
    env = {**_process_env(), "SLACK_BOT_TOKN": "xoxb-typo-not-shown",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}", "USER": "alice"}
    result = subprocess.run(
        [sys.executable, "-m", "adapters.cli", "shell"], input="", text=True,
        capture_output=True, cwd=tmp_path, env=env, timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "opsroom: warning: SLACK_BOT_TOKN (environment) is not a setting Opsroom reads; "
        "did you mean SLACK_BOT_TOKEN?" in result.stderr
    )
    assert "xoxb-typo-not-shown" not in result.stdout + result.stderr
