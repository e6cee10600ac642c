"""Retrieval evaluation: question sets (dataset rows, question files, title questions), the metrics through the
real RAG pipeline on the indexed demo author, and LLM self-query through the pipeline with the local TGI
stand-in."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.domain.datasets import InstructionSample, Passage
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.features import CleanedDocument
from twin_platform.domain.retrieval import SearchFilters
from twin_platform.evaluation.questions import (
    Question,
    QuestionFileError,
    author_questions,
    questions_from_rows,
    read_question_file,
    title_questions,
)
from twin_platform.evaluation.retrieval import (
    RetrievalReport,
    containment,
    evaluate_retrieval,
    passage_overlap,
    word_ngrams,
)
from twin_platform.rag.pipeline import RAGPipeline, RAGRequest
from twin_platform.rag.self_query import SCHEMA, rule_based
from twin_platform.settings import Settings
from twin_platform_tests.api_fixtures import make_client, tgi_llm
from twin_platform_tests.web.tgi import ANSWER, FakeTGI

AUTHOR = "mara-ellison"

# --- question sets -----------------------------------------------------------------------------------------


def sample(n: int, split: str, document: str = "doc-1") -> dict[str, Any]:
    return InstructionSample(
        id=f"s{n}",
        instruction=f"Question {n}?",
        answer=f"The author's passage number {n}, in her own words.",
        document_id=document,
        category="article",
        split=split,  # type: ignore[arg-type]
    ).as_row()


def test_questions_come_from_the_test_split_only():
    rows = [sample(1, "train"), sample(2, "test", "doc-2"), sample(3, "test", "doc-3")]
    questions = questions_from_rows(rows)
    assert [(q.id, q.text, q.document_id, q.origin) for q in questions] == [
        ("s2", "Question 2?", "doc-2", "test_split"),
        ("s3", "Question 3?", "doc-3", "test_split"),
    ]
    assert questions[0].passage == rows[1]["answer"]
    assert questions[0].category == "article"
    # Rows loaded from the test split alone may carry no split at all.
    assert len(questions_from_rows([{k: v for k, v in sample(4, "test").items() if k != "split"}])) == 1


def test_a_row_without_a_document_is_refused_by_name():
    with pytest.raises(ValueError, match="row s5: no document_id"):
        questions_from_rows([sample(5, "test", document="")])


def test_question_files_are_read_line_by_line(tmp_path: Path):
    path = tmp_path / "questions.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"question": "How do you swap embedding models?", "document_id": "doc-9"}),
                "",
                json.dumps(
                    {
                        "question": " Why OR the words? ",
                        "source_url": "https://blog.example/p/x",
                        "passage": "Natural questions share words with most chunks.",
                        "id": "or-words",
                    }
                ),
            ]
        )
        + "\n"
    )
    first, second = read_question_file(path)
    assert (first.document_id, first.source_url, first.passage, first.origin) == ("doc-9", None, None, "user_file")
    assert first.id.startswith("user-")
    assert (second.id, second.text, second.source_url) == ("or-words", "Why OR the words?", "https://blog.example/p/x")
    assert second.is_source("any", "https://blog.example/p/x")
    assert not second.is_source("doc-9", "https://x")
    assert read_question_file(tmp_path / "absent.jsonl") == []
    assert [q.origin for q in author_questions([sample(1, "test")], path)] == ["test_split", "user_file", "user_file"]


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (['{"question": "Why?"'], "line 1: not JSON"),
        (['{"question": "Why?", "document_id": "d"}', '["Why?", "d"]'], "line 2: expected a JSON object"),
        (['{"document_id": "d"}'], "line 1: question: Field required"),
        (['{"question": "  ", "document_id": "d"}'], "line 1: question: String should have at least 1 character"),
        (['{"question": "Why?"}'], "line 1: .*needs a document_id or a source_url"),
        (['{"question": "Why?", "url": "https://x"}'], "line 1: url: Extra inputs are not permitted"),
        (['{"question": 7, "document_id": "d"}'], "line 1: question: Input should be a valid string"),
        (
            ['{"question": "Why?", "document_id": "d"}', "", '{"question": "Why?", "document_id": "d"}'],
            "line 3: repeats",
        ),
    ],
)
def test_a_bad_question_file_names_the_line(tmp_path: Path, lines: list[str], message: str):
    path = tmp_path / "questions.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(QuestionFileError, match=f"{re.escape(str(path))}, {message}"):
        read_question_file(path)


def test_a_question_file_that_is_not_utf8_names_the_line(tmp_path: Path):
    path = tmp_path / "questions.jsonl"
    path.write_bytes(b'{"question": "Why?", "document_id": "d"}\n{"question": "caf\xe9?", "document_id": "d"}\n')
    with pytest.raises(QuestionFileError, match="line 2: not UTF-8"):
        read_question_file(path)


def passage(index: int, text: str, title: str = "Hybrid Search in Plain Postgres") -> Passage:
    return Passage("doc-1", AUTHOR, "article", title, index, text, len(text.split()))


def test_title_questions_name_the_title_and_the_passages_own_words():
    corpus = [
        passage(0, "Postgres keeps the vectors. Postgres keeps filters beside the vectors. Rank fusion merges lists."),
        passage(1, "Postgres answers full text queries from a GIN index over tsvector columns, one tsvector a row."),
        passage(2, "Postgres replication keeps a standby ready for failover."),
    ]
    questions = title_questions(corpus)
    assert questions == title_questions(list(corpus))  # deterministic
    first = questions[0]
    # "postgres" is in the title (and every passage): never a term. "vectors" is twice here and nowhere else: first;
    # "keeps" is twice here but also in passage 2: behind the words only this passage has (ties alphabetical).
    assert first.text == "Hybrid Search in Plain Postgres: vectors, beside, filters"
    assert (first.document_id, first.passage, first.origin, first.id) == (
        "doc-1",
        corpus[0].text,
        "title",
        corpus[0].id,
    )
    assert "tsvector" in questions[1].text
    assert "failover" in questions[2].text


# --- overlap, by hand -------------------------------------------------------------------------------------------


def test_passage_overlap_is_the_smaller_texts_share_of_5_grams():
    passage_text = "one two three four five six seven eight"  # 4 five-grams
    chunk = "six seven eight nine ten eleven twelve"  # 3 five-grams, none shared
    assert passage_overlap(chunk, passage_text) == 0.0
    half = "zero one two three four five six"  # 3 five-grams; shares (one..five) and (two..six)
    assert word_ngrams(half) & word_ngrams(passage_text) == {
        ("one", "two", "three", "four", "five"),
        ("two", "three", "four", "five", "six"),
    }
    assert passage_overlap(half, passage_text) == pytest.approx(2 / 3)  # min(3, 4) = 3
    assert passage_overlap("Two THREE four, five six!", passage_text) == 1.0  # inside the passage; case, punctuation
    assert containment(passage_text, half) == pytest.approx(2 / 4)
    assert passage_overlap("too short", passage_text) == 0.0


# --- metrics through the real pipeline -----------------------------------------------------------------------


@pytest.fixture
def runtime(api_settings: Settings) -> Iterator[Runtime]:
    """A copy of the indexed demo author's database."""
    with open_runtime(api_settings) as opened:
        yield opened


def pipeline_on(runtime: Runtime, embedder: Any, **options: Any) -> RAGPipeline:
    return RAGPipeline(index=runtime.search, embedder=embedder, authors=runtime.authors.list, **{"llm": None} | options)


def document(runtime: Runtime, title_start: str) -> CleanedDocument:
    [found] = [d for d in runtime.features.cleaned_documents(AUTHOR) if d.title.startswith(title_start)]
    return found


def test_metrics_through_the_pipeline_match_a_count_by_hand(runtime: Runtime, embedder: Any):
    swap = document(runtime, "Swapping Embedding Models")
    hybrid = document(runtime, "Hybrid Search in Plain Postgres")
    sensors = document(runtime, "Sensors, Cursors")
    [swap_paragraph] = [p for p in swap.text.split("\n\n") if p.startswith("So a model change means re-embedding")]
    questions = [
        # The answer is known: the swapping article, and the paragraph that says what the article is about.
        Question(
            id="swap",
            text="How do I keep search up while swapping embedding models?",
            document_id=swap.id,
            passage=swap_paragraph,
            origin="user_file",
        ),
        # By source URL, as a question file may name it.
        Question(
            id="hybrid",
            text="How do you combine full-text search and pgvector results with reciprocal rank fusion?",
            source_url=hybrid.source_url,
            origin="user_file",
        ),
        # A source that does not answer: the sensors article for an indexing question; ranked low or missed.
        Question(
            id="wrong", text="HNSW or IVFFlat for millions of vectors?", document_id=sensors.id, origin="user_file"
        ),
    ]
    pipeline = pipeline_on(runtime, embedder)
    report = evaluate_retrieval(pipeline, questions, author_id=AUTHOR)
    swap_row, hybrid_row, wrong_row = report.results
    assert swap_row.document_rank == 1
    assert swap_row.context_hit
    assert swap_row.passage_rank is not None
    assert hybrid_row.document_rank == 1
    assert hybrid_row.passage_rank is None
    assert not hybrid_row.has_passage
    assert wrong_row.document_rank != 1

    # The same figures counted by hand from the pipeline's own output.
    ranks = []
    for question in questions:
        request = RAGRequest(query=question.text, author_id=AUTHOR, k=10)
        retrieval = pipeline.retrieve(request)
        assert len(retrieval.hits) == 10
        ranks.append(
            next(
                (
                    i
                    for i, hit in enumerate(retrieval.hits, start=1)
                    if hit.document_id == question.document_id or hit.source_url == question.source_url
                ),
                None,
            )
        )
    assert ranks == [r.document_rank for r in report.results]
    assert report.summary.mrr == round(sum(1 / r for r in ranks if r) / 3, 4)
    assert report.summary.hit_at_1 == round(sum(1 for r in ranks if r == 1) / 3, 4)
    assert report.summary.hit_at_3 == round(sum(1 for r in ranks if r and r <= 3) / 3, 4)
    assert report.summary.passage_questions == 1

    # Context recall by hand: the share of the paragraph's word 5-grams in the prompt the LLM would get.
    request = RAGRequest(query=questions[0].text, author_id=AUTHOR, k=10)
    messages, context = pipeline.prompt(request, pipeline.retrieve(request))
    assert context.text in messages[0].content

    def grams(text: str) -> set[tuple[str, ...]]:
        words = re.findall(r"[^\W_]+", text.lower())
        return {tuple(words[i : i + 5]) for i in range(len(words) - 4)}

    expected = len(grams(swap_paragraph) & grams(context.text)) / len(grams(swap_paragraph))
    assert swap_row.context_recall == round(expected, 4)
    assert report.summary.context_recall == swap_row.context_recall
    assert swap_row.context_recall > 0.9  # the paragraph reached the prompt

    assert RetrievalReport.model_validate_json(report.model_dump_json()) == report
    with pytest.raises(ValueError, match="k must be at least 10"):
        evaluate_retrieval(pipeline, questions, k=5)


# --- LLM self-query through the pipeline ---------------------------------------------------------------------


def answer_filters(tgi: FakeTGI, reply: str) -> None:
    """The stand-in answers ``reply`` to self-query requests and the usual answer to anything else."""

    def respond(body: dict[str, Any]) -> str:
        messages = body.get("messages") or []
        asks_filters = bool(messages) and messages[0]["content"].startswith("Extract search filters")
        return reply if asks_filters else ANSWER

    tgi.reply = respond


def test_llm_self_query_filters_reach_the_search(runtime: Runtime, embedder: Any, tgi: FakeTGI):
    reply = {
        "author": "M. Ellison",  # an alias
        "platform": "LinkedIn",  # any case
        "category": "post",
        "published_after": "2025-01-01",
        "published_before": None,
    }
    answer_filters(tgi, "Here you go: " + json.dumps(reply))
    question = "short notes about chunking"
    assert rule_based(question, runtime.authors.list()) == SearchFilters()  # the rules find nothing here
    pipeline = pipeline_on(runtime, embedder, llm=tgi_llm(tgi), llm_self_query=True)
    retrieval = pipeline.retrieve(RAGRequest(query=question, k=5))
    assert retrieval.self_query_method == "llm"
    assert retrieval.filters == SearchFilters(
        author_id=AUTHOR,
        platforms=(Platform.LINKEDIN,),
        categories=(Category.POST,),
        published_after=datetime(2025, 1, 1, tzinfo=UTC),
    )
    assert retrieval.hits
    assert all(h.platform == Platform.LINKEDIN and h.category == Category.POST for h in retrieval.hits)
    assert all(h.published_at and h.published_at >= datetime(2025, 1, 1, tzinfo=UTC) for h in retrieval.hits)
    [(path, body)] = tgi.requests
    assert path == "/v1/chat/completions"
    assert body["response_format"]["value"] == SCHEMA  # the JSON schema goes to TGI's grammar
    assert "Mara Ellison" in body["messages"][0]["content"]
    assert body["messages"][1]["content"] == question
    # Off (the default), the LLM is never asked.
    off = pipeline_on(runtime, embedder, llm=tgi_llm(tgi)).retrieve(RAGRequest(query=question, k=5))
    assert (off.self_query_method, len(tgi.requests)) == ("none", 1)


QUESTION = "What did Mara write on LinkedIn in 2025?"


@pytest.mark.parametrize(
    "reply",
    [
        "Mara, on LinkedIn, in 2025.",  # no JSON at all
        "{'author': 'Mara Ellison', 'platform': 'linkedin'}",  # single quotes
        '{"author": "Mara Ellison", "platform": ',  # cut off
        '["Mara Ellison", "linkedin"]',  # not an object
    ],
)
def test_llm_self_query_without_valid_json_falls_back_to_the_rules(
    runtime: Runtime, embedder: Any, tgi: FakeTGI, reply: str
):
    answer_filters(tgi, reply)
    retrieval = pipeline_on(runtime, embedder, llm=tgi_llm(tgi), llm_self_query=True).retrieve(RAGRequest(QUESTION))
    assert retrieval.self_query_method == "rules"
    assert retrieval.filters == rule_based(QUESTION, runtime.authors.list())
    assert retrieval.filters.author_id == AUTHOR
    assert retrieval.filters.platforms == (Platform.LINKEDIN,)
    assert len(tgi.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [
        {"author": "Mara Ellison", "platform": "myspace"},  # no such platform
        {"author": "Mara Ellison", "category": "podcast"},  # no such category
        {"author": "Mara Ellison", "published_after": "last spring"},  # not a date
        {"published_after": "2026-01-01", "published_before": "2025-01-01"},  # an empty range
    ],
)
def test_llm_self_query_with_an_unknown_value_falls_back_to_the_rules(
    runtime: Runtime, embedder: Any, tgi: FakeTGI, reply: dict[str, Any]
):
    answer_filters(tgi, json.dumps(reply))
    retrieval = pipeline_on(runtime, embedder, llm=tgi_llm(tgi), llm_self_query=True).retrieve(RAGRequest(QUESTION))
    assert retrieval.self_query_method == "rules"
    assert retrieval.filters == rule_based(QUESTION, runtime.authors.list())


def test_llm_self_query_drops_an_unknown_author_and_keeps_the_rest(runtime: Runtime, embedder: Any, tgi: FakeTGI):
    answer_filters(tgi, json.dumps({"author": "Jane Doe", "platform": "linkedin", "published_after": None}))
    retrieval = pipeline_on(runtime, embedder, llm=tgi_llm(tgi), llm_self_query=True).retrieve(RAGRequest(QUESTION))
    assert retrieval.self_query_method == "llm"
    assert retrieval.filters == SearchFilters(platforms=(Platform.LINKEDIN,))  # no author filter for a stranger


def test_llm_self_query_with_the_llm_down_uses_the_rules(runtime: Runtime, embedder: Any, tgi: FakeTGI):
    tgi.mode = "down"
    retrieval = pipeline_on(runtime, embedder, llm=tgi_llm(tgi), llm_self_query=True).retrieve(RAGRequest(QUESTION))
    assert (retrieval.self_query_method, retrieval.filters.author_id) == ("rules", AUTHOR)
    assert retrieval.hits  # search goes on without the LLM


def test_the_setting_turns_llm_self_query_on_in_the_api(api_settings: Settings, tgi: FakeTGI):
    assert Settings().rag_llm_self_query is False
    answer_filters(tgi, json.dumps({"platform": "linkedin", "category": "post"}))
    settings = api_settings.model_copy(update={"rag_llm_self_query": True, "embedding_query_backend": "torch"})
    client, state, headers = make_client(settings, tgi_llm(tgi))
    with client:
        body = client.post("/v1/search", headers=headers, json={"query": "short notes about chunking"}).json()
    state.close()
    assert (body["filters"]["platforms"], body["filters"]["categories"]) == (["linkedin"], ["post"])
    assert body["sources"]
    assert {(s["platform"], s["category"]) for s in body["sources"]} == {("linkedin", "post")}
