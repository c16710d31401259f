"""The console as a real process: stopped by signals while it waits for input, and used at a real
terminal (a pty) with line editing, completion, history and the confirmation step."""

from __future__ import annotations

import asyncio
import fcntl
import os
import pty
import re
import select
import signal
import sqlite3
import subprocess
import sys
import termios
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.test_console import shell_env

pytestmark = pytest.mark.e2e
ROOT = str(Path(__file__).resolve().parents[2])


def rows(db: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql).fetchall()


@pytest.mark.parametrize(
    ("command", "sig"),
    [(["shell"], signal.SIGINT), (["shell"], signal.SIGTERM), (["run"], signal.SIGTERM)],
)
async def test_a_signal_ends_the_console_without_waiting_for_enter(
    tmp_path: Path, command: list[str], sig: signal.Signals
) -> None:
    """stdin stays open and silent, as at a terminal nobody types in: the signal alone must end
    the process, after the mirror delivered what the last command queued, with exit code 0."""
    env = shell_env(tmp_path)
    env.update({"DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}", "PYTHONPATH": ROOT})
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "adapters.cli", *command, cwd=tmp_path, env=env,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(b"/incident declare checkout 500s in EU, card payments failing\n")
        await proc.stdin.drain()
        seen = b""
        while b"Declared incident #1" not in seen:
            line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
            assert line, "the console ended before declaring"
            seen += line
        proc.send_signal(sig)  # at once: the incident's channel may still be on its way
        out, err = await asyncio.wait_for(proc.communicate(), timeout=15)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, err.decode()
    assert "Traceback" not in err.decode()
    states = rows(tmp_path / "opsroom.db", "SELECT state, count(*) FROM delivery GROUP BY state")
    assert [state for state, _ in states] == ["sent"], states
    assert re.search(r"^\[#general\] \(\d+\) opsroom: \[#1 Checkout 500s in EU",
                     (seen + out).decode(), re.MULTILINE)


def _own_terminal() -> None:
    """In the child: a session of its own with the pty as its controlling terminal, as a shell
    gives it, so Ctrl-C between two prompts is a SIGINT, as at a real terminal."""
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Pty:
    """`opsroom shell` on a pseudo-terminal, read as a person would see it."""

    def __init__(self, tmp_path: Path, *, stdout_to_a_file: Path | None = None) -> None:
        self.env = shell_env(tmp_path)
        self.env.update({
            "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}",
            "PYTHONPATH": ROOT,
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # nobody answers cursor-position requests here
            "COLUMNS": "100",
            "LINES": "40",
        })
        self.master, slave = pty.openpty()
        self.slave_modes = termios.tcgetattr(slave)
        self.slave = slave
        out = stdout_to_a_file.open("w") if stdout_to_a_file else None
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "adapters.cli", "shell"], stdin=slave,
            stdout=out or slave, stderr=slave if out else subprocess.PIPE,
            cwd=tmp_path, env=self.env, preexec_fn=_own_terminal,
        )
        if out:
            out.close()
        self.raw = b""

    @property
    def screen(self) -> str:
        """What was printed, without terminal control sequences or carriage returns."""
        text = self.raw.decode(errors="replace")
        return re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b[>=]|\r", "", text)

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_until(self, done: Callable[[str], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not done(self.screen):
            left = deadline - time.monotonic()
            assert left > 0, f"never saw {what}; the screen ends with:\n{self.screen[-1500:]}"
            ready, _, _ = select.select([self.master], [], [], min(left, 0.2))
            if ready:
                try:
                    self.raw += os.read(self.master, 65536)
                except OSError:  # the process closed the terminal
                    time.sleep(0.05)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        self.wait_until(lambda screen: text in screen, repr(text), timeout)

    def wait_for_prompt(self, prompt: str, timeout: float = 20.0) -> None:
        """Wait until `prompt` is the last thing shown: it waits for keys (typed earlier, a
        Ctrl-D would be taken by the terminal itself between two prompts)."""
        self.wait_until(lambda screen: screen.rstrip().endswith(prompt.rstrip()),
                        f"the prompt {prompt!r}", timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        os.close(self.master)
        os.close(self.slave)


CONFIRM = "Create it? [Y]es / [e]dit / [n]o:"


def test_at_a_terminal(tmp_path: Path) -> None:
    term = Pty(tmp_path)
    db = tmp_path / "opsroom.db"
    try:
        term.wait_for_prompt("#general> ")
        # Only yes creates: an unknown answer asks again; Ctrl-D cancels.
        term.type("/incident declare checkout is down\r")
        term.wait_for_prompt(CONFIRM)
        term.type("maybe\r")
        term.wait_for('"maybe" is not an answer here: y, yes or Enter creates it')
        term.wait_for_prompt(CONFIRM)
        term.type("\x04")
        term.wait_for("(only you) Cancelled (end of input): not declared.")
        assert rows(db, "SELECT count(*) FROM incident") == [(0,)]
        term.wait_for_prompt("#general> ")

        # Completion of the subcommand, and a line far over a terminal's 4 KB line limit.
        description = "checkout is down for card payments in the EU " * 120  # 5,400 characters
        term.type("/incident dec\t")
        term.wait_for_prompt("/incident declare")
        term.type(" " + description + "\r")
        term.wait_for("Suggested fields", timeout=30)
        term.wait_for_prompt(CONFIRM)
        term.type("y\r")
        term.wait_for("(only you) Declared incident #1")
        term.wait_for_prompt("> ")
        assert rows(db, "SELECT description FROM incident") == [(description.strip(),)]

        # Open incident numbers complete too; the arrow key recalls history, not "^[[A".
        term.type("/incident #\t")
        term.wait_for_prompt("/incident #1")
        term.type(" show\r")
        term.wait_for("(only you) 📋 #1")
        term.wait_for_prompt("> ")
        term.type("\x1b[A\r")
        term.wait_until(lambda screen: screen.count("(only you) 📋 #1") == 2,
                        "the command recalled with the up arrow run again")
        assert "^[[A" not in term.screen

        term.wait_for_prompt("> ")
        term.type("\x03")  # Ctrl-C leaves at once, with exit code 0
        assert term.proc.wait(timeout=15) == 0
        assert termios.tcgetattr(term.slave) == term.slave_modes  # the terminal is restored
    finally:
        term.close()
    history = (tmp_path / "home" / "data" / "opsroom" / "console_history").read_text()
    assert "+/incident #1 show" in history
    assert rows(db, "SELECT count(*) FROM delivery WHERE state != 'sent'") == [(0,)]


def test_at_a_terminal_with_stdout_to_a_file(tmp_path: Path) -> None:
    """`opsroom shell > log`: the prompts go to the terminal on stderr, the chat to the file,
    and long lines still arrive whole."""
    log = tmp_path / "session.log"
    term = Pty(tmp_path, stdout_to_a_file=log)
    description = "the search index is stale for every customer in the EU " * 100
    try:
        term.wait_for_prompt("#general> ")
        term.type("/incident declare " + description + "\r")
        term.wait_for_prompt(CONFIRM, timeout=30)
        term.type("\r")  # Enter: yes
        term.wait_for_prompt("> ")
        term.type("/quit\r")
        assert term.proc.wait(timeout=15) == 0
    finally:
        term.close()
    assert rows(tmp_path / "opsroom.db", "SELECT description FROM incident") == [
        (description.strip(),)
    ]
    shown = log.read_text()
    assert "(only you) Declared incident #1" in shown
    assert CONFIRM not in shown  # a prompt is for the person, not for the log
