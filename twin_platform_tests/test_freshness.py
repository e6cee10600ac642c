"""One freshness path, end to end without a daemon: sensors report, automation requests, each change runs once.

``Daemon`` does what ``dagster dev``'s daemon does, deterministically: it ticks the two sensors that report
changes (applying their asset events and partitions to the instance, as the sensor daemon does), evaluates every
automation condition, and executes each requested run in-process, tagged as the automation daemon tags its runs.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.definitions.data_version import CachingStaleStatusResolver, StaleStatus
from dagster._core.loader import LoadingContextForTest
from dagster._core.test_utils import create_run_for_test

from twin_platform.adapters.runtime import Runtime
from twin_platform.collection.ingest import import_path
from twin_platform.defs.authors.fingerprints import sources_fingerprint
from twin_platform.defs.authors.sensors import author_sources_sensor
from twin_platform.defs.automation import AUTOMATION_RUN_TAG
from twin_platform.defs.collection.assets import author_revision
from twin_platform.defs.features.sensors import warehouse_changes_sensor
from twin_platform.defs.freshness import author_freshness_sensor, collection_verdict, index_verdict
from twin_platform.defs.resources import TwinResource
from twin_platform.domain.authors import Author
from twin_platform.settings import Settings
from twin_platform_tests.factories import markdown, raw_document, write

REPORTING_SENSORS = (author_sources_sensor, warehouse_changes_sensor)


class Daemon:
    """The sensor and automation daemons, one tick at a time; runs execute in-process before the next tick."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance) -> None:
        self.defs = defs
        self.instance = instance
        self.sensor_cursors: dict[str, str | None] = {}
        self.automation_cursor = None
        self.job = defs.resolve_implicit_global_asset_job_def()

    def _sense(self) -> int:
        events = 0
        for sensor in REPORTING_SENSORS:
            cursor = self.sensor_cursors.get(sensor.name)
            with dg.build_sensor_context(
                instance=self.instance, cursor=cursor, resources={"twin": TwinResource()}
            ) as context:
                result = sensor(context)
            assert isinstance(result, dg.SensorResult)
            assert not result.run_requests, f"{sensor.name} launched runs itself"
            for event in result.asset_events or []:  # reported first, then partitions: the sensor daemon's order
                self.instance.report_runless_asset_event(event)
            for request in result.dynamic_partitions_requests or []:
                assert isinstance(request, dg.AddDynamicPartitionsRequest)
                self.instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
            events += len(result.asset_events or [])
            self.sensor_cursors[sensor.name] = result.cursor or cursor
        return events

    def tick(self) -> int:
        """One tick of every daemon; returns how many runs it started (and finished)."""
        events = self._sense()
        result = dg.evaluate_automation_conditions(
            defs=self.defs, instance=self.instance, cursor=self.automation_cursor
        )
        self.automation_cursor = result.cursor
        by_partition: dict[str | None, set[dg.AssetKey]] = {}
        for key in self.defs.resolve_asset_graph().get_all_asset_keys():
            for partition in result.get_requested_partitions(key):
                by_partition.setdefault(partition, set()).add(key)
        for partition, keys in by_partition.items():  # one run per partition, as the daemon groups them
            run = self.job.execute_in_process(
                instance=self.instance,
                partition_key=partition,
                asset_selection=sorted(keys),  # recorded on the run, as the daemon records it
                tags={AUTOMATION_RUN_TAG: "true"},
                raise_on_error=False,
            )
            assert run.success, f"run for {partition or 'marts'} failed"
        return len(by_partition) + events

    def settle(self, max_ticks: int = 12) -> None:
        """Ticks until two ticks in a row find nothing to do (a tick may wait for the pipeline to settle)."""
        idle = 0
        for _ in range(max_ticks):
            idle = idle + 1 if self.tick() == 0 else 0
            if idle == 2:
                return
        pytest.fail(f"automation still starting runs after {max_ticks} ticks")


def runs_per_asset_partition(
    instance: dg.DagsterInstance, keys: list[dg.AssetKey], after: int = 0
) -> Counter[tuple[str, str | None]]:
    """(asset, partition) -> how many runs materialized it, counting only runs after the first ``after``
    (reported, runless materializations are not runs)."""
    runs = sorted(instance.get_runs(), key=lambda r: instance.get_run_record_by_id(r.run_id).create_timestamp)
    counted = {run.run_id for run in runs[after:]}
    counts: Counter[tuple[str, str | None]] = Counter()
    for key in keys:
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=10_000).records
        for _run_id, partition in {(r.run_id, r.partition_key) for r in records if r.run_id in counted}:
            counts[(key.to_user_string(), partition)] += 1
    return counts


def stale(instance: dg.DagsterInstance, defs: dg.Definitions, author: str) -> dict[str, list[str]]:
    """Every pipeline and dbt asset that is not FRESH, with its stale causes."""
    graph = defs.resolve_asset_graph()
    resolver = CachingStaleStatusResolver(instance, graph, LoadingContextForTest(instance))
    found = {}
    for key in graph.materializable_asset_keys:
        if graph.get(key).group_name == "training":
            continue
        partition = author if graph.get(key).partitions_def else None
        if resolver.get_status(key, partition) != StaleStatus.FRESH:
            causes = resolver.get_stale_root_causes(key, partition)
            found[key.to_user_string()] = [f"{c.asset_key.to_user_string()}: {c.reason}" for c in causes]
    return found


PIPELINE = {"raw_documents", "cleaned_documents", "chunks", "chunk_embeddings"}
FED_MODELS = {
    "analytics/stg_raw_documents",
    "analytics/stg_cleaned_documents",
    "analytics/stg_chunks",
    "analytics/mart_corpus_by_month",
    "analytics/mart_chunk_quality",
    "analytics/mart_chunk_length_distribution",
}
QUERY_LOG_MODELS = {"analytics/stg_query_log", "analytics/mart_query_metrics"}


@pytest.mark.slow
def test_a_changed_file_runs_each_downstream_partition_once(runtime: Runtime, settings: Settings, tmp_path: Path):
    from twin_platform.definitions import defs

    folder = tmp_path / "notes"
    write(folder / "evals.md", markdown("Evals first", "Build the evaluation set before the prompt. " * 30))
    write(folder / "chunks.md", markdown("Chunk by tokens", "Size chunks in the model's own tokens. " * 30))
    runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))
    with dg.instance_for_test() as instance:
        daemon = Daemon(defs, instance)

        # First start: the new author is collected and built once, then one dbt run builds every model.
        daemon.settle()
        keys = list(defs.resolve_asset_graph().materializable_asset_keys)
        first = runs_per_asset_partition(instance, keys)
        assert {k for k, n in first.items() if n} == {
            *((asset, "jane-doe") for asset in PIPELINE),
            *((model, None) for model in FED_MODELS | QUERY_LOG_MODELS),
        }
        assert set(first.values()) == {1}, first
        assert len(instance.get_runs()) == 2  # the author's pipeline, then the marts
        assert stale(instance, defs, "jane-doe") == {}

        # `twin import` of a changed file that also sits in the author's import folder: both sensors notice.
        runs_before = len(instance.get_runs())
        write(folder / "evals.md", markdown("Evals first", "Write the evaluation set before any prompt. " * 30))
        report = import_path(
            folder / "evals.md",
            warehouse=runtime.warehouse,
            authors=runtime.authors,
            author_name="Jane Doe",
            max_bytes=settings.import_max_file_bytes,
        )
        assert report.updated == 1
        daemon.settle()
        second = runs_per_asset_partition(instance, keys, after=runs_before)
        assert second == Counter(
            {**{(asset, "jane-doe"): 1 for asset in PIPELINE}, **{(model, None): 1 for model in FED_MODELS}}
        ), second
        # The query-log models have no Dagster upstream: only their hourly schedule runs them.
        assert all((model, None) not in second for model in QUERY_LOG_MODELS)
        # stg_cleaned_documents (and everything else) is fresh once its parents and it have run.
        assert stale(instance, defs, "jane-doe") == {}

        # Nothing changed: nothing runs.
        quiet_before = len(instance.get_runs())
        daemon.settle()
        assert len(instance.get_runs()) == quiet_before


def test_the_run_counter_counts_per_partition():
    with dg.instance_for_test() as instance:

        @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a", "b"]))
        def thing() -> None: ...

        dg.materialize([thing], instance=instance, partition_key="a")
        dg.materialize([thing], instance=instance, partition_key="a")
        dg.materialize([thing], instance=instance, partition_key="b")
        instance.report_runless_asset_event(dg.AssetMaterialization("thing", partition="b"))  # not a run
        counts = runs_per_asset_partition(instance, [thing.key])
        assert counts == Counter({("thing", "a"): 2, ("thing", "b"): 1})
        assert runs_per_asset_partition(instance, [thing.key], after=2) == Counter({("thing", "b"): 1})


# --- the conditions alone, on reported events (no run executes, no database) --------------------------------

AUTHOR = "jane-doe"


def report(instance: dg.DagsterInstance, key: str, version: str, partition: str | None = AUTHOR) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(key, partition=partition, tags={"dagster/data_version": version})
    )


def requested(defs: dg.Definitions, instance: dg.DagsterInstance, cursor=None) -> tuple[set[str], object]:
    result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
    keys = {key.to_user_string() for key in defs.resolve_asset_graph().get_all_asset_keys()}
    return {k for k in keys if result.get_num_requested(dg.AssetKey.from_user_string(k))}, result.cursor


def built(instance: dg.DagsterInstance, defs: dg.Definitions) -> None:
    """Every pipeline and dbt asset has a materialization, as after a first build."""
    graph = defs.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        if graph.get(key).group_name != "training":
            report(instance, key.to_user_string(), "v0", AUTHOR if graph.get(key).partitions_def else None)


def test_collection_runs_for_a_change_of_sources_never_for_the_same_fingerprint():
    from twin_platform.defs.collection.assets import author_sources, raw_documents

    defs = dg.Definitions(assets=[author_sources, raw_documents], resources={"twin": TwinResource()})
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("authors", [AUTHOR])
        assert requested(defs, instance)[0] == {"raw_documents"}  # a new author: collected once
        report(instance, "raw_documents", "r1")
        nothing, cursor = requested(defs, instance)
        assert nothing == set()
        report(instance, "author_sources", "fingerprint-1")
        changed, cursor = requested(defs, instance, cursor)
        assert changed == {"raw_documents"}
        report(instance, "raw_documents", "r1")  # the collection found nothing new
        report(instance, "author_sources", "fingerprint-1")  # the same sources, reported again
        quiet, cursor = requested(defs, instance, cursor)
        assert quiet == set()
        # A change of the sources reported on the same tick as a warehouse change (`twin import` of another
        # file) is not swallowed by it: the warehouse change updates raw_documents, not the sources it reads.
        report(instance, "author_sources", "fingerprint-2")
        report(instance, "raw_documents", "r2")
        assert requested(defs, instance, cursor)[0] == {"raw_documents"}


def test_features_follow_new_raw_data_once_and_the_marts_wait_for_them():
    from twin_platform.definitions import defs

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("authors", [AUTHOR])
        built(instance, defs)
        _, cursor = requested(defs, instance)  # the first evaluation only records where things stand
        assert requested(defs, instance, cursor)[0] == set()

        report(instance, "raw_documents", "r2")  # e.g. `twin import`, reported by warehouse_changes_sensor
        first, cursor = requested(defs, instance, cursor)
        assert first == {"cleaned_documents", "chunks", "chunk_embeddings"}  # one run; no dbt while they build
        for key in ("cleaned_documents", "chunks", "chunk_embeddings"):
            report(instance, key, "v1")
        settling, cursor = requested(defs, instance, cursor)
        assert settling == set()  # the features changed on this tick: the marts wait for the pipeline to settle
        marts, cursor = requested(defs, instance, cursor)
        assert marts == FED_MODELS  # one dbt run for everything the change reached; not the query-log models
        for key in marts:
            report(instance, key, "v1", None)
        assert requested(defs, instance, cursor)[0] == set()

        report(instance, "raw_documents", "r2")  # the same revision again (the run that wrote it, say)
        assert requested(defs, instance, cursor)[0] == set()


def automation_run(instance: dg.DagsterInstance, keys: set[str]) -> None:
    """Materializations of ``keys`` by a run the automation daemon launched (a stand-in for the dbt run)."""
    asset_keys = sorted(dg.AssetKey.from_user_string(k) for k in keys)

    @dg.multi_asset(specs=[dg.AssetSpec(k) for k in asset_keys])
    def stand_in() -> Iterator[dg.MaterializeResult]:
        for key in asset_keys:
            yield dg.MaterializeResult(asset_key=key)

    job = dg.Definitions(assets=[stand_in]).resolve_implicit_global_asset_job_def()
    run = job.execute_in_process(instance=instance, asset_selection=asset_keys, tags={AUTOMATION_RUN_TAG: "true"})
    assert run.success


def test_a_feature_update_during_a_dbt_run_brings_one_more_dbt_run():
    """What left stg_cleaned_documents "stale: upstream data" for good: a dbt run that ended after an update of
    cleaned_documents it may not have read counted as having handled it (eager's latch resets on the asset's own
    update), so nothing ever ran it again. Here the change stays pending until dbt is requested after it."""
    from twin_platform.definitions import defs

    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("authors", [AUTHOR])
        built(instance, defs)
        _, cursor = requested(defs, instance)
        for key in ("cleaned_documents", "chunks", "chunk_embeddings"):
            report(instance, key, "v1")
        _, cursor = requested(defs, instance, cursor)  # settling
        marts, cursor = requested(defs, instance, cursor)
        assert marts == FED_MODELS - {"analytics/stg_raw_documents"}  # raw_documents did not change
        quiet, cursor = requested(defs, instance, cursor)  # the dbt run is in progress
        assert quiet == set()
        # While that dbt run is in progress, cleaned_documents changes again; then the dbt run ends.
        report(instance, "cleaned_documents", "v2")
        automation_run(instance, marts)
        _, cursor = requested(defs, instance, cursor)  # settling
        again, cursor = requested(defs, instance, cursor)
        assert again == {"analytics/stg_cleaned_documents", "analytics/mart_corpus_by_month"}


# --- the sensors report, and hold back while the partition they concern is being built ----------------------


def sensor_tick(sensor, instance: dg.DagsterInstance, cursor: str | None) -> dg.SensorResult:
    with dg.build_sensor_context(instance=instance, cursor=cursor, resources={"twin": TwinResource()}) as context:
        result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    assert not result.run_requests
    return result


def in_flight(instance: dg.DagsterInstance, *keys: str) -> str:
    """A run in progress building ``keys`` for the author; returns its id."""
    run = create_run_for_test(
        instance,
        status=dg.DagsterRunStatus.STARTED,
        tags={"dagster/partition": AUTHOR},
        asset_selection=frozenset(dg.AssetKey(k) for k in keys),
    )
    return run.run_id


def versions(result: dg.SensorResult, key: str) -> dict[str | None, str]:
    return {
        e.partition: (e.tags or {})["dagster/data_version"]
        for e in result.asset_events or []
        if isinstance(e, dg.AssetMaterialization) and e.asset_key == dg.AssetKey(key)
    }


def test_author_sources_sensor_reports_registry_and_folder_changes(runtime: Runtime, tmp_path: Path):
    folder = tmp_path / "notes"
    write(folder / "a.md", markdown("A", "Alpha."))
    runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))
    with dg.instance_for_test() as instance:
        first = sensor_tick(author_sources_sensor, instance, None)
        [partitions] = first.dynamic_partitions_requests or []
        assert list(partitions.partition_keys) == [AUTHOR]
        instance.add_dynamic_partitions("authors", [AUTHOR])
        fingerprint = versions(first, "author_sources")[AUTHOR]

        assert sensor_tick(author_sources_sensor, instance, first.cursor).skip_reason is not None

        write(folder / "b.md", markdown("B", "Beta."))  # a new file
        added = sensor_tick(author_sources_sensor, instance, first.cursor)
        assert versions(added, "author_sources")[AUTHOR] != fingerprint
        runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),), links={"medium": ("https://x.y",)}))
        linked = sensor_tick(author_sources_sensor, instance, added.cursor)
        assert set(versions(linked, "author_sources")) == {AUTHOR}

        # While the author is being collected the change is held back, not recorded as seen ...
        run_id = in_flight(instance, "raw_documents")
        (folder / "a.md").unlink()
        held = sensor_tick(author_sources_sensor, instance, linked.cursor)
        assert not held.asset_events
        assert "held back" in str(held.skip_reason)
        assert held.cursor == linked.cursor
        # ... and once the collection ended, reported only if that collection did not already see it.
        instance.delete_run(run_id)
        author = runtime.authors.get(AUTHOR)
        assert author is not None
        current = sources_fingerprint(author)
        instance.report_runless_asset_event(
            dg.AssetMaterialization("raw_documents", partition=AUTHOR, metadata={"sources_fingerprint": current})
        )
        seen = sensor_tick(author_sources_sensor, instance, held.cursor)
        assert not seen.asset_events
        write(folder / "c.md", markdown("C", "Gamma."))
        assert set(versions(sensor_tick(author_sources_sensor, instance, seen.cursor), "author_sources")) == {AUTHOR}


def test_warehouse_changes_sensor_reports_new_revisions_as_raw_documents(runtime: Runtime):
    runtime.authors.save(Author(full_name="Jane Doe"))
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("authors", [AUTHOR])
        runtime.warehouse.upsert_many([raw_document(n=1)])
        never = sensor_tick(warehouse_changes_sensor, instance, None)
        assert not never.asset_events  # never collected: automation builds the author, nothing to report
        report(instance, "raw_documents", f"r{author_revision(runtime.warehouse, AUTHOR)}")  # as a run records it

        runtime.warehouse.upsert_many([raw_document(n=2), raw_document(n=3)])
        changed = sensor_tick(warehouse_changes_sensor, instance, never.cursor)
        revision = author_revision(runtime.warehouse, AUTHOR)
        assert versions(changed, "raw_documents") == {AUTHOR: f"r{revision}"}
        [event] = changed.asset_events or []
        assert event.metadata["documents_changed"] == dg.MetadataValue.int(2)
        for event in changed.asset_events or []:
            instance.report_runless_asset_event(event)
        assert not sensor_tick(warehouse_changes_sensor, instance, changed.cursor).asset_events

        # A change while the author's features are built is held back (the cursor stays before it) ...
        run_id = in_flight(instance, "chunks")
        runtime.warehouse.upsert_many([raw_document(n=4)])
        held = sensor_tick(warehouse_changes_sensor, instance, changed.cursor)
        assert not held.asset_events
        assert held.cursor == changed.cursor
        # ... and reported when that run has ended.
        instance.delete_run(run_id)
        after = sensor_tick(warehouse_changes_sensor, instance, held.cursor)
        assert versions(after, "raw_documents") == {AUTHOR: f"r{author_revision(runtime.warehouse, AUTHOR)}"}

        # Documents of an author Dagster has no partition for (yet) get one.
        runtime.authors.save(Author(full_name="John Roe"))
        runtime.warehouse.upsert_many([raw_document(author_id="john-roe", n=5)])
        john = sensor_tick(warehouse_changes_sensor, instance, after.cursor)
        assert [list(r.partition_keys) for r in john.dynamic_partitions_requests or []] == [["john-roe"]]
        assert not john.asset_events  # never collected: automation collects him
        instance.add_dynamic_partitions("authors", ["john-roe"])
        # His collection failed (automation does not retry it); documents stored since by `twin import` are
        # reported, so that his features can use them.
        create_run_for_test(
            instance,
            status=dg.DagsterRunStatus.FAILURE,
            tags={"dagster/partition": "john-roe"},
            asset_selection=frozenset({dg.AssetKey("raw_documents")}),
        )
        runtime.warehouse.upsert_many([raw_document(author_id="john-roe", n=6)])
        imported = sensor_tick(warehouse_changes_sensor, instance, john.cursor)
        assert set(versions(imported, "raw_documents")) == {"john-roe"}


# --- freshness per author --------------------------------------------------------------------------------


HOUR = 3600.0


def test_collection_and_index_verdicts():
    now = 1_000_000.0
    assert collection_verdict(now - HOUR, now).passed
    late = collection_verdict(now - 25.5 * HOUR, now)
    assert (late.passed, late.severity) == (False, dg.AssetCheckSeverity.WARN)
    stuck = collection_verdict(now - 27 * HOUR, now)
    assert (stuck.passed, stuck.severity) == (False, dg.AssetCheckSeverity.ERROR)
    assert not collection_verdict(None, now).passed
    assert index_verdict(now - 2 * HOUR, now - HOUR, now).passed  # rebuilt after the change
    assert index_verdict(now - 0.5 * HOUR, now - 2 * HOUR, now).passed  # behind, but catching up
    assert not index_verdict(now - 2 * HOUR, now - 3 * HOUR, now).passed
    assert not index_verdict(now - 2 * HOUR, None, now).passed


def test_a_stale_author_does_not_hide_behind_a_fresh_one(monkeypatch: pytest.MonkeyPatch):
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions("authors", ["fresh-author", "stale-author"])
        for author in ("fresh-author", "stale-author"):
            report(instance, "raw_documents", "r1", author)
            report(instance, "chunk_embeddings", "v1", author)
        cursor: list[str | None] = [None]

        def tick() -> dict[str, dg.AssetCheckEvaluation]:
            with dg.build_sensor_context(instance=instance, cursor=cursor[0]) as context:
                result = author_freshness_sensor(context)
            cursor[0] = result.cursor
            events = [e for e in result.asset_events or [] if isinstance(e, dg.AssetCheckEvaluation)]
            for event in events:  # stored as the sensor daemon stores them
                instance.report_runless_asset_event(event)
            return {e.check_name: e for e in events}

        def states(evaluation: dg.AssetCheckEvaluation) -> dict[str, str]:
            authors = evaluation.metadata["authors"]
            assert isinstance(authors, dg.TableMetadataValue)
            return {str(r.data["author"]): str(r.data["state"]) for r in authors.records}

        first = tick()
        assert {name: e.passed for name, e in first.items()} == {
            "collected_within_a_day": True,
            "caught_up_with_raw_documents": True,
        }
        assert tick() == {}  # nothing changed: nothing reported again

        # A day and more later only fresh-author was collected again; its new documents are still being indexed.
        later = time.time() + 27 * HOUR
        monkeypatch.setattr(time, "time", lambda: later)  # the clock of the sensor and of the events reported
        report(instance, "raw_documents", "r2", "fresh-author")
        [collected] = tick().values()
        assert (collected.check_name, collected.passed, collected.severity) == (
            "collected_within_a_day",
            False,
            dg.AssetCheckSeverity.ERROR,
        )
        assert states(collected) == {"fresh-author": "passed", "stale-author": "ERROR"}
        assert collected.metadata["failing"] == dg.MetadataValue.text("stale-author")
        # The asset as a whole was materialized moments ago: an asset-wide policy would call it fresh.
        latest = instance.fetch_materializations(dg.AssetKey("raw_documents"), limit=1).records[0]
        assert latest.partition_key == "fresh-author"
        stored = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            [dg.AssetCheckKey(dg.AssetKey("raw_documents"), "collected_within_a_day")]
        )
        assert [r.status.value for r in stored.values()] == ["FAILED"]
