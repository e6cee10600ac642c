"""The dbt project runs from Dagster against the platform's Postgres; its tests are asset checks."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest
import sqlalchemy as sa

from twin_platform.adapters.runtime import Runtime
from twin_platform.cli.materialize import materialize_assets
from twin_platform.collection.ingest import import_path
from twin_platform.definitions import defs
from twin_platform.settings import Settings

pytestmark = pytest.mark.slow


def rows(runtime: Runtime, sql: str) -> list[sa.Row]:
    with runtime.engine.connect() as conn:
        return list(conn.execute(sa.text(sql)))


def test_demo_graph_and_marts_materialize_from_dagster(runtime: Runtime, settings: Settings):
    from twin_platform.cli.demo import register_demo

    register_demo(settings)
    # raw -> features -> dbt marts, checks included (training has its own tests)
    assert materialize_assets("not group:training", ["mara-ellison"], settings)

    with dg.DagsterInstance.get() as instance:
        checks = instance.event_log_storage.get_latest_asset_check_execution_by_key(
            list(defs.resolve_asset_graph().asset_check_keys)
        )
    assert len(checks) >= 20
    assert all(r.status.value == "SUCCEEDED" for r in checks.values()), {k: r.status for k, r in checks.items()}

    corpus = rows(
        runtime,
        "SELECT category, sum(documents), sum(chunks) FROM analytics.mart_corpus_by_month "
        "WHERE author_id = 'mara-ellison' GROUP BY category ORDER BY category",
    )
    assert [(c, int(d)) for c, d, _ in corpus] == [("article", 10), ("post", 7), ("repository", 3)]
    assert all(int(n) > 0 for _, _, n in corpus)
    [quality] = rows(
        runtime,
        "SELECT chunks, max_tokens, embedded_share FROM analytics.mart_chunk_quality WHERE author_id = 'mara-ellison'",
    )
    assert quality.max_tokens <= 254
    assert float(quality.embedded_share) == 1.0
    histogram = rows(runtime, "SELECT sum(chunks) FROM analytics.mart_chunk_length_distribution")
    assert int(histogram[0][0]) == quality.chunks


def test_handbook_export_gets_chunks_for_every_article_and_a_second_run_embeds_nothing(
    runtime: Runtime, settings: Settings, handbook_export: Path
):
    import_path(handbook_export, warehouse=runtime.warehouse, authors=runtime.authors, max_bytes=5_000_000)
    from twin_platform.cli.instance import add_author_partitions

    add_author_partitions(settings, ["paul-iusztin", "maxime-labonne"])
    select = "key:cleaned_documents or key:chunks or key:chunk_embeddings"
    assert materialize_assets(select, [], settings)
    [(articles, with_chunks, too_long, unembedded)] = rows(
        runtime,
        """
        SELECT (SELECT count(*) FROM raw_documents WHERE category = 'article'),
               (SELECT count(DISTINCT document_id) FROM chunks),
               (SELECT count(*) FROM chunks WHERE token_count > 254),
               (SELECT count(*) FROM chunks WHERE embedding IS NULL)""",
    )
    assert (articles, with_chunks, too_long, unembedded) == (76, 76, 0, 0)

    before = rows(runtime, "SELECT max(embedded_at) FROM chunks")[0][0]
    assert materialize_assets(select, [], settings)
    assert rows(runtime, "SELECT max(embedded_at) FROM chunks")[0][0] == before
