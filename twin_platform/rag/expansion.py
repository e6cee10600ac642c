"""Query expansion: N rephrasings of the question, so retrieval does not hinge on one wording."""

from __future__ import annotations

import re

from twin_platform.domain.llm import GenerationParams, LLMClient, LLMError, Message

EXPANSION_VERSION = "expand-v1"


def expand_query(question: str, llm: LLMClient | None, n: int) -> list[str]:
    """The question itself first, then up to ``n - 1`` distinct rephrasings (none when no LLM answers)."""
    queries = [question]
    if llm is None or n <= 1:
        return queries
    prompt = (
        f"Write {n - 1} different search queries for the question below, one per line, no numbering, "
        f"no explanations.\n\nQuestion: {question}"
    )
    try:
        text = llm.generate([Message("user", prompt)], GenerationParams(max_tokens=40 * n, temperature=0.3)).text
    except LLMError:
        return queries
    seen = {question.casefold()}
    for line in text.splitlines():
        candidate = re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip('"')
        if 3 <= len(candidate) <= 300 and candidate.casefold() not in seen:
            seen.add(candidate.casefold())
            queries.append(candidate)
        if len(queries) == n:
            break
    return queries
