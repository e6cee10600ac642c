"""Typed evaluation results: what one model scored on the author's held-out samples, per sample and overall.

Every model here is pydantic, so a result written with ``model_dump_json()`` reads back as the same class with
``ModelScores.model_validate_json(text)``. Scores that could not be computed are ``None`` with a reason beside
them, never a made-up number; a report states the reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

METRICS_VERSION = "eval-metrics-v1"  # bump when a metric's definition changes: old and new are not comparable


class SentenceLengths(BaseModel):
    """Words per sentence over a set of texts."""

    sentences: int
    mean: float
    std: float


class Stylometry(BaseModel):
    """How far a set of texts is from the author's held-out texts in style (``voice.stylometry``).

    ``distance`` is the mean of the available components, each 0 for identical profiles: Burrows' Delta
    (mean absolute z-score difference over function words; about 1 separates different authors in Burrows'
    2002 tests, unbounded), the sentence-length distance (relative to the author's mean length, unbounded)
    and the punctuation distance (Jensen-Shannon distance, base 2, in [0, 1]). Lower is closer to the author;
    compare models on the same held-out set rather than reading absolute values.
    """

    distance: float
    burrows_delta: float | None  # None: no function word varies across the reference corpus
    function_words: int  # how many function words Delta used
    sentence_length_distance: float
    candidate_sentences: SentenceLengths
    author_sentences: SentenceLengths
    punctuation_distance: float
    candidate_punctuation: dict[str, float]  # mark -> occurrences per 1000 characters
    author_punctuation: dict[str, float]


class SamplePerplexity(BaseModel):
    sample_id: str
    logprob: float  # natural log, summed over the answer's tokens
    tokens: int
    perplexity: float | None  # None for an answer with no tokens


class PerplexityResult(BaseModel):
    """Corpus perplexity of the author's held-out answers given their instructions, answer tokens only:
    ``exp(-sum(logprob) / sum(tokens))`` over every scored sample."""

    perplexity: float | None
    tokens: int = 0
    logprob: float = 0.0
    samples: list[SamplePerplexity] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)  # sample id -> why that sample could not be scored
    not_computed_reason: str | None = None  # set when perplexity is None

    @classmethod
    def not_computed(cls, reason: str) -> PerplexityResult:
        return cls(perplexity=None, not_computed_reason=reason)


JudgeFailure = Literal["unparseable", "out_of_range", "invalid", "error"]


class JudgeVerdict(BaseModel):
    """The judge's scores for one answer (the LLM Engineer's Handbook rubric), or why there are none."""

    sample_id: str
    accuracy: int | None = None  # 1 poor, 2 good, 3 excellent
    style: int | None = None  # 1 too formal, 2 good balance, 3 accessible blog / social-media style
    accuracy_analysis: str = ""
    style_analysis: str = ""
    failure: JudgeFailure | None = None
    detail: str = ""  # the validation or client error behind a failure


class JudgeSummary(BaseModel):
    prompt_version: str
    judge_model: str
    samples: int
    judged: int
    failures: dict[str, int] = Field(default_factory=dict)  # failure kind -> count
    accuracy_mean: float | None  # over judged samples; None when none was judged
    style_mean: float | None
    verdicts: list[JudgeVerdict] = Field(default_factory=list)


class GroundedAnswer(BaseModel):
    """How many of an answer's sentences the retrieved context supports."""

    sample_id: str
    sentences: int  # sentences that were checked (lexical: those with content words)
    supported: int
    share: float | None  # supported / sentences; None when nothing was checked or the judge failed
    unsupported: list[str] = Field(default_factory=list)
    failure: JudgeFailure | None = None
    detail: str = ""


class GroundingSummary(BaseModel):
    method: Literal["lexical", "judge"]
    min_support: float | None = None  # lexical rule's threshold
    prompt_version: str | None = None  # judge prompt
    judge_model: str | None = None
    mean_share: float | None  # mean of the answers' shares, over answers that have one
    failures: dict[str, int] = Field(default_factory=dict)
    answers: list[GroundedAnswer] = Field(default_factory=list)


class SampleScores(BaseModel):
    """One held-out sample as one model answered it."""

    sample_id: str
    instruction: str
    reference: str  # the author's own answer
    answer: str  # the model's answer
    finish_reason: str
    cut_at_limit: bool  # finish_reason == "length"
    rouge_l: float
    centroid_similarity: float
    distinct_2: float | None  # None for an answer with no bigram
    repeated_ngram_rate: float | None  # None for an answer with no trigram
    perplexity: float | None = None  # of the author's answer under this model
    judge_accuracy: int | None = None
    judge_style: int | None = None

    def numeric_scores(self) -> dict[str, float]:
        """The sample's scores that have a value, by name (what an experiment tracker logs)."""
        values: dict[str, float | None] = {
            "rouge_l": self.rouge_l,
            "centroid_similarity": self.centroid_similarity,
            "distinct_2": self.distinct_2,
            "repeated_ngram_rate": self.repeated_ngram_rate,
            "cut_at_limit": float(self.cut_at_limit),
            "perplexity": self.perplexity,
            "judge_accuracy": None if self.judge_accuracy is None else float(self.judge_accuracy),
            "judge_style": None if self.judge_style is None else float(self.judge_style),
        }
        return {name: value for name, value in values.items() if value is not None}


class ModelScores(BaseModel):
    """Everything one model scored on the author's held-out samples; the unit a report and a release gate use.

    - ``perplexity``: of the author's held-out answers given their instructions (answer tokens only); lower
      means the model finds the author's own words more likely. ``None`` with ``perplexity_reason`` when the
      backend cannot score (OpenAI-compatible endpoints, TGI without prefill log-probabilities).
    - ``stylometric_distance`` (+ ``stylometry`` components): the model's answers against the author's
      held-out answers; lower is closer.
    - ``centroid_similarity``: mean cosine of each answer's embedding to the author's style centroid (the
      mean normalised embedding of the training passages); higher is closer.
    - ``rouge_l``: mean ROUGE-L F1 of each answer against the author's answer (Lin 2004).
    - ``distinct_2``: unique / total word bigrams over all answers (Li et al. 2016); low means repetitive.
    - ``repeated_ngram_rate``: mean share of an answer's 3-grams that occur more than once in it; high means
      degenerate loops.
    - ``cut_at_limit_share``: share of answers that hit the token limit (``finish_reason == "length"``).
    - ``judge``: the LLM judge's accuracy and style scores (1-3), or ``None`` with ``judge_reason``.
    """

    model_id: str
    metrics_version: str = METRICS_VERSION
    sample_count: int
    perplexity: float | None
    perplexity_tokens: int
    perplexity_reason: str | None
    perplexity_skipped: dict[str, str] = Field(default_factory=dict)  # sample id -> why it was not scored
    stylometric_distance: float
    stylometry: Stylometry
    centroid_similarity: float
    rouge_l: float
    distinct_2: float
    repeated_ngram_rate: float
    cut_at_limit_share: float
    judge: JudgeSummary | None
    judge_reason: str | None
    per_sample: list[SampleScores]

    def summary(self) -> dict[str, float]:
        """The model-level numbers that have a value, by name (for asset metadata and experiment configs)."""
        values: dict[str, float | None] = {
            "perplexity": self.perplexity,
            "stylometric_distance": self.stylometric_distance,
            "burrows_delta": self.stylometry.burrows_delta,
            "sentence_length_distance": self.stylometry.sentence_length_distance,
            "punctuation_distance": self.stylometry.punctuation_distance,
            "centroid_similarity": self.centroid_similarity,
            "rouge_l": self.rouge_l,
            "distinct_2": self.distinct_2,
            "repeated_ngram_rate": self.repeated_ngram_rate,
            "cut_at_limit_share": self.cut_at_limit_share,
            "judge_accuracy": self.judge.accuracy_mean if self.judge else None,
            "judge_style": self.judge.style_mean if self.judge else None,
        }
        return {name: value for name, value in values.items() if value is not None}
