"""Reading an import folder without ever leaving it.

Symbolic links are reported, never followed: a link inside an import folder (``passwd.md ->
/etc/passwd``, a linked folder, a link loop) would otherwise let the import read, store and then serve
any file the platform can read. Every folder and file is opened relative to its parent's descriptor
with ``O_NOFOLLOW``, so a link swapped in while the import runs is refused too, and names are checked
so that no ``..`` or absolute path can climb out. Only the root itself may be a link: it is resolved
once, by whoever passes it in.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from twin_platform.collection.importers.text import InvalidInput

MAX_DEPTH = 64
SYMLINK = "is a symbolic link: links are not followed, so that nothing outside the import folder is read"
SPECIAL = "is not a regular file or folder (a pipe, socket or device)"
_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: a pipe swapped in for a file must not block the import until someone writes to it.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


@dataclass(frozen=True)
class Entry:
    """A regular file under the root, by its POSIX path relative to the root."""

    name: str
    size: int


@dataclass(frozen=True)
class Refused:
    """Something under the root that is not read, and why (the reason follows the name in a report)."""

    name: str
    reason: str


def over_limit(size: int, max_bytes: int) -> InvalidInput:
    return InvalidInput(f"is {size:,} bytes, over the {max_bytes:,}-byte import limit (TWIN_IMPORT_MAX_FILE_BYTES)")


def _read_open_file(fd: int, max_bytes: int) -> bytes:
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput(SPECIAL)
    if info.st_size > max_bytes:
        raise over_limit(info.st_size, max_bytes)
    chunks: list[bytes] = []
    remaining = max_bytes + 1  # a file that grows while it is read still stops at the limit
    while remaining > 0 and (chunk := os.read(fd, min(remaining, 1 << 20))):
        chunks.append(chunk)
        remaining -= len(chunk)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise over_limit(len(data), max_bytes)
    return data


def _open(name: str, flags: int, dir_fd: int | None = None) -> int:
    try:
        return os.open(name, flags, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # what O_NOFOLLOW answers for a link
            raise InvalidInput(SYMLINK) from None
        raise


def read_regular_file(path: Path, max_bytes: int) -> bytes:
    """The bytes of ``path`` when it is a regular file (not a link) within the size cap."""
    fd = _open(str(path), _FILE_FLAGS)
    try:
        return _read_open_file(fd, max_bytes)
    finally:
        os.close(fd)


def _parts(name: str) -> list[str]:
    parts = name.split("/")
    if not name or any(part in {"", ".", ".."} for part in parts):
        raise InvalidInput("is not a plain path inside the import folder")
    return parts


class FolderTree:
    """The files under a folder, listed and read without following any link below it."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def read(self, name: str, max_bytes: int) -> bytes:
        """The bytes of the regular file ``name`` (a POSIX path relative to the root).

        Raises :class:`InvalidInput` when it, or a folder on the way to it, is a link or not a regular file.
        """
        *folders, filename = _parts(name)
        fd = _open(str(self.root), _DIRECTORY_FLAGS)
        try:
            for folder in folders:
                child = _open(folder, _DIRECTORY_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
            file_fd = _open(filename, _FILE_FLAGS, dir_fd=fd)
        finally:
            os.close(fd)
        try:
            return _read_open_file(file_fd, max_bytes)
        finally:
            os.close(file_fd)

    def exists(self, name: str) -> bool:
        """Whether ``name`` is there at all (a link counts: reading it then says why it is refused)."""
        try:
            os.lstat(self.root / name)
        except OSError:
            return False
        return True

    def walk(self, *, skip_hidden: bool) -> Iterator[Entry | Refused]:
        """Every regular file in path order; links, special files and unreadable folders as refusals."""
        try:
            fd = _open(str(self.root), _DIRECTORY_FLAGS)
        except (OSError, InvalidInput) as exc:
            yield Refused("", _reason(exc))
            return
        try:
            yield from self._walk(fd, (), skip_hidden)
        finally:
            os.close(fd)

    def _walk(self, fd: int, prefix: tuple[str, ...], skip_hidden: bool) -> Iterator[Entry | Refused]:
        try:
            with os.scandir(fd) as listing:
                entries = sorted(listing, key=lambda entry: entry.name)
        except OSError as exc:
            yield Refused("/".join(prefix), _reason(exc))
            return
        for entry in entries:
            if skip_hidden and entry.name.startswith("."):
                continue
            name = "/".join((*prefix, entry.name))
            try:
                if entry.is_symlink():
                    yield Refused(name, SYMLINK)
                elif entry.is_dir(follow_symlinks=False):
                    if len(prefix) + 1 >= MAX_DEPTH:
                        yield Refused(name, f"is nested more than {MAX_DEPTH} folders deep")
                        continue
                    child = _open(entry.name, _DIRECTORY_FLAGS, dir_fd=fd)
                    try:
                        yield from self._walk(child, (*prefix, entry.name), skip_hidden)
                    finally:
                        os.close(child)
                elif entry.is_file(follow_symlinks=False):
                    yield Entry(name, entry.stat(follow_symlinks=False).st_size)
                else:
                    yield Refused(name, SPECIAL)
            except (OSError, InvalidInput) as exc:
                yield Refused(name, _reason(exc))


def _reason(exc: OSError | InvalidInput) -> str:
    if isinstance(exc, InvalidInput):
        return str(exc)
    return f"could not be read: {exc.strerror or exc}"
