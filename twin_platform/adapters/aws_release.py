"""A release reaches serving: the merged model published to S3, a pointer naming it, and the TGI hosts refreshed.

The layout is the deployment contract with ``infra/terraform``'s ``tgi_endpoint`` (whose user-data reads the
pointer of its author and syncs that version's prefix)::

    s3://{TWIN_RELEASE_S3_BUCKET}/{TWIN_RELEASE_S3_PREFIX}/{author}/{version}/   the model (config.json, weights,
                                                                                tokenizer files: Hugging Face format)
    s3://{bucket}/{prefix}/{author}/current.json   {"author", "version", "uri", "released_at"}

Order, so that a failure never leaves serving and registry disagreeing:

1. the release is checked (gates, or ``--force`` with a reason) and the bucket looked up: a missing bucket is a
   clear error before anything is written;
2. every file is uploaded (streamed from disk; a file already there with the same size and ETag, or the same MD5
   recorded in its metadata, is skipped, so a re-release uploads nothing). A failure here leaves the previous
   pointer, hence the previous release serving, and the registry unchanged;
3. the pointer is written (last: a host never reads a version whose files are still uploading);
4. the registry records the release and its S3 URI (if that fails, the previous pointer is put back);
5. with ``TWIN_RELEASE_ASG_NAME``, an instance refresh of the TGI hosts' autoscaling group is started, so each
   host is replaced by one that loads the new pointer. A refresh already in progress was rolling out an older
   pointer: it is cancelled and a new one started (when the cancellation takes longer than ``cancel_wait_s``,
   the report says so, and a re-release starts the refresh). A re-release starts no refresh when one has begun
   since the pointer was written.

Transient AWS errors (throttling, 5xx, dropped connections) are retried with tenacity on top of botocore's own
retries. Credentials come only from the standard AWS chain (environment, profile, instance or task role); they
are never passed, logged or recorded here: errors name the bucket, key and AWS error code only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import mimetypes
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import tenacity
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from twin_platform.adapters.postgres.model_registry import ModelRegistry, UnknownModel
from twin_platform.domain.models import Gate, ModelEntry
from twin_platform.settings import Settings

logger = logging.getLogger(__name__)
T = TypeVar("T")

POINTER = "current.json"
# Above this, boto3 uploads in parts of this size; the ETag of such an object is the MD5 of its parts' MD5s.
PART_BYTES = 64 * 1024 * 1024
# The instance refresh: launch a replacement before terminating a host (no capacity lost, a one-host group
# included), count a new host in service after TGI had time to sync and load the model, replace every host
# (the launch template does not change between releases: matching hosts must not be skipped).
REFRESH_PREFERENCES: dict[str, Any] = {
    "MinHealthyPercentage": 100,
    "MaxHealthyPercentage": 200,
    "InstanceWarmup": 600,
    "SkipMatching": False,
}
ACTIVE = frozenset({"Pending", "InProgress", "Cancelling", "RollbackInProgress", "Baking"})
# A refresh in one of these states, started after the pointer was written, brings the hosts to it.
COVERING = frozenset({"Pending", "InProgress", "Baking", "Successful"})
TRANSIENT_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "SlowDown",
        "RequestTimeout",
        "RequestTimeoutException",
        "RequestLimitExceeded",
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "ServiceUnavailableException",
    }
)
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ReleaseError(Exception):
    """A release could not be published; the message says why and what keeps serving."""


# --- retries -----------------------------------------------------------------------------------------------


def is_transient(exc: BaseException) -> bool:
    """Worth retrying: a dropped or timed-out connection, throttling, or a 5xx from AWS."""
    if isinstance(exc, BotoConnectionError | HTTPClientError):
        return True
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        return code in TRANSIENT_CODES or status >= 500
    return False


def _error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


@dataclass(frozen=True)
class RetryPolicy:
    """Attempts per AWS call, and the first wait (doubling, with full jitter, up to ``max_wait``)."""

    attempts: int = 5
    wait: float = 0.5
    max_wait: float = 20.0

    def call(self, what: str, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        def log(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            logger.warning("%s failed (attempt %d), retrying: %s", what, state.attempt_number, exc)

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(is_transient),
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=tenacity.wait_random_exponential(multiplier=self.wait, max=self.max_wait),
            before_sleep=log,
            reraise=True,
        )
        return retrying(fn, *args, **kwargs)


# --- S3: the model files and the pointer --------------------------------------------------------------------


def file_digests(path: Path, part_bytes: int = PART_BYTES) -> tuple[str, str]:
    """``(md5, etag)`` of a file: its MD5 and the ETag S3 gives it when boto3 uploads it in parts of
    ``part_bytes`` (the plain MD5 below that size, else the MD5 of the parts' MD5s and ``-<parts>``)."""
    whole = hashlib.md5(usedforsecurity=False)
    parts: list[bytes] = []
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(part_bytes), b""):
            whole.update(block)
            parts.append(hashlib.md5(block, usedforsecurity=False).digest())
    md5 = whole.hexdigest()
    if path.stat().st_size < part_bytes:
        return md5, md5
    return md5, f"{hashlib.md5(b''.join(parts), usedforsecurity=False).hexdigest()}-{len(parts)}"


@dataclass
class UploadReport:
    """What publishing a model's files did: where, which files went up, which were there already."""

    uri: str
    uploaded: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    bytes_uploaded: int = 0


@dataclass(frozen=True)
class Pointer:
    """``current.json`` of an author as read back: its JSON, raw bytes (to put back) and S3's write time."""

    body: dict[str, Any]
    raw: bytes
    last_modified: datetime

    @property
    def version(self) -> str | None:
        version = self.body.get("version")
        return str(version) if version is not None else None

    @property
    def written_at(self) -> datetime:
        """When it was written: its ``released_at`` (taken just before the write, to the microsecond), else S3's
        ``LastModified`` (whole seconds: too coarse to order it against an instance refresh begun that second)."""
        try:
            written = datetime.fromisoformat(str(self.body["released_at"]))
        except (KeyError, ValueError):
            return self.last_modified
        return written if written.tzinfo else written.replace(tzinfo=UTC)


class S3ReleaseStore:
    """The release layout in one bucket; ``client`` is a boto3 S3 client (from dagster-aws' ``S3Resource``)."""

    def __init__(self, client: Any, bucket: str, prefix: str = "releases", retry: RetryPolicy | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.retry = retry or RetryPolicy()
        self.part_bytes = PART_BYTES

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def version_key(self, author: str, version: str) -> str:
        for name, value in (("author", author), ("version", version)):
            if not _SLUG.match(value):
                raise ReleaseError(f"{name} {value!r} cannot be part of an S3 release key")
        return self._key(author, version)

    def version_uri(self, author: str, version: str) -> str:
        return f"s3://{self.bucket}/{self.version_key(author, version)}/"

    def pointer_key(self, author: str) -> str:
        return self._key(author, POINTER)

    def check_bucket(self) -> None:
        """Raise ``ReleaseError`` when the bucket cannot be written to: missing, forbidden, another region, or
        no credentials at all."""
        try:
            self.retry.call(f"s3 head_bucket {self.bucket}", self.client.head_bucket, Bucket=self.bucket)
        except ClientError as exc:
            code = _error_code(exc)
            if code in {"404", "NoSuchBucket", "NotFound"}:
                raise ReleaseError(
                    f"the release bucket s3://{self.bucket} (TWIN_RELEASE_S3_BUCKET) does not exist"
                ) from None
            if code in {"403", "AccessDenied", "Forbidden"}:
                raise ReleaseError(
                    f"access to the release bucket s3://{self.bucket} is denied for these AWS credentials"
                ) from None
            if code in {"301", "PermanentRedirect"}:
                raise ReleaseError(
                    f"the release bucket s3://{self.bucket} is in another region: set TWIN_AWS_REGION"
                ) from None
            raise ReleaseError(f"the release bucket s3://{self.bucket} cannot be reached: {code or exc}") from None
        except NoCredentialsError:
            raise ReleaseError(
                "no AWS credentials: set them the standard way (environment, profile, or an instance/task role)"
            ) from None
        except BotoCoreError as exc:
            raise ReleaseError(f"the release bucket s3://{self.bucket} cannot be reached: {exc}") from None

    def _present(self, key: str) -> dict[str, dict[str, Any]]:
        """Objects under ``key/``, by their path below it: size and ETag."""
        found: dict[str, dict[str, Any]] = {}
        pages = self.retry.call(
            "s3 list",
            lambda: list(self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=key + "/")),
        )
        for page in pages:
            for item in page.get("Contents", []):
                found[item["Key"][len(key) + 1 :]] = {"size": item["Size"], "etag": item["ETag"].strip('"')}
        return found

    def _same(self, key: str, remote: dict[str, Any], size: int, md5: str, etag: str) -> bool:
        if remote["size"] != size:
            return False
        if remote["etag"] == etag:
            return True
        # Encrypted with KMS, or uploaded in other parts: the ETag is no MD5; ours is kept in the metadata.
        head = self.retry.call("s3 head_object", self.client.head_object, Bucket=self.bucket, Key=key)
        return bool(head.get("Metadata", {}).get("md5") == md5)

    def published(self, author: str, version: str) -> list[str]:
        """The files already under the version's prefix."""
        return sorted(self._present(self.version_key(author, version)))

    def upload(self, folder: Path, author: str, version: str) -> UploadReport:
        """Upload every file of ``folder`` under the version's prefix, skipping those already there."""
        key = self.version_key(author, version)
        report = UploadReport(uri=self.version_uri(author, version))
        files = sorted(p for p in folder.rglob("*") if p.is_file())
        if not files:
            raise ReleaseError(f"{folder} holds no model files to release")
        present = self._present(key)
        for file in files:
            name = file.relative_to(folder).as_posix()
            size = file.stat().st_size
            md5, etag = file_digests(file, self.part_bytes)
            if name in present and self._same(f"{key}/{name}", present[name], size, md5, etag):
                report.skipped.append(name)
                continue
            self.retry.call(f"upload {name}", self._put_file, file, f"{key}/{name}", md5)
            report.uploaded.append(name)
            report.bytes_uploaded += size
        return report

    def _put_file(self, file: Path, key: str, md5: str) -> None:
        from boto3.s3.transfer import TransferConfig

        config = TransferConfig(multipart_threshold=self.part_bytes, multipart_chunksize=self.part_bytes)
        content_type = mimetypes.guess_type(file.name)[0] or "application/octet-stream"
        with file.open("rb") as handle:  # streamed: read part by part, never whole into memory
            self.client.upload_fileobj(
                handle,
                self.bucket,
                key,
                ExtraArgs={"Metadata": {"md5": md5}, "ContentType": content_type},
                Config=config,
            )

    def read_pointer(self, author: str) -> Pointer | None:
        key = self.pointer_key(author)
        try:
            response = self.retry.call("s3 get pointer", self.client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                return None
            raise
        raw = response["Body"].read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = {}
        return Pointer(body if isinstance(body, dict) else {}, raw, response["LastModified"])

    def write_pointer(self, entry: ModelEntry, uri: str) -> Pointer:
        """Point the author's hosts at ``entry`` (published at ``uri``); returns the pointer as S3 now has it."""
        body = {
            "author": entry.author,
            "version": entry.version,
            "uri": uri,
            "released_at": datetime.now(UTC).isoformat(),
        }
        raw = json.dumps(body, indent=1).encode()
        self._put_pointer(entry.author, raw)
        written = self.read_pointer(entry.author)
        if written is None or written.raw != raw:
            raise ReleaseError(
                f"the pointer s3://{self.bucket}/{self.pointer_key(entry.author)} does not hold what was just written"
            )
        return written

    def _put_pointer(self, author: str, raw: bytes) -> None:
        self.retry.call(
            "s3 put pointer",
            self.client.put_object,
            Bucket=self.bucket,
            Key=self.pointer_key(author),
            Body=raw,
            ContentType="application/json",
            CacheControl="no-cache",
        )

    def restore_pointer(self, author: str, previous: Pointer | None) -> None:
        """Put the pointer back as it was (``None``: there was none)."""
        if previous is None:
            self.retry.call(
                "s3 delete pointer", self.client.delete_object, Bucket=self.bucket, Key=self.pointer_key(author)
            )
        else:
            self._put_pointer(author, previous.raw)


# --- the TGI hosts' autoscaling group -----------------------------------------------------------------------


RefreshStatus = Literal["started", "restarted", "current", "waiting", "failed"]


@dataclass(frozen=True)
class RefreshReport:
    """What became of the hosts: a refresh ``started``; ``restarted`` after cancelling one in progress
    (``cancelled``); ``current`` (one already started after the pointer was written); ``waiting`` (the one in
    progress was cancelled but has not stopped yet: nothing new started); ``failed`` (AWS refused)."""

    group: str
    status: RefreshStatus
    detail: str
    refresh_id: str | None = None
    cancelled: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in {"started", "restarted", "current"}


class InstanceRefresher:
    """Starts instance refreshes of one autoscaling group; ``client`` is a boto3 ``autoscaling`` client."""

    def __init__(
        self,
        client: Any,
        group: str,
        *,
        preferences: dict[str, Any] | None = None,
        cancel_wait_s: float = 300.0,
        poll_s: float = 5.0,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.group = group
        self.preferences = dict(REFRESH_PREFERENCES if preferences is None else preferences)
        self.cancel_wait_s = cancel_wait_s
        self.poll_s = poll_s
        self.retry = retry or RetryPolicy()

    def refreshes(self) -> list[dict[str, Any]]:
        """The group's instance refreshes, newest first."""
        found: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"AutoScalingGroupName": self.group, **({"NextToken": token} if token else {})}
            page = self.retry.call("describe_instance_refreshes", self.client.describe_instance_refreshes, **kwargs)
            found.extend(page.get("InstanceRefreshes", []))
            token = page.get("NextToken")
            if not token:
                break
        epoch = datetime.min.replace(tzinfo=UTC)
        return sorted(found, key=lambda r: r.get("StartTime") or epoch, reverse=True)

    def refresh(self, since: datetime | None = None) -> RefreshReport:
        """Make the hosts load the pointer written at ``since``: nothing when a refresh began after it, else
        start one (cancelling one in progress first). AWS errors become a ``failed`` report, not an exception:
        the release itself is done by then."""
        try:
            return self._refresh(since)
        except (ClientError, BotoCoreError) as exc:
            detail = f"{_error_code(exc)}: {exc}" if isinstance(exc, ClientError) else str(exc)
            return RefreshReport(self.group, "failed", f"the instance refresh of {self.group} failed: {detail}")

    def _refresh(self, since: datetime | None) -> RefreshReport:
        if since is not None:
            for item in self.refreshes():
                started = item.get("StartTime")
                if started is not None and started >= since and item.get("Status") in COVERING:
                    return RefreshReport(
                        self.group,
                        "current",
                        f"instance refresh {item['InstanceRefreshId']} ({item['Status']}) began after the pointer "
                        "was written: it brings the hosts to this release",
                        refresh_id=item["InstanceRefreshId"],
                    )
        try:
            refresh_id = self._start()
            return RefreshReport(self.group, "started", f"instance refresh {refresh_id} started", refresh_id)
        except ClientError as exc:
            if _error_code(exc) != "InstanceRefreshInProgress":
                raise
        active = [r for r in self.refreshes() if r.get("Status") in ACTIVE]
        cancelled = active[0]["InstanceRefreshId"] if active else None
        logger.warning(
            "instance refresh %s of %s is in progress with an older pointer: cancelling it to start a new one",
            cancelled,
            self.group,
        )
        try:
            self.retry.call(
                "cancel_instance_refresh", self.client.cancel_instance_refresh, AutoScalingGroupName=self.group
            )
        except ClientError as exc:
            if _error_code(exc) != "ActiveInstanceRefreshNotFound":  # it ended meanwhile, or is cancelling already
                raise
        if not self._wait_until_idle():
            return RefreshReport(
                self.group,
                "waiting",
                f"instance refresh {cancelled} of {self.group} was in progress; it is cancelled but still winding "
                f"down after {self.cancel_wait_s:.0f} s, so no new refresh started: hosts it launched may serve the "
                "previous release. Release the same version again to start the refresh.",
                cancelled=cancelled,
            )
        refresh_id = self._start()
        return RefreshReport(
            self.group,
            "restarted",
            f"instance refresh {cancelled} was in progress (an older pointer): cancelled, and {refresh_id} started",
            refresh_id,
            cancelled,
        )

    def _start(self) -> str:
        response = self.retry.call(
            "start_instance_refresh",
            self.client.start_instance_refresh,
            AutoScalingGroupName=self.group,
            Strategy="Rolling",
            Preferences=self.preferences,
        )
        return str(response["InstanceRefreshId"])

    def _wait_until_idle(self) -> bool:
        deadline = time.monotonic() + self.cancel_wait_s
        while True:
            if not any(r.get("Status") in ACTIVE for r in self.refreshes()):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(self.poll_s)


# --- the release path: registry, S3 and hosts in order -------------------------------------------------------


@dataclass(frozen=True)
class PublishedRelease:
    """A release (or rollback) done: the registry entry now released and, when S3 is configured, where it is
    published, what was uploaded, whether the pointer moved, and what became of the hosts."""

    entry: ModelEntry
    upload: UploadReport | None = None
    pointer_moved: bool = False
    refresh: RefreshReport | None = None

    @property
    def uri(self) -> str | None:
        return self.upload.uri if self.upload else None

    def as_json(self) -> dict[str, Any]:
        return {
            "uri": self.uri,
            "uploaded": self.upload.uploaded if self.upload else [],
            "skipped": self.upload.skipped if self.upload else [],
            "bytes_uploaded": self.upload.bytes_uploaded if self.upload else 0,
            "pointer_moved": self.pointer_moved,
            "refresh": asdict(self.refresh) if self.refresh else None,
        }

    def lines(self) -> Iterator[str]:
        """What happened, for people."""
        if self.upload is not None:
            yield (
                f"published to {self.upload.uri}: {len(self.upload.uploaded)} files uploaded "
                f"({self.upload.bytes_uploaded} bytes), {len(self.upload.skipped)} already there"
            )
            yield "pointer moved to this version" if self.pointer_moved else "pointer already named this version"
        if self.refresh is not None:
            yield f"hosts ({self.refresh.group}): {self.refresh.detail}"


class ReleasePublisher:
    """Releases and rollbacks in the order that keeps S3 and the registry agreeing (see the module docstring).

    Without a ``store`` (no ``TWIN_RELEASE_S3_BUCKET``) a release changes the registry only.
    ``model_files(entry)`` gives a local folder with the model's files (``adapters.llm.factory.model_folder``).
    """

    def __init__(
        self,
        registry: ModelRegistry,
        model_files: Callable[[ModelEntry], Path],
        store: S3ReleaseStore | None = None,
        refresher: InstanceRefresher | None = None,
    ) -> None:
        if refresher is not None and store is None:
            raise ReleaseError("TWIN_RELEASE_ASG_NAME needs TWIN_RELEASE_S3_BUCKET: the hosts load the pointer there")
        self.registry = registry
        self.model_files = model_files
        self.store = store
        self.refresher = refresher

    def release(
        self, version: str, *, reason: str, gates: list[Gate], actor: str, force: bool = False
    ) -> PublishedRelease:
        """Publish ``version`` and make it its author's released twin. ``ReleaseRefused`` / ``ValueError`` /
        ``UnknownModel`` before anything happens; ``ReleaseError`` when S3 fails (nothing released)."""
        ModelRegistry.check_release(version, gates, reason=reason, force=force)
        entry = self.registry.get(version)
        if entry is None:
            raise UnknownModel(f"no model has version {version!r}")
        if self.store is None:
            released = self.registry.release(version, reason=reason, gates=gates, actor=actor, force=force)
            return PublishedRelease(released)
        upload = self._publish(self.store, entry)

        def commit() -> ModelEntry:
            return self.registry.release(
                version, reason=reason, gates=gates, actor=actor, force=force, release_uri=upload.uri
            )

        with self.registry.publication_lock(entry.author):
            released, moved, since = self._point(self.store, entry, upload.uri, commit)
            return PublishedRelease(released, upload, moved, self._refresh(since))

    def rollback(self, author: str | None, *, reason: str, actor: str) -> PublishedRelease:
        """Release again the author's previous release: its files (uploaded if they are not there), then the
        pointer, then the registry, then the hosts."""
        if not reason.strip():
            raise ValueError("a rollback needs a reason")
        if self.store is None:
            return PublishedRelease(self.registry.rollback(author, reason=reason, actor=actor))
        current, previous = self.registry.rollback_target(author)
        upload = self._publish(self.store, previous, published=previous.release_uri)

        def commit() -> ModelEntry:
            return self.registry.rollback(
                current.author, reason=reason, actor=actor, expect=previous.version, release_uri=upload.uri
            )

        with self.registry.publication_lock(previous.author):
            restored, moved, since = self._point(self.store, previous, upload.uri, commit)
            return PublishedRelease(restored, upload, moved, self._refresh(since))

    def _publish(self, store: S3ReleaseStore, entry: ModelEntry, published: str | None = None) -> UploadReport:
        """Upload ``entry``'s files. ``published``: where it was published before (recorded by the registry only
        once its upload was complete); when its local files are gone, that copy serves as it is."""
        store.check_bucket()
        try:
            folder = self.model_files(entry)
        except Exception as exc:
            uri = store.version_uri(entry.author, entry.version)
            if published == uri:
                names = store.published(entry.author, entry.version)
                if "config.json" in names:
                    logger.info("%s: no local files (%s); its complete copy at %s is used", entry.version, exc, uri)
                    return UploadReport(uri=uri, skipped=sorted(names))
            raise ReleaseError(
                f"{entry.model_id}: its model files cannot be read ({exc}); nothing was released"
            ) from exc
        try:
            return store.upload(folder, entry.author, entry.version)
        except ReleaseError:
            raise
        except (ClientError, BotoCoreError, OSError) as exc:
            raise ReleaseError(
                f"uploading {entry.model_id} to {store.version_uri(entry.author, entry.version)} failed "
                f"({type(exc).__name__}: {exc}); nothing was released: the pointer and the registry are unchanged, "
                "the previous release keeps serving"
            ) from exc

    def _point(
        self, store: S3ReleaseStore, entry: ModelEntry, uri: str, commit: Callable[[], ModelEntry]
    ) -> tuple[ModelEntry, bool, datetime]:
        """Write the pointer, then ``commit`` to the registry; the pointer is put back if the commit fails."""
        try:
            previous = store.read_pointer(entry.author)
            if (
                previous is not None
                and previous.body.get("version") == entry.version
                and previous.body.get("uri") == uri
            ):
                return commit(), False, previous.written_at
            written = store.write_pointer(entry, uri)
        except (ClientError, BotoCoreError) as exc:
            raise ReleaseError(
                f"writing the release pointer s3://{store.bucket}/{store.pointer_key(entry.author)} failed ({exc}); "
                "nothing was released: the registry is unchanged"
            ) from exc
        try:
            return commit(), True, written.written_at
        except BaseException:
            try:
                store.restore_pointer(entry.author, previous)
            except Exception:
                logger.exception(
                    "the registry refused %s and the pointer could not be put back: it names %s, the registry does not",
                    entry.version,
                    entry.version,
                )
            raise

    def _refresh(self, since: datetime) -> RefreshReport | None:
        return self.refresher.refresh(since) if self.refresher is not None else None


def release_publisher(
    settings: Settings, registry: ModelRegistry, model_files: Callable[[ModelEntry], Path]
) -> ReleasePublisher:
    """The publisher the settings describe: S3 through dagster-aws' ``S3Resource`` when
    ``TWIN_RELEASE_S3_BUCKET`` is set (endpoint ``TWIN_ARTIFACTS_S3_ENDPOINT_URL``, region ``TWIN_AWS_REGION``),
    the autoscaling group when ``TWIN_RELEASE_ASG_NAME`` is set (boto3). Credentials: the standard AWS chain."""
    if settings.release_asg_name and not settings.release_s3_bucket:
        raise ReleaseError("TWIN_RELEASE_ASG_NAME needs TWIN_RELEASE_S3_BUCKET: the hosts load the pointer there")
    store = refresher = None
    try:
        if settings.release_s3_bucket:
            from dagster_aws.s3 import S3Resource

            resource = S3Resource(region_name=settings.aws_region, endpoint_url=settings.artifacts_s3_endpoint_url)
            store = S3ReleaseStore(resource.get_client(), settings.release_s3_bucket, settings.release_s3_prefix)
        if settings.release_asg_name:
            import boto3

            autoscaling = boto3.session.Session(region_name=settings.aws_region).client("autoscaling")
            refresher = InstanceRefresher(autoscaling, settings.release_asg_name)
    except BotoCoreError as exc:  # no region anywhere, a malformed endpoint URL, ...
        raise ReleaseError(
            f"the AWS clients for releases cannot be made: {exc} (TWIN_AWS_REGION sets the region)"
        ) from exc
    return ReleasePublisher(registry, model_files, store, refresher)
