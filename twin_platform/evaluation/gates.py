"""The release gates: what a trained twin must show, against its base model and the author's current release,
before it may be served. Each gate reports its numbers, so a refusal says exactly what fell short."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import BaseModel


@dataclass(frozen=True)
class GateThresholds:
    """``TWIN_RELEASE_*`` settings."""

    perplexity_margin: float = 0.02  # the twin's held-out perplexity at most (1 - margin) x the base model's
    rag_tolerance: float = 0.05  # largest allowed drop in a RAG metric
    max_repeated_ngram_rate: float = 0.25  # share of an answer's 3-grams that repeat, mean over answers
    max_cut_at_limit_share: float = 0.5  # share of answers that hit the token limit


class GateResult(BaseModel):
    name: str
    passed: bool
    detail: str
    values: dict[str, float | None]


GATES = ("perplexity", "stylometry", "rag", "degeneration")


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def perplexity_gate(base: float | None, twin: float | None, margin: float) -> GateResult:
    values = {"base": base, "twin": twin, "limit": None if base is None else base * (1 - margin)}
    if base is None or twin is None:
        return GateResult(
            name="perplexity",
            passed=False,
            detail="held-out perplexity could not be computed for both models, so the twin cannot be shown better",
            values=values,
        )
    limit = base * (1 - margin)
    passed = twin <= limit
    return GateResult(
        name="perplexity",
        passed=passed,
        detail=f"held-out perplexity {_fmt(twin)} {'<=' if passed else '>'} {_fmt(limit)} "
        f"(base {_fmt(base)} x (1 - {margin}))",
        values=values,
    )


def stylometry_gate(base: float, twin: float) -> GateResult:
    passed = twin < base
    return GateResult(
        name="stylometry",
        passed=passed,
        detail=f"stylometric distance to the author {_fmt(twin)} {'<' if passed else '>='} "
        f"the base model's {_fmt(base)}",
        values={"base": base, "twin": twin},
    )


def rag_gate(current: Mapping[str, float], previous: Mapping[str, float] | None, tolerance: float) -> GateResult:
    """Against the author's current release when there is one (every metric it has); otherwise the twin's
    answer groundedness against the base model's (``current["base_groundedness"]``)."""
    if previous:
        drops = {name: previous[name] - current[name] for name in previous if name in current}
        worst = max(drops, key=lambda name: drops[name]) if drops else ""
        passed = not drops or drops[worst] <= tolerance
        detail = (
            f"no RAG metric dropped by more than {tolerance} against the current release"
            if passed
            else f"{worst} dropped from {_fmt(previous[worst])} to {_fmt(current[worst])} "
            f"(more than {tolerance}) against the current release"
        )
        values = {
            **{f"current_{k}": v for k, v in current.items()},
            **{f"released_{k}": v for k, v in previous.items()},
        }
        return GateResult(name="rag", passed=passed, detail=detail, values=values)
    twin, base = current["groundedness"], current["base_groundedness"]
    passed = twin >= base - tolerance
    return GateResult(
        name="rag",
        passed=passed,
        detail=f"no release to compare with; answer groundedness {_fmt(twin)} against the base model's "
        f"{_fmt(base)} (tolerance {tolerance})",
        values=dict(current),
    )


def degeneration_gate(repeated_ngram_rate: float, cut_at_limit_share: float, thresholds: GateThresholds) -> GateResult:
    problems = []
    if repeated_ngram_rate > thresholds.max_repeated_ngram_rate:
        problems.append(f"repeated 3-gram rate {_fmt(repeated_ngram_rate)} > {thresholds.max_repeated_ngram_rate}")
    if cut_at_limit_share > thresholds.max_cut_at_limit_share:
        problems.append(
            f"answers cut at the token limit {_fmt(cut_at_limit_share)} > {thresholds.max_cut_at_limit_share}"
        )
    return GateResult(
        name="degeneration",
        passed=not problems,
        detail="; ".join(problems) or "answers do not loop and mostly end on their own",
        values={
            "repeated_ngram_rate": repeated_ngram_rate,
            "cut_at_limit_share": cut_at_limit_share,
            "max_repeated_ngram_rate": thresholds.max_repeated_ngram_rate,
            "max_cut_at_limit_share": thresholds.max_cut_at_limit_share,
        },
    )
