"""Dataset building without a model: parsing the generator's JSON, curation, splits, formats."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Sequence
from pathlib import Path

import pytest

from twin_platform.datasets.backtranslation import INSTRUCTION_EXAMPLES, parse_instruction
from twin_platform.datasets.curation import (
    CurationRules,
    decontaminate,
    deduplicate,
    passages,
    rejection_reason,
    split_by_document,
)
from twin_platform.datasets.formats import book_json, load_rows, read_book_json, save_dataset
from twin_platform.datasets.pipeline import build_instructions, build_preferences, health, version
from twin_platform.domain.datasets import CurationReport, InstructionSample, Passage
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.features import CleanedDocument
from twin_platform.domain.llm import Generation, GenerationParams, Message

BOOK_ARTIFACTS = Path(__file__).resolve().parents[2] / "shared/corpora/llm-engineers-handbook/artifacts"
PARAMS = GenerationParams(max_tokens=32)
RULES = CurationRules(max_tokens=60, min_words=8, test_fraction=0.3)


def count_words(texts: Sequence[str]) -> list[int]:
    return [len(t.split()) for t in texts]


def document(n: int, text: str, category: Category = Category.ARTICLE) -> CleanedDocument:
    return CleanedDocument(
        id=f"00000000-0000-0000-0000-{n:012d}",
        author_id="jane-doe",
        category=category,
        platform=Platform.WEB,
        source_url=f"https://jane.example.com/{n}",
        title=f"Doc {n}",
        published_at=None,
        language="en",
        text=text,
        raw_version=1,
        source_key=f"k{n}",
    )


WORDS = (
    "postgres vectors filters joins index recall sensors cursor rollback migration chunk token embedding model "
    "dagster asset schedule incident notebook contract schema pipeline team metric latency query cache replica "
    "backup table column partition author draft review release budget window queue worker retry timeout error"
)
VOCABULARY = WORDS.split()


def sentence(rng: random.Random) -> str:
    words = [rng.choice(VOCABULARY) for _ in range(rng.randint(9, 14))]
    return "I " + " ".join(words) + "."


def corpus() -> list[CleanedDocument]:
    """Eight documents of three paragraphs; seeded, varied enough that nothing is a near-duplicate."""
    rng = random.Random(7)  # noqa: S311 - test data, not secrets
    return [document(n, "\n\n".join(" ".join(sentence(rng) for _ in range(3)) for _ in range(3))) for n in range(8)]


class ScriptedGenerator:
    """Stands in for the LLM in these logic tests: a JSON instruction naming the passage's first words."""

    def __init__(self) -> None:
        self.prompts: list[str] = []

    def __call__(self, conversations: Sequence[Sequence[Message]], params: GenerationParams) -> list[Generation]:
        out = []
        for messages in conversations:
            prompt = messages[-1].content
            self.prompts.append(prompt)
            words = re.findall(r"[A-Za-z]+", prompt.split("\n", 1)[1])[4:12]
            out.append(Generation(text=json.dumps({"instruction": f"Tell me about {' '.join(words)}?"}), model="s"))
        return out


@pytest.mark.parametrize(
    ("reply", "expected", "repaired"),
    [
        ('{"instruction": "Why keep vectors in Postgres?"}', "Why keep vectors in Postgres?", False),
        ('```json\n{"instruction": "Why keep vectors in Postgres?"}\n```', "Why keep vectors in Postgres?", True),
        (
            'Sure! {"instruction": "Why keep vectors in Postgres?"} Hope it helps.',
            "Why keep vectors in Postgres?",
            True,
        ),
        ("{'instruction': 'Why keep vectors in Postgres?'}", "Why keep vectors in Postgres?", True),
        (
            '{"instruction": "Why keep vectors in Postgres, and when not',
            "Why keep vectors in Postgres, and when not",
            True,
        ),
        ("Why keep vectors in Postgres?", "Why keep vectors in Postgres?", True),
    ],
)
def test_instruction_json_is_validated_or_repaired(reply: str, expected: str, repaired: bool):
    parsed = parse_instruction(reply)
    assert parsed is not None
    assert (parsed.instruction, parsed.repaired) == (expected, repaired)


@pytest.mark.parametrize(
    "reply",
    [
        "The passage is about databases and many other things that matter.",
        '{"instruction": "Summarise the passage above."}',
        '{"instruction": ""}',
        '{"question": "Why?"}',
        "I'm sorry, I cannot help with that?",
        "",
    ],
)
def test_unusable_replies_are_dropped(reply: str):
    assert parse_instruction(reply) is None


def test_a_parroted_few_shot_example_is_dropped():
    for _, reply in INSTRUCTION_EXAMPLES:
        assert json.loads(reply)["instruction"]  # the examples show the exact format asked for
        assert parse_instruction(reply) is None  # but copying one back says nothing about the passage


def passage(text: str, category: str = "article", tokens: int = 40) -> Passage:
    return Passage("d1", "jane-doe", category, "T", 0, text, tokens)


def test_rule_filters_name_their_reason():
    prose = "We moved the index into Postgres and the joins became free, which surprised the whole team. " * 2
    assert rejection_reason(passage(prose), RULES) is None
    assert rejection_reason(passage("Too short to teach a voice."), RULES) == "too_short"
    assert rejection_reason(passage(prose, tokens=61), RULES) == "too_long"
    links = " ".join(f"https://example.com/{i} see this" for i in range(10))
    assert rejection_reason(passage(links), RULES) == "link_list"
    promo = "Thanks for reading! Subscribe now to get every post, and share this with a friend who likes data."
    assert rejection_reason(passage(promo), RULES) == "boilerplate"
    code = "\n".join(["import os", "x = os.environ['A']", "def f(a):", "    return a + 1", "print(f(x))"])
    assert rejection_reason(passage(code), RULES) == "code_only"
    assert rejection_reason(passage(code, category="repository"), CurationRules(min_words=3)) is None


def test_exact_and_near_duplicates_are_removed_first_copy_wins():
    base = " ".join(f"word{i}" for i in range(120))  # 116 distinct 5-word shingles
    items = [base, base.upper(), base.replace("word60", "changed"), "A completely different sentence about sensors."]
    report = CurationReport(candidates=len(items))
    kept = deduplicate(items, lambda s: s, 0.8, report)
    assert kept == [base, items[3]]
    assert report.dropped == {"exact_duplicate": 1, "near_duplicate": 1}


def test_split_is_by_document_stable_and_covers_both_sides():
    ids = [f"doc-{i}" for i in range(20)]
    sides = split_by_document(ids, 0.2)
    assert sides == split_by_document(reversed(ids), 0.2)
    assert {"train", "test"} == set(sides.values())
    # Two documents: one on each side, also when the fraction alone would put both on one side
    # (0.01 puts both in train, 0.99 both in test).
    for fraction in (0.01, 0.99):
        assert sorted(split_by_document(["a", "b"], fraction).values()) == ["test", "train"], fraction


def test_decontamination_drops_train_samples_sharing_an_ngram_with_test():
    shared = "the index lives next to the filters in one table"
    train = [["alpha beta gamma"], [f"we said {shared} again"]]
    test = [[f"in the test split {shared} too"]]
    report = CurationReport()
    assert decontaminate(train, test, lambda s: s, 8, report) == [["alpha beta gamma"]]
    assert report.dropped == {"contaminated": 1}


def test_passages_are_whole_sentences_within_the_token_limit():
    docs = corpus()
    found = passages(docs, count_words, 40)
    assert found
    assert all(p.tokens <= 40 for p in found)
    for p in found:
        source = next(d for d in docs if d.id == p.document_id)
        assert p.text in source.text  # the author's own words, verbatim
        assert p.text.endswith(".")


def test_instruction_dataset_answers_are_the_authors_passages_and_splits_are_disjoint():
    docs = corpus()
    generator = ScriptedGenerator()
    cache: dict[str, dict[str, object]] = {}
    samples, report = build_instructions(docs, count_words, generator, PARAMS, RULES, cache=cache)
    assert len(samples) >= 10
    texts = {d.id: d.text for d in docs}
    assert all(s.answer in texts[s.document_id] for s in samples)
    check = health(samples)
    assert check.train
    assert check.test
    assert check.overlap == 0
    assert check.empty_fields == 0
    train_docs = {s.document_id for s in samples if s.split == "train"}
    assert train_docs.isdisjoint({s.document_id for s in samples if s.split == "test"})
    assert report.kept == len(samples)

    # Unchanged passages with the cache: no generation at all, the same dataset version.
    assert len(cache) == report.candidates - report.dropped.get("too_short", 0)
    idle = ScriptedGenerator()
    again, _ = build_instructions(docs, count_words, idle, PARAMS, RULES, cache=cache)
    assert idle.prompts == []
    assert version(again) == version(samples)


def test_unparseable_generations_are_counted_not_kept():
    def babble(conversations: Sequence[Sequence[Message]], params: GenerationParams) -> list[Generation]:
        return [Generation(text="lorem ipsum dolor", model="x") for _ in conversations]

    samples, report = build_instructions(corpus(), count_words, babble, PARAMS, RULES)
    assert samples == []
    assert report.dropped["unparseable_instruction"] == report.candidates - sum(
        v for k, v in report.dropped.items() if k != "unparseable_instruction"
    )


def test_preference_pairs_prefer_the_author_and_keep_the_split():
    samples, _ = build_instructions(corpus(), count_words, ScriptedGenerator(), PARAMS, RULES)
    rows = [s.as_row() for s in samples]
    answers = iter(
        ["As an AI, I think this topic is very important for many reasons.", "ok", *["Generic reply " * 4] * 99]
    )

    def base_model(conversations: Sequence[Sequence[Message]], params: GenerationParams) -> list[Generation]:
        return [Generation(text=next(answers), model="base") for _ in conversations]

    pairs, report = build_preferences(rows, base_model, PARAMS, RULES)
    assert report.dropped.get("rejected_too_short") == 1
    by_answer = {s.answer: s for s in samples}
    for pair in pairs:
        assert pair.chosen in by_answer
        assert pair.rejected != pair.chosen
        assert pair.split == by_answer[pair.chosen].split
    assert health(pairs).overlap == 0


def test_datasets_round_trip_through_hf_datasets_and_the_books_json(tmp_path: Path):
    samples, _ = build_instructions(corpus(), count_words, ScriptedGenerator(), PARAMS, RULES)
    sizes = save_dataset(samples, tmp_path / "hf")
    assert sizes["train"] + sizes["test"] == len(samples)
    rows = load_rows(tmp_path / "hf", "train")
    assert {r["answer"] for r in rows} == {s.answer for s in samples if s.split == "train"}

    book = book_json(samples, 0.3)
    assert set(book["train"]) == {"articles"}
    assert book["test_split_size"] == "0.3"
    path = tmp_path / "book.json"
    path.write_text(json.dumps(book))
    back = read_book_json(path)
    assert sorted((s.instruction, s.answer, s.split) for s in back) == sorted(  # type: ignore[union-attr]
        (s.instruction, s.answer, s.split) for s in samples
    )


def test_the_books_own_dataset_files_are_readable():
    if not BOOK_ARTIFACTS.is_dir():
        pytest.skip("the book's artifacts come with ../shared")
    instructions = read_book_json(BOOK_ARTIFACTS / "instruct_datasets.json")
    preferences = read_book_json(BOOK_ARTIFACTS / "preference_datasets.json")
    assert len(instructions) > 1000
    assert all(isinstance(s, InstructionSample) for s in instructions)
    assert {s.split for s in preferences} == {"train", "test"}
    assert all(s.chosen and s.rejected for s in preferences)  # type: ignore[union-attr]


def test_a_file_in_another_format_is_refused_by_name(tmp_path: Path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps([{"instruction": "x"}]))
    with pytest.raises(ValueError, match=r"other\.json: not a dataset in the book's format"):
        read_book_json(path)
