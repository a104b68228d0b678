"""Small helpers that turn figures (numbers) into tables and plots into images, as Dagster metadata the UI renders."""

from __future__ import annotations

import base64
from collections.abc import Mapping

import dagster as dg
import pyarrow as pa

from consumer_assets.plots import png_bytes


def count_table(counts: Mapping[str, int | float], label: str, value: str = "count") -> dg.TableMetadataValue:
    """A two-column table, largest first."""
    rows = sorted(counts.items(), key=lambda kv: -kv[1])
    value_type = "int" if all(isinstance(v, int) for _, v in rows) else "float"
    return dg.MetadataValue.table(
        records=[dg.TableRecord({label: str(k), value: v}) for k, v in rows],
        schema=dg.TableSchema(columns=[dg.TableColumn(label, "string"), dg.TableColumn(value, value_type)]),
    )


def preview_table(table: pa.Table, rows: int = 10) -> dg.TableMetadataValue:
    """The first rows of a table, every value shown as text (lists and timestamps included)."""
    head = table.slice(0, rows).to_pylist()
    return dg.MetadataValue.table(
        records=[dg.TableRecord({k: None if v is None else str(v) for k, v in row.items()}) for row in head],
        schema=dg.TableSchema(columns=[dg.TableColumn(name, "string") for name in table.column_names]),
    )


def plot_markdown(figure, alt: str) -> dg.MarkdownMetadataValue:
    """A matplotlib figure embedded as a PNG in markdown metadata (shown inline by the UI)."""
    return png_markdown(png_bytes(figure), alt)


def png_markdown(png: bytes, alt: str) -> dg.MarkdownMetadataValue:
    """An already rendered PNG embedded in markdown metadata."""
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")
