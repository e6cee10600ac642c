"""What an author's writing is collected from, as one fingerprint: the registry entry and the import folders.

``author_sources_sensor`` reports it as the data version of ``author_sources``; ``raw_documents`` records the
one it collected from, so the sensor can tell a change made during a collection from one the collection saw.
"""

import hashlib
import json
from pathlib import Path

from twin_platform.domain.authors import Author

COLLECTED_FROM = "sources_fingerprint"  # raw_documents' metadata key: the fingerprint a collection started from


def registry_fingerprint(author: Author) -> str:
    """Changes whenever the author's links or imports change."""
    payload = json.dumps(
        {"links": {p.value: list(urls) for p, urls in sorted(author.links.items())}, "imports": list(author.imports)},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def folder_fingerprint(paths: tuple[str, ...]) -> str:
    """Changes when a file under any of ``paths`` is added, removed, resized or touched."""
    digest = hashlib.sha256()
    for source in sorted(paths):
        root = Path(source)
        files = sorted(root.rglob("*")) if root.is_dir() else [root]
        for path in files:
            try:
                stat = path.stat()
            except OSError:
                continue
            if path.is_file():
                digest.update(f"{path}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:24]


def sources_fingerprint(author: Author) -> str:
    """The registry entry and every file in the import folders, in one value."""
    return f"{registry_fingerprint(author)}-{folder_fingerprint(author.imports)}"
