"""The inbox under load: how many notes are applied per second, not only acknowledged.

What is measured
    50 concurrent senders (each its own HTTP connection) send signed `/incident note <text>`
    slash commands to `opsroom run` (a child process, configured as in production, with the
    fake Slack as its Web API) in the channel of incident #1, each sending its next note when
    the previous one was acknowledged, for `--seconds` (default 15). Per backend (SQLite, and
    PostgreSQL when a URL is given):

    acked/s     acknowledgements (HTTP 200) per second over the window
    ack p50/p99 the time from sending a command to its acknowledgement (nearest rank)
    applied/s   notes recorded in the timeline by the end of the window, per second
    ratio       applied / acked at the end of the window: the figure that matters (aim >= 0.9):
                what Opsroom said yes to and has done, not only stored
    drain s     after the window, the seconds until every acknowledged note is recorded
    RSS MB      the child's resident memory before the load and after it
    cpu, load   cores used during the window by Opsroom, and by the senders with the fake Slack

The baseline
    `--baseline DIR` runs the same load against another checkout of Opsroom (e.g. the code
    before the inbox, where notes were applied in after-ack tasks kept in memory), in the same
    run and on the same machine; the table shows both and their ratios. Without one, the
    figures the issue measured on the previous code are shown for reference.

Processes, on a 2-core machine
    The senders and the fake Slack share this process (one core); Opsroom runs alone in its
    child (the other core). Everything Opsroom does after the ack (applying, answering through
    response_url, the mirror posting to the fake) competes with the acks on its event loop, as
    in production.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, make_url, select, text
from sqlmodel import col

from bot.models import EntryKind, TimelineEntry
from storage.engine import make_engine
from tests.fakes import slack as fs

ROOT = Path(__file__).resolve().parents[1]
SENDERS = 50
# The previous code, as the issue measured it (50 senders for 60 s, SQLite).
ISSUE_FIGURES = {"acked_per_s": 437.0, "applied_per_s": 70.0, "ratio": 4537 / 13186,
                 "rss_before_mb": 105.0, "rss_after_mb": 424.0}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) process `pid` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def notes_recorded(url: str) -> int:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                select(func.count()).select_from(TimelineEntry)
                .where(col(TimelineEntry.kind) == EntryKind.MESSAGE))
            return int(found.scalar_one())
    finally:
        await engine.dispose()


async def new_database(backend: str, pg_url: str | None, workdir: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{workdir / f'bench-{uuid.uuid4().hex[:6]}.db'}"
    assert pg_url is not None
    name = f"bench_{uuid.uuid4().hex[:10]}"
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'CREATE DATABASE "{name}"'))
    await admin.dispose()
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


async def drop_database(url: str, pg_url: str | None) -> None:
    if not url.startswith("postgresql") or pg_url is None:
        return
    admin = make_engine(pg_url, isolation_level="AUTOCOMMIT")
    async with admin.connect() as conn:
        await conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    await admin.dispose()


async def start(code: Path, fake: fs.FakeSlack, url: str, workdir: Path) -> tuple[Any, str]:
    port = free_port()
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SLACK_", "DISCORD_", "OPENAI_", "OPSROOM_", "DATABASE_URL"))}
    env.update({"DATABASE_URL": url, "SLACK_BOT_TOKEN": fake.token,
                "SLACK_SIGNING_SECRET": fs.SIGNING_SECRET, "SLACK_API_URL": fake.api_url,
                "OPSROOM_HTTP_PORT": str(port), "OPSROOM_LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(code)})
    log = (workdir / f"opsroom-{port}.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", "run", cwd=workdir, env=env,
        stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, timeout=2) as client:
        for _ in range(600):
            try:
                if (await client.get("/healthz")).status_code == 200:
                    return proc, base
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"opsroom did not start; see {log.name}")


async def declare(base: str, fake: fs.FakeSlack) -> str:
    """Incident #1 through the Quick Start modal; returns its Slack channel id."""
    from tests.adapters.test_slack import submit_values

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        body = fs.slash_command_body("declare checkout is slow for everyone",
                                     response_url=fake.new_response_url())
        await client.post("/slack/events", content=body, headers=fs.sign(body))
        for _ in range(600):  # the previous code opened the modal after the ack
            if fake.calls_to("views.open"):
                break
            await asyncio.sleep(0.01)
        view = fake.calls_to("views.open")[-1].response["view"]
        submission = fs.view_submission_body(view, submit_values(view))
        await client.post("/slack/events", content=submission, headers=fs.sign(submission))
    for _ in range(600):
        created = [c for c in fake.calls_to("conversations.create") if c.ok]
        if created:
            return str(created[0].response["channel"]["id"])
        await asyncio.sleep(0.05)
    raise RuntimeError("incident #1 got no channel")


async def load(base: str, fake: fs.FakeSlack, channel: str, seconds: float
               ) -> tuple[int, list[float]]:
    stop_at = time.perf_counter() + seconds
    latencies: list[float] = []

    async def sender(n: int) -> int:
        acked = 0
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            i = 0
            while time.perf_counter() < stop_at:
                i += 1
                body = fs.slash_command_body(f"note s{n} #{i}", channel_id=channel,
                                             response_url=fake.new_response_url())
                started = time.perf_counter()
                try:
                    response = await client.post("/slack/events", content=body,
                                                 headers=fs.sign(body))
                except httpx.TransportError:
                    continue
                if response.status_code == 200 and time.perf_counter() <= stop_at:
                    acked += 1
                    latencies.append(time.perf_counter() - started)
        return acked

    counts = await asyncio.gather(*(sender(n) for n in range(SENDERS)))
    return sum(counts), latencies


def rank(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))] if ordered \
        else 0.0


async def one_run(code: Path, backend: str, pg_url: str | None, seconds: float,
                  workdir: Path) -> dict[str, Any]:
    url = await new_database(backend, pg_url, workdir)
    try:
        async with fs.FakeSlack() as fake:
            proc, base = await start(code, fake, url, workdir)
            try:
                channel = await declare(base, fake)
                await asyncio.sleep(1.0)  # the channel opened, the mirror idle
                rss_before = rss_mb(proc.pid)
                child_before, own_before = cpu_s(proc.pid), time.process_time()
                acked, latencies = await load(base, fake, channel, seconds)
                applied = await notes_recorded(url)
                rss_after = rss_mb(proc.pid)
                child_cpu = (cpu_s(proc.pid) - child_before) / seconds
                own_cpu = (time.process_time() - own_before) / seconds
                waited = time.perf_counter()
                drained = applied
                while drained < acked and time.perf_counter() - waited < 120:
                    await asyncio.sleep(0.2)
                    drained = await notes_recorded(url)
                drain_s = time.perf_counter() - waited
            finally:
                proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(proc.wait(), 60)
                except TimeoutError:
                    proc.kill()
    finally:
        await drop_database(url, pg_url)
    return {
        "backend": backend,
        "acked": acked,
        "acked_per_s": acked / seconds,
        "applied_per_s": min(applied, acked) / seconds,
        "ratio": min(applied, acked) / acked if acked else 0.0,
        "ack_p50_ms": rank(latencies, 0.50) * 1000,
        "ack_p99_ms": rank(latencies, 0.99) * 1000,
        "drain_s": drain_s if drained >= acked else None,
        "rss_before_mb": rss_before,
        "rss_after_mb": rss_after,
        "opsroom_cpu": child_cpu,  # cores the Opsroom process used during the window
        "load_cpu": own_cpu,  # cores the senders and the fake Slack used
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    backends = ["sqlite"] + (["postgresql"] if args.pg else [])
    codes = {"inbox": ROOT} | ({"baseline": args.baseline.resolve()} if args.baseline else {})
    results: dict[str, Any] = {"seconds": args.seconds, "senders": SENDERS, "runs": []}
    with tempfile.TemporaryDirectory(prefix="opsroom-bench-") as tmp:
        for backend in backends:
            for name, code in codes.items():
                row = await one_run(code, backend, args.pg, args.seconds, Path(tmp))
                results["runs"].append({"code": name, **row})
    if not args.baseline:
        results["issue_previous_figures"] = ISSUE_FIGURES
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"{SENDERS} concurrent senders, {results['seconds']:.0f} s of /incident note")
    print(f"{'code':<9}{'db':<11}{'acked/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'applied/s':>10}"
          f"{'ratio':>7}{'drain s':>8}{'RSS MB':>14}{'cpu':>6}{'load':>6}")
    for r in results["runs"]:
        drain = f"{r['drain_s']:.1f}" if r["drain_s"] is not None else ">120"
        print(f"{r['code']:<9}{r['backend']:<11}{r['acked_per_s']:>8.0f}{r['ack_p50_ms']:>8.0f}"
              f"{r['ack_p99_ms']:>8.0f}{r['applied_per_s']:>10.0f}{r['ratio']:>7.2f}"
              f"{drain:>8}{r['rss_before_mb']:>7.0f} ->{r['rss_after_mb']:>4.0f}"
              f"{r['opsroom_cpu']:>6.2f}{r['load_cpu']:>6.2f}")
    issue = results.get("issue_previous_figures")
    if issue:
        print(f"{'issue':<9}{'sqlite':<11}{issue['acked_per_s']:>8.0f}{'':>8}{'':>8}"
              f"{issue['applied_per_s']:>10.0f}{issue['ratio']:>7.2f}{'':>8}"
              f"{issue['rss_before_mb']:>7.0f} ->{issue['rss_after_mb']:>4.0f}"
              "   (the previous code, as the issue measured it)")
    print("aim: ratio (applied/acked at the end of the window) >= 0.9, RSS flat")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.inbox", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=15.0, help="load window (default 15)")
    parser.add_argument("--pg", default=os.environ.get("OPSROOM_TEST_DATABASE_URL"),
                        help="PostgreSQL URL to create bench databases on "
                             "(default: OPSROOM_TEST_DATABASE_URL)")
    parser.add_argument("--baseline", type=Path,
                        help="another Opsroom checkout to run the same load against")
    args = parser.parse_args(argv)
    results = asyncio.run(run(args))
    print_table(results)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
