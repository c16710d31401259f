"""`opsroom shell` serves the alert endpoints too: an alert sent with `opsroom alert send` from
another process opens an incident the console shows. A port in use is one line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_console import shell_env

pytestmark = pytest.mark.e2e
TOKEN = "console-alert-token"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def alert_file(tmp_path: Path) -> Path:
    """The README's example: a complete Alertmanager webhook body."""
    path = Path(__file__).resolve().parents[2] / "examples" / "alert.json"
    assert json.loads(path.read_text())["version"] == "4"
    return path


def test_an_alert_sent_to_the_console_opens_an_incident_there(tmp_path: Path) -> None:
    port = free_port()
    env = shell_env(tmp_path) | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}",
        "OPSROOM_HTTP_PORT": str(port),
        "OPSROOM_ALERT_TOKEN": TOKEN,
    }
    shell = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "shell"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        deadline = time.monotonic() + 20
        sent = None
        while time.monotonic() < deadline:
            sent = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "adapters.cli",
                    "alert",
                    "send",
                    "--source",
                    "alertmanager",
                    str(alert_file(tmp_path)),
                ],
                capture_output=True,
                text=True,
                cwd=tmp_path,
                env=env,
                timeout=30,
            )
            if "cannot reach" not in sent.stderr:
                break
            time.sleep(0.2)
        assert sent is not None and sent.returncode == 0, sent and sent.stderr
        assert sent.stdout.startswith('200 {"status":"ok","received":1,"new":1,"incidents":[1]}')
        time.sleep(1.0)  # the mirror prints it
        # The console serves /metrics as `opsroom run` does: the incident the alert opened.
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
            metrics = answer.read().decode()
        assert 'opsroom_incidents_open{severity="sev1",status="triggered"} 1.0' in metrics
    finally:
        out, err = shell.communicate("/incident #1 alerts\n", timeout=30)
    assert shell.returncode == 0, err
    assert "Incident declared by Alertmanager: Checkout is down in eu-west-1" in out
    assert "Alerts of #1 (1 firing of 1):" in out


def test_a_triage_alert_shows_in_the_console_and_is_attached_by_command(tmp_path: Path) -> None:
    port = free_port()
    env = shell_env(tmp_path) | {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}",
        "OPSROOM_HTTP_PORT": str(port),
        "OPSROOM_ALERT_TOKEN": TOKEN,
    }
    critical = alert_file(tmp_path)
    body = json.loads(critical.read_text())
    alert = body["alerts"][0]
    alert["labels"] |= {"alertname": "DiskFilling", "severity": "warning"}
    alert["annotations"] = {"summary": "Disk of checkout-1 fills up"}
    alert["fingerprint"] = "0f0f0f0f0f0f0f0f"
    warning = tmp_path / "warning.json"
    warning.write_text(json.dumps(body))
    shell = subprocess.Popen(
        [sys.executable, "-m", "adapters.cli", "shell"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        cwd=tmp_path, env=env,
    )
    try:
        answers = []
        for path in (critical, warning):
            deadline = time.monotonic() + 20
            while True:
                sent = subprocess.run(
                    [sys.executable, "-m", "adapters.cli", "alert", "send", "--source",
                     "alertmanager", str(path)],
                    capture_output=True, text=True, cwd=tmp_path, env=env, timeout=30,
                )
                if "cannot reach" not in sent.stderr or time.monotonic() > deadline:
                    break
                time.sleep(0.2)
            assert sent.returncode == 0, sent.stderr
            answers.append(sent.stdout)
        assert answers[1].startswith('200 {"status":"ok","received":1,"new":1,"incidents":[]}')
        time.sleep(1.0)  # the mirror prints the triage post
    finally:
        out, err = shell.communicate(
            "/incident alert attach 2 #1\n/incident #1 alerts\n", timeout=30)
    assert shell.returncode == 0, err
    assert "[#general] " in out and "🔔 Alert 2 needs triage: Disk of checkout-1 fills up" in out
    assert "Decide: /incident alerts declare 2 | /incident alerts attach 2 #1 | " in out
    assert "Attached alert 2 to #1: Checkout is down in eu-west-1." in out
    post = next(ln for ln in out.splitlines() if "🔔 Alert 2 needs triage" in ln)
    number = post.split("(")[1].split(")")[0]
    assert f"[#general] ({number}) updated" in out
    assert "Alerts of #1 (2 firing of 2):" in out


def test_a_port_in_use_is_one_line_and_the_console_runs_without_http(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = shell_env(tmp_path) | {
            "DATABASE_URL": f"sqlite:///{tmp_path / 'opsroom.db'}",
            "OPSROOM_HTTP_PORT": str(port),
        }
        result = subprocess.run(
            [sys.executable, "-m", "adapters.cli", "shell"],
            input="/incident declare checkout is down\n",
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=60,
        )
    assert result.returncode == 0, result.stderr
    [line] = [ln for ln in result.stderr.splitlines() if "HTTP" in ln]
    assert line.startswith(f"opsroom: HTTP not served: 127.0.0.1:{port}: ")
    assert "Traceback" not in result.stderr
    assert "Declared incident #1" in result.stdout
