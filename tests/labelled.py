"""The labelled incident descriptions in tests/data/incidents.yaml, and accuracy on them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from bot.ports import Suggestion

PATH = Path(__file__).parent / "data" / "incidents.yaml"


@dataclass(frozen=True)
class Labelled:
    id: int
    text: str
    type: str
    severity: str
    split: str  # "dev" (used to tune the heuristic) or "holdout" (never tuned on)


def load_labelled(path: Path = PATH) -> list[Labelled]:
    items = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        Labelled(
            id=i["id"], text=i["text"], type=i["type"], severity=i["severity"], split=i["split"]
        )
        for i in items
    ]


@dataclass(frozen=True)
class Accuracy:
    n: int
    type_hits: int
    severity_hits: int

    @property
    def type(self) -> float:
        return self.type_hits / self.n if self.n else 0.0

    @property
    def severity(self) -> float:
        return self.severity_hits / self.n if self.n else 0.0


def accuracy(items: Iterable[Labelled], suggest: Callable[[str], Suggestion]) -> Accuracy:
    n = type_hits = severity_hits = 0
    for item in items:
        s = suggest(item.text)
        n += 1
        type_hits += s.type == item.type
        severity_hits += s.severity == item.severity
    return Accuracy(n, type_hits, severity_hits)
