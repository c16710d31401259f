"""Redaction: secrets and personal data are masked before any text leaves for a model.

The default patterns cover what people paste into incident channels in a hurry: email
addresses, bearer tokens, Slack/GitHub/OpenAI tokens, AWS access keys, JWTs, private key blocks,
`password=...` / `secret: ...` pairs and long random-looking strings. Teams add their own regexes
(customer ids, internal hostnames...) through configuration; those are replaced by `[redacted]`
or by the label they are given.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Characters a token or key is made of; used to find where one starts and ends.
_TOKEN_CHARS = r"A-Za-z0-9+/_\-"
_KEY_NAMES = (
    r"passwords?|passwd|pwd|pass|secrets?|client[_-]?secret|api[_-]?keys?|apikey|"
    r"access[_-]?keys?|secret[_-]?keys?|private[_-]?key|tokens?|auth[_-]?token|"
    r"access[_-]?token|refresh[_-]?token|credentials?"
)


@dataclass(frozen=True)
class Pattern:
    """One thing to mask: a compiled regex and the text that replaces each match.

    When the regex has a group named `keep`, that part of the match is kept in front of the
    replacement (so `password=hunter2` becomes `password=[redacted-secret]`).
    """

    label: str
    regex: re.Pattern[str]

    @property
    def replacement(self) -> str:
        return f"[{self.label}]"


def _p(label: str, regex: str, flags: int = 0) -> Pattern:
    return Pattern(label, re.compile(regex, flags))


# Order matters: the specific shapes (a JWT, a Slack token) go before the generic ones (a long
# random string), so the label says what was found.
DEFAULT_PATTERNS: tuple[Pattern, ...] = (
    _p(
        "redacted-private-key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
        re.DOTALL,
    ),
    _p("redacted-jwt", r"\beyJ[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]{5,}\.[A-Za-z0-9_\-]*"),
    _p("redacted-token", r"(?P<keep>\b[Bb]earer\s+)[A-Za-z0-9\-._~+/]{8,}=*"),
    _p("redacted-slack-token", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    _p("redacted-slack-token", r"\bxapp-\d-[A-Za-z0-9\-]{10,}"),
    _p("redacted-github-token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})"),
    _p("redacted-api-key", r"\bsk-(?:proj-|ant-)?[A-Za-z0-9_\-]{20,}"),
    _p("redacted-aws-key", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA)[0-9A-Z]{16}\b"),
    _p(
        "redacted-secret",
        rf"(?P<keep>\b(?:{_KEY_NAMES})\b\s*[:=]\s*)(?:\"[^\"\n]*\"|'[^'\n]*'|[^\s,;&]+)",
        re.IGNORECASE,
    ),
    _p(
        "redacted-email",
        r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
    ),
    _p("redacted-secret", r"(?<![A-Za-z0-9])[0-9a-fA-F]{32,}(?![A-Za-z0-9])"),
    # Long base64/base64url runs mixing upper case, lower case and digits: random, not words.
    _p(
        "redacted-secret",
        rf"(?<![{_TOKEN_CHARS}=])(?=[{_TOKEN_CHARS}]*[0-9])(?=[{_TOKEN_CHARS}]*[a-z])"
        rf"(?=[{_TOKEN_CHARS}]*[A-Z])[{_TOKEN_CHARS}]{{32,}}={{0,2}}",
    ),
)


class Redactor:
    """Masks the default patterns plus `extra` ones in text sent to a model.

    `extra` items are regexes (replaced by `[redacted]`) or `(label, regex)` pairs (replaced
    by `[label]`). A regex that does not compile raises ValueError naming it.
    """

    def __init__(
        self, extra: Iterable[str | tuple[str, str]] = (), *, defaults: bool = True
    ) -> None:
        patterns = list(DEFAULT_PATTERNS) if defaults else []
        for item in extra:
            label, regex = ("redacted", item) if isinstance(item, str) else item
            try:
                patterns.append(Pattern(label, re.compile(regex)))
            except re.error as exc:
                raise ValueError(
                    f'redaction pattern "{regex}" is not a valid regex: {exc}'
                ) from None
        self.patterns: tuple[Pattern, ...] = tuple(patterns)

    def redact(self, text: str) -> str:
        """Return `text` with every match of every pattern replaced by its label."""
        for pattern in self.patterns:
            text = pattern.regex.sub(_replacer(pattern), text)
        return text

    def __call__(self, text: str) -> str:
        return self.redact(text)


def _replacer(pattern: Pattern) -> Callable[[re.Match[str]], str]:
    keep = "keep" in pattern.regex.groupindex

    def replace(match: re.Match[str]) -> str:
        prefix = (match.group("keep") or "") if keep else ""
        return prefix + pattern.replacement

    return replace
