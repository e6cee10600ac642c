"""Versioned artifact storage for datasets, adapters and models: a local directory, or S3.

Layout, the same in both: ``{root}/{key}/{version}/...`` plus ``{root}/{key}/latest.json`` naming the
newest version. ``key`` is the asset key and partition (``instruction_dataset/jane-doe``); ``version``
is a content digest, so publishing identical content twice stores it once. Large models are copied
as files, never pickled. Reading from S3 downloads a version once into a local cache.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

# Written by libraries with run-specific content (fingerprints, timestamps): not part of the version.
_UNSTABLE = {"state.json", "dataset_info.json", "trainer_state.json", "training_args.bin"}


@dataclass(frozen=True)
class ArtifactRef:
    key: str
    version: str
    uri: str  # where it is stored: a local path or s3://bucket/prefix/key/version
    path: Path  # a local copy (the stored folder itself for the local backend)


def directory_digest(directory: Path) -> str:
    """A short content digest of a folder (names and bytes, in order; run-specific files skipped)."""
    digest = hashlib.sha256()
    for file in sorted(p for p in directory.rglob("*") if p.is_file() and p.name not in _UNSTABLE):
        digest.update(str(file.relative_to(directory)).encode() + b"\0")
        with file.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


class ArtifactStore(Protocol):
    def publish(self, staging: Path, key: str, version: str | None = None) -> ArtifactRef:
        """Store the folder ``staging`` (consumed) as a new version of ``key``."""
        ...

    def latest(self, key: str) -> ArtifactRef:
        """The newest version of ``key``, with a local copy; KeyError if there is none."""
        ...


def _pointer(key: str, version: str) -> bytes:
    return json.dumps({"key": key, "version": version, "published_at": datetime.now(UTC).isoformat()}).encode()


class LocalArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def publish(self, staging: Path, key: str, version: str | None = None) -> ArtifactRef:
        version = version or directory_digest(staging)
        target = self.root / key / version
        if target.exists():
            shutil.rmtree(staging)  # the same content is already stored
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), target)
        pointer = self.root / key / "latest.json"
        partial = pointer.with_suffix(".partial")
        partial.write_bytes(_pointer(key, version))
        partial.replace(pointer)  # atomic: readers see the old or the new version, never half
        return ArtifactRef(key, version, str(target), target)

    def latest(self, key: str) -> ArtifactRef:
        pointer = self.root / key / "latest.json"
        if not pointer.exists():
            raise KeyError(f"no artifact has been published for {key!r} under {self.root}")
        version = json.loads(pointer.read_text())["version"]
        path = self.root / key / version
        return ArtifactRef(key, version, str(path), path)


class S3ArtifactStore:
    """Artifacts in ``s3://bucket/prefix/``; versions are downloaded once into ``cache``."""

    def __init__(self, client: Any, bucket: str, prefix: str, cache: Path) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.cache = cache

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def publish(self, staging: Path, key: str, version: str | None = None) -> ArtifactRef:
        version = version or directory_digest(staging)
        for file in sorted(p for p in staging.rglob("*") if p.is_file()):
            self.client.upload_file(
                str(file), self.bucket, self._key(key, version, file.relative_to(staging).as_posix())
            )
        # The pointer goes last: a reader never sees a version whose files are still uploading.
        self.client.put_object(Bucket=self.bucket, Key=self._key(key, "latest.json"), Body=_pointer(key, version))
        local = self.cache / key / version
        if local.exists():
            shutil.rmtree(staging)
        else:
            local.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(staging), local)
        return ArtifactRef(key, version, f"s3://{self.bucket}/{self._key(key, version)}", local)

    def latest(self, key: str) -> ArtifactRef:
        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(key, "latest.json"))["Body"].read()
        except self.client.exceptions.NoSuchKey:
            raise KeyError(f"no artifact has been published for {key!r} in s3://{self.bucket}/{self.prefix}") from None
        version = json.loads(body)["version"]
        local = self.cache / key / version
        if not local.exists():
            local.parent.mkdir(parents=True, exist_ok=True)
            download = Path(tempfile.mkdtemp(dir=local.parent, prefix=f".{version}-"))
            prefix = self._key(key, version) + "/"
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    target = download / item["Key"][len(prefix) :]
                    target.parent.mkdir(parents=True, exist_ok=True)
                    self.client.download_file(self.bucket, item["Key"], str(target))
            download.rename(local)
        return ArtifactRef(key, version, f"s3://{self.bucket}/{self._key(key, version)}", local)
