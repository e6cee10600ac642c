"""The local API key that ``twin up`` (``make run``) shows: one key that survives restarts.

The database keeps only its SHA-256 hash, like every key; the key itself is kept in ``<data dir>/local-api-key``
(mode 0600, readable by its owner only), so scripts written against one ``make run`` keep working after the
next. A new key is made, and the banner says why, when that file is missing or unreadable, or when the key in
it no longer authenticates (revoked with ``twin apikey revoke local``, or another database).
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from twin_platform.adapters.postgres.api_store import ApiKeyStore
from twin_platform.adapters.postgres.database import open_database
from twin_platform.settings import Settings

LOCAL_KEY_NAME = "local"
KEY_FILE_NAME = "local-api-key"


@dataclass(frozen=True)
class LocalKey:
    key: str
    path: Path
    new: bool
    reason: str = ""  # why a new key was made (empty when the kept one is reused)


def key_file(settings: Settings) -> Path:
    return settings.data_path / KEY_FILE_NAME


def read_key(path: Path) -> str | None:
    """The key kept in ``path`` (tightened to 0600 if it was looser), or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):  # missing or unreadable: a new key replaces it
        return None
    if stat.S_IMODE(path.stat().st_mode) != 0o600:
        path.chmod(0o600)
    return text or None


def write_key(path: Path, key: str) -> None:
    """Write ``key`` to ``path`` with mode 0600, atomically (a crash leaves the old file or the new one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with contextlib.suppress(FileNotFoundError):
        temporary.unlink()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(descriptor, 0o600)  # whatever the umask
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(key + "\n")
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    os.replace(temporary, path)


def local_api_key(settings: Settings) -> LocalKey:
    """The kept local key when it still authenticates, else a new one (replacing any active key named
    ``local``, whose plain text is lost) written to the key file."""
    path = key_file(settings)
    kept = read_key(path)
    engine = open_database(settings)
    try:
        store = ApiKeyStore(engine)
        if kept is not None and store.verify(kept) == LOCAL_KEY_NAME:
            return LocalKey(kept, path, new=False)
        reason = "no key file yet" if kept is None else "the kept key was revoked or is unknown to this database"
        if store.revoke(LOCAL_KEY_NAME):
            reason += " (the previous local key is revoked)"
        key = store.create(LOCAL_KEY_NAME)
    finally:
        engine.dispose()
    write_key(path, key)
    return LocalKey(key, path, new=True, reason=reason)
