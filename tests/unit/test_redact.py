"""Redaction of secrets and personal data before text leaves for a model."""

from __future__ import annotations

import pytest

from bot.redact import Redactor


@pytest.fixture
def redactor() -> Redactor:
    return Redactor()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("page alice.smith+oncall@example.co.uk now", "page [redacted-email] now"),
        (
            "curl -H 'Authorization: Bearer abc.DEF-123_456~xyz'",
            "curl -H 'Authorization: Bearer [redacted-token]'",
        ),
        (
            "bot token xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOp leaked",
            "bot token [redacted-slack-token] leaked",
        ),
        (
            "user token xoxp-1234567890-abcdef in the logs",
            "user token [redacted-slack-token] in the logs",
        ),
        ("key AKIAIOSFODNN7EXAMPLE was used", "key [redacted-aws-key] was used"),
        (
            "aws secret wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY in the env",
            "aws secret [redacted-secret] in the env",
        ),
        (
            "pushed ghp_aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789 to the repo",
            "pushed [redacted-github-token] to the repo",
        ),
        (
            "fine-grained github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "fine-grained [redacted-github-token]",
        ),
        (
            "session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0",
            "session [redacted-jwt]",
        ),
        (
            "openai key sk-proj-AbCdEfGhIjKlMnOpQrStUvWx1234 rotated",
            "openai key [redacted-api-key] rotated",
        ),
        (
            "db password=hunter2 and secret: 's3 cr3t'",
            "db password=[redacted-secret] and secret: [redacted-secret]",
        ),
        ("API_KEY = abcdef; next", "API_KEY = [redacted-secret]; next"),
        (
            "https://api.example.com/v1/orders?token=abc123&page=2",
            "https://api.example.com/v1/orders?token=[redacted-secret]&page=2",
        ),
        (
            "hash 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 matched",
            "hash [redacted-secret] matched",
        ),
        (
            "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY----- oops",
            "[redacted-private-key] oops",
        ),
    ],
)
def test_default_patterns(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "checkout 500s in EU since the 14:05 deploy, card payments failing",
        "p99 at 2.5s on https://grafana.example.com/d/abc/checkout-overview?orgId=1",
        "rolled back release 4.12.0 (commit 3f2a9c1) at 2026-11-25T14:05:00Z",
        "the internationalization-localization-service crashed with OOMKilled",
        "password reset emails are delayed",  # a key name without a value is not a secret
        "kubectl get pods -n payments-prod --selector=app.kubernetes.io/name=checkout",
    ],
)
def test_ordinary_incident_text_is_left_alone(redactor: Redactor, text: str) -> None:
    assert redactor.redact(text) == text


def test_several_secrets_in_one_text(redactor: Redactor) -> None:
    text = "bob@example.com pasted Bearer abcdefgh12345678 and AKIAIOSFODNN7EXAMPLE into #general"
    assert redactor.redact(text) == (
        "[redacted-email] pasted Bearer [redacted-token] and [redacted-aws-key] into #general"
    )


def test_extra_patterns_from_configuration() -> None:
    redactor = Redactor([r"\bCUST-\d{6}\b", ("redacted-host", r"\b[a-z0-9-]+\.corp\.internal\b")])
    text = "CUST-004217 cannot reach db-7.corp.internal, mail ops@example.com"
    assert redactor.redact(text) == (
        "[redacted] cannot reach [redacted-host], mail [redacted-email]"
    )


def test_defaults_can_be_turned_off() -> None:
    redactor = Redactor([r"\d{4}-\d{4}"], defaults=False)
    assert redactor.redact("card 1234-5678 for ops@example.com") == (
        "card [redacted] for ops@example.com"
    )


def test_a_bad_pattern_is_named() -> None:
    with pytest.raises(ValueError, match=r'"\(unclosed" is not a valid regex'):
        Redactor(["(unclosed"])


def test_redactor_is_callable(redactor: Redactor) -> None:
    assert redactor("mail me@example.org") == "mail [redacted-email]"
