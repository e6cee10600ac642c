"""Dataset files: Hugging Face ``datasets`` on disk (the artifact), and the book's JSON format.

The LLM Engineer's Handbook writes instruction and preference datasets as
``{"id", "train": {category: {"id", "category", "samples": [...]}}, "test": {...}, "test_split_size"}``
with plural category names; ``book_json`` writes that shape and ``read_book_json`` reads it back
(also the book's own published files).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twin_platform.domain.datasets import InstructionSample, PreferenceSample, Split

Sample = InstructionSample | PreferenceSample
_PLURAL = {"article": "articles", "post": "posts", "repository": "repositories"}
_SINGULAR = {v: k for k, v in _PLURAL.items()}
_BOOK_FIELDS = {"instruction": ("instruction", "answer"), "preference": ("instruction", "rejected", "chosen")}


def save_dataset(samples: Sequence[Sample], directory: Path) -> dict[str, int]:
    """Write train/test splits with ``datasets`` (``load_from_disk`` reads them); returns split sizes.

    An empty split is left out (``datasets`` cannot read back a saved split without rows).
    """
    from datasets import Dataset, DatasetDict

    rows: dict[str, list[dict[str, Any]]] = {"train": [], "test": []}
    for sample in samples:
        rows[sample.split].append(sample.as_row())
    DatasetDict({split: Dataset.from_list(found) for split, found in rows.items() if found}).save_to_disk(
        str(directory)
    )
    return {split: len(found) for split, found in rows.items()}


def load_rows(directory: Path, split: Split) -> list[dict[str, Any]]:
    from datasets import load_from_disk

    splits = load_from_disk(str(directory))
    return list(splits[split]) if split in splits else []


def book_json(samples: Sequence[Sample], test_fraction: float) -> dict[str, Any]:
    """The book's dataset JSON for these samples (instruction or preference, by their type)."""
    kind = "preference" if samples and isinstance(samples[0], PreferenceSample) else "instruction"
    fields = _BOOK_FIELDS[kind]
    out: dict[str, Any] = {"id": str(uuid.uuid4()), "train": {}, "test": {}, "test_split_size": str(test_fraction)}
    for sample in samples:
        category = _PLURAL.get(sample.category, sample.category)
        group = out[sample.split].setdefault(category, {"id": str(uuid.uuid4()), "category": category, "samples": []})
        row = sample.as_row()
        group["samples"].append({"id": sample.id} | {f: row[f] for f in fields})
    return out


def read_book_json(path: Path) -> list[Sample]:
    """Samples from a dataset file in the book's format (instruction or preference)."""
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not {"train", "test"} <= data.keys():
        raise ValueError(f"{path}: not a dataset in the book's format (needs 'train' and 'test')")
    samples: list[Sample] = []
    for split in ("train", "test"):
        for category, group in data[split].items():
            for row in group.get("samples", []):
                common = {
                    "id": str(row["id"]),
                    "instruction": row["instruction"],
                    "document_id": "",
                    "category": _SINGULAR.get(category, category),
                    "split": split,
                }
                if "chosen" in row:
                    samples.append(PreferenceSample(chosen=row["chosen"], rejected=row["rejected"], **common))
                else:
                    samples.append(InstructionSample(answer=row["answer"], **common))
    return samples
