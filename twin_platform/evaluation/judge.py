"""LLM-as-a-judge with the LLM Engineer's Handbook rubric: accuracy and style, each scored 1-3.

The rubric, its scales and examples are the book's (PacktPublishing/LLM-Engineers-Handbook,
``llm_engineering/model/evaluation/evaluate.py``); the prompt is versioned (``JUDGE_PROMPT_VERSION``) so
scores from different wordings are never mixed. The judge is any :class:`LLMClient`. Its reply must be the
book's JSON object; fenced JSON or prose around the object is repaired, scores outside 1-3 are refused,
and a reply that cannot be used is counted under its failure kind, never crashed on. The book samples the
judge at temperature 0.9; here it runs at 0 so a re-run gives the same scores.

A judge needs to be capable: the twin's own 135M model is not, and a model grading its own answers
favours them (self-preference bias, Panickssery et al. 2024, "LLM Evaluators Recognize and Favor Their
Own Generations"). :func:`no_judge_reason` says when no judge should run and why.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, Field, ValidationError, field_validator

from twin_platform.domain.llm import GenerationParams, LLMClient, LLMError, Message
from twin_platform.evaluation.models import JudgeFailure, JudgeSummary, JudgeVerdict

JUDGE_PROMPT_VERSION = "judge-v1"

JUDGE_SYSTEM = (
    "You are a helpful assistant who evaluates answers based on accuracy and style. Provide your response in "
    "JSON format with a short analysis and score for each criterion."
)
JUDGE_PROMPT = """You are an expert judge. Please evaluate the quality of a given answer to an instruction based \
on two criteria:
1. Accuracy: How factually correct is the information presented in the answer? You are a technical expert in \
this topic.
2. Style: Is the tone and writing style appropriate for a blog post or social media content? It should use \
simple but technical words and avoid formal or academic language.

Accuracy scale:
1 (Poor): Contains factual errors or misleading information
2 (Good): Mostly accurate with minor errors or omissions
3 (Excellent): Highly accurate and comprehensive

Style scale:
1 (Poor): Too formal, uses some overly complex words
2 (Good): Good balance of technical content and accessibility, but still uses formal words and expressions
3 (Excellent): Perfectly accessible language for blog/social media, uses simple but precise technical terms \
when necessary

Example of bad style: The Llama2 7B model constitutes a noteworthy progression in the field of artificial \
intelligence, serving as the successor to its predecessor, the original Llama architecture.
Example of excellent style: Llama2 7B outperforms the original Llama model across multiple benchmarks.

Instruction: {instruction}

Answer: {answer}

Provide your evaluation in JSON format with the following structure:
{{
    "accuracy": {{
        "analysis": "...",
        "score": 0
    }},
    "style": {{
        "analysis": "...",
        "score": 0
    }}
}}
"""

_CRITERION_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"analysis": {"type": "string"}, "score": {"type": "integer", "minimum": 1, "maximum": 3}},
    "required": ["analysis", "score"],
}
# Sent as the reply's JSON schema where the backend constrains output (TGI grammars, OpenAI structured
# output); written out by hand because some grammar engines do not follow pydantic's $ref definitions.
JUDGE_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {"accuracy": _CRITERION_SCHEMA, "style": _CRITERION_SCHEMA},
    "required": ["accuracy", "style"],
}
JUDGE_PARAMS = GenerationParams(max_tokens=1000, temperature=0.0, json_schema=JUDGE_SCHEMA)  # the book's 1000

_OUT_OF_RANGE = {"greater_than_equal", "less_than_equal"}


class CriterionScore(BaseModel):
    analysis: str = ""
    score: int = Field(ge=1, le=3)

    @field_validator("score", mode="before")
    @classmethod
    def _no_booleans(cls, value: Any) -> Any:
        if isinstance(value, bool):  # pydantic would read true as 1
            raise ValueError("a score is a number, not a boolean")
        return value


class JudgeReply(BaseModel):
    accuracy: CriterionScore
    style: CriterionScore


class JudgeReplyError(ValueError):
    """A judge reply that cannot be used; ``kind`` is how it failed."""

    def __init__(self, kind: JudgeFailure, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def json_objects(raw: str) -> Iterator[dict[str, Any]]:
    """Every JSON object in ``raw``, outermost first: the whole reply, or one inside code fences or prose."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", raw):
        try:
            value, _ = decoder.raw_decode(raw, match.start())
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict):
            yield value


def parse_judge_reply(raw: str) -> JudgeReply:
    """The rubric scores in a judge's reply; :class:`JudgeReplyError` says why there are none."""
    first_error: ValidationError | None = None
    for candidate in json_objects(raw):
        try:
            return JudgeReply.model_validate(candidate)
        except ValidationError as exc:
            first_error = first_error or exc
    if first_error is None:
        raise JudgeReplyError("unparseable", f"no JSON object in the reply: {raw[:200]!r}")
    kinds = {e["type"] for e in first_error.errors()}
    kind: JudgeFailure = "out_of_range" if kinds <= _OUT_OF_RANGE else "invalid"
    raise JudgeReplyError(kind, str(first_error))


def judge_messages(instruction: str, answer: str) -> list[Message]:
    return [
        Message("system", JUDGE_SYSTEM),
        Message("user", JUDGE_PROMPT.format(instruction=instruction, answer=answer)),
    ]


def judge_answers(
    judge: LLMClient, sample_ids: Sequence[str], instructions: Sequence[str], answers: Sequence[str]
) -> JudgeSummary:
    """Score each answer to its instruction with the rubric; means over the answers the judge scored.

    Every failure (a reply without JSON, out-of-range or malformed scores, a failed call) is a verdict
    without scores, counted in ``failures``: a summary with ``judged`` well below ``samples`` says the judge
    is not fit for the job, which is itself a finding.
    """
    verdicts: list[JudgeVerdict] = []
    for sample_id, instruction, answer in zip(sample_ids, instructions, answers, strict=True):
        try:
            reply = parse_judge_reply(judge.generate(judge_messages(instruction, answer), JUDGE_PARAMS).text)
        except JudgeReplyError as exc:
            verdicts.append(JudgeVerdict(sample_id=sample_id, failure=exc.kind, detail=str(exc)))
            continue
        except LLMError as exc:
            verdicts.append(JudgeVerdict(sample_id=sample_id, failure="error", detail=str(exc)))
            continue
        verdicts.append(
            JudgeVerdict(
                sample_id=sample_id,
                accuracy=reply.accuracy.score,
                style=reply.style.score,
                accuracy_analysis=reply.accuracy.analysis,
                style_analysis=reply.style.analysis,
            )
        )
    scored = [v for v in verdicts if v.failure is None]
    return JudgeSummary(
        prompt_version=JUDGE_PROMPT_VERSION,
        judge_model=judge.model_id,
        samples=len(verdicts),
        judged=len(scored),
        failures=dict(Counter(v.failure for v in verdicts if v.failure is not None)),
        accuracy_mean=sum(v.accuracy or 0 for v in scored) / len(scored) if scored else None,
        style_mean=sum(v.style or 0 for v in scored) / len(scored) if scored else None,
        verdicts=verdicts,
    )


def no_judge_reason(
    judge_backend: str | None,
    *,
    judge_model: str | None = None,
    evaluated_models: Sequence[str] = (),
    setting: str = "TWIN_JUDGE_BACKEND",
) -> str | None:
    """Why no judge should run, in words for a report; ``None`` when the configured judge may run.

    No judge unless one is configured (``setting`` names the configuration to mention), and never one of
    the models under evaluation.
    """
    if not judge_backend:
        return f"no judge configured ({setting} unset); a 135M local model is not a capable judge"
    if judge_model is not None and judge_model in evaluated_models:
        return (
            f"the judge {judge_model} is one of the evaluated models; a model grading its own answers favours "
            "them (self-preference bias)"
        )
    return None
