"""Alert endpoints on the HTTP app: Alertmanager, Grafana, PagerDuty Events v2 and a generic JSON.

Each request is authenticated, size-checked and parsed here into `bot.alerts.AlertEvent`s, then
handed to the service in one call (one transaction). Nothing is stored for a request refused
here: 401 without valid credentials, 413 over `MAX_BODY`, 400 naming the bad field.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import os
import re
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from bot.alerts import ACKNOWLEDGED, FIRING, RESOLVED, SEVERITIES, AlertEvent, Alerts
from bot.catalog import Catalog

logger = logging.getLogger(__name__)

MAX_BODY = 1024 * 1024  # bytes; Alertmanager's largest groups stay far below
TOKEN_ENV = "OPSROOM_ALERT_TOKEN"
SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"
# Grafana sends a timestamp only when its contact point names a header for it; these are the
# names its docs and provisioning examples use.
TIMESTAMP_HEADERS = ("X-Grafana-Alerting-Timestamp", "X-Grafana-Alerting-Signature-Timestamp")
REPLAY_WINDOW_S = 300
_ZERO_TIME = "0001-01-01T00:00:00Z"


class Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class AlertAuth:
    """The secrets each source is checked against (None: not configured)."""

    tokens: Mapping[str, str | None] = field(default_factory=dict)
    token_names: Mapping[str, str] = field(default_factory=dict)  # the variable, for errors
    hmac_secrets: Mapping[str, str | None] = field(default_factory=dict)

    @classmethod
    def from_env(
        cls, catalog: Catalog, default_token: str | None, environ: Mapping[str, str] | None = None
    ) -> AlertAuth:
        env = os.environ if environ is None else environ
        tokens: dict[str, str | None] = {}
        names: dict[str, str] = {}
        secrets: dict[str, str | None] = {}
        for source in ("alertmanager", "grafana", "pagerduty", "generic"):
            config = catalog.alert_sources.get(source)
            if config is not None and config.token_env:
                tokens[source] = env.get(config.token_env) or None
                names[source] = config.token_env
            else:
                tokens[source] = default_token or None
                names[source] = TOKEN_ENV
            if config is not None and config.hmac_secret_env:
                secrets[source] = env.get(config.hmac_secret_env) or None
        return cls(tokens=tokens, token_names=names, hmac_secrets=secrets)


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _check_header_token(source: str, auth: AlertAuth, header: str) -> None:
    expected = auth.tokens.get(source)
    name = auth.token_names.get(source, TOKEN_ENV)
    if not expected:
        raise Refused(401, f"alerts are not accepted: no token is configured (set {name})")
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer" and value:
        given = value
    elif scheme.lower() == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise Refused(401, "malformed basic credentials") from None
        given = decoded.partition(":")[2]  # any user name; the password is the token
    else:
        raise Refused(
            401, f"missing credentials: send Authorization: Bearer <the {name} token> (or basic)"
        )
    if not _same(given, expected):
        raise Refused(401, "wrong credentials")


def _check_grafana_signature(secret: str, request: Request, body: bytes, now: float) -> None:
    signature = request.headers.get(SIGNATURE_HEADER, "").strip()
    if not signature:
        raise Refused(401, f"missing {SIGNATURE_HEADER} (an HMAC secret is configured)")
    stamp = next((request.headers[h] for h in TIMESTAMP_HEADERS if h in request.headers), None)
    signed = body
    if stamp is not None:
        try:
            sent = float(stamp)
        except ValueError:
            raise Refused(401, "malformed signature timestamp") from None
        if abs(now - sent) > REPLAY_WINDOW_S:
            raise Refused(401, "signature timestamp too old or in the future")
        signed = stamp.encode("utf-8") + b":" + body
    expected = hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()
    if not _same(signature.lower(), expected):
        raise Refused(401, "wrong signature")


async def _read_body(request: Request) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY:
        raise Refused(413, f"body too large: {length} bytes; the limit is {MAX_BODY}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise Refused(413, f"body too large: over {MAX_BODY} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _json(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refused(400, f"malformed JSON: {exc}"[:200]) from None
    if not isinstance(data, dict):
        raise Refused(400, "the body must be a JSON object")
    return data


# --- payloads -------------------------------------------------------------------------------


def _time(value: Any, where: str) -> datetime | None:
    """An RFC 3339 time (Go writes up to nanoseconds); None for Go's zero time."""
    if value in (None, "", _ZERO_TIME):
        return None
    if not isinstance(value, str):
        raise Refused(400, f"{where} must be an RFC 3339 time string")
    text = re.sub(r"(\.\d{6})\d+", r"\1", value.strip()).replace("z", "Z")
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise Refused(400, f'{where} "{value[:40]}" is not an RFC 3339 time') from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    if moment.year <= 1:
        return None
    return moment.astimezone(UTC)


def _strings(value: Any, where: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Refused(400, f"{where} must be an object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}


def _severity(value: str) -> str:
    value = value.strip().lower()
    return value if value in SEVERITIES else ""


def parse_webhook(data: dict[str, Any], source: str) -> list[AlertEvent]:
    """Alertmanager's webhook (version 4) or Grafana alerting's, which has its shape."""
    if source == "alertmanager" and str(data.get("version", "4")) != "4":
        raise Refused(400, f'version "{data.get("version")}" is not supported: use version 4')
    alerts = data.get("alerts")
    if not isinstance(alerts, list):
        raise Refused(400, "alerts is required: a list of alerts")
    events = []
    for i, alert in enumerate(alerts):
        where = f"alerts[{i}]"
        if not isinstance(alert, dict):
            raise Refused(400, f"{where} must be an object")
        status = alert.get("status")
        if status not in (FIRING, RESOLVED):
            raise Refused(400, f'{where}.status "{status}" is not firing or resolved')
        labels = _strings(alert.get("labels"), f"{where}.labels")
        if "labels" not in alert:
            raise Refused(400, f"{where}.labels is required")
        annotations = _strings(alert.get("annotations"), f"{where}.annotations")
        starts = _time(alert.get("startsAt"), f"{where}.startsAt")
        if starts is None:
            raise Refused(400, f"{where}.startsAt is required")
        fingerprint = alert.get("fingerprint")
        if not isinstance(fingerprint, str) or not fingerprint:
            # Older Alertmanagers send none: the labels identify the alert.
            canonical = json.dumps(labels, sort_keys=True).encode("utf-8")
            fingerprint = hashlib.sha256(canonical).hexdigest()[:16]
        link = next(
            (
                str(alert[k])
                for k in ("panelURL", "dashboardURL", "generatorURL")
                if isinstance(alert.get(k), str) and alert[k]
            ),
            "",
        )
        summary = (
            annotations.get("summary")
            or annotations.get("description")
            or labels.get("alertname", "")
        )
        events.append(
            AlertEvent(
                source=source,
                fingerprint=fingerprint[:255],
                status=status,
                summary=summary,
                severity=_severity(labels.get("severity", "")),
                labels=labels,
                annotations=annotations,
                starts_at=starts,
                ends_at=_time(alert.get("endsAt"), f"{where}.endsAt"),
                link=link,
            )
        )
    return events


PD_ACTIONS = {"trigger": FIRING, "acknowledge": ACKNOWLEDGED, "resolve": RESOLVED}


def parse_pagerduty(data: dict[str, Any]) -> AlertEvent:
    """One PagerDuty Events API v2 event (its routing key is checked before this)."""
    action = data.get("event_action")
    if action not in PD_ACTIONS:
        raise Refused(400, f'event_action "{action}" is not trigger, acknowledge or resolve')
    dedup = data.get("dedup_key")
    if dedup is not None and (not isinstance(dedup, str) or not dedup or len(dedup) > 255):
        raise Refused(400, "dedup_key must be a string of 1 to 255 characters")
    if action != "trigger":
        if dedup is None:
            raise Refused(400, f"dedup_key is required to {action}")
        return AlertEvent(
            source="pagerduty", fingerprint=dedup, status=PD_ACTIONS[action], summary=""
        )
    payload = data.get("payload")
    if not isinstance(payload, dict):
        raise Refused(400, "payload is required for a trigger")
    for name in ("summary", "source", "severity"):
        if not isinstance(payload.get(name), str) or not payload[name].strip():
            raise Refused(400, f"payload.{name} is required")
    severity = payload["severity"].strip().lower()
    if severity not in SEVERITIES:
        raise Refused(400, f'payload.severity "{severity}" is not critical, error, warning or info')
    labels = {"alertname": str(payload.get("class") or payload["summary"])[:200]}
    labels["service"] = str(payload.get("component") or payload["source"])
    for name in ("source", "component", "group", "class"):
        if isinstance(payload.get(name), str) and payload[name]:
            labels[name] = payload[name]
    labels["severity"] = severity
    details = payload.get("custom_details")
    annotations = {"summary": payload["summary"]}
    if isinstance(details, dict):
        annotations |= _strings(details, "payload.custom_details")
    elif details is not None:
        annotations["details"] = str(details)
    links = data.get("links")
    link = ""
    if isinstance(links, list):
        link = next((str(x["href"]) for x in links if isinstance(x, dict) and x.get("href")), "")
    return AlertEvent(
        source="pagerduty",
        fingerprint=dedup or uuid.uuid4().hex,
        status=FIRING,
        summary=payload["summary"].strip(),
        severity=severity,
        labels=labels,
        annotations=annotations,
        link=link,
    )


def parse_generic(data: dict[str, Any]) -> AlertEvent:
    """{"title", "severity", "dedup_key", "status", "labels", "details", "link", "starts_at"}"""
    title = data.get("title")
    if not isinstance(title, str) or not title.strip():
        raise Refused(400, "title is required: a non-empty string")
    status = data.get("status", FIRING)
    if status not in (FIRING, RESOLVED):
        raise Refused(400, f'status "{status}" is not firing or resolved')
    severity = str(data.get("severity", "error")).strip().lower()
    if severity not in SEVERITIES:
        raise Refused(400, f'severity "{severity}" is not critical, error, warning or info')
    labels = _strings(data.get("labels"), "labels")
    labels.setdefault("alertname", title.strip()[:200])
    labels.setdefault("severity", severity)
    dedup = data.get("dedup_key")
    if dedup is None:
        dedup = hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:16]
    if not isinstance(dedup, str) or not dedup or len(dedup) > 255:
        raise Refused(400, "dedup_key must be a string of 1 to 255 characters")
    link = data.get("link", "")
    if not isinstance(link, str):
        raise Refused(400, "link must be a string")
    return AlertEvent(
        source="generic",
        fingerprint=dedup,
        status=status,
        summary=title.strip(),
        severity=severity,
        labels=labels,
        annotations=_strings(data.get("details"), "details"),
        starts_at=_time(data.get("starts_at"), "starts_at"),
        link=link,
    )


# --- the routes -----------------------------------------------------------------------------


def alerts_router(service: Alerts, auth: AlertAuth) -> APIRouter:
    router = APIRouter()

    async def receive(events: list[AlertEvent]) -> list[Any]:
        try:
            return list(await service.receive(events))
        except Exception:
            logger.exception("storing %d alerts failed", len(events))
            raise Refused(503, "the alerts could not be stored; retry later") from None

    async def webhook(request: Request, source: str) -> Response:
        try:
            body = await _read_body(request)
            secret = auth.hmac_secrets.get(source)
            if secret:
                _check_grafana_signature(secret, request, body, time.time())
            else:
                _check_header_token(source, auth, request.headers.get("authorization", ""))
            data = _json(body)
            events = [parse_generic(data)] if source == "generic" else parse_webhook(data, source)
            outcomes = await receive(events)
        except Refused as refused:
            logger.info(
                "alert request to %s refused (%d): %s", source, refused.status, refused.message
            )
            return JSONResponse(
                {"status": "error", "message": refused.message}, status_code=refused.status
            )
        incidents = sorted({o.incident for o in outcomes if o.incident is not None})
        return JSONResponse(
            {
                "status": "ok",
                "received": len(outcomes),
                "new": sum(1 for o in outcomes if o.state == "new"),
                "incidents": incidents,
            }
        )

    @router.post("/alerts/alertmanager")
    async def alertmanager(request: Request) -> Response:
        return await webhook(request, "alertmanager")

    @router.post("/alerts/grafana")
    async def grafana(request: Request) -> Response:
        return await webhook(request, "grafana")

    @router.post("/alerts/generic")
    async def generic(request: Request) -> Response:
        return await webhook(request, "generic")

    async def pagerduty(request: Request) -> Response:
        try:
            body = await _read_body(request)
            data = _json(body)
            expected = auth.tokens.get("pagerduty")
            name = auth.token_names.get("pagerduty", TOKEN_ENV)
            if not expected:
                raise Refused(401, f"alerts are not accepted: no token is configured (set {name})")
            key = data.get("routing_key")
            if not isinstance(key, str) or not key:
                raise Refused(401, "routing_key is required (it carries the token)")
            if not _same(key, expected):
                raise Refused(401, "wrong routing_key")
            event = parse_pagerduty(data)
            await receive([event])
        except Refused as refused:
            logger.info("PagerDuty event refused (%d): %s", refused.status, refused.message)
            return JSONResponse(
                {
                    "status": "invalid event" if refused.status == 400 else "unauthorized",
                    "message": refused.message,
                    "errors": [refused.message],
                },
                status_code=refused.status,
            )
        return JSONResponse(
            {"status": "success", "message": "Event processed", "dedup_key": event.fingerprint},
            status_code=202,
        )

    router.add_api_route("/v2/enqueue", pagerduty, methods=["POST"])
    router.add_api_route("/alerts/pagerduty", pagerduty, methods=["POST"])
    return router
