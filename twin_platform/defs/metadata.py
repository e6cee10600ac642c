"""Tables for Dagster metadata: a declared schema, typed cells, rendered and sortable in the UI."""

import math
from collections.abc import Iterable, Mapping

import dagster as dg

Cell = str | int | float | bool | None


def table(columns: Mapping[str, str], rows: Iterable[Mapping[str, Cell]]) -> dg.TableMetadataValue:
    """A table of ``rows`` with the given ``columns`` (name -> Dagster column type: string, int, float, bool).
    The schema is declared rather than inferred, so an empty table still shows its columns."""
    return dg.MetadataValue.table(
        records=[dg.TableRecord({name: row[name] for name in columns}) for row in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, kind) for name, kind in columns.items()]),
    )


def _number(value: float) -> float | None:
    if isinstance(value, float):
        # NaN (a metric that was never logged) is not valid JSON for the UI: show an empty cell.
        return None if math.isnan(value) else float(f"{value:.4g}")
    return value


def values_table(values: Mapping[str, float], name: str = "metric") -> dg.TableMetadataValue:
    """Named numbers as a two-column table (``name``, value), floats to four significant digits."""
    return table({name: "string", "value": "float"}, ({name: k, "value": _number(v)} for k, v in values.items()))
