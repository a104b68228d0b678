"""Calibration as a step of its own: Platt scaling of each target's logit, fitted on validation profiles.

Training optimises ranking and likelihood on the training days; the probabilities
it gives drift from the rates of later days (more history per profile, another
season). A scale and a bias per target, fitted by maximum likelihood on held-out
validation profiles of later days, put them back on the observed rates without
changing the order of the scores (AUC is untouched). Two numbers per target, so a
few hundred positives fit them well; they are stored as buffers of the network
(safetensors) and applied by every scoring path through ``predict_proba``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, in float64 (probabilities near 0 and 1 keep their digits)."""
    return 1 / (1 + np.exp(-np.asarray(z, np.float64)))


@dataclass(frozen=True)
class PlattScaling:
    """p = sigmoid(scale * logit + bias), one pair per target."""

    scale: tuple[float, ...]
    bias: tuple[float, ...]

    def apply(self, logits: np.ndarray) -> np.ndarray:
        return sigmoid(np.asarray(logits, np.float64) * np.array(self.scale) + np.array(self.bias))

    def to_json(self) -> dict:
        return {"method": "platt", "scale": list(self.scale), "bias": list(self.bias)}


def _fit_one(z: np.ndarray, y: np.ndarray, ridge: float = 1e-4, iterations: int = 50) -> tuple[float, float]:
    """Newton's method on the log-likelihood of sigmoid(a z + b); a tiny ridge keeps it finite on separable data."""
    a, b = 1.0, 0.0
    x = np.stack([z, np.ones_like(z)], axis=1)
    for _ in range(iterations):
        p = sigmoid(a * z + b)
        gradient = x.T @ (y - p) - ridge * np.array([a - 1.0, b])
        hessian = (x * (p * (1 - p))[:, None]).T @ x + ridge * np.eye(2)
        step = np.linalg.solve(hessian, gradient)
        a, b = a + step[0], b + step[1]
        if np.abs(step).max() < 1e-8:
            break
    return float(a), float(b)


def fit_platt(logits: np.ndarray, labels: np.ndarray) -> PlattScaling:
    """Fit a scale and a bias per target (columns) on validation logits and their outcomes.

    A target without both outcomes among the rows keeps the identity: there is
    nothing to fit it on.
    """
    logits, labels = np.asarray(logits, np.float64), np.asarray(labels, np.float64)
    if logits.shape != labels.shape or logits.ndim != 2:
        raise ValueError(f"logits {logits.shape} and labels {labels.shape} must both be (rows, targets)")
    pairs = [
        _fit_one(logits[:, k], labels[:, k]) if 0 < labels[:, k].sum() < len(labels) else (1.0, 0.0)
        for k in range(logits.shape[1])
    ]
    return PlattScaling(scale=tuple(a for a, _ in pairs), bias=tuple(b for _, b in pairs))
