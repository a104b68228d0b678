"""Plots for the UI, drawn with matplotlib's non-interactive backend (no dagster import)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def bar_chart(labels: Sequence[str], values: Sequence[float], title: str, xlabel: str, ylabel: str) -> Figure:
    figure, axes = plt.subplots(figsize=(6, 3))
    axes.bar(range(len(values)), values, color="#4c72b0")
    axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    axes.set_title(title)
    axes.set_xlabel(xlabel)
    axes.set_ylabel(ylabel)
    figure.tight_layout()
    plt.close(figure)
    return figure


def training_curves(history: Sequence[dict]) -> Figure:
    """Loss and validation AUC per epoch."""
    epochs = [h["epoch"] for h in history]
    figure, (loss_axes, auc_axes) = plt.subplots(1, 2, figsize=(8, 3))
    loss_axes.plot(epochs, [h["train_loss"] for h in history], marker="o", label="train (weighted)")
    loss_axes.plot(epochs, [h["validation_log_loss"] for h in history], marker="o", label="validation")
    loss_axes.set_xlabel("epoch")
    loss_axes.set_title("loss")
    loss_axes.legend()
    auc_axes.plot(epochs, [h["validation_auc"] for h in history], marker="o", color="#55a868")
    auc_axes.set_xlabel("epoch")
    auc_axes.set_title("validation AUC (order_any)")
    figure.tight_layout()
    plt.close(figure)
    return figure
