"""`opsroom`: the command line, and the composition root (the one place that knows every class)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import clock_from
from adapters.console import ConsoleChat, ConsoleSession, console_user
from adapters.scheduler import JobScheduler
from adapters.settings import (
    DatabaseLocation,
    Settings,
    database_location,
    prepare_database_dir,
)
from bot import retention as bot_retention
from bot.ai import PlainSummarizer, suggestion_json, suggestion_text
from bot.catalog import Catalog, CatalogError, load_catalog
from bot.jobs import JobWorker
from bot.mirror import Mirror, RateLimit
from bot.models import Job, JobState
from bot.ports import ChatPort, Clock, Suggester, Suggestion, Summarizer
from bot.redact import Redactor
from bot.service import IncidentService
from bot.suggest import HeuristicSuggester
from bot.timing import parse_duration
from storage.engine import (
    current_revision,
    describe_error,
    make_engine,
    sqlite_problem,
    upgrade,
)
from storage.store import SqlStore

logger = logging.getLogger("opsroom")

HELP = """Opsroom: incident response from your chat.

Settings come from the environment and from a .env file in the current directory (every one
is listed in .env.example); none is needed for the console chat."""

# Plain (not rich) help: rich help shows every flag as "--json <bool>".
app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
db_app = typer.Typer(
    help="Database schema commands.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")


def version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("opsroom")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def _show_version(value: bool) -> None:
    if value:
        typer.echo(f"opsroom {version()}")
        raise typer.Exit()


@app.callback()
def _main(
    _version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    pass


def fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"opsroom: {message}", err=True)
    raise typer.Exit(code)


def load_settings() -> Settings:
    try:
        return Settings()
    except SettingsError as exc:  # e.g. a list setting that is not valid JSON
        fail(f"configuration error: {str(exc).split(' from source')[0]}")
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()
        )
        fail(f"configuration error: {problems}")


def setup_logging(settings: Settings, default: str | None = None) -> None:
    level = (
        default if default and "OPSROOM_LOG_LEVEL" not in os.environ else settings.opsroom_log_level
    )
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def catalog_from(settings: Settings) -> Catalog:
    try:
        return load_catalog(settings.opsroom_catalog)
    except CatalogError as exc:
        fail(f"catalog error: {exc}")


def ai_from(settings: Settings, catalog: Catalog) -> tuple[Suggester, Summarizer]:
    """The suggester and catch-up summariser: a model when OPENAI_API_KEY or OPENAI_BASE_URL
    is set, the built-in heuristic and key-event list otherwise."""
    if not settings.ai_enabled:
        return HeuristicSuggester(), PlainSummarizer()
    # Imported here: the openai SDK takes a second to import, and most runs never need it.
    from adapters.openai_suggester import OpenAISuggester, OpenAISummarizer, make_client

    try:
        redactor = Redactor([*settings.opsroom_redact_patterns, *catalog.redact_patterns])
    except ValueError as exc:
        fail(
            f"configuration error: OPSROOM_REDACT_PATTERNS or the catalog's redact_patterns: {exc}"
        )
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    client = make_client(
        api_key=key, base_url=settings.openai_base_url, budget_s=settings.openai_budget_s
    )
    # Without a key (a local vLLM/Ollama/LM Studio) no Authorization header is sent at all.
    common: dict[str, Any] = {
        "budget_s": settings.openai_budget_s,
        "redactor": redactor,
        "send_auth": key is not None,
    }
    return (
        OpenAISuggester(client, settings.openai_model, **common),
        OpenAISummarizer(client, settings.openai_model, **common),
    )


async def open_database(settings: Settings) -> tuple[AsyncEngine, DatabaseLocation]:
    """The engine of the database in use, its schema created or migrated; any database that
    cannot be used ends the command with one line saying which and why (never a traceback)."""
    location = database_location(settings)
    problem = None
    try:
        prepare_database_dir(location)
    except OSError as exc:
        problem = f"cannot create {location.path.parent if location.path else ''}: {exc.strerror}"
    if problem is None and location.path is not None:
        problem = sqlite_problem(location.path)
    if problem is not None:
        fail(f"cannot open the database {location.shown}: {problem}")
    try:
        engine = make_engine(location.url)
    except ValueError as exc:  # an unsupported or unparseable URL, said without its password
        fail(str(exc))
    try:
        await upgrade(engine)
    except Exception as exc:
        logger.debug("opening the database failed", exc_info=True)
        await engine.dispose()
        fail(f"cannot open the database {location.shown}: {describe_error(exc)}")
    return engine, location


@dataclass
class Core:
    settings: Settings
    catalog: Catalog
    engine: AsyncEngine
    store: SqlStore
    mirror: Mirror
    service: IncidentService
    clock: Clock
    database: DatabaseLocation
    worker: JobWorker
    wakers: list[Callable[[], None]] = field(default_factory=list)  # run after each commit

    def scheduler(self) -> JobScheduler:
        """The job scheduler, woken after every commit like the mirror."""
        scheduler = JobScheduler(
            worker=self.worker,
            store=self.store,
            catalog=self.catalog,
            tick_s=self.settings.opsroom_tick_s,
            clock=self.clock,
        )
        self.wakers.append(scheduler.wake)
        return scheduler


async def schedule_retention(core: Core) -> None:
    """Today's retention run (bot/retention.py), with OPSROOM_RETENTION as set now."""
    try:
        retention = parse_duration(core.settings.opsroom_retention)
    except ValueError as exc:
        fail(f"OPSROOM_RETENTION: {exc}")
    await bot_retention.schedule_daily(core.store, now=core.clock.now(), retention=retention)


def channel_limits(rate: float) -> dict[str, RateLimit]:
    """Per-channel pacing: Slack allows about one post a second with short bursts, Discord
    five per five seconds per channel."""
    if rate <= 0:
        return {}
    return {"slack": RateLimit(rate, burst=10), "discord": RateLimit(rate, burst=5)}


async def build_core(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    ports: Mapping[str, ChatPort] | None = None,
    suggester: Suggester | None = None,
    summarizer: Summarizer | None = None,
    clock: Clock | None = None,
) -> Core:
    """Open the database (creating or migrating its schema) and wire the core to `ports`."""
    catalog = catalog or catalog_from(settings)
    engine, location = await open_database(settings)
    typer.echo(location.note, err=True)
    clock = clock or clock_from(settings.opsroom_fake_now)
    store = SqlStore(engine)
    mirror = Mirror(store=store, ports=ports or {}, catalog=catalog, clock=clock,
                    limits=channel_limits(settings.opsroom_channel_rate))
    default_suggester, default_summarizer = ai_from(settings, catalog)
    wakers: list[Callable[[], None]] = [mirror.wake]

    def notify() -> None:
        for wake in wakers:
            wake()

    service = IncidentService(
        store=store,
        catalog=catalog,
        suggester=suggester or default_suggester,
        summarizer=summarizer or default_summarizer,
        clock=clock,
        platforms=settings.platforms(),
        notify=notify,
    )
    worker = JobWorker(
        store=store,
        catalog=catalog,
        record=service.record,
        clock=clock,
        notify=mirror.wake,
        tick=timedelta(seconds=settings.opsroom_tick_s),
    )
    return Core(settings, catalog, engine, store, mirror, service, clock, location, worker, wakers)


async def run_console(settings: Settings, notice: str | None = None) -> None:
    """The console chat until /quit, end of input, Ctrl-C, SIGINT or SIGTERM; what is in
    flight is finished (the mirror drains) either way. `notice` goes to stderr once the
    database is open."""
    import signal

    from adapters.console import (
        ConsoleCompleter,
        LineReader,
        PipeReader,
        PromptReader,
        prompt_completer,
    )
    from adapters.settings import user_data_dir

    clock = clock_from(settings.opsroom_fake_now)
    chat = ConsoleChat(console_user(), out=print, clock=clock)
    core = await build_core(settings, ports={"console": chat}, clock=clock)
    if notice:
        typer.echo(notice, err=True)
    mirror_task = asyncio.create_task(core.mirror.run())
    interactive = sys.stdin.isatty()
    # A terminal to draw prompts on: stdout, or stderr when stdout is a pipe or a file. Reading
    # a terminal through prompt_toolkit also lifts its cooked mode's 4 KB line limit.
    screen = next((s for s in (sys.stdout, sys.stderr) if s.isatty()), None)
    terminal = interactive and screen is not None
    session: ConsoleSession
    reader: LineReader
    if terminal:
        completer = ConsoleCompleter(
            incidents=lambda: session.open_incidents, channels=lambda: list(chat.channels)
        )
        reader = PromptReader(
            history=user_data_dir() / "console_history",
            completer=prompt_completer(completer),
            prompts=None if screen is sys.stdout else screen,
        )
    else:
        reader = PipeReader(sys.stdin, prompts=sys.stdout if interactive else None)
    scheduler = core.scheduler()
    await scheduler.start()
    session = ConsoleSession(
        service=core.service,
        mirror=core.mirror,
        store=core.store,
        chat=chat,
        reader=reader,
        interactive=interactive,
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, session.stop)
    try:
        if terminal and screen is sys.stdout:
            from prompt_toolkit.patch_stdout import patch_stdout

            # Lines the mirror prints while someone types go above the prompt, not into it.
            with patch_stdout(raw=True):
                await session.run()
        else:
            await session.run()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await scheduler.stop()
        await core.mirror.stop()
        mirror_task.cancel()
        await asyncio.gather(mirror_task, return_exceptions=True)
        await core.engine.dispose()


async def run_service(settings: Settings) -> None:
    """Serve every configured adapter and the HTTP app until SIGTERM/SIGINT, then finish."""
    import signal

    import uvicorn
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.http import Readiness, create_app
    from adapters.slack.app import SlackEdge

    readiness = Readiness()
    core = await build_core(settings)
    background: list[asyncio.Task[None]] = [asyncio.create_task(core.mirror.run())]
    scheduler = core.scheduler()
    slack: SlackEdge | None = None
    socket_handler = None
    if settings.slack_bot_token is not None:
        client = AsyncWebClient(
            token=settings.slack_bot_token.get_secret_value(), base_url=settings.slack_api_url
        )
        secret = (
            settings.slack_signing_secret.get_secret_value()
            if settings.slack_signing_secret
            else ""
        )
        slack = SlackEdge(
            service=core.service,
            store=core.store,
            catalog=core.catalog,
            client=client,
            signing_secret=secret,
        )
        core.mirror.ports["slack"] = slack.chat
        readiness.expect("slack")
        if settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            socket_handler = AsyncSocketModeHandler(
                slack.app, settings.slack_app_token.get_secret_value()
            )
        background.append(asyncio.create_task(_start_slack(slack, readiness, socket_handler)))

    discord_edge = None
    if settings.discord_token is not None:
        from adapters.discord.app import DiscordEdge

        discord_edge = DiscordEdge(
            service=core.service,
            store=core.store,
            catalog=core.catalog,
            token=settings.discord_token.get_secret_value(),
            api_url=settings.discord_api_url,  # start() assigns it to discord.http.Route.BASE
            guild_id=settings.discord_guild_id,
            gateway=settings.discord_gateway,
        )
        core.mirror.ports["discord"] = discord_edge.chat
        await discord_edge.start(readiness)  # ready on gateway READY + commands synced

    server = uvicorn.Server(
        uvicorn.Config(
            # In Socket Mode without a signing secret Slack never posts to us, and Bolt could
            # not verify what came: /slack/events is mounted only with a secret to check.
            create_app(readiness, slack.app if slack and settings.slack_signing_secret else None),
            host=settings.opsroom_http_host,
            port=settings.opsroom_http_port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
    )
    # uvicorn re-raises the signal it caught after it stops; with these handlers in place that
    # re-raise is harmless and we go on to finish in-flight deliveries and exit 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    logger.info("serving HTTP on %s:%d", settings.opsroom_http_host, settings.opsroom_http_port)
    try:
        await schedule_retention(core)
        await scheduler.start()
        await server.serve()
    finally:
        logger.info("stopping: finishing in-flight work")
        if socket_handler is not None:
            await socket_handler.close_async()
        if slack is not None:
            await slack.drain_tasks()
        await scheduler.stop()  # before the mirror, so what its last pass queued is sent
        await core.mirror.stop()
        if discord_edge is not None:
            await discord_edge.stop()  # after the mirror, so in-flight deliveries still arrive
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await core.engine.dispose()
    logger.info("stopped")


async def _start_slack(slack: Any, readiness: Any, socket_handler: Any) -> None:
    """auth.test until it passes (Slack may be briefly unreachable), then mark Slack ready."""
    delay = 1.0
    while True:
        try:
            await slack.check_auth()
            break
        except Exception as exc:
            logger.warning(
                "slack: auth.test failed (%s); retrying in %.0fs", type(exc).__name__, delay
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 60.0)
    if socket_handler is not None:
        await socket_handler.connect_async()
        logger.info("slack: connected in Socket Mode")
    readiness.mark_ready("slack")
    logger.info("slack: ready (team %s, bot user %s)", slack.team_id, slack.bot_user_id)


@app.command()
def run() -> None:
    """Run the bot: every configured chat adapter, or the console chat when none is."""
    settings = load_settings()
    warn_unknown_variables(settings)
    console = not (settings.slack_enabled or settings.discord_enabled)
    setup_logging(settings, default="WARNING" if console else None)
    if console:
        logger.info(
            "no chat platform configured (set SLACK_BOT_TOKEN or DISCORD_TOKEN); "
            "starting the console chat"
        )
        asyncio.run(
            run_console(
                settings,
                notice="No chat platform is configured (SLACK_BOT_TOKEN, DISCORD_TOKEN): "
                "starting the console chat.",
            )
        )
        return
    if settings.slack_enabled and not (settings.slack_signing_secret or settings.slack_app_token):
        fail(
            "SLACK_BOT_TOKEN is set but neither SLACK_SIGNING_SECRET (HTTP mode) nor "
            "SLACK_APP_TOKEN (Socket Mode) is: Slack requests could not be verified"
        )
    asyncio.run(run_service(settings))


@app.command()
def shell() -> None:
    """The local console chat: a workspace in your terminal (reads a pipe too)."""
    settings = load_settings()
    warn_unknown_variables(settings)
    setup_logging(settings, default="WARNING")
    asyncio.run(run_console(settings))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> tuple[DatabaseLocation, str | None, str | None]:
        location = database_location(settings)
        before = None
        if location.path is None or location.path.is_file():
            before = await _revision_or_none(location.url)
        engine, location = await open_database(settings)
        try:
            return location, before, await current_revision(engine)
        except Exception as exc:
            fail(f"cannot read the schema of {location.shown}: {describe_error(exc)}")
        finally:
            await engine.dispose()

    location, before, after = asyncio.run(go())
    if location.origin != "DATABASE_URL":
        typer.echo(location.note, err=True)
    if before == after:
        typer.echo(f"{location.shown} is at schema revision {after} (already the latest)")
    else:
        typer.echo(
            f"{location.shown} is at schema revision {after} "
            f"(upgraded from {before or 'an empty database'})"
        )


async def _revision_or_none(url: str) -> str | None:
    """The schema revision before upgrading, for the report; None when it cannot be read (the
    upgrade that follows then says why)."""
    try:
        engine = make_engine(url)
    except ValueError:
        return None
    try:
        return await current_revision(engine)
    except Exception:
        return None
    finally:
        await engine.dispose()


def warn_unknown_variables(settings: Settings) -> None:
    """Misspelt OPSROOM_/SLACK_/DISCORD_ names, said on stderr before anything starts."""
    from adapters.doctor import startup_warnings

    for line in startup_warnings(settings):
        typer.echo(line, err=True)


@app.command()
def doctor(
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object, for machines."),
    timeout: float = typer.Option(
        5.0, "--timeout", min=0.1, help="Seconds each check may wait for an answer."
    ),
) -> None:
    """Check the whole set-up (settings and .env, catalog, database, Slack, Discord, the AI
    endpoint) and say how to fix what is wrong; exits 1 when anything is an error."""
    from adapters.doctor import run_doctor

    raise typer.Exit(run_doctor(as_json=as_json, timeout=timeout, echo=typer.echo))


@app.command()
def jobs(
    failed: bool = typer.Option(False, "--failed", help="List failed jobs, with why they failed."),
) -> None:
    """List the pending jobs (reminders...) of the whole database, soonest first."""
    settings = load_settings()
    setup_logging(settings, default="WARNING")
    catalog = catalog_from(settings)

    async def go() -> list[str]:
        engine, location = await open_database(settings)
        try:
            async with SqlStore(engine).unit() as u:
                states = [JobState.FAILED] if failed else [JobState.PENDING, JobState.RUNNING]
                rows = await u.jobs(states=states, limit=1000)
                numbers = {i.id: i.number for i in await u.incidents(include_closed=True)}
            return [job_line(job, numbers.get(job.incident_id), catalog) for job in rows]
        except Exception as exc:
            fail(f"cannot read jobs from {location.shown}: {describe_error(exc)}")
        finally:
            await engine.dispose()

    lines = asyncio.run(go())
    what = "failed" if failed else "pending"
    if not lines:
        typer.echo(f"No {what} jobs.")
        return
    more = " (the first 1000)" if len(lines) == 1000 else ""
    typer.echo(f"{len(lines)} {what} job{'s' if len(lines) != 1 else ''}{more}:")
    for line in lines:
        typer.echo(line)


def job_line(job: Job, incident: int | None, catalog: Catalog) -> str:
    due = job.due_at.astimezone(catalog.tz)
    parts = [
        f"{job.id:>6}",
        f"{due:%Y-%m-%d %H:%M:%S} {due.tzname()}",
        f"{job.state.value:<8}",
        f"#{incident}" if incident is not None else "-",
        job.kind,
        job.key,
        f"attempts {job.attempts}",
    ]
    if job.state is JobState.RUNNING and job.claimed_by:
        parts.append(f"claimed by {job.claimed_by}")
    if job.last_error:
        parts.append(f"last error: {job.last_error}")
    return "  ".join(parts)


@app.command()
def suggest(
    text: str = typer.Argument(..., help="What is happening, as you would type it to declare."),
    type_: str | None = typer.Option(None, "--type", help="The incident type, like type=<type>."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Show what the suggester would fill in for a description, and where each value came from."""
    if not text.strip():
        fail(
            "nothing to suggest from: describe what is happening, e.g. "
            'opsroom suggest "checkout 500s in EU since the 14:05 deploy"'
        )
    settings = load_settings()
    setup_logging(settings, default="WARNING")
    catalog = catalog_from(settings)
    if type_ is not None and catalog.incident_type(type_) is None:
        fail(f'unknown incident type "{type_}": use {", ".join(catalog.type_names)}')
    suggester, _ = ai_from(settings, catalog)

    async def go() -> Suggestion:
        try:
            return await suggester.suggest(description=text, type_hint=type_, catalog=catalog)
        finally:
            client = getattr(suggester, "client", None)
            if client is not None:
                await client.close()

    s = asyncio.run(go())
    typer.echo(suggestion_json(s) if as_json else suggestion_text(s))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C before the console or the service took over signals
        typer.echo("opsroom: interrupted", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
