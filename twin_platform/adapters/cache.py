"""A JSON file per cache namespace: generated instructions and answers kept across runs, so
re-materializing a dataset over unchanged passages costs no generation."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any


def load_cache(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text())) if path.exists() else {}


def save_cache(path: Path, data: MutableMapping[str, Any]) -> None:
    """Atomic: a crash mid-write leaves the previous file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(dict(data)))
    partial.replace(path)
