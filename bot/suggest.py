"""The built-in heuristic suggester: fields for a new incident from its description alone.

It scores the catalog's incident types and severities by their keywords and by words shared
with their descriptions. It needs no network and answers in microseconds, so it is also what
every AI suggester falls back to.
"""

from __future__ import annotations

import re

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


def _words(text: str) -> set[str]:
    return {w for w in _WORD_RE.findall(text.lower()) if w not in _STOPWORDS}


# Words that, a few words earlier in the same clause, deny a keyword: "no sign of exploitation",
# "not exposed in production". "cannot"/"can't" are symptoms ("can't log in"), not denials.
_NEGATIONS = frozenset(
    "no not never without none isn't aren't wasn't weren't don't doesn't "
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


def _weight(phrase: str) -> float:
    """A phrase says more than a single word: "some customers" outweighs "errors"."""
    return 1.0 + 0.5 * (len(phrase.split()) - 1)


def _hits(text: str, keywords: list[str]) -> float:
    """The weight of the keywords `text` mentions and does not deny."""
    total = 0.0
    for k in keywords:
        found = _keyword_re(k, inflected=True).finditer(text)
        if any(not _negated(text, m.start()) for m in found):
            total += _weight(k)
    return total


def _score(text: str, words: set[str], keywords: list[str], description: str) -> float:
    return 2.0 * _hits(text, keywords) + 0.5 * len(words & _words(description))


def title_from(description: str) -> str:
    """A short title: the first clause of the description, capitalised, at most 60 chars."""
    # A full stop ends a clause only before a space: "api.example.com" and "v2.3" stay whole.
    first = re.split(r"\.(?=\s|$)|[;!?\n]|,\s|\s[-–—]\s", description.strip(), maxsplit=1)[0]
    first = first.strip()
    first = first or description.strip()
    if len(first) > TITLE_LIMIT:
        cut = first[:TITLE_LIMIT].rsplit(" ", 1)[0]
        first = cut if len(cut) > TITLE_LIMIT // 2 else first[:TITLE_LIMIT]
    return first[:1].upper() + first[1:]


def heuristic_suggestion(description: str, type_hint: str | None, catalog: Catalog) -> Suggestion:
    """Return the catalog fields the description points to, each with where it came from."""
    text = description.lower()
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

    # The chosen type's usual severity is a small prior: it settles ties and weak evidence
    # ("leaked key used from an unknown IP" is a security incident, so sev1 unless told less).
    sev_hits = [_hits(text, s.keywords) for s in catalog.severities]
    if max(sev_hits) == 0:
        severity = chosen.default_severity
        sources["severity"] = "default"
    else:
        scored_sev = [
            (h + (_PRIOR if s.name == chosen.default_severity else 0.0), -i, s.name)
            for i, (h, s) in enumerate(zip(sev_hits, catalog.severities, strict=True))
        ]
        _, _, severity = max(scored_sev)
        sources["severity"] = "heuristic"

    if sources["severity"] == "default":
        priority = chosen.default_priority
        sources["priority"] = "default"
    else:
        # Priority follows severity rank: the n-th severity maps to the n-th priority.
        rank = catalog.severity_names.index(severity)
        priority = catalog.priority_names[min(rank, len(catalog.priorities) - 1)]
        sources["priority"] = "heuristic"

    fields: dict[str, object] = {}
    for f in chosen.fields:
        if f.kind in (FieldKind.SELECT, FieldKind.MULTI_SELECT):
            found = [c for c in f.choices if _mentions(text, c)]
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
    text, words = description.lower(), _words(description)
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
