"""From cleaned documents to curated passages, and the rules that keep training data honest.

1. ``passages``: each cleaned document split into stretches of whole sentences (paragraph breaks kept)
   of at most ``max_tokens`` of the *training* model's tokens, so an answer is never cut off.
2. ``rule_filter``: too short, boilerplate (subscribe/cookie/share calls), link lists and, for articles
   and posts, passages that are mostly code are dropped, each counted under its reason.
3. ``deduplicate``: exact duplicates (normalised text) and near duplicates (MinHash LSH over word
   5-grams, Jaccard >= ``near_threshold``), e.g. a post cross-posted to two platforms.
4. ``split_by_document``: train/test by source document, so no document is on both sides.
5. ``decontaminate``: a train sample sharing any word 8-gram with a test sample is dropped.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from twin_platform.domain.datasets import CurationReport, Passage, Split
from twin_platform.domain.features import CleanedDocument
from twin_platform.features.chunking import ChunkingOptions, pack_prose

TokenCounter = Callable[[Sequence[str]], list[int]]
T = TypeVar("T")

_WORD = re.compile(r"[a-z0-9']+")
_URL = re.compile(r"https?://\S+")
_BOILERPLATE = re.compile(
    r"\b(subscribe( now| to)?|sign up|cookie|all rights reserved|share this|follow me|thanks for reading|"
    r"click here|leave a comment|newsletter|originally published|read more|terms of service)\b",
    re.IGNORECASE,
)
_CODE_LINE = re.compile(
    r"^\s*(```|(def|class|import|from|return|if|for|while)\b.*[:(]|(SELECT|SET|CREATE|INSERT|UPDATE|DELETE|WITH)\b"
    r"|[$>] |#include|//|--\s)|[;{}]\s*$|^\s*[\w.\[\]'\"]+\s*[-+*/]?=\s*\S|^\s{4,}\S|\\$"
)


@dataclass(frozen=True)
class CurationRules:
    max_tokens: int = 256  # a passage (the answer) in the training model's tokens
    min_words: int = 30
    max_link_ratio: float = 0.05  # links per word
    max_code_line_ratio: float = 0.5  # articles and posts: share of lines that look like code
    near_threshold: float = 0.8  # MinHash Jaccard above which two passages are near duplicates
    test_fraction: float = 0.15
    contamination_ngram: int = 8


def passages(documents: Iterable[CleanedDocument], count: TokenCounter, max_tokens: int) -> list[Passage]:
    """Whole-sentence stretches of every document, at most ``max_tokens`` each."""
    # Sentences are counted one by one; joined, spaces and paragraph breaks add a few tokens: aim lower.
    options = ChunkingOptions(max_tokens=max_tokens, target_tokens=max(1, max_tokens * 7 // 8), overlap_tokens=0)
    found: list[Passage] = []
    for document in documents:
        texts = pack_prose(document.text, count, options)
        for index, (text, tokens) in enumerate(zip(texts, count(texts) if texts else [], strict=True)):
            found.append(
                Passage(
                    document_id=document.id,
                    author_id=document.author_id,
                    category=str(document.category),
                    title=document.title,
                    index=index,
                    text=text.strip(),
                    tokens=tokens,
                )
            )
    return found


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def rejection_reason(passage: Passage, rules: CurationRules) -> str | None:
    """Why a passage should not be a training answer, or None to keep it."""
    tokens = words(passage.text)
    if len(tokens) < rules.min_words:
        return "too_short"
    if passage.tokens > rules.max_tokens:
        return "too_long"
    if len(_URL.findall(passage.text)) / len(tokens) > rules.max_link_ratio:
        return "link_list"
    if len(_BOILERPLATE.findall(passage.text)) >= 2 or (
        _BOILERPLATE.search(passage.text) and len(tokens) < 2 * rules.min_words
    ):
        return "boilerplate"
    if passage.category in {"article", "post"}:
        lines = [line for line in passage.text.splitlines() if line.strip()]
        code = sum(1 for line in lines if _CODE_LINE.search(line))
        if lines and code / len(lines) > rules.max_code_line_ratio:
            return "code_only"
    return None


def rule_filter(candidates: Sequence[Passage], rules: CurationRules, report: CurationReport) -> list[Passage]:
    kept = []
    for passage in candidates:
        reason = rejection_reason(passage, rules)
        if reason:
            report.drop(reason)
        else:
            kept.append(passage)
    return kept


def _shingles(text: str, n: int = 5) -> set[bytes]:
    tokens = words(text)
    if len(tokens) < n:
        return {" ".join(tokens).encode()}
    return {" ".join(tokens[i : i + n]).encode() for i in range(len(tokens) - n + 1)}


def deduplicate(
    items: Sequence[T], text_of: Callable[[T], str], threshold: float, report: CurationReport, *, num_perm: int = 128
) -> list[T]:
    """Drop exact duplicates (normalised text), then near duplicates (MinHash LSH); the first copy wins."""
    from datasketch import MinHash, MinHashLSH

    seen: set[str] = set()
    unique: list[T] = []
    for item in items:
        key = hashlib.sha256(" ".join(words(text_of(item))).encode()).hexdigest()
        if key in seen:
            report.drop("exact_duplicate")
            continue
        seen.add(key)
        unique.append(item)
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: list[T] = []
    for position, item in enumerate(unique):
        signature = MinHash(num_perm=num_perm, seed=1)
        signature.update_batch(list(_shingles(text_of(item))))
        if lsh.query(signature):
            report.drop("near_duplicate")
            continue
        lsh.insert(str(position), signature)
        kept.append(item)
    return kept


def document_split(document_id: str, test_fraction: float) -> Split:
    """Stable per document: the same document lands on the same side in every run and version."""
    bucket = int(hashlib.sha256(document_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < test_fraction else "train"


def split_by_document(document_ids: Iterable[str], test_fraction: float) -> dict[str, Split]:
    """Each document's side. With two or more documents both sides get at least one."""
    ids = sorted(set(document_ids))
    sides = {doc: document_split(doc, test_fraction) for doc in ids}
    if len(ids) >= 2 and test_fraction > 0:
        ranked = sorted(ids, key=lambda d: hashlib.sha256(d.encode()).hexdigest())
        if "test" not in sides.values():
            sides[ranked[0]] = "test"
        if "train" not in sides.values():
            sides[ranked[-1]] = "train"
    return sides


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


def decontaminate(
    train: Sequence[T], test: Sequence[T], texts_of: Callable[[T], Iterable[str]], n: int, report: CurationReport
) -> list[T]:
    """Drop train samples that share a word ``n``-gram with any test sample (instruction or answer)."""
    test_grams: set[tuple[str, ...]] = set()
    for sample in test:
        for text in texts_of(sample):
            test_grams |= ngrams(text, n)
    kept = []
    for sample in train:
        if any(ngrams(text, n) & test_grams for text in texts_of(sample)):
            report.drop("contaminated")
        else:
            kept.append(sample)
    return kept
