"""The benchmark commands run and print the figures they promise (tiny sizes here; real ones in README)."""

from __future__ import annotations

import json

import pytest
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


def test_retrieval_benchmark_prints_its_figures(settings: Settings, monkeypatch):
    monkeypatch.setenv("TWIN_EMBEDDING_QUERY_BACKEND", "torch")  # no ONNX export for a tiny run
    questions = settings.data_path / "eval" / "mara-ellison" / "questions.jsonl"
    questions.parent.mkdir(parents=True)
    url = "https://maraellison.example.com/articles/swapping-embedding-models-without-downtime"
    questions.write_text(json.dumps({"question": "How do I swap embedding models safely?", "source_url": url}) + "\n")
    command = "bench retrieval --questions title --skip-expansion --chunking 128:16 --candidates 50 --fusion dense"
    result = CliRunner().invoke(app, command.split())
    assert result.exit_code == 0, result.stderr
    assert "chunking 128:16" in result.stderr  # progress goes to stderr, JSON alone to stdout
    report = json.loads(result.stdout)
    demo = report["authors"]["mara-ellison"]
    assert demo["test_documents"] >= 1
    assert demo["questions"] == {"title": demo["test_passages"], "user_file": 1}
    assert report["questions"]["kinds"] == ["title"]
    # The defaults are always measured; the grid adds the other chunking and the dense-only fusion.
    assert [(r["variant"]["chunking"], r["variant"]["fusion"]) for r in report["grid"]] == [
        ("128:16", "rrf-10"),
        ("200:32", "rrf-10"),
        ("200:32", "dense"),
    ]
    default = report["grid"][1]
    assert default["variant"] == {k: v for k, v in report["default"].items() if k != "expansions"}
    assert report["grid"][0]["chunks"]["mara-ellison"] > default["chunks"]["mara-ellison"]  # smaller chunks
    title = default["results"]["title"]["all"]
    assert title["questions"] == demo["test_passages"]
    assert title["hit_at_10"] >= 0.5
    assert 0 < title["mrr"] <= 1
    assert 0 < title["context_recall"] <= 1
    assert default["results"]["user_file"]["all"]["hit_at_10"] == 1.0
    assert default["vs_default"]["title"]["mrr"]["delta"] == 0.0
    assert report["expansion"]["skipped"] is True
    assert report["rerank"]["skipped"] is True
    assert "TWIN_RERANKER_MODEL" in report["rerank"]["reason"]
    assert report["best"]["title"]["chunking"] in {"128:16", "200:32"}


def test_training_benchmark_on_cpu_prints_its_figures(settings: Settings, tmp_path, monkeypatch):
    from twin_platform_tests.tiny_model import build_tiny_chat_model

    monkeypatch.setenv("TWIN_TRAINING_BASE_MODEL", str(build_tiny_chat_model(tmp_path / "tiny")))
    result = CliRunner().invoke(app, ["bench", "training", "--sft-steps", "2", "--dpo-steps", "1"])  # cpu: default
    assert result.exit_code == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["sft"]["steps"] == 2
    assert report["dpo"]["steps"] == 1
    assert report["sft"]["tokens_per_second"] > 0
    assert report["sft"]["direct_seconds"] > 0
    assert report["sft"]["asset_seconds"] > 0
    assert report["goal"] == "asset overhead <= 0.10"


def test_training_benchmark_on_cuda_is_refused_without_a_gpu(settings: Settings):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here: the benchmark would run")
    result = CliRunner().invoke(app, ["bench", "training", "--device", "cuda"])
    assert result.exit_code == 2
    assert "--device cuda: no CUDA device is available here" in result.stderr
    assert "constraints-cuda.txt" in result.stderr


def test_the_cuda_comparison_runs_each_backend_in_a_fresh_process(tmp_path):
    """The harness of ``--device cuda`` with plain trl on a tiny model (no GPU here: peak memory is None)."""
    import dataclasses

    import torch
    from transformers import AutoTokenizer

    from twin_platform.benchmarks.training import compare_backends, sample_tokens, sft_throughput
    from twin_platform.training.options import StageOptions, TrainingOptions
    from twin_platform_tests.tiny_model import CORPUS, build_tiny_chat_model

    base = build_tiny_chat_model(tmp_path / "tiny")
    rows = [{"instruction": f"Say line {n}.", "answer": text} for n, text in enumerate(CORPUS[:12])]
    options = TrainingOptions(base_model=str(base), max_length=64, sft=StageOptions(max_steps=3, batch_size=2))
    tokens = sample_tokens(AutoTokenizer.from_pretrained(base), rows, options.max_length)
    assert 5 < tokens <= options.max_length
    figures = compare_backends(options, rows, tokens, tmp_path / "runs", warmup_steps=1, backends=("trl",))
    trl = figures["trl"]
    assert trl["trainer_backend"] == "transformers-cpu"
    assert trl["tokens_per_second"] == round(tokens * 3 * 2 / trl["train_seconds"], 1)
    assert trl["peak_memory_bytes"] is None
    assert trl["final_loss"] is not None
    assert (tmp_path / "runs" / "trl" / "adapter" / "adapter_config.json").is_file()
    if not torch.cuda.is_available():
        short = dataclasses.replace(options, sft=dataclasses.replace(options.sft, max_steps=1))
        with pytest.raises(RuntimeError, match="unsloth cannot run: no CUDA device"):
            sft_throughput("unsloth", short, rows, tmp_path / "unsloth", 0)
