"""Around any LLM client: retries with backoff, a circuit breaker, and a bounded pool of generations."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

from twin_platform.domain.llm import (
    Generation,
    GenerationParams,
    LLMClient,
    LLMOverloaded,
    LLMUnavailable,
    Message,
)

T = TypeVar("T")


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
    """Implements :class:`LLMClient` over another one."""

    def __init__(
        self,
        inner: LLMClient,
        *,
        retries: int = 2,
        backoff: float = 0.5,
        max_concurrent: int = 2,
        queue_timeout: float = 0.0,
        breaker: CircuitBreaker | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.inner = inner
        self.backend = inner.backend
        self.model_id = inner.model_id
        self.retries = retries
        self.backoff = backoff
        self.queue_timeout = queue_timeout
        self.breaker = breaker or CircuitBreaker()
        self._slots = threading.BoundedSemaphore(max_concurrent)
        self._sleep = sleep

    def _acquire(self) -> None:
        if not self.breaker.allow():
            raise LLMUnavailable(f"the {self.backend} model is unavailable (circuit open after repeated failures)")
        if self.queue_timeout > 0:
            acquired = self._slots.acquire(timeout=self.queue_timeout)
        else:
            acquired = self._slots.acquire(blocking=False)
        if not acquired:
            raise LLMOverloaded("every generation slot is busy; retry shortly")

    def _call(self, fn: Callable[[], T]) -> T:
        last: LLMUnavailable | None = None
        for attempt in range(self.retries + 1):
            try:
                result = fn()
            except LLMUnavailable as exc:
                last = exc
                self.breaker.record_failure()
                if attempt == self.retries or not self.breaker.allow():
                    break
                self._sleep(self.backoff * 2**attempt * random.uniform(0.5, 1.5))  # noqa: S311 - jitter
                continue
            self.breaker.record_success()
            return result
        raise last or LLMUnavailable("no attempt was made")

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

    def health(self) -> bool:
        return self.breaker.allow() and self.inner.health()
