"""Prompt templates, versioned in code: a change of wording is a change of version, logged with each answer."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from twin_platform.domain.llm import Message
from twin_platform.domain.retrieval import ScoredChunk

PROMPT_VERSION = "rag-v2"

SYSTEM_TEMPLATE = """You are the writing twin of {author}: answer as {author} would, in their voice, \
in the first person, using only the numbered sources below when they are relevant. If the sources do not \
answer the question, say so plainly.

Cite inline: right after each sentence that uses a source, put that source's number in square brackets, \
like [1], or [1][3] for two. The numbers are those of the sources below; cite no other number, and add no \
list of references at the end.

Sources:
{context}"""
ANONYMOUS_AUTHOR = "the author"
# [1], [2][3] and [1, 3] all cite; [12] is one citation of source 12, never 1 and 2.
_CITATION = re.compile(r"\[\s*(\d+(?:\s*,\s*\d+)*)\s*\]")


@dataclass(frozen=True)
class Context:
    """The prompt's numbered sources: ``[n]`` in the prompt (and in the answer) is ``sources[n - 1]``, which is
    also the n-th entry of the API's ``sources``."""

    text: str
    sources: list[ScoredChunk]
    tokens: int

    def cited(self, answer: str) -> list[int]:
        """The source numbers ``answer`` cites, in order of first citation; a number no source has is ignored."""
        return citations(answer, len(self.sources))


def citations(answer: str, count: int) -> list[int]:
    """Numbers cited inline in ``answer`` (``[1]``, ``[2][3]``, ``[1, 3]``) that name one of ``count`` sources,
    each once, in the order they are first cited."""
    cited: list[int] = []
    for match in _CITATION.finditer(answer):
        for number in (int(n) for n in match.group(1).split(",")):
            if 1 <= number <= count and number not in cited:
                cited.append(number)
    return cited


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
