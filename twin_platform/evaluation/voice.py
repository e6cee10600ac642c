"""Does the model write like the author? Stylometry, embedding similarity, ROUGE-L and degeneration measures.

Everything compares model answers with the author's own held-out answers or training passages; nothing here
generates text or reads files.

- Burrows' Delta (Burrows 2002, "'Delta': a Measure of Stylistic Difference and a Guide to Likely Authorship",
  Literary and Linguistic Computing 17(3): 267-287) over function words, plus a sentence-length and a
  punctuation profile, combined in :func:`stylometry`.
- Similarity to the author's style centroid in embedding space: :func:`style_centroid`,
  :func:`centroid_similarities`.
- ROUGE-L F1 against the author's answer (Lin 2004, "ROUGE: A Package for Automatic Evaluation of
  Summaries"), computed by Google's ``rouge-score`` package: :func:`rouge_l`.
- Degeneration: distinct-2 (Li et al. 2016, "A Diversity-Promoting Objective Function for Neural
  Conversation Models", NAACL), the repeated 3-gram rate within an answer, and the share of answers cut
  at the token limit.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from twin_platform.domain.features import Embedder
from twin_platform.domain.llm import Generation
from twin_platform.evaluation.models import SentenceLengths, Stylometry

# The 70 function words of Mosteller & Wallace (1964), "Inference and Disputed Authorship: The Federalist",
# their first word group (taken from Miller, Newman & Friedman 1958): the classic list for authorship work.
FUNCTION_WORDS: tuple[str, ...] = (
    "a", "all", "also", "an", "and", "any", "are", "as", "at", "be",
    "been", "but", "by", "can", "do", "down", "even", "every", "for", "from",
    "had", "has", "have", "her", "his", "if", "in", "into", "is", "it",
    "its", "may", "more", "must", "my", "no", "not", "now", "of", "on",
    "one", "only", "or", "our", "shall", "should", "so", "some", "such", "than",
    "that", "the", "their", "then", "there", "things", "this", "to", "up", "upon",
    "was", "were", "what", "when", "which", "who", "will", "with", "would", "your",
)  # fmt: skip

# Marks whose rates make the punctuation profile. Curly quotes count as straight ones and an en dash or a
# double hyphen as a dash, so typography (or a tokenizer's normalisation) does not read as style; "'" counts
# apostrophes too, so contractions (a style marker of their own) show there.
PUNCTUATION_MARKS: tuple[str, ...] = (",", ";", ":", "—", "!", "?", "(", '"', "'")
_FOLD = str.maketrans({"“": '"', "”": '"', "„": '"', "‘": "'", "’": "'", "–": "—"})

_WORD = re.compile(r"[a-z]+(?:'[a-z]+)*")
# A sentence ends at . ! ? or … (with a closing quote or bracket that stays with it) before whitespace, or at
# a line break: headings and list items end without a full stop.
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|(?<=[.!?…][\"')\]])\s+|\s*\n+\s*")
_NGRAM_TOKEN = re.compile(r"\w+|[^\w\s]")


def words(text: str) -> list[str]:
    """Lower-cased words (apostrophes kept inside them: ``don't``)."""
    return _WORD.findall(text.lower().translate(_FOLD))


def sentences(text: str) -> list[str]:
    """The text's sentences, each with at least one letter or digit."""
    return [s.strip() for s in _SENTENCE_END.split(text) if s and any(c.isalnum() for c in s)]


# --- Burrows' Delta -------------------------------------------------------------------------------------


def relative_frequencies(texts: Sequence[str], vocabulary: Sequence[str]) -> npt.NDArray[np.float64]:
    """Each vocabulary word's count over all ``texts`` divided by their total word count (zeros if no words)."""
    counts: Counter[str] = Counter()
    total = 0
    for text in texts:
        tokens = words(text)
        counts.update(tokens)
        total += len(tokens)
    return np.array([counts[w] / total if total else 0.0 for w in vocabulary])


@dataclass(frozen=True)
class DeltaReference:
    """The corpus statistics Delta standardises by: mean and sample standard deviation (n - 1) of each word's
    relative frequency across the corpus's documents (Burrows 2002), for the words that vary across them."""

    words: tuple[str, ...]
    means: npt.NDArray[np.float64]
    stds: npt.NDArray[np.float64]


def delta_reference(
    corpus: Sequence[str], *, vocabulary: Sequence[str] = FUNCTION_WORDS, most_frequent: int | None = None
) -> DeltaReference:
    """Statistics over ``corpus`` (one entry per document; documents without words are ignored).

    Burrows standardises over every text under study: pass the author's training passages, the author's
    held-out answers and every compared model's answers, so all models are measured on one scale. Words that
    never vary are dropped (their z-score is undefined); ``most_frequent`` keeps only the n words with the
    highest mean frequency, Burrows' "most frequent words".
    """
    documents = [d for d in corpus if words(d)]
    if len(documents) < 2:
        raise ValueError("Delta needs a reference corpus of at least two documents with words")
    frequencies = np.stack([relative_frequencies([d], vocabulary) for d in documents])
    means = frequencies.mean(axis=0)
    stds = frequencies.std(axis=0, ddof=1)
    keep = np.flatnonzero(stds > 0)
    keep = keep[np.argsort(-means[keep], kind="stable")][:most_frequent]
    return DeltaReference(words=tuple(vocabulary[int(i)] for i in keep), means=means[keep], stds=stds[keep])


def burrows_delta(candidates: Sequence[str], author: Sequence[str], reference: DeltaReference) -> float | None:
    """Burrows' Delta between two sets of texts: the mean absolute difference of their z-scores, each z-score
    being a set's relative frequency of a word minus the corpus mean, over the corpus standard deviation.
    ``None`` when the reference has no usable word."""
    if not reference.words:
        return None
    z_candidates = (relative_frequencies(candidates, reference.words) - reference.means) / reference.stds
    z_author = (relative_frequencies(author, reference.words) - reference.means) / reference.stds
    return float(np.mean(np.abs(z_candidates - z_author)))


# --- sentence length and punctuation profiles -----------------------------------------------------------


def sentence_lengths(texts: Sequence[str]) -> SentenceLengths:
    """Mean and (population) standard deviation of words per sentence over all ``texts``; a word is a
    whitespace-separated token with a letter or digit (a list bullet or a dash is not)."""
    lengths = [
        sum(1 for token in s.split() if any(c.isalnum() for c in token)) for text in texts for s in sentences(text)
    ]
    if not lengths:
        return SentenceLengths(sentences=0, mean=0.0, std=0.0)
    return SentenceLengths(sentences=len(lengths), mean=float(np.mean(lengths)), std=float(np.std(lengths)))


def sentence_length_distance(candidate: SentenceLengths, author: SentenceLengths) -> float:
    """``(|mean_c - mean_a| + |std_c - std_a|) / mean_a``: how far apart the two profiles are, in units of the
    author's mean sentence length (0 for the same profile)."""
    if author.mean <= 0:
        raise ValueError("the author's texts have no sentences")
    return (abs(candidate.mean - author.mean) + abs(candidate.std - author.std)) / author.mean


def punctuation_rates(texts: Sequence[str]) -> dict[str, float]:
    """Occurrences of each of :data:`PUNCTUATION_MARKS` per 1000 characters of the texts."""
    text = "\n".join(texts).translate(_FOLD).replace("--", "—")
    size = len(text)
    return {mark: (1000 * text.count(mark) / size if size else 0.0) for mark in PUNCTUATION_MARKS}


def punctuation_distance(candidate: dict[str, float], author: dict[str, float]) -> float:
    """Jensen-Shannon distance (base 2, in [0, 1]) between the two mixes of punctuation marks: which marks a
    writer reaches for, whatever the overall density. 0 when neither uses any mark, 1 when only one does."""
    from scipy.spatial.distance import jensenshannon  # type: ignore[import-untyped]

    p = np.array([candidate[m] for m in PUNCTUATION_MARKS])
    q = np.array([author[m] for m in PUNCTUATION_MARKS])
    if not p.any() or not q.any():
        return 0.0 if not p.any() and not q.any() else 1.0
    return float(jensenshannon(p, q, base=2))


def stylometry(candidates: Sequence[str], author: Sequence[str], reference: DeltaReference) -> Stylometry:
    """The candidate texts' style against the author's held-out texts.

    ``distance`` is the unweighted mean of the components that could be computed: Burrows' Delta,
    :func:`sentence_length_distance` and :func:`punctuation_distance`. Each is 0 for identical profiles, so
    the mean is too; equal weights because no component is known to matter more for one author.
    """
    delta = burrows_delta(candidates, author, reference)
    candidate_sentences, author_sentences = sentence_lengths(candidates), sentence_lengths(author)
    length_distance = sentence_length_distance(candidate_sentences, author_sentences)
    candidate_punctuation, author_punctuation = punctuation_rates(candidates), punctuation_rates(author)
    mark_distance = punctuation_distance(candidate_punctuation, author_punctuation)
    components = [c for c in (delta, length_distance, mark_distance) if c is not None]
    return Stylometry(
        distance=float(np.mean(components)),
        burrows_delta=delta,
        function_words=len(reference.words),
        sentence_length_distance=length_distance,
        candidate_sentences=candidate_sentences,
        author_sentences=author_sentences,
        punctuation_distance=mark_distance,
        candidate_punctuation=candidate_punctuation,
        author_punctuation=author_punctuation,
    )


# --- embedding similarity -------------------------------------------------------------------------------


def _normalised(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    matrix = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(matrix, axis=-1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)


def style_centroid(embedder: Embedder, passages: Sequence[str]) -> npt.NDArray[np.float64]:
    """The author's style centroid: the mean of the normalised embeddings of their training passages, itself
    normalised (so a dot product with a normalised vector is a cosine)."""
    if not passages:
        raise ValueError("the style centroid needs at least one passage")
    centroid = _normalised(embedder.encode(list(passages))).mean(axis=0)
    return _normalised(centroid[np.newaxis, :])[0]


def centroid_similarities(embedder: Embedder, centroid: npt.NDArray[np.float64], answers: Sequence[str]) -> list[float]:
    """Cosine of each answer's embedding to the centroid."""
    if not answers:
        return []
    return [float(v) for v in _normalised(embedder.encode(list(answers))) @ centroid]


# --- ROUGE-L --------------------------------------------------------------------------------------------


def rouge_l(answers: Sequence[str], references: Sequence[str]) -> list[float]:
    """ROUGE-L F1 of each answer against its reference (the author's answer), by ``rouge-score``: longest
    common subsequence of lower-cased alphanumeric tokens, Porter-stemmed. An empty side scores 0."""
    from rouge_score import rouge_scorer  # type: ignore[import-untyped]

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [
        float(scorer.score(reference, answer)["rougeL"].fmeasure)
        for answer, reference in zip(answers, references, strict=True)
    ]


# --- degeneration ---------------------------------------------------------------------------------------


def ngram_tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks: the units the degeneration measures count."""
    return _NGRAM_TOKEN.findall(text.lower())


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(texts: Sequence[str], n: int = 2) -> float | None:
    """Distinct-n (Li et al. 2016): distinct n-grams over all n-grams, across all ``texts`` together.
    ``None`` when the texts hold no n-gram."""
    grams = [g for text in texts for g in _ngrams(ngram_tokens(text), n)]
    return len(set(grams)) / len(grams) if grams else None


def repeated_ngram_rate(text: str, n: int = 3) -> float | None:
    """The share of the text's n-grams (occurrences) whose n-gram occurs more than once in it: 0 for no
    repetition, near 1 for a loop. ``None`` when the text holds no n-gram."""
    grams = _ngrams(ngram_tokens(text), n)
    if not grams:
        return None
    counts = Counter(grams)
    return sum(1 for g in grams if counts[g] > 1) / len(grams)


def cut_at_limit_share(generations: Sequence[Generation]) -> float:
    """The share of generations that stopped at the token limit (``finish_reason == "length"``)."""
    if not generations:
        return 0.0
    return sum(1 for g in generations if g.finish_reason == "length") / len(generations)


def mean_or_zero(values: Sequence[float | None]) -> float:
    """The mean of the values that exist; 0.0 when none does (a rate over nothing)."""
    present = [v for v in values if v is not None]
    return math.fsum(present) / len(present) if present else 0.0
