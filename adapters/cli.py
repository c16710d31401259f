"""`opsroom`: the command line, and the composition root (the one place that knows every class)."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NoReturn

import typer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.console import ConsoleChat, ConsoleSession, console_user
from adapters.settings import Settings
from bot.catalog import Catalog, CatalogError, load_catalog
from bot.mirror import Mirror
from bot.ports import ChatPort, Suggester
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from storage.engine import current_revision, make_engine, safe_url, upgrade
from storage.store import SqlStore

logger = logging.getLogger("opsroom")

app = typer.Typer(help="Opsroom: incident response from your chat.", no_args_is_help=True,
                  add_completion=False)
db_app = typer.Typer(help="Database schema commands.", no_args_is_help=True)
app.add_typer(db_app, name="db")


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"opsroom: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"configuration error: {problems}")


def setup_logging(settings: Settings, default: str | None = None) -> None:
    level = default if default and "OPSROOM_LOG_LEVEL" not in _environ() else settings.opsroom_log_level
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _environ() -> Mapping[str, str]:
    import os

    return os.environ


def catalog_from(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.opsroom_catalog)
    except CatalogError as exc:
        fail(f"catalog error: {exc}")


@dataclass
class Core:
    settings: Settings
    catalog: Catalog
    engine: AsyncEngine
    store: SqlStore
    mirror: Mirror
    service: IncidentService


async def build_core(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    ports: Mapping[str, ChatPort] | None = None,
    suggester: Suggester | None = None,
) -> Core:
    """Open the database (creating or migrating its schema) and wire the core to `ports`."""
    catalog = catalog or catalog_from(settings)
    try:
        engine = make_engine(settings.database_url)
    except ValueError as exc:
        fail(str(exc))
    try:
        await upgrade(engine)
    except Exception as exc:
        await engine.dispose()
        fail(f"cannot open the database {safe_url(settings.database_url)}: "
             f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")
    store = SqlStore(engine)
    mirror = Mirror(store=store, ports=ports or {}, catalog=catalog)
    service = IncidentService(
        store=store, catalog=catalog, suggester=suggester or HeuristicSuggester(),
        platforms=settings.platforms(), notify=mirror.wake,
    )
    return Core(settings, catalog, engine, store, mirror, service)


async def run_console(settings: Settings) -> None:
    chat = ConsoleChat(console_user(), out=print)
    core = await build_core(settings, ports={"console": chat})
    mirror_task = asyncio.create_task(core.mirror.run())
    session = ConsoleSession(service=core.service, mirror=core.mirror, store=core.store,
                             chat=chat, stdin=sys.stdin, interactive=sys.stdin.isatty())
    try:
        await session.run()
    finally:
        await core.mirror.stop()
        mirror_task.cancel()
        await asyncio.gather(mirror_task, return_exceptions=True)
        await core.engine.dispose()


@app.command()
def run() -> None:
    """Run the bot: every configured chat adapter, or the console chat when none is."""
    settings = load_settings()
    setup_logging(settings)
    if not (settings.slack_enabled or settings.discord_enabled):
        logger.info("no chat platform configured (set SLACK_BOT_TOKEN or DISCORD_TOKEN); "
                    "starting the console chat")
        typer.echo("No chat platform is configured (SLACK_BOT_TOKEN, DISCORD_TOKEN): "
                   "starting the console chat.", err=True)
        asyncio.run(run_console(settings))
        return
    fail("the Slack and Discord adapters are not part of this build yet; unset "
         "SLACK_BOT_TOKEN and DISCORD_TOKEN to use the console chat")


@app.command()
def shell() -> None:
    """The local console chat: a workspace in your terminal (reads a pipe too)."""
    settings = load_settings()
    setup_logging(settings, default="WARNING")
    asyncio.run(run_console(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    settings = load_settings()
    setup_logging(settings)

    async def go() -> str | None:
        try:
            engine = make_engine(settings.database_url)
        except ValueError as exc:
            fail(str(exc))
        try:
            await upgrade(engine)
            return await current_revision(engine)
        finally:
            await engine.dispose()

    revision = asyncio.run(go())
    typer.echo(f"{safe_url(settings.database_url)} is at schema revision {revision}")


@app.command()
def doctor() -> None:
    """Check the configuration, the catalog and the database, and say what would start."""
    settings = load_settings()
    catalog = catalog_from(settings)
    typer.echo(f"catalog: {settings.opsroom_catalog or 'default'} "
               f"({len(catalog.incident_types)} incident types, "
               f"{len(catalog.severities)} severities)")

    async def check_db() -> str | None:
        engine = make_engine(settings.database_url)
        try:
            return await current_revision(engine)
        finally:
            await engine.dispose()

    try:
        revision = asyncio.run(check_db())
        typer.echo(f"database: {safe_url(settings.database_url)} "
                   f"(schema {revision or 'empty: created on first run'})")
    except Exception as exc:
        fail(f"database: {safe_url(settings.database_url)} unreachable: {type(exc).__name__}")
    for name, on in (("slack", settings.slack_enabled), ("discord", settings.discord_enabled),
                     ("openai", settings.openai_api_key is not None)):
        typer.echo(f"{name}: {'configured' if on else 'not configured'}")
    typer.echo(f"platforms: {', '.join(settings.platforms())}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
