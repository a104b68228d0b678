"""The day's monitoring figures drawn as plots, and all of it as one static HTML page (stored beside the partition)."""

from __future__ import annotations

import base64
import html
from datetime import date

import numpy as np
from matplotlib.figure import Figure

from consumer_assets.monitoring.daily import DayMonitoring
from consumer_assets.monitoring.stats import SCORE_EDGES
from consumer_assets.plots import bar_chart, calibration_plot, png_bytes, psi_bars, time_series

SCORE_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)


def score_buckets(sketch: dict) -> dict[str, int]:
    """The fine score sketch pooled into a few readable buckets."""
    edges = np.asarray(SCORE_EDGES)
    counts = np.asarray(sketch["counts"])
    bucket = np.searchsorted(SCORE_BUCKETS, edges[:-1], side="right") - 1
    pooled = np.bincount(np.clip(bucket, 0, len(SCORE_BUCKETS) - 2), counts, len(SCORE_BUCKETS) - 1)
    return {f"{lo:g}-{hi:g}": int(n) for lo, hi, n in zip(SCORE_BUCKETS[:-1], SCORE_BUCKETS[1:], pooled)}


def rendered_plots(found: DayMonitoring, series: list[dict]) -> dict[str, bytes]:
    """Every plot the day has data for, by name, as PNG: rendered once for the UI and the report."""
    return {name: png_bytes(figure) for name, figure in _plots(found, series).items()}


def _plots(found: DayMonitoring, series: list[dict]) -> dict[str, Figure]:
    plots: dict[str, Figure] = {}
    drift = list(found.input_drift) + ([found.prediction_drift] if found.prediction_drift else [])
    if drift:
        plots["drift"] = psi_bars(drift)
    scores = found.sketch.get("scores")
    if scores:
        buckets = score_buckets(scores)
        plots["scores"] = bar_chart(
            list(buckets), list(buckets.values()), "Scores of the day", "p_order_any", "profiles"
        )
    matured = found.realised
    if matured:
        plots["calibration"] = calibration_plot({f"predicted at {matured['scored_day']}": matured["calibration"]})
    if series:
        days = [row["day"] for row in series]
        plots["realised_auc"] = time_series(
            days,
            {"realised AUC": [row["auc"] for row in series]},
            "Realised AUC of the predictions made H days earlier",
            "AUC",
        )
        plots["realised_rate"] = time_series(
            days,
            {
                "predicted": [row["mean_predicted_rate"] for row in series],
                "realised": [row["realised_rate"] for row in series],
            },
            "Order rate: predicted against realised",
            "rate",
        )
    return plots


def _table(rows: list[dict], columns: list[str]) -> str:
    def cell(value) -> str:
        return f"{value:.4g}" if isinstance(value, float) else html.escape(str(value))

    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def html_report(day: date, found: DayMonitoring, plots: dict[str, bytes]) -> bytes:
    """A self-contained page: tables of the figures and the plots inlined as PNG."""
    sections = [f"<h1>Monitoring {day}</h1>", f"<p>Reference days: {', '.join(found.reference_days) or 'none yet'}</p>"]
    if found.input_drift:
        sections += [
            "<h2>Input drift</h2>",
            _table(found.input_drift, ["feature", "source", "psi", "band", "ks", "mean", "reference_mean", "alerting"]),
        ]
    if found.prediction_drift:
        sections += [
            "<h2>Prediction drift</h2>",
            _table([found.prediction_drift], ["feature", "psi", "band", "ks", "mean", "reference_mean"]),
        ]
    if found.realised:
        matured = {k: v for k, v in found.realised.items() if k != "calibration"}
        sections += ["<h2>Realised against predicted</h2>", _table([matured], list(matured))]
    for name, png in plots.items():
        encoded = base64.b64encode(png).decode()
        sections.append(
            f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" src="data:image/png;base64,{encoded}">'
        )
    style = (
        "body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:2px 6px}"
    )
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>Monitoring {day}</title><style>{style}</style></head>"
        f"<body>{''.join(sections)}</body></html>"
    )
    return page.encode()
