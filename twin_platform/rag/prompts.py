"""Prompt templates, versioned in code: a change of wording is a change of version, logged with each answer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twin_platform.domain.llm import Message
from twin_platform.domain.retrieval import ScoredChunk

PROMPT_VERSION = "rag-v1"

SYSTEM_TEMPLATE = """You are the writing twin of {author}: answer as {author} would, in their voice, \
in the first person, using only the sources below when they are relevant. If the sources do not \
answer the question, say so plainly. Cite sources as [1], [2].

Sources:
{context}"""
ANONYMOUS_AUTHOR = "the author"


@dataclass(frozen=True)
class Context:
    text: str
    sources: list[ScoredChunk]
    tokens: int


def assemble_context(
    hits: Sequence[ScoredChunk], count_tokens: Callable[[Sequence[str]], list[int]], budget: int
) -> Context:
    """Numbered sources, best first, as many as fit ``budget`` tokens (a source is never cut in half,
    except the first, which is trimmed rather than dropped)."""
    blocks: list[str] = []
    sources: list[ScoredChunk] = []
    used = 0
    for hit in hits:
        block = f"[{len(sources) + 1}] {hit.title} ({hit.source_url})\n{hit.text}"
        size = count_tokens([block])[0]
        if used + size > budget:
            if sources:
                break
            words = block.split()
            block = " ".join(words[: max(1, len(words) * budget // max(size, 1))])
            size = count_tokens([block])[0]
        blocks.append(block)
        sources.append(hit)
        used += size
    return Context(text="\n\n".join(blocks) if blocks else "(no sources found)", sources=sources, tokens=used)


def rag_messages(
    question: str, context: Context, author_name: str | None, history: Sequence[Message] = ()
) -> list[Message]:
    system = SYSTEM_TEMPLATE.format(author=author_name or ANONYMOUS_AUTHOR, context=context.text)
    return [Message("system", system), *history, Message("user", question)]
