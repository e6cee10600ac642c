"""Resources shared by every subject: the platform's storage, built from settings when a run starts."""

from contextlib import ExitStack

import dagster as dg
from pydantic import PrivateAttr

from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.settings import Settings


class TwinResource(dg.ConfigurableResource):
    """Postgres, the author registry and the document warehouse.

    Connection details come from ``TWIN_*`` settings (env / ``.env``), never from Dagster config,
    so secrets never show up in the UI, run config or metadata. Nothing connects at import time.
    """

    data_dir: str | None = None  # overrides TWIN_DATA_DIR when set

    _stack: ExitStack | None = PrivateAttr(default=None)
    _runtime: Runtime | None = PrivateAttr(default=None)

    def settings(self) -> Settings:
        return Settings(data_dir=self.data_dir) if self.data_dir else Settings()

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


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"twin": TwinResource()})
