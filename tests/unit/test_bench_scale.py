"""The scale benchmark runs at a small size on every CI run, so it cannot rot: its table and
JSON line name every operation, on SQLite (and PostgreSQL when configured)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_scale_runs_and_reports_every_operation() -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("OPSROOM_TEST_DATABASE_URL", None)  # SQLite is enough to keep it alive
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", "--incidents", "1000", "--entries", "3000",
         "--delivered", "3000", "--reps", "2"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    ops = out["sqlite"]["ops"]
    assert set(ops) == {"note", "thread reply", "pin", "show", "list", "timeline", "declare",
                        "outbox query", "mirror deliveries/s", "mirror/s 20 channels"}
    assert all(row["ratio"] > 0 for row in ops.values())
    assert "seeded 1000 incidents" in done.stderr
