"""Changes made to the warehouse outside Dagster, reported as asset events; and the sensor that runs automation.

``twin import`` and ``twin crawl`` write the warehouse directly. ``warehouse_changes_sensor`` follows the
warehouse's revision cursor and records each changed author's new revision as a materialization of that
author's ``raw_documents`` (the revision is its data version). It starts no run itself: declarative
automation refreshes the author's features once for that change (defs/automation.py), and
``twin_automation_sensor`` is the one place that launches runs.
"""

from collections import Counter

import dagster as dg

from twin_platform.defs.authors.partitions import AUTHORS_PARTITION, authors_partitions
from twin_platform.defs.automation import (
    DATA_VERSION_TAG,
    FEATURE_KEYS,
    PARTITION_TAG,
    PIPELINE_KEYS,
    partitions_in_flight,
)
from twin_platform.defs.collection.assets import warehouse_data_version
from twin_platform.defs.resources import TwinResource

RAW_DOCUMENTS = PIPELINE_KEYS[0]
CHANGES_PAGE = 5000


def _latest_data_version(instance: dg.DagsterInstance, author_id: str) -> str | None:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_DOCUMENTS, asset_partitions=[author_id]), limit=1
    ).records
    if not records or records[0].asset_materialization is None:
        return None
    return (records[0].asset_materialization.tags or {}).get(DATA_VERSION_TAG)


def _collection_failed(instance: dg.DagsterInstance, author_id: str) -> bool:
    """The author's collection failed and has never succeeded: automation does not retry it, so documents stored
    by other means (``twin import``) are reported, for the features to use."""
    failed = instance.get_runs(
        filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE], tags={PARTITION_TAG: author_id}), limit=20
    )
    return any(RAW_DOCUMENTS in (run.asset_selection or ()) for run in failed)


@dg.sensor(minimum_interval_seconds=30, default_status=dg.DefaultSensorStatus.RUNNING)
def warehouse_changes_sensor(context: dg.SensorEvaluationContext, twin: TwinResource) -> dg.SensorResult:
    """Reports the raw documents of every author changed since the cursor as a new materialization (data version
    = the author's warehouse revision), unless a run already recorded that revision.

    Authors never collected yet are left to automation (their first collection builds them), unless that
    collection failed (then the documents stored since are reported, for the features to use); an author whose
    collection or features are being built is held back until that run ends, so the change is not absorbed by
    a run that may not have seen it. The cursor stays before the first held-back change.
    """
    cursor = int(context.cursor or 0)
    revisions: dict[str, int] = {}
    first_change: dict[str, int] = {}
    changed: Counter[str] = Counter()
    position = cursor
    while True:
        batch = twin.runtime.warehouse.changes_since(position, limit=CHANGES_PAGE)
        for doc in batch.documents:
            revisions[doc.author_id] = max(revisions.get(doc.author_id, 0), doc.revision)
            first_change.setdefault(doc.author_id, doc.revision)
            changed[doc.author_id] += 1
        if batch.cursor == position:
            break
        position = batch.cursor
    if not revisions:
        return dg.SensorResult(skip_reason=f"no warehouse change after revision {cursor}", cursor=str(cursor))
    busy = partitions_in_flight(context.instance, [RAW_DOCUMENTS, *FEATURE_KEYS])
    held = sorted(author for author in revisions if author in busy)
    events: list[dg.AssetMaterialization] = []
    for author, revision in sorted(revisions.items()):
        if author in busy:
            continue
        known = _latest_data_version(context.instance, author)
        version = warehouse_data_version(revision).value
        if known == version or (known is None and not _collection_failed(context.instance, author)):
            continue  # a run already recorded this revision, or never collected yet (automation collects it)
        events.append(
            dg.AssetMaterialization(
                asset_key=RAW_DOCUMENTS,
                partition=author,
                tags={DATA_VERSION_TAG: version},
                description="Changed outside Dagster (twin import, twin crawl); reported by warehouse_changes_sensor.",
                metadata={"revision": revision, "documents_changed": changed[author]},
            )
        )
    next_cursor = min(first_change[author] for author in held) - 1 if held else position
    # An author whose documents arrived without a partition (written by another tool) gets one: automation
    # then builds them like any new author.
    missing = sorted(set(revisions) - set(context.instance.get_dynamic_partitions(AUTHORS_PARTITION)))
    partitions = [authors_partitions.build_add_request(missing)] if missing else []
    if not events and not partitions:
        reason = f"held back while building: {', '.join(held)}" if held else "every change is already recorded"
        return dg.SensorResult(skip_reason=reason, cursor=str(next_cursor))
    return dg.SensorResult(asset_events=events, dynamic_partitions_requests=partitions, cursor=str(next_cursor))


automation_sensor = dg.AutomationConditionSensorDefinition(
    "twin_automation_sensor",
    target=dg.AssetSelection.all(),
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
)
