"""The evaluation metrics: stylometry, centroid similarity, ROUGE-L, degeneration, perplexity through each LLM
backend, the LLM judge, groundedness, the typed results and the Opik experiment logger."""

from __future__ import annotations

import math
import re
import statistics
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from twin_platform.adapters.llm.local import LocalClient
from twin_platform.adapters.llm.openai_client import OpenAIClient
from twin_platform.adapters.llm.resilience import ResilientLLM
from twin_platform.adapters.llm.tgi import TGIClient
from twin_platform.domain.datasets import InstructionSample
from twin_platform.domain.llm import (
    Generation,
    GenerationParams,
    LLMError,
    LLMUnavailable,
    Message,
    ScoringNotSupported,
)
from twin_platform.evaluation import ModelUnderTest, evaluate_models
from twin_platform.evaluation.grounding import GROUNDING_PROMPT_VERSION, groundedness, lexical_grounding
from twin_platform.evaluation.judge import JUDGE_PROMPT_VERSION, judge_answers, no_judge_reason
from twin_platform.evaluation.models import ModelScores
from twin_platform.evaluation.perplexity import perplexity
from twin_platform.evaluation.voice import (
    burrows_delta,
    centroid_similarities,
    cut_at_limit_share,
    delta_reference,
    distinct_n,
    punctuation_distance,
    punctuation_rates,
    repeated_ngram_rate,
    rouge_l,
    sentence_lengths,
    style_centroid,
    stylometry,
)
from twin_platform_tests.tiny_model import build_tiny_chat_model
from twin_platform_tests.web.tgi import fake_logprob, serve_tgi

DEMO_CORPUS = Path(__file__).resolve().parents[1] / "twin_platform/demo/corpus"
MESSAGES = [Message("user", "Where do the vectors live?")]


class LetterEmbedder:
    """Implements Embedder with letter counts (not normalised, so the code under test must normalise)."""

    model_id = "test/letters"
    dimension = 26
    max_tokens = 512

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(t.split()) for t in texts]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = [[t.lower().count(chr(ord("a") + i)) for i in range(26)] for t in texts]
        return np.array(rows, dtype=np.float32)


class ScriptedLLM:
    """Implements LLMClient with replies given in advance (a string, or an exception to raise)."""

    backend = "scripted"

    def __init__(self, replies: Sequence[str | Exception], model_id: str = "judge/test") -> None:
        self.replies = list(replies)
        self.model_id = model_id
        self.calls: list[tuple[list[Message], GenerationParams]] = []

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Generation:
        self.calls.append((list(messages), params))
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return Generation(text=reply, model=self.model_id)

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        yield self.generate(messages, params).text

    def health(self) -> bool:
        return True


class ScriptedScorer:
    """Implements AnswerScorer: (logprob, tokens) per answer, or an exception to raise."""

    def __init__(self, outcomes: dict[str, tuple[float, int] | Exception]) -> None:
        self.outcomes = outcomes

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> tuple[float, int]:
        outcome = self.outcomes[answer]
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def sample(i: int, instruction: str, answer: str) -> InstructionSample:
    return InstructionSample(id=f"s{i}", instruction=instruction, answer=answer, document_id=f"d{i}", category="post")


# --- stylometry ------------------------------------------------------------------------------------------


def test_burrows_delta_recomputed_by_hand():
    vocabulary = ("the", "and", "of")
    candidates = ["the cat and the dog", "of mice and men"]
    author = ["the end of the line", "and so on and on", "the of the and"]
    corpus = ["the the of cat", "and of and", *candidates, *author]

    def rates(texts: Sequence[str]) -> list[float]:
        tokens = " ".join(texts).split()
        return [tokens.count(w) / len(tokens) for w in vocabulary]

    per_document = [rates([d]) for d in corpus]
    means = [statistics.mean(column) for column in zip(*per_document, strict=True)]
    stdevs = [statistics.stdev(column) for column in zip(*per_document, strict=True)]
    z_candidates = [(f - m) / s for f, m, s in zip(rates(candidates), means, stdevs, strict=True)]
    z_author = [(f - m) / s for f, m, s in zip(rates(author), means, stdevs, strict=True)]
    by_hand = statistics.mean(abs(c - a) for c, a in zip(z_candidates, z_author, strict=True))

    reference = delta_reference(corpus, vocabulary=vocabulary)
    assert reference.words == ("the", "and", "of")  # by mean frequency, highest first
    assert burrows_delta(candidates, author, reference) == pytest.approx(by_hand, rel=1e-12)
    assert burrows_delta(author, author, reference) == 0.0
    top = delta_reference(corpus, vocabulary=vocabulary, most_frequent=1)
    assert top.words == ("the",)
    assert burrows_delta(candidates, author, top) == pytest.approx(abs(z_candidates[0] - z_author[0]))
    # A word that never varies has no z-score and is left out, as is a corpus too small to have statistics.
    assert delta_reference(["the cat", "the dog"], vocabulary=("the", "of")).words == ()
    with pytest.raises(ValueError, match="at least two documents"):
        delta_reference(["the only one", "?!"])


def _demo_paragraphs(folder: str) -> list[str]:
    paragraphs = []
    for path in sorted((DEMO_CORPUS / folder).glob("*.md")):
        body = path.read_text().split("---", 2)[2]
        paragraphs += [
            p.strip()
            for p in body.split("\n\n")
            if len(p.split()) >= 25 and not p.lstrip().startswith(("#", "-", "`", "|", "1."))
        ]
    return paragraphs


FORMAL = [
    "It is incumbent upon the practitioner to consider, with all due deliberation, the manner in which the "
    "representation of documents is constituted; for the selection of an embedding model shall determine, "
    "in no small measure, the fidelity with which semantic proximity may thereafter be ascertained.",
    "The present treatise, which is addressed to those who are charged with the stewardship of such systems, "
    "proceeds upon the assumption that the reader is acquainted with the elementary principles of the vector "
    "space model; it is not, therefore, the purpose of this exposition to rehearse them.",
    "Upon reflection, one may observe that the utility of an index is contingent upon the regularity of its "
    "maintenance; an index which is permitted to fall into disrepair shall, in the fullness of time, "
    "misrepresent the very corpus of which it was intended to be a faithful summary.",
    "Moreover, the evaluation of retrieval, which has been too frequently neglected, ought to be conducted "
    "prior to any modification of the architecture; for without a standard of comparison, every alteration "
    "is a conjecture, and every conjecture is a liability.",
]


def test_stylometry_puts_the_authors_own_writing_closer_than_a_formal_voice():
    articles = _demo_paragraphs("articles")
    passages, held_out = articles[::3], articles[1::3]
    more_of_the_author = [*articles[2::3], *_demo_paragraphs("posts")]
    assert min(len(passages), len(held_out), len(more_of_the_author)) > 20
    reference = delta_reference([*passages, *held_out, *more_of_the_author, *FORMAL])
    own = stylometry(more_of_the_author, held_out, reference)
    formal = stylometry(FORMAL, held_out, reference)
    assert own.burrows_delta is not None
    assert formal.burrows_delta is not None
    assert own.burrows_delta < formal.burrows_delta
    assert own.sentence_length_distance < formal.sentence_length_distance
    assert own.punctuation_distance < formal.punctuation_distance
    assert own.distance < formal.distance
    assert formal.candidate_punctuation[";"] > 3 * formal.author_punctuation[";"]
    same = stylometry(held_out, held_out, reference)
    assert (same.distance, same.burrows_delta, same.sentence_length_distance, same.punctuation_distance) == (0, 0, 0, 0)


def test_sentence_length_and_punctuation_profiles_by_hand():
    lengths = sentence_lengths(["One two three. Four five!", "Six (seven) eight nine, ten?\n# A heading"])
    # Sentences of 3, 2, 5 and 2 words.
    assert (lengths.sentences, lengths.mean) == (4, 3.0)
    assert lengths.std == pytest.approx(statistics.pstdev([3, 2, 5, 2]))
    text = "Yes, no; maybe: “quoted” – it’s (fine)!"  # curly quotes fold to straight, an en dash to a dash
    rates = punctuation_rates([text])
    per_thousand = 1000 / len(text)
    assert rates == pytest.approx(
        {
            ",": per_thousand,
            ";": per_thousand,
            ":": per_thousand,
            "—": per_thousand,
            "!": per_thousand,
            "?": 0.0,
            "(": per_thousand,
            '"': 2 * per_thousand,
            "'": per_thousand,
        }
    )
    # Jensen-Shannon distance of {","} vs {";"} alone: disjoint mixes, the maximum, 1.
    only_commas = punctuation_rates(["a, b, c"])
    only_semicolons = punctuation_rates(["a; b; c"])
    assert punctuation_distance(only_commas, only_semicolons) == pytest.approx(1.0)
    assert punctuation_distance(only_commas, punctuation_rates(["x, y"])) == pytest.approx(0.0)
    assert punctuation_distance(punctuation_rates(["none"]), only_commas) == 1.0


# --- embedding similarity, ROUGE-L, degeneration ------------------------------------------------------


def test_centroid_similarity_by_hand():
    embedder = LetterEmbedder()
    # "aaa" points along a, "ab" at 45 degrees: their normalised mean points at 22.5 degrees.
    centroid = style_centroid(embedder, ["aaa", "ab"])
    assert centroid[:2] == pytest.approx([math.cos(math.pi / 8), math.sin(math.pi / 8)])
    similarities = centroid_similarities(embedder, centroid, ["a", "bb", "cc"])
    assert similarities == pytest.approx([math.cos(math.pi / 8), math.sin(math.pi / 8), 0.0])


def test_rouge_l_is_the_longest_common_subsequence_f1():
    # LCS of the two: "the cat on the mat", 5 of 6 words on each side: P = R = F1 = 5/6.
    scores = rouge_l(
        ["the cat sat on the mat", "", "Vectors live in Postgres"], ["the cat was on the mat", "x", "vector"]
    )
    assert scores[0] == pytest.approx(5 / 6)
    assert scores[1] == 0.0
    # Stemmed: "Vectors" matches "vector"; P = 1/4, R = 1, F1 = 2PR / (P + R) = 0.4.
    assert scores[2] == pytest.approx(0.4)


def test_degeneration_measures_by_hand():
    loop = "a b c a b c"
    # 3-grams abc, bca, cab, abc: the two abc occurrences repeat, 2 of 4.
    assert repeated_ngram_rate(loop) == 0.5
    assert repeated_ngram_rate("one two three four") == 0.0
    assert repeated_ngram_rate("too short") is None
    # Bigrams ab, bc, ca, ab, bc: 3 distinct of 5; across texts they are pooled (Li et al. 2016).
    assert distinct_n([loop]) == pytest.approx(3 / 5)
    assert distinct_n([loop, "a b"]) == pytest.approx(3 / 6)
    assert distinct_n(["single"]) is None
    generations = [Generation("x", "m", finish_reason=r) for r in ("length", "stop", "stop", "length")]
    assert cut_at_limit_share(generations) == 0.5
    assert cut_at_limit_share([]) == 0.0


# --- perplexity through the LLM clients ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-eval-model"))


def test_local_answer_logprob_matches_the_models_own_loss(tiny_model_dir: Path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    answer = "Postgres keeps the vectors next to the filters."
    client = LocalClient(tiny_model_dir, model_id="tiny")
    logprob, tokens = client.answer_logprob(MESSAGES, answer)

    # Independently: tokenize prompt and answer apart, mask the prompt in the labels, and let transformers
    # compute the mean cross-entropy over the answer's tokens.
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    prompt = tokenizer.apply_chat_template([m.as_dict() for m in MESSAGES], add_generation_prompt=True, tokenize=False)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    input_ids = torch.tensor([prompt_ids + answer_ids])
    labels = torch.tensor([[-100] * len(prompt_ids) + answer_ids])
    with torch.no_grad():
        loss = float(model(input_ids=input_ids, labels=labels).loss)
    assert tokens == len(answer_ids)
    assert logprob == pytest.approx(-loss * len(answer_ids), rel=1e-4)
    assert client.answer_logprob(MESSAGES, "") == (0.0, 0)

    # The same number through the resilience wrapper, and as a perplexity.
    wrapped = ResilientLLM(client)
    assert wrapped.answer_logprob(MESSAGES, answer) == pytest.approx((logprob, tokens))
    result = perplexity(wrapped, [sample(1, MESSAGES[0].content, answer)])
    assert result.perplexity == pytest.approx(math.exp(loss), rel=1e-4)
    assert result.tokens == len(answer_ids)


def test_local_generation_cut_at_the_token_limit_says_length(tiny_model_dir: Path):
    client = LocalClient(tiny_model_dir, model_id="tiny")
    params = GenerationParams(max_tokens=3, temperature=0)
    single = client.generate(MESSAGES, params)
    batch = client.generate_batch([MESSAGES, [Message("user", "Measure recall first")]], params)
    assert (single.completion_tokens, single.finish_reason) == (3, "length")
    assert [(g.completion_tokens, g.finish_reason) for g in batch] == [(3, "length"), (3, "length")]


def test_perplexity_is_over_answer_tokens_and_says_why_it_is_missing():
    samples = [sample(1, "q1", "a1"), sample(2, "q2", "a2"), sample(3, "q3", "a3"), sample(4, "q4", "")]
    scorer = ScriptedScorer({"a1": (-6.0, 3), "a2": (-2.0, 1), "a3": LLMError("input too long (422)"), "": (0.0, 0)})
    result = perplexity(scorer, samples)
    assert result.perplexity == pytest.approx(math.exp(8.0 / 4))  # exp(-sum(log p) / sum(tokens))
    assert (result.tokens, result.logprob) == (4, -8.0)
    assert [(s.sample_id, s.perplexity) for s in result.samples] == [
        ("s1", pytest.approx(math.exp(2.0))),
        ("s2", pytest.approx(math.exp(2.0))),
        ("s4", None),
    ]
    assert result.skipped == {"s3": "input too long (422)"}

    unsupported = perplexity(ScriptedScorer({"a1": ScoringNotSupported("no prompt log-probabilities")}), samples)
    assert (unsupported.perplexity, unsupported.not_computed_reason) == (None, "no prompt log-probabilities")
    with pytest.raises(LLMUnavailable):
        perplexity(ScriptedScorer({"a1": LLMUnavailable("down")}), samples)


@pytest.fixture
def tgi():
    with serve_tgi() as server:
        yield server


def test_tgi_scores_answers_from_prompt_logprobs(tgi):
    answer = "Keep the vectors in Postgres, next to the filters."
    client = TGIClient(tgi.url, timeout=5)
    logprob, tokens = client.answer_logprob(MESSAGES, answer)
    # The stand-in's tokens are runs of non-space characters with their trailing spaces; after the prompt's
    # last token ("assistant\n") the answer's tokens are exactly the answer's own.
    answer_tokens = re.findall(r"\S+\s*", answer)
    assert tokens == len(answer_tokens) == 9
    assert logprob == pytest.approx(sum(fake_logprob(t) for t in answer_tokens))
    assert [path for path, _ in tgi.requests] == ["/chat_tokenize", "/tokenize", "/generate"]
    _, chat = tgi.requests[0]
    assert chat["messages"] == [{"role": "user", "content": "Where do the vectors live?"}]
    _, generate = tgi.requests[2]
    assert generate["inputs"].endswith("<|im_start|>assistant\n" + answer)
    assert generate["parameters"] == {"max_new_tokens": 1, "details": True, "decoder_input_details": True}

    tgi.prefill_logprobs = False  # TGI 3 without --enable-prefill-logprobs
    with pytest.raises(ScoringNotSupported, match="--enable-prefill-logprobs"):
        client.answer_logprob(MESSAGES, answer)
    tgi.mode = "no-chat-tokenize"  # TGI before 2.3
    with pytest.raises(ScoringNotSupported, match="/chat_tokenize"):
        client.answer_logprob(MESSAGES, answer)
    tgi.mode = "down"
    with pytest.raises(LLMUnavailable, match="503"):
        client.answer_logprob(MESSAGES, answer)


def test_scoring_through_the_resilience_wrapper_retries_and_refuses_like_generation(tgi):
    sleeps: list[float] = []
    client = ResilientLLM(TGIClient(tgi.url, timeout=5), retries=2, sleep=sleeps.append)
    tgi.busy, tgi.retry_after = 1, "2"
    logprob, tokens = client.answer_logprob(MESSAGES, "Write the rollback first.")
    assert (tokens, sleeps) == (4, [2.0])
    assert logprob == pytest.approx(sum(fake_logprob(t) for t in ("Write ", "the ", "rollback ", "first.")))

    openai_client = ResilientLLM(OpenAIClient(f"{tgi.url}/v1", api_key="k", model="twin/fake", timeout=5))
    calls = len(tgi.requests)
    with pytest.raises(ScoringNotSupported, match="no prompt log-probabilities"):
        openai_client.answer_logprob(MESSAGES, "Write the rollback first.")
    assert len(tgi.requests) == calls  # refused without a request, and never retried
    assert openai_client.breaker.state == "closed"


@pytest.mark.parametrize(("tgi_reason", "expected"), [("length", "length"), ("eos_token", "stop")])
def test_every_remote_backend_reports_a_cut_answer_as_length(tgi, tgi_reason: str, expected: str):
    tgi.finish_reason = tgi_reason
    params = GenerationParams(max_tokens=8, temperature=0)
    assert TGIClient(tgi.url, timeout=5).generate(MESSAGES, params).finish_reason == expected
    assert OpenAIClient(f"{tgi.url}/v1", api_key="k", model="m", timeout=5).generate(
        MESSAGES, params
    ).finish_reason == (expected)
    tgi.mode = "no-messages-api"  # TGI's own /generate says eos_token; clients say stop, as OpenAI does
    assert TGIClient(tgi.url, timeout=5).generate(MESSAGES, params).finish_reason == expected


# --- judge --------------------------------------------------------------------------------------------


def _reply(accuracy: object, style: object) -> str:
    return (
        f'{{"accuracy": {{"analysis": "checks out", "score": {accuracy}}}, '
        f'"style": {{"analysis": "plain words", "score": {style}}}}}'
    )


def test_judge_repairs_fenced_json_refuses_out_of_range_scores_and_counts_what_it_cannot_use():
    judge = ScriptedLLM(
        [
            _reply(3, 2),
            "Here is my evaluation:\n```json\n" + _reply(1, 3) + "\n```\nHope this helps.",
            _reply(4, 2),  # out of the 1-3 scale
            "The answer is accurate and well written.",  # no JSON
            '{"accuracy": {"score": 2}}',  # no style
            _reply("true", 2),  # a boolean is not a score
            LLMUnavailable("judge down"),
        ]
    )
    ids = [f"s{i}" for i in range(7)]
    summary = judge_answers(judge, ids, [f"question {i}" for i in range(7)], [f"answer {i}" for i in range(7)])
    assert (summary.samples, summary.judged, summary.prompt_version) == (7, 2, JUDGE_PROMPT_VERSION)
    assert summary.failures == {"out_of_range": 1, "unparseable": 1, "invalid": 2, "error": 1}
    assert (summary.accuracy_mean, summary.style_mean) == (2.0, 2.5)
    first, second = summary.verdicts[:2]
    assert (first.accuracy, first.style, first.accuracy_analysis) == (3, 2, "checks out")
    assert (second.accuracy, second.style) == (1, 3)
    assert summary.verdicts[6].detail == "judge down"
    messages, params = judge.calls[0]
    assert "Instruction: question 0\n\nAnswer: answer 0" in messages[1].content
    assert "3 (Excellent): Perfectly accessible language for blog/social media" in messages[1].content
    assert (params.temperature, params.json_schema is not None) == (0.0, True)


def test_no_judge_reason_says_why_in_plain_words():
    assert no_judge_reason(None) == (
        "no judge configured (TWIN_JUDGE_BACKEND unset); a 135M local model is not a capable judge"
    )
    assert "self-preference" in (no_judge_reason("local", judge_model="twin-v3", evaluated_models=["twin-v3"]) or "")
    assert no_judge_reason("openai", judge_model="gpt-4o-mini", evaluated_models=["twin-v3", "smollm2"]) is None


# --- groundedness -------------------------------------------------------------------------------------

CONTEXTS = [
    "Postgres keeps the vector embeddings next to the filter columns, so one query does both.",
    "Measure recall before tuning HNSW parameters.",
]


def test_lexical_grounding_counts_supported_sentences():
    answer = (
        "Postgres keeps vectors next to the filters. "  # content words all in passage 1 (stemmed: vectors~vector)
        "And so it is. "  # no content words: not counted
        "Kubernetes autoscaling fixes latency spikes. "  # no support
        "Measure recall with Kubernetes."  # 2 of 3 content words in passage 2
    )
    graded = lexical_grounding("a1", answer, CONTEXTS, min_support=0.5)
    assert (graded.sentences, graded.supported, graded.share) == (3, 2, pytest.approx(2 / 3))
    assert graded.unsupported == ["Kubernetes autoscaling fixes latency spikes."]
    strict = lexical_grounding("a1", answer, CONTEXTS, min_support=1.0)
    assert (strict.supported, strict.share) == (1, pytest.approx(1 / 3))
    summary = groundedness(["a1", "a2"], [answer, "So it is."], [CONTEXTS, CONTEXTS])
    assert (summary.method, summary.min_support, summary.mean_share) == ("lexical", 0.5, pytest.approx(2 / 3))
    assert summary.answers[1].share is None


def test_judged_grounding_validates_the_reply_per_sentence():
    judge = ScriptedLLM(
        [
            '```json\n{"sentences": [{"index": 2, "supported": false}, {"index": 1, "supported": true}]}\n```',
            '{"sentences": [{"index": 1, "supported": true}]}',  # one of two sentences judged
            "Both are supported.",
        ]
    )
    answer = "Postgres keeps the vectors. Kubernetes fixes everything."
    summary = groundedness(["a1", "a2", "a3"], [answer] * 3, [CONTEXTS] * 3, judge=judge)
    assert (summary.method, summary.prompt_version, summary.judge_model) == (
        "judge",
        GROUNDING_PROMPT_VERSION,
        "judge/test",
    )
    first = summary.answers[0]
    assert (first.sentences, first.supported, first.share, first.unsupported) == (
        2,
        1,
        0.5,
        ["Kubernetes fixes everything."],
    )
    assert summary.failures == {"invalid": 1, "unparseable": 1}
    assert summary.mean_share == 0.5
    prompt = judge.calls[0][0][1].content
    assert "[1] Postgres keeps the vector embeddings" in prompt
    assert "2. Kubernetes fixes everything." in prompt


# --- the whole evaluation, typed results, Opik --------------------------------------------------------

HELD_OUT = [
    sample(1, "Where should the vectors live?", "Keep the vectors in Postgres, next to the filters. It is one query."),
    sample(2, "What comes before tuning?", "Measure recall first. Then tune, and measure again."),
]


def _evaluate() -> list[ModelScores]:
    twin = ModelUnderTest(
        "twin-v1",
        [
            Generation("Keep the vectors in Postgres. One query does it.", "twin-v1"),
            Generation("Measure recall first, then tune.", "twin-v1", finish_reason="length"),
        ],
        scorer=ScriptedScorer({HELD_OUT[0].answer: (-14.0, 14), HELD_OUT[1].answer: (-6.0, 10)}),
    )
    base = ModelUnderTest(
        "smollm2",
        [Generation("As an AI, vectors vectors vectors vectors.", "smollm2"), Generation("", "smollm2")],
        no_scorer_reason="the openai backend cannot score answers",
    )
    judge = ScriptedLLM([_reply(3, 3), _reply(2, 3), "no idea", _reply(1, 1)])
    return evaluate_models(
        [twin, base],
        HELD_OUT,
        author_passages=["Postgres keeps the vectors next to the filters.", "Write the rollback first, always."],
        embedder=LetterEmbedder(),
        judge=judge,
    )


def test_evaluate_models_scores_each_model_and_round_trips_through_json():
    twin, base = _evaluate()
    assert twin.perplexity == pytest.approx(math.exp(20 / 24))
    assert (twin.perplexity_tokens, twin.perplexity_reason) == (24, None)
    assert (base.perplexity, base.perplexity_reason) == (None, "the openai backend cannot score answers")
    assert twin.rouge_l == pytest.approx(statistics.mean(s.rouge_l for s in twin.per_sample))
    assert twin.rouge_l > base.rouge_l
    assert twin.centroid_similarity > base.centroid_similarity
    assert (twin.cut_at_limit_share, base.cut_at_limit_share) == (0.5, 0.0)
    # "as an ai , vectors vectors vectors vectors .": "vectors vectors vectors" is 2 of its 7 3-grams; the empty
    # answer has none and does not count.
    assert (twin.repeated_ngram_rate, base.repeated_ngram_rate) == (0.0, pytest.approx(2 / 7))
    assert base.distinct_2 < twin.distinct_2
    assert twin.judge is not None
    assert base.judge is not None
    assert (twin.judge.accuracy_mean, twin.judge.style_mean, base.judge.judged) == (2.5, 3.0, 1)
    assert [s.judge_accuracy for s in twin.per_sample] == [3, 2]
    assert twin.per_sample[1].cut_at_limit
    assert twin.per_sample[1].finish_reason == "length"
    assert twin.summary()["perplexity"] == twin.perplexity
    assert "perplexity" not in base.summary()
    for scores in (twin, base):
        assert ModelScores.model_validate_json(scores.model_dump_json()) == scores

    with pytest.raises(ValueError, match="say why"):
        evaluate_models([], HELD_OUT, author_passages=["x y"], embedder=LetterEmbedder())
    unjudged = evaluate_models(
        [ModelUnderTest("m", [Generation("a b c", "m")] * 2)],
        HELD_OUT,
        author_passages=["Postgres keeps the vectors.", "Write the rollback first."],
        embedder=LetterEmbedder(),
        no_judge=no_judge_reason(None),
    )[0]
    assert (unjudged.judge, unjudged.judge_reason) == (None, no_judge_reason(None))


def test_opik_experiments_are_off_without_settings_and_carry_every_score_with_them(monkeypatch: pytest.MonkeyPatch):
    from twin_platform.adapters.evaluation_tracking import log_experiments

    results = _evaluate()
    for name in ("OPIK_API_KEY", "OPIK_URL_OVERRIDE", "OPIK_TRACK_DISABLE", "OPIK_PROJECT_NAME"):
        monkeypatch.delenv(name, raising=False)
    with monkeypatch.context() as without_opik:
        without_opik.setitem(sys.modules, "opik", None)  # importing opik would now fail
        assert log_experiments(results, dataset_name="d", experiment_prefix="e") == {}

    import opik

    sent: dict[str, Any] = {"experiments": {}}

    class FakeDataset:
        def __init__(self) -> None:
            # s1 is stored from an earlier run: Opik keeps its id and skips the duplicate.
            self.items: list[dict[str, Any]] = [
                {
                    "id": "old-s1",
                    "sample_id": "s1",
                    "instruction": HELD_OUT[0].instruction,
                    "reference": HELD_OUT[0].answer,
                }
            ]

        def insert(self, items: list[dict[str, Any]]) -> None:
            stored = [{k: v for k, v in i.items() if k != "id"} for i in self.items]
            self.items += [{**item, "id": f"new-{item['sample_id']}"} for item in items if item not in stored]

        def get_items(self) -> list[dict[str, Any]]:
            return list(self.items)

    class FakeExperiment:
        def __init__(self, name: str) -> None:
            self.id = f"exp-{name}"
            self.items: list[Any] = []

        def batch_upload_items(self, items: list[Any]) -> None:
            self.items += items

    class FakeOpik:
        def __init__(self, project_name: str) -> None:
            sent["project"] = project_name
            self.dataset = FakeDataset()

        def get_or_create_dataset(self, name: str, description: str) -> FakeDataset:
            sent["dataset"] = name
            sent["dataset_items"] = self.dataset.items
            return self.dataset

        def create_experiment(self, dataset_name: str, name: str, experiment_config: dict[str, Any]) -> FakeExperiment:
            experiment = FakeExperiment(name)
            sent["experiments"][name] = (dataset_name, experiment_config, experiment)
            return experiment

        def flush(self) -> None:
            sent["flushed"] = True

    monkeypatch.setenv("OPIK_URL_OVERRIDE", "http://127.0.0.1:9/api")
    monkeypatch.setenv("OPIK_TRACK_DISABLE", "false")
    monkeypatch.setattr(opik, "Opik", FakeOpik)
    ids = log_experiments(results, dataset_name="mara-heldout-v1", experiment_prefix="eval-42", config={"run": "42"})
    assert ids == {"twin-v1": "exp-eval-42-twin-v1", "smollm2": "exp-eval-42-smollm2"}
    assert (sent["project"], sent["dataset"], sent["flushed"]) == ("twin_platform", "mara-heldout-v1", True)
    assert [i["id"] for i in sent["dataset_items"]] == ["old-s1", "new-s2"]
    dataset_name, config, experiment = sent["experiments"]["eval-42-twin-v1"]
    assert dataset_name == "mara-heldout-v1"
    assert config["run"] == "42"
    assert config["model"] == "twin-v1"
    assert config["rouge_l"] == results[0].rouge_l
    assert config["perplexity"] == results[0].perplexity
    first = experiment.items[0]
    assert isinstance(first, opik.ExperimentItemBulkRecord)
    assert first.dataset_item_id == "old-s1"
    assert first.evaluate_task_result == {"output": results[0].per_sample[0].answer, "finish_reason": "stop"}
    scores = {s["name"]: s["value"] for s in first.feedback_scores or []}
    assert scores == results[0].per_sample[0].numeric_scores()
    assert {"rouge_l", "centroid_similarity", "perplexity", "judge_accuracy", "judge_style"} <= set(scores)
    base_first = sent["experiments"]["eval-42-smollm2"][2].items[0]
    assert "perplexity" not in {s["name"] for s in base_first.feedback_scores or []}
