"""The UIs in a real browser: ``twin up`` on free ports, then headless Chromium, which can resolve no host but
127.0.0.1 (as without internet), loads the Dagster asset graph, an asset's page and the API docs, and each
must render (after its JavaScript ran) with the expected names and no error banner. Screenshots and the
rendered DOM are kept in the test's tmp dir.

Needs Chromium (Debian: ``apt-get install chromium``; or ``TWIN_TEST_CHROMIUM=/path/to/chrome``); skipped
with the reason otherwise."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from html import unescape
from pathlib import Path

import psutil
import pytest

from twin_platform_tests.up_process import Up, start_up, up_env


def find_chromium() -> str | None:
    if configured := os.environ.get("TWIN_TEST_CHROMIUM"):
        return configured
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        if found := shutil.which(name):
            return found
    return None


CHROMIUM = find_chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.browser,
    pytest.mark.timeout(1800),  # the first test also waits for twin up (its model loads on a first start)
    pytest.mark.skipif(
        CHROMIUM is None,
        reason="Chromium is not installed (apt-get install chromium, or set TWIN_TEST_CHROMIUM): "
        "the UI is not checked in a browser",
    ),
]

# What a page shows when it failed: Dagster's error states, Swagger UI's and ReDoc's.
ERRORS = (
    "Unexpected GraphQL error",
    "An unexpected error occurred",
    "Something went wrong",
    "Error loading",
    "could not be loaded",
    "DagsterUserCodeLoadError",
    "Failed to load API definition",
    "Unable to render this definition",
    "errors-wrapper",
)


def render(url: str, out: Path, budget_ms: int = 20_000, timeout: float = 180) -> str:
    """The DOM of ``url`` after its scripts ran (``budget_ms`` of virtual time), and a screenshot beside it."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",  # as root, Chromium refuses to start with its sandbox
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={out.parent / 'chromium-profile'}",
        # As on an air-gapped machine: every host name but the loopback one fails to resolve (no CDN, no fonts).
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        "--window-size=1600,1000",
        f"--virtual-time-budget={budget_ms}",
        f"--screenshot={out.with_suffix('.png')}",
        "--dump-dom",
        url,
    ]
    browser = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, start_new_session=True, text=True
    )
    try:
        dom, _ = browser.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"Chromium did not finish rendering {url} within {timeout:.0f} s")
    finally:
        stop_group(browser)
    out.with_suffix(".html").write_text(dom)
    assert out.with_suffix(".png").stat().st_size > 10_000, "blank screenshot"
    return dom


def stop_group(process: subprocess.Popen[str]) -> None:
    """Chromium's helper processes (zygote, renderer, GPU) are in its session: none may outlive it."""
    for member in psutil.process_iter():
        try:
            if os.getsid(member.pid) == process.pid:
                member.send_signal(signal.SIGKILL)
        except (ProcessLookupError, psutil.NoSuchProcess):
            pass
    if process.poll() is None:
        process.kill()
    process.wait(10)


def visible_text(dom: str) -> str:
    """The page's text without its markup, styles and scripts (the inlined OpenAPI document included)."""
    dom = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", dom)
    dom = re.sub(r"(?i)<wbr\s*/?>", "", dom)  # Swagger UI breaks paths with <wbr>: /v1<wbr>/rag
    return unescape(re.sub(r"(?s)<[^>]+>", " ", dom))


def assert_no_error(dom: str, page: str) -> None:
    text = visible_text(dom)
    shown = [error for error in ERRORS if error in text or (error == "errors-wrapper" and error in dom)]
    assert not shown, f"{page} shows an error: {shown}"


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    tmp = tmp_path_factory.mktemp("browser-up")
    started = start_up(up_env(tmp), tmp / "up.log", "--no-materialize")
    try:
        started.wait_for_banner(timeout=900)
        yield started
    finally:
        started.stop()


def test_dagster_asset_graph_renders_the_assets(up: Up, tmp_path: Path):
    dom = render(f"{up.dagster_url}/locations/twin_platform/asset-groups/features", tmp_path / "features-graph")
    text = visible_text(dom)
    for asset in ("raw_documents", "cleaned_documents", "chunks", "chunk_embeddings"):
        assert re.search(rf"\b{asset}\b", text), f"{asset} is not on the features graph"
    assert "Join the Dagster community" not in text  # no dialog over the local UI
    assert_no_error(dom, "the features graph")

    lineage = render(f"{up.dagster_url}/asset-groups", tmp_path / "global-lineage")
    for group in ("collection", "features", "marts", "training"):
        assert group in visible_text(lineage), f"group {group} is not on the global lineage"
    assert_no_error(lineage, "the global lineage")


def test_dagster_asset_page_renders(up: Up, tmp_path: Path):
    dom = render(f"{up.dagster_url}/assets/chunk_embeddings", tmp_path / "chunk-embeddings")
    text = visible_text(dom)
    assert "chunk_embeddings" in text
    for section in ("Description", "Definition", "Automation condition", "Upstream assets"):
        assert section in text, f"the asset page has no {section!r} section"
    assert re.search(r"Upstream assets\s+chunks\b", text), "chunks is not shown upstream"
    assert "twin_platform" in text  # its code location loaded
    assert_no_error(dom, "the chunk_embeddings page")


@pytest.mark.parametrize("page", ["/schema/swagger", "/schema/redoc"])
def test_api_docs_render(up: Up, tmp_path: Path, page: str):
    dom = render(f"{up.api_url}{page}", tmp_path / page.rsplit("/", 1)[1], budget_ms=10_000)
    text = visible_text(dom)
    assert "twin_platform RAG API" in text
    for path in ("/v1/rag", "/v1/search", "/v1/chat/completions", "/ready"):
        assert path in text, f"{page} does not show {path}"
    assert_no_error(dom, page)
