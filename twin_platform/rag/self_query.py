"""Self-query: read filters out of the question (author, platform, category, date range).

An LLM with a JSON schema does it when one is available and answers valid JSON; the rules below
do it otherwise (and check the LLM's answer: only known authors, platforms and categories pass).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Category, Platform
from twin_platform.domain.llm import GenerationParams, LLMClient, LLMError, Message
from twin_platform.domain.retrieval import SearchFilters

SELF_QUERY_VERSION = "self-query-v1"
_PLATFORM_WORDS = {
    Platform.MEDIUM: r"medium",
    Platform.SUBSTACK: r"substack|newsletters?",
    Platform.LINKEDIN: r"linked\s?in",
    Platform.GITHUB: r"github|repos?(itor(y|ies))?",
}
_CATEGORY_WORDS = {
    Category.ARTICLE: r"articles?|blog\s?posts?|essays?",
    Category.POST: r"(?<!blog )posts?|updates?|shares?",
    Category.REPOSITORY: r"repos?(itor(y|ies))?|code\s?bases?|projects? on github",
}
_MONTHS = {
    m: i
    for i, m in enumerate(
        [
            "january",
            "february",
            "march",
            "april",
            "may",
            "june",
            "july",
            "august",
            "september",
            "october",
            "november",
            "december",
        ],
        start=1,
    )
}
_YEAR = r"(20\d\d|19\d\d)"

SCHEMA: dict[str, object] = {
    "type": "object",
    "properties": {
        "author": {"type": ["string", "null"]},
        "platform": {"type": ["string", "null"], "enum": [*[p.value for p in Platform], None]},
        "category": {"type": ["string", "null"], "enum": [*[c.value for c in Category], None]},
        "published_after": {"type": ["string", "null"], "description": "ISO date"},
        "published_before": {"type": ["string", "null"], "description": "ISO date"},
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class SelfQueryResult:
    filters: SearchFilters
    method: str  # "llm", "rules" or "none"


def _date(year: int, month: int = 1) -> datetime:
    return datetime(year, month, 1, tzinfo=UTC)


def _next_month(moment: datetime) -> datetime:
    return _date(moment.year + (moment.month == 12), moment.month % 12 + 1)


def date_range(question: str, now: datetime) -> tuple[datetime | None, datetime | None]:
    text = question.lower()
    month_year = re.search(rf"\b(in|during)\s+({'|'.join(_MONTHS)})\s+{_YEAR}\b", text)
    if month_year:
        start = _date(int(month_year.group(3)), _MONTHS[month_year.group(2)])
        return start, _next_month(start)
    if match := re.search(rf"\b(since|after|from)\s+(?:({'|'.join(_MONTHS)})\s+)?{_YEAR}\b", text):
        month = _MONTHS.get(match.group(2) or "", 1)
        start = _date(int(match.group(3)), month)
        return (start if match.group(1) != "after" or match.group(2) else _date(int(match.group(3)) + 1)), None
    if match := re.search(rf"\bbefore\s+(?:({'|'.join(_MONTHS)})\s+)?{_YEAR}\b", text):
        return None, _date(int(match.group(2)), _MONTHS.get(match.group(1) or "", 1))
    if match := re.search(rf"\b(in|during)\s+{_YEAR}\b", text):
        year = int(match.group(2))
        return _date(year), _date(year + 1)
    if re.search(r"\blast year\b", text):
        return _date(now.year - 1), _date(now.year)
    if re.search(r"\bthis year\b", text):
        return _date(now.year), None
    return None, None


def rule_based(question: str, authors: Sequence[Author], now: datetime | None = None) -> SearchFilters:
    """Filters from plain rules: names and aliases of registered authors, platform and category words, dates."""
    now = now or datetime.now(UTC)
    text = question.lower()
    author_id = None
    for author in sorted(authors, key=lambda a: -len(a.full_name)):
        parts = author.full_name.split()
        names = [author.full_name, *author.aliases, parts[-1], parts[0]]
        if any(re.search(rf"\b{re.escape(name.lower())}\b", text) for name in names if len(name) > 2):
            author_id = author.id
            break
    platforms = tuple(
        p for p, pattern in _PLATFORM_WORDS.items() if re.search(rf"\b(on|from|in)\s+({pattern})\b", text)
    )
    categories = tuple(c for c, pattern in _CATEGORY_WORDS.items() if re.search(rf"\b({pattern})\b", text))
    if Category.REPOSITORY in categories and Category.POST in categories and "post" not in text:
        categories = (Category.REPOSITORY,)
    after, before = date_range(question, now)
    return SearchFilters(
        author_id=author_id,
        platforms=platforms,
        categories=categories[:1] if len(categories) > 1 else categories,
        published_after=after,
        published_before=before,
    )


def _from_llm(data: object, authors: Sequence[Author]) -> SearchFilters:
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    known = {name: a.id for a in authors for name in a.names()}
    author = data.get("author")
    author_id = known.get(str(author).strip().casefold()) if author else None  # an unknown author: no filter
    # Unknown platforms and categories raise ValueError (the rules take over); "LinkedIn" is "linkedin".
    platform = Platform(str(data["platform"]).strip().lower()) if data.get("platform") else None
    category = Category(str(data["category"]).strip().lower()) if data.get("category") else None

    def day(key: str) -> datetime | None:
        value = data.get(key)
        if not value:
            return None
        moment = datetime.fromisoformat(str(value))
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)

    after, before = day("published_after"), day("published_before")
    if after and before and after >= before:
        raise ValueError("published_after is not before published_before")
    return SearchFilters(
        author_id=author_id,
        platforms=(platform,) if platform else (),
        categories=(category,) if category else (),
        published_after=after,
        published_before=before,
    )


def self_query(
    question: str, authors: Sequence[Author], llm: LLMClient | None = None, now: datetime | None = None
) -> SelfQueryResult:
    """The question's filters: from ``llm`` when one is given and it answers one JSON object whose values check
    out (an unknown author is dropped; an unknown platform or category, a bad or inverted date, no JSON or an
    LLM error mean the rules decide), else from the rules."""
    if llm is not None:
        names = ", ".join(a.full_name for a in authors) or "none"
        messages = [
            Message(
                "system",
                "Extract search filters from the user's question. Answer with one JSON object "
                f"with keys author, platform, category, published_after, published_before (null when "
                f"the question does not say). Known authors: {names}. Platforms: "
                f"{', '.join(p.value for p in Platform)}. Categories: article, post, repository.",
            ),
            Message("user", question),
        ]
        try:
            generation = llm.generate(messages, GenerationParams(max_tokens=120, temperature=0.0, json_schema=SCHEMA))
            match = re.search(r"\{.*\}", generation.text, re.DOTALL)
            if match:
                return SelfQueryResult(_from_llm(json.loads(match.group()), authors), "llm")
        except (LLMError, ValueError, KeyError, json.JSONDecodeError):
            pass  # the rules below are the fallback
    filters = rule_based(question, authors, now)
    method = "rules" if filters != SearchFilters() else "none"
    return SelfQueryResult(filters, method)
