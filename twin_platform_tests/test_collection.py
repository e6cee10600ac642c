"""raw_documents with crawled links: isolation, incremental re-crawls, the daily schedule, ``twin crawl``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pytest
from typer.testing import CliRunner

from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.cli.main import app
from twin_platform.defs.authors.partitions import AUTHORS_PARTITION
from twin_platform.defs.collection.assets import raw_documents
from twin_platform.defs.resources import TwinResource
from twin_platform.domain.authors import Author
from twin_platform.domain.documents import Platform
from twin_platform.settings import Settings
from twin_platform_tests.factories import markdown, write
from twin_platform_tests.web.pages import article_page, install_substack, medium_feed, substack_post_page
from twin_platform_tests.web.server import Page, Site

runner = CliRunner()
TICK = datetime(2026, 11, 28, 3, tzinfo=UTC)


@pytest.fixture
def crawl_runtime(crawl_settings: None, settings: Settings):
    with open_runtime(settings) as runtime:
        yield runtime


def materialize(author_id: str, instance: dg.DagsterInstance) -> tuple[bool, dict[str, object]]:
    if author_id not in instance.get_dynamic_partitions(AUTHORS_PARTITION):
        instance.add_dynamic_partitions(AUTHORS_PARTITION, [author_id])
    result = dg.materialize(
        [raw_documents],
        resources={"twin": TwinResource()},
        partition_key=author_id,
        instance=instance,
        raise_on_error=False,
    )
    events = result.asset_materializations_for_node("raw_documents")
    if events:
        return result.success, {k: v.value for k, v in events[0].metadata.items()}
    failure = result.failure_data_for_node("raw_documents")
    assert failure is not None
    metadata = failure.user_failure_data.metadata if failure.user_failure_data else {}
    return result.success, {k: v.value for k, v in metadata.items()} | {"error": str(failure.error)}


def failed_sources(metadata: dict[str, object]) -> dict[str, str]:
    """Source -> detail of each failed source in the ``sources`` table."""
    table = metadata["sources"]
    assert isinstance(table, dg.TableMetadataValue)
    return {str(r.data["source"]): str(r.data["detail"]) for r in table.records if r.data["status"] == "FAILED"}


def test_links_and_imports_collected_in_isolation_then_incrementally(
    crawl_runtime: Runtime, site: Site, tmp_path: Path
):
    site.route("/feed/@jane", Page(medium_feed(site, posts=2), content_type="text/xml"))
    install_substack(site, posts=3)
    site.route("/blog/one", Page(article_page("One", canonical=site.url("/blog/one"))))
    site.route("/down", Page("broken", status=503, etag=False))
    folder = tmp_path / "notes"
    write(folder / "note.md", markdown("A note", "Imported, not crawled.", canonical_url="https://jane.example/n"))
    crawl_runtime.authors.save(
        Author(
            full_name="Jane Doe",
            links={
                Platform.MEDIUM: (site.url("/@jane"),),
                Platform.SUBSTACK: (site.url("/"),),
                Platform.WEB: (site.url("/blog/one"), site.url("/down")),
            },
            imports=(str(folder),),
        )
    )
    instance = dg.DagsterInstance.ephemeral()

    ok, first = materialize("jane-doe", instance)
    assert ok
    assert (first["inserted"], first["documents"], first["sources_failed"]) == (7, 7, 1)
    [detail] = failed_sources(first).values()
    assert "HTTP 503 after 3 attempts" in detail

    ok, second = materialize("jane-doe", instance)
    assert ok
    assert (second["inserted"], second["updated"], second["unchanged"], second["documents"]) == (0, 0, 1, 7)
    assert second["not_modified"] == 5  # the feed, three posts and the article answered 304

    site.route("/p/issue-2", Page(substack_post_page("Substack issue 2", 2).replace("(issue 2)", "(issue 2, edited)")))
    ok, third = materialize("jane-doe", instance)
    assert (third["inserted"], third["updated"]) == (0, 1)
    edited = crawl_runtime.warehouse.get("jane-doe", site.url("/p/issue-2"))
    assert edited is not None
    assert edited.version == 2
    assert "(issue 2, edited)" in edited.content


def test_the_run_fails_only_when_every_source_failed(crawl_runtime: Runtime, site: Site):
    site.route("/down", Page("broken", status=500, etag=False))
    crawl_runtime.authors.save(
        Author(
            full_name="Jane Doe",
            links={Platform.WEB: (site.url("/down"), "http://169.254.169.254/latest/meta-data/")},
        )
    )
    ok, metadata = materialize("jane-doe", dg.DagsterInstance.ephemeral())
    assert not ok
    assert "every source of Jane Doe failed" in str(metadata["error"])
    assert any("cloud metadata address" in detail for detail in failed_sources(metadata).values())
    assert metadata["sources_failed"] == 2


def test_robots_policy_is_per_author(crawl_runtime: Runtime, site: Site):
    site.route("/robots.txt", Page("User-agent: *\nDisallow: /\n", content_type="text/plain"))
    site.route("/blog/one", Page(article_page("One")))
    crawl_runtime.authors.save(Author(full_name="Jane Doe", links={Platform.WEB: (site.url("/blog/one"),)}))
    crawl_runtime.authors.save(
        Author(full_name="John Roe", links={Platform.WEB: (site.url("/blog/one"),)}, respect_robots_txt=False)
    )
    instance = dg.DagsterInstance.ephemeral()
    ok, jane = materialize("jane-doe", instance)
    assert not ok
    assert "robots.txt" in " ".join(failed_sources(jane).values())
    ok, john = materialize("john-roe", instance)
    assert ok
    assert john["inserted"] == 1


def test_collection_runs_daily_on_a_cron_automation_condition():
    condition = raw_documents.automation_conditions_by_key[dg.AssetKey("raw_documents")]
    assert condition is not None
    assert "0 3 * * *" in str(condition)
    with dg.instance_for_test() as instance:
        instance.add_dynamic_partitions(AUTHORS_PARTITION, ["jane-doe", "john-roe"])
        defs = dg.Definitions(assets=[raw_documents], resources={"twin": TwinResource()})
        before = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=TICK)
        after = dg.evaluate_automation_conditions(
            defs=defs, instance=instance, cursor=before.cursor, evaluation_time=TICK + timedelta(days=1)
        )
    assert after.total_requested == 2  # one run per author partition at the next 03:00 tick


def test_twin_crawl_refuses_the_metadata_address(settings: Settings):
    result = runner.invoke(app, ["crawl", "http://169.254.169.254/latest/meta-data/"])
    assert result.exit_code == 2
    assert "cloud metadata address; refused (SSRF protection)" in " ".join(result.stderr.split())


def test_twin_crawl_prints_and_stores(crawl_runtime: Runtime, site: Site):
    site.route("/blog/one", Page(article_page("Chunk by meaning", canonical=site.url("/blog/one"))))
    crawl_runtime.authors.save(Author(full_name="Jane Doe"))
    result = runner.invoke(app, ["crawl", site.url("/blog/one"), "--author", "Jane Doe", "--json"])
    assert result.exit_code == 0, result.stderr
    output = json.loads(result.stdout)
    [doc] = output["documents"]
    assert (doc["title"], doc["url"], doc["published_at"]) == (
        "Chunk by meaning",
        site.url("/blog/one"),
        "2025-02-03T10:00:00+00:00",
    )
    assert output["stored"] == {"inserted": 1, "updated": 0, "unchanged": 0}
    again = json.loads(runner.invoke(app, ["crawl", site.url("/blog/one"), "--author", "Jane Doe", "--json"]).stdout)
    assert (again["documents"], again["not_modified"]) == ([], 1)

    human = runner.invoke(app, ["crawl", site.url("/blog/one")])
    assert "nothing stored (give --author NAME to store)" in human.stdout
