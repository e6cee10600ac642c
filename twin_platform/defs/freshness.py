"""Freshness per author: a stale author never hides behind fresh ones.

An asset-wide freshness policy looks at the newest materialization of *any* partition: with one author collected
this morning, another stuck for a week still reads "fresh". These checks judge every author partition on its own
and fail when any one of them is stale, naming it (a table of every author's state is in the result):

- ``raw_documents`` / ``collected_within_a_day``: each author's documents were collected (or changed) in the last
  day; a warning past ``WARN_AFTER``, a failure past ``FAIL_AFTER`` (collection runs daily at 03:00 UTC).
- ``chunk_embeddings`` / ``caught_up_with_raw_documents``: each author's search index was rebuilt after their raw
  documents last changed, or that change is younger than ``CATCH_UP`` (the features are on their way).

``author_freshness_sensor`` evaluates both every few minutes and records a result whenever an author's state
changes (a report, not a run); each check also runs on demand from the UI. (Partitioned checks would show one
result per author, but Dagster 1.13 stores only one reported, runless result per check partition.)
"""

import json
import time
from dataclasses import dataclass
from datetime import timedelta

import dagster as dg

from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.automation import DATA_VERSION_TAG
from twin_platform.defs.metadata import table

WARN_AFTER = timedelta(hours=25)
FAIL_AFTER = timedelta(hours=26)
CATCH_UP = timedelta(hours=1)
RAW = dg.AssetKey("raw_documents")
INDEX = dg.AssetKey("chunk_embeddings")
COLLECTED = "collected_within_a_day"
CAUGHT_UP = "caught_up_with_raw_documents"
_HISTORY = 50  # raw_documents materializations read back to find when the current data version appeared


@dataclass(frozen=True)
class Verdict:
    """One author's freshness: ``hours`` since collection, or behind its raw documents (None: never built)."""

    passed: bool
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
    hours: float | None = None
    detail: str = ""

    @property
    def state(self) -> str:
        return "passed" if self.passed else self.severity.value


def _hours(seconds: float) -> float:
    return round(seconds / 3600, 2)


def collection_verdict(last_collected: float | None, now: float) -> Verdict:
    """``last_collected``: when the author's raw documents were last materialized (a run or a reported change)."""
    if last_collected is None:
        return Verdict(False, detail="never collected")
    age = now - last_collected
    if age > FAIL_AFTER.total_seconds():
        return Verdict(False, dg.AssetCheckSeverity.ERROR, _hours(age), "not collected for over a day")
    if age > WARN_AFTER.total_seconds():
        return Verdict(False, dg.AssetCheckSeverity.WARN, _hours(age), "the daily collection is late")
    return Verdict(True, hours=_hours(age), detail="collected")


def index_verdict(raw_changed_at: float | None, indexed_at: float | None, now: float) -> Verdict:
    """``raw_changed_at``: when the author's current raw data version first appeared; ``indexed_at``: the
    author's latest chunk_embeddings materialization."""
    if raw_changed_at is None:
        return Verdict(False, detail="no raw documents yet")
    if indexed_at is not None and indexed_at >= raw_changed_at:
        return Verdict(True, hours=0.0, detail="indexed after the last change")
    behind = now - raw_changed_at
    if behind <= CATCH_UP.total_seconds():
        return Verdict(True, hours=_hours(behind), detail="catching up")
    return Verdict(False, hours=_hours(behind), detail="the index is behind the author's documents")


def _materializations(instance: dg.DagsterInstance, key: dg.AssetKey, author: str, limit: int) -> list:
    filters = dg.AssetRecordsFilter(asset_key=key, asset_partitions=[author])
    return list(instance.fetch_materializations(filters, limit=limit).records)


def raw_changed_at(instance: dg.DagsterInstance, author: str) -> float | None:
    """When the author's current raw data version first appeared (newest first, back to the previous version)."""
    records = _materializations(instance, RAW, author, _HISTORY)
    if not records:
        return None

    def version(record: dg.EventLogRecord) -> str | None:
        materialization = record.asset_materialization
        return (materialization.tags or {}).get(DATA_VERSION_TAG) if materialization else None

    current = version(records[0])
    since = records[0].timestamp
    for record in records[1:]:
        if version(record) != current:
            break
        since = record.timestamp
    return since


def evaluate(instance: dg.DagsterInstance, author: str, now: float) -> dict[str, Verdict]:
    """Both verdicts for one author, by check name."""
    raw = _materializations(instance, RAW, author, 1)
    index = _materializations(instance, INDEX, author, 1)
    return {
        COLLECTED: collection_verdict(raw[0].timestamp if raw else None, now),
        CAUGHT_UP: index_verdict(raw_changed_at(instance, author), index[0].timestamp if index else None, now),
    }


def _summary(name: str, verdicts: dict[str, Verdict]) -> dg.AssetCheckEvaluation:
    """One result for all authors: failed (at the worst severity) when any author failed, naming them."""
    failing = sorted(author for author, verdict in verdicts.items() if not verdict.passed)
    errors = any(verdicts[a].severity == dg.AssetCheckSeverity.ERROR for a in failing)
    rows = (
        {
            "author": author,
            "state": verdict.state,
            "hours": verdict.hours,
            "detail": verdict.detail,
        }
        for author, verdict in sorted(verdicts.items())
    )
    return dg.AssetCheckEvaluation(
        asset_key=RAW if name == COLLECTED else INDEX,
        check_name=name,
        passed=not failing,
        severity=dg.AssetCheckSeverity.ERROR if errors or not failing else dg.AssetCheckSeverity.WARN,
        metadata={
            "authors": table({"author": "string", "state": "string", "hours": "float", "detail": "string"}, rows),
            "failing": dg.MetadataValue.text(", ".join(failing) or "none"),
            "failing_authors": dg.MetadataValue.int(len(failing)),
        },
    )


def evaluate_all(instance: dg.DagsterInstance, now: float) -> dict[str, dg.AssetCheckEvaluation]:
    """Both checks over every author partition, by check name."""
    per_author = {
        author: evaluate(instance, author, now) for author in instance.get_dynamic_partitions(AUTHORS_PARTITION)
    }
    return {name: _summary(name, {a: v[name] for a, v in per_author.items()}) for name in (COLLECTED, CAUGHT_UP)}


def _result(evaluation: dg.AssetCheckEvaluation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=evaluation.passed, severity=evaluation.severity, metadata=evaluation.metadata)


@dg.asset_check(
    asset=RAW,
    name=COLLECTED,
    description=f"Every author's raw documents collected (or changed) within the last day; fails naming each "
    f"author past {FAIL_AFTER.total_seconds() / 3600:.0f} h (a warning past {WARN_AFTER.total_seconds() / 3600:.0f}"
    " h), however fresh the others are. Evaluated every few minutes by author_freshness_sensor.",
)
def collected_within_a_day(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return _result(evaluate_all(context.instance, time.time())[COLLECTED])


@dg.asset_check(
    asset=INDEX,
    name=CAUGHT_UP,
    description="Every author's search index rebuilt after their raw documents last changed, or that change is "
    f"under {CATCH_UP.total_seconds() / 3600:.0f} h old; fails naming each author behind, however current the "
    "others are. Evaluated every few minutes by author_freshness_sensor.",
)
def caught_up_with_raw_documents(context: dg.AssetCheckExecutionContext) -> dg.AssetCheckResult:
    return _result(evaluate_all(context.instance, time.time())[CAUGHT_UP])


@dg.sensor(minimum_interval_seconds=300, default_status=dg.DefaultSensorStatus.RUNNING)
def author_freshness_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Evaluates the per-author freshness checks; records a check's result when any author's state changed."""
    states: dict[str, dict[str, str]] = json.loads(context.cursor) if context.cursor else {}
    now = time.time()
    events: list[dg.AssetCheckEvaluation] = []
    per_author = {
        author: evaluate(context.instance, author, now)
        for author in context.instance.get_dynamic_partitions(AUTHORS_PARTITION)
    }
    for name in (COLLECTED, CAUGHT_UP):
        verdicts = {author: verdicts[name] for author, verdicts in per_author.items()}
        current = {author: verdict.state for author, verdict in verdicts.items()}
        if states.get(name) != current:
            states[name] = current
            events.append(_summary(name, verdicts))
    cursor = json.dumps(states, sort_keys=True)
    if not events:
        return dg.SensorResult(skip_reason="no author's freshness changed", cursor=cursor)
    return dg.SensorResult(asset_events=events, cursor=cursor)
