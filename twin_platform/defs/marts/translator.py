"""How the dbt project reads in Dagster: the marts group, when each model runs, a description on every dbt test.

When: a model fed (through its sources, at any depth) by the feature pipeline's tables runs once that pipeline
has settled after new data; a model fed only by tables no Dagster asset writes (the API's ``query_log``) runs
on a cron schedule, since nothing upstream of it will ever report a change (defs/automation.py).
"""

import re
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtProject

from twin_platform.defs.automation import dbt_model_condition, scheduled_model_condition

_REF = re.compile(r"""ref\(\s*['"]([^'"]+)['"]\s*\)""")


def fed_by_dagster(manifest: Mapping[str, Any]) -> set[str]:
    """Unique ids of the nodes with a source mapped to a Dagster asset (``meta.dagster.asset_key``) upstream."""
    mapped = {
        uid
        for uid, source in manifest["sources"].items()
        if (source.get("meta") or {}).get("dagster", {}).get("asset_key")
    }
    parents: Mapping[str, list[str]] = manifest["parent_map"]
    known: dict[str, bool] = {}

    def fed(uid: str) -> bool:
        if uid not in known:
            known[uid] = False  # no cycles in a dbt DAG; this only guards the recursion
            known[uid] = uid in mapped or any(fed(parent) for parent in parents.get(uid, []))
        return known[uid]

    return {uid for uid in manifest["nodes"] if fed(uid)}


def _column(test: Mapping[str, Any]) -> str:
    return str((test.get("test_metadata") or {}).get("kwargs", {}).get("column_name") or test.get("column_name") or "")


def describe_test(test: Mapping[str, Any], model: str) -> str:
    """What a dbt test asserts, in a sentence: its own description if it has one, else one built from the test."""
    own = (test.get("meta") or {}).get("description") or test.get("description")
    if own:
        return str(own)
    metadata = test.get("test_metadata") or {}
    kwargs = metadata.get("kwargs", {})
    column = _column(test)
    kind = metadata.get("name")
    if kind == "unique":
        return f"No two rows of {model} have the same {column}."
    if kind == "not_null":
        return f"{model}.{column} is never null."
    if kind == "accepted_values":
        return f"{model}.{column} is one of: {', '.join(map(str, kwargs.get('values', [])))}."
    if kind == "relationships":
        match = _REF.search(str(kwargs.get("to", "")))
        target = match.group(1) if match else kwargs.get("to")
        return f"Every {model}.{column} exists in {target}.{kwargs.get('field')}."
    comment = next(
        (line.strip("- ").strip() for line in str(test.get("raw_code", "")).splitlines() if line.startswith("--")), ""
    )
    title = str(test.get("name", "dbt test")).replace("_", " ").capitalize()
    return f"{title}: {comment}" if comment else f"{title} (dbt test on {model})."


class TwinDbtTranslator(DagsterDbtTranslator):
    def __init__(self, manifest: Mapping[str, Any]) -> None:
        super().__init__()
        self._fed = fed_by_dagster(manifest)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str:
        return "marts"

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props["unique_id"] in self._fed:
            return dbt_model_condition()
        return scheduled_model_condition()

    def get_asset_check_spec(
        self,
        asset_spec: dg.AssetSpec,
        manifest: Mapping[str, Any],
        unique_id: str,
        project: DbtProject | None,
    ) -> dg.AssetCheckSpec | None:
        spec = super().get_asset_check_spec(asset_spec, manifest, unique_id, project)
        if spec is None or spec.description:
            return spec
        description = describe_test(manifest["nodes"][unique_id], asset_spec.key.path[-1])
        return dg.AssetCheckSpec(
            name=spec.name,
            asset=spec.asset_key,
            description=description,
            additional_deps=spec.additional_deps,
            metadata=spec.metadata,
            blocking=spec.blocking,
            automation_condition=spec.automation_condition,
            partitions_def=spec.partitions_def,
        )
