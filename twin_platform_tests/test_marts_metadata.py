"""What the UI shows for the dbt marts: row counts, previews and plots; a description on every asset check."""

from __future__ import annotations

import base64
import re
from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from twin_platform.adapters.runtime import Runtime
from twin_platform.cli.instance import add_author_partitions
from twin_platform.cli.materialize import materialize_assets
from twin_platform.defs.marts.translator import describe_test, fed_by_dagster
from twin_platform.domain.authors import Author
from twin_platform.settings import Settings
from twin_platform_tests.factories import markdown, write

MARTS = ("mart_corpus_by_month", "mart_chunk_quality", "mart_chunk_length_distribution", "mart_query_metrics")
PLOTS = {"mart_chunk_length_distribution": "chunk_length_histogram", "mart_corpus_by_month": "documents_per_month"}
PNG = re.compile(r"!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)")


def test_every_asset_check_has_a_description():
    from twin_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    missing = [key.to_user_string() for key in graph.asset_check_keys if not (graph.get(key).description or "").strip()]
    assert missing == []
    assert len(graph.asset_check_keys) >= 30  # the Python checks and every dbt test


def test_dbt_tests_are_described_by_what_they_assert():
    kwargs = {"column_name": "document_id", "to": "ref('stg_raw')", "field": "document_id"}
    relationships = {"name": "relationships_x", "test_metadata": {"name": "relationships", "kwargs": kwargs}}
    assert describe_test(relationships, "stg_cleaned") == "Every stg_cleaned.document_id exists in stg_raw.document_id."
    accepted = {
        "test_metadata": {"name": "accepted_values", "kwargs": {"column_name": "category", "values": ["a", "b"]}}
    }
    assert describe_test(accepted, "stg_raw") == "stg_raw.category is one of: a, b."
    singular = {"name": "no_long_chunks", "raw_code": "-- Longer chunks would be truncated.\nselect 1"}
    assert describe_test(singular, "stg_chunks") == "No long chunks: Longer chunks would be truncated."
    assert describe_test({"description": "Said in schema.yml.", "test_metadata": {"name": "unique"}}, "m") == (
        "Said in schema.yml."
    )


def test_models_fed_by_dagster_assets_are_told_apart_from_the_query_log_ones():
    manifest = {
        "sources": {
            "source.p.twin.chunks": {"meta": {"dagster": {"asset_key": ["chunk_embeddings"]}}},
            "source.p.twin.query_log": {"meta": {}},
        },
        "nodes": {"model.p.stg_chunks": {}, "model.p.mart": {}, "model.p.stg_log": {}, "model.p.log_mart": {}},
        "parent_map": {
            "model.p.stg_chunks": ["source.p.twin.chunks"],
            "model.p.mart": ["model.p.stg_chunks", "model.p.stg_log"],
            "model.p.stg_log": ["source.p.twin.query_log"],
            "model.p.log_mart": ["model.p.stg_log"],
        },
    }
    assert fed_by_dagster(manifest) == {"model.p.stg_chunks", "model.p.mart"}


def test_the_query_log_marts_run_hourly_and_the_others_after_the_features():
    from twin_platform.definitions import defs

    graph = defs.resolve_asset_graph()
    for name in ("stg_query_log", "mart_query_metrics"):
        condition = graph.get(dg.AssetKey(["analytics", name])).automation_condition
        assert "0 * * * *" in str(condition), name
    for name in ("stg_cleaned_documents", "mart_corpus_by_month"):
        condition = graph.get(dg.AssetKey(["analytics", name])).automation_condition
        assert "0 * * * *" not in str(condition)
        assert "feature pipeline" in str(condition), name


def latest_metadata(instance: dg.DagsterInstance, name: str) -> dict[str, object]:
    [record] = instance.fetch_materializations(dg.AssetKey(["analytics", name]), limit=1).records
    assert record.asset_materialization is not None
    return dict(record.asset_materialization.metadata)


@pytest.mark.slow
def test_marts_show_row_counts_previews_and_plots(runtime: Runtime, settings: Settings, tmp_path: Path):
    folder = tmp_path / "notes"
    write(folder / "a.md", markdown("Evals", "Build the evaluation set first. " * 40, date="2025-01-10"))
    write(folder / "b.md", markdown("Chunking", "Size chunks in tokens. " * 60, date="2025-03-02"))
    write(folder / "posts/c.md", markdown("Short post", "Short and to the point.", date="2025-03-20"))
    runtime.authors.save(Author(full_name="Jane Doe", imports=(str(folder),)))
    add_author_partitions(settings, ["jane-doe"])
    assert materialize_assets("not group:training", ["jane-doe"], settings)

    with dg.DagsterInstance.get() as instance, runtime.engine.connect() as conn:
        for name in MARTS:
            metadata = latest_metadata(instance, name)
            rows = conn.execute(sa.text(f"SELECT * FROM analytics.{name}")).mappings().all()
            assert metadata["dagster/row_count"] == dg.MetadataValue.int(len(rows)), name
            preview = metadata["preview"]
            assert isinstance(preview, dg.TableMetadataValue)
            columns = list(rows[0].keys()) if rows else [c.name for c in preview.schema.columns]
            assert [c.name for c in preview.schema.columns] == columns
            assert len(preview.records) == min(len(rows), 20)
        corpus = latest_metadata(instance, "mart_corpus_by_month")["preview"]
        assert isinstance(corpus, dg.TableMetadataValue)
        types = {c.name: c.type for c in corpus.schema.columns}
        assert (types["documents"], types["category"]) == ("int", "string")
        assert sorted((r.data["month"], r.data["documents"]) for r in corpus.records) == [
            ("2025-01-01", 1),
            ("2025-03-01", 1),
            ("2025-03-01", 1),
        ]
        for name, key in PLOTS.items():
            plot = latest_metadata(instance, name)[key]
            assert isinstance(plot, dg.MarkdownMetadataValue)
            match = PNG.search(plot.md_str or "")
            assert match, name
            assert base64.b64decode(match.group(1)).startswith(b"\x89PNG\r\n\x1a\n")
        # Views carry no preview: reading one runs its query.
        assert "preview" not in latest_metadata(instance, "stg_chunks")
