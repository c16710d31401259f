"""Payloads in the sources' documented shapes, complete, and a rig posting them over HTTP to the
real app (uvicorn on a free port) wired to the core on a real store, with a fake clock and the
job worker run by hand."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import func
from sqlmodel import col, select

from adapters.alerts_http import AlertAuth
from adapters.http import Readiness, create_app
from bot.jobs import JobWorker
from bot.models import Alert, Incident, TimelineEntry
from tests.adapters.slack_harness import serve
from tests.conftest import Core

TOKEN = "s3cret-alert-token"
ZERO = "0001-01-01T00:00:00Z"


def rfc3339(moment: datetime) -> str:
    """How Go writes a time: nanoseconds, Z."""
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z"


def am_alert(
    *,
    alertname: str = "HighErrorRate",
    service: str = "checkout",
    instance: str = "checkout-7d9f:8080",
    severity: str = "critical",
    status: str = "firing",
    starts: datetime,
    ends: datetime | None = None,
    fingerprint: str | None = None,
) -> dict[str, Any]:
    labels = {
        "alertname": alertname,
        "service": service,
        "instance": instance,
        "job": "checkout-api",
        "namespace": "prod",
        "severity": severity,
    }
    return {
        "status": status,
        "labels": labels,
        "annotations": {
            "summary": f"{alertname} on {service}",
            "description": f"5xx ratio above 5% on {instance} for 5 minutes",
            "runbook_url": "https://runbooks.example.com/checkout/5xx",
        },
        "startsAt": rfc3339(starts),
        "endsAt": rfc3339(ends) if ends else ZERO,
        "generatorURL": "http://prometheus.example.com:9090/graph?g0.expr=rate%28http_5xx%5B5m%5D%29&g0.tab=1",
        "fingerprint": fingerprint
        or hashlib.sha256(f"{alertname}{service}{instance}".encode()).hexdigest()[:16],
    }


def am_payload(alerts: list[dict[str, Any]], receiver: str = "opsroom") -> dict[str, Any]:
    """An Alertmanager webhook_config body, version 4."""
    common = dict(alerts[0]["labels"]) if alerts else {}
    for alert in alerts[1:]:
        common = {k: v for k, v in common.items() if alert["labels"].get(k) == v}
    group = {k: common[k] for k in ("alertname", "service") if k in common}
    status = "firing" if any(a["status"] == "firing" for a in alerts) else "resolved"
    return {
        "receiver": receiver,
        "status": status,
        "alerts": alerts,
        "groupLabels": group,
        "commonLabels": common,
        "commonAnnotations": {},
        "externalURL": "http://alertmanager.example.com:9093",
        "version": "4",
        "groupKey": "{}:{"
        + f'alertname="{group.get("alertname", "")}", service="{group.get("service", "")}"'
        + "}",
        "truncatedAlerts": 0,
    }


def grafana_payload(alerts: list[dict[str, Any]]) -> dict[str, Any]:
    """Grafana alerting's webhook contact point body: Alertmanager's shape plus its fields."""
    body = am_payload(copy.deepcopy(alerts), receiver="opsroom-webhook")
    for alert in body["alerts"]:
        alert["silenceURL"] = (
            "https://grafana.example.com/alerting/silence/new?alertmanager=grafana"
        )
        alert["dashboardURL"] = "https://grafana.example.com/d/checkout"
        alert["panelURL"] = "https://grafana.example.com/d/checkout?viewPanel=2"
        alert["values"] = {"B": 7.41, "C": 1}
        alert["valueString"] = "[ var='B' labels={service=checkout} value=7.41 ]"
    body |= {
        "orgId": 1,
        "version": "1",
        "state": "alerting",
        "title": "[FIRING:1] HighErrorRate checkout",
        "message": "**Firing**\n\nValue: B=7.41\nLabels:\n - alertname = HighErrorRate\n",
    }
    return body


def pd_event(
    action: str, dedup_key: str, *, routing_key: str = TOKEN, severity: str = "critical"
) -> dict[str, Any]:
    """A PagerDuty Events API v2 event."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": action,
        "dedup_key": dedup_key,
    }
    if action == "trigger":
        event["payload"] = {
            "summary": "Payments API p99 above 2s in eu-west-1",
            "timestamp": "2026-11-25T14:00:00.000+0000",
            "source": "payments-api-eu-1",
            "severity": severity,
            "component": "payments",
            "group": "prod-eu",
            "class": "latency",
            "custom_details": {"p99_ms": 2310, "threshold_ms": 2000, "region": "eu-west-1"},
        }
        event["links"] = [{"href": "https://grafana.example.com/d/payments", "text": "Dashboard"}]
        event["images"] = [
            {"src": "https://grafana.example.com/render/payments.png", "alt": "p99 graph"}
        ]
        event["client"] = "Datadog"
        event["client_url"] = "https://app.datadoghq.com/monitors/123"
    return event


@dataclass
class AlertRig:
    core: Core
    http: httpx.AsyncClient
    worker: JobWorker

    async def post(
        self, path: str, body: Any, *, token: str | None = TOKEN, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if token is not None:
            headers.setdefault("Authorization", f"Bearer {token}")
        response = await self.http.post(path, json=body, headers=headers, **kw)
        assert await self.core.mirror.drain(timeout=10)
        return response

    async def at(self, delta: timedelta) -> int:
        """Move the clock, fire the jobs due, deliver what they queued."""
        self.core.clock.advance(seconds=delta.total_seconds())
        done = await self.worker.run_once()
        assert await self.core.mirror.drain(timeout=10)
        return done

    async def incidents(self) -> list[Incident]:
        async with self.core.store.unit() as u:
            return await u.incidents(include_closed=True)

    async def count(self, model: Any) -> int:
        async with self.core.store.unit() as u:
            query = select(func.count()).select_from(model)
            return int((await u.session.execute(query)).scalar_one())  # type: ignore[attr-defined]

    async def alert_rows(self) -> list[Alert]:
        async with self.core.store.unit() as u:
            result = await u.session.execute(select(Alert).order_by(col(Alert.id)))  # type: ignore[attr-defined]
            return list(result.scalars())

    async def entries(self, number: int = 1) -> list[TimelineEntry]:
        async with self.core.store.unit() as u:
            incident = await u.incident(number)
            assert incident is not None and incident.id is not None
            return await u.timeline(incident.id)

    def channel(self, number: int = 1) -> list[str]:
        """Everything posted in the incident's channel and its timeline thread."""
        name = self.core.incident_channel(number)
        return self.core.chat.texts(name) + self.core.chat.texts(name, thread=True)


@asynccontextmanager
async def alert_rig(core: Core, auth: AlertAuth | None = None) -> AsyncIterator[AlertRig]:
    if auth is None:
        auth = AlertAuth(
            tokens=dict.fromkeys(("alertmanager", "grafana", "pagerduty", "generic"), TOKEN)
        )
    app = create_app(Readiness(), alerts=(core.service, auth))
    worker = JobWorker(
        store=core.store,
        catalog=core.service.catalog,
        record=core.service.record,
        clock=core.clock,
        notify=core.mirror.wake,
    )
    async with serve(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as http:
        yield AlertRig(core, http, worker)
