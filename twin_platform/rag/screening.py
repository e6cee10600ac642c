"""Prompt-injection screening: flags (never blocks) text that tries to override the twin's instructions.

Matching runs on a *skeleton* of the text, so trivial disguises do not hide a phrase: Unicode
compatibility forms folded (NFKC: full-width letters, ligatures), zero-width and other format
characters removed, combining marks dropped, case folded, homoglyphs of other scripts mapped to the
Latin letter they imitate (Unicode's confusables data, via ``confusable_homoglyphs``: Cyrillic "\u0456"
reads as "i"), and every run of whitespace collapsed to one space. Flags are stable names, returned to
the client and written to the query log.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

from confusable_homoglyphs import confusables

INJECTION_PATTERNS: dict[str, re.Pattern[str]] = {
    name: re.compile(pattern)
    for name, pattern in {
        "override-instructions": r"\b(ignore|forget|override) (all |any |the |your |of )*"
        r"(previous|prior|above|earlier) (instructions?|prompts?|rules|directions)",
        "disregard-system-prompt": r"\bdisregard (all |any |the |your )*(system|previous|prior|above) "
        r"(prompt|instructions?|rules)",
        "role-reassignment": r"\byou are now\b|\bfrom now on,? you are\b",
        "prompt-extraction": r"\b(reveal|show|print|repeat|leak) (me )?(your|the) (system |initial |hidden )?"
        r"(prompt|instructions)",
        "system-prompt-mention": r"\bsystem prompt\b",
        "jailbreak-persona": r"\bact as (an? )?(unfiltered|jailbroken|dan)\b|\bdeveloper mode\b",
        "chat-template-tokens": r"<\|im_start\|>|<\|system\|>|<\|im_end\|>|\[inst\]|<<sys>>",
    }.items()
}


@lru_cache(maxsize=4096)
def _latin_lookalike(char: str) -> str:
    """The ASCII letter ``char`` imitates, or ``char`` itself."""
    found = confusables.is_confusable(char, greedy=True, preferred_aliases=["latin"])
    for entry in found or ():
        for glyph in entry["homoglyphs"]:
            if glyph["c"].isascii():
                return str(glyph["c"])
    return char


def skeleton(text: str) -> str:
    """``text`` reduced to what it looks like, for matching (see the module docstring)."""
    folded = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    kept = (c for c in folded if unicodedata.category(c) not in {"Cf", "Mn", "Me"})
    mapped = "".join(c if c.isascii() else _latin_lookalike(c) for c in kept).casefold()
    return " ".join(mapped.split())


def injection_flags(texts: str | Iterable[str]) -> list[str]:
    """Names of the injection patterns found in any of ``texts`` (every turn of a conversation), in a fixed order."""
    skeletons = [skeleton(t) for t in ([texts] if isinstance(texts, str) else texts)]
    return [name for name, pattern in INJECTION_PATTERNS.items() if any(pattern.search(s) for s in skeletons)]
