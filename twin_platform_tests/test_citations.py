"""Inline citations: the prompt numbers its sources and asks for [n]; [n] in the answer is the API's sources[n-1]."""

from __future__ import annotations

import json

from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.llm import Generation
from twin_platform.domain.retrieval import ScoredChunk, SearchFilters
from twin_platform.rag.pipeline import Answer, Retrieval
from twin_platform.rag.prompts import PROMPT_VERSION, assemble_context, citations, rag_messages
from twin_platform_tests.web.tgi import FakeTGI


def hit(i: int, text: str) -> ScoredChunk:
    return ScoredChunk(
        chunk_id=str(i),
        document_id=f"d{i}",
        author_id="mara-ellison",
        title=f"Title {i}",
        source_url=f"https://example.com/{i}",
        platform=Platform.WEB,
        category=Category.ARTICLE,
        published_at=None,
        text=text,
        score=1.0 / (i + 1),
    )


def words(texts) -> list[int]:
    return [len(t.split()) for t in texts]


HITS = [hit(0, "Vectors live in Postgres."), hit(1, "Chunks are sized in tokens."), hit(2, "Evals come first.")]


def test_the_prompt_numbers_its_sources_and_asks_for_inline_citations():
    context = assemble_context(HITS, words, budget=1000)
    [system, user] = rag_messages("Where do vectors live?", context, "Mara Ellison")
    assert user.content == "Where do vectors live?"
    prompt = system.content
    # Each source under its number, in the order of context.sources (the API's sources).
    positions = [prompt.index(f"[{n}] {h.title} ({h.source_url})\n{h.text}") for n, h in enumerate(HITS, 1)]
    assert positions == sorted(positions)
    assert context.sources == HITS
    instructions = prompt.split("Sources:")[0]
    assert "Cite inline" in instructions
    assert "[1]" in instructions
    assert "square brackets" in instructions
    assert "cite no other number" in instructions
    assert PROMPT_VERSION == "rag-v2"  # the wording changed with the citation instructions


def test_a_source_that_does_not_fit_is_not_numbered():
    context = assemble_context(HITS, words, budget=20)
    assert [h.chunk_id for h in context.sources] == ["0", "1"]
    assert "[3]" not in context.text
    assert context.cited("First [1], then [3], then [2].") == [1, 2]  # [3] names no source in the prompt


def test_citations_are_read_in_order_once_each_and_only_when_they_name_a_source():
    assert citations("Postgres [2]. Tokens [1][2]. Both [1, 3].", 3) == [2, 1, 3]
    assert citations("No sources here.", 3) == []
    assert citations("Out of range [0] [4] [12].", 3) == []
    assert citations("Source twelve [12].", 12) == [12]  # not 1 and 2
    assert citations("A list [1,2 ] and a link [text](url) [a].", 2) == [1, 2]


def test_an_answer_maps_its_citations_to_its_sources():
    context = assemble_context(HITS, words, budget=1000)
    retrieval = Retrieval(
        hits=HITS, filters=SearchFilters(), self_query_method="rules", queries=["q"], injection_flags=[], timings_ms={}
    )
    answer = Answer(
        text="Evals come first [3], and vectors stay in Postgres [1].",
        retrieval=retrieval,
        context=context,
        generation=Generation(text="", model="m", prompt_tokens=1, completion_tokens=1, finish_reason="stop"),
    )
    assert answer.citations == [3, 1]
    assert [answer.context.sources[n - 1].title for n in answer.citations] == ["Title 2", "Title 0"]


def test_the_api_returns_the_citations_with_the_sources_they_number(api, tgi: FakeTGI):
    client, _, headers = api
    tgi.reply = lambda body: "Keep vectors in Postgres [2]; chunk by tokens [1] [2] [7]."
    body = client.post("/v1/rag", headers=headers, json={"query": "Why keep vectors in Postgres?", "k": 3}).json()
    assert body["citations"] == [2, 1]
    system = tgi.requests[-1][1]["messages"][0]["content"]
    for n, source in enumerate(body["sources"], 1):  # the API's sources are the prompt's, in the same order
        assert f"[{n}] {source['title']} ({source['url']})" in system

    with client.stream(
        "POST", "/v1/rag", headers=headers, json={"query": "Why keep vectors in Postgres?", "k": 3, "stream": True}
    ) as response:
        text = "".join(response.iter_text())
    final = [block for block in text.replace("\r\n", "\n").split("\n\n") if block.strip()][-1]
    assert final.startswith("event: sources")
    assert json.loads(final.split("data: ", 1)[1])["citations"] == [2, 1]
