"""How stale a trained twin is: how much of the author's corpus changed since its datasets were built."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class CorpusChange:
    added: int
    removed: int
    changed: int
    before: int  # documents the datasets were built from

    @property
    def share(self) -> float:
        """Documents added, removed or changed, as a share of those the datasets saw (1.0 when they saw none)."""
        moved = self.added + self.removed + self.changed
        return moved / self.before if self.before else (1.0 if moved else 0.0)


def corpus_change(built_from: Mapping[str, str], now: Mapping[str, str]) -> CorpusChange:
    """Compare two ``{document id: source key}`` maps (a source key changes with the document's content)."""
    return CorpusChange(
        added=len(now.keys() - built_from.keys()),
        removed=len(built_from.keys() - now.keys()),
        changed=sum(1 for key in built_from.keys() & now.keys() if built_from[key] != now[key]),
        before=len(built_from),
    )
