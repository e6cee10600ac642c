"""Cleaning and chunking, with the embedding model's real tokenizer."""

from __future__ import annotations

import pytest

from twin_platform.domain.documents import Category
from twin_platform.features.chunking import ChunkingOptions, chunk_document, chunk_id
from twin_platform.features.cleaning import CleaningOptions, clean_document

CRAWLED_ARTICLE = """Jane Doe

  * __Home
  * __Articles
  * __About

SubscribeSign in

Share this post

#### Hybrid search in Postgres

jane.substack.com

Copy link

Facebook

Email

# Hybrid search in Postgres

### Full-text and vectors, fused

Image by author

Most retrieval bugs are data bugs. We kept the index in Postgres because the
filters already lived there, and the joins were free. See [the docs](https://example.com/docs)
or https://example.com/raw for details.

**Reciprocal rank fusion** adds 1/(60 + rank) per list. It is fine-
tuned by nobody.

Share this post

#### Hybrid search in Postgres

Ready for more?

© 2025 Jane Doe

Privacy ∙ Terms ∙ Collection notice
"""


def test_crawled_article_loses_navigation_widgets_and_link_clutter():
    text = clean_document(Category.ARTICLE, CRAWLED_ARTICLE)
    assert text == (
        "Jane Doe\n\nHybrid search in Postgres\n\nFull-text and vectors, fused\n\n"
        "Most retrieval bugs are data bugs. We kept the index in Postgres because the filters already lived "
        "there, and the joins were free. See the docs or for details.\n\n"
        "Reciprocal rank fusion adds 1/(60 + rank) per list. It is fine-tuned by nobody."
    )


def test_real_list_items_and_unicode_are_kept_normalised():
    text = clean_document(
        Category.POST,
        "Three things:\n\n- Measure recall before tuning anything.\n"
        "- Keep filters next to vectors.\n- Write the rollback first.\n\nﬁn\u200b",
    )
    assert "- Measure recall before tuning anything.\n- Keep filters next to vectors." in text
    assert text.endswith("fin")


def test_repository_code_blocks_are_kept_intact():
    code = "```python\ndef chunk(text):\n\n    #  spacing   matters\n    return  text\n```"
    text = clean_document(Category.REPOSITORY, f"### chunklet/__init__.py\n\n{code}\n\nSome   prose.")
    assert code in text
    assert text.endswith("Some prose.")


def test_pii_masking_is_optional():
    raw = "Write to jane.doe@example.com or call +44 20 7946 0958 before 2025."
    assert "jane.doe@example.com" in clean_document(Category.POST, raw)
    masked = clean_document(Category.POST, raw, CleaningOptions(mask_pii=True))
    assert masked == "Write to [EMAIL] or call [PHONE] before 2025."


def test_articles_are_packed_with_overlap_and_never_exceed_the_model(embedder):
    sentences = [f"Sentence number {i} talks about vector indexes and recall at ten." for i in range(120)]
    paragraphs = ["\n".join(sentences[i : i + 6]).replace("\n", " ") for i in range(0, 120, 6)]
    monster = "A " + "very " * 400 + "long sentence without any full stop"
    text = "\n\n".join([*paragraphs, monster, "Ends here with x" + "y" * 3000 + "."])
    options = ChunkingOptions(max_tokens=embedder.max_tokens, target_tokens=120, overlap_tokens=24)
    chunks = chunk_document("doc-1", Category.ARTICLE, text, embedder.count_tokens, options)
    assert len(chunks) > 10
    assert max(c.tokens for c in chunks) <= embedder.max_tokens
    assert [c.tokens for c in chunks] == embedder.count_tokens([c.text for c in chunks])
    # consecutive chunks share their boundary sentence (overlap)
    first_end = chunks[0].text.split(". ")[-1]
    assert first_end.rstrip(".") in chunks[1].text
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_short_posts_stay_whole_and_ids_are_stable(embedder):
    options = ChunkingOptions(max_tokens=embedder.max_tokens)
    post = "Postgres is still the most underrated vector database.\n\nHere is why."
    [chunk] = chunk_document("doc-2", Category.POST, post, embedder.count_tokens, options)
    assert chunk.text == post
    assert chunk.id == chunk_id("doc-2", post)
    assert chunk_document("doc-2", Category.POST, post, embedder.count_tokens, options)[0].id == chunk.id
    assert chunk_document("doc-3", Category.POST, post, embedder.count_tokens, options)[0].id != chunk.id


def test_code_is_split_at_blocks_with_file_headers(embedder):
    functions = "\n\n".join(
        f"def function_{i}(values):\n    total = 0\n    for value in values:\n        total += value * {i}\n"
        f"    return total"
        for i in range(40)
    )
    repo = f"### README.md\n\n# tool\n\nDoes things.\n\n### tool/core.py\n\n```python\n{functions}\n```"
    options = ChunkingOptions(max_tokens=embedder.max_tokens)
    chunks = chunk_document("repo", Category.REPOSITORY, repo, embedder.count_tokens, options)
    assert chunks[0].text.startswith("### README.md\n\n")
    code_chunks = [c for c in chunks if "tool/core.py" in c.text]
    assert len(code_chunks) > 1
    for chunk in code_chunks:
        assert chunk.text.startswith("### tool/core.py\n```python\n")
        assert chunk.text.endswith("\n```")
        body = chunk.text.split("```python\n", 1)[1]
        assert body.startswith("def function_")  # a function is never cut in the middle
    assert max(c.tokens for c in chunks) <= embedder.max_tokens


def test_options_are_validated():
    with pytest.raises(ValueError, match="target_tokens"):
        ChunkingOptions(max_tokens=100, target_tokens=200)
    with pytest.raises(ValueError, match="overlap_tokens"):
        ChunkingOptions(max_tokens=254, target_tokens=100, overlap_tokens=100)
