"""Artifact stores (local dir; S3 on a real moto server on 127.0.0.1), k8s tags (the model registry: test_registry)."""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from twin_platform.adapters.artifacts import LocalArtifactStore, S3ArtifactStore, directory_digest
from twin_platform.defs.resources import ArtifactIOManager, ArtifactStoreResource, Staged
from twin_platform.settings import Settings


def folder(root: Path, **files: str) -> Path:
    root.mkdir(parents=True)
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_local_store_versions_by_content_and_points_at_the_newest(tmp_path: Path):
    store = LocalArtifactStore(tmp_path / "artifacts")
    first = store.publish(folder(tmp_path / "a", x="1"), "ds/jane")
    assert first.path.is_dir()
    assert (first.path / "x").read_text() == "1"
    again = store.publish(folder(tmp_path / "b", x="1"), "ds/jane")
    assert again.version == first.version
    assert not (tmp_path / "b").exists()
    second = store.publish(folder(tmp_path / "c", x="2"), "ds/jane")
    assert second.version != first.version
    assert store.latest("ds/jane").version == second.version
    assert (first.path / "x").read_text() == "1"  # older versions stay
    with pytest.raises(KeyError, match="no artifact has been published for 'ds/bob'"):
        store.latest("ds/bob")


def test_digest_ignores_run_specific_files(tmp_path: Path):
    a = folder(tmp_path / "a", data="same", **{"state.json": '{"_fingerprint": "1"}'})
    b = folder(tmp_path / "b", data="same", **{"state.json": '{"_fingerprint": "2"}'})
    assert directory_digest(a) == directory_digest(b)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A real S3-compatible HTTP server (moto) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_bucket(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    import boto3

    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    bucket = f"twin-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint).create_bucket(Bucket=bucket)
    return bucket


def exercise_s3(client: object, bucket: str, tmp_path: Path) -> None:
    store = S3ArtifactStore(client, bucket, "twin", tmp_path / "cache")
    ref = store.publish(folder(tmp_path / "a", **{"x.txt": "1", "sub": ""}), "ds/jane")
    assert ref.uri == f"s3://{bucket}/twin/ds/jane/{ref.version}"
    fresh = S3ArtifactStore(client, bucket, "twin", tmp_path / "other-cache")  # another machine
    latest = fresh.latest("ds/jane")
    assert latest.version == ref.version
    assert (latest.path / "x.txt").read_text() == "1"
    assert latest.path.parent == tmp_path / "other-cache" / "ds" / "jane"
    with pytest.raises(KeyError, match="ds/bob"):
        fresh.latest("ds/bob")


def test_s3_store_on_a_real_s3_server(s3_endpoint: str, s3_bucket: str, tmp_path: Path):
    import boto3

    exercise_s3(boto3.client("s3", endpoint_url=s3_endpoint), s3_bucket, tmp_path)


@pytest.mark.skipif(not os.environ.get("TWIN_TEST_S3_BUCKET"), reason="TWIN_TEST_S3_BUCKET (a real bucket) not set")
def test_s3_store_on_aws(tmp_path: Path):
    import boto3

    exercise_s3(boto3.client("s3"), os.environ["TWIN_TEST_S3_BUCKET"], tmp_path)


@dg.asset
def produced() -> Staged:
    root = Path(os.environ["TWIN_DATA_DIR"]) / "staging-test"
    return Staged(folder(root, **{"weights.bin": "w"}))


@dg.asset
def consumed(produced: object) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"read": (produced.path / "weights.bin").read_text()})  # type: ignore[attr-defined]


@pytest.mark.parametrize("backend", ["local", "s3"])
def test_io_manager_publishes_and_loads_through_the_configured_store(
    backend: str, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
):
    if backend == "s3":
        monkeypatch.setenv("TWIN_ARTIFACTS_S3_BUCKET", request.getfixturevalue("s3_bucket"))
        monkeypatch.setenv("TWIN_ARTIFACTS_S3_ENDPOINT_URL", request.getfixturevalue("s3_endpoint"))
    storage = ArtifactStoreResource()
    result = dg.materialize(
        [produced, consumed], resources={"io_manager": ArtifactIOManager(storage=storage), "artifact_store": storage}
    )
    assert result.success
    [materialization] = result.asset_materializations_for_node("produced")
    uri = str(materialization.metadata["uri"].value)
    assert uri.startswith("s3://" if backend == "s3" else str(Settings().data_path / "artifacts"))
    [read] = result.asset_materializations_for_node("consumed")
    assert read.metadata["read"].value == "w"


def test_training_assets_carry_valid_dagster_k8s_config(monkeypatch: pytest.MonkeyPatch):
    from dagster_k8s.job import get_user_defined_k8s_config

    from twin_platform.defs.training.common import k8s_config

    monkeypatch.setenv("TWIN_TRAINING_K8S_GPUS", "2")
    monkeypatch.setenv("TWIN_TRAINING_K8S_NODE_SELECTOR", "pool=gpu, nvidia.com/gpu.present=true")
    config = get_user_defined_k8s_config({"dagster-k8s/config": json.dumps(k8s_config(Settings()))})
    assert config.container_config["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert config.pod_spec_config["node_selector"] == {"pool": "gpu", "nvidia.com/gpu.present": "true"}

    from twin_platform.definitions import defs

    for key in ("instruction_dataset", "preference_dataset", "sft_adapter", "dpo_adapter", "merged_model"):
        deployed = get_user_defined_k8s_config(defs.resolve_assets_def(key).op.tags)
        assert deployed.container_config["resources"]["requests"]["nvidia.com/gpu"] == "1"  # the default
