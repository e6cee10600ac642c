"""Per-author question sets for retrieval evaluation: each question knows where its answer lives.

Sources of questions:

- ``questions_from_rows``: the instruction dataset's held-out **test** split. Each test sample's
  instruction (an LLM wrote it for a passage the author wrote) is a question; its source is the sample's
  document and its answer passage. The split is by document, so no question's document trained the twin.
- ``read_question_file``: questions people wrote, one JSON object per line (JSONL, UTF-8)::

      {"question": "How do you swap embedding models without downtime?", "document_id": "2f1c..."}
      {"question": "Why OR the words in full text?", "source_url": "https://blog.example/p/x", "passage": "..."}

  ``question`` (required, at most ``MAX_QUESTION_CHARS``); ``document_id`` and/or ``source_url`` (at
  least one: a retrieved chunk of that document, or with that source URL, is a hit); ``passage``
  (optional: the text that answers it, for passage-level hits and context recall); ``id`` (optional;
  else derived from the question and its source). Blank lines are skipped; nothing else is allowed, and
  an error names the file and line.
- ``title_questions``: a deterministic question without an LLM (the passage's document title and its
  most distinctive words), for benchmarks that cannot afford generation. It shares words with its
  passage by construction, so it favours lexical retrieval: never mix its numbers with the others'.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from twin_platform.domain.datasets import Passage, text_hash

MAX_QUESTION_CHARS = 2_000  # the API's default query limit (TWIN_API_MAX_QUERY_CHARS)
QuestionOrigin = Literal["test_split", "user_file", "title"]

_WORD = re.compile(r"[a-z][a-z0-9'-]+")
# Words too common to say what a passage is about (title questions only).
_STOPWORDS = frozenset(
    """about above after again against also although always among another anything around because been
    before being below between both could does doing done down during each either else enough even ever
    every first from further have having here into itself just know like made make many might more most
    much must never next none often once only other ought ours over same says should since some such
    than that their them then there these they thing things this those though through thus together
    under until upon very want well were what when where whether which while whom whose will with within
    without would your yours able back still really need needs used uses using ways good great""".split()  # noqa: SIM905 - reads as text
)


class Question(BaseModel):
    """One evaluation question and its source: the document (by id or source URL) and, when known, the passage
    that answers it."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1)
    text: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    document_id: str | None = None
    source_url: str | None = None
    passage: str | None = None
    origin: QuestionOrigin
    category: str | None = None

    @field_validator("document_id", "source_url", "passage", "category", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _has_a_source(self) -> Question:
        if self.document_id is None and self.source_url is None:
            raise ValueError("a question needs a document_id or a source_url (where its answer is)")
        return self

    def is_source(self, document_id: str, source_url: str) -> bool:
        """Whether a chunk of this document (or with this source URL) answers the question."""
        return (self.document_id is not None and document_id == self.document_id) or (
            self.source_url is not None and source_url == self.source_url
        )


class QuestionFileError(ValueError):
    """A question file that cannot be used; the message names the file and line."""


class _FileLine(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    question: str = Field(min_length=1, max_length=MAX_QUESTION_CHARS)
    document_id: str | None = None
    source_url: str | None = None
    passage: str | None = None
    id: str | None = None


def questions_from_rows(rows: Iterable[Mapping[str, Any]]) -> list[Question]:
    """Questions from instruction-dataset rows (``InstructionSample.as_row()``): the test split only (rows
    without a ``split`` key count as test, e.g. those loaded from the test split alone).

    Raises ``ValueError`` naming the row when one lacks its instruction, answer or document id.
    """
    questions = []
    for number, row in enumerate(rows, start=1):
        if row.get("split", "test") != "test":
            continue
        name = row.get("id") or f"#{number}"
        missing = [key for key in ("instruction", "answer", "document_id") if not str(row.get(key) or "").strip()]
        if missing:
            raise ValueError(f"instruction dataset row {name}: no {', '.join(missing)}")
        questions.append(
            Question(
                id=str(row.get("id") or text_hash(f"{row['instruction']}|{row['document_id']}")),
                text=str(row["instruction"]),
                document_id=str(row["document_id"]),
                passage=str(row["answer"]),
                origin="test_split",
                category=row.get("category"),
            )
        )
    return questions


def _error_text(error: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" if e["loc"] else str(e["msg"])
        for e in error.errors(include_url=False)
    )


def read_question_file(path: Path) -> list[Question]:
    """The questions in a JSONL question file (format in the module docstring); none when the file does not
    exist (the file is optional). Raises :class:`QuestionFileError` naming the line of the first problem."""
    if not path.is_file():
        if path.exists():
            raise QuestionFileError(f"{path}: not a file")
        return []
    questions: list[Question] = []
    first_line: dict[str, int] = {}
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        where = f"{path}, line {number}"
        try:
            line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
        except UnicodeDecodeError:
            raise QuestionFileError(f"{where}: not UTF-8") from None
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{where}: not JSON ({exc.msg} at column {exc.colno})") from None
        if not isinstance(data, dict):
            raise QuestionFileError(f'{where}: expected a JSON object like {{"question": ..., "document_id": ...}}')
        try:
            entry = _FileLine.model_validate(data)
            question = Question(
                id=entry.id or "user-" + text_hash(f"{entry.question}|{entry.document_id}|{entry.source_url}"),
                text=entry.question,
                document_id=entry.document_id,
                source_url=entry.source_url,
                passage=entry.passage,
                origin="user_file",
            )
        except ValidationError as exc:
            raise QuestionFileError(f"{where}: {_error_text(exc)}") from None
        if question.id in first_line:
            raise QuestionFileError(
                f"{where}: repeats the question (id {question.id!r}) of line {first_line[question.id]}"
            )
        first_line[question.id] = number
        questions.append(question)
    return questions


def author_questions(rows: Iterable[Mapping[str, Any]], question_file: Path | None = None) -> list[Question]:
    """An author's question set: the instruction dataset's test split, then the author's question file if
    there is one."""
    return questions_from_rows(rows) + (read_question_file(question_file) if question_file is not None else [])


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if len(w) >= 4 and w not in _STOPWORDS]


def title_questions(passages: Sequence[Passage], corpus: Sequence[Passage] = (), *, terms: int = 3) -> list[Question]:
    """One question per passage without an LLM: ``"<document title>: <term>, <term>, <term>"``, the terms being
    the passage's words with the highest tf-idf against ``corpus`` (default: the passages themselves), title
    words and common words left out, ties broken alphabetically: the same passages give the same questions."""
    reference = corpus or passages
    frequency = Counter(word for passage in reference for word in set(_terms(passage.text)))
    size = len(reference)
    questions = []
    for passage in passages:
        in_title = set(_WORD.findall(passage.title.lower()))
        counts = Counter(word for word in _terms(passage.text) if word not in in_title)
        weight = {word: count * math.log((1 + size) / (1 + frequency[word])) for word, count in counts.items()}
        chosen = sorted(weight, key=lambda word: (-weight[word], word))[:terms]
        text = ": ".join(part for part in (passage.title.strip(), ", ".join(chosen)) if part)
        if text:
            questions.append(
                Question(
                    id=passage.id,
                    text=text[:MAX_QUESTION_CHARS],
                    document_id=passage.document_id,
                    passage=passage.text,
                    origin="title",
                    category=passage.category,
                )
            )
    return questions
