"""Instruction back-translation: an LLM writes the instruction, the author's passage is the answer.

The book asks a large model to write both sides; a twin should learn the author's voice, so here the
answer is always the author's own text and the model only guesses what was asked. The prompt is
versioned (it is part of the dataset's lineage); the model's JSON is validated, repaired when the
intent is clear (code fences, prose around the object, single quotes, a bare question) or dropped.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, MutableMapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from twin_platform.domain.datasets import CurationReport, InstructionSample, Passage, PreferenceSample, text_hash
from twin_platform.domain.llm import Generation, GenerationParams, Message

INSTRUCTION_PROMPT_VERSION = "backtranslate-v1"
ANSWER_PROMPT_VERSION = "base-answer-v1"

INSTRUCTION_SYSTEM = (
    "You read a passage and write the instruction a reader gave to get that passage as the answer. "
    'Reply with JSON only: {"instruction": "..."}'
)
# Few-shot turns: small local models follow a demonstrated format far better than a described one.
INSTRUCTION_EXAMPLES = (
    (
        "We kept the embeddings in Postgres. The filters live in the same table, so a query that needs "
        "the author, the date and the nearest vectors is one SQL statement and one index scan.",
        '{"instruction": "Why keep embeddings in Postgres next to the filter columns?"}',
    ),
    (
        "Write the rollback before the migration. If you cannot say how to undo a change in one "
        "sentence, you do not understand the change well enough to ship it.",
        '{"instruction": "Give one rule for shipping database migrations safely."}',
    ),
)
INSTRUCTION_USER = "Passage:\n{passage}"
_EXAMPLE_INSTRUCTIONS = {json.loads(reply)["instruction"] for _, reply in INSTRUCTION_EXAMPLES}
ANSWER_SYSTEM = "You are a helpful assistant. Answer in one or two short paragraphs."

Generate = Callable[[Sequence[Sequence[Message]], GenerationParams], list[Generation]]

_FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)
_OBJECT = re.compile(r"\{.*?\}", re.DOTALL)
_FIELD = re.compile(r"instruction[\"']?\s*[:=]\s*[\"'](.*?)(?:[\"']\s*[,}\]]|$)", re.IGNORECASE | re.DOTALL)
_META = re.compile(r"\b(the|this) (passage|text|author|article)\b", re.IGNORECASE)


@dataclass(frozen=True)
class ParsedInstruction:
    instruction: str
    repaired: bool


def instruction_messages(passage: Passage) -> list[Message]:
    messages = [Message("system", INSTRUCTION_SYSTEM)]
    for example, reply in INSTRUCTION_EXAMPLES:
        messages += [Message("user", INSTRUCTION_USER.format(passage=example)), Message("assistant", reply)]
    return [*messages, Message("user", INSTRUCTION_USER.format(passage=passage.text))]


def answer_messages(instruction: str) -> list[Message]:
    return [Message("system", ANSWER_SYSTEM), Message("user", instruction)]


def _valid(instruction: str) -> str | None:
    text = " ".join(instruction.split()).strip(" \"'[]{}")
    words = text.split()
    if not 3 <= len(words) <= 60 or not any(c.isalpha() for c in text):
        return None
    if _META.search(text) or text.lower().startswith(("i'm sorry", "sorry", "as an ai")):
        return None
    if text in _EXAMPLE_INSTRUCTIONS:  # parroting the few-shot example, not reading the passage
        return None
    return text


def parse_instruction(raw: str) -> ParsedInstruction | None:
    """The instruction in a model's reply, or None when the reply is unusable."""
    text = raw.strip()
    try:
        value = json.loads(text)
        if isinstance(value, dict) and isinstance(value.get("instruction"), str):
            valid = _valid(value["instruction"])
            return ParsedInstruction(valid, repaired=False) if valid else None
    except json.JSONDecodeError:
        pass
    unfenced = _FENCE.sub("", text).strip()
    for candidate in [unfenced, *_OBJECT.findall(unfenced)]:
        try:
            value = json.loads(candidate.replace("'", '"') if '"' not in candidate else candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(value, dict) and isinstance(value.get("instruction"), str):
            valid = _valid(value["instruction"])
            return ParsedInstruction(valid, repaired=True) if valid else None
    match = _FIELD.search(unfenced)
    if match:
        valid = _valid(match.group(1))
        return ParsedInstruction(valid, repaired=True) if valid else None
    # No JSON at all: accept a reply that is one clear question (the intent is unambiguous).
    first_line = unfenced.splitlines()[0].strip() if unfenced else ""
    if "{" not in unfenced and first_line.endswith("?") and len(unfenced.splitlines()) <= 2:
        valid = _valid(first_line)
        return ParsedInstruction(valid, repaired=True) if valid else None
    return None


def back_translate(
    passages: Sequence[Passage],
    generate: Generate,
    params: GenerationParams,
    report: CurationReport,
    cache: MutableMapping[str, dict[str, Any]],
) -> list[InstructionSample]:
    """One instruction per passage; unusable replies are dropped and counted under their reason.

    ``cache`` (passage id -> outcome) holds what earlier runs got for the same prompt and generator:
    those passages cost no generation; new outcomes are added to it.
    """
    todo = [p for p in passages if p.id not in cache]
    if todo:
        generations = generate([instruction_messages(p) for p in todo], replace(params, stop=("}",)))
        for passage, generation in zip(todo, generations, strict=True):
            text = generation.text.rstrip()
            if generation.finish_reason == "stop" and text.startswith("{") and not text.endswith("}"):
                text += "}"  # the stop string ends the object; servers strip it from the reply
            parsed = parse_instruction(text)
            if parsed is None:
                cache[passage.id] = {"reason": "unparseable_instruction"}
            elif parsed.repaired and generation.finish_reason == "length":
                cache[passage.id] = {"reason": "truncated_instruction"}  # cut off mid-JSON: maybe mid-sentence
            else:
                cache[passage.id] = {"instruction": parsed.instruction, "repaired": parsed.repaired}
    samples = []
    for passage in passages:
        outcome = cache[passage.id]
        if "instruction" not in outcome:
            report.drop(str(outcome.get("reason", "unparseable_instruction")))
            continue
        samples.append(
            InstructionSample(
                id=passage.id,
                instruction=outcome["instruction"],
                answer=passage.text,
                document_id=passage.document_id,
                category=passage.category,
                repaired=bool(outcome.get("repaired", False)),
            )
        )
    return samples


def _similarity(a: str, b: str) -> float:
    left, right = set(a.lower().split()), set(b.lower().split())
    return len(left & right) / max(1, len(left | right))


def preference_pairs(
    samples: Sequence[InstructionSample],
    generate: Generate,
    params: GenerationParams,
    report: CurationReport,
    *,
    min_words: int = 5,
    max_similarity: float = 0.8,
    cache: MutableMapping[str, str] | None = None,
) -> list[PreferenceSample]:
    """chosen = the author's answer, rejected = the base model's answer; weak pairs are dropped.

    ``cache`` (instruction hash -> the base model's answer) is read and filled, as in ``back_translate``.
    """
    cache = {} if cache is None else cache
    todo = sorted({s.instruction for s in samples if text_hash(s.instruction) not in cache})
    if todo:
        generations = generate([answer_messages(instruction) for instruction in todo], params)
        cache.update({text_hash(i): g.text for i, g in zip(todo, generations, strict=True)})
    pairs = []
    for sample in samples:
        rejected = cache[text_hash(sample.instruction)].strip()
        if len(rejected.split()) < min_words:
            report.drop("rejected_too_short")
        elif _similarity(rejected, sample.answer) > max_similarity:
            report.drop("rejected_like_chosen")
        else:
            pairs.append(
                PreferenceSample(
                    id=text_hash(f"{sample.id}|{rejected}"),
                    instruction=sample.instruction,
                    chosen=sample.answer,
                    rejected=rejected,
                    document_id=sample.document_id,
                    category=sample.category,
                    split=sample.split,
                )
            )
    return pairs
