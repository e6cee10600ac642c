"""``twin models``: the model registry (trained twins, their evaluations and releases) in Postgres."""

from __future__ import annotations

import getpass
from typing import Any

import typer
from rich.table import Column, Table

from twin_platform.adapters.aws_release import PublishedRelease, ReleaseError, ReleasePublisher, release_publisher
from twin_platform.adapters.llm.factory import model_folder
from twin_platform.adapters.postgres.model_registry import ModelRegistry, RegistryError, ReleaseRefused, UnknownModel
from twin_platform.adapters.runtime import Runtime, open_runtime
from twin_platform.cli.authors import AUTHOR_HELP, resolve_author
from twin_platform.cli.console import err, fail, literal, out, print_json
from twin_platform.domain.models import Gate, ModelEntry, ReleaseEvent, failed_gates
from twin_platform.settings import Settings

EXIT_CODES = (
    "Exit codes: 0 done; 1 refused or not published (gates failed or missing, nothing to roll back to, the S3 "
    "upload failed), or released but the TGI hosts were not refreshed; 2 bad input."
)

app = typer.Typer(
    help="Trained twins: list, inspect, release and roll back (the API serves the current release). " + EXIT_CODES,
    no_args_is_help=True,
)


def actor() -> str:
    """Who acts, for the release history: ``cli:<login>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no login name (a container without a passwd entry)
        return "cli"


def entry_json(entry: ModelEntry) -> dict[str, Any]:
    return {
        "version": entry.version,
        "name": entry.name,
        "author": entry.author,
        "state": entry.state,
        "released": entry.released,
        "created_at": entry.created_at.isoformat(),
        "released_at": entry.released_at.isoformat() if entry.released_at else None,
        "uri": entry.uri,
        "release_uri": entry.release_uri,
        "lineage": entry.lineage.model_dump(mode="json"),
        "metrics": entry.metrics,
        "evaluation": entry.evaluation,
    }


def event_json(event: ReleaseEvent) -> dict[str, Any]:
    return event.model_dump(mode="json")


def _gates_summary(entry: ModelEntry) -> str:
    gates = entry.gates()
    if gates is None:
        return "-"
    return f"{sum(g.passed for g in gates)}/{len(gates)} passed"


@app.command("list")
def list_models(
    author: str | None = typer.Option(None, "--author", help=f"Only this author's models ({AUTHOR_HELP})."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Every registered model, newest first, with its state and evaluation."""
    with open_runtime(Settings()) as runtime:
        entries = runtime.models.list(resolve_author(runtime.authors, author).id if author else None)
    if as_json:
        print_json([entry_json(e) for e in entries])
        return
    # The version is what the other commands take: never cut; long names fold onto a second line instead.
    table = Table(
        Column("version", no_wrap=True), Column("name", overflow="fold"), "author", "state", "created", "gates"
    )
    for entry in entries:
        table.add_row(
            literal(entry.version),
            literal(entry.name),
            literal(entry.author),
            literal((entry.state, "bold green" if entry.released else "")),
            f"{entry.created_at:%Y-%m-%d}",
            _gates_summary(entry),
        )
    out.print(table)


@app.command()
def show(
    version: str = typer.Argument(..., help="The model's version."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """One model: lineage, metrics, evaluation gates and release history.

    Exit codes: 0 shown; 2 unknown version.
    """
    with open_runtime(Settings()) as runtime:
        entry = runtime.models.get(version)
        history = runtime.models.history(version) if entry else []
    if entry is None:
        raise fail(f"no model has version {version!r} (twin models list)")
    if as_json:
        print_json({**entry_json(entry), "history": [event_json(e) for e in history]})
        return
    out.print(literal((entry.name, "bold"), f"  {entry.state}  ", entry.version))
    out.print(literal("author ", entry.author, "  created ", f"{entry.created_at:%Y-%m-%d %H:%M %Z}"))
    out.print(literal("uri ", entry.uri))
    lineage = Table("lineage", "value")
    for key, value in entry.lineage.model_dump().items():
        lineage.add_row(key, literal(value if value is not None else "unknown"))
    out.print(lineage)
    if entry.metrics:
        metrics = Table("metric", "value")
        for name, number in entry.metrics.items():
            metrics.add_row(literal(name), f"{number:.4g}")
        out.print(metrics)
    gates = entry.gates()
    if gates is None:
        out.print("evaluation: not evaluated")
    else:
        out.print(_gates_table(gates))
    events = Table("at", "action", "actor", "reason")
    for event in history:
        events.add_row(f"{event.at:%Y-%m-%d %H:%M:%S}", event.action, literal(event.actor), literal(event.reason))
    out.print(events)


def _gates_table(gates: list[Gate]) -> Table:
    table = Table("gate", "passed", "numbers")
    for gate in gates:
        numbers = ", ".join(f"{k}={v}" for k, v in (gate.model_extra or {}).items())
        table.add_row(literal(gate.name), "yes" if gate.passed else literal(("no", "bold red")), literal(numbers))
    return table


@app.command()
def release(
    version: str = typer.Argument(..., help="The model's version."),
    force: bool = typer.Option(False, "--force", help="Release even though gates failed or it was not evaluated."),
    reason: str = typer.Option("", "--reason", help="Why (recorded; required with --force)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Make VERSION its author's released twin; their previous release is retired.

    Without --force the stored evaluation must have passed all its gates. With TWIN_RELEASE_S3_BUCKET the model is
    uploaded to s3://BUCKET/PREFIX/AUTHOR/VERSION/ first (files already there are skipped), then the pointer
    AUTHOR/current.json, then the registry; with TWIN_RELEASE_ASG_NAME an instance refresh of the TGI hosts
    follows. The API picks the release up within TWIN_API_MODEL_POLL_SECONDS. Exit codes: 0 released; 1 refused
    (gates failed or not evaluated) or not published (S3 failed: nothing released), or released but the hosts were
    not refreshed (release it again to retry); 2 bad input (unknown version, --force without --reason).
    """
    if force and not reason.strip():
        raise fail("--force needs --reason: say why the gates are overridden")
    with open_runtime(Settings()) as runtime:
        registry: ModelRegistry = runtime.models
        publisher = _publisher(runtime)
        entry = registry.get(version)
        if entry is None:
            raise fail(f"no model has version {version!r} (twin models list)")
        gates = entry.gates()
        if not force:
            refusal = _refusal(entry, gates)
            if refusal:
                if gates:
                    err.print(_gates_table(gates))
                raise fail(refusal, 1)
        try:
            published = publisher.release(
                version, reason=reason or "gates passed", gates=gates or [], actor=actor(), force=force
            )
        except (ReleaseRefused, ReleaseError) as exc:
            raise fail(str(exc), 1) from None
    released = published.entry
    if as_json:
        print_json({**entry_json(released), "publication": published.as_json()})
    else:
        out.print(literal("released ", (released.name, "bold"), f" ({released.version}) for ", released.author))
        _print_publication(published)
    _check_hosts(published)


def _publisher(runtime: Runtime) -> ReleasePublisher:
    try:
        return release_publisher(runtime.settings, runtime.models, lambda e: model_folder(e, runtime.settings))
    except ReleaseError as exc:
        raise fail(str(exc)) from None


def _print_publication(published: PublishedRelease) -> None:
    for line in published.lines():
        out.print(literal(line))


def _check_hosts(published: PublishedRelease) -> None:
    """Exit 1 when the release is done but the TGI hosts were not refreshed: they serve the previous one."""
    refresh = published.refresh
    if refresh is not None and not refresh.ok:
        raise fail(
            f"{published.entry.version} is released (registry and S3 pointer), but the TGI hosts were not "
            f"refreshed: {refresh.detail}",
            1,
        )


def _refusal(entry: ModelEntry, gates: list[Gate] | None) -> str | None:
    """Why a release without --force is refused, or None when the stored evaluation passed every gate."""
    if gates is None:
        return (
            f"{entry.version} has no stored evaluation with gates: evaluate it first "
            "(or --force --reason TEXT to release it anyway)"
        )
    if not gates:
        return f"{entry.version}: its evaluation checked no gates (--force --reason TEXT to release it anyway)"
    failed = failed_gates(gates)
    if failed:
        names = ", ".join(g.name for g in failed)
        return f"{entry.version}: gates failed: {names} (--force --reason TEXT to release it anyway)"
    return None


@app.command()
def rollback(
    author: str | None = typer.Option(
        None,
        "--author",
        help=f"Whose twin ({AUTHOR_HELP}); default: TWIN_API_SERVE_AUTHOR, else the author of the newest release.",
    ),
    reason: str = typer.Option(..., "--reason", help="Why (recorded)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Retire the author's released twin and release their previous release again.

    Rolling back twice steps back twice. With TWIN_RELEASE_S3_BUCKET the pointer AUTHOR/current.json moves back
    to that release (its files uploaded first if they are not there) before the registry changes; with
    TWIN_RELEASE_ASG_NAME an instance refresh of the TGI hosts follows. Exit codes: 0 rolled back; 1 nothing to
    roll back to, S3 failed (nothing changed), or rolled back but the hosts were not refreshed; 2 bad input (the
    author has no release, empty reason).
    """
    if not reason.strip():
        raise fail("--reason must say why")
    settings = Settings()
    with open_runtime(settings) as runtime:
        author_id = resolve_author(runtime.authors, author).id if author else settings.api_serve_author
        publisher = _publisher(runtime)
        try:
            published = publisher.rollback(author_id, reason=reason, actor=actor())
        except UnknownModel as exc:
            raise fail(str(exc)) from None
        except (RegistryError, ReleaseError) as exc:
            raise fail(str(exc), 1) from None
    restored = published.entry
    if as_json:
        print_json({**entry_json(restored), "publication": published.as_json()})
    else:
        out.print(literal("rolled back: ", (restored.name, "bold"), f" ({restored.version}) is released again"))
        _print_publication(published)
    _check_hosts(published)
