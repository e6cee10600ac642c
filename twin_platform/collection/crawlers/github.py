"""GitHub (or any git host over https): a repository's documentation and source as one document.

The repository is cloned shallowly (the clone function comes from the adapters layer), or read
from a local working tree. Binaries, vendored and generated code and lock files are skipped; each
file and the whole repository have a size cap.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from twin_platform.collection.crawlers.base import CrawlResult, CrawlSession
from twin_platform.domain.crawling import FetchError
from twin_platform.domain.documents import Category, DocumentDraft, Platform

CloneFunction = Callable[[str, Path], None]

LANGUAGES = {
    ".py": "python",
    ".pyi": "python",
    ".ipynb": "jupyter",
    ".js": "javascript",
    ".mjs": "javascript",
    ".cjs": "javascript",
    ".jsx": "javascript",
    ".ts": "typescript",
    ".tsx": "typescript",
    ".go": "go",
    ".rs": "rust",
    ".java": "java",
    ".kt": "kotlin",
    ".scala": "scala",
    ".c": "c",
    ".h": "c",
    ".cc": "cpp",
    ".cpp": "cpp",
    ".hpp": "cpp",
    ".cs": "csharp",
    ".rb": "ruby",
    ".php": "php",
    ".swift": "swift",
    ".sh": "shell",
    ".bash": "shell",
    ".sql": "sql",
    ".r": "r",
    ".jl": "julia",
    ".lua": "lua",
    ".html": "html",
    ".css": "css",
    ".scss": "scss",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".json": "json",
    ".tf": "terraform",
    ".hcl": "hcl",
    ".proto": "protobuf",
    ".md": "markdown",
    ".markdown": "markdown",
    ".rst": "restructuredtext",
    ".txt": "text",
    ".ini": "ini",
    ".cfg": "ini",
}
SPECIAL_FILES = {"dockerfile": "dockerfile", "makefile": "makefile", "justfile": "just"}
DOC_LANGUAGES = {"markdown", "restructuredtext", "text"}
SKIPPED_DIRS = {
    ".git",
    "node_modules",
    "vendor",
    "vendored",
    "third_party",
    "third-party",
    "dist",
    "build",
    "target",
    ".venv",
    "venv",
    "env",
    "__pycache__",
    "site-packages",
    ".tox",
    ".mypy_cache",
    ".pytest_cache",
    ".ruff_cache",
    ".idea",
    ".vscode",
    "coverage",
    "htmlcov",
    ".next",
    ".nuxt",
    "bower_components",
    "Pods",
}
LOCK_FILES = {
    "package-lock.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "poetry.lock",
    "pipfile.lock",
    "cargo.lock",
    "uv.lock",
    "gemfile.lock",
    "composer.lock",
    "go.sum",
    "bun.lockb",
    "pdm.lock",
    "conda-lock.yml",
}
GENERATED = re.compile(
    r"(\.min\.(js|css)$|\.map$|_pb2(_grpc)?\.pyi?$|\.pb\.go$|\.generated\.|\.g\.dart$|\.lock$)", re.I
)
_REPO_PATH = re.compile(r"^/[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+?(\.git)?/?$")


@dataclass(frozen=True)
class RepositoryLimits:
    max_file_bytes: int = 1_000_000
    max_repo_bytes: int = 20_000_000


def validate_repository_url(url: str) -> str:
    """An https URL of the form ``https://host/owner/repo[.git]``; returns it without ``.git`` and slash."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        raise FetchError(url, "repositories are cloned over https only (or give a local path)")
    if not parts.hostname or parts.username or parts.password or parts.query or parts.fragment:
        raise FetchError(url, "a repository URL is https://host/owner/repo, without credentials, query or fragment")
    if not _REPO_PATH.fullmatch(parts.path) or any(seg.startswith("-") for seg in parts.path.split("/")):
        raise FetchError(url, "a repository URL is https://host/owner/repo")
    return f"https://{parts.netloc}{parts.path.rstrip('/').removesuffix('.git')}"


def language_of(path: Path) -> str | None:
    return SPECIAL_FILES.get(path.name.lower()) or LANGUAGES.get(path.suffix.lower())


def _is_binary(data: bytes) -> bool:
    return b"\x00" in data[:8192]


def _order(path: Path) -> tuple[int, str]:
    name = path.name.lower()
    rank = 0 if name.startswith("readme") else 1 if language_of(path) in DOC_LANGUAGES else 2
    return rank, path.as_posix().lower()


def iter_repository_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root)
        if any(part in SKIPPED_DIRS or part.startswith(".") for part in relative.parts[:-1]):
            continue
        if path.is_file() and not path.is_symlink():
            yield path


def _skip_by_name(path: Path, language: str | None, limits: RepositoryLimits) -> str | None:
    name = path.name.lower()
    if name in LOCK_FILES:
        return "lock file"
    if GENERATED.search(name):
        return "generated file"
    if language is None or name.startswith("."):
        return "not a source or documentation file"
    if path.stat().st_size > limits.max_file_bytes:
        return "over the per-file size cap"
    return None


def read_repository(
    root: Path, *, title: str, source_url: str, limits: RepositoryLimits, commit: str | None = None
) -> tuple[DocumentDraft, list[str]]:
    """The repository as one document (README first, then docs, then code), and what was skipped."""
    skipped: Counter[str] = Counter()
    sections: list[str] = []
    files: list[dict[str, object]] = []
    total = 0
    for path in sorted(iter_repository_files(root), key=lambda p: _order(p.relative_to(root))):
        relative = path.relative_to(root).as_posix()
        language = language_of(path)
        reason = _skip_by_name(path, language, limits)
        data = b"" if reason else path.read_bytes()
        text = data.decode("utf-8", errors="replace").strip()
        if reason is None:
            if _is_binary(data):
                reason = "binary"
            elif total + len(data) > limits.max_repo_bytes:
                reason = "over the per-repository size cap"
            elif not text:
                reason = "empty"
        if reason is not None:
            skipped[reason] += 1
            continue
        total += len(data)
        fence = "" if language in DOC_LANGUAGES else language
        body = text if language in DOC_LANGUAGES else f"```{fence}\n{text}\n```"
        sections.append(f"### {relative}\n\n{body}")
        files.append({"path": relative, "language": language, "bytes": len(data)})
    if not sections:
        raise FetchError(source_url, "the repository has no documentation or source files to read")
    languages = Counter(str(f["language"]) for f in files)
    metadata: dict[str, object] = {
        "crawler": "github",
        "files": files,
        "languages": dict(languages.most_common()),
        "skipped_files": dict(skipped),
    }
    if commit:
        metadata["commit"] = commit
    draft = DocumentDraft(
        category=Category.REPOSITORY,
        platform=Platform.GITHUB,
        source_url=source_url,
        title=title,
        content="\n\n".join(sections),
        metadata=metadata,
    )
    return draft, [f"{n} {reason}" for reason, n in sorted(skipped.items())]


def head_commit(root: Path) -> str | None:
    if not (root / ".git").exists():
        return None
    result = subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30, check=False
    )
    return result.stdout.strip() or None if result.returncode == 0 else None


class GitHubCrawler:
    platform = Platform.GITHUB

    def __init__(self, clone: CloneFunction, limits: RepositoryLimits | None = None) -> None:
        self.clone = clone
        self.limits = limits or RepositoryLimits()

    def crawl(self, url: str, session: CrawlSession) -> CrawlResult:
        result = CrawlResult(source=url)
        local = Path(url.removeprefix("file://")) if not url.startswith(("http://", "https://")) else None
        if local is not None:
            if not local.is_dir():
                raise FetchError(url, "is neither an https repository URL nor a local folder")
            root = local.resolve()
            draft, skipped = read_repository(
                root, title=root.name, source_url=root.as_uri(), limits=self.limits, commit=head_commit(root)
            )
        else:
            canonical = validate_repository_url(url)
            with tempfile.TemporaryDirectory(prefix="twin-repo-") as tmp:
                root = Path(tmp) / "repo"
                self.clone(canonical, root)
                title = "/".join(urlsplit(canonical).path.strip("/").split("/")[-2:])
                draft, skipped = read_repository(
                    root, title=title, source_url=canonical, limits=self.limits, commit=head_commit(root)
                )
        result.documents.append(draft)
        result.skipped.extend(skipped)
        return result
