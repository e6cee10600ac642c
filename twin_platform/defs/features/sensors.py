"""Keep features fresh: react to warehouse changes and to files added to authors' import folders."""

import hashlib
import json
from pathlib import Path

import dagster as dg

from twin_platform.defs.authors.partitions import AUTHORS_PARTITION, authors_partitions
from twin_platform.defs.resources import TwinResource

FEATURES = dg.AssetSelection.assets("cleaned_documents", "chunks", "chunk_embeddings")
CHANGES_PAGE = 5000


@dg.sensor(target=FEATURES, minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def warehouse_changes_sensor(context: dg.SensorEvaluationContext, twin: TwinResource) -> dg.SensorResult:
    """Runs the feature assets for every author whose raw documents changed since the cursor.

    Catches changes made outside Dagster (``twin import``, ``twin crawl``); changes made by
    raw_documents runs reach the features through declarative automation as well.
    """
    cursor = int(context.cursor or 0)
    authors: set[str] = set()
    while True:
        batch = twin.runtime.warehouse.changes_since(cursor, limit=CHANGES_PAGE)
        authors |= {doc.author_id for doc in batch.documents}
        if batch.cursor == cursor:
            break
        cursor = batch.cursor
    if not authors:
        return dg.SensorResult(skip_reason=f"no warehouse change after revision {cursor}", cursor=str(cursor))
    existing = set(context.instance.get_dynamic_partitions(AUTHORS_PARTITION))
    missing = sorted(authors - existing)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=a, run_key=f"changes:{a}:{cursor}") for a in sorted(authors)],
        dynamic_partitions_requests=[authors_partitions.build_add_request(missing)] if missing else [],
        cursor=str(cursor),
    )


def folder_fingerprint(paths: tuple[str, ...]) -> str:
    """Changes when a file under any of ``paths`` is added, removed, resized or touched."""
    digest = hashlib.sha256()
    for source in sorted(paths):
        root = Path(source)
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


@dg.sensor(
    target=dg.AssetSelection.assets("raw_documents"),
    minimum_interval_seconds=15,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def import_folders_sensor(context: dg.SensorEvaluationContext, twin: TwinResource) -> dg.SensorResult:
    """Collects an author again when a file in one of their import folders appears, changes or goes."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    current = {a.id: folder_fingerprint(a.imports) for a in twin.runtime.authors.list() if a.imports}
    known = set(context.instance.get_dynamic_partitions(AUTHORS_PARTITION))
    changed = [a for a, fp in current.items() if a in seen and seen[a] != fp and a in known]
    cursor = json.dumps(current, sort_keys=True)
    if not changed:
        return dg.SensorResult(skip_reason="no import folder changed", cursor=cursor)
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=a, run_key=f"imports:{a}:{current[a]}") for a in changed],
        cursor=cursor,
    )


automation_sensor = dg.AutomationConditionSensorDefinition(
    "twin_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
)
