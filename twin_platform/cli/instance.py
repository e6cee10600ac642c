"""The Dagster instance the CLI, ``dagster dev`` and headless runs share (``$DAGSTER_HOME``)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from twin_platform.settings import Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:  # no "join the community" dialog over the local UI
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
"""


def ensure_dagster_home(settings: Settings) -> Path:
    """Use ``$DAGSTER_HOME`` if set, else ``<data dir>/dagster``; write a dagster.yaml there if missing."""
    home = Path(os.environ.get("DAGSTER_HOME") or settings.dagster_home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(DAGSTER_YAML)
    os.environ["DAGSTER_HOME"] = str(home)
    return home


def get_instance(settings: Settings) -> DagsterInstance:
    from dagster import DagsterInstance

    ensure_dagster_home(settings)
    return DagsterInstance.get()


def add_author_partitions(settings: Settings, author_ids: Iterable[str]) -> None:
    """Register authors as partitions of every per-author asset (idempotent)."""
    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION

    ids = sorted(set(author_ids))
    if not ids:
        return
    with get_instance(settings) as instance:
        existing = set(instance.get_dynamic_partitions(AUTHORS_PARTITION))
        missing = [author_id for author_id in ids if author_id not in existing]
        if missing:
            instance.add_dynamic_partitions(AUTHORS_PARTITION, missing)
