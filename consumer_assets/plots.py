"""Plots for the UI, drawn with matplotlib's non-interactive backend (no dagster import)."""

from __future__ import annotations

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def _finished(figure: Figure) -> Figure:
    """Lay out and detach from pyplot: figures are only ever saved, and an open one would leak."""
    figure.tight_layout()
    plt.close(figure)
    return figure


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    return buffer.getvalue()


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str, ylabel: str) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 3))
    axes.bar(range(len(values)), values, color="#4c72b0")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    return _finished(figure)


def training_curves(history: Sequence[dict]) -> Figure:
    """Loss and validation AUC per epoch."""
    epochs = [h["epoch"] for h in history]
    figure, (loss_axes, auc_axes) = plt.subplots(1, 2, figsize=(8, 3))
    loss_axes.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train (all targets)")
    loss_axes.plot(epochs, [h["validation_log_loss"] for h in history], marker="o", label="validation")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_title("loss")
    loss_axes.legend()
    auc_axes.plot(epochs, [h["validation_auc"] for h in history], marker="o", color="#55a868")
    auc_axes.set_xlabel("epoch")
    auc_axes.set_title("validation AUC (order_any)")
    return _finished(figure)


def roc_curves(curves: dict[str, dict]) -> Figure:
    """ROC curves of several models on the same rows; ``curves`` maps name to {fpr, tpr}."""
    figure, axes = plt.subplots(figsize=(4.5, 4))
    for name, curve in curves.items():
        axes.plot(curve["fpr"], curve["tpr"], label=name)
    axes.plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("false positive rate")
    axes.set_ylabel("true positive rate")
    axes.set_title("ROC on the test data")
    axes.legend(fontsize=8)
    return _finished(figure)


def calibration_plot(tables: dict[str, list[dict]]) -> Figure:
    """Observed rate against mean prediction per decile, one line per model."""
    figure, axes = plt.subplots(figsize=(4.5, 4))
    top = 0.0
    for name, table in tables.items():
        predicted, observed = [r["predicted"] for r in table], [r["observed"] for r in table]
        axes.plot(predicted, observed, marker="o", label=name)
        top = max(top, *predicted, *observed)
    axes.plot([0, top], [0, top], color="grey", linestyle=":", linewidth=1)
    axes.set_xlabel("mean predicted probability")
    axes.set_ylabel("observed order rate")
    axes.set_title("Calibration by decile")
    axes.legend(fontsize=8)
    return _finished(figure)


def psi_bars(rows: Sequence[dict], title: str = "Input drift against the reference window (PSI)") -> Figure:
    """PSI per feature, coloured by band, with the 0.1 and 0.25 lines."""
    colours = {"stable": "#55a868", "moderate": "#dd8452", "significant": "#c44e52"}
    figure, axes = plt.subplots(figsize=(6, 3))
    axes.bar(range(len(rows)), [r["psi"] for r in rows], color=[colours[r["band"]] for r in rows])
    for level in (0.1, 0.25):
        axes.axhline(level, color="grey", linestyle=":", linewidth=1)
    axes.set_xticks(range(len(rows)), [r["feature"] for r in rows], rotation=45, ha="right", fontsize=8)
    axes.set_ylabel("PSI")
    axes.set_title(title)
    return _finished(figure)


def time_series(days: Sequence[str], series: dict[str, Sequence[float | None]], title: str, ylabel: str) -> Figure:
    """One line per series over partition days (gaps where a value is missing)."""
    figure, axes = plt.subplots(figsize=(6, 3))
    for name, values in series.items():
        axes.plot(range(len(days)), [float("nan") if v is None else v for v in values], marker="o", label=name)
    step = max(1, len(days) // 10)
    axes.set_xticks(range(0, len(days), step), list(days)[::step], rotation=45, ha="right", fontsize=8)
    axes.set_ylabel(ylabel)
    axes.set_title(title)
    axes.legend(fontsize=8)
    return _finished(figure)


EVENT_COLOURS = {
    "view": "#8c8c8c",
    "wishlist": "#8172b2",
    "add_to_cart": "#dd8452",
    "remove_from_cart": "#c44e52",
    "order": "#55a868",
}


def explanation_timeline(
    profile_id: str,
    hours_before_cutoff: Sequence[float],
    probabilities: Sequence[float],
    event_types: Sequence[str],
    empty_score: float,
) -> Figure:
    """A profile's predicted probability after each event, events marked by type, time running to the cut-off."""
    figure, axes = plt.subplots(figsize=(7, 3))
    x = [-h for h in hours_before_cutoff]
    axes.step([x[0], *x], [empty_score, *probabilities], where="post", color="#4c72b0", linewidth=1.2)
    for event_type, colour in EVENT_COLOURS.items():
        points = [(xi, p) for xi, p, t in zip(x, probabilities, event_types) if t == event_type]
        if points:
            axes.scatter(*zip(*points), s=18, color=colour, label=event_type, zorder=3)
    axes.axhline(empty_score, color="grey", linestyle=":", linewidth=1, label="empty history")
    axes.set_xlabel("hours before the cut-off")
    axes.set_ylabel("P(order)")
    axes.set_title(f"profile {profile_id}: score after each event")
    axes.legend(fontsize=7, loc="upper left")
    return _finished(figure)


def contribution_bars(summary: Sequence[dict]) -> Figure:
    """Mean contribution per event type and time before the cut-off."""
    labels = [f"{row['event_type']} {row['age']}" for row in summary]
    values = [row["mean_contribution"] for row in summary]
    figure, axes = plt.subplots(figsize=(7, 3.5))
    axes.bar(range(len(values)), values, color=["#55a868" if v > 0 else "#c44e52" for v in values])
    axes.axhline(0, color="grey", linewidth=0.8)
    axes.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
    axes.set_ylabel("mean change of P(order)")
    axes.set_title("What moves scores: mean contribution per event")
    return _finished(figure)
