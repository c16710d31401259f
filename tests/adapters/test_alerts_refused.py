"""Requests the alert endpoints refuse: each with the status a sender can act on, a message
naming what is wrong, and nothing stored."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from adapters.alerts_http import AlertAuth
from bot.models import Alert, Incident
from tests.adapters.alerts_support import (
    TOKEN,
    AlertRig,
    alert_rig,
    am_alert,
    am_payload,
    grafana_payload,
    pd_event,
)
from tests.conftest import Core

HMAC_SECRET = "grafana-signing-secret"


@pytest.fixture
async def rig(core: Core) -> AsyncIterator[AlertRig]:
    auth = AlertAuth(
        tokens=dict.fromkeys(("alertmanager", "grafana", "pagerduty", "generic"), TOKEN),
        hmac_secrets={"grafana": HMAC_SECRET},
    )
    async with alert_rig(core, auth) as r:
        yield r


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def sign(body: bytes, stamp: str | None = None) -> str:
    signed = body if stamp is None else stamp.encode() + b":" + body
    return hmac.new(HMAC_SECRET.encode(), signed, hashlib.sha256).hexdigest()


def cases(now: Any) -> list[tuple[str, str, bytes, dict[str, str], int, str]]:
    """(name, path, body, headers, status, a word the message must contain)"""
    good = am_payload([am_alert(starts=now)])
    raw = json.dumps(good).encode()
    bearer = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}

    def am(body: Any) -> bytes:
        return json.dumps(body).encode()

    alert = am_alert(starts=now)
    g = json.dumps(grafana_payload([alert])).encode()
    pd = pd_event("trigger", "k1")
    huge = json.dumps(am_payload([am_alert(starts=now, instance="x" * 1_100_000)])).encode()
    return [
        ("no credentials", "/alerts/alertmanager", raw, {}, 401, "Authorization"),
        (
            "wrong bearer",
            "/alerts/alertmanager",
            raw,
            {"Authorization": "Bearer nope"},
            401,
            "wrong",
        ),
        ("empty bearer", "/alerts/alertmanager", raw, {"Authorization": "Bearer"}, 401, "missing"),
        (
            "wrong basic",
            "/alerts/alertmanager",
            raw,
            {"Authorization": basic("am", "nope")},
            401,
            "wrong",
        ),
        (
            "garbled basic",
            "/alerts/alertmanager",
            raw,
            {"Authorization": "Basic %%%"},
            401,
            "basic",
        ),
        (
            "token scheme",
            "/alerts/alertmanager",
            raw,
            {"Authorization": f"Token {TOKEN}"},
            401,
            "Bearer",
        ),
        ("generic no credentials", "/alerts/generic", b'{"title": "x"}', {}, 401, "Authorization"),
        ("grafana unsigned", "/alerts/grafana", g, bearer, 401, "X-Grafana-Alerting-Signature"),
        (
            "grafana bad signature",
            "/alerts/grafana",
            g,
            {"X-Grafana-Alerting-Signature": "ab" * 32},
            401,
            "signature",
        ),
        (
            "grafana signed other body",
            "/alerts/grafana",
            g,
            {"X-Grafana-Alerting-Signature": sign(raw)},
            401,
            "signature",
        ),
        (
            "grafana stale timestamp",
            "/alerts/grafana",
            g,
            {
                "X-Grafana-Alerting-Signature": sign(g, "1000"),
                "X-Grafana-Alerting-Timestamp": "1000",
            },
            401,
            "timestamp",
        ),
        (
            "pd no routing_key",
            "/v2/enqueue",
            am({k: v for k, v in pd.items() if k != "routing_key"}),
            {},
            401,
            "routing_key",
        ),
        (
            "pd wrong routing_key",
            "/v2/enqueue",
            am(pd | {"routing_key": "R0UT1NGKEY"}),
            {},
            401,
            "routing_key",
        ),
        (
            "pd wrong routing_key alias",
            "/alerts/pagerduty",
            am(pd | {"routing_key": TOKEN[:-1]}),
            {},
            401,
            "routing_key",
        ),
        ("malformed JSON", "/alerts/alertmanager", b'{"alerts": [', bearer, 400, "JSON"),
        ("not an object", "/alerts/alertmanager", b"[1, 2]", bearer, 400, "object"),
        (
            "no alerts",
            "/alerts/alertmanager",
            am({k: v for k, v in good.items() if k != "alerts"}),
            bearer,
            400,
            "alerts",
        ),
        ("version 3", "/alerts/alertmanager", am(good | {"version": "3"}), bearer, 400, "version"),
        (
            "bad status",
            "/alerts/alertmanager",
            am(am_payload([alert | {"status": "pending"}])),
            bearer,
            400,
            "alerts[0].status",
        ),
        (
            "labels not an object",
            "/alerts/alertmanager",
            am(good | {"alerts": [alert | {"labels": ["a"]}]}),
            bearer,
            400,
            "alerts[0].labels",
        ),
        (
            "no startsAt",
            "/alerts/alertmanager",
            am(am_payload([{k: v for k, v in alert.items() if k != "startsAt"}])),
            bearer,
            400,
            "startsAt",
        ),
        (
            "bad startsAt",
            "/alerts/alertmanager",
            am(am_payload([alert | {"startsAt": "yesterday"}])),
            bearer,
            400,
            "startsAt",
        ),
        (
            "second alert bad",
            "/alerts/alertmanager",
            am(am_payload([alert, alert | {"annotations": "x"}])),
            bearer,
            400,
            "alerts[1].annotations",
        ),
        (
            "pd bad action",
            "/v2/enqueue",
            am(pd | {"event_action": "explode"}),
            {},
            400,
            "event_action",
        ),
        (
            "pd no payload",
            "/v2/enqueue",
            am({k: v for k, v in pd.items() if k != "payload"}),
            {},
            400,
            "payload",
        ),
        (
            "pd bad severity",
            "/v2/enqueue",
            am(pd | {"payload": pd["payload"] | {"severity": "high"}}),
            {},
            400,
            "payload.severity",
        ),
        (
            "pd resolve without dedup_key",
            "/v2/enqueue",
            am({"routing_key": TOKEN, "event_action": "resolve"}),
            {},
            400,
            "dedup_key",
        ),
        ("generic no title", "/alerts/generic", b'{"severity": "critical"}', bearer, 400, "title"),
        (
            "generic bad severity",
            "/alerts/generic",
            b'{"title": "x", "severity": "sev1"}',
            bearer,
            400,
            "severity",
        ),
        ("over 1 MB", "/alerts/alertmanager", huge, bearer, 413, "too large"),
    ]


async def test_thirty_bad_requests_are_refused_and_store_nothing(rig: AlertRig) -> None:
    all_cases = cases(rig.core.clock.now())
    assert len(all_cases) == 30
    for name, path, body, headers, status, word in all_cases:
        response = await rig.http.post(path, content=body, headers=headers)
        assert response.status_code == status, (name, response.text)
        assert word.lower() in response.json()["message"].lower(), (name, response.text)
        assert TOKEN not in response.text and HMAC_SECRET not in response.text
    assert await rig.count(Alert) == 0
    assert await rig.count(Incident) == 0


async def test_a_body_over_the_limit_without_content_length_is_refused(rig: AlertRig) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b" " * 100_000  # JSON whitespace: only its size is wrong

    response = await rig.http.post(
        "/alerts/alertmanager",
        content=chunks(),
        headers={"Authorization": f"Bearer {TOKEN}"},
    )
    assert response.status_code == 413
    assert await rig.count(Alert) == 0


async def test_grafana_signed_alerts_are_accepted(rig: AlertRig) -> None:
    body = json.dumps(grafana_payload([am_alert(starts=rig.core.clock.now())])).encode()
    response = await rig.http.post(
        "/alerts/grafana", content=body, headers={"X-Grafana-Alerting-Signature": sign(body)}
    )
    assert response.status_code == 200, response.text
    stamp = str(int(time.time()))
    body2 = body.replace(b"c6eadffa", b"c6eadffb")
    response = await rig.http.post(
        "/alerts/grafana",
        content=body2,
        headers={
            "X-Grafana-Alerting-Signature": sign(body2, stamp),
            "X-Grafana-Alerting-Timestamp": stamp,
        },
    )
    assert response.status_code == 200, response.text
    assert await rig.count(Incident) == 1


async def test_basic_auth_with_the_token_as_password_is_accepted(rig: AlertRig) -> None:
    body = am_payload([am_alert(starts=rig.core.clock.now())])
    response = await rig.http.post(
        "/alerts/alertmanager", json=body, headers={"Authorization": basic("alertmanager", TOKEN)}
    )
    assert response.status_code == 200, response.text


async def test_with_no_token_configured_every_alert_request_is_refused(core: Core) -> None:
    async with alert_rig(core, AlertAuth.from_env(core.service.catalog, None, {})) as rig:
        body = am_payload([am_alert(starts=core.clock.now())])
        for path, payload in (
            ("/alerts/alertmanager", body),
            ("/alerts/grafana", grafana_payload(body["alerts"])),
            ("/alerts/generic", {"title": "disk full"}),
            ("/v2/enqueue", pd_event("trigger", "k")),
        ):
            response = await rig.http.post(
                path, json=payload, headers={"Authorization": f"Bearer {TOKEN}"}
            )
            assert response.status_code == 401, path
            assert "OPSROOM_ALERT_TOKEN" in response.json()["message"]
        assert await rig.count(Alert) == 0


async def test_a_source_may_name_its_own_token_variable(core: Core) -> None:
    from bot.catalog import AlertSource

    catalog = core.service.catalog.model_copy(
        update={"alert_sources": {"generic": AlertSource(token_env="CI_ALERT_TOKEN")}}
    )
    auth = AlertAuth.from_env(catalog, TOKEN, {"CI_ALERT_TOKEN": "ci-token"})
    async with alert_rig(core, auth) as rig:
        ok = await rig.http.post(
            "/alerts/generic",
            json={"title": "Nightly backup failed", "severity": "error", "dedup_key": "backup"},
            headers={"Authorization": "Bearer ci-token"},
        )
        assert ok.status_code == 200, ok.text
        refused = await rig.http.post(
            "/alerts/generic",
            json={"title": "x"},
            headers={"Authorization": f"Bearer {TOKEN}"},
        )
        assert refused.status_code == 401
    assert isinstance(ok, httpx.Response)
