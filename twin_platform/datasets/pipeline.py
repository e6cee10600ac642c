"""Build the two datasets from an author's cleaned documents; no Dagster, no storage: clients come in."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from twin_platform.datasets.backtranslation import Generate, back_translate, preference_pairs
from twin_platform.datasets.curation import (
    CurationRules,
    TokenCounter,
    decontaminate,
    deduplicate,
    passages,
    rule_filter,
    split_by_document,
)
from twin_platform.domain.datasets import CurationReport, InstructionSample, PreferenceSample, text_hash
from twin_platform.domain.features import CleanedDocument
from twin_platform.domain.llm import GenerationParams

Sample = InstructionSample | PreferenceSample


@dataclass(frozen=True)
class DatasetHealth:
    train: int
    test: int
    empty_fields: int
    shared_documents: int  # documents with samples on both sides of the split
    shared_texts: int  # answers (or chosen texts) that appear on both sides

    @property
    def overlap(self) -> int:
        return self.shared_documents + self.shared_texts


def build_instructions(
    documents: Sequence[CleanedDocument],
    count: TokenCounter,
    generate: Generate,
    params: GenerationParams,
    rules: CurationRules,
    *,
    max_passages: int = 0,
    cache: MutableMapping[str, dict[str, Any]] | None = None,
) -> tuple[list[InstructionSample], CurationReport]:
    """Passages -> rule filters -> dedupe -> back-translation -> split by document -> decontamination."""
    candidates = passages(documents, count, rules.max_tokens)
    report = CurationReport(candidates=len(candidates))
    kept = rule_filter(candidates, rules, report)
    kept = deduplicate(kept, lambda p: p.text, rules.near_threshold, report)
    if max_passages and len(kept) > max_passages:
        report.drop("over_max_passages", len(kept) - max_passages)
        kept = kept[:max_passages]
    samples = back_translate(kept, generate, params, report, {} if cache is None else cache)
    samples = deduplicate(samples, lambda s: s.instruction, 0.95, report)  # the same question twice teaches little
    return assign_splits(samples, rules, report), report


def assign_splits(samples: Sequence[Sample], rules: CurationRules, report: CurationReport) -> list[Any]:
    """Split by source document, then drop train samples that leak test text."""
    sides = split_by_document((s.document_id for s in samples), rules.test_fraction)
    placed = [dataclasses.replace(s, split=sides[s.document_id]) for s in samples]
    test = [s for s in placed if s.split == "test"]
    train = decontaminate([s for s in placed if s.split == "train"], test, _texts, rules.contamination_ngram, report)
    return train + test


def _texts(sample: Sample) -> list[str]:
    if isinstance(sample, PreferenceSample):
        return [sample.instruction, sample.chosen]
    return [sample.instruction, sample.answer]


def build_preferences(
    rows: Sequence[Mapping[str, Any]],
    generate: Generate,
    params: GenerationParams,
    rules: CurationRules,
    *,
    cache: MutableMapping[str, str] | None = None,
) -> tuple[list[PreferenceSample], CurationReport]:
    """Instruction rows (both splits) -> base-model answers as ``rejected`` -> filters -> same split."""
    samples = [InstructionSample(**{k: row[k] for k in _INSTRUCTION_FIELDS}) for row in rows]
    report = CurationReport(candidates=len(samples))
    pairs = preference_pairs(samples, generate, params, report, cache=cache)
    return assign_splits(pairs, rules, report), report


_INSTRUCTION_FIELDS = [f.name for f in dataclasses.fields(InstructionSample)]


def health(samples: Sequence[Sample]) -> DatasetHealth:
    train = [s for s in samples if s.split == "train"]
    test = [s for s in samples if s.split == "test"]
    fields = ("instruction", "chosen", "rejected") if _is_preference(samples) else ("instruction", "answer")
    empty = sum(1 for s in samples for f in fields if not str(getattr(s, f)).strip())
    answer = (lambda s: s.chosen) if _is_preference(samples) else (lambda s: s.answer)
    return DatasetHealth(
        train=len(train),
        test=len(test),
        empty_fields=empty,
        shared_documents=len({s.document_id for s in train} & {s.document_id for s in test}),
        shared_texts=len({answer(s) for s in train} & {answer(s) for s in test}),
    )


def _is_preference(samples: Sequence[Sample]) -> bool:
    return bool(samples) and isinstance(samples[0], PreferenceSample)


def version(samples: Sequence[Sample]) -> str:
    """Content version: the same samples give the same version, whatever run produced them."""
    rows = sorted(json.dumps(s.as_row(), sort_keys=True) for s in samples)
    return text_hash("\n".join(rows))
