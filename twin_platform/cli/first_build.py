"""``twin up``'s first build: left to the automation daemon, followed from the Dagster instance.

``twin up`` used to run ``twin materialize`` itself while the daemon's sensors and automation reacted to the same
new author, so the same assets were built two or three times. Now the daemon is the only one to start runs (a new
author is built once: its collection and features in one run, then the marts in one dbt run); ``twin up`` only
prints each run as it ends and waits until the author's search index and the marts exist.
"""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import datetime

from twin_platform.cli.console import err, literal, out
from twin_platform.cli.instance import get_instance
from twin_platform.settings import Settings

DONE = {"SUCCESS": ("succeeded", "green"), "FAILURE": ("failed", "red"), "CANCELED": ("canceled", "yellow")}
BUILT = (("chunk_embeddings",), ("analytics", "mart_corpus_by_month"))  # the author's index, then the marts


def wait_for_first_build(
    settings: Settings, author: str, since: datetime, timeout: float = 1800.0, interval: float = 2.0
) -> bool:
    """Print each run created after ``since`` (when Dagster was started) as it ends; True once ``author``'s index
    and the marts are built and no run is in flight, False when a run failed and nothing is left to run, or after
    ``timeout`` seconds."""
    import dagster as dg

    created = dg.RunsFilter(created_after=since)  # earlier sessions' runs are not this build's
    out.print(
        literal(f"the Dagster daemon builds {author}'s assets (collection, features, marts); see the runs in the UI")
    )
    reported: set[str] = set()
    failed = False
    deadline = time.monotonic() + timeout
    with get_instance(settings) as instance:
        while time.monotonic() < deadline:
            runs = instance.get_runs(filters=created, limit=100)
            for run in reversed(runs):  # oldest first
                if run.run_id in reported or run.status.value not in DONE:
                    continue
                reported.add(run.run_id)
                failed = failed or run.status.value != "SUCCESS"
                label = run.tags.get("dagster/partition") or "marts"
                out.print(literal("run ", run.run_id, " for ", label, ": ", DONE[run.status.value]))
            in_flight = any(run.status.value not in DONE for run in runs)
            built = all(
                instance.fetch_materializations(
                    dg.AssetRecordsFilter(
                        asset_key=dg.AssetKey(list(path)), asset_partitions=[author] if len(path) == 1 else None
                    ),
                    limit=1,
                ).records
                for path in BUILT
            )
            if not in_flight and (built or failed):
                return built and not failed
            time.sleep(interval)
    return False


def follow_first_build(settings: Settings, author: str, since: datetime, *, train: bool) -> None:
    """Wait for the first build; then, when asked, train ``author``'s twin (the training graph runs on demand)."""
    if not wait_for_first_build(settings, author, since):
        err.print("[red]the first build did not complete; see its runs in the UI[/]")
    elif train:
        command = [sys.executable, "-m", "twin_platform.cli.main", "materialize", "--author", author]
        if subprocess.call([*command, "--select", "group:training"]) != 0:
            err.print("[red]training failed; see the run in the UI[/]")
