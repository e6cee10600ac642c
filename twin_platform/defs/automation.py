"""One freshness path: declarative automation is the only thing that starts runs on its own.

Sensors only *report* what changed, as asset events, and these conditions turn the events into runs:

- ``author_sources`` (reported by ``author_sources_sensor``: the registry's links and imports, the files in the
  import folders) -> ``raw_documents`` collects the author again. So do a new author and 03:00 UTC daily.
- ``raw_documents`` (its data version is the author's warehouse revision; ``warehouse_changes_sensor`` reports
  a change made outside Dagster, ``twin import`` or ``twin crawl``, as a materialization) -> the features
  (cleaned_documents -> chunks -> chunk_embeddings) run once, the three in one run. A collection that changed
  nothing keeps the data version, so nothing downstream runs for it.
- new feature data -> the dbt models that read it, in one dbt run once the feature pipeline has settled (no
  Python asset in progress, pending or changed on this tick), rather than one dbt run racing each feature run.
- the query-log models (the API writes ``query_log``; no Dagster asset does) -> hourly.

Triggers are data versions, not materializations, so the same change reported twice (the sensor and the run
that made it) is one change. A change must never be swallowed by a run that did not see it: the sensors hold
back a report while the partition it concerns is being built; raw_documents and the dbt models (which every
author's runs feed, and which a change can reach while they run) keep a change pending until a run of theirs
is *requested* (for dbt, or built by a manual run), not merely until their next update.
"""

from collections.abc import Sequence

import dagster as dg

AC = dg.AutomationCondition

COLLECTION_CRON = "0 3 * * *"  # UTC; crawls are conditional, so an unchanged page costs a 304
QUERY_LOG_CRON = "0 * * * *"  # the query-log marts, hourly
AUTOMATION_RUN_TAG = "dagster/from_automation_condition"  # what the automation daemon tags its runs with

AUTHOR_SOURCES = dg.AssetKey("author_sources")
FEATURE_KEYS = (dg.AssetKey("cleaned_documents"), dg.AssetKey("chunks"), dg.AssetKey("chunk_embeddings"))
PIPELINE_KEYS = (dg.AssetKey("raw_documents"), *FEATURE_KEYS)  # the Python assets the dbt models read from
PIPELINE = dg.AssetSelection.assets(*PIPELINE_KEYS)

NEVER_BUILT = (AC.missing() & ~AC.execution_failed()).with_label("never built (and not failed)")
NEW_UPSTREAM_DATA = AC.any_deps_match(AC.data_version_changed() & ~AC.executed_with_root_target()).with_label(
    "upstream data changed"
)
_PENDING = (
    AC.missing() & ~AC.execution_failed() & ~AC.any_deps_missing().ignore(dg.AssetSelection.assets(AUTHOR_SOURCES))
).with_label("still to be built")


def _pipeline_settling() -> dg.AutomationCondition:
    """True while any author's Python pipeline is running, queued, still to be built or changed on this tick.

    Evaluated from the instance's state only (never from this tick's requests), so it does not depend on the
    order in which the assets' conditions are evaluated."""
    moving = AC.in_progress() | _PENDING | AC.data_version_changed()
    condition = AC.asset_matches(PIPELINE_KEYS[0], moving)
    for key in PIPELINE_KEYS[1:]:
        condition = condition | AC.asset_matches(key, moving)
    return condition.with_label("feature pipeline still settling")


_REQUESTED = (AC.newly_requested() | AC.initial_evaluation()).with_label("requested")

COLLECT = (
    NEVER_BUILT
    # Until requested, not until updated: a change reported by warehouse_changes_sensor updates raw_documents
    # too, and must not swallow a change of the sources that came with it.
    | (AC.cron_tick_passed(COLLECTION_CRON, "UTC") | NEW_UPSTREAM_DATA).since(_REQUESTED)
    # The cron in the label: a reader of the UI (or of str(condition)) sees when it runs.
).with_label(f"new author, changed sources, or on_cron({COLLECTION_CRON}, UTC)") & ~AC.in_progress()
"""raw_documents: a new author, a change of the author's sources, and daily at 03:00 UTC."""

REFRESH_FEATURES = (
    (
        NEVER_BUILT
        | NEW_UPSTREAM_DATA.since_last_handled()
        # Together with the feature upstream of it, never with raw_documents: a collection that changes
        # nothing must not rebuild the features.
        | AC.any_deps_match(AC.will_be_requested()).ignore(dg.AssetSelection.assets(PIPELINE_KEYS[0]))
    )
    & ~AC.any_deps_missing()
    & ~AC.any_deps_in_progress()
    & ~AC.in_progress()
).with_label("new author or new upstream data")
"""cleaned_documents, chunks, chunk_embeddings: once per change of the author's raw data, in one run."""

_DBT_HANDLED = (
    AC.newly_requested()
    | (AC.newly_updated() & ~AC.executed_with_tags(tag_keys={AUTOMATION_RUN_TAG}))
    | AC.initial_evaluation()
).with_label("requested, or built by a manual run")
_WITH_UPSTREAM_MODELS = (
    AC.any_deps_match(AC.will_be_requested()).ignore(PIPELINE).with_label("an upstream model runs on this tick")
)


def dbt_model_condition() -> dg.AutomationCondition:
    """A dbt model that reads the feature pipeline's tables."""
    changed = (
        AC.any_deps_match(AC.data_version_changed() & ~AC.executed_with_root_target()).allow(PIPELINE)
        | AC.any_deps_match(AC.newly_updated() & ~AC.executed_with_root_target()).ignore(PIPELINE)
    ).with_label("new data upstream")
    return (
        (((NEVER_BUILT | changed.since(_DBT_HANDLED)) & ~_pipeline_settling()) | _WITH_UPSTREAM_MODELS)
        & ~AC.in_progress()
    ).with_label("after the feature pipeline settles")


def scheduled_model_condition(cron: str = QUERY_LOG_CRON) -> dg.AutomationCondition:
    """A dbt model over tables no Dagster asset writes (the API's query log): on a cron schedule."""
    tick: dg.AutomationCondition = AC.cron_tick_passed(cron, "UTC")
    return (
        (((NEVER_BUILT & ~_pipeline_settling()) | tick.since_last_handled()) | _WITH_UPSTREAM_MODELS)
        & ~AC.in_progress()
    ).with_label(f"on_cron({cron}, UTC)")


DATA_VERSION_TAG = "dagster/data_version"  # the tag a reported event carries its data version in
PARTITION_TAG = "dagster/partition"
_IN_FLIGHT = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]


def partitions_in_flight(instance: dg.DagsterInstance, keys: Sequence[dg.AssetKey]) -> set[str]:
    """Partitions of ``keys`` that a run not yet finished (queued included) is building.

    A sensor holds back its report for these: the run in progress may or may not have seen the change, and a
    report it would absorb (its own materialization resets the trigger) must not be lost."""
    wanted = set(keys)
    busy: set[str] = set()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_IN_FLIGHT)):
        partition = run.tags.get(PARTITION_TAG)
        if partition and (run.asset_selection is None or run.asset_selection & wanted):
            busy.add(partition)
    return busy
