"""Training benchmarks. Each prints one JSON document.

``--device cpu`` (the default): SFT and DPO tokens/s for the base model on this machine, and what the Dagster
asset costs over calling trl directly on the same data (goal: within 10%). The data are the demo author's
passages with fixed instructions (no generation: this measures training). The direct run is a plain trl
script: load, LoRA, train, save. The asset run is a real ``dg.materialize`` of ``sft_adapter`` /
``dpo_adapter`` on an ephemeral instance, reading its inputs through the artifact IO manager and publishing
its adapter, loss curve and metadata.

``--device cuda``: the platform's own SFT (``twin_platform.training.trainers.train_sft``) on the same data
and the same settings twice, with unsloth (the ``gpu`` extra) and with plain trl + peft, each in a fresh
process (importing unsloth patches transformers and trl for the whole process), each after a few warm-up
steps; tokens/s and peak GPU memory (``torch.cuda.max_memory_allocated``) of both, and the speed-up
(goal: unsloth at least 1.5x plain trl).

Everything is written under a scratch data dir that is removed at the end.

    twin bench training [--device cpu|cuda] [--sft-steps N] [--dpo-steps 8] [--warmup-steps 5]
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import multiprocessing
import os
import platform
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar
from unittest import mock

from twin_platform.adapters.llm.factory import base_model
from twin_platform.datasets.curation import passages
from twin_platform.datasets.formats import save_dataset
from twin_platform.domain.datasets import InstructionSample, PreferenceSample
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.features import CleanedDocument
from twin_platform.features.cleaning import clean_document
from twin_platform.settings import Settings
from twin_platform.training.options import TrainingOptions
from twin_platform.training.trainers import dpo_rows, sft_rows

DEMO_CORPUS = Path(__file__).resolve().parents[1] / "demo" / "corpus"
AUTHOR = "bench"
CATEGORIES = {"articles": Category.ARTICLE, "posts": Category.POST, "repositories": Category.REPOSITORY}
GPU_EXTRA = 'pip install -c constraints-cuda.txt ".[gpu]"'
BACKENDS = ("trl", "unsloth")  # plain trl + peft, then the same training through unsloth
SPEEDUP_GOAL = 1.5
T = TypeVar("T")
REJECTED = (
    "There are many factors to consider here. In general, it depends on your use case, your data and your "
    "team. It is important to evaluate the options carefully and choose the approach that best fits your needs."
)


def demo_samples(tokenizer: Any, max_tokens: int) -> tuple[list[InstructionSample], list[PreferenceSample]]:
    import frontmatter

    documents = []
    for n, path in enumerate(sorted(DEMO_CORPUS.rglob("*.md"))):
        post = frontmatter.load(path)
        category = CATEGORIES[path.parent.name]
        documents.append(
            CleanedDocument(
                id=f"doc-{n}",
                author_id=AUTHOR,
                category=category,
                platform=Platform.LOCAL,
                source_url=str(path),
                title=str(post.get("title", path.stem)),
                published_at=None,
                language="en",
                text=clean_document(category, post.content),
                raw_version=1,
                source_key=path.name,
            )
        )

    def count(texts: Any) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    found = passages(documents, count, max_tokens)
    instructions = [
        InstructionSample(
            id=p.id,
            instruction=f"Write part {p.index + 1} of your piece '{p.title}'.",
            answer=p.text,
            document_id=p.document_id,
            category=p.category,
        )
        for p in found
    ]
    preferences = [
        PreferenceSample(s.id, s.instruction, s.answer, REJECTED, s.document_id, s.category) for s in instructions
    ]
    return instructions, preferences


def direct_trl(
    stage: str, options: TrainingOptions, rows: list[dict[str, Any]], out: Path, sft_adapter: Path | None = None
) -> float:
    """What a plain trl script does, timed from loading the model to the saved adapter."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer, set_seed
    from transformers.trainer_callback import PrinterCallback
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    started = time.perf_counter()
    set_seed(options.seed)
    model: Any = AutoModelForCausalLM.from_pretrained(options.base_model, dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(options.base_model)
    if sft_adapter is not None:
        model = PeftModel.from_pretrained(model, str(sft_adapter)).merge_and_unload()
    lora = LoraConfig(
        r=options.lora.rank,
        lora_alpha=options.lora.alpha,
        lora_dropout=options.lora.dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    stage_options = options.sft if stage == "sft" else options.dpo
    common: dict[str, Any] = {
        "output_dir": str(out / "checkpoints"),
        "per_device_train_batch_size": stage_options.batch_size,
        "gradient_accumulation_steps": stage_options.grad_accum,
        "learning_rate": stage_options.learning_rate,
        "warmup_steps": stage_options.warmup_ratio,
        "max_steps": stage_options.max_steps,
        "data_seed": options.seed,  # the same batches (and so the same padding) as the asset
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": options.seed,
        "max_length": options.max_length,
        "bf16": False,
        "use_cpu": True,
        "disable_tqdm": True,
    }
    trainer: Any
    if stage == "sft":
        trainer = SFTTrainer(
            model=model,
            args=SFTConfig(**common),
            train_dataset=Dataset.from_list(sft_rows(rows)),
            processing_class=tokenizer,
            peft_config=lora,
        )
    else:
        trainer = DPOTrainer(
            model=model,
            args=DPOConfig(**common, beta=options.dpo.beta),
            train_dataset=Dataset.from_list(dpo_rows(rows)),
            processing_class=tokenizer,
            peft_config=lora,
        )
    trainer.remove_callback(PrinterCallback)  # stdout carries the benchmark's JSON
    trainer.train()
    trainer.save_model(str(out / "adapter"))
    return time.perf_counter() - started


def run(sft_steps: int = 12, dpo_steps: int = 8) -> dict[str, Any]:
    import dagster as dg
    import torch
    from transformers import AutoTokenizer

    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
    from twin_platform.defs.resources import ArtifactIOManager, ArtifactStoreResource, PlatformSettings, TwinResource
    from twin_platform.defs.training.adapters import dpo_adapter, sft_adapter
    from twin_platform.defs.training.common import training_options
    from twin_platform.defs.training.datasets import instruction_dataset, preference_dataset

    base = base_model(Settings())  # the converted SmolLM2 is reused from the main data dir
    scratch = Path(tempfile.mkdtemp(prefix="twin-bench-training-"))
    # The assets read TWIN_* settings, as in production: give both sides the same configuration.
    overrides = {
        "TWIN_TRAINING_BASE_MODEL": base,
        "TWIN_TRAINING_SFT_MAX_STEPS": str(sft_steps),
        "TWIN_TRAINING_DPO_MAX_STEPS": str(dpo_steps),
    }
    saved = {key: os.environ.get(key) for key in overrides}
    os.environ.update(overrides)
    try:
        settings = Settings(data_dir=scratch / "data")
        options = training_options(settings, base)
        tokenizer = AutoTokenizer.from_pretrained(base)
        instructions, preferences = demo_samples(tokenizer, settings.dataset_passage_tokens)
        storage = ArtifactStoreResource(data_dir=str(settings.data_path))
        store = storage.store()
        for key, samples in (("instruction_dataset", instructions), ("preference_dataset", preferences)):
            folder = settings.data_path / "staging" / key
            save_dataset(samples, folder / "hf")
            store.publish(folder, f"{key}/{AUTHOR}")
        resources = {
            "twin": TwinResource(data_dir=str(settings.data_path)),  # needed by the graph, not by these steps
            "platform": PlatformSettings(data_dir=str(settings.data_path)),
            "artifact_store": storage,
            "artifacts": ArtifactIOManager(storage=storage),
        }
        instance = dg.DagsterInstance.ephemeral()
        instance.add_dynamic_partitions(AUTHORS_PARTITION, [AUTHOR])

        graph = [instruction_dataset, preference_dataset, sft_adapter, dpo_adapter]

        def asset_run(asset: Any) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            result = dg.materialize(  # a failed blocking check (a short run) still measures the run
                graph,
                selection=[asset],
                resources=resources,
                partition_key=AUTHOR,
                instance=instance,
                raise_on_error=False,
            )
            elapsed = time.perf_counter() - started
            [materialization] = result.asset_materializations_for_node(asset.op.name)
            return elapsed, {k: v.value for k, v in materialization.metadata.items()}

        train_rows = [s.as_row() for s in instructions]
        pair_rows = [s.as_row() for s in preferences]
        warmup = dataclasses.replace(options, sft=dataclasses.replace(options.sft, max_steps=2))
        direct_trl("sft", warmup, train_rows[:8], scratch / "warmup")  # page cache, lazy imports
        sft_direct = direct_trl("sft", options, train_rows, scratch / "direct-sft")
        sft_asset, sft_meta = asset_run(sft_adapter)
        sft_ref = store.latest(f"sft_adapter/{AUTHOR}")
        dpo_direct = direct_trl("dpo", options, pair_rows, scratch / "direct-dpo", sft_adapter=sft_ref.path)
        dpo_asset, dpo_meta = asset_run(dpo_adapter)
        return {
            "machine": {
                "cpus": torch.get_num_threads(),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "cuda": torch.cuda.is_available(),
            },
            "model": Path(base).name if Path(base).exists() else base,
            "samples": {
                "sft": len(train_rows),
                "dpo": len(pair_rows),
                "passage_tokens": settings.dataset_passage_tokens,
            },
            "sft": {
                "steps": sft_steps,
                "batch_size": options.sft.batch_size,
                "tokens_per_second": sft_meta["tokens_per_second"],
                "direct_seconds": round(sft_direct, 2),
                "asset_seconds": round(sft_asset, 2),
                "asset_overhead": round(sft_asset / sft_direct - 1, 4),
                "final_loss": sft_meta["final_loss"],
            },
            "dpo": {
                "steps": dpo_steps,
                "batch_size": options.dpo.batch_size,
                "tokens_per_second": dpo_meta["tokens_per_second"],
                "direct_seconds": round(dpo_direct, 2),
                "asset_seconds": round(dpo_asset, 2),
                "asset_overhead": round(dpo_asset / dpo_direct - 1, 4),
                "reward_margin": dpo_meta["reward_margin"],
            },
            "goal": "asset overhead <= 0.10",
            "goal_met": sft_asset / sft_direct - 1 <= 0.10 and dpo_asset / dpo_direct - 1 <= 0.10,
        }
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        shutil.rmtree(scratch, ignore_errors=True)


# --- --device cuda: unsloth against plain trl -----------------------------------------------------------------


def cuda_unavailable_reason() -> str | None:
    """Why the CUDA benchmark cannot run here, or None when it can."""
    import torch

    if not torch.cuda.is_available():
        built_for = f"CUDA {torch.version.cuda}" if torch.version.cuda else "CPU only"
        return (
            f"no CUDA device is available here (torch {torch.__version__}, built for {built_for}); run it on a "
            f"machine with an NVIDIA GPU, installed with `{GPU_EXTRA}`"
        )
    if importlib.util.find_spec("unsloth") is None:
        return f"unsloth is not installed (the gpu extra): `{GPU_EXTRA}`"
    return None


def in_fresh_process(function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a new interpreter (spawned, so nothing imported here leaks into it)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def sft_throughput(
    backend: str, options: TrainingOptions, rows: list[dict[str, Any]], out: Path, warmup_steps: int
) -> dict[str, Any]:
    """One backend's SFT through the platform's trainer: tokens/s and peak GPU memory of ``options.sft.max_steps``
    steps after ``warmup_steps`` (kernels compiled, caches warm). Run it in a fresh process: unsloth must be
    imported before transformers and trl, and once imported it patches them for the whole process."""
    if backend == "unsloth":
        reason = cuda_unavailable_reason()
        if reason:
            raise RuntimeError(f"unsloth cannot run: {reason}")
        import unsloth  # noqa: F401  (first, as unsloth requires)
    import torch

    from twin_platform.training import trainers

    # Plain trl: the trainer's path on a CUDA machine without the gpu extra.
    plain = mock.patch.object(trainers, "use_unsloth", return_value=False)
    with plain if backend == "trl" else contextlib.nullcontext():
        if warmup_steps:
            warmup = dataclasses.replace(options, sft=dataclasses.replace(options.sft, max_steps=warmup_steps))
            trainers.train_sft(
                warmup, rows, [], adapter_dir=out / "warmup" / "adapter", checkpoint_dir=out / "warmup" / "checkpoints"
            )
        cuda = torch.cuda.is_available()
        if cuda:
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
        result = trainers.train_sft(options, rows, [], adapter_dir=out / "adapter", checkpoint_dir=out / "checkpoints")
        peak = int(torch.cuda.max_memory_allocated()) if cuda else None
    return {
        "trainer_backend": result.backend,
        "train_seconds": round(result.metrics["train_runtime"], 3),
        "trl_counted_tokens": result.metrics.get("train_tokens", 0.0),
        "peak_memory_bytes": peak,
        "peak_memory_gib": round(peak / 2**30, 3) if peak is not None else None,
        "final_loss": result.losses[-1] if result.losses else None,
    }


def sample_tokens(tokenizer: Any, rows: list[dict[str, Any]], max_length: int) -> float:
    """Mean tokens per SFT sample (chat template applied, truncated as training truncates)."""
    from twin_platform.training.trainers import sft_rows

    lengths = [
        min(max_length, len(tokenizer.apply_chat_template([*row["prompt"], *row["completion"]], return_dict=False)))
        for row in sft_rows(rows)
    ]
    return sum(lengths) / len(lengths)


def compare_backends(
    options: TrainingOptions,
    rows: list[dict[str, Any]],
    tokens_per_sample: float,
    scratch: Path,
    warmup_steps: int,
    backends: tuple[str, ...] = BACKENDS,
) -> dict[str, dict[str, Any]]:
    """Each backend in its own fresh process, on the same rows with the same options. Tokens are counted the
    same way for both (mean sample length x samples seen), so the speed-up is the ratio of training times."""
    stage = options.sft
    tokens = tokens_per_sample * stage.max_steps * stage.batch_size * stage.grad_accum
    figures = {}
    for backend in backends:
        run = in_fresh_process(sft_throughput, backend, options, rows, scratch / backend, warmup_steps)
        run["tokens_per_second"] = round(tokens / run["train_seconds"], 1) if run["train_seconds"] else 0.0
        figures[backend] = run
    return figures


def run_cuda(sft_steps: int = 60, warmup_steps: int = 5) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    from twin_platform.defs.training.common import training_options

    reason = cuda_unavailable_reason()
    if reason:
        raise RuntimeError(reason)
    base = base_model(Settings())  # the converted SmolLM2 is reused from the main data dir
    scratch = Path(tempfile.mkdtemp(prefix="twin-bench-training-cuda-"))
    try:
        settings = Settings(data_dir=scratch / "data")
        options = training_options(settings, base)
        # No checkpoint inside the measured steps: saving is not training.
        options = dataclasses.replace(
            options, sft=dataclasses.replace(options.sft, max_steps=sft_steps, save_steps=sft_steps + 1)
        )
        tokenizer = AutoTokenizer.from_pretrained(base)
        instructions, _ = demo_samples(tokenizer, settings.dataset_passage_tokens)
        rows = [s.as_row() for s in instructions]
        figures = compare_backends(
            options, rows, sample_tokens(tokenizer, rows, options.max_length), scratch, warmup_steps
        )
        trl, unsloth = figures["trl"], figures["unsloth"]
        speedup = unsloth["tokens_per_second"] / trl["tokens_per_second"] if trl["tokens_per_second"] else 0.0
        return {
            "machine": {
                "gpu": torch.cuda.get_device_name(0),
                "python": platform.python_version(),
                "torch": torch.__version__,
                "cuda": torch.version.cuda,
                "trl": version("trl"),
                "unsloth": version("unsloth"),
            },
            "model": Path(base).name if Path(base).exists() else base,
            "samples": len(rows),
            "sft": {
                "steps": sft_steps,
                "warmup_steps": warmup_steps,
                "batch_size": options.sft.batch_size,
                "max_length": options.max_length,
                "lora_rank": options.lora.rank,
                "load_in_4bit": options.load_in_4bit,
            },
            "trl": trl,
            "unsloth": unsloth,
            "speedup": round(speedup, 3),
            "peak_memory_ratio": round(unsloth["peak_memory_bytes"] / trl["peak_memory_bytes"], 3),
            "goal": f"unsloth tokens/s >= {SPEEDUP_GOAL}x plain trl",
            "goal_met": speedup >= SPEEDUP_GOAL,
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
