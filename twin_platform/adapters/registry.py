"""The model registry: ``models/registry.json`` under the data dir, one entry per merged twin.

An entry names the version, where the model is (a local path, and a URI when it also lives in S3 or
on the Hub), its lineage and whether it is released. The API's ``local`` backend serves the newest
released entry (``latest_released_model``). Writes are atomic (temp file + rename) under a lock file.
"""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def _locked(directory: Path) -> Iterator[None]:
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / "registry.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def read_registry(directory: Path) -> list[dict[str, Any]]:
    path = directory / "registry.json"
    if not path.exists():
        return []
    models: list[dict[str, Any]] = json.loads(path.read_text()).get("models", [])
    return models


def register_model(directory: Path, entry: dict[str, Any]) -> dict[str, Any]:
    """Add (or replace, by ``version``) an entry; returns it."""
    if not {"version", "path", "created_at"} <= entry.keys():
        raise ValueError("a registry entry needs version, path and created_at")
    with _locked(directory):
        models = [m for m in read_registry(directory) if m.get("version") != entry["version"]]
        models.append(entry)
        partial = directory / "registry.json.partial"
        partial.write_text(json.dumps({"models": models}, indent=2, default=str))
        partial.replace(directory / "registry.json")
    return entry
