"""The Dagster code location: definitions load, raw_documents runs in-process (sensors: test_freshness.py)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from twin_platform.adapters.runtime import Runtime
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.collection.assets import raw_documents
from twin_platform.defs.resources import TwinResource
from twin_platform.domain.authors import Author
from twin_platform.settings import Settings
from twin_platform_tests.factories import markdown, write


@pytest.fixture
def instance() -> dg.DagsterInstance:
    return dg.DagsterInstance.ephemeral()


def materialize_author(instance: dg.DagsterInstance, author_id: str, raise_on_error: bool = True):
    if author_id not in instance.get_dynamic_partitions(AUTHORS_PARTITION):
        instance.add_dynamic_partitions(AUTHORS_PARTITION, [author_id])
    return dg.materialize(
        [raw_documents],
        resources={"twin": TwinResource()},
        partition_key=author_id,
        instance=instance,
        raise_on_error=raise_on_error,
    )


def metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    [materialization] = result.asset_materializations_for_node("raw_documents")
    return {key: value.value for key, value in materialization.metadata.items()}


def rows(value: object) -> list[dict[str, object]]:
    """The records of a table in the metadata."""
    assert isinstance(value, dg.TableMetadataValue)
    return [dict(record.data) for record in value.records]


def test_definitions_load():
    from twin_platform.definitions import defs

    assert defs.resolve_assets_def("raw_documents").partitions_def == dg.DynamicPartitionsDefinition(
        name=AUTHORS_PARTITION
    )
    sensors = {"author_sources_sensor", "warehouse_changes_sensor", "author_freshness_sensor", "twin_automation_sensor"}
    for sensor in sensors:
        assert defs.resolve_sensor_def(sensor) is not None
    graph = defs.resolve_asset_graph()
    # Freshness is judged per author (one stale author fails the check), not by an asset-wide policy.
    for key, check in (
        ("raw_documents", "collected_within_a_day"),
        ("chunk_embeddings", "caught_up_with_raw_documents"),
    ):
        assert "author" in str(graph.get(dg.AssetCheckKey(dg.AssetKey(key), check)).description)
        assert defs.resolve_assets_def(key).specs_by_key[dg.AssetKey(key)].freshness_policy is None
    assert set(defs.resources or {}) == {"twin", "dbt", "platform", "artifact_store", "artifacts"}


def test_raw_documents_collects_an_authors_imports_idempotently(
    runtime: Runtime, tmp_path: Path, instance: dg.DagsterInstance
):
    folder = tmp_path / "corpus"
    write(folder / "articles/a.md", markdown("A", "Alpha.", canonical_url="https://jane.example.com/a"))
    write(folder / "posts/b.md", markdown("B", "Beta.", canonical_url="https://www.linkedin.com/posts/jane_b"))
    write(folder / "broken.md", b"\xff")
    runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))

    first = materialize_author(instance, "jane-doe")
    assert first.success
    meta = metadata(first)
    assert (meta["inserted"], meta["unchanged"], meta["rejected"], meta["documents"]) == (2, 0, 1, 2)
    assert {"platform": "linkedin", "category": "post", "documents": 1} in rows(meta["by_platform_category"])
    [rejection] = rows(meta["rejections"])
    assert rejection["source"] == "broken.md"
    assert "broken.md is not valid UTF-8" in str(rejection["reason"])
    [source] = rows(meta["sources"])
    assert (source["kind"], source["status"], source["documents"]) == ("import", "ok", 2)

    second = metadata(materialize_author(instance, "jane-doe"))
    assert (second["inserted"], second["unchanged"], second["documents"]) == (0, 2, 2)

    (folder / "posts/b.md").unlink()
    third = metadata(materialize_author(instance, "jane-doe"))
    assert (third["tombstoned"], third["documents"]) == (1, 1)


def test_raw_documents_fails_when_every_source_fails(runtime: Runtime, tmp_path: Path, instance: dg.DagsterInstance):
    runtime.authors.save(Author(full_name="Jane Doe", imports=(str(tmp_path / "missing"),)))
    result = materialize_author(instance, "jane-doe", raise_on_error=False)
    assert not result.success
    failure = result.failure_data_for_node("raw_documents")
    assert failure is not None
    assert "every source of Jane Doe failed" in str(failure.error)


def test_raw_documents_for_an_unregistered_author_fails_clearly(runtime: Runtime, instance: dg.DagsterInstance):
    result = materialize_author(instance, "nobody", raise_on_error=False)
    failure = result.failure_data_for_node("raw_documents")
    assert failure is not None
    assert "'nobody' is not in the registry" in str(failure.error)


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_DATABASE_URL", "postgresql://twin:s3cret-pw@db.internal/twin")
    monkeypatch.setenv("TWIN_MONGODB_URL", "mongodb://twin:s3cret-pw@mongo.internal/")
    settings = Settings()
    assert "s3cret" not in repr(settings)
    assert "s3cret" not in str(settings.model_dump())
    assert settings.database_url is not None
    assert "s3cret" in settings.database_url.get_secret_value()
    assert "s3cret" not in str(TwinResource().model_dump())
