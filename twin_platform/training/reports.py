"""What a person looks at after training: a loss curve (PNG), whether the loss went down, a model card."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any


def loss_curve(history: Sequence[Mapping[str, float]], path: Path, title: str) -> Path:
    """Training loss per step (and DPO reward margins when logged) as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    steps = [h["step"] for h in history if "loss" in h]
    losses = [h["loss"] for h in history if "loss" in h]
    figure, axis = plt.subplots(figsize=(6, 3.2), dpi=100)
    axis.plot(steps, losses, marker="o", markersize=3, label="train loss")
    margins = [(h["step"], h["rewards/margins"]) for h in history if "rewards/margins" in h]
    if margins:
        other = axis.twinx()
        other.plot([s for s, _ in margins], [m for _, m in margins], color="tab:green", label="reward margin")
        other.set_ylabel("reward margin")
        other.legend(loc="upper right")
    axis.set_xlabel("step")
    axis.set_ylabel("loss")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend(loc="upper left" if margins else "best")
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
    return path


def png_markdown(path: Path, alt: str) -> str:
    """Markdown that shows the PNG inline in the Dagster UI (a data URI; plots here are a few KB)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(path.read_bytes()).decode()})"


def loss_went_down(losses: Sequence[float]) -> tuple[bool, float, float]:
    """Mean of the last quarter of logged losses below the mean of the first quarter."""
    if len(losses) < 2:
        return False, float("nan"), float("nan")
    quarter = max(1, len(losses) // 4)
    first = sum(losses[:quarter]) / quarter
    last = sum(losses[-quarter:]) / quarter
    return last < first, first, last


def _markdown_table(rows: Mapping[str, Any], header: tuple[str, str] = ("metric", "value")) -> str:
    """Two columns of Markdown for the model card, a README file (Dagster metadata gets typed tables instead)."""
    lines = [f"| {header[0]} | {header[1]} |", "|---|---|"]
    for key, value in rows.items():
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    return "\n".join(lines)


def model_card(
    *,
    name: str,
    author: str,
    base_model: str,
    lineage: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    metrics: Mapping[str, Any],
    sample: str,
) -> str:
    """A Hugging Face model card (README.md with YAML front matter) recording where the twin came from."""
    lines = [
        "---",
        f"base_model: {base_model}",
        "library_name: transformers",
        "pipeline_tag: text-generation",
        "tags: [twin-platform, llm-twin, lora, sft, dpo]",
        "---",
        "",
        f"# {name}",
        "",
        f"An LLM twin of **{author}**: {base_model} fine-tuned with LoRA SFT on instructions back-translated "
        "from the author's own passages, then DPO preferring the author's words over the base model's, "
        "with both adapters merged into the weights. Built by twin_platform.",
        "",
        "## Lineage",
        "",
        _markdown_table(lineage, ("input", "version")),
        "",
        "## Hyperparameters",
        "",
        _markdown_table(hyperparameters, ("hyperparameter", "value")),
        "",
        "## Metrics",
        "",
        _markdown_table(metrics),
        "",
        "## Sample",
        "",
        "```",
        sample.strip() or "(empty)",
        "```",
        "",
    ]
    return "\n".join(lines)
