"""Calibrated scores: Platt scaling of a network's raw score, stored in the bundle.

A detector's raw score (a sigmoid output) says how much a candidate looks like the training
data, not how likely it is to be a true finding: on phantoms of another generator the demo
lung network scored every false positive 0.98-0.999. Platt scaling maps the raw score to a
probability, ``p = sigmoid(a * logit(s) + b)``, with ``a`` and ``b`` fitted by
``models/calibrate.py`` on validation studies (seeds used neither in training nor in the
evaluation) and written to the bundle's ``configs/metadata.json`` as ``dicomnode_calibration``,
together with the default operating point (the threshold on the calibrated probability) and
what that threshold was chosen for. A bundle without the entry (an official model-zoo bundle)
reports its raw scores unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

__all__ = ["METADATA_KEY", "Calibration", "fit_platt"]

METADATA_KEY = "dicomnode_calibration"
"""The key of the calibration in a bundle's ``configs/metadata.json``."""

_EPS = 1e-6


def _logit(scores: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(scores, dtype=np.float64), _EPS, 1.0 - _EPS)
    return np.log(p / (1.0 - p))


@dataclass(frozen=True)
class Calibration:
    """Platt scaling of one score, plus the default operating point.

    Parameters
    ----------
    a, b : float
        ``p = sigmoid(a * logit(raw) + b)``.
    operating_point : float
        Default threshold on the calibrated probability (the pipeline's ``threshold`` option
        overrides it).
    operating_point_meaning : str
        What the operating point was chosen for, e.g. "1 false positive per scan on the
        validation studies".
    fitted_on : str
        The data the fit saw (generator, seeds, number of samples).
    """

    a: float
    b: float
    operating_point: float = 0.5
    operating_point_meaning: str = ""
    fitted_on: str = ""

    def apply(self, scores: np.ndarray | Sequence[float]) -> np.ndarray:
        """Calibrated probabilities of raw ``scores`` (same shape, float64 in [0, 1])."""
        z = self.a * _logit(np.asarray(scores)) + self.b
        return 1.0 / (1.0 + np.exp(-z))

    def to_metadata(self) -> dict[str, Any]:
        """The ``dicomnode_calibration`` entry."""
        return {"method": "platt", **asdict(self)}

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> Calibration | None:
        """The bundle's calibration, or None when it has none.

        Raises
        ------
        ValueError
            The entry exists but is not a Platt calibration with finite parameters.
        """
        entry = metadata.get(METADATA_KEY)
        if entry is None:
            return None
        if not isinstance(entry, Mapping) or entry.get("method") != "platt":
            raise ValueError(f"{METADATA_KEY}: only method 'platt' is supported")
        a, b = float(entry["a"]), float(entry["b"])
        point = float(entry.get("operating_point", 0.5))
        if not (np.isfinite(a) and np.isfinite(b) and 0.0 <= point <= 1.0):
            raise ValueError(f"{METADATA_KEY}: a, b must be finite and operating_point in [0, 1]")
        return cls(
            a=a,
            b=b,
            operating_point=point,
            operating_point_meaning=str(entry.get("operating_point_meaning", "")),
            fitted_on=str(entry.get("fitted_on", "")),
        )


def fit_platt(
    scores: Sequence[float] | np.ndarray, labels: Sequence[bool] | np.ndarray
) -> tuple[float, float]:
    """Fit ``a`` and ``b`` of Platt scaling by Newton's method on the log loss.

    Uses Platt's smoothed targets (``(N+ + 1) / (N+ + 2)`` and ``1 / (N- + 2)``) so that a
    separable sample does not send the parameters to infinity.

    Raises
    ------
    ValueError
        Fewer than one positive and one negative sample, or lengths that differ.
    """
    x = _logit(np.asarray(scores))
    y = np.asarray(labels, dtype=bool)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError("scores and labels must be 1-D of the same length")
    positives, negatives = int(y.sum()), int((~y).sum())
    if positives < 1 or negatives < 1:
        raise ValueError(f"need positives and negatives, got {positives} and {negatives}")
    target = np.where(y, (positives + 1.0) / (positives + 2.0), 1.0 / (negatives + 2.0))

    def loss(params: np.ndarray) -> float:
        z = params[0] * x + params[1]
        return float(np.sum(np.logaddexp(0.0, z) - target * z))

    params = np.array([1.0, 0.0])
    current = loss(params)
    for _ in range(200):
        p = 1.0 / (1.0 + np.exp(-(params[0] * x + params[1])))
        w = np.maximum(p * (1.0 - p), 1e-12)
        gradient = np.array([np.sum((p - target) * x), np.sum(p - target)])
        hessian = np.array([[np.sum(w * x * x), np.sum(w * x)], [np.sum(w * x), np.sum(w)]])
        step = np.linalg.solve(hessian + np.eye(2) * 1e-9, gradient)
        scale = 1.0
        while scale > 1e-6 and loss(params - scale * step) > current:
            scale /= 2.0  # backtracking: Newton alone overshoots on squeezed scores
        params = params - scale * step
        previous, current = current, loss(params)
        if previous - current < 1e-10 * max(1.0, abs(current)):
            break
    return float(params[0]), float(params[1])
