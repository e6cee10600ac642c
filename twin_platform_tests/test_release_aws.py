"""A release reaches serving: the merged model in S3 under ``releases/<author>/<version>/`` with its pointer, an
instance refresh of the TGI hosts' autoscaling group, rollback moving the pointer back, and the failure paths
(missing bucket, failed upload, refused registry, a refresh that will not stop, a missing group), all with moto;
the same release path against a real S3-compatible HTTP server; and answers and query-log rows naming the model
version that produced them, through the real app and through an API process that knows only TWIN_DATABASE_URL.

moto 5.2.5 implements no instance-refresh calls, so :class:`Refreshes` adds StartInstanceRefresh,
DescribeInstanceRefreshes and CancelInstanceRefresh to moto's autoscaling service: requests still go through
botocore (parameters validated against the AWS API model) and moto (the group must exist in moto)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import boto3
import httpx
import pytest
import sqlalchemy as sa
from botocore.exceptions import ClientError
from litestar.testing import TestClient
from typer.testing import CliRunner

from twin_platform.adapters.aws_release import (
    REFRESH_PREFERENCES,
    InstanceRefresher,
    ReleaseError,
    ReleasePublisher,
    RetryPolicy,
    S3ReleaseStore,
    file_digests,
)
from twin_platform.adapters.llm.factory import model_folder
from twin_platform.adapters.postgres.api_store import ApiKeyStore
from twin_platform.adapters.postgres.model_registry import ModelRegistry, RegistryError
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.api.app import create_app
from twin_platform.api.state import open_state
from twin_platform.cli.main import app
from twin_platform.domain.authors import Author
from twin_platform.domain.models import Gate, Lineage, ModelEntry
from twin_platform.settings import Settings
from twin_platform_tests.api_fixtures import log_rows
from twin_platform_tests.test_artifacts import free_port, s3_endpoint  # noqa: F401 - fixture used below
from twin_platform_tests.tiny_model import build_tiny_chat_model

AUTHOR = "jane-doe"
REGION = "us-east-1"
BUCKET = "twin-releases"
GROUP = "tgi-hosts"
PASSED = [Gate(name="perplexity", passed=True, value=12.5, threshold=20.0)]
FAST = RetryPolicy(attempts=4, wait=0.01, max_wait=0.05)
SECRET = "wJalrXUtnFEMI-not-a-real-secret-0123456789"
runner = CliRunner()


# --- moto, with the instance-refresh calls it lacks ----------------------------------------------------------


class Refreshes:
    """Instance refreshes per group, newest last, as moto would keep them; tests move them along by hand."""

    ACTIVE = frozenset({"Pending", "InProgress", "Cancelling"})

    def __init__(self) -> None:
        self.by_group: dict[str, list[dict[str, Any]]] = {}
        self.cancel_completes = True  # False: a cancelled refresh stays "Cancelling" until settle()

    def of(self, group: str = GROUP) -> list[dict[str, Any]]:
        return list(self.by_group.get(group, []))

    def finish(self, group: str = GROUP) -> None:
        for item in self.by_group.get(group, []):
            if item["Status"] in {"Pending", "InProgress"}:
                item["Status"] = "Successful"

    def settle(self, group: str = GROUP) -> None:
        for item in self.by_group.get(group, []):
            if item["Status"] == "Cancelling":
                item["Status"] = "Cancelled"

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from moto.autoscaling.exceptions import AutoscalingClientError, ValidationError
        from moto.autoscaling.responses import AutoScalingResponse
        from moto.core.responses import ActionResult

        class InProgress(AutoscalingClientError):
            code = "InstanceRefreshInProgress"

        class NotFound(AutoscalingClientError):
            code = "ActiveInstanceRefreshNotFound"

        fake = self

        def group_of(response: Any) -> list[dict[str, Any]]:
            name = response._get_param("AutoScalingGroupName")
            if name not in response.autoscaling_backend.autoscaling_groups:
                raise ValidationError(f"AutoScalingGroup name not found - {name}")
            return fake.by_group.setdefault(name, [])

        def start_instance_refresh(response: Any) -> ActionResult:
            items = group_of(response)
            if any(r["Status"] in fake.ACTIVE for r in items):
                raise InProgress("An Instance Refresh is already in progress and blocks the execution of this one.")
            refresh_id = str(uuid.uuid4())
            items.append(
                {
                    "InstanceRefreshId": refresh_id,
                    "AutoScalingGroupName": response._get_param("AutoScalingGroupName"),
                    "Status": "Pending",
                    "StartTime": datetime.now(UTC),
                    "PercentageComplete": 0,
                    "Preferences": response._get_param("Preferences") or {},
                    "Strategy": response._get_param("Strategy") or "Rolling",
                }
            )
            return ActionResult({"InstanceRefreshId": refresh_id})

        def describe_instance_refreshes(response: Any) -> ActionResult:
            items = [{k: v for k, v in r.items() if k != "Strategy"} for r in group_of(response)]
            return ActionResult({"InstanceRefreshes": list(reversed(items))})

        def cancel_instance_refresh(response: Any) -> ActionResult:
            active = [r for r in group_of(response) if r["Status"] in {"Pending", "InProgress"}]
            if not active:
                raise NotFound("No in progress or pending Instance Refresh found for this group.")
            active[-1]["Status"] = "Cancelled" if fake.cancel_completes else "Cancelling"
            return ActionResult({"InstanceRefreshId": active[-1]["InstanceRefreshId"]})

        for method in (start_instance_refresh, describe_instance_refreshes, cancel_instance_refresh):
            monkeypatch.setattr(AutoScalingResponse, method.__name__, method, raising=False)


@dataclass
class AWS:
    s3: Any
    autoscaling: Any
    refreshes: Refreshes


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "AKIATESTING0000000000",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": REGION,
    }.items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def aws(aws_credentials: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[AWS]:
    """moto: the release bucket, and the TGI hosts' autoscaling group on a GPU launch template."""
    from moto import mock_aws

    refreshes = Refreshes()
    refreshes.install(monkeypatch)
    with mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        ec2 = boto3.client("ec2", region_name=REGION)
        image = ec2.describe_images()["Images"][0]["ImageId"]
        ec2.create_launch_template(
            LaunchTemplateName="tgi", LaunchTemplateData={"ImageId": image, "InstanceType": "g5.xlarge"}
        )
        autoscaling = boto3.client("autoscaling", region_name=REGION)
        autoscaling.create_auto_scaling_group(
            AutoScalingGroupName=GROUP,
            LaunchTemplate={"LaunchTemplateName": "tgi", "Version": "$Latest"},
            MinSize=1,
            MaxSize=2,
            DesiredCapacity=1,
            AvailabilityZones=[f"{REGION}a"],
        )
        yield AWS(s3, autoscaling, refreshes)


def configure(monkeypatch: pytest.MonkeyPatch, bucket: str = BUCKET, group: str | None = GROUP) -> None:
    monkeypatch.setenv("TWIN_RELEASE_S3_BUCKET", bucket)
    monkeypatch.setenv("TWIN_AWS_REGION", REGION)
    if group:
        monkeypatch.setenv("TWIN_RELEASE_ASG_NAME", group)


# --- the registry and two tiny twins ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("release-twins")
    first, second = build_tiny_chat_model(root / "a"), build_tiny_chat_model(root / "b")
    (second / "generation_config.json").write_text(json.dumps({"max_new_tokens": 7}))  # another model's files
    return first, second


@pytest.fixture
def registry(runtime: Runtime) -> ModelRegistry:
    runtime.authors.save(Author(full_name="Jane Doe"))
    return runtime.models


def evaluated(registry: ModelRegistry, version: str, folder: Path, author: str = AUTHOR, minutes: int = 0) -> None:
    """Register ``version`` (files in ``folder``) with an evaluation whose gates passed."""
    registry.register(
        ModelEntry(
            version=version,
            name=f"twin-{author}-{version}",
            author=author,
            created_at=datetime(2026, 11, 1, tzinfo=UTC) + timedelta(minutes=minutes),
            uri=str(folder),
            lineage=Lineage(base_model="tiny", code_version="test"),
        )
    )
    registry.record_evaluation(version, {"gates": [g.model_dump() for g in PASSED]})


def publisher(registry: ModelRegistry, s3: Any, autoscaling: Any | None = None, **refresher: Any) -> ReleasePublisher:
    settings = Settings()
    return ReleasePublisher(
        registry,
        lambda entry: model_folder(entry, settings),
        S3ReleaseStore(s3, BUCKET, "releases", retry=FAST),
        InstanceRefresher(autoscaling, GROUP, retry=FAST, **refresher) if autoscaling is not None else None,
    )


def release(pub: ReleasePublisher, version: str) -> Any:
    return pub.release(version, reason="gates passed", gates=PASSED, actor="test")


def twin(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def flat(text: str) -> str:
    """``text`` with rich's line wrapping undone (the CLI prints to an 80-column console here)."""
    return " ".join(text.split())


def files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def objects(s3: Any, prefix: str, bucket: str = BUCKET) -> dict[str, bytes]:
    found = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for item in page.get("Contents", []):
            found[item["Key"][len(prefix) :]] = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
    return found


def pointer_raw(s3: Any, author: str = AUTHOR, bucket: str = BUCKET) -> bytes | None:
    try:
        return bytes(s3.get_object(Bucket=bucket, Key=f"releases/{author}/current.json")["Body"].read())
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "NoSuchKey":
            raise
        return None


def pointer(s3: Any, author: str = AUTHOR, bucket: str = BUCKET) -> dict[str, Any]:
    raw = pointer_raw(s3, author, bucket)
    assert raw is not None, "no pointer"
    body: dict[str, Any] = json.loads(raw)
    return body


def version_uri(version: str, bucket: str = BUCKET) -> str:
    return f"s3://{bucket}/releases/{AUTHOR}/{version}/"


# --- the release path, through `twin models` ---------------------------------------------------------------------


def test_a_release_lands_in_s3_with_its_pointer_and_refreshes_the_tgi_hosts_and_a_rollback_moves_it_back(
    aws: AWS,
    registry: ModelRegistry,
    tiny_models: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
):
    caplog.set_level("DEBUG", logger="twin_platform")
    configure(monkeypatch)
    folder_a, folder_b = tiny_models
    evaluated(registry, "v1", folder_a)
    evaluated(registry, "v2", folder_b, minutes=1)
    started = datetime.now(UTC)

    code, out, err = twin("release", "v1", "--json")
    assert code == 0, err
    released = json.loads(out)
    assert released["release_uri"] == version_uri("v1")
    assert objects(aws.s3, f"releases/{AUTHOR}/v1/") == files(folder_a)  # every file, byte for byte
    assert sorted(released["publication"]["uploaded"]) == sorted(files(folder_a))
    assert released["publication"]["skipped"] == []
    current = pointer(aws.s3)
    assert {k: current[k] for k in ("author", "version", "uri")} == {
        "author": AUTHOR,
        "version": "v1",
        "uri": version_uri("v1"),
    }
    assert started <= datetime.fromisoformat(current["released_at"]) <= datetime.now(UTC)
    entry = registry.current(AUTHOR)
    assert entry is not None
    assert (entry.version, entry.release_uri) == ("v1", version_uri("v1"))
    [first] = aws.refreshes.of()
    assert first["Preferences"] == REFRESH_PREFERENCES  # launch before terminate, every host replaced
    assert first["Preferences"]["SkipMatching"] is False
    assert released["publication"]["refresh"]["status"] == "started"
    assert released["publication"]["refresh"]["refresh_id"] == first["InstanceRefreshId"]

    # Released again: nothing uploaded, the pointer untouched, no second refresh (the first began after it).
    raw = pointer_raw(aws.s3)
    code, out, err = twin("release", "v1", "--json")
    assert code == 0, err
    again = json.loads(out)["publication"]
    assert (again["uploaded"], sorted(again["skipped"])) == ([], sorted(files(folder_a)))
    assert again["pointer_moved"] is False
    assert again["refresh"]["status"] == "current"
    assert pointer_raw(aws.s3) == raw
    assert len(aws.refreshes.of()) == 1
    assert [e.action for e in registry.history("v1")] == ["register", "release"]

    # v2 while v1 is still rolling out: that refresh (of an older pointer) is cancelled and a new one started.
    code, out, err = twin("release", "v2")
    assert code == 0, err
    assert "published to " + version_uri("v2") in flat(out)
    assert f"{first['InstanceRefreshId']} was in progress" in flat(out)
    newest, cancelled = aws.refreshes.of()[::-1]
    assert (newest["Status"], cancelled["Status"]) == ("Pending", "Cancelled")
    assert cancelled["InstanceRefreshId"] == first["InstanceRefreshId"]
    assert objects(aws.s3, f"releases/{AUTHOR}/v2/") == files(folder_b)
    assert (pointer(aws.s3)["version"], pointer(aws.s3)["uri"]) == ("v2", version_uri("v2"))
    assert {e.version: e.state for e in registry.list()} == {"v1": "retired", "v2": "released"}

    # Rollback: the pointer moves back to v1's files (already there: nothing uploaded), then the hosts refresh.
    aws.refreshes.finish()
    code, out, err = twin("rollback", "--author", AUTHOR, "--reason", "v2 rambles", "--json")
    assert code == 0, err
    restored = json.loads(out)
    assert (restored["version"], restored["release_uri"]) == ("v1", version_uri("v1"))
    assert restored["publication"]["uploaded"] == []
    assert restored["publication"]["pointer_moved"] is True
    assert restored["publication"]["refresh"]["status"] == "started"
    assert (pointer(aws.s3)["version"], pointer(aws.s3)["uri"]) == ("v1", version_uri("v1"))
    assert [r["Status"] for r in aws.refreshes.of()] == ["Cancelled", "Successful", "Pending"]
    assert {e.version: e.state for e in registry.list()} == {"v1": "released", "v2": "retired"}
    assert objects(aws.s3, f"releases/{AUTHOR}/v2/") == files(folder_b)  # kept: rolling forward needs no upload

    # Credentials come from the AWS chain only: never printed, logged, or stored with the release.
    stored = json.dumps([e.model_dump(mode="json") for e in registry.list()])
    history = json.dumps([e.model_dump(mode="json") for e in registry.history()])
    for text in (out, err, caplog.text, stored, history, json.dumps(pointer(aws.s3))):
        assert SECRET not in text
        assert "AKIATESTING" not in text


def test_a_missing_bucket_is_a_clear_error_and_nothing_is_released(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    configure(monkeypatch, bucket="no-such-bucket")
    evaluated(registry, "v1", tiny_models[0])
    code, out, err = twin("release", "v1")
    assert code == 1
    assert "the release bucket s3://no-such-bucket (TWIN_RELEASE_S3_BUCKET) does not exist" in flat(err)
    assert "released" not in out
    entry = registry.get("v1")
    assert entry is not None
    assert (entry.state, entry.release_uri) == ("candidate", None)
    assert [e.action for e in registry.history("v1")] == ["register"]
    assert aws.refreshes.of() == []


def test_a_group_without_a_bucket_is_refused_before_anything_happens(
    registry: ModelRegistry, tiny_models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TWIN_RELEASE_ASG_NAME", GROUP)
    evaluated(registry, "v1", tiny_models[0])
    code, _, err = twin("release", "v1")
    assert code == 2
    assert "TWIN_RELEASE_ASG_NAME needs TWIN_RELEASE_S3_BUCKET" in flat(err)
    assert registry.current(AUTHOR) is None


def test_without_a_release_bucket_a_release_changes_the_registry_only(
    registry: ModelRegistry, tiny_models: tuple[Path, Path]
):
    evaluated(registry, "v1", tiny_models[0])
    code, out, err = twin("release", "v1", "--json")
    assert code == 0, err
    released = json.loads(out)
    assert (released["state"], released["release_uri"]) == ("released", None)
    assert released["publication"] == {
        "uri": None,
        "uploaded": [],
        "skipped": [],
        "bytes_uploaded": 0,
        "pointer_moved": False,
        "refresh": None,
    }


# --- failures: the previous release keeps serving ----------------------------------------------------------------


class FailingS3:
    """The S3 client, except that uploads of ``name`` fail with ``code`` (HTTP ``status``) ``times`` times."""

    def __init__(self, client: Any, name: str, code: str, status: int, times: int = 1_000) -> None:
        self._client = client
        self.name, self.code, self.status, self.times = name, code, status, times
        self.failures = 0

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._client, attribute)

    def upload_fileobj(self, handle: Any, bucket: str, key: str, **kwargs: Any) -> None:
        if key.endswith("/" + self.name) and self.failures < self.times:
            self.failures += 1
            error: Any = {"Error": {"Code": self.code, "Message": "injected"}, "ResponseMetadata": {}}
            error["ResponseMetadata"]["HTTPStatusCode"] = self.status
            raise ClientError(error, "PutObject")
        self._client.upload_fileobj(handle, bucket, key, **kwargs)


def test_a_failed_upload_releases_nothing_and_transient_errors_are_retried(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path]
):
    folder_a, folder_b = tiny_models
    evaluated(registry, "v1", folder_a)
    evaluated(registry, "v2", folder_b, minutes=1)
    release(publisher(registry, aws.s3, aws.autoscaling), "v1")
    before = pointer_raw(aws.s3)
    refreshes = len(aws.refreshes.of())

    denied = FailingS3(aws.s3, "model.safetensors", "AccessDenied", 403)
    with pytest.raises(ReleaseError) as failed:
        release(publisher(registry, denied, aws.autoscaling), "v2")  # type: ignore[arg-type]
    message = str(failed.value)
    assert "AccessDenied" in message
    assert "nothing was released" in message
    assert "the previous release keeps serving" in message
    assert denied.failures == 1  # not transient: not retried
    assert pointer_raw(aws.s3) == before  # the hosts still load v1
    current = registry.current(AUTHOR)
    assert current is not None
    assert current.version == "v1"
    entry = registry.get("v2")
    assert entry is not None
    assert (entry.state, entry.release_uri) == ("candidate", None)
    assert len(aws.refreshes.of()) == refreshes

    # SlowDown (503) twice, then the upload goes through; files the failed attempt uploaded are skipped.
    flaky = FailingS3(aws.s3, "model.safetensors", "SlowDown", 503, times=2)
    published = release(publisher(registry, flaky, aws.autoscaling), "v2")  # type: ignore[arg-type]
    assert flaky.failures == 2
    assert published.upload is not None
    assert sorted(published.upload.skipped) == sorted(n for n in files(folder_b) if n < "model.safetensors")
    assert objects(aws.s3, f"releases/{AUTHOR}/v2/") == files(folder_b)
    assert pointer(aws.s3)["version"] == "v2"
    assert published.entry.version == "v2"


def test_when_the_registry_refuses_the_pointer_is_put_back(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    folder_a, folder_b = tiny_models
    evaluated(registry, "v1", folder_a)
    evaluated(registry, "v2", folder_b, minutes=1)
    pub = publisher(registry, aws.s3, aws.autoscaling)
    real_release = registry.release

    def broken(*args: Any, **kwargs: Any) -> ModelEntry:
        raise RegistryError("the database went away")

    monkeypatch.setattr(registry, "release", broken)
    with pytest.raises(RegistryError, match="went away"):
        release(pub, "v1")
    assert pointer_raw(aws.s3) is None  # there was none: it is gone again
    monkeypatch.setattr(registry, "release", real_release)
    release(pub, "v1")
    before = pointer_raw(aws.s3)

    monkeypatch.setattr(registry, "release", broken)
    with pytest.raises(RegistryError):
        release(pub, "v2")
    assert pointer_raw(aws.s3) == before  # v1's pointer, byte for byte
    assert len(aws.refreshes.of()) == 1  # no refresh for a release that did not happen


def test_a_rollback_uses_the_published_copy_when_the_local_files_are_gone(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path], tmp_path: Path
):
    copy = tmp_path / "v1-files"
    copy.mkdir()
    for name, data in files(tiny_models[0]).items():
        (copy / name).write_bytes(data)
    evaluated(registry, "v1", copy)
    evaluated(registry, "v2", tiny_models[1], minutes=1)
    pub = publisher(registry, aws.s3, aws.autoscaling)
    release(pub, "v1")
    release(pub, "v2")
    for file in copy.iterdir():  # another machine, or a cleaned artifact folder
        file.unlink()
    copy.rmdir()
    back = pub.rollback(AUTHOR, reason="v2 rambles", actor="test")
    assert back.entry.version == "v1"
    assert back.upload is not None
    assert (back.upload.uploaded, sorted(back.upload.skipped)) == ([], sorted(files(tiny_models[0])))
    assert pointer(aws.s3)["uri"] == version_uri("v1")

    # A version never published completely (no release_uri) cannot be served from a partial copy.
    evaluated(registry, "v3", tmp_path / "missing", minutes=2)
    with pytest.raises(ReleaseError, match="its model files cannot be read"):
        release(pub, "v3")
    assert pointer(aws.s3)["version"] == "v1"


def test_publishing_one_authors_release_is_serialized_across_processes(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path]
):
    import threading

    evaluated(registry, "v1", tiny_models[0])
    pub = publisher(registry, aws.s3)
    outcome: list[Any] = []
    with registry.publication_lock(AUTHOR):  # held by "another process" moving the pointer
        worker = threading.Thread(target=lambda: outcome.append(release(pub, "v1")))
        worker.start()
        wait_for(lambda: objects(aws.s3, f"releases/{AUTHOR}/v1/") == files(tiny_models[0]), timeout=30)
        time.sleep(0.5)
        assert pointer_raw(aws.s3) is None  # uploaded, but the pointer waits for the lock
        assert registry.current(AUTHOR) is None
    worker.join(30)
    assert outcome
    assert outcome[0].entry.version == "v1"
    assert pointer(aws.s3)["version"] == "v1"


def test_a_refresh_that_will_not_stop_is_reported_and_releasing_again_starts_the_refresh(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path]
):
    folder_a, folder_b = tiny_models
    evaluated(registry, "v1", folder_a)
    evaluated(registry, "v2", folder_b, minutes=1)
    pub = publisher(registry, aws.s3, aws.autoscaling, cancel_wait_s=0.3, poll_s=0.05)
    first = release(pub, "v1").refresh
    assert first.status == "started"

    aws.refreshes.cancel_completes = False
    second = release(pub, "v2")
    assert second.refresh is not None
    assert (second.refresh.status, second.refresh.ok) == ("waiting", False)
    assert second.refresh.cancelled == first.refresh_id
    assert "still winding down" in second.refresh.detail
    assert "Release the same version again" in second.refresh.detail
    assert second.entry.state == "released"  # the release itself is done: registry and pointer name v2
    assert pointer(aws.s3)["version"] == "v2"

    aws.refreshes.settle()
    third = release(pub, "v2")
    assert third.refresh is not None
    assert third.refresh.status == "started"
    assert (third.upload.uploaded if third.upload else None, third.pointer_moved) == ([], False)
    assert [r["Status"] for r in aws.refreshes.of()] == ["Cancelled", "Pending"]


def test_a_missing_autoscaling_group_leaves_the_release_done_and_says_the_hosts_were_not_refreshed(
    aws: AWS, registry: ModelRegistry, tiny_models: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
):
    configure(monkeypatch, group="no-such-group")
    evaluated(registry, "v1", tiny_models[0])
    code, out, err = twin("release", "v1")
    assert code == 1
    assert "released twin-jane-doe-v1 (v1) for jane-doe" in flat(out)
    assert "v1 is released (registry and S3 pointer), but the TGI hosts were not refreshed" in flat(err)
    assert "AutoScalingGroup name not found - no-such-group" in flat(err)
    assert pointer(aws.s3)["version"] == "v1"
    current = registry.current(AUTHOR)
    assert current is not None
    assert current.version == "v1"


def test_multipart_etags_are_computed_as_s3_computes_them(tmp_path: Path):
    import hashlib

    part = 5 * 1024 * 1024
    data = os.urandom(part * 2 + 17)
    file = tmp_path / "big.bin"
    file.write_bytes(data)
    chunks = [data[i : i + part] for i in range(0, len(data), part)]

    def md5(data: bytes) -> Any:
        return hashlib.md5(data, usedforsecurity=False)

    expected = md5(b"".join(md5(c).digest() for c in chunks)).hexdigest() + "-3"
    assert file_digests(file, part) == (md5(data).hexdigest(), expected)
    small = tmp_path / "small.bin"
    small.write_bytes(b"abc")
    assert file_digests(small, part) == (md5(b"abc").hexdigest(),) * 2


# --- model_release, the gate's way to a release ------------------------------------------------------------------


def test_model_release_publishes_the_release_and_refreshes_the_hosts(
    aws: AWS,
    registry: ModelRegistry,
    settings: Settings,
    tiny_models: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
):
    import dagster as dg

    from twin_platform.adapters.artifacts import LocalArtifactStore
    from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
    from twin_platform.defs.evaluation import assets as evaluation_assets
    from twin_platform.defs.resources import ArtifactIOManager, ArtifactStoreResource, PlatformSettings, TwinResource
    from twin_platform_tests.test_training import EVALUATION, TRAINING, cleaned_documents, raw_documents

    configure(monkeypatch)
    evaluated(registry, "v1", tiny_models[0])
    # The evaluation itself is tested in test_evaluation; here, a report whose every gate passed.
    report = SimpleNamespace(
        passed=True,
        failed_gates=[],
        twin_version="v1",
        registry_evaluation=lambda _uri: {"gates": [g.model_dump() for g in PASSED]},
        models={"twin": SimpleNamespace(perplexity=10.0), "base": SimpleNamespace(perplexity=20.0)},
    )
    monkeypatch.setattr(evaluation_assets, "read_report", lambda _ref: report)
    staged = settings.data_path / "report-staging"
    staged.mkdir(parents=True)
    (staged / "report.json").write_text("{}")
    LocalArtifactStore(settings.data_path / "artifacts").publish(staged, f"evaluation_report/{AUTHOR}")

    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(AUTHORS_PARTITION, [AUTHOR])
    storage = ArtifactStoreResource()
    result = dg.materialize(
        [raw_documents, cleaned_documents, *TRAINING, *EVALUATION],
        selection=[evaluation_assets.model_release],
        resources={
            "twin": TwinResource(),
            "platform": PlatformSettings(),
            "artifact_store": storage,
            "artifacts": ArtifactIOManager(storage=storage),
        },
        partition_key=AUTHOR,
        instance=instance,
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("model_release")
    assert materialization.metadata["release_uri"].value == version_uri("v1")
    publication = materialization.metadata["publication"].value
    assert publication["refresh"]["status"] == "started"  # type: ignore[index]
    assert objects(aws.s3, f"releases/{AUTHOR}/v1/") == files(tiny_models[0])
    assert pointer(aws.s3)["version"] == "v1"
    current = registry.current(AUTHOR)
    assert current is not None
    assert (current.version, current.release_uri) == ("v1", version_uri("v1"))
    assert len(aws.refreshes.of()) == 1


# --- against a real S3-compatible server ---------------------------------------------------------------------------


def exercise_release_on(endpoint: str, bucket: str, registry: ModelRegistry, folders: tuple[Path, Path]) -> None:
    """Release v1 and v2, release v2 again, roll back, through ``release_publisher`` (dagster-aws' S3 resource)
    against ``endpoint``; the objects are checked with a separate client. Multipart uploads included (5 MiB
    parts, the smallest S3 accepts)."""
    from twin_platform.adapters.aws_release import release_publisher

    settings = Settings().model_copy(
        update={"release_s3_bucket": bucket, "artifacts_s3_endpoint_url": endpoint, "release_s3_prefix": "releases"}
    )
    pub = release_publisher(settings, registry, lambda e: model_folder(e, settings))
    assert pub.store is not None
    assert pub.refresher is None
    pub.store.part_bytes = 5 * 1024 * 1024
    pub.store.retry = FAST
    check = boto3.client("s3", endpoint_url=endpoint)

    first = release(pub, "v1")
    assert first.upload is not None
    assert "weights-extra.bin" in first.upload.uploaded
    assert objects(check, f"releases/{AUTHOR}/v1/", bucket) == files(folders[0])
    head = check.head_object(Bucket=bucket, Key=f"releases/{AUTHOR}/v1/weights-extra.bin")
    assert head["ETag"].strip('"').endswith("-2")  # uploaded in parts
    release(pub, "v2")
    again = release(pub, "v2")
    assert again.upload is not None
    assert (again.upload.uploaded, again.pointer_moved) == ([], False)  # the multipart file too: same ETag
    assert pointer(check, bucket=bucket)["uri"] == version_uri("v2", bucket)
    back = pub.rollback(AUTHOR, reason="test", actor="test")
    assert back.entry.version == "v1"
    assert pointer(check, bucket=bucket) | {"released_at": None} == {
        "author": AUTHOR,
        "version": "v1",
        "uri": version_uri("v1", bucket),
        "released_at": None,
    }


@pytest.fixture
def big_models(tiny_models: tuple[Path, Path], tmp_path: Path) -> tuple[Path, Path]:
    """The tiny twins, each with a 6 MiB file (two parts of 5 MiB) as a large weights shard would be."""
    copies = []
    for i, folder in enumerate(tiny_models):
        copy = tmp_path / f"big-{i}"
        copy.mkdir()
        for name, data in files(folder).items():
            (copy / name).write_bytes(data)
        (copy / "weights-extra.bin").write_bytes(os.urandom(6 * 1024 * 1024))
        copies.append(copy)
    return copies[0], copies[1]


def test_the_release_path_on_an_s3_http_server(
    s3_endpoint: str,  # noqa: F811
    aws_credentials: None,
    registry: ModelRegistry,
    big_models: tuple[Path, Path],
):
    bucket = f"twin-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    evaluated(registry, "v1", big_models[0])
    evaluated(registry, "v2", big_models[1], minutes=1)
    exercise_release_on(s3_endpoint, bucket, registry, big_models)


@pytest.mark.skipif(
    not os.environ.get("TWIN_TEST_S3_ENDPOINT_URL"),
    reason="TWIN_TEST_S3_ENDPOINT_URL (a real S3-compatible server, credentials in the AWS variables) not set",
)
def test_the_release_path_on_the_configured_s3_server(registry: ModelRegistry, big_models: tuple[Path, Path]):
    endpoint = os.environ["TWIN_TEST_S3_ENDPOINT_URL"]
    client = boto3.client("s3", endpoint_url=endpoint)
    bucket = os.environ.get("TWIN_TEST_S3_BUCKET") or f"twin-release-test-{uuid.uuid4().hex[:8]}"
    created = not os.environ.get("TWIN_TEST_S3_BUCKET")
    if created:
        client.create_bucket(Bucket=bucket)
    author_prefix = f"releases/{AUTHOR}/"
    try:
        evaluated(registry, "v1", big_models[0])
        evaluated(registry, "v2", big_models[1], minutes=1)
        exercise_release_on(endpoint, bucket, registry, big_models)
    finally:
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=author_prefix):
            for item in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=item["Key"])
        if created:
            client.delete_bucket(Bucket=bucket)


# --- answers and the query log name the model version --------------------------------------------------------------


DEMO = "mara-ellison"


def wait_for(condition: Any, timeout: float = 90.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


def released_demo_twin(settings: Settings, version: str, folder: Path, minutes: int = 0) -> None:
    with open_runtime(settings) as runtime:
        evaluated(runtime.models, version, folder, author=DEMO, minutes=minutes)
        runtime.models.release(version, reason="test", gates=PASSED, actor="test")


def sse_events(text: str) -> list[tuple[str, str]]:
    events, name = [], "message"
    for line in text.splitlines():
        if line.startswith("event:"):
            name = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            events.append((name, line.split(":", 1)[1].strip()))
    return events


def test_answers_and_query_log_rows_name_the_model_version_local_backend(
    api_settings: Settings, tiny_models: tuple[Path, Path]
):
    settings = api_settings.model_copy(update={"llm_backend": "local", "api_model_poll_seconds": 0.05})
    released_demo_twin(settings, "tiny-a", tiny_models[0])
    state = open_state(settings)
    key = state.keys.store.create("tests")
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with TestClient(create_app(settings, state=state)) as client:
            wait_for(lambda: client.get("/ready").json().get("model_version") == "tiny-a")
            search = client.post("/v1/search", headers=headers, json={"query": "chunking", "author": DEMO})
            assert search.status_code == 200, search.text
            body = {"query": "How should I chunk documents?", "author": DEMO, "max_tokens": 3}
            rag = client.post("/v1/rag", headers=headers, json=body)
            assert rag.status_code == 200, rag.text
            assert (rag.json()["model"], rag.json()["model_version"]) == ("twin-mara-ellison-tiny-a@tiny-a", "tiny-a")
            streamed = client.post("/v1/rag", headers=headers, json={**body, "stream": True})
            [sources] = [json.loads(data) for name, data in sse_events(streamed.text) if name == "sources"]
            assert sources["model_version"] == "tiny-a"
            chat = {"messages": [{"role": "user", "content": "What did Mara write?"}], "max_tokens": 3}
            completion = client.post("/v1/chat/completions", headers=headers, json=chat)
            assert completion.status_code == 200, completion.text
            assert completion.json()["model_version"] == "tiny-a"

            # A new release: the next answer, and its row, name the new version.
            with open_runtime(settings) as runtime:
                evaluated(runtime.models, "tiny-b", tiny_models[1], author=DEMO, minutes=1)
                runtime.models.release("tiny-b", reason="test", gates=PASSED, actor="test")
            wait_for(lambda: client.get("/ready").json().get("model_version") == "tiny-b")
            rag_b = client.post("/v1/rag", headers=headers, json=body)
            assert rag_b.json()["model_version"] == "tiny-b"
            rows = log_rows(state)
    finally:
        state.close()
    by_endpoint = [(r.endpoint, r.model_version, r.model) for r in rows]
    assert by_endpoint == [
        ("search", None, None),
        ("rag", "tiny-a", "twin-mara-ellison-tiny-a@tiny-a"),
        ("rag", "tiny-a", "twin-mara-ellison-tiny-a@tiny-a"),
        ("chat", "tiny-a", "twin-mara-ellison-tiny-a@tiny-a"),
        ("rag", "tiny-b", "twin-mara-ellison-tiny-b@tiny-b"),
    ]


def test_with_tgi_the_api_names_the_registry_release_the_hosts_load(api_settings: Settings, tgi: Any):
    settings = api_settings.model_copy(
        update={"llm_backend": "tgi", "llm_url": tgi.url, "llm_timeout": 5.0, "api_model_poll_seconds": 0.05}
    )
    state = open_state(settings)
    key = state.keys.store.create("tests")
    headers = {"Authorization": f"Bearer {key}"}
    body = {"query": "How should I chunk documents?", "author": DEMO, "max_tokens": 8}
    try:
        with TestClient(create_app(settings, state=state)) as client:
            wait_for(lambda: client.get("/ready").json()["status"] == "ready")
            nothing = client.post("/v1/rag", headers=headers, json=body)
            assert nothing.status_code == 200, nothing.text
            assert nothing.json()["model_version"] is None  # nothing released: no registry version answered
            with open_runtime(settings) as runtime:
                runtime.models.register(
                    ModelEntry(version="tgi-v1", name="twin", author=DEMO, uri="s3://bucket/releases/x/tgi-v1")
                )
                runtime.models.release("tgi-v1", reason="test", gates=PASSED, actor="test")
            wait_for(lambda: client.get("/ready").json().get("model_version") == "tgi-v1")
            answer = client.post("/v1/rag", headers=headers, json=body)
            assert answer.json()["model_version"] == "tgi-v1"
            rows = log_rows(state)
    finally:
        state.close()
    assert [(r.endpoint, r.model_version) for r in rows] == [("rag", None), ("rag", "tgi-v1")]


def test_an_api_process_with_only_the_database_url_serves_the_released_twin(
    api_settings: Settings, tiny_models: tuple[Path, Path], tmp_path: Path
):
    assert api_settings.database_url is not None
    url = api_settings.database_url.get_secret_value()
    released_demo_twin(api_settings, "tiny-a", tiny_models[0])
    engine = sa.create_engine(url)
    key = ApiKeyStore(engine).create("process")
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    port = free_port()
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "TWIN_DATABASE_URL": url}
    twin_bin = Path(sys.executable).with_name("twin")
    process = subprocess.Popen(
        [str(twin_bin), "api", "--port", str(port)],
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"

    def ready() -> dict[str, Any] | None:
        if process.poll() is not None:
            raise AssertionError(f"twin api exited: {process.stdout.read().decode() if process.stdout else ''}")
        try:
            body: dict[str, Any] = httpx.get(f"{base}/ready", timeout=2).json()
        except (httpx.HTTPError, ValueError):
            return None
        return body if body.get("model_version") else None

    try:
        readiness = wait_for(ready, timeout=180)
        assert (readiness["model"], readiness["model_version"]) == ("twin-mara-ellison-tiny-a@tiny-a", "tiny-a")
        headers = {"Authorization": f"Bearer {key}"}
        [model] = httpx.get(f"{base}/v1/models", headers=headers, timeout=10).json()["data"]
        assert model["id"] == "twin-mara-ellison-tiny-a@tiny-a"
        answer = httpx.post(
            f"{base}/v1/rag", headers=headers, json={"query": "chunking?", "author": DEMO, "max_tokens": 3}, timeout=60
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["model_version"] == "tiny-a"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
        engine.dispose()
    assert not list(workdir.rglob("registry.json"))  # nothing local told it what to serve
    with sa.create_engine(url).connect() as conn:
        logged = conn.execute(sa.text("SELECT endpoint, model_version FROM query_log ORDER BY created_at")).all()
    assert [tuple(r) for r in logged] == [("models", None), ("rag", "tiny-a")]
