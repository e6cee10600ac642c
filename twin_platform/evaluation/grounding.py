"""Groundedness of RAG answers: the share of an answer's sentences that the retrieved context supports.

Two ways to decide support, both per sentence:

- lexical (no model): a sentence is supported when at least ``min_support`` of its content words occur in one
  context passage. Content words are the sentence's lower-cased words minus English stop words
  (scikit-learn's list, from the Glasgow Information Retrieval Group), Porter-stemmed (as ROUGE does) so
  "vectors" matches "vector". It catches answers that drift away from their sources; it cannot see a
  paraphrase or a contradiction that reuses the source's words.
- judge: an LLM reads the numbered context passages and the numbered answer sentences and says, per
  sentence, whether the context supports it (prompt ``GROUNDING_PROMPT_VERSION``); its JSON reply is
  validated and a reply that cannot be used is counted, not crashed on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from functools import cache

from pydantic import BaseModel, Field, ValidationError

from twin_platform.domain.llm import GenerationParams, LLMClient, LLMError, Message
from twin_platform.evaluation.judge import JudgeReplyError, json_objects
from twin_platform.evaluation.models import GroundedAnswer, GroundingSummary
from twin_platform.evaluation.voice import sentences, words

GROUNDING_PROMPT_VERSION = "grounding-v1"
DEFAULT_MIN_SUPPORT = 0.5

GROUNDING_SYSTEM = (
    "You check answers against their sources. For each numbered sentence of the answer, decide whether the "
    "numbered context passages support it: supported means the passages state it or directly imply it; a "
    "sentence that adds facts, numbers or claims the passages do not contain is not supported. Reply with JSON "
    'only: {"sentences": [{"index": 1, "supported": true}, ...]} with one entry per sentence.'
)
GROUNDING_PROMPT = "Context passages:\n{context}\n\nAnswer sentences:\n{sentences}"
GROUNDING_SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "sentences": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"index": {"type": "integer", "minimum": 1}, "supported": {"type": "boolean"}},
                "required": ["index", "supported"],
            },
        }
    },
    "required": ["sentences"],
}


@cache
def _stop_words() -> frozenset[str]:
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS  # type: ignore[import-untyped]

    return frozenset(ENGLISH_STOP_WORDS)


@cache
def _stem(word: str) -> str:
    from nltk.stem.porter import PorterStemmer  # type: ignore[import-untyped]

    return str(PorterStemmer().stem(word))


def content_words(text: str) -> set[str]:
    """The text's content words: lower-cased, stop words removed, Porter-stemmed."""
    stop = _stop_words()
    return {_stem(w) for w in words(text) if w not in stop}


def lexical_grounding(
    sample_id: str, answer: str, contexts: Sequence[str], *, min_support: float = DEFAULT_MIN_SUPPORT
) -> GroundedAnswer:
    """Lexical support of each sentence (see the module's docstring). Sentences without content words
    ("Yes.", "Here is how.") are neither supported nor unsupported and are left out of the share."""
    if not 0 < min_support <= 1:
        raise ValueError(f"min_support must be in (0, 1], got {min_support}")
    passages = [content_words(c) for c in contexts]
    checked = supported = 0
    unsupported: list[str] = []
    for sentence in sentences(answer):
        needed = content_words(sentence)
        if not needed:
            continue
        checked += 1
        if any(len(needed & passage) >= min_support * len(needed) for passage in passages):
            supported += 1
        else:
            unsupported.append(sentence)
    return GroundedAnswer(
        sample_id=sample_id,
        sentences=checked,
        supported=supported,
        share=supported / checked if checked else None,
        unsupported=unsupported,
    )


class SentenceSupport(BaseModel):
    index: int = Field(ge=1)
    supported: bool


class GroundingReply(BaseModel):
    sentences: list[SentenceSupport]


def grounding_messages(answer_sentences: Sequence[str], contexts: Sequence[str]) -> list[Message]:
    context = "\n".join(f"[{i}] {c}" for i, c in enumerate(contexts, start=1))
    numbered = "\n".join(f"{i}. {s}" for i, s in enumerate(answer_sentences, start=1))
    return [
        Message("system", GROUNDING_SYSTEM),
        Message("user", GROUNDING_PROMPT.format(context=context, sentences=numbered)),
    ]


def parse_grounding_reply(raw: str, count: int) -> list[bool]:
    """Support per sentence, in order, from the judge's reply, which must judge every sentence 1..count
    exactly once; :class:`JudgeReplyError` says why a reply cannot be used."""
    first_error = ""
    for candidate in json_objects(raw):
        try:
            reply = GroundingReply.model_validate(candidate)
        except ValidationError as exc:
            first_error = first_error or str(exc)
            continue
        indexes = sorted(s.index for s in reply.sentences)
        if indexes != list(range(1, count + 1)):
            first_error = first_error or f"judged sentences {indexes}, expected 1..{count}"
            continue
        return [s.supported for s in sorted(reply.sentences, key=lambda s: s.index)]
    if not first_error:
        raise JudgeReplyError("unparseable", f"no JSON object in the reply: {raw[:200]!r}")
    raise JudgeReplyError("invalid", first_error)


def judged_grounding(sample_id: str, answer: str, contexts: Sequence[str], judge: LLMClient) -> GroundedAnswer:
    """Support of each sentence as the judge sees it; a failed call or an unusable reply is a result without
    a share, with the failure kind."""
    answer_sentences = sentences(answer)
    if not answer_sentences:
        return GroundedAnswer(sample_id=sample_id, sentences=0, supported=0, share=None)
    # About a dozen tokens per sentence entry, with room for the braces around them.
    params = GenerationParams(max_tokens=16 * len(answer_sentences) + 64, temperature=0.0, json_schema=GROUNDING_SCHEMA)
    try:
        raw = judge.generate(grounding_messages(answer_sentences, contexts), params).text
        support = parse_grounding_reply(raw, len(answer_sentences))
    except JudgeReplyError as exc:
        return GroundedAnswer(
            sample_id=sample_id, sentences=0, supported=0, share=None, failure=exc.kind, detail=str(exc)
        )
    except LLMError as exc:
        return GroundedAnswer(
            sample_id=sample_id, sentences=0, supported=0, share=None, failure="error", detail=str(exc)
        )
    return GroundedAnswer(
        sample_id=sample_id,
        sentences=len(answer_sentences),
        supported=sum(support),
        share=sum(support) / len(answer_sentences),
        unsupported=[s for s, ok in zip(answer_sentences, support, strict=True) if not ok],
    )


def groundedness(
    sample_ids: Sequence[str],
    answers: Sequence[str],
    contexts: Sequence[Sequence[str]],
    *,
    judge: LLMClient | None = None,
    min_support: float = DEFAULT_MIN_SUPPORT,
) -> GroundingSummary:
    """Groundedness of each answer in its own retrieved context (``contexts[i]`` for ``answers[i]``) and the
    mean share over the answers that have one: by the judge when one is given, else by the lexical rule."""
    rows = list(zip(sample_ids, answers, contexts, strict=True))
    if judge is None:
        graded = [lexical_grounding(i, a, c, min_support=min_support) for i, a, c in rows]
    else:
        graded = [judged_grounding(i, a, c, judge) for i, a, c in rows]
    shares = [g.share for g in graded if g.share is not None]
    return GroundingSummary(
        method="lexical" if judge is None else "judge",
        min_support=min_support if judge is None else None,
        prompt_version=GROUNDING_PROMPT_VERSION if judge is not None else None,
        judge_model=judge.model_id if judge is not None else None,
        mean_share=sum(shares) / len(shares) if shares else None,
        failures=dict(Counter(g.failure for g in graded if g.failure is not None)),
        answers=graded,
    )
