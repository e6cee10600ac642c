"""Training-data records: passages the author wrote, instruction and preference samples built on them."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Split = Literal["train", "test"]


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


@dataclass(frozen=True)
class Passage:
    """A stretch of one document, in the author's own words, sized to be a training answer."""

    document_id: str
    author_id: str
    category: str
    title: str
    index: int  # position within the document
    text: str
    tokens: int

    @property
    def id(self) -> str:
        return text_hash(f"{self.document_id}|{self.index}|{self.text}")


@dataclass(frozen=True)
class InstructionSample:
    """An instruction an LLM wrote for a passage (back-translation); the answer is the author's passage."""

    id: str
    instruction: str
    answer: str
    document_id: str
    category: str
    split: Split = "train"
    repaired: bool = False  # the generator's JSON needed repair

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PreferenceSample:
    """chosen = the author's passage, rejected = the base model's own answer to the same instruction."""

    id: str
    instruction: str
    chosen: str
    rejected: str
    document_id: str
    category: str
    split: Split = "train"

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class CurationReport:
    """How many candidates each step kept or dropped, for the asset metadata."""

    candidates: int = 0
    dropped: dict[str, int] = field(default_factory=dict)

    def drop(self, reason: str, count: int = 1) -> None:
        if count:
            self.dropped[reason] = self.dropped.get(reason, 0) + count

    @property
    def kept(self) -> int:
        return self.candidates - sum(self.dropped.values())
