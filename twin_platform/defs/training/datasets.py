"""The training datasets, per author: instruction back-translation and preference pairs, each with blocking
checks so that nothing trains on bad data."""

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import dagster as dg

from twin_platform.adapters.artifacts import ArtifactRef
from twin_platform.adapters.cache import load_cache, save_cache
from twin_platform.adapters.hub import push_folder
from twin_platform.adapters.llm.factory import base_model, dataset_generator, local_batch_generator
from twin_platform.adapters.llm.local import LocalClient
from twin_platform.datasets.backtranslation import ANSWER_PROMPT_VERSION, INSTRUCTION_PROMPT_VERSION
from twin_platform.datasets.formats import book_json, save_dataset
from twin_platform.datasets.pipeline import Sample, build_instructions, build_preferences, health, version
from twin_platform.defs.metadata import Cell, table
from twin_platform.defs.resources import PlatformSettings, Staged, TwinResource, staging_dir
from twin_platform.defs.training.common import (
    DATASET_CODE_VERSION,
    STORED,
    cache_path,
    curation_rules,
    generator_id,
    model_id,
    progress,
    rows,
)
from twin_platform.domain.datasets import CurationReport
from twin_platform.domain.llm import GenerationParams
from twin_platform.settings import Settings
from twin_platform.training.trainers import write_json

# The columns of each dataset's preview table in the UI (ids left out); text cut to PREVIEW_CHARS.
INSTRUCTION_PREVIEW = {
    "instruction": "string",
    "answer": "string",
    "category": "string",
    "split": "string",
    "repaired": "bool",
}
PREFERENCE_PREVIEW = {
    "instruction": "string",
    "chosen": "string",
    "rejected": "string",
    "category": "string",
    "split": "string",
}
PREVIEW_CHARS = 120
MANIFEST = "manifest.json"
CORPUS_KEY = "corpus"  # cleaned document id -> source key, as the instruction dataset was built


def dataset_checks(asset: str) -> list[dg.AssetCheckSpec]:
    return [
        # Blocking: a failed guard stops the run before anything trains on bad data.
        dg.AssetCheckSpec(
            "minimum_size", asset=asset, blocking=True, description="Train and test splits at least the set sizes."
        ),
        dg.AssetCheckSpec(
            "no_empty_fields",
            asset=asset,
            blocking=True,
            description="No sample has an empty instruction or answer (chosen and rejected, for preferences).",
        ),
        dg.AssetCheckSpec(
            "no_train_test_overlap", asset=asset, blocking=True, description="No document or answer on both sides."
        ),
    ]


def _publish_dataset(
    context: dg.AssetExecutionContext,
    settings: Settings,
    samples: Sequence[Sample],
    report: CurationReport,
    lineage: dict[str, Any],
    preview_columns: dict[str, str],
    corpus: dict[str, str] | None = None,
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    folder = staging_dir(settings, context.asset_key.path[-1])
    sizes = save_dataset(samples, folder / "hf")
    book = book_json(samples, settings.dataset_test_fraction)
    (folder / "book.json").write_text(json.dumps(book, indent=1))
    dataset_version = version(samples)
    manifest = {"version": dataset_version, **lineage, "kept": sizes, **report.__dict__}
    if corpus is not None:
        manifest[CORPUS_KEY] = corpus  # what the twin's staleness is measured against; too long for metadata
    write_json(folder / MANIFEST, manifest)
    hub = push_folder(settings, folder, f"{context.asset_key.path[-1]}-{context.partition_key}", repo_type="dataset")
    check = health(samples)
    yield dg.Output(
        Staged(folder, dataset_version),
        data_version=dg.DataVersion(dataset_version),
        metadata={
            "train": sizes["train"],
            "test": sizes["test"],
            "documents": len({s.document_id for s in samples}),
            "candidates": report.candidates,
            "dropped": dg.MetadataValue.json(report.dropped),
            "repaired_json": sum(1 for s in samples if getattr(s, "repaired", False)),
            "lineage": dg.MetadataValue.json(lineage),
            "preview": table(preview_columns, (_preview_row(s) for s in samples[:5])),
            **({"hub": dg.MetadataValue.url(hub)} if hub else {}),
        },
    )
    yield dg.AssetCheckResult(
        check_name="minimum_size",
        passed=check.train >= settings.dataset_min_train_samples and check.test >= settings.dataset_min_test_samples,
        metadata={
            "train": check.train,
            "test": check.test,
            "min_train": settings.dataset_min_train_samples,
            "min_test": settings.dataset_min_test_samples,
        },
    )
    yield dg.AssetCheckResult(
        check_name="no_empty_fields", passed=check.empty_fields == 0, metadata={"empty_fields": check.empty_fields}
    )
    yield dg.AssetCheckResult(
        check_name="no_train_test_overlap",
        passed=check.overlap == 0,
        metadata={"shared_documents": check.shared_documents, "shared_texts": check.shared_texts},
    )


def _preview_row(sample: Sample) -> dict[str, Cell]:
    return {k: v[:PREVIEW_CHARS] if isinstance(v, str) else v for k, v in sample.as_row().items()}


@dg.asset(
    **STORED,
    deps=["cleaned_documents"],
    kinds={"python", "huggingface"},
    code_version=DATASET_CODE_VERSION,
    check_specs=dataset_checks("instruction_dataset"),
    description="Instruction back-translation: each answer is a passage the author wrote, each instruction "
    "is written by the configured LLM (versioned prompt, JSON validated or repaired or dropped). Rule "
    "filters, exact and near-duplicate removal, a train/test split by document and decontamination. "
    "Stored as Hugging Face datasets (load_from_disk) plus the book's JSON format.",
)
def instruction_dataset(
    context: dg.AssetExecutionContext, twin: TwinResource
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    from transformers import AutoTokenizer

    runtime = twin.runtime
    settings = runtime.settings
    author = context.partition_key
    documents = runtime.features.cleaned_documents(author)
    if not documents:
        raise dg.Failure(f"author {author!r} has no cleaned documents: materialize cleaned_documents first")
    base = base_model(settings)
    tokenizer = AutoTokenizer.from_pretrained(base)

    def count(texts: Any) -> list[int]:
        return [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]

    generator = generator_id(settings, base)
    cache_file = cache_path(settings, "instructions", author, INSTRUCTION_PROMPT_VERSION, generator)
    cache = load_cache(cache_file)
    rules = curation_rules(settings)
    params = GenerationParams(max_tokens=settings.dataset_instruction_max_tokens, temperature=0.7, top_p=0.9)
    generate = dataset_generator(settings, base, progress(context, "instructions written"))
    try:
        samples, report = build_instructions(
            documents, count, generate, params, rules, max_passages=settings.dataset_max_passages, cache=cache
        )
    finally:
        save_cache(cache_file, cache)  # what was generated before a failure is kept
    lineage = {
        "author": author,
        "documents": len(documents),
        "generator": generator,
        "prompt_version": INSTRUCTION_PROMPT_VERSION,
        "code_version": DATASET_CODE_VERSION,
        "rules": rules.__dict__,
    }
    corpus = {d.id: d.source_key for d in documents}
    yield from _publish_dataset(context, settings, samples, report, lineage, INSTRUCTION_PREVIEW, corpus)


@dg.asset(
    **STORED,
    kinds={"pytorch", "huggingface"},
    code_version=DATASET_CODE_VERSION,
    check_specs=dataset_checks("preference_dataset"),
    description="Preference pairs for DPO: for each instruction, chosen = the author's passage, rejected = "
    "the base model's own answer (the contrast in voice the twin should learn). Too-short or too-similar "
    "pairs are dropped; the split follows the documents, as in the instruction dataset.",
)
def preference_dataset(
    context: dg.AssetExecutionContext, platform: PlatformSettings, instruction_dataset: ArtifactRef
) -> Iterator[dg.Output[Staged] | dg.AssetCheckResult]:
    settings = platform.get()
    author = context.partition_key
    base = base_model(settings)
    instructions = rows(instruction_dataset, "train") + rows(instruction_dataset, "test")
    cache_file = cache_path(settings, "base-answers", author, ANSWER_PROMPT_VERSION, model_id(base))
    cache = load_cache(cache_file)
    params = GenerationParams(max_tokens=settings.dataset_answer_max_tokens, temperature=0.7, top_p=0.9)
    generate = local_batch_generator(
        LocalClient(Path(base)), settings.dataset_generation_batch_size, progress(context, "base-model answers")
    )
    try:
        pairs, report = build_preferences(instructions, generate, params, curation_rules(settings), cache=cache)
    finally:
        save_cache(cache_file, cache)
    lineage = {
        "author": author,
        "instruction_dataset": instruction_dataset.version,
        "rejected_by": model_id(base),
        "prompt_version": ANSWER_PROMPT_VERSION,
        "code_version": DATASET_CODE_VERSION,
    }
    yield from _publish_dataset(context, settings, pairs, report, lineage, PREFERENCE_PREVIEW)
