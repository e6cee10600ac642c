"""Shallow ``git clone`` over https, safely: validated URL, SSRF guard, no prompts, no redirects, a timeout."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from twin_platform.adapters.http.safety import UrlGuard
from twin_platform.collection.crawlers.github import validate_repository_url
from twin_platform.domain.crawling import FetchError


def shallow_clone(url: str, dest: Path, *, guard: UrlGuard, timeout: float = 300.0) -> None:
    """Clone the default branch of ``url`` at depth 1 into ``dest``.

    The URL is validated and checked by the SSRF guard; git may use https only and may not follow
    redirects (which could lead to an address the guard refuses). Arguments are passed as a list,
    after ``--``: nothing is interpreted by a shell.
    """
    canonical = validate_repository_url(url)
    guard.check(canonical)
    command = [
        "git",
        "-c", "protocol.allow=never",
        "-c", "protocol.https.allow=always",
        "-c", "http.followRedirects=false",
        "-c", "core.symlinks=false",
        "-c", "credential.helper=",
        "clone", "--depth", "1", "--single-branch", "--no-tags", "--quiet",
        "--", canonical, str(dest),
    ]  # fmt: skip
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(dest.parent),
        "GIT_TERMINAL_PROMPT": "0",
        "GIT_ASKPASS": "true",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
    }
    try:
        completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        raise FetchError(canonical, f"git clone took longer than {timeout:.0f} s") from None
    if completed.returncode != 0:
        detail = (completed.stderr.strip().splitlines() or ["unknown error"])[-1]
        raise FetchError(canonical, f"git clone failed: {detail}")
