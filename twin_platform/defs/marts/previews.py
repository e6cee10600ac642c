"""What a person looks for on a mart's page in the UI: how many rows, the first rows, and a plot where one helps.

Read from the mart tables right after ``dbt build`` wrote them, and attached to their materializations:
``dagster/row_count`` (the UI's row count), ``preview`` (a table with the mart's own column types), and a PNG for
the chunk-length histogram and the documents per month.
"""

import datetime as dt
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from twin_platform.defs.metadata import Cell, table
from twin_platform.training.reports import png_markdown

PREVIEW_ROWS = 20
ROW_COUNT = "dagster/row_count"
_COLUMN_TYPES = {
    "smallint": "int",
    "integer": "int",
    "bigint": "int",
    "numeric": "float",
    "real": "float",
    "double precision": "float",
    "boolean": "bool",
}


def _cell(value: object) -> Cell:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)


def _columns(conn: sa.Connection, schema: str, name: str) -> dict[str, str]:
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = :schema AND table_name = :name ORDER BY ordinal_position"
        ),
        {"schema": schema, "name": name},
    )
    return {str(column): _COLUMN_TYPES.get(str(kind), "string") for column, kind in rows}


def _stacked_bars(
    rows: Sequence[tuple[str, str, float]], *, title: str, xlabel: str, ylabel: str, width: float = 0.8
) -> str:
    """Bars per x, stacked by series; returns markdown with the PNG inline."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    xs = sorted({x for x, _, _ in rows})
    by_series: dict[str, dict[str, float]] = defaultdict(dict)
    for x, series, value in rows:
        by_series[series][x] = value
    figure, axis = plt.subplots(figsize=(7, 3.4), dpi=100)
    bottom = [0.0] * len(xs)
    for series, values in sorted(by_series.items()):
        heights = [values.get(x, 0.0) for x in xs]
        axis.bar(range(len(xs)), heights, width, bottom=bottom, label=series)
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    step = max(1, len(xs) // 12)  # at most a dozen tick labels
    axis.set_xticks(range(0, len(xs), step), [xs[i] for i in range(0, len(xs), step)], rotation=45, ha="right")
    axis.set_title(title)
    axis.set_xlabel(xlabel)
    axis.set_ylabel(ylabel)
    axis.grid(axis="y", alpha=0.3)
    axis.legend(loc="upper right", fontsize="small")
    figure.tight_layout()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "plot.png"
        figure.savefig(path)
        plt.close(figure)
        return png_markdown(path, title)


def _summed(conn: sa.Connection, schema: str, name: str, groups: Sequence[str], value: str) -> list[Any]:
    """``sum(value)`` per ``groups`` of a mart, ordered by them."""
    columns: list[sa.ColumnClause[Any]] = [sa.column(group) for group in groups]
    relation = sa.table(name, *columns, sa.column(value), schema=schema)
    query = sa.select(*columns, sa.func.sum(sa.column(value))).select_from(relation).group_by(*columns)
    return list(conn.execute(query.order_by(*columns)))


def chunk_length_histogram(conn: sa.Connection, schema: str) -> str:
    rows = _summed(conn, schema, "mart_chunk_length_distribution", ("bucket_start", "bucket_end", "category"), "chunks")
    # Zero-padded labels sort in token order.
    bars = [(f"{start:03d}-{end:03d}", str(category), float(n)) for start, end, category, n in rows]
    return _stacked_bars(bars, title="Chunks per 32-token bucket", xlabel="tokens", ylabel="chunks")


def documents_per_month(conn: sa.Connection, schema: str) -> str:
    rows = _summed(conn, schema, "mart_corpus_by_month", ("month", "category"), "documents")
    bars = [(month.strftime("%Y-%m") if month else "undated", str(category), float(n)) for month, category, n in rows]
    return _stacked_bars(bars, title="Documents per month", xlabel="month", ylabel="documents")


PLOTS: dict[str, tuple[str, Callable[[sa.Connection, str], str]]] = {
    "mart_chunk_length_distribution": ("chunk_length_histogram", chunk_length_histogram),
    "mart_corpus_by_month": ("documents_per_month", documents_per_month),
}


def mart_metadata(engine: sa.Engine, schema: str, name: str) -> dict[str, dg.MetadataValue]:
    """Row count, a preview of the first rows (typed columns) and, for some marts, a plot."""
    relation = sa.table(name, schema=schema)
    with engine.connect() as conn:
        columns = _columns(conn, schema, name)
        count = conn.execute(sa.select(sa.func.count()).select_from(relation)).scalar_one()
        order = [sa.text(str(i + 1)) for i in range(min(3, len(columns)))]
        rows = conn.execute(
            sa.select(sa.literal_column("*")).select_from(relation).order_by(*order).limit(PREVIEW_ROWS)
        ).mappings()
        preview = table(columns, ({k: _cell(v) for k, v in row.items()} for row in rows))
        metadata: dict[str, dg.MetadataValue] = {ROW_COUNT: dg.MetadataValue.int(int(count)), "preview": preview}
        if name in PLOTS:
            key, plot = PLOTS[name]
            metadata[key] = dg.MetadataValue.md(plot(conn, schema) if count else "_no rows yet_")
    return metadata
