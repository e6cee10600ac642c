"""The author whose twin is being built."""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from twin_platform.domain.documents import Platform

_SLUG_RE = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def slugify(text: str) -> str:
    """Turn a full name into a stable, URL-safe id: ``"Zoë Q. Fairweather"`` -> ``"zoe-q-fairweather"``."""
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if not slug:
        raise ValueError(f"cannot derive an id from the name {text!r}: it has no letters or digits")
    return slug


class Author(BaseModel):
    """A person whose published writing the platform collects.

    ``id`` is the Dagster partition key of every per-author asset, so it is a slug.
    ``links`` are the author's pages per platform (crawled by the collection stage);
    ``imports`` are local paths (folders or exports) imported on every materialization.
    """

    model_config = ConfigDict(frozen=True)

    id: str = ""  # derived from full_name when not given
    full_name: str = Field(min_length=1, max_length=200)
    aliases: tuple[str, ...] = ()
    links: dict[Platform, tuple[str, ...]] = Field(default_factory=dict)
    imports: tuple[str, ...] = ()
    respect_robots_txt: bool = True  # crawlers obey robots.txt for this author's links

    @model_validator(mode="before")
    @classmethod
    def _default_id(cls, data: object) -> object:
        if isinstance(data, dict) and not data.get("id") and data.get("full_name"):
            return {**data, "id": slugify(str(data["full_name"]))}
        return data

    @field_validator("id")
    @classmethod
    def _check_id(cls, value: str) -> str:
        if not _SLUG_RE.fullmatch(value) or len(value) > 100:
            raise ValueError(f"author id {value!r} must be a lowercase slug like 'jane-doe'")
        return value

    @field_validator("full_name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("full name is empty")
        return value

    @field_validator("aliases")
    @classmethod
    def _dedupe_aliases(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for alias in value:
            cleaned = " ".join(alias.split())
            if cleaned:
                seen.setdefault(cleaned, None)
        return tuple(seen)

    @field_validator("links")
    @classmethod
    def _check_links(cls, value: dict[Platform, tuple[str, ...]]) -> dict[Platform, tuple[str, ...]]:
        for platform, urls in value.items():
            for url in urls:
                if not url.startswith(("http://", "https://")):
                    raise ValueError(f"link {url!r} for {platform.value} must be an http(s) URL")
        return {platform: tuple(dict.fromkeys(urls)) for platform, urls in value.items()}

    def names(self) -> set[str]:
        """Every name this author answers to, case-folded, for lookups."""
        return {self.id, self.full_name.casefold(), *(alias.casefold() for alias in self.aliases)}

    def with_additions(
        self,
        *,
        aliases: tuple[str, ...] = (),
        links: dict[Platform, tuple[str, ...]] | None = None,
        imports: tuple[str, ...] = (),
    ) -> Author:
        """A copy with extra aliases, links and imports merged in (existing ones kept, order kept)."""
        merged_links = {platform: tuple(urls) for platform, urls in self.links.items()}
        for platform, urls in (links or {}).items():
            merged_links[platform] = tuple(dict.fromkeys((*merged_links.get(platform, ()), *urls)))
        return Author(
            id=self.id,
            full_name=self.full_name,
            aliases=(*self.aliases, *aliases),
            links=merged_links,
            imports=tuple(dict.fromkeys((*self.imports, *imports))),
            respect_robots_txt=self.respect_robots_txt,
        )


def _lookup_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def find_author(authors: Iterable[Author], name: str) -> Author | None:
    """The author ``name`` (a full name, an alias or an id; case and spacing ignored) refers to."""
    wanted = _lookup_key(name)
    return next((author for author in authors if wanted in {_lookup_key(n) for n in author.names()}), None)


def close_matches(authors: Iterable[Author], name: str, limit: int = 3, cutoff: float = 0.6) -> list[Author]:
    """Registered authors ``name`` may have meant, best first: an id, full name or alias that is similar
    (difflib ratio at least ``cutoff``) or contains it (``jane`` for Jane Doe)."""
    wanted = _lookup_key(name)
    if not wanted:
        return []
    scored: list[tuple[float, str, Author]] = []
    for author in authors:
        score = max(
            1.0 if wanted in candidate else difflib.SequenceMatcher(None, wanted, candidate).ratio()
            for candidate in (_lookup_key(n) for n in author.names())
        )
        if score >= cutoff:
            scored.append((score, author.id, author))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return [author for _, _, author in scored[:limit]]
