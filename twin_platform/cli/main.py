"""``twin``: the platform's command line."""

from __future__ import annotations

import logging
import warnings

import typer

from twin_platform.cli import authors, bench, db, models
from twin_platform.cli.api import api_command, keys_app
from twin_platform.cli.crawl import crawl_command
from twin_platform.cli.demo import demo_command
from twin_platform.cli.importing import import_command
from twin_platform.cli.lifecycle import track_embedded_server
from twin_platform.cli.materialize import materialize_command
from twin_platform.cli.search import search_command
from twin_platform.cli.up import up_command

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")

app = typer.Typer(
    name="twin",
    help="Build an LLM twin: collect an author's writing, turn it into features, train and serve the twin.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(db.app, name="db")
app.add_typer(authors.app, name="authors")
app.add_typer(bench.app, name="bench")
app.add_typer(keys_app, name="apikey")
app.add_typer(models.app, name="models")
app.command("api")(api_command)
app.command("import")(import_command)
app.command("crawl")(crawl_command)
app.command("search")(search_command)
app.command("demo")(demo_command)
app.command("materialize")(materialize_command)
app.command("up")(up_command)


@app.callback()
def main(ctx: typer.Context, verbose: bool = typer.Option(False, "--verbose", "-v", help="Log more.")) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    track_embedded_server(ctx)  # one-shot commands stop an embedded Postgres they had to start


if __name__ == "__main__":
    app()
