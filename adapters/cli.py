"""`opsroom`: the command line, and the composition root (the one place that knows every class)."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from sqlalchemy.ext.asyncio import AsyncEngine

from adapters.clock import clock_from
from adapters.console import ConsoleChat, ConsoleSession, console_user
from adapters.http_client import AiohttpClient
from adapters.scheduler import JobScheduler
from adapters.settings import (
    DatabaseLocation,
    Settings,
    database_location,
    prepare_database_dir,
)
from bot import oncall as bot_oncall
from bot import retention as bot_retention
from bot.ai import PlainSummarizer, suggestion_json, suggestion_text
from bot.catalog import Catalog, CatalogError, load_catalog
from bot.jobs import JobWorker
from bot.mirror import Mirror, RateLimit
from bot.models import Job, JobState
from bot.ports import ChatPort, Clock, Suggester, Suggestion, Summarizer
from bot.redact import Redactor
from bot.runbooks import RunbookRunner, env_secrets
from bot.service import IncidentService
from bot.steps import Tools
from bot.suggest import HeuristicSuggester
from bot.timing import parse_duration
from storage.claims import holder_id
from storage.engine import (
    SchemaError,
    current_revision,
    describe_error,
    make_engine,
    sqlite_problem,
    upgrade,
)
from storage.store import SqlStore

logger = logging.getLogger("opsroom")

STOP_GRACE = 10.0  # seconds SIGTERM waits for acknowledged inputs to be applied

HELP = """Opsroom: incident response from your chat.

Settings come from the environment and from a .env file in the current directory (every one
is listed in .env.example); none is needed for the console chat."""

# Plain (not rich) help: rich help shows every flag as "--json <bool>".
app = typer.Typer(help=HELP, no_args_is_help=True, add_completion=False, rich_markup_mode=None)
db_app = typer.Typer(
    help="Database schema commands.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(db_app, name="db")
token_app = typer.Typer(
    help="API tokens (REST API and web view).", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(token_app, name="token")


catalog_app = typer.Typer(help="Catalog commands.", no_args_is_help=True, rich_markup_mode=None)
app.add_typer(catalog_app, name="catalog")


@catalog_app.command("check")
def catalog_check(
    path: str | None = typer.Argument(None, help="the catalog file (default: OPSROOM_CATALOG)"),
) -> None:
    """Validate the catalog (runbooks, templates, workflows included) and print its problems."""
    where = path or os.environ.get("OPSROOM_CATALOG") or None
    try:
        catalog = load_catalog(where)
    except CatalogError as exc:
        typer.echo(f"error: {exc.located()}", err=True)
        raise typer.Exit(1) from None
    for warning in catalog.warnings():
        typer.echo(f"warning: {where or 'default catalog'}: {warning}", err=True)
    typer.echo(
        f"{where or 'default catalog'}: OK ({len(catalog.incident_types)} types, "
        f"{len(catalog.runbooks)} runbooks, {len(catalog.workflows)} workflows)"
    )


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
        catalog = load_catalog(settings.opsroom_catalog)
    except CatalogError as exc:
        fail(f"catalog error: {exc.located()}")
    for warning in catalog.warnings():  # a type naming a runbook nobody defined
        logger.warning("catalog: %s", warning)
    return catalog


def reload_catalog(path: Path | None, holders: list[Any]) -> Catalog | None:
    """SIGHUP: the catalog read again and, when it is valid, handed to every holder (the core,
    the service, the mirror, the worker...). A broken one is logged and the old one kept."""
    try:
        catalog = load_catalog(path)
    except CatalogError as exc:
        logger.error("catalog reload failed, keeping the catalog in use: %s", exc.located())
        return None
    for warning in catalog.warnings():
        logger.warning("catalog: %s", warning)
    for holder in holders:
        if holder is not None and hasattr(holder, "catalog"):
            holder.catalog = catalog
    logger.info(
        "catalog reloaded: %d types, %d runbooks, %d workflows",
        len(catalog.incident_types), len(catalog.runbooks), len(catalog.workflows),
    )
    return catalog


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


async def schedule_oncall(core: Core) -> None:
    """The next shift-change announcement of each schedule with a channel, and the next daily
    coverage check (bot/oncall.py): one job each however many replicas start."""
    now = core.clock.now()
    await bot_oncall.plan_handoffs(core.store, core.catalog, now)
    await bot_oncall.schedule_coverage_check(core.store, core.catalog, now)


def channel_limits(rate: float) -> dict[str, RateLimit]:
    """Per-channel pacing: Slack allows about one post a second with short bursts, Discord
    five per five seconds per channel."""
    if rate <= 0:
        return {}
    return {"slack": RateLimit(rate, burst=10), "discord": RateLimit(rate, burst=5)}


def _transient(exc: BaseException) -> bool:
    """A database error that may pass by itself (down, restarting, not answering, busy)."""
    if isinstance(exc, OSError | TimeoutError):
        return True
    orig = getattr(exc, "orig", None)
    if getattr(exc, "connection_invalidated", False) or isinstance(orig, OSError | TimeoutError):
        return True
    names = {type(orig).__name__, type(getattr(orig, "__cause__", None)).__name__}
    if names & {"CannotConnectNowError", "TooManyConnectionsError", "ConnectionDoesNotExistError"}:
        return True
    return "database is locked" in str(exc)


async def open_database(
    settings: Settings, *, wait: bool = False
) -> tuple[AsyncEngine, DatabaseLocation]:
    """The engine of the database in use, its schema created or migrated; any database that
    cannot be used ends the command with one line saying which and why (never a traceback).
    With `wait`, a database that cannot be reached yet is tried again (each try logged, no
    secret) until it answers."""
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
        engine = make_engine(location.url, timeout_s=settings.opsroom_db_timeout_s)
    except ValueError as exc:  # an unsupported or unparseable URL, said without its password
        fail(str(exc))
    delay = 1.0
    while True:
        try:
            await upgrade(engine)
            return engine, location
        except SchemaError as exc:
            await engine.dispose()
            fail(f"database {location.shown}: {exc}")
        except Exception as exc:
            if not (wait and _transient(exc)):
                logger.debug("opening the database failed", exc_info=True)
                await engine.dispose()
                fail(f"cannot open the database {location.shown}: {describe_error(exc)}")
            logger.warning(
                "database %s: not reachable (%s); retrying in %.0fs", location.shown,
                type(exc).__name__, delay,
            )
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def build_core(
    settings: Settings,
    *,
    catalog: Catalog | None = None,
    ports: Mapping[str, ChatPort] | None = None,
    suggester: Suggester | None = None,
    summarizer: Summarizer | None = None,
    clock: Clock | None = None,
    wait_for_database: bool = False,
) -> Core:
    """Open the database (creating or migrating its schema) and wire the core to `ports`."""
    catalog = catalog or catalog_from(settings)
    engine, location = await open_database(settings, wait=wait_for_database)
    typer.echo(location.note, err=True)
    clock = clock or clock_from(settings.opsroom_fake_now)
    store = SqlStore(engine)
    mirror = Mirror(
        store=store, ports=ports or {}, catalog=catalog, clock=clock,
        public_url=settings.opsroom_public_url,
        limits=channel_limits(settings.opsroom_channel_rate),
        http=AiohttpClient(), env=os.environ, holder=holder_id(),
    )
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
    # Runbook steps are advanced with each worker pass; HTTP steps read OPSROOM_SECRET_* only.
    runner = RunbookRunner(
        service=service,
        store=store,
        clock=clock,
        tools=Tools(http=AiohttpClient(), env=env_secrets(os.environ)),
    )
    worker = JobWorker(
        store=store,
        catalog=catalog,
        record=service.record,
        clock=clock,
        notify=mirror.wake,
        tick=timedelta(seconds=settings.opsroom_tick_s),
        passes=[runner],
        platforms=settings.platforms(),
        public_url=settings.opsroom_public_url,
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
    await schedule_oncall(core)
    await scheduler.start()
    http = await _console_http(settings, core) if terminal or _port_set(settings) else None
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
        if http is not None:
            http.should_exit = True
            await asyncio.gather(*_http_tasks, return_exceptions=True)
        await scheduler.stop()
        await core.mirror.stop()
        mirror_task.cancel()
        await asyncio.gather(mirror_task, return_exceptions=True)
        await core.engine.dispose()


def alert_auth(settings: Settings, catalog: Catalog) -> Any:
    """The secrets the alert endpoints check (adapters/alerts_http.py)."""
    from adapters.alerts_http import AlertAuth

    token = settings.opsroom_alert_token
    return AlertAuth.from_env(catalog, token.get_secret_value() if token else None)


def _port_set(settings: Settings) -> bool:
    return "opsroom_http_port" in settings.model_fields_set


_http_tasks: list[asyncio.Task[None]] = []


def _beside_console_server() -> Any:
    import contextlib
    from collections.abc import Iterator

    import uvicorn

    class BesideConsole(uvicorn.Server):
        """uvicorn leaving SIGINT and SIGTERM to the console, which stops it itself."""

        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield

    return BesideConsole


async def _console_http(settings: Settings, core: Any) -> Any:
    """The HTTP app (alerts, health) beside the console, so alerts sent from another terminal
    open incidents here. A port in use is one line; the console runs on without HTTP."""
    import socket

    import uvicorn

    from adapters.http import Readiness, create_app

    host, port = settings.opsroom_http_host, settings.opsroom_http_port
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        typer.echo(
            f"opsroom: HTTP not served: {host}:{port}: {exc.strerror or exc}; the console runs "
            "without it (set OPSROOM_HTTP_PORT to a free port)",
            err=True,
        )
        return None
    from adapters.metrics import CommandTimer, metrics_router

    timer = CommandTimer()
    timer.instrument(core.service)
    app = create_app(
        Readiness(),
        alerts=(core.service, alert_auth(settings, core.catalog)),
        metrics=metrics_router(core.engine, core.clock.now, timer),
    )
    server = _beside_console_server()(
        uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
    )
    _http_tasks.append(asyncio.create_task(server.serve(sockets=[sock])))
    logger.info("console: serving HTTP on %s:%d", host, sock.getsockname()[1])
    return server


async def run_service(settings: Settings) -> None:
    """Serve every configured adapter and the HTTP app until SIGTERM/SIGINT, then finish."""
    import signal

    import uvicorn
    from slack_sdk.web.async_client import AsyncWebClient

    from adapters.api import WebContext
    from adapters.http import Health, Readiness, create_app
    from adapters.inbox import Inbox, InboxWorker
    from adapters.slack.app import SlackEdge

    readiness = Readiness()
    core = await build_core(settings, wait_for_database=True)
    # Every input is stored before it is acknowledged, and applied by the worker (in order,
    # per channel, across replicas): see adapters/inbox.py.
    inbox = Inbox(core.store, max_unapplied=settings.opsroom_inbox_max)
    scheduler = core.scheduler()

    def committed() -> None:  # an applied batch may have queued deliveries and jobs
        for wake in core.wakers:
            wake()

    worker = InboxWorker(store=core.store, appliers={}, notify=committed, turns=inbox.turns)
    inbox.on_stored = worker.wake
    background: list[asyncio.Task[None]] = [asyncio.create_task(core.mirror.run())]
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
            inbox=inbox,
        )
        core.mirror.ports["slack"] = slack.chat
        worker.appliers["slack"] = slack
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
            inbox=inbox,
            gateway=settings.discord_gateway,
        )
        core.mirror.ports["discord"] = discord_edge.chat
        worker.appliers["discord"] = discord_edge
        await discord_edge.start(readiness)  # ready on gateway READY + commands synced

    web = WebContext(
        service=core.service,
        store=core.store,
        public_url=settings.opsroom_public_url,
        trusted_header=settings.opsroom_web_trusted_header,
    )
    from adapters.metrics import CommandTimer, metrics_router

    timer = CommandTimer()
    timer.instrument(core.service)
    server = uvicorn.Server(
        uvicorn.Config(
            # In Socket Mode without a signing secret Slack never posts to us, and Bolt could
            # not verify what came: /slack/events is mounted only with a secret to check.
            create_app(
                readiness,
                slack.app if slack and settings.slack_signing_secret else None,
                web=web,
                metrics=metrics_router(core.engine, core.clock.now, timer),
                alerts=(core.service, alert_auth(settings, core.catalog)),
                routers=[oncall_router_from(core)],
                slack_secret=secret if slack else "",
                health=Health(core.store, timeout=min(settings.opsroom_db_timeout_s, 3.0)),
                max_body_bytes=settings.opsroom_max_body_bytes,
            ),
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
    background.append(asyncio.create_task(worker.run()))
    holders = [core, core.service, core.mirror, core.worker, scheduler, slack, discord_edge]
    replans: set[asyncio.Task[None]] = set()

    def reload() -> None:
        if reload_catalog(settings.opsroom_catalog, holders) is not None:
            # Schedules may have changed: their shift-change jobs are planned again.
            task = asyncio.create_task(schedule_oncall(core))
            replans.add(task)
            task.add_done_callback(replans.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, reload)
    logger.info("serving HTTP on %s:%d", settings.opsroom_http_host, settings.opsroom_http_port)
    background.append(asyncio.create_task(_end_streams_on_exit(server, web.stopping)))
    try:
        await schedule_retention(core)
        await schedule_oncall(core)
        await scheduler.start()
        await server.serve()
    finally:
        logger.info("stopping: finishing in-flight work")
        web.stopping.set()  # open live pages' streams end
        if socket_handler is not None:
            await socket_handler.close_async()
        # What was acknowledged is applied now if it can be, else by the next start.
        await worker.stop(grace=STOP_GRACE)
        await inbox.close()
        if slack is not None:
            await slack.close()
        await scheduler.stop()  # before the mirror, so what its last pass queued is sent
        await core.mirror.stop()
        if discord_edge is not None:
            await discord_edge.stop()  # after the mirror, so in-flight deliveries still arrive
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await core.engine.dispose()
    logger.info("stopped")


async def _end_streams_on_exit(server: Any, stopping: asyncio.Event) -> None:
    """Live pages' streams never end by themselves: uvicorn waits for open responses before it
    stops, so they are told to end as soon as it starts stopping."""
    while not server.should_exit:
        await asyncio.sleep(0.2)
    stopping.set()


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


alert_app = typer.Typer(help="Alerts from monitoring.", no_args_is_help=True)
app.add_typer(alert_app, name="alert")
ALERT_PATHS = {
    "alertmanager": "/alerts/alertmanager",
    "grafana": "/alerts/grafana",
    "pagerduty": "/v2/enqueue",
    "generic": "/alerts/generic",
}


@alert_app.command("send")
def alert_send(
    file: Annotated[Path, typer.Argument(help="the alert payload, JSON")],
    source: str = typer.Option(
        "alertmanager", "--source", help="alertmanager, grafana, pagerduty or generic"
    ),
    url: str = typer.Option("", "--url", help="the bot's base URL (default: OPSROOM_HTTP_*)"),
) -> None:
    """Post an alert payload to the running bot, as the source would (to try routes)."""
    import json
    import urllib.error
    import urllib.request

    settings = load_settings()
    if source not in ALERT_PATHS:
        fail(f'unknown source "{source}": use {", ".join(ALERT_PATHS)}')
    try:
        body = file.read_bytes()
    except OSError as exc:
        fail(f"cannot read {file}: {exc.strerror}")
    token = settings.opsroom_alert_token.get_secret_value() if settings.opsroom_alert_token else ""
    if source == "pagerduty" and token:
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if isinstance(data, dict) and not data.get("routing_key"):
            body = json.dumps(data | {"routing_key": token}).encode()
    base = url or f"http://{settings.opsroom_http_host}:{settings.opsroom_http_port}"
    request = urllib.request.Request(
        base.rstrip("/") + ALERT_PATHS[source],
        data=body,
        method="POST",
        headers={"Content-Type": "application/json"}
        | ({"Authorization": f"Bearer {token}"} if token else {}),
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            typer.echo(f"{response.status} {response.read().decode('utf-8', 'replace')}")
    except urllib.error.HTTPError as exc:
        fail(f"{exc.code} {exc.read().decode('utf-8', 'replace')}", code=1)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        fail(f"cannot reach {base}: {reason}; is `opsroom run` running?", code=1)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or migrate the database schema to the latest version."""
    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> tuple[DatabaseLocation, str | None, str | None]:
        location = database_location(settings)
        before = None
        if location.path is None or location.path.is_file():
            before = await _revision_or_none(location.url, settings.opsroom_db_timeout_s)
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


async def _revision_or_none(url: str, timeout_s: float) -> str | None:
    """The schema revision before upgrading, for the report; None when it cannot be read (the
    upgrade that follows then says why)."""
    try:
        engine = make_engine(url, timeout_s=timeout_s)
    except ValueError:
        return None
    try:
        return await current_revision(engine)
    except Exception:
        return None
    finally:
        await engine.dispose()


@token_app.command("create")
def token_create(
    name: str = typer.Option(..., "--name", help="Who uses it: entries it writes show this."),
    scope: str = typer.Option(..., "--scope", help="read, or write (read and change)."),
    private: bool = typer.Option(False, "--private", help="It also sees private incidents."),
) -> None:
    """Make a token; it is shown once, alone on the last line (only its hash is kept)."""
    from adapters.api.auth import TokenError, create_token

    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> str:
        engine, _ = await open_database(settings)
        try:
            _, token = await create_token(
                SqlStore(engine), name=name, scope=scope, private=private,
                now=clock_from(settings.opsroom_fake_now).now(),
            )
            return token
        except TokenError as exc:
            fail(str(exc))
        finally:
            await engine.dispose()

    token = asyncio.run(go())
    seen = "private and public incidents" if private else "public incidents"
    typer.echo(f"Token {name} ({scope.lower()}, {seen}). Shown once; keep it secret:")
    typer.echo(token)


@token_app.command("list")
def token_list() -> None:
    """Every token: name, scope, what it sees, when made, revoked or not (never the token)."""
    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> list[Any]:
        engine, _ = await open_database(settings)
        try:
            async with SqlStore(engine).unit() as u:
                return await u.tokens()
        finally:
            await engine.dispose()

    rows = asyncio.run(go())
    if not rows:
        typer.echo("No tokens yet: make one with opsroom token create --name NAME --scope read")
        return
    for row in rows:
        state = f"revoked {row.revoked_at:%Y-%m-%d %H:%M}" if row.revoked_at else "active"
        seen = "private too" if row.private else "public only"
        typer.echo(
            f"{row.name}\t{row.scope.value}\t{seen}\tcreated {row.created_at:%Y-%m-%d %H:%M}"
            f"\t{state}"
        )


@token_app.command("revoke")
def token_revoke(name: str = typer.Argument(..., help="The token's name.")) -> None:
    """Revoke a token: requests with it get 401 from now on."""
    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> tuple[bool, list[str]]:
        engine, _ = await open_database(settings)
        try:
            async with SqlStore(engine).unit() as u:
                done = await u.revoke_token(
                    name, now=clock_from(settings.opsroom_fake_now).now()
                )
                names = [t.name for t in await u.tokens() if t.revoked_at is None]
            return done, names
        finally:
            await engine.dispose()

    done, active = asyncio.run(go())
    if not done:
        fail(f'no active token named "{name}": active ones are {", ".join(active) or "none"}')
    typer.echo(f"Revoked {name}.")


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


oncall_app = typer.Typer(
    help="On-call schedules: who is on call, coverage problems, calendar feed keys.",
    no_args_is_help=True,
)
app.add_typer(oncall_app, name="oncall")


def oncall_router_from(core: Core) -> Any:
    """The `/oncall/<schedule>.ics` feeds of the HTTP app."""
    from adapters.oncall_ics import oncall_router

    secret = core.settings.opsroom_ics_secret
    return oncall_router(
        store=core.store,
        catalog=core.catalog,
        clock=core.clock,
        secret=secret.get_secret_value() if secret else None,
    )


@oncall_app.command("who")
def oncall_who(
    schedule: str | None = typer.Argument(None, help="A schedule (every one when left out)."),
) -> None:
    """Who is on call now, and until when."""
    _oncall_print(f"who {schedule or ''}")


@oncall_app.command("schedule")
def oncall_schedule(
    schedule: str = typer.Argument(..., help="The schedule."),
    days: int = typer.Option(7, "--days", min=1, max=90, help="How many days ahead."),
) -> None:
    """The next shifts of a schedule."""
    _oncall_print(f"schedule {schedule} {days}")


def _oncall_print(text: str) -> None:
    from bot.ports import Actor, ChannelRef

    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> Any:
        core = await build_core(settings)
        try:
            actor = Actor("console", "cli", "cli", "@cli")
            return await core.service.handle_oncall_text(
                text, actor=actor, where=ChannelRef("console", "cli")
            )
        finally:
            await core.engine.dispose()

    reply = asyncio.run(go())
    if not reply.ok:
        fail(reply.text, code=1)
    typer.echo(reply.text)


@oncall_app.command("check")
def oncall_check(
    days: int = typer.Option(14, "--days", min=1, max=90, help="How many days ahead to check."),
) -> None:
    """Gaps (nobody on call), people nobody can reach, handoffs at ambiguous local times.
    Exits 1 when it finds a problem, so a CI job or cron can alert on it."""
    from bot.oncall import coverage_problems

    settings = load_settings()
    setup_logging(settings, default="WARNING")
    catalog = catalog_from(settings)
    clock = clock_from(settings.opsroom_fake_now)

    async def go() -> list[Any]:
        engine, location = await open_database(settings)
        try:
            async with SqlStore(engine).unit() as u:
                return await coverage_problems(u, catalog, clock.now(), days)
        except Exception as exc:
            fail(f"cannot read overrides from {location.shown}: {describe_error(exc)}")
        finally:
            await engine.dispose()

    if not catalog.schedules:
        typer.echo("No schedules in the catalog: nothing to check.")
        return
    problems = asyncio.run(go())
    if not problems:
        typer.echo(f"On-call coverage is fine for the next {days} days "
                   f"({len(catalog.schedules)} schedules).")
        return
    typer.echo(f"{len(problems)} on-call problem{'s' if len(problems) != 1 else ''} "
               f"in the next {days} days:")
    for p in problems:
        typer.echo(f"  {p.schedule}: {p.text}")
    raise typer.Exit(1)


@oncall_app.command("ics-key")
def oncall_ics_key(schedule: str = typer.Argument(..., help="The schedule.")) -> None:
    """Print the key of a schedule's calendar feed, and the URL to subscribe to."""
    from adapters.oncall_ics import ics_key

    settings = load_settings()
    catalog = catalog_from(settings)
    found = catalog.schedule(schedule)
    if found is None:
        names = ", ".join(catalog.schedule_names) or "none (add schedules: to the catalog)"
        fail(f'unknown schedule "{schedule}": use {names}')
    if settings.opsroom_ics_secret is None:
        fail("set OPSROOM_ICS_SECRET (any long random string) to turn the calendar feeds on")
    key = ics_key(settings.opsroom_ics_secret.get_secret_value(), found.name)
    typer.echo(key)
    host = f"{settings.opsroom_http_host}:{settings.opsroom_http_port}"
    typer.echo(f"http://{host}/oncall/{found.name}.ics?key={key}", err=True)


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


@app.command()
def postmortem(
    number: int = typer.Argument(..., help="The incident number."),
    out_file: str | None = typer.Option(None, "--out", help="Write it to FILE (default: stdout)."),
    fmt: str = typer.Option("md", "--format", help="md (Markdown) or html."),
) -> None:
    """Generate a new postmortem version of an incident (stored; its channel gets the file
    when the bot runs) and print or write it."""
    out = Path(out_file) if out_file else None
    if fmt not in ("md", "html"):
        fail(f'unknown format "{fmt}": use md or html')
    settings = load_settings()
    setup_logging(settings, default="WARNING")

    async def go() -> tuple[str, str]:
        from bot.base import ServiceError
        from bot.ports import Actor

        core = await build_core(settings)
        try:
            actor = Actor(platform="cli", user_id=console_user(), name=console_user())
            try:
                reply, doc = await core.service.postmortem_for(number, actor)
            except ServiceError as exc:
                fail(str(exc))
            return reply.text, doc.markdown
        except Exception as exc:
            if isinstance(exc, (SystemExit, typer.Exit)):
                raise
            fail(f"cannot make the postmortem of #{number}: {describe_error(exc)}")
        finally:
            await core.engine.dispose()

    said, markdown = asyncio.run(go())
    from bot.postmortem import to_html

    text = to_html(markdown, f"Postmortem #{number}") if fmt == "html" else markdown
    if out is None:
        typer.echo(text, nl=False)
    else:
        try:
            out.write_text(text, encoding="utf-8")
        except OSError as exc:
            fail(f"cannot write {out}: {exc.strerror or exc}")
        typer.echo(f"{said} Written to {out}.", err=True)


@app.command()
def report(
    since: str = typer.Option("30d", "--since", help="How far back: 7d, 30d, 12w, 24h."),
    by: str | None = typer.Option(None, "--by", help="Group by type, severity or week."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    as_csv: bool = typer.Option(False, "--csv", help="Print CSV."),
    chart_file: str | None = typer.Option(None, "--chart", help="Draw FILE.png or FILE.svg too."),
) -> None:
    """Response times of the incidents declared in a period: count, mean, p50 and p90 time to
    acknowledge and to resolve, open and overdue action items."""
    from adapters import reporting
    from bot.report import GROUPS, build
    from bot.timing import parse_duration
    from storage import metrics as db

    chart = Path(chart_file) if chart_file else None
    try:
        back = parse_duration(since)
    except ValueError:
        back = _weeks(since)
    if by is not None and by not in GROUPS:
        fail(f'cannot group by "{by}": use {", ".join(GROUPS)}')
    if as_json and as_csv:
        fail("choose one of --json and --csv")
    if chart is not None and chart.suffix.lower() not in reporting.CHART_FORMATS:
        fail(f'unknown chart format "{chart.suffix or chart.name}": use a .png or .svg file')
    settings = load_settings()
    setup_logging(settings, default="WARNING")
    catalog = catalog_from(settings)
    clock = clock_from(settings.opsroom_fake_now)
    now = clock.now()
    start = now - back

    async def go() -> tuple[list[Any], tuple[int, int]]:
        engine, location = await open_database(settings)
        try:
            return await db.incident_rows(engine, start), await db.action_counts(engine, now, start)
        except Exception as exc:
            fail(f"cannot read incidents from {location.shown}: {describe_error(exc)}")
        finally:
            await engine.dispose()

    rows, actions = asyncio.run(go())
    lines = build(rows, by, catalog.tz)
    if as_json:
        typer.echo(reporting.as_json(lines, since=start, by=by, actions=actions))
    elif as_csv:
        typer.echo(reporting.as_csv(lines), nl=False)
    else:
        typer.echo(reporting.as_text(lines, since=start, by=by, actions=actions, tz=catalog.tz))
    if chart is not None:
        try:
            reporting.chart(rows, chart, catalog.tz)
        except OSError as exc:
            fail(f"cannot write {chart}: {exc.strerror or exc}")
        typer.echo(f"Chart written to {chart}.", err=True)


def _weeks(text: str) -> timedelta:
    """`12w` (weeks), which catalog durations do not take; anything else is refused."""
    import re

    m = re.fullmatch(r"(\d{1,4})w", text.strip())
    if m is None:
        fail(f'invalid --since "{text}": use a duration like 24h, 7d, 30d or 12w')
    return timedelta(weeks=int(m.group(1)))


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # Ctrl-C before the console or the service took over signals
        typer.echo("opsroom: interrupted", err=True)
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
