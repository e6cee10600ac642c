"""The benchmark commands run and print the figures they promise (tiny sizes here; real ones in README)."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from twin_platform.cli.main import app
from twin_platform.settings import Settings


def test_feature_benchmark_prints_its_figures(settings: Settings):
    result = CliRunner().invoke(app, ["bench", "features", "--docs", "8", "--vectors", "600", "--queries", "10"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    corpus = report["generated_corpus"]
    assert corpus["documents"] == 8
    assert corpus["chunks"] > 8
    assert corpus["chunks_per_s"] > 0
    assert 0 < corpus["pipeline_to_encode_ratio"] <= 1.5
    assert corpus["refresh_1pct"]["documents_changed"] == 1
    assert corpus["refresh_1pct"]["chunks_embedded"] >= 1
    [hnsw] = report["hnsw"]
    assert hnsw["vectors"] == 600
    assert 0.5 <= hnsw["recall_at_10"] <= 1.0
    assert set(report["goals"]) == {"pipeline_to_encode_ratio>=0.85", "refresh_1pct_cost<=0.05"}


def test_bad_benchmark_arguments_are_refused(settings: Settings):
    result = CliRunner().invoke(app, ["bench", "features", "--vectors", "ten"])
    assert result.exit_code == 2
    assert "comma-separated integers" in result.stderr


def test_api_benchmark_prints_its_figures(settings: Settings):
    result = CliRunner().invoke(app, ["bench", "api", "--chunks", "400", "--clients", "1,2", "--seconds", "2"])
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    [size] = report["sizes"]
    assert size["chunks"] == 400
    assert [r["clients"] for r in size["search"]] == [1, 2]
    assert all(r["requests"] > 0 and r["errors"] == 0 for r in size["search"])
    for baseline, encoder, processes in [
        ("bare_loop_reference", "torch", 1),
        ("bare_loop_single_thread", "api", 1),
        ("bare_loop_equal_concurrency", "api", 2),
    ]:
        assert (size[baseline]["encoder"], size[baseline]["processes"]) == (encoder, processes)
        assert size[baseline]["requests_per_s"] > 0
    assert size["rag_single_client"]["errors"] == 0
    assert size["ratios"]["throughput_8_clients_vs_reference"] > 0
    assert size["goals"]["zero_errors"] is True
