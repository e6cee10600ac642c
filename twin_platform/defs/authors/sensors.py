"""Keeps Dagster's author partitions in step with the author registry, and collects new authors."""

import hashlib
import json

import dagster as dg

from twin_platform.defs.authors.partitions import AUTHORS_PARTITION, authors_partitions
from twin_platform.defs.resources import TwinResource
from twin_platform.domain.authors import Author


def sources_fingerprint(author: Author) -> str:
    """Changes whenever the author's links or imports change."""
    payload = json.dumps(
        {"links": {p.value: list(urls) for p, urls in sorted(author.links.items())}, "imports": list(author.imports)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


@dg.sensor(
    target=dg.AssetSelection.assets("raw_documents"),
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def author_registry_sensor(context: dg.SensorEvaluationContext, twin: TwinResource) -> dg.SensorResult:
    """Adds a partition for each newly registered author and collects an author whose sources changed."""
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    authors = twin.runtime.authors.list()
    existing = set(context.instance.get_dynamic_partitions(AUTHORS_PARTITION))
    new_partitions = [author.id for author in authors if author.id not in existing]
    current = {author.id: sources_fingerprint(author) for author in authors}
    run_requests = [
        dg.RunRequest(partition_key=author_id, run_key=f"{author_id}:{fingerprint}")
        for author_id, fingerprint in current.items()
        if seen.get(author_id) != fingerprint
    ]
    if not new_partitions and not run_requests:
        return dg.SensorResult(skip_reason="no author or source was added or changed")
    return dg.SensorResult(
        run_requests=run_requests,
        dynamic_partitions_requests=[authors_partitions.build_add_request(new_partitions)] if new_partitions else [],
        cursor=json.dumps(current, sort_keys=True),
    )
