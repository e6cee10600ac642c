"""The Dagster code location: every definition under ``twin_platform/defs``, and the executor settings choose.

The defs folder is loaded from the ``twin_platform.defs`` package itself, not found through the project's
pyproject.toml as ``dg.load_from_defs_folder`` finds it: an installed wheel has no pyproject.toml, and the code
location must load the same from a source checkout, a wheel or an image.

``TWIN_DAGSTER_EXECUTOR`` picks how a run's steps execute: ``multiprocess`` (Dagster's default, a process per
step), ``in_process``, or ``k8s`` (dagster-k8s's ``k8s_job_executor``: a Kubernetes Job per step, so the
training assets' ``dagster-k8s/config`` tags give those steps their GPU pods).
"""

import warnings
from pathlib import Path

import dagster as dg

import twin_platform.defs
from twin_platform.settings import Settings


def executor_for(settings: Settings) -> dg.ExecutorDefinition:
    if settings.dagster_executor == "k8s":
        from dagster_k8s import k8s_job_executor  # the Kubernetes client loads only where it is used

        return k8s_job_executor
    if settings.dagster_executor == "in_process":
        return dg.in_process_executor
    return dg.multi_or_in_process_executor


def build_definitions(settings: Settings) -> dg.Definitions:
    with warnings.catch_warnings():
        # What load_from_defs_folder silences too: the loader's own calls into Dagster's preview and beta APIs.
        warnings.simplefilter("ignore", dg.PreviewWarning)
        warnings.simplefilter("ignore", dg.BetaWarning)
        # No code location name of its own: whoever serves it names it (workspace.yaml, the Helm chart, `-m`).
        tree = dg.ComponentTree.from_module(defs_module=twin_platform.defs, project_root=Path(__file__).parent)
        found = tree.build_defs()
    return dg.Definitions.merge(found, dg.Definitions(executor=executor_for(settings)))


defs = build_definitions(Settings())
