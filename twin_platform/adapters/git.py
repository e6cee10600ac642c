"""Shallow ``git clone`` over https, safely: validated URL, SSRF guard with the checked address pinned,
no prompts, no redirects, a timeout."""

from __future__ import annotations

import ipaddress
import os
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

from twin_platform.adapters.http.safety import IPAddress, UrlGuard
from twin_platform.collection.crawlers.github import validate_repository_url
from twin_platform.domain.crawling import FetchError


def shallow_clone(url: str, dest: Path, *, guard: UrlGuard, timeout: float = 300.0) -> None:
    """Clone the default branch of ``url`` at depth 1 into ``dest``.

    The URL is validated and checked by the SSRF guard; git may use https only and may not follow
    redirects (which could lead to an address the guard refuses). git resolves the host itself, so the
    addresses the guard checked are handed to its libcurl (``http.curloptResolve``, git >= 2.37): no
    second DNS answer is used (DNS rebinding). Arguments are passed as a list, after ``--``: nothing is
    interpreted by a shell.
    """
    canonical = validate_repository_url(url)
    if not (urlsplit(canonical).hostname or "").isascii():
        # libcurl converts a Unicode host name itself (IDNA 2008): the pinned spelling might not match it.
        raise FetchError(canonical, "give the host name in its ASCII (punycode) form to clone from it")
    addresses = guard.check(canonical)
    command = [
        "git",
        *_pin_resolution(canonical, addresses),
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


def _pin_resolution(url: str, addresses: tuple[IPAddress, ...]) -> list[str]:
    """git options that make libcurl connect to ``addresses`` for the URL's host (CURLOPT_RESOLVE)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return []  # an address literal: nothing to resolve
    listed = ",".join(f"[{a}]" if a.version == 6 else str(a) for a in addresses)
    return ["-c", f"http.curloptResolve={host}:{parts.port or 443}:{listed}"]
