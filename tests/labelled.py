"""The labelled incident descriptions, and accuracy on them.

Two files, never mixed: tests/data/incidents.yaml is the tuning set (the heuristic is tuned on
it); tests/data/heldout.yaml is the held-out set (never tuned on, so its accuracy is the honest
figure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.ports import Suggestion

DATA = Path(__file__).parent / "data"
PATH = DATA / "incidents.yaml"
HELDOUT_PATH = DATA / "heldout.yaml"
STYLES = ("alert", "customer", "jargon", "statuspage", "chat")


@dataclass(frozen=True)
class Labelled:
    id: int
    text: str
    type: str
    severity: str
    style: str  # one of STYLES: the way the description is written


def load_labelled(path: Path = PATH) -> list[Labelled]:
    """The tuning set (or another file of the same shape)."""
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Labelled(
            id=i["id"], text=i["text"], type=i["type"], severity=i["severity"], style=i["style"]
        )
        for i in items
    ]


def load_heldout() -> list[Labelled]:
    """The held-out set: for measuring only, never for tuning."""
    return load_labelled(HELDOUT_PATH)


@dataclass(frozen=True)
class Accuracy:
    n: int
    type_hits: int
    severity_hits: int
    severity_near_hits: int  # severity within one level of the label

    @property
    def type(self) -> float:
        return self.type_hits / self.n if self.n else 0.0

    @property
    def severity(self) -> float:
        return self.severity_hits / self.n if self.n else 0.0

    @property
    def severity_near(self) -> float:
        return self.severity_near_hits / self.n if self.n else 0.0


def accuracy(
    items: Iterable[Labelled],
    suggest: Callable[[str], Suggestion],
    severities: Sequence[str] = ("sev1", "sev2", "sev3", "sev4"),
) -> Accuracy:
    """How often the suggestion's type and severity equal the label, and how often its
    severity is within one level of it (`severities` in order, most severe first)."""
    rank = {name: i for i, name in enumerate(severities)}
    n = type_hits = severity_hits = near_hits = 0
    for item in items:
        s = suggest(item.text)
        n += 1
        type_hits += s.type == item.type
        severity_hits += s.severity == item.severity
        near_hits += abs(rank[s.severity] - rank[item.severity]) <= 1
    return Accuracy(n, type_hits, severity_hits, near_hits)
