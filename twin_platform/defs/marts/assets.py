"""The dbt project (dbt/) as Dagster assets downstream of the Python ones; dbt tests become asset checks."""

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject, dbt_assets

from twin_platform.adapters.dbt import dbt_environment, dbt_project_copy, ensure_dbt_on_path
from twin_platform.defs.marts.previews import mart_metadata
from twin_platform.defs.marts.translator import TwinDbtTranslator
from twin_platform.defs.resources import TwinResource
from twin_platform.settings import Settings

ensure_dbt_on_path()
# The definitions need dbt's manifest; the sources may be read-only (an installed package): dbt runs on a copy.
_project_dir = dbt_project_copy(Settings().data_path)
dbt_project = DbtProject(project_dir=_project_dir, profiles_dir=_project_dir)
if not dbt_project.manifest_path.exists():
    # Once per copy, for every way of loading the code location (`dagster dev` alone would do it by itself);
    # dagster-dbt's preparer locks the manifest, so concurrent loaders parse it once.
    dbt_project.preparer.prepare(dbt_project)


_manifest = json.loads(dbt_project.manifest_path.read_text())
# A table's materialization carries its row count, a preview and (some marts) a plot; views only their SQL.
_TABLES = {
    uid: (node["schema"], node.get("alias") or node["name"])
    for uid, node in _manifest["nodes"].items()
    if node["resource_type"] == "model" and node["config"].get("materialized") == "table"
}


@contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    previous = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dbt_assets(
    manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=TwinDbtTranslator(_manifest)
)
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, twin: TwinResource) -> Iterator[Any]:
    """Staging views and marts (corpus by month, chunk quality, chunk length distribution, query metrics), with
    their tests; each mart table's materialization shows its row count, first rows and, where useful, a plot."""
    url = twin.runtime.engine.url.render_as_string(hide_password=False)
    with _environment(dbt_environment(url)):
        for event in dbt.cli(["build"], context=context).stream():
            unique_id = event.metadata.get("unique_id") if isinstance(event, dg.Output) else None
            if (
                isinstance(event, dg.Output)
                and isinstance(unique_id, dg.TextMetadataValue)
                and unique_id.text in _TABLES
            ):
                schema, name = _TABLES[unique_id.text]
                yield event.with_metadata({**event.metadata, **mart_metadata(twin.runtime.engine, schema, name)})
            else:
                yield event


@dg.definitions
def marts() -> dg.Definitions:
    # A module with a @definitions function contributes only what that function returns.
    return dg.Definitions(assets=[dbt_models], resources={"dbt": DbtCliResource(project_dir=dbt_project)})
