"""Perplexity of the author's held-out answers under a model, through the common LLM client.

The same code scores a local model, a TGI endpoint or anything else that implements
:class:`~twin_platform.domain.llm.AnswerScorer`: each answer's tokens are scored after the chat-templated
instruction (the prompt the model was fine-tuned on), and only the answer's tokens count. Corpus perplexity
is ``exp(-sum(log p) / sum(tokens))`` over all scored answers (Jelinek et al. 1977; the usual token-level
definition), so long answers weigh by their length; per-sample values are given too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from twin_platform.domain.datasets import InstructionSample
from twin_platform.domain.llm import AnswerScorer, LLMError, LLMOverloaded, LLMUnavailable, Message, ScoringNotSupported
from twin_platform.evaluation.models import PerplexityResult, SamplePerplexity


def instruction_messages(instruction: str) -> list[Message]:
    """The prompt of a held-out sample: the instruction as the only user turn, as the SFT data has it."""
    return [Message("user", instruction)]


def perplexity(scorer: AnswerScorer, samples: Sequence[InstructionSample]) -> PerplexityResult:
    """Perplexity of each sample's answer given its instruction, and over all of them.

    A backend that cannot score (:class:`ScoringNotSupported`) gives a result with ``perplexity=None`` and
    the backend's reason. A sample the backend refuses (too long for its context, say) is skipped and listed
    with the error. An unavailable or overloaded backend raises: the evaluation should fail and be retried,
    not report a number over whichever samples happened to get through.
    """
    scored: list[SamplePerplexity] = []
    skipped: dict[str, str] = {}
    for sample in samples:
        try:
            logprob, tokens = scorer.answer_logprob(instruction_messages(sample.instruction), sample.answer)
        except ScoringNotSupported as exc:
            return PerplexityResult.not_computed(str(exc))
        except (LLMUnavailable, LLMOverloaded):
            raise
        except LLMError as exc:
            skipped[sample.id] = str(exc)
            continue
        scored.append(
            SamplePerplexity(
                sample_id=sample.id,
                logprob=logprob,
                tokens=tokens,
                perplexity=math.exp(-logprob / tokens) if tokens else None,
            )
        )
    total_tokens = sum(s.tokens for s in scored)
    total_logprob = math.fsum(s.logprob for s in scored)
    if not total_tokens:
        reason = "no answer tokens were scored" + (f" ({len(skipped)} samples refused)" if skipped else "")
        return PerplexityResult(perplexity=None, samples=scored, skipped=skipped, not_computed_reason=reason)
    return PerplexityResult(
        perplexity=math.exp(-total_logprob / total_tokens),
        tokens=total_tokens,
        logprob=total_logprob,
        samples=scored,
        skipped=skipped,
    )
