"""The dbt project (dbt/) as Dagster assets downstream of the Python ones; dbt tests become asset checks."""

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from twin_platform.adapters.dbt import DBT_PROJECT_DIR, dbt_environment, ensure_dbt_on_path
from twin_platform.defs.resources import TwinResource

ensure_dbt_on_path()
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
if not dbt_project.manifest_path.exists():
    # `dagster dev` would prepare it; headless runs, tests and CI parse the project once here.
    dbt_project.preparer.prepare(dbt_project)


class TwinDbtTranslator(DagsterDbtTranslator):
    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return "marts"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        return dg.AutomationCondition.eager()


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


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, dagster_dbt_translator=TwinDbtTranslator())
def dbt_models(context: dg.AssetExecutionContext, dbt: DbtCliResource, twin: TwinResource) -> Iterator[Any]:
    """Staging views and marts (corpus by month, chunk quality, chunk length distribution), with their tests."""
    url = twin.runtime.engine.url.render_as_string(hide_password=False)
    with _environment(dbt_environment(url)):
        yield from dbt.cli(["build"], context=context).stream()


@dg.definitions
def marts() -> dg.Definitions:
    # A module with a @definitions function contributes only what that function returns.
    return dg.Definitions(assets=[dbt_models], resources={"dbt": DbtCliResource(project_dir=dbt_project)})
