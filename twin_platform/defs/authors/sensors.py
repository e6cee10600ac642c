"""The author registry and the import folders, seen by Dagster: partitions and ``author_sources`` reports.

One sensor for both (their fingerprints are one value): it adds a partition for each newly registered author
and, when an author's links, imports or import-folder files change, reports a materialization of the external
asset ``author_sources`` with the new fingerprint as its data version. It starts no run: declarative automation
collects the author once for that change (defs/automation.py).
"""

import json

import dagster as dg

from twin_platform.defs.authors.fingerprints import COLLECTED_FROM, sources_fingerprint
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION, authors_partitions
from twin_platform.defs.automation import AUTHOR_SOURCES, DATA_VERSION_TAG, partitions_in_flight
from twin_platform.defs.resources import TwinResource

RAW_DOCUMENTS = dg.AssetKey("raw_documents")


def _collected_from(instance: dg.DagsterInstance, author_id: str) -> str | None:
    """The sources fingerprint the author's latest collection run saw, if it recorded one."""
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=RAW_DOCUMENTS, asset_partitions=[author_id]), limit=1
    ).records
    materialization = records[0].asset_materialization if records else None
    value = materialization.metadata.get(COLLECTED_FROM) if materialization else None
    return str(value.value) if isinstance(value, dg.TextMetadataValue) else None


@dg.sensor(minimum_interval_seconds=15, default_status=dg.DefaultSensorStatus.RUNNING)
def author_sources_sensor(context: dg.SensorEvaluationContext, twin: TwinResource) -> dg.SensorResult:
    """Adds a partition per new author; reports a change of an author's sources (registry entry or import-folder
    files) as a materialization of author_sources. Held back while the author is being collected, then reported
    only if the collection did not already see it."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    authors = twin.runtime.authors.list()
    existing = set(context.instance.get_dynamic_partitions(AUTHORS_PARTITION))
    new_partitions = [author.id for author in authors if author.id not in existing]
    collecting = partitions_in_flight(context.instance, [RAW_DOCUMENTS])
    reports: list[dg.AssetMaterialization] = []
    held: list[str] = []
    for author in authors:
        fingerprint = sources_fingerprint(author)
        if seen.get(author.id) == fingerprint:
            continue
        if author.id in collecting:
            held.append(author.id)
            continue
        seen[author.id] = fingerprint
        if _collected_from(context.instance, author.id) == fingerprint:
            continue  # a collection that ran after the change already saw it
        reports.append(
            dg.AssetMaterialization(
                asset_key=AUTHOR_SOURCES,
                partition=author.id,
                tags={DATA_VERSION_TAG: fingerprint},
                metadata={
                    "links": sum(len(urls) for urls in author.links.values()),
                    "import_folders": len(author.imports),
                    "fingerprint": fingerprint,
                },
            )
        )
    cursor = json.dumps(seen, sort_keys=True)
    if not reports and not new_partitions:
        reason = f"held back while collecting: {', '.join(held)}" if held else "no author or source changed"
        return dg.SensorResult(skip_reason=reason, cursor=cursor)
    return dg.SensorResult(
        asset_events=reports,
        dynamic_partitions_requests=[authors_partitions.build_add_request(new_partitions)] if new_partitions else [],
        cursor=cursor,
    )
