"""Every ``--author`` takes a name, an alias or an id, through one resolver; unknown names name close matches."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from twin_platform.adapters.runtime import Runtime
from twin_platform.cli.main import app
from twin_platform.collection.ingest import UnknownAuthorError, resolve_registered
from twin_platform.domain.authors import Author, close_matches, find_author
from twin_platform.domain.models import Lineage, ModelEntry

runner = CliRunner()
T0 = datetime(2026, 11, 1, tzinfo=UTC)

JANE = Author(full_name="Jane Doe", aliases=("J. Doe",))
JOHN = Author(full_name="John Smith", aliases=("Johnny",))
MARA = Author(full_name="Mara Ellison", aliases=("M. Ellison",))


def test_find_author_takes_name_alias_or_id_ignoring_case_and_spacing():
    authors = [JANE, JOHN]
    for name in ("Jane Doe", "jane  doe", "JANE-DOE", "j. doe", " J.  Doe "):
        assert find_author(authors, name) == JANE, name
    assert find_author(authors, "johnny") == JOHN
    assert find_author(authors, "Jane") is None  # a part of a name is not a name: only suggested


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Jane Do", ["jane-doe"]),  # a typo
        ("jane", ["jane-doe"]),  # a part of a name
        ("Jon Smith", ["john-smith"]),
        ("J Doe", ["jane-doe"]),  # close to the alias
        ("Zebulon Quartz", []),
        ("", []),
    ],
)
def test_close_matches(name: str, expected: list[str]):
    assert [a.id for a in close_matches([JANE, JOHN, MARA], name)] == expected


def test_resolve_registered_says_what_was_meant_or_what_is_registered(runtime: Runtime):
    for author in (JANE, JOHN):
        runtime.authors.save(author)
    assert resolve_registered(runtime.authors, "Johnny").id == "john-smith"
    with pytest.raises(UnknownAuthorError) as typo:
        resolve_registered(runtime.authors, "Jane Do")
    assert str(typo.value) == (
        "author 'Jane Do' is not registered. Did you mean 'Jane Doe' (id jane-doe)? "
        "Or add it: twin authors add 'Jane Do'"
    )
    with pytest.raises(UnknownAuthorError) as unknown:
        resolve_registered(runtime.authors, "Zebulon Quartz")
    assert str(unknown.value) == (
        "author 'Zebulon Quartz' is not registered (registered: jane-doe, john-smith). "
        "Add it with: twin authors add 'Zebulon Quartz'"
    )


# --- the commands --------------------------------------------------------------------------------------------


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def mara(runtime: Runtime) -> Runtime:
    assert invoke("demo")[0] == 0  # registers Mara Ellison (alias M. Ellison) with her corpus
    runtime.authors.save(JANE)
    return runtime


@pytest.mark.parametrize(
    "command",
    [
        ["materialize", "--select", "raw_documents"],
        ["search", "chunking"],
        ["crawl", "https://example.com/post"],
        ["import", "."],
        ["models", "list"],
        ["models", "rollback", "--reason", "test"],
    ],
    ids=lambda command: " ".join(command[:2]),
)
def test_every_author_option_refuses_an_unknown_author_naming_close_matches(mara: Runtime, command: list[str]):
    code, _, err = invoke(*command, "--author", "Mara Elison")
    assert code == 2
    message = " ".join(err.split())
    assert "author 'Mara Elison' is not registered. Did you mean 'Mara Ellison' (id mara-ellison)?" in message


def test_materialize_takes_a_name_or_an_alias(mara: Runtime):
    code, out, err = invoke(
        "materialize", "--select", "raw_documents", "--author", "M. Ellison", "--author", "mara ellison"
    )
    assert code == 0, err
    assert out.count("succeeded") == 1  # both name the same author: one run
    with dg.DagsterInstance.get() as instance:
        [run] = instance.get_runs()
    assert run.tags["dagster/partition"] == "mara-ellison"


def entry(version: str, author: str, minutes: int) -> ModelEntry:
    return ModelEntry(
        version=version,
        name=f"twin-{author}-{version}",
        author=author,
        created_at=T0 + timedelta(minutes=minutes),
        uri="/models/x",
        lineage=Lineage(base_model="tiny"),
    )


def test_models_list_and_rollback_take_a_name_or_an_alias(mara: Runtime):
    registry = mara.models
    registry.register(entry("m1", "mara-ellison", 0))
    registry.register(entry("m2", "mara-ellison", 1))
    registry.register(entry("j1", "jane-doe", 2))
    code, out, _ = invoke("models", "list", "--author", "M. Ellison", "--json")
    assert code == 0
    assert [m["version"] for m in json.loads(out)] == ["m2", "m1"]

    registry.release("m1", reason="first", gates=[], actor="t", force=True)
    registry.release("m2", reason="second", gates=[], actor="t", force=True)
    registry.release("j1", reason="jane's", gates=[], actor="t", force=True)  # the newest release: the default
    code, out, err = invoke("models", "rollback", "--author", "Mara Ellison", "--reason", "m2 rambles", "--json")
    assert code == 0, err
    assert json.loads(out)["version"] == "m1"
    current = registry.current("jane-doe")
    assert current is not None
    assert current.version == "j1"  # untouched


def test_import_takes_an_alias(mara: Runtime, tmp_path: Path):
    folder = tmp_path / "jane"
    folder.mkdir()
    (folder / "a.md").write_text("---\ntitle: A\n---\nJane's first note, imported under her alias.\n")
    code, out, err = invoke("import", str(folder), "--author", "j. doe", "--json")
    assert code == 0, err
    assert json.loads(out)["authors"] == ["jane-doe"]
