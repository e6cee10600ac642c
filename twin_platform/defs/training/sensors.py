"""How stale each author's twin is, and retraining when it is stale enough and ``TWIN_TRAINING_AUTO`` allows.

The instruction dataset's manifest records the corpus it was built from (cleaned document id -> source key).
Every ten minutes this sensor compares it with the author's cleaned documents now, records the share that was
added, removed or changed as an observation of the author's ``merged_model`` (the number shows in the UI,
per author), and, past ``TWIN_TRAINING_RETRAIN_THRESHOLD``, either starts the training graph for that author
(``TWIN_TRAINING_AUTO=true``) or says in its skip reason that the author's twin is stale.
"""

import hashlib
import json

import dagster as dg

from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.resources import ArtifactStoreResource, TwinResource
from twin_platform.defs.training.datasets import CORPUS_KEY, MANIFEST
from twin_platform.training.staleness import corpus_change

TRAINING_GRAPH = dg.AssetSelection.groups("training")


def _fingerprint(keys: dict[str, str]) -> str:
    return hashlib.sha256(json.dumps(sorted(keys.items())).encode()).hexdigest()[:16]


@dg.sensor(target=TRAINING_GRAPH, minimum_interval_seconds=600, default_status=dg.DefaultSensorStatus.RUNNING)
def twin_staleness_sensor(
    context: dg.SensorEvaluationContext, twin: TwinResource, artifact_store: ArtifactStoreResource
) -> dg.SensorResult:
    """Per author: the share of the corpus changed since the twin's datasets were built; retrains past the
    threshold when ``TWIN_TRAINING_AUTO`` is on."""
    settings = twin.runtime.settings
    store = artifact_store.store()
    seen: dict[str, str] = json.loads(context.cursor) if context.cursor else {}
    observations, requests, stale = [], [], []
    for author in context.instance.get_dynamic_partitions(AUTHORS_PARTITION):
        try:
            dataset = store.latest(f"instruction_dataset/{author}")
        except KeyError:
            continue  # never trained: there is no twin to be stale
        built_from = json.loads((dataset.path / MANIFEST).read_text()).get(CORPUS_KEY)
        if built_from is None:
            continue  # a dataset from before corpora were recorded
        now = twin.runtime.features.cleaned_keys(author)
        change = corpus_change(built_from, now)
        is_stale = change.share >= settings.training_retrain_threshold
        state = f"{dataset.version}:{_fingerprint(now)}"
        if seen.get(author) != state:  # one observation per change, not one per tick
            observations.append(
                dg.AssetObservation(
                    asset_key="merged_model",
                    partition=author,
                    metadata={
                        "corpus_changed_share": round(change.share, 4),
                        "documents_added": change.added,
                        "documents_removed": change.removed,
                        "documents_changed": change.changed,
                        "documents_at_training": change.before,
                        "stale": is_stale,
                        "instruction_dataset": dataset.version,
                    },
                )
            )
            seen[author] = state
        if is_stale:
            stale.append(f"{author} ({change.share:.0%} changed)")
            if settings.training_auto:
                requests.append(dg.RunRequest(partition_key=author, run_key=f"retrain:{author}:{state}"))
    skip = None
    if not requests:
        skip = (
            f"stale twins: {', '.join(stale)}; retrain with `twin materialize --select group:training --author ...`"
            " or set TWIN_TRAINING_AUTO=true"
            if stale
            else "no author's corpus changed past TWIN_TRAINING_RETRAIN_THRESHOLD since their twin's datasets"
        )
    return dg.SensorResult(run_requests=requests, asset_events=observations, cursor=json.dumps(seen), skip_reason=skip)
