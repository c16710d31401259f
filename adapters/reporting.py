"""`opsroom report` output: a text table, JSON, CSV, and a chart (matplotlib)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from datetime import datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from bot.report import GroupReport, IncidentRow, Stats, build, weekly
from bot.timing import format_duration

CHART_FORMATS = (".png", ".svg")


def _dur(seconds: float | None) -> str:
    return "—" if seconds is None else format_duration(timedelta(seconds=round(seconds)))


def _stats_json(s: Stats) -> dict[str, Any]:
    return {"count": s.count, "mean_s": s.mean, "p50_s": s.p50, "p90_s": s.p90}


def as_dict(
    lines: Sequence[GroupReport], *, since: datetime, by: str | None, actions: tuple[int, int]
) -> dict[str, Any]:
    return {
        "since": since.isoformat(),
        "by": by,
        "groups": [
            {
                "group": g.group,
                "incidents": g.incidents,
                "resolved": g.resolved,
                "time_to_acknowledge": _stats_json(g.acknowledge),
                "time_to_resolve": _stats_json(g.resolve),
            }
            for g in lines
        ],
        "action_items": {"open": actions[0], "overdue": actions[1]},
    }


def as_json(lines: Sequence[GroupReport], **kw: Any) -> str:
    return json.dumps(as_dict(lines, **kw), indent=2)


CSV_HEAD = (
    "group", "incidents", "resolved", "ack_mean_s", "ack_p50_s", "ack_p90_s",
    "resolve_mean_s", "resolve_p50_s", "resolve_p90_s",
)


def as_csv(lines: Sequence[GroupReport]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_HEAD)
    for g in lines:
        row: list[Any] = [g.group, g.incidents, g.resolved]
        for s in (g.acknowledge, g.resolve):
            row += ["" if v is None else round(v, 1) for v in (s.mean, s.p50, s.p90)]
        writer.writerow(row)
    return out.getvalue()


def as_text(
    lines: Sequence[GroupReport], *, since: datetime, by: str | None, actions: tuple[int, int],
    tz: tzinfo,
) -> str:
    head = (
        f"Incidents declared since {since.astimezone(tz):%Y-%m-%d %H:%M %Z} "
        "(cancelled ones left out)"
    )
    cols = ["group", "incidents", "resolved", "ack mean", "ack p50", "ack p90",
            "resolve mean", "resolve p50", "resolve p90"]
    rows = [cols]
    for g in lines:
        rows.append([
            g.group, str(g.incidents), str(g.resolved),
            _dur(g.acknowledge.mean), _dur(g.acknowledge.p50), _dur(g.acknowledge.p90),
            _dur(g.resolve.mean), _dur(g.resolve.p50), _dur(g.resolve.p90),
        ])
    widths = [max(len(r[i]) for r in rows) for i in range(len(cols))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    return "\n".join(
        [head, *table, f"Open action items: {actions[0]} (overdue: {actions[1]})"]
    )


def chart(rows: Sequence[IncidentRow], path: Path, tz: tzinfo) -> None:
    """Incidents per week (bars) and mean time to resolve in hours (line), to PNG or SVG."""
    import matplotlib

    matplotlib.use("Agg")  # no display: a file is all we draw
    import matplotlib.pyplot as plt

    weeks = weekly(rows, tz)
    labels = [w for w, _, _ in weeks]
    fig, ax = plt.subplots(figsize=(8, 4))
    try:
        ax.bar(labels, [n for _, n, _ in weeks], color="#4c72b0", label="incidents")
        ax.set_ylabel("incidents declared")
        ax.set_xlabel("week of")
        ax.tick_params(axis="x", rotation=45)
        other = ax.twinx()
        points = [(w, h) for w, _, h in weeks if h is not None]
        other.plot([w for w, _ in points], [h for _, h in points], color="#dd8452",
                   marker="o", label="mean time to resolve (h)")
        other.set_ylabel("mean time to resolve (hours)")
        ax.set_title("Incidents per week and time to resolve")
        fig.tight_layout()
        fig.savefig(path, format=path.suffix.lstrip("."))
    finally:
        plt.close(fig)


__all__ = ["CHART_FORMATS", "as_csv", "as_json", "as_text", "build", "chart"]
