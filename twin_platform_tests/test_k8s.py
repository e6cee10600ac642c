"""Dagster on Kubernetes without a cluster: the executor the settings choose, the training steps' pod specs as
dagster-k8s's own builder makes them, and the Helm values checked against the official chart's schema."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import yaml

from twin_platform.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
HELM_VALUES = ROOT / "infra" / "helm" / "dagster-values.yaml"
CHART_KEYS = ROOT / "infra" / "helm" / "dagster-chart-keys.yaml"
TRAINING_STEPS = {
    "instruction_dataset",
    "preference_dataset",
    "sft_adapter",
    "dpo_adapter",
    "merged_model",
    "evaluation_report",
    "model_release",
}

CODE_LOCATION_IMAGE = "registry.example.com/twin-platform/code-location:test"


def step_job(name: str, tags: dict[str, str]) -> dict[str, Any]:
    """The Kubernetes Job of one step, built as dagster-k8s's ``K8sStepHandler.launch_step`` builds it: the step's
    tags through ``get_user_defined_k8s_config``, merged into the run's container context, then
    ``construct_dagster_k8s_job`` (returned as the JSON the API server would receive)."""
    from dagster_k8s.container_context import K8sContainerContext
    from dagster_k8s.job import DagsterK8sJobConfig, construct_dagster_k8s_job, get_user_defined_k8s_config
    from kubernetes.client import ApiClient

    run_context = K8sContainerContext(namespace="dagster", env_secrets=["twin-platform-env"])
    step_context = run_context.merge(K8sContainerContext(run_k8s_config=get_user_defined_k8s_config(tags)))
    job_config = DagsterK8sJobConfig(
        job_image=CODE_LOCATION_IMAGE,
        dagster_home="/opt/dagster/dagster_home",
        instance_config_map="dagster-instance",
        postgres_password_secret="dagster-postgresql-secret",
    )
    job_name = f"dagster-step-{name.replace('_', '-')}"
    job = construct_dagster_k8s_job(
        job_config=job_config,
        args=["dagster", "api", "execute_step"],
        job_name=job_name,
        pod_name=job_name,
        component="step_worker",
        user_defined_k8s_config=step_context.run_k8s_config,
        labels={"dagster/op": name},
    )
    built: dict[str, Any] = ApiClient().sanitize_for_serialization(job)
    return built


# In a fresh interpreter: the training tags are built from TWIN_* settings when the code location is imported,
# exactly as in the code server's pod. Every step of the asset job, with the tags the definitions give it.
STEP_JOBS = """
import json, sys
from twin_platform.definitions import defs
from twin_platform_tests.test_k8s import step_job

job = defs.resolve_implicit_global_asset_job_def()
jobs = {node.name: step_job(node.name, dict(node.tags)) for node in job.graph.node_dict.values()}
json.dump({"executor": job.executor_def.name, "jobs": jobs}, sys.stdout)
"""


@pytest.mark.parametrize(
    ("setting", "executor"),
    [("multiprocess", "multi_or_in_process_executor"), ("in_process", "in_process"), ("k8s", "k8s")],
)
def test_the_definitions_carry_the_executor_the_setting_names(setting: str, executor: str):
    from twin_platform.definitions import build_definitions

    defs = build_definitions(Settings(dagster_executor=setting))
    assert defs.executor is not None
    assert defs.executor.name == executor
    # What a launched run of the assets executes with (sensors, schedules, the UI's materialize button).
    assert defs.resolve_implicit_global_asset_job_def().executor_def.name == executor


def test_the_default_executor_is_dagsters_default():
    from twin_platform.definitions import build_definitions

    assert Settings().dagster_executor == "multiprocess"
    default = build_definitions(Settings()).resolve_implicit_global_asset_job_def().executor_def
    assert default.name == dg.multi_or_in_process_executor.name


def test_an_unknown_executor_is_refused(monkeypatch: pytest.MonkeyPatch):
    from pydantic import ValidationError

    monkeypatch.setenv("TWIN_DAGSTER_EXECUTOR", "celery")
    with pytest.raises(ValidationError, match="dagster_executor"):
        Settings()


def step_jobs_of_the_code_location(env: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    result = subprocess.run(
        [sys.executable, "-c", STEP_JOBS],
        cwd=ROOT,
        env={**os.environ, "TWIN_DATA_DIR": str(tmp_path / "data"), **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def test_training_steps_get_gpu_pods_and_the_others_do_not(tmp_path: Path):
    env = {
        "TWIN_DAGSTER_EXECUTOR": "k8s",
        "TWIN_TRAINING_K8S_GPUS": "2",
        "TWIN_TRAINING_K8S_MEMORY": "48Gi",
        "TWIN_TRAINING_K8S_NODE_SELECTOR": "nvidia.com/gpu.present=true, pool=gpu",
        "TWIN_TRAINING_K8S_IMAGE": "registry.example.com/twin-platform/trainer-cuda:test",
    }
    built = step_jobs_of_the_code_location(env, tmp_path)
    assert built["executor"] == "k8s"
    jobs = built["jobs"]
    assert set(jobs) >= TRAINING_STEPS
    for name, job in jobs.items():
        pod = job["spec"]["template"]["spec"]
        [container] = pod["containers"]
        if name in TRAINING_STEPS:
            assert container["resources"]["limits"] == {"memory": "48Gi", "nvidia.com/gpu": "2"}, name
            assert container["resources"]["requests"] == {"memory": "48Gi", "nvidia.com/gpu": "2"}, name
            assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true", "pool": "gpu"}, name
            assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in pod["tolerations"]
            assert container["image"] == env["TWIN_TRAINING_K8S_IMAGE"], name
        else:  # collection, features and marts stay on ordinary nodes, in the code location's image
            assert "nvidia.com/gpu" not in json.dumps(container.get("resources") or {}), name
            assert "nodeSelector" not in pod, name
            assert container["image"] == CODE_LOCATION_IMAGE, name
        # What every step pod needs from the run: the shared secrets and Dagster's instance.
        assert {"secretRef": {"name": "twin-platform-env"}} in container["envFrom"], name
        assert job["metadata"]["labels"]["dagster/op"] == name


def test_without_gpus_or_an_image_the_training_pods_ask_for_neither():
    from twin_platform.defs.training.common import k8s_config

    tags = {"dagster-k8s/config": json.dumps(k8s_config(Settings(training_k8s_gpus=0)))}
    pod = step_job("sft_adapter", tags)["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"memory": "32Gi"}
    assert pod["containers"][0]["image"] == CODE_LOCATION_IMAGE
    assert "tolerations" not in pod
    assert "nodeSelector" not in pod


# --- Helm values for the official Dagster chart -------------------------------------------------------------


def _walk(value: Any, path: str, visit: Any) -> None:
    """Calls ``visit(path, mapping)`` for every mapping, with list items at ``path[]``."""
    if isinstance(value, dict):
        visit(path, value)
        for key, child in value.items():
            _walk(child, f"{path}.{key}" if path else str(key), visit)
    elif isinstance(value, list):
        for item in value:
            _walk(item, f"{path}[]", visit)


def unknown_chart_keys(values: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """Keys (as paths) the chart's schema does not allow, and enum values outside their sets."""
    allowed: dict[str, list[str]] = schema["paths"]
    problems: list[str] = []

    def visit(path: str, mapping: dict[str, Any]) -> None:
        if path in allowed:
            problems.extend(f"{path}.{key}".lstrip(".") for key in mapping if key not in allowed[path])
        for key in schema["required"].get(path, []):
            if key not in mapping:
                problems.append(f"{path}.{key} (required)")

        for key, value in mapping.items():
            choices = schema["enums"].get(f"{path}.{key}".lstrip("."))
            if choices is not None and value not in choices:
                problems.append(f"{path}.{key}={value!r}".lstrip("."))

    _walk(values, "", visit)
    return problems


def test_the_helm_values_use_only_keys_of_the_official_chart():
    values = yaml.safe_load(HELM_VALUES.read_text())
    schema = yaml.safe_load(CHART_KEYS.read_text())
    assert unknown_chart_keys(values, schema) == []


def test_the_chart_key_check_can_fail():
    values = yaml.safe_load(HELM_VALUES.read_text())
    schema = yaml.safe_load(CHART_KEYS.read_text())
    values["runLauncher"]["config"]["k8sRunLauncher"]["jobSpec"] = {"ttlSecondsAfterFinished": 60}
    values["runLauncher"]["type"] = "K8sLauncher"
    del values["dagster-user-deployments"]["deployments"][0]["port"]
    assert sorted(unknown_chart_keys(values, schema)) == [
        "dagster-user-deployments.deployments[].port (required)",
        "runLauncher.config.k8sRunLauncher.jobSpec",
        "runLauncher.type='K8sLauncher'",
    ]


def test_the_helm_values_deploy_the_code_location_with_the_k8s_launcher_and_external_postgres():
    values = yaml.safe_load(HELM_VALUES.read_text())
    [deployment] = values["dagster-user-deployments"]["deployments"]
    assert values["dagster-user-deployments"]["enabled"] is True
    # The chart runs `dagster code-server start -h 0.0.0.0 -p <port> <codeServerArgs>`: the contract's command.
    assert deployment["port"] == 4000
    assert deployment["codeServerArgs"] == ["-m", "twin_platform.definitions"]
    assert deployment["image"]["repository"].endswith("/code-location")
    assert deployment["includeConfigInLaunchedRuns"] == {"enabled": True}
    env = {item["name"]: item["value"] for item in deployment["env"]}
    assert env["TWIN_DAGSTER_EXECUTOR"] == "k8s"
    assert env["TWIN_DATA_DIR"] == "/var/lib/twin"
    assert env["TWIN_ARTIFACTS_S3_BUCKET"]  # steps in separate pods share artifacts through S3 only
    # Every TWIN_* variable set is a real setting, and none of them is a secret (those come from envSecrets).
    fields = Settings.model_fields
    for name in (n for n in env if n.startswith("TWIN_")):
        field = name.removeprefix("TWIN_").lower()
        assert field in fields, name
        assert "SecretStr" not in str(fields[field].annotation), name
    Settings.model_validate({name.removeprefix("TWIN_").lower(): v for name, v in env.items() if "TWIN_" in name})
    assert {"name": "twin-platform-env"} in deployment["envSecrets"]

    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    assert "k8sRunLauncher" in values["runLauncher"]["config"]

    postgres = values["postgresql"]
    assert postgres["enabled"] is False
    assert postgres["postgresqlHost"]
    assert postgres["postgresqlPassword"] == ""  # never a secret in values
    assert values["generatePostgresqlPasswordSecret"] is False
    assert values["global"]["postgresqlSecretName"]
    assert values["dagsterDaemon"]["runCoordinator"]["type"] == "QueuedRunCoordinator"
