"""The built-in heuristic suggester: fields for a new incident from its description alone.

The incident type comes from the catalog's keywords for each type (and words shared with its
description); a keyword met where the description names a cause ("after the deploy", "due to
an expired certificate") counts double, because the type is what went wrong, not what it looked
like. The severity comes from reading the impact the description states: how bad (a breach or
data lost, down, degraded, cosmetic or internal only) and how wide (everyone, many, some), mapped
onto the catalog's severities from the most to the least severe, plus the catalog's own
severity keywords and the chosen type's usual severity. It needs no network and answers in
about a millisecond, so it is also what every AI suggester falls back to.

Its accuracy is measured by `python -m bench.suggest` on a tuning set and on a held-out set
never tuned on (tests/data/); tests/unit/test_labelled_set.py guards both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from bot.catalog import Catalog, FieldKind
from bot.ports import FieldSource, Suggestion

TITLE_LIMIT = 60
AI_OFF_SHARE = 0.5
_PRIOR = 0.75  # weight of the chosen type's default severity
_WORD_RE = re.compile(r"[a-z0-9][a-z0-9'+.\-]*[a-z0-9]|[a-z0-9]")
_STOPWORDS = frozenset(
    "a an and are as at be been but by for from has have in is it its of on or our since "
    "that the their there this to was we were with after before".split()
)
# Alert names are identifiers: "HighErrorRate", "KubePodCrashLooping", "disk_used_percent".
# A capital starts a word when two lowercase letters follow it, so "NaN", "iOS" and "IdP" stay
# whole.
_CAMEL_RE = re.compile(r"(?<=[a-z0-9])(?=[A-Z][a-z]{2})|(?<=[A-Z])(?=[A-Z][a-z]{2})")
# A status page's state label says where the response is, not what happened.
_STATE_RE = re.compile(
    r"^\s*(?:investigating|identified|monitoring|resolved|update|updated|postmortem)\s*[-–—:]\s*"
)


def _normalise(text: str) -> str:
    """Lowercase text in which identifiers read as the words they are made of."""
    text = text.replace("\u2019", "'").replace("_", " ")
    return _STATE_RE.sub("", _CAMEL_RE.sub(" ", text).lower())


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS}


# Words that, a few words earlier in the same clause, deny a keyword: "no sign of exploitation",
# "not exposed in production". "cannot"/"can't" are symptoms ("can't log in"), not denials.
_NEGATIONS = frozenset(
    "no not never without none nothing isn't aren't wasn't weren't don't doesn't "
    "didn't hasn't haven't nor".split()
)
_NEGATION_WINDOW = 4
# A denial reaches no further than its clause: "not flowing for many customers" denies the flow,
# not the "many".
_CLAUSE_RE = re.compile(r"[,.;:!?()\n]|\s(?:and|but|for|while|so|because)\s")
# Short keywords ("eu", "us", "api") match only as written; longer ones also with an inflection,
# so "error" finds "errors"/"erroring" and "crash" finds "crashed".
_INFLECTED_MIN = 4
_SUFFIXES = r"(?:s|es|ed|d|ing)?"


# Hundreds of phrases are matched per description, more than `re` keeps compiled.
@lru_cache(maxsize=4096)
def _keyword_re(phrase: str, *, inflected: bool = False) -> re.Pattern[str]:
    inflect = inflected and len(phrase) >= _INFLECTED_MIN and phrase[-1].isalpha()
    suffix = _SUFFIXES if inflect else ""
    return re.compile(rf"(?<![a-z0-9]){re.escape(phrase.lower())}{suffix}(?![a-z0-9])")


def _mentions(text: str, phrase: str) -> bool:
    """Whether `phrase` stands in `text` as whole words (case-insensitive)."""
    return _keyword_re(phrase).search(text) is not None


def _negated(text: str, start: int) -> bool:
    clause = _CLAUSE_RE.split(text[:start])[-1]
    before = clause.split()[-_NEGATION_WINDOW:]
    return any(w in _NEGATIONS for w in before)


# Words that introduce what caused an incident: "after the 14:30 release", "due to an expired
# certificate", "following a configuration change". A keyword in that place names the cause.
_CAUSES = frozenset("after following since due caused because triggered introduced".split())
_CAUSE_WINDOW = 6
_CAUSE_WEIGHT = 2.0
_PUNCTUATION_RE = re.compile(r"[,.;:!?()\n]")
# Verbs after a keyword that make it the cause: "the 13:00 release took the platform down",
# "a configuration change to our rate limiter caused...".
_CAUSING = frozenset(
    "caused causing causes broke breaks took triggered introduced led resulted made crashed "
    "deleted removed".split()
)


def _in_cause(text: str, start: int, end: int) -> bool:
    before = _PUNCTUATION_RE.split(text[:start])[-1].split()[-_CAUSE_WINDOW:]
    after = _PUNCTUATION_RE.split(text[end:])[0].split()[:_CAUSE_WINDOW]
    return any(w in _CAUSES for w in before) or any(w in _CAUSING for w in after)


def _weight(phrase: str) -> float:
    """A phrase says more than a single word: "some customers" outweighs "errors"."""
    return 1.0 + 0.5 * (len(phrase.split()) - 1)


def _hits(text: str, keywords: Iterable[str], *, causes: bool = False) -> float:
    """The weight of the keywords `text` mentions and does not deny; with `causes`, a keyword
    met where a cause is named weighs double."""
    total = 0.0
    for k in keywords:
        best = 0.0
        for m in _keyword_re(k, inflected=True).finditer(text):
            if _negated(text, m.start()):
                continue
            cause = causes and _in_cause(text, m.start(), m.end())
            best = max(best, _weight(k) * (_CAUSE_WEIGHT if cause else 1.0))
        total += best
    return total


def _score(text: str, words: set[str], keywords: list[str], description: str) -> float:
    return 2.0 * _hits(text, keywords, causes=True) + 0.5 * len(words & _words(description))


# --- severity: the impact a description states ---------------------------------------------
#
# A four-step ladder, 0 the worst, read from the default catalog's definitions: 0 a full outage,
# data lost or a security breach; 1 a core feature broken or badly degraded for many; 2 degraded
# or broken for some, with a workaround; 3 cosmetic or internal only. A catalog with another
# number of severities gets the same ladder stretched over its own, most severe first.
_LADDER = 3
_IMPACT_WEIGHT = 3.0

# How bad. A security breach or data lost: the worst step, unless it is said of a few.
_BREACH = [
    "breach", "breached", "exfiltration", "exfiltrated", "exfil", "compromised", "leaked",
    "unauthorized access", "unauthorised access", "unauthorized party", "unauthorised party",
    "ransomware", "data loss", "lost data", "data lost", "deleted all", "lost all",
    "lost the last", "writes lost", "wiped", "permanently lost", "someone else's",
    "each other's", "another customer's", "other customers'", "other companies'",
    "other people's", "public-read", "exposed", "unknown ip", "unknown ips", "unrecognised",
    "unrecognized", "used from",
]
# Broken: down, erroring, refused, or data gone or wrong.
_DOWN = [
    "down", "outage", "unavailable", "unreachable", "not reachable", "offline", "dead",
    "error", "5xx", "500", "500s", "502", "503", "504", "429", "failing", "fails", "failed",
    "failure", "crash", "crashloop", "broken", "broke", "cannot", "can't", "unable",
    "not working", "doesn't work", "stopped", "declined", "rejected", "refused", "not loading",
    "nothing loads", "timing out", "time out", "timeouts", "not resolving", "don't resolve",
    "lost", "missing", "deleted", "wrong", "incorrect", "empty",
]
# Working, but slowly, late or stale.
_DEGRADED = [
    "slow", "slower", "sluggish", "laggy", "latency", "p50", "p95", "p99", "p999", "delayed",
    "delay", "delays", "lag", "backlog", "queueing", "queued", "longer than usual", "elevated",
    "degraded", "intermittent", "intermittently", "spiky", "throttled", "throttling", "stale",
    "out of date", "behind",
]
# Badly degraded: the catalog's "badly degraded for many", whoever it is said of.
_SEVERE = [
    "badly", "severely", "painfully", "through the roof", "melting", "pinned", "maxed",
    "unusable", "to a trickle", "crawl",
]
_MULTIPLE_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)x(?![a-z0-9])")
_SECONDS_RE = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)\+?\s?(?:s|sec|secs|seconds)(?![a-z0-9])")
_SEVERE_MULTIPLE = 5.0  # "6x normal response times"
_SEVERE_SECONDS = 8.0  # a page or call taking this long is badly degraded
# Said of a security event that was stopped or taken in time: not yet a breach.
_CONTAINED = [
    "blocked", "mitigated", "rate limiting", "rate-limiting", "challenge", "no evidence",
    "no sign", "precaution", "rotating", "rotated", "revoked", "no accounts known",
]
# No customer sees it: internal systems, a warning of what may come, the old version serving.
_INTERNAL = [
    "internal", "internally", "staging", "dev", "test environment", "ci", "build server",
    "build agent", "pipeline", "no customer impact", "no user impact", "no impact",
    "not customer facing", "not customer-facing", "nothing customer facing",
    "nothing customer-facing", "analytics", "bi team", "ops team", "bastion", "still serving",
    "still running", "previous version", "old version", "looks ok", "healthy", "auto-resolved",
    "expires in", "will fill", "will start failing", "backup job", "no incidents",
    "flying blind",
]
# Who a description is about when it names them: then it is not internal only.
_CUSTOMERS = [
    "customer", "customers", "user", "users", "visitor", "visitors", "shopper", "shoppers",
    "client", "clients", "member", "members", "merchant", "merchants", "public", "buyers",
]
# Looks wrong, works right.
_COSMETIC = [
    "cosmetic", "typo", "misaligned", "unprofessional", "display issue", "not urgent",
    "small thing", "purely", "banner", "translation", "logo", "nan",
]
# Something else still works: the mark of "some customers, with a workaround".
_WORKAROUND = [
    "workaround", "still works", "still work", "still working", "works normally",
    "working normally", "still go through", "do go through", "go through", "unaffected",
    "not affected", "can still", "retries work", "retries succeed", "retrying", "eventually",
    "works fine", "fine", "works tho", "still live", "still come back", "still show",
]
# How wide.
_ALL = [
    "everyone", "everybody", "everything", "nobody can", "no one can", "entire", "whole",
    "globally", "global", "worldwide", "anywhere", "all regions", "all customers", "all users",
    "all our users", "all of our", "all services", "all requests", "all traffic",
    "every request", "every service", "every page", "every call", "every attempt",
    "every monitor", "every single", "all probe locations", "completely", "total outage",
    "totally down", "hard down", "across our network", "all servers",
    "all our services", "most", "all accounts", "major outage", "nothing is", "nothing works",
]
_MANY = [
    "many", "a lot of", "lots of", "majority", "large portion", "large number", "a third",
    "half", "widespread", "thousands", "hundreds", "multiple", "several", "partial outage",
    "affected too", "see the same", "seeing the same", "say the same", "same here",
    "not just us",
]
_SOME = [
    "some", "a few", "subset", "small number", "small fraction", "fraction", "handful",
    "portion", "a couple", "limited number", "one customer", "single", "for me", "minority",
    "certain", "older", "canary", "one tenant", "a tenant", "one account", "only us",
    "my account", "for my", "only for", "only on", "only in", "only the", "only affects",
]
_PERCENT_RE = re.compile(r"(\d{1,3}(?:\.\d+)?)\s?%")
_REFERENCE = frozenset("target threshold baseline slo normal vs usual goal".split())
_RESOURCE = frozenset(
    "cpu memory mem disk quota utilisation utilization storage heap capacity full used vcpu "
    "budget conversion cache hit blocked alerts".split()
)
_SUCCESS = frozenset("availability success uptime".split())
_MANY_SHARE = 10.0  # percent of requests failing from which "many" are affected
_ALL_SHARE = 50.0  # the catalog's "most customers affected"
# "everything else is fast" says nothing of everything.
_ELSE_RE = re.compile(r"\b(?:everything|everyone|everybody)(?:'s)? else('s)?\b")


def _any(text: str, phrases: list[str]) -> bool:
    return _hits(text, phrases) > 0


def _share_scope(text: str) -> int | None:
    """How wide, from a share of requests or users that fail: "30% of card payments fail"."""
    widest: int | None = None
    for m in _PERCENT_RE.finditer(text):
        before = _PUNCTUATION_RE.split(text[: m.start()])[-1].split()
        after = _PUNCTUATION_RE.split(text[m.end() :])[0].split()
        if any(w in _REFERENCE for w in before[-2:]) or any(
            w in _RESOURCE for w in before + after
        ):
            continue
        share = float(m.group(1))
        if any(w in _SUCCESS for w in before[-4:]):
            share = 100.0 - share
        scope = 0 if share >= _ALL_SHARE else 1 if share >= _MANY_SHARE else 2
        widest = scope if widest is None else min(widest, scope)
    return widest


def _scope(text: str) -> int | None:
    """0 everyone, 1 many, 2 some; None when the description does not say."""
    text = _ELSE_RE.sub("others", text)
    for level, phrases in enumerate((_ALL, _MANY, _SOME)):
        if _any(text, phrases):
            return level
    share = _share_scope(text)
    if share is None and _any(text, _CUSTOMERS):
        return 1  # "customers can't log in": customers at large, so many
    return share


def _severe(text: str) -> bool:
    if _any(text, _SEVERE):
        return True
    if any(float(m.group(1)) >= _SEVERE_MULTIPLE for m in _MULTIPLE_RE.finditer(text)):
        return True
    return any(float(m.group(1)) >= _SEVERE_SECONDS for m in _SECONDS_RE.finditer(text))


def _impact_rank(text: str) -> int | None:
    """Where the description sits on the ladder, or None when it says nothing of impact."""
    scope = _scope(text)
    if _any(text, _BREACH):
        return 1 if scope == 2 else 0
    down, degraded = _any(text, _DOWN), _any(text, _DEGRADED) or _severe(text)
    workaround = _any(text, _WORKAROUND)
    customers = _any(text, _CUSTOMERS)
    if _any(text, _INTERNAL) and not customers:
        return 3
    if _any(text, _COSMETIC) and not degraded and scope != 0:
        return 3
    if _any(text, _CONTAINED) and not down:
        return 2
    if down:
        if scope is None:
            return 2 if workaround else 1
        # "most queries fail, browsing still works": not everyone is stopped.
        return 1 if workaround and scope == 0 else scope
    if degraded:
        if scope == 2 or (workaround and scope != 0):
            return 2
        return 1 if scope is not None or _severe(text) else 2
    if workaround:
        return 2
    return None


def _severity(text: str, default: str, catalog: Catalog) -> tuple[str, FieldSource]:
    """The severity the catalog's keywords and the impact ladder vote for, and its source."""
    names = catalog.severity_names
    votes = [_hits(text, s.keywords) for s in catalog.severities]
    rank = _impact_rank(text)
    if rank is not None:
        votes[round(rank * (len(names) - 1) / _LADDER)] += _IMPACT_WEIGHT
    if max(votes) == 0:
        return default, "default"
    # The chosen type's usual severity is a small prior: it settles ties and weak evidence.
    scored = [
        (v + (_PRIOR if name == default else 0.0), -i, name)
        for i, (v, name) in enumerate(zip(votes, names, strict=True))
    ]
    return max(scored)[2], "heuristic"


# Acronyms a title keeps in capitals however the description was typed.
_ACRONYMS = {
    a.lower(): a
    for a in (
        "API APIs DNS EU UK APAC EMEA SSO SAML TLS SSL CDN CPU GPU RAM VPN VPC AWS GCP "
        "EC2 S3 RDS IAM DB CI CD PII MFA 2FA UI UX SLA SLO HTTP HTTPS SMS SMTP CSV PDF URL "
        "IP IPs SQL JSON TCP UDP BGP NTP SSH CVE DDoS ETL BI CRM SDK OOM LB K8s iOS WAF "
        "OAuth IdP"
    ).split()
}
_TOKEN_RE = re.compile(r"(?<![\w.\-/@])[A-Za-z0-9]+(?![\w.\-/@])")


def _acronyms(title: str) -> str:
    def fix(m: re.Match[str]) -> str:
        word = m.group(0)
        known = _ACRONYMS.get(word.lower())
        # Only a word typed all lowercase is changed: "Api" or "ApI" were meant as written.
        return known if known is not None and word.islower() else word

    return _TOKEN_RE.sub(fix, title)


def title_from(description: str) -> str:
    """A short title: the first clause of the description, capitalised, at most 60 chars,
    with known acronyms (API, DNS, EU...) in capitals."""
    # A full stop ends a clause only before a space: "api.example.com" and "v2.3" stay whole.
    first = re.split(r"\.(?=\s|$)|[;!?\n]|,\s|\s[-–—]\s", description.strip(), maxsplit=1)[0]
    first = first.strip()
    first = first or description.strip()
    if len(first) > TITLE_LIMIT:
        cut = first[:TITLE_LIMIT].rsplit(" ", 1)[0]
        first = cut if len(cut) > TITLE_LIMIT // 2 else first[:TITLE_LIMIT]
    first = _acronyms(first)
    if first.split(" ", 1)[0] in _ACRONYMS.values():
        return first  # "iOS app crashes" stays as the acronym is written
    return first[:1].upper() + first[1:]


def heuristic_suggestion(description: str, type_hint: str | None, catalog: Catalog) -> Suggestion:
    """Return the catalog fields the description points to, each with where it came from."""
    text = _normalise(description)
    words = _words(description)
    sources: dict[str, FieldSource] = {"title": "heuristic", "summary": "heuristic"}

    chosen = catalog.incident_type(type_hint) if type_hint else None
    if chosen is not None:
        sources["type"] = "person"
    else:
        scored = [
            (_score(text, words, t.keywords, t.description), -i, t)
            for i, t in enumerate(catalog.incident_types)
        ]
        best_score, _, best = max(scored, key=lambda s: (s[0], s[1]))
        chosen = best if best_score > 0 else catalog.incident_types[0]
        sources["type"] = "heuristic" if best_score > 0 else "default"

    severity, sources["severity"] = _severity(text, chosen.default_severity, catalog)

    if sources["severity"] == "default":
        priority = chosen.default_priority
        sources["priority"] = "default"
    else:
        # Priority follows severity rank: the n-th severity maps to the n-th priority.
        rank = catalog.severity_names.index(severity)
        priority = catalog.priority_names[min(rank, len(catalog.priorities) - 1)]
        sources["priority"] = "heuristic"

    fields: dict[str, object] = {}
    lower = description.lower()
    for f in chosen.fields:
        if f.kind in (FieldKind.SELECT, FieldKind.MULTI_SELECT):
            found = [c for c in f.choices if _mentions(lower, c)]
            if found:
                fields[f.name] = found if f.kind is FieldKind.MULTI_SELECT else found[0]
                sources[f.name] = "heuristic"

    return Suggestion(
        title=title_from(description),
        summary=description.strip(),
        type=chosen.name,
        severity=severity,
        priority=priority,
        custom_fields=fields,
        sources=sources,
    )


def ai_off_types_mentioned(description: str, catalog: Catalog) -> list[str]:
    """The `ai: false` incident types the description plausibly is (scoring at least half as
    well as the best type), most likely first.

    The privacy setting must not hang on the heuristic's single best guess: a password printed
    to a deploy log is still something to keep away from a model. A passing mention ("the bot
    token" in a checkout outage) is not enough; redaction covers the secret itself.
    """
    text, words = _normalise(description), _words(description)
    scores = {
        t.name: _score(text, words, t.keywords, t.description) for t in catalog.incident_types
    }
    best = max(scores.values(), default=0.0)
    off = [
        t.name
        for t in catalog.incident_types
        if not t.ai and scores[t.name] > 0 and scores[t.name] >= AI_OFF_SHARE * best
    ]
    return sorted(off, key=lambda name: -scores[name])


class HeuristicSuggester:
    """The `Suggester` used when no AI endpoint is configured."""

    async def suggest(
        self, *, description: str, type_hint: str | None, catalog: Catalog
    ) -> Suggestion:
        return heuristic_suggestion(description, type_hint, catalog)
