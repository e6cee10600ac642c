"""The three LLM backends and the resilience wrapper."""

from __future__ import annotations

import dataclasses
import email.utils
import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from twin_platform.adapters.llm.local import LocalClient
from twin_platform.adapters.llm.openai_client import OpenAIClient
from twin_platform.adapters.llm.resilience import CircuitBreaker, ResilientLLM
from twin_platform.adapters.llm.tgi import TGIClient
from twin_platform.domain.llm import GenerationParams, LLMError, LLMOverloaded, LLMUnavailable, Message
from twin_platform_tests.tiny_model import build_tiny_chat_model
from twin_platform_tests.web.tgi import ANSWER, serve_tgi

MESSAGES = [Message("system", "You are a twin."), Message("user", "Where do the vectors live?")]
PARAMS = GenerationParams(max_tokens=16, temperature=0.0)


@pytest.fixture
def tgi():
    with serve_tgi() as server:
        yield server


def test_tgi_messages_api_generate_and_stream(tgi):
    client = TGIClient(tgi.url, timeout=5)
    generation = client.generate(MESSAGES, PARAMS)
    assert (generation.text, generation.model, generation.prompt_tokens) == (ANSWER, "twin/fake", 42)
    path, body = tgi.requests[-1]
    assert path == "/v1/chat/completions"
    assert body["messages"][1] == {"role": "user", "content": "Where do the vectors live?"}
    assert body["max_tokens"] == 16
    assert "".join(client.stream(MESSAGES, PARAMS)) == ANSWER
    assert client.health()


def test_tgi_falls_back_to_text_generation_without_the_messages_api(tgi):
    tgi.mode = "no-messages-api"
    client = TGIClient(tgi.url, timeout=5)
    generation = client.generate(MESSAGES, PARAMS)
    assert generation.text == ANSWER
    path, body = tgi.requests[-1]
    assert path == "/"
    assert body["inputs"].startswith("<|im_start|>system\nYou are a twin.<|im_end|>\n")
    assert body["inputs"].endswith("<|im_start|>assistant\n")
    assert "".join(client.stream(MESSAGES, PARAMS)).strip() == ANSWER


def test_tgi_down_is_unavailable(tgi):
    tgi.mode = "down"
    client = TGIClient(tgi.url, timeout=5)
    with pytest.raises(LLMUnavailable, match="503"):
        client.generate(MESSAGES, PARAMS)
    assert not client.health()
    with pytest.raises(LLMUnavailable, match=r"unreachable|timed out|failed"):
        TGIClient("http://127.0.0.1:9", timeout=2).generate(MESSAGES, PARAMS)


def test_openai_backend_against_an_openai_compatible_server(tgi):
    client = OpenAIClient(f"{tgi.url}/v1", api_key="sk-test", model="twin/fake", timeout=5)
    generation = client.generate(MESSAGES, PARAMS)
    assert (generation.text, generation.completion_tokens) == (ANSWER, len(ANSWER.split()))
    assert "".join(client.stream(MESSAGES, PARAMS)) == ANSWER


@pytest.mark.skipif(not os.environ.get("TWIN_TEST_TGI_URL"), reason="set TWIN_TEST_TGI_URL to test a real TGI")
def test_real_tgi():
    client = TGIClient(os.environ["TWIN_TEST_TGI_URL"], timeout=60)
    assert client.health()
    assert client.generate([Message("user", "Say hello.")], GenerationParams(max_tokens=8)).text.strip()


@pytest.mark.skipif(
    not os.environ.get("TWIN_TEST_OPENAI_BASE_URL"),
    reason="set TWIN_TEST_OPENAI_BASE_URL (and TWIN_TEST_OPENAI_API_KEY, TWIN_TEST_OPENAI_MODEL)",
)
def test_real_openai_compatible_endpoint():
    client = OpenAIClient(
        os.environ["TWIN_TEST_OPENAI_BASE_URL"],
        api_key=os.environ.get("TWIN_TEST_OPENAI_API_KEY"),
        model=os.environ.get("TWIN_TEST_OPENAI_MODEL", "gpt-4o-mini"),
    )
    assert client.generate([Message("user", "Say hello.")], GenerationParams(max_tokens=8)).text.strip()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_chat_model(tmp_path_factory.mktemp("tiny-model"))


def test_local_backend_with_a_tiny_model(tiny_model_dir: Path):
    client = LocalClient(tiny_model_dir, model_id="tiny")
    generation = client.generate(MESSAGES, PARAMS)
    assert generation.model == "tiny"
    assert generation.prompt_tokens > 5
    assert 1 <= generation.completion_tokens <= 16
    streamed = "".join(client.stream(MESSAGES, PARAMS))
    assert streamed.strip() == generation.text  # greedy decoding: the same text both ways


def test_a_seed_makes_sampled_answers_repeat(tiny_model_dir: Path):
    client = LocalClient(tiny_model_dir, model_id="tiny")
    sampled = GenerationParams(max_tokens=16, temperature=1.5, top_p=1.0)
    prompts = [MESSAGES, [Message("user", "Write anything at all.")]]

    def run(seed: int) -> list[str]:
        params = dataclasses.replace(sampled, seed=seed)
        return [client.generate(MESSAGES, params).text, *(g.text for g in client.generate_batch(prompts, params))]

    first = run(7)
    assert run(7) == first  # the same seed: the same answers, one at a time and in a batch
    assert any(run(seed) != first for seed in (8, 9, 10))  # and the seed is what decides them


@pytest.mark.parametrize("backend", ["tgi", "openai"])
def test_the_seed_reaches_the_server(tgi, backend: str):
    _backend(backend, tgi.url).generate(MESSAGES, dataclasses.replace(PARAMS, seed=42))
    _, body = tgi.requests[-1]
    assert body["seed"] == 42
    _backend(backend, tgi.url).generate(MESSAGES, PARAMS)
    assert "seed" not in tgi.requests[-1][1]


def test_breaker_opens_after_failures_and_fails_fast(tgi):
    tgi.mode = "down"
    breaker = CircuitBreaker(threshold=2, reset_after=60)
    client = ResilientLLM(TGIClient(tgi.url, timeout=5), retries=1, backoff=0.01, breaker=breaker)
    with pytest.raises(LLMUnavailable):
        client.generate(MESSAGES, PARAMS)
    assert breaker.state == "open"
    calls = len(tgi.requests)
    started = time.perf_counter()
    with pytest.raises(LLMUnavailable, match="circuit open"):
        client.generate(MESSAGES, PARAMS)
    assert time.perf_counter() - started < 0.05
    assert len(tgi.requests) == calls  # no request reached the server


def _backend(name: str, url: str) -> TGIClient | OpenAIClient:
    if name == "tgi":
        return TGIClient(url, timeout=5)
    return OpenAIClient(f"{url}/v1", api_key="sk-test", model="twin/fake", timeout=5)


@pytest.mark.parametrize("backend", ["tgi", "openai"])
def test_retry_after_is_honoured(tgi, backend: str):
    sleeps: list[float] = []
    client = ResilientLLM(_backend(backend, tgi.url), retries=3, sleep=sleeps.append)
    tgi.busy, tgi.retry_after = 2, "7"
    assert client.generate(MESSAGES, PARAMS).text == ANSWER
    assert sleeps == [7.0, 7.0]
    assert len(tgi.requests) == 3
    sleeps.clear()
    tgi.busy = 1
    tgi.retry_after = email.utils.format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
    assert client.generate(MESSAGES, PARAMS).text == ANSWER
    assert len(sleeps) == 1
    assert 18 <= sleeps[0] <= 20  # an HTTP date, one-second resolution


@pytest.mark.parametrize("backend", ["tgi", "openai"])
def test_a_retry_after_beyond_the_cap_fails_at_once(tgi, backend: str):
    sleeps: list[float] = []
    client = ResilientLLM(_backend(backend, tgi.url), retries=3, sleep=sleeps.append)
    tgi.busy, tgi.retry_after = 1, "3600"
    with pytest.raises(LLMUnavailable, match=r"429.*retry after 3600 s"):
        client.generate(MESSAGES, PARAMS)
    assert sleeps == []
    assert len(tgi.requests) == 1


def test_retries_back_off_exponentially_with_jitter_then_fail_naming_the_server(tgi):
    tgi.mode = "down"
    sleeps: list[float] = []
    breaker = CircuitBreaker(threshold=10)
    client = ResilientLLM(TGIClient(tgi.url, timeout=5), retries=4, backoff=1.0, breaker=breaker, sleep=sleeps.append)
    with pytest.raises(LLMUnavailable, match=rf"TGI at {tgi.url} answered 503"):
        client.generate(MESSAGES, PARAMS)
    assert len(tgi.requests) == 5
    assert len(sleeps) == 4
    for attempt, slept in enumerate(sleeps):
        assert 0 <= slept <= 2**attempt  # a random wait below a doubling window


def test_client_errors_are_not_retried(tgi):
    client = ResilientLLM(OpenAIClient(f"{tgi.url}/v1", api_key="k", model="m", timeout=5), sleep=lambda s: None)
    tgi.mode = "no-messages-api"  # the chat route answers 404
    with pytest.raises(LLMError, match="404"):
        client.generate(MESSAGES, PARAMS)
    assert len(tgi.requests) == 1


def test_breaker_half_opens_and_closes_on_success():
    now = [0.0]
    breaker = CircuitBreaker(threshold=1, reset_after=10, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.state == "open"
    now[0] = 11
    assert breaker.state == "half-open"
    breaker.record_success()
    assert breaker.state == "closed"


def test_pool_refuses_at_once_when_full(tgi):
    tgi.mode = "slow"
    client = ResilientLLM(TGIClient(tgi.url, timeout=5), max_concurrent=1)
    worker = threading.Thread(target=client.generate, args=(MESSAGES, PARAMS))
    worker.start()
    time.sleep(0.3)
    started = time.perf_counter()
    with pytest.raises(LLMOverloaded):
        client.generate(MESSAGES, PARAMS)
    assert time.perf_counter() - started < 0.05
    worker.join()


def test_local_batches_left_pad_and_stop_at_stop_strings(tiny_model_dir: Path):
    client = LocalClient(tiny_model_dir, model_id="tiny")
    conversations = [[Message("user", "Postgres keeps the vectors")], [Message("user", "Measure recall first, please")]]
    free = client.generate_batch(conversations, GenerationParams(max_tokens=24, temperature=0))
    assert [g.completion_tokens for g in free] == [24, 24]
    assert free[0].text == client.generate(conversations[0], GenerationParams(max_tokens=24, temperature=0)).text
    stop = next(c for c in free[0].text[4:] if c.isalpha())  # a letter the model does produce
    stopped = client.generate_batch(conversations, GenerationParams(max_tokens=24, temperature=0, stop=(stop,)))
    assert stopped[0].completion_tokens < 24
    assert stopped[0].finish_reason == "stop"
    assert stop not in stopped[0].text
