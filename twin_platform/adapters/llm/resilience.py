"""Around any LLM client: retries with backoff (tenacity), a circuit breaker, and a bounded pool of generations."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar

import tenacity

from twin_platform.adapters.http.retry_after import parse_retry_after
from twin_platform.domain.llm import (
    AnswerScorer,
    Generation,
    GenerationParams,
    LLMClient,
    LLMOverloaded,
    LLMUnavailable,
    Message,
    ScoringNotSupported,
)

T = TypeVar("T")

MAX_BACKOFF = 30.0  # seconds: the cap of the backoff window; longer outages are the breaker's business


class RetryLater(LLMUnavailable):
    """The server is busy (429, 503) and said when to come back (``Retry-After``, in seconds)."""

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def server_busy(server: str, status: int | None, headers: Mapping[str, str] | None) -> LLMUnavailable:
    """The error for a 429 or 5xx answer from ``server``: a :class:`RetryLater` if it said when to retry."""
    delay = parse_retry_after(headers.get("retry-after")) if headers is not None else None
    if delay is None:
        return LLMUnavailable(f"{server} answered {status or 'nothing'}")
    return RetryLater(f"{server} answered {status} (retry after {delay:.0f} s)", delay)


class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; while open, calls fail at once. After
    ``reset_after`` seconds one trial call is let through (half-open): success closes it."""

    def __init__(self, threshold: int = 3, reset_after: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.threshold = threshold
        self.reset_after = reset_after
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._lock = threading.Lock()

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            return "half-open" if self._clock() - self._opened_at >= self.reset_after else "open"

    def allow(self) -> bool:
        return self.state != "open"

    def record_success(self) -> None:
        with self._lock:
            self._failures = 0
            self._opened_at = None

    def record_failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold or self._opened_at is not None:
                self._opened_at = self._clock()


class ResilientLLM:
    """Implements :class:`LLMClient` over another one.

    A generation that fails with :class:`LLMUnavailable` is retried ``retries`` times, after the wait the
    server asked for (``Retry-After``) or else exponential backoff with full jitter (a window of
    ``backoff`` seconds that doubles per retry). It gives up at once when the breaker opens or when the
    server asks for a pause longer than ``max_retry_after``. Other errors (a refused request) are final.
    """

    def __init__(
        self,
        inner: LLMClient,
        *,
        retries: int = 2,
        backoff: float = 0.5,
        max_retry_after: float = 60.0,
        max_concurrent: int = 2,
        queue_timeout: float = 0.0,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.retries = retries
        self.max_retry_after = max_retry_after
        self.queue_timeout = queue_timeout
        self.breaker = breaker or CircuitBreaker()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._sleep = sleep
        self._backoff = tenacity.wait_random_exponential(multiplier=backoff, max=MAX_BACKOFF)

    @property
    def model_id(self) -> str:
        return self.inner.model_id

    def _acquire(self) -> None:
        if not self.breaker.allow():
            raise LLMUnavailable(f"the {self.backend} model is unavailable (circuit open after repeated failures)")
        if self.queue_timeout > 0:
            acquired = self._slots.acquire(timeout=self.queue_timeout)
        else:
            acquired = self._slots.acquire(blocking=False)
        if not acquired:
            raise LLMOverloaded("every generation slot is busy; retry shortly")

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        error = retry_state.outcome.exception() if retry_state.outcome else None
        return error.retry_after if isinstance(error, RetryLater) else self._backoff(retry_state)

    def _give_up(self, retry_state: tenacity.RetryCallState) -> bool:
        """Out of attempts, the breaker opened, or the server asks for a longer pause than a caller should wait."""
        error = retry_state.outcome.exception() if retry_state.outcome else None
        too_long = isinstance(error, RetryLater) and error.retry_after > self.max_retry_after
        return retry_state.attempt_number > self.retries or too_long or not self.breaker.allow()

    def _call(self, fn: Callable[[], T]) -> T:
        def attempt() -> T:
            try:
                result = fn()
            except LLMUnavailable:
                self.breaker.record_failure()
                raise
            self.breaker.record_success()
            return result

        retrying = tenacity.Retrying(
            stop=self._give_up,
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(LLMUnavailable),
            sleep=self._sleep,
            reraise=True,  # the last error names the server and its answer
        )
        return retrying(attempt)

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Generation:
        self._acquire()
        try:
            return self._call(lambda: self.inner.generate(messages, params))
        finally:
            self._slots.release()

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        self._acquire()
        try:
            yield from self.inner.stream(messages, params)
            self.breaker.record_success()
        except LLMUnavailable:
            self.breaker.record_failure()
            raise
        finally:
            self._slots.release()

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> tuple[float, int]:
        """The inner client's :meth:`AnswerScorer.answer_logprob`, with the same slots, retries and breaker as a
        generation; :class:`ScoringNotSupported` when the inner client cannot score (never retried)."""
        if not isinstance(self.inner, AnswerScorer):
            raise ScoringNotSupported(f"the {self.backend} client cannot score answers")
        scorer = self.inner
        self._acquire()
        try:
            return self._call(lambda: scorer.answer_logprob(messages, answer))
        finally:
            self._slots.release()

    def health(self) -> bool:
        return self.breaker.allow() and self.inner.health()
