"""GET /metrics: Prometheus text exposition.

What describes the database (incidents open and declared, times to acknowledge and resolve,
jobs, deliveries, alerts) is read from it at scrape time (storage/metrics.py), so replicas on one
database agree and nothing is double counted. Command handling time is this process's own: a
histogram kept in memory, by platform.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.ports import Actor
from storage import metrics as db

COMMAND_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class CommandTimer:
    """How long the service takes to handle commands, by platform (this process only)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.histogram = Histogram(
            "opsroom_command_seconds",
            "Time to handle a chat command, by platform (this process).",
            ["platform"],
            buckets=COMMAND_BUCKETS,
            registry=self.registry,
        )

    def instrument(self, service: Any) -> None:
        """Time every `service.handle` call (the one entry point every adapter goes through)."""
        handle = service.handle

        async def timed(command: Any, *, actor: Actor, where: Any) -> Any:
            started = time.perf_counter()
            try:
                return await handle(command, actor=actor, where=where)
            finally:
                self.histogram.labels(platform=actor.platform).observe(
                    time.perf_counter() - started
                )

        service.handle = timed


def _histogram(name: str, doc: str, h: db.Histogram | None) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, doc)
    if h is not None:
        buckets = [("+Inf" if b == float("inf") else repr(b), n) for b, n in h.buckets]
        family.add_metric([], buckets, h.total)
    return family


class _Snapshot(Collector):
    """Hands prometheus_client the families read from the database for this scrape."""

    def __init__(self, families: Iterable[Any]) -> None:
        self.families = list(families)

    def collect(self) -> Iterator[Any]:
        yield from self.families


def families(snap: db.Snapshot) -> list[Any]:
    open_ = GaugeMetricFamily(
        "opsroom_incidents_open", "Open incidents by severity and status.",
        labels=["severity", "status"],
    )
    for (severity, status), n in sorted(snap.open_incidents.items()):
        open_.add_metric([severity, status], n)
    declared = CounterMetricFamily(
        "opsroom_incidents_declared", "Incidents declared (cancelled ones left out).",
        labels=["type", "severity"],
    )
    for (itype, severity), n in sorted(snap.declared.items()):
        declared.add_metric([itype, severity], n)
    pending = GaugeMetricFamily("opsroom_jobs_pending", "Pending jobs (reminders...) by kind.",
                                labels=["kind"])
    late = GaugeMetricFamily("opsroom_jobs_late", "Pending jobs already past due, by kind.",
                             labels=["kind"])
    for kind in sorted(snap.jobs_pending):
        pending.add_metric([kind], snap.jobs_pending[kind])
        late.add_metric([kind], snap.jobs_late.get(kind, 0))
    deliveries = GaugeMetricFamily(
        "opsroom_deliveries", "Deliveries pending or failed, by platform.",
        labels=["platform", "state"],
    )
    for (platform, state), n in sorted(snap.deliveries.items()):
        deliveries.add_metric([platform, state], n)
    alerts = CounterMetricFamily("opsroom_alerts_received", "Alerts received by source and status.",
                                 labels=["source", "status"])
    for (source, status), n in sorted(snap.alerts.items()):
        alerts.add_metric([source, status], n)
    return [
        open_,
        declared,
        _histogram("opsroom_time_to_acknowledge_seconds",
                   "Declared to first acknowledged (cancelled incidents left out).",
                   snap.time_to_acknowledge),
        _histogram("opsroom_time_to_resolve_seconds",
                   "Declared to last resolved, of resolved and closed incidents.",
                   snap.time_to_resolve),
        pending,
        late,
        deliveries,
        alerts,
    ]


def metrics_router(
    engine: AsyncEngine, now: Callable[[], datetime], timer: CommandTimer | None = None
) -> APIRouter:
    router = APIRouter()

    @router.get("/metrics")
    async def metrics() -> Response:
        snap = await db.snapshot(engine, now())
        registry = CollectorRegistry()
        registry.register(_Snapshot(families(snap)))
        body = generate_latest(registry)
        if timer is not None:
            body += generate_latest(timer.registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router
