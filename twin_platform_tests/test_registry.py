"""The model registry in Postgres, ``twin models``, the local backend serving a release, and the API swapping
to a new release without a restart; all on the real embedded Postgres, with tiny real models."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from typer.testing import CliRunner

from twin_platform.adapters.llm.factory import build_llm, model_folder
from twin_platform.adapters.postgres.model_registry import ModelRegistry, RegistryError, ReleaseRefused, UnknownModel
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.api.app import create_app
from twin_platform.api.state import ApiState, open_state
from twin_platform.cli.main import app
from twin_platform.domain.authors import Author
from twin_platform.domain.llm import GenerationParams, Message
from twin_platform.domain.models import Gate, Lineage, ModelEntry
from twin_platform.settings import Settings
from twin_platform_tests.api_fixtures import log_rows
from twin_platform_tests.test_artifacts import s3_bucket, s3_endpoint  # noqa: F401 - fixtures used below
from twin_platform_tests.tiny_model import build_tiny_chat_model

JANE, BOB = "jane-doe", "bob-roe"
PASSED = [Gate(name="perplexity", passed=True, value=12.5, threshold=20.0)]
FAILED = [Gate(name="perplexity", passed=False, value=31.0, threshold=20.0), Gate(name="style", passed=True)]
T0 = datetime(2026, 11, 1, tzinfo=UTC)


def entry(version: str, author: str = JANE, *, minutes: int = 0, uri: str = "/models/x", **extra: Any) -> ModelEntry:
    return ModelEntry(
        version=version,
        name=f"twin-{author}-{version}",
        author=author,
        created_at=T0 + timedelta(minutes=minutes),
        uri=uri,
        lineage=Lineage(
            instruction_dataset="ids-1",
            preference_dataset="pds-1",
            sft_adapter="sft-1",
            dpo_adapter="dpo-1",
            base_model="tiny",
            code_version="training-v1",
            hyperparameters={"lora_rank": 16, "sft_learning_rate": 2e-4},
        ),
        **{"metrics": {"sft_final_loss": 1.25}, **extra},
    )


@pytest.fixture
def registry(runtime: Runtime) -> ModelRegistry:
    runtime.authors.save(Author(full_name="Jane Doe"))
    runtime.authors.save(Author(full_name="Bob Roe"))
    return runtime.models


def states(registry: ModelRegistry) -> dict[str, str]:
    return {e.version: e.state for e in registry.list()}


def test_release_retires_the_previous_one_and_rollback_steps_back_through_the_history(registry: ModelRegistry):
    for i, version in enumerate(["v1", "v2", "v3", "v4"]):
        registry.register(entry(version, minutes=i))
    assert registry.current() is None
    assert registry.current(JANE) is None

    registry.release("v1", reason="first", gates=PASSED, actor="tester")
    registry.release("v2", reason="better", gates=PASSED, actor="tester")
    forced = registry.release("v3", reason="the judge is wrong", gates=FAILED, actor="tester", force=True)
    assert forced.released
    assert forced.released_at is not None
    assert states(registry) == {"v1": "retired", "v2": "retired", "v3": "released", "v4": "candidate"}
    assert registry.current(JANE) == registry.get("v3")
    assert registry.release("v3", reason="again", gates=PASSED, actor="tester") == registry.get("v3")  # no-op

    [*_, event] = registry.history("v3")
    assert (event.action, event.reason, event.actor) == ("force-release", "the judge is wrong", "tester")
    assert event.gates == FAILED
    assert event.gates[0].model_extra == {"value": 31.0, "threshold": 20.0}
    assert [e.action for e in registry.history("v1")] == ["register", "release", "retire"]
    assert registry.history("v1")[-1].reason == "replaced by v2"

    back = registry.rollback(JANE, reason="v3 rambles", actor="oncall")
    assert back.version == "v2"
    assert states(registry) == {"v1": "retired", "v2": "released", "v3": "retired", "v4": "candidate"}
    assert [(e.action, e.reason) for e in registry.history("v3")[-1:]] == [("rollback", "v3 rambles")]
    assert registry.history("v2")[-1].reason == "rollback from v3: v3 rambles"

    # Twice steps back twice: v3 was rolled back, so it is not what the next rollback returns to.
    assert registry.rollback(reason="v2 too", actor="oncall").version == "v1"
    with pytest.raises(RegistryError, match="no earlier release to roll back to"):
        registry.rollback(JANE, reason="and again", actor="oncall")
    assert registry.current(JANE) == registry.get("v1")  # the failed rollback changed nothing
    with pytest.raises(UnknownModel, match="bob-roe has no released twin"):
        registry.rollback(BOB, reason="x", actor="oncall")

    # Releasing v3 again after its rollback is a new release: a later rollback may return to it.
    registry.release("v3", reason="fixed the judge", gates=PASSED, actor="tester")
    registry.release("v4", reason="newest", gates=PASSED, actor="tester")
    assert registry.rollback(JANE, reason="v4 is off", actor="oncall").version == "v3"
    assert [e.id for e in registry.history()] == sorted(e.id for e in registry.history())


def test_current_without_an_author_is_the_newest_release_across_authors(registry: ModelRegistry):
    registry.register(entry("j1"))
    registry.register(entry("b1", BOB))
    registry.release("j1", reason="ok", gates=PASSED, actor="t")
    registry.release("b1", reason="ok", gates=PASSED, actor="t")
    current = registry.current()
    assert current is not None
    assert current.version == "b1"
    assert registry.current(JANE) == registry.get("j1")
    assert states(registry) == {"j1": "released", "b1": "released"}  # one released twin per author


def test_releases_need_passing_gates_unless_forced_with_a_reason(registry: ModelRegistry):
    registry.register(entry("v1"))
    with pytest.raises(ReleaseRefused, match="gates failed: perplexity"):
        registry.release("v1", reason="", gates=FAILED, actor="t")
    with pytest.raises(ReleaseRefused, match="no gate results"):
        registry.release("v1", reason="", gates=[], actor="t")
    with pytest.raises(ValueError, match="forced release needs a reason"):
        registry.release("v1", reason=" ", gates=FAILED, actor="t", force=True)
    with pytest.raises(UnknownModel, match="no model has version 'nope'"):
        registry.release("nope", reason="x", gates=PASSED, actor="t")

    refused = registry.refuse("v1", gates=FAILED, reason="perplexity 31 > 20", actor="evaluation")
    assert refused.state == "refused"
    assert registry.history("v1")[-1].gates == FAILED
    assert registry.release("v1", reason="re-evaluated", gates=PASSED, actor="t").released
    with pytest.raises(RegistryError, match="roll it back first"):
        registry.refuse("v1", gates=FAILED, reason="x", actor="t")
    assert registry.current(JANE) == registry.get("v1")


def test_register_is_an_upsert_that_keeps_a_versions_identity_and_state(registry: ModelRegistry):
    first = registry.register(entry("v1", metrics={"sft_final_loss": 1.0, "sft_eval_loss": float("nan")}))
    assert first.metrics == {"sft_final_loss": 1.0}  # not measured (NaN) is left out
    registry.release("v1", reason="ok", gates=PASSED, actor="t")

    again = registry.register(
        entry("v1", minutes=5, uri="s3://b/twin/merged_model/jane-doe/v1").model_copy(
            update={"name": "renamed", "metrics": {"sft_final_loss": 0.5}}
        )
    )
    assert (again.name, again.created_at, again.state) == ("twin-jane-doe-v1", T0, "released")
    assert (again.uri, again.metrics) == ("s3://b/twin/merged_model/jane-doe/v1", {"sft_final_loss": 0.5})
    assert [e.action for e in registry.history("v1")] == ["register", "release"]  # one register row

    with pytest.raises(RegistryError, match="registered for author 'jane-doe', not 'bob-roe'"):
        registry.register(entry("v1", BOB))
    with pytest.raises(RegistryError, match="author 'nobody' is not registered"):
        registry.register(entry("v9", "nobody"))
    with pytest.raises(ValueError, match="register a candidate"):
        registry.register(entry("v9", state="released"))

    evaluation = {
        "perplexity": {"base": 30.1, "sft": 14.2, "twin": float("nan")},
        "gates": [g.model_dump() for g in FAILED],
    }
    evaluated = registry.record_evaluation("v1", evaluation)
    assert evaluated.evaluation is not None
    assert evaluated.evaluation["perplexity"] == {"base": 30.1, "sft": 14.2, "twin": None}
    assert evaluated.gates() == FAILED
    assert registry.get("v1") == evaluated
    assert entry("v2").gates() is None
    with pytest.raises(UnknownModel):
        registry.record_evaluation("nope", {})


def test_concurrent_releases_of_one_author_leave_exactly_one_released(registry: ModelRegistry):
    versions = [f"v{i}" for i in range(8)]
    for i, version in enumerate(versions):
        registry.register(entry(version, minutes=i))
    start = threading.Barrier(len(versions))

    def release(version: str) -> None:
        start.wait()
        registry.release(version, reason="race", gates=PASSED, actor="t")

    with ThreadPoolExecutor(len(versions)) as pool:
        list(pool.map(release, versions))
    assert list(states(registry).values()).count("released") == 1
    releases = [e.version for e in registry.history() if e.action == "release"]
    retires = [e.version for e in registry.history() if e.action == "retire"]
    assert sorted(releases) == versions
    assert retires == releases[:-1]  # each release retired exactly the one before it
    assert registry.current(JANE) == registry.get(releases[-1])


def old_registry(models_dir: Path, tiny: Path) -> Path:
    """A ``models/registry.json`` as earlier versions wrote it (``adapters/registry.py``'s format)."""
    lineage = {
        "author": JANE,
        "base_model": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "instruction_dataset": "ids-1",
        "preference_dataset": "pds-1",
        "sft_adapter": "sft-1",
        "dpo_adapter": "dpo-1",
        "code_version": "training-v1",
    }
    models = [
        {
            "version": "old",
            "name": "twin-jane-doe-20260101000000",
            "author": JANE,
            "path": str(tiny),
            "uri": str(tiny),
            "created_at": "2026-01-01T00:00:00+00:00",
            "released": True,
            "lineage": lineage,
            "metrics": {"sft_final_loss": 2.0, "sft_eval_loss": float("nan")},
        },
        {
            "version": "new",
            "name": "twin-jane-doe-20260201000000",
            "author": JANE,
            "path": str(tiny),
            "uri": "https://huggingface.co/jane/twin-jane-doe-20260201000000",
            "created_at": "2026-02-01T00:00:00+00:00",
            "released": True,
            "lineage": lineage,
            "metrics": {"sft_final_loss": 1.0},
        },
        {
            "version": "draft",
            "name": "twin-jane-doe-20260301000000",
            "author": JANE,
            "path": str(tiny),
            "uri": str(tiny),
            "created_at": "2026-03-01T00:00:00+00:00",
            "released": False,
            "lineage": lineage,
            "metrics": {},
        },
        {
            "version": "stranger",
            "name": "twin-nobody",
            "author": "nobody",
            "path": str(tiny),
            "uri": str(tiny),
            "created_at": "2026-01-15T00:00:00+00:00",
            "released": True,
            "lineage": {},
            "metrics": {},
        },
    ]
    models_dir.mkdir(parents=True, exist_ok=True)
    path = models_dir / "registry.json"
    path.write_text(json.dumps({"models": models}, indent=2))  # NaN written as NaN, as json.dumps did
    return path


def test_a_json_registry_of_earlier_versions_is_imported_once(settings: Settings, tmp_path: Path, caplog):
    with open_runtime(settings) as runtime:
        runtime.authors.save(Author(full_name="Jane Doe"))
    path = old_registry(settings.data_path / "models", tmp_path / "tiny")

    with open_runtime(settings) as runtime:  # the first use of the platform imports it
        registry = runtime.models
        assert not path.exists()
        migrated = path.with_name("registry.json.migrated")
        assert migrated.exists()
        assert states(registry) == {"draft": "candidate", "new": "released", "old": "retired"}
        new = registry.get("new")
        assert new is not None
        assert new.uri == str(tmp_path / "tiny")  # the artifact, not the Hub page
        assert new.lineage.instruction_dataset == "ids-1"
        assert new.released_at == datetime(2026, 2, 1, tzinfo=UTC)
        assert registry.get("old").metrics == {"sft_final_loss": 2.0}  # type: ignore[union-attr]
        assert [(e.action, e.reason) for e in registry.history("new")] == [
            ("register", "migrated from registry.json"),
            ("release", "migrated from registry.json"),
        ]
        assert [e.action for e in registry.history("old")] == ["register", "release", "retire"]
        assert "model stranger" in caplog.text
        assert "author 'nobody' is not registered" in caplog.text

        # Idempotent: the same file again (say, restored from a backup) changes nothing.
        rows = len(registry.history())
        migrated.rename(path)
        report = registry.import_json(path)
        assert report is not None
        assert (report.imported, sorted(report.present)) == ([], ["draft", "new", "old"])
        assert len(registry.history()) == rows
        assert registry.import_json(path) is None  # renamed again: nothing left to import
        assert registry.rollback(JANE, reason="back to January", actor="t").version == "old"

    path.write_text("{not json")
    with pytest.raises(RegistryError, match="cannot be read"), open_runtime(settings):
        pass


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("tiny-twins")
    return build_tiny_chat_model(root / "a"), build_tiny_chat_model(root / "b")


def test_the_local_backend_serves_the_current_release(
    registry: ModelRegistry, settings: Settings, tiny_models: tuple[Path, Path]
):
    folder, _ = tiny_models
    registry.register(entry("v1", uri=folder.as_uri()))
    released = registry.release("v1", reason="ok", gates=PASSED, actor="t")
    assert model_folder(released, settings) == folder
    llm = build_llm(settings, release=registry.current())
    assert llm.model_id == "twin-jane-doe-v1@v1"
    generation = llm.generate([Message("user", "Postgres?")], GenerationParams(max_tokens=3, temperature=0))
    assert generation.model == "twin-jane-doe-v1@v1"
    assert generation.completion_tokens >= 1

    pinned = build_llm(settings.model_copy(update={"llm_local_model_path": folder}), release=released)
    assert pinned.model_id != released.model_id  # TWIN_LLM_LOCAL_MODEL_PATH wins over the registry
    with pytest.raises(Exception, match="no model files at"):
        build_llm(settings, release=entry("gone", uri=str(folder.parent / "missing")))


def test_an_s3_release_is_downloaded_once_into_the_artifact_cache(
    s3_endpoint: str,  # noqa: F811
    s3_bucket: str,  # noqa: F811
    tiny_models: tuple[Path, Path],
    monkeypatch: pytest.MonkeyPatch,
):
    import boto3

    folder, _ = tiny_models
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    key = "twin/merged_model/jane-doe/abc123"
    for file in folder.rglob("*"):
        if file.is_file():
            client.upload_file(str(file), s3_bucket, f"{key}/{file.relative_to(folder).as_posix()}")
    monkeypatch.setenv("TWIN_ARTIFACTS_S3_ENDPOINT_URL", s3_endpoint)
    settings = Settings()
    release = entry("abc123", uri=f"s3://{s3_bucket}/{key}")
    local = model_folder(release, settings)
    assert local == settings.data_path / "artifact-cache" / "merged_model" / "jane-doe" / "abc123"
    assert (local / "config.json").read_bytes() == (folder / "config.json").read_bytes()
    client.delete_object(Bucket=s3_bucket, Key=f"{key}/config.json")
    assert model_folder(release, settings) == local  # cached: not fetched again
    assert build_llm(settings, release=release).model_id == "twin-jane-doe-abc123@abc123"


# --- the API follows the registry --------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s")


@pytest.fixture
def watched_api(
    api_settings: Settings, tiny_models: tuple[Path, Path]
) -> Iterator[tuple[TestClient, ApiState, dict[str, str]]]:
    """The API with the local backend following the registry every 50 ms; the demo author's first tiny twin
    is released before it starts."""
    settings = api_settings.model_copy(update={"llm_backend": "local", "api_model_poll_seconds": 0.05})
    with open_runtime(settings) as runtime:
        runtime.models.register(entry("tiny-a", "mara-ellison", uri=str(tiny_models[0])))
        runtime.models.release("tiny-a", reason="first", gates=PASSED, actor="t")
    state = open_state(settings)
    key = state.keys.store.create("tests")
    with TestClient(create_app(settings, state=state)) as client:
        yield client, state, {"Authorization": f"Bearer {key}"}
    state.close()


def served_model(client: TestClient, headers: dict[str, str]) -> str:
    [model] = client.get("/v1/models", headers=headers).json()["data"]
    return str(model["id"])


def test_the_api_switches_to_a_new_release_without_a_restart(
    watched_api: tuple[TestClient, ApiState, dict[str, str]], tiny_models: tuple[Path, Path]
):
    client, state, headers = watched_api
    wait_for(lambda: served_model(client, headers) == "twin-mara-ellison-tiny-a@tiny-a")
    ready = client.get("/ready").json()
    assert (ready["status"], ready["model_version"]) == ("ready", "tiny-a")
    old = state.pipeline

    registry = state.runtime.models
    registry.register(entry("tiny-b", "mara-ellison", minutes=1, uri=str(tiny_models[1])))
    registry.release("tiny-b", reason="second", gates=PASSED, actor="t")
    wait_for(lambda: served_model(client, headers) == "twin-mara-ellison-tiny-b@tiny-b")
    assert old.llm is not None
    assert old.llm.model_id == "twin-mara-ellison-tiny-a@tiny-a"  # a request that began on it finishes on it

    body = {"messages": [{"role": "user", "content": "What did Mara write about chunking?"}], "max_tokens": 4}
    answer = client.post("/v1/chat/completions", headers=headers, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["model"] == "twin-mara-ellison-tiny-b@tiny-b"
    assert log_rows(state)[-1].model == "twin-mara-ellison-tiny-b@tiny-b"
    ready = client.get("/ready").json()
    assert (ready["model"], ready["model_version"], ready["llm_error"]) == (
        "twin-mara-ellison-tiny-b@tiny-b",
        "tiny-b",
        None,
    )

    # A release whose files are gone fails to load: the model before it keeps answering, /ready says why.
    registry.register(entry("tiny-c", "mara-ellison", minutes=2, uri=str(tiny_models[1].parent / "missing")))
    registry.release("tiny-c", reason="third", gates=PASSED, actor="t")
    wait_for(lambda: state.llm_error and "tiny-c" in state.llm_error)
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["model_version"] == "tiny-b"
    assert served_model(client, headers) == "twin-mara-ellison-tiny-b@tiny-b"

    # A rollback is a release change like any other.
    registry.rollback("mara-ellison", reason="tiny-c does not load", actor="t")
    wait_for(lambda: state.llm_error is None)
    assert served_model(client, headers) == "twin-mara-ellison-tiny-b@tiny-b"


# --- twin models ---------------------------------------------------------------------------------------------

runner = CliRunner()


def twin(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["models", *args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_twin_models_list_show_release_and_rollback(registry: ModelRegistry):
    registry.register(entry("v1"))
    registry.register(entry("v2", minutes=1))
    registry.record_evaluation("v1", {"perplexity": {"base": 30.0, "sft": 15.0, "twin": 14.0}, "gates": []})

    code, out, _ = twin("list", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [m["version"] for m in listed] == ["v2", "v1"]
    assert {k: listed[1][k] for k in ("name", "author", "state", "released", "metrics")} == {
        "name": "twin-jane-doe-v1",
        "author": JANE,
        "state": "candidate",
        "released": False,
        "metrics": {"sft_final_loss": 1.25},
    }
    assert listed[1]["evaluation"]["perplexity"]["twin"] == 14.0
    assert listed[0]["evaluation"] is None
    assert listed[1]["created_at"] == T0.isoformat()

    code, _, err = twin("release", "v2")
    assert code == 1
    assert "no stored evaluation" in err
    code, _, err = twin("release", "v1")
    assert code == 1
    assert "checked no gates" in err
    registry.record_evaluation("v2", {"gates": [g.model_dump() for g in FAILED]})
    code, _, err = twin("release", "v2")
    assert code == 1
    assert "gates failed: perplexity" in err
    assert twin("release", "v2", "--force")[0] == 2  # --force needs --reason
    assert twin("release", "nope")[0] == 2
    assert twin("show", "nope")[0] == 2
    assert registry.current() is None

    registry.record_evaluation("v1", {"gates": [g.model_dump() for g in PASSED]})
    code, out, _ = twin("release", "v1", "--json")
    assert code == 0
    assert json.loads(out)["state"] == "released"
    code, out, _ = twin("release", "v2", "--force", "--reason", "the judge is wrong", "--json")
    assert code == 0
    assert json.loads(out)["released"] is True

    code, out, _ = twin("show", "v2", "--json")
    shown = json.loads(out)
    assert [e["action"] for e in shown["history"]] == ["register", "force-release"]
    assert shown["history"][-1]["reason"] == "the judge is wrong"
    assert shown["history"][-1]["actor"].startswith("cli")
    assert shown["history"][-1]["gates"][0] == {"name": "perplexity", "passed": False, "value": 31.0, "threshold": 20.0}
    assert shown["lineage"]["hyperparameters"] == {"lora_rank": 16, "sft_learning_rate": 2e-4}

    code, out, _ = twin("rollback", "--reason", "too wild", "--json")
    assert code == 0
    assert json.loads(out)["version"] == "v1"
    code, _, err = twin("rollback", "--author", JANE, "--reason", "again")
    assert code == 1
    assert "no earlier release" in err
    code, _, err = twin("rollback", "--author", BOB, "--reason", "x")
    assert code == 2
    assert "bob-roe has no released twin" in err


def test_twin_models_prints_names_and_reasons_literally(registry: ModelRegistry):
    registry.register(entry("v1").model_copy(update={"name": "[b]twin:smile:"}))
    registry.release("v1", reason="[i]because", gates=PASSED, actor="[red]me")
    code, out, _ = twin("list")
    assert code == 0
    assert "[b]twin:smile:" in out
    code, out, _ = twin("show", "v1")
    assert code == 0
    assert "[b]twin:smile:" in out
    assert "[i]because" in out
    assert "[red]me" in out


def test_the_database_keeps_one_released_twin_per_author_and_known_actions(registry: ModelRegistry, runtime: Runtime):
    registry.register(entry("v1"))
    registry.register(entry("v2"))
    registry.release("v1", reason="ok", gates=PASSED, actor="t")
    with runtime.engine.connect() as conn:
        with pytest.raises(sa.exc.IntegrityError, match="ux_models_released_per_author"):
            conn.execute(sa.text("UPDATE models SET state = 'released', released_at = now() WHERE version = 'v2'"))
        conn.rollback()
        with pytest.raises(sa.exc.IntegrityError, match="ck_model_releases_action"):
            conn.execute(sa.text("INSERT INTO model_releases (version, action, actor) VALUES ('v1', 'delete', 't')"))
        conn.rollback()
        with pytest.raises(sa.exc.IntegrityError, match="ck_models_released_at"):
            conn.execute(sa.text("UPDATE models SET released_at = NULL WHERE version = 'v1'"))
