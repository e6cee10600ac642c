"""Resources shared by every subject: the platform's storage, built from settings when a run starts."""

import shutil
import tempfile
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from twin_platform.adapters.artifacts import ArtifactRef, ArtifactStore, LocalArtifactStore, S3ArtifactStore
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.settings import Settings


def settings_for(data_dir: str | None) -> Settings:
    """TWIN_* settings, with the data dir overridden when a resource is configured with one."""
    return Settings(data_dir=data_dir) if data_dir else Settings()


class TwinResource(dg.ConfigurableResource):
    """Postgres, the author registry and the document warehouse.

    Connection details come from ``TWIN_*`` settings (env / ``.env``), never from Dagster config,
    so secrets never show up in the UI, run config or metadata. Nothing connects at import time.
    """

    data_dir: str | None = None  # overrides TWIN_DATA_DIR when set

    _stack: ExitStack | None = PrivateAttr(default=None)
    _runtime: Runtime | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return settings_for(self.data_dir)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._stack = ExitStack()
        self._runtime = self._stack.enter_context(open_runtime(self.settings()))

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._stack is not None:
            self._stack.close()
        self._stack = None
        self._runtime = None

    @property
    def runtime(self) -> Runtime:
        if self._runtime is None:
            raise RuntimeError("TwinResource is used outside a run: Dagster sets it up per run or sensor tick")
        return self._runtime


class PlatformSettings(dg.ConfigurableResource):
    """Settings only, no connections: for steps that never touch Postgres (training on artifacts)."""

    data_dir: str | None = None  # overrides TWIN_DATA_DIR when set

    def get(self) -> Settings:
        return settings_for(self.data_dir)


@dataclass(frozen=True)
class Staged:
    """A folder an asset wrote (datasets, an adapter): the artifact IO manager publishes it as a version."""

    path: Path
    version: str | None = None  # content-derived; None: a digest of the files


def staging_dir(settings: Settings, name: str) -> Path:
    """A fresh folder under the data dir (same filesystem as the local store: publishing is a rename)."""
    root = settings.data_path / "staging"
    root.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=root))


class ArtifactStoreResource(dg.ConfigurableResource):
    """Where artifacts live: ``{data dir}/artifacts`` by default, S3 when ``TWIN_ARTIFACTS_S3_BUCKET`` is set.

    The S3 client comes from dagster-aws (``S3Resource``) with the standard AWS credential chain, so keys
    never pass through Dagster config.
    """

    data_dir: str | None = None  # overrides TWIN_DATA_DIR when set

    def settings(self) -> Settings:
        return settings_for(self.data_dir)

    def store(self) -> ArtifactStore:
        settings = self.settings()
        if settings.artifacts_s3_bucket:
            from dagster_aws.s3 import S3Resource

            client = S3Resource(endpoint_url=settings.artifacts_s3_endpoint_url).get_client()
            cache = settings.data_path / "artifact-cache"
            return S3ArtifactStore(client, settings.artifacts_s3_bucket, settings.artifacts_s3_prefix, cache)
        return LocalArtifactStore(settings.data_path / "artifacts")


def artifact_key(context: dg.InputContext | dg.OutputContext) -> str:
    parts = list(context.asset_key.path)
    if context.has_asset_partitions:
        parts.append(context.asset_partition_key)
    return "/".join(parts)


class ArtifactIOManager(dg.ConfigurableIOManager):
    """Datasets and adapters as versioned folders (never pickled): an asset returns ``Staged``, its
    consumers receive an ``ArtifactRef`` to the newest version (downloaded once when it lives in S3)."""

    storage: dg.ResourceDependency[ArtifactStoreResource]

    def handle_output(self, context: dg.OutputContext, obj: Staged) -> None:
        if not isinstance(obj, Staged):
            raise TypeError(f"{context.asset_key.to_user_string()} must return Staged(folder), got {type(obj)}")
        ref = self.storage.store().publish(obj.path, artifact_key(context), obj.version)
        context.add_output_metadata({"uri": ref.uri, "version": ref.version})

    def load_input(self, context: dg.InputContext) -> ArtifactRef:
        key = artifact_key(context)
        try:
            return self.storage.store().latest(key)
        except KeyError:
            raise dg.Failure(f"{key} has not been materialized yet: materialize it first") from None


def discard(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


@dg.definitions
def resources() -> dg.Definitions:
    storage = ArtifactStoreResource()
    return dg.Definitions(
        resources={
            "twin": TwinResource(),
            "platform": PlatformSettings(),
            "artifact_store": storage,
            "artifacts": ArtifactIOManager(storage=storage),
        }
    )
