"""Platt calibration of pipeline scores: fit, apply, metadata round trip."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.common.calibration import METADATA_KEY, Calibration, fit_platt


def _overconfident_sample(n: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    """Raw scores all squeezed towards 1 whatever the truth: true rate p, raw score p**0.05."""
    rng = np.random.default_rng(7)
    true_probability = rng.uniform(0.02, 0.98, n)
    labels = rng.random(n) < true_probability
    return true_probability**0.05, labels


def test_platt_recovers_probabilities_of_an_overconfident_score() -> None:
    raw, labels = _overconfident_sample()
    a, b = fit_platt(raw, labels)
    calibrated = Calibration(a, b).apply(raw)

    # expected calibration error over 10 bins: small after, large before
    def ece(p: np.ndarray) -> float:
        bins = np.minimum((p * 10).astype(int), 9)
        return float(
            sum(
                abs(p[bins == k].mean() - labels[bins == k].mean()) * (bins == k).mean()
                for k in range(10)
                if (bins == k).any()
            )
        )

    assert ece(raw) > 0.3
    assert ece(calibrated) < 0.05
    # monotone: the ranking (hence AUC and FROC) is unchanged
    order = np.argsort(raw)
    assert np.all(np.diff(calibrated[order]) >= -1e-12)


def test_fit_needs_both_classes_and_survives_separable_data() -> None:
    with pytest.raises(ValueError, match="positives and negatives"):
        fit_platt([0.9, 0.8], [True, True])
    a, b = fit_platt([0.1, 0.2, 0.8, 0.9], [False, False, True, True])
    assert np.isfinite(a) and np.isfinite(b) and a > 0


def test_metadata_round_trip_and_refusals() -> None:
    cal = Calibration(1.5, -2.0, 0.3, "1 false positive per scan", "seeds 1..2")
    metadata = {METADATA_KEY: cal.to_metadata()}
    assert Calibration.from_metadata(metadata) == cal
    assert Calibration.from_metadata({}) is None
    with pytest.raises(ValueError, match="platt"):
        Calibration.from_metadata({METADATA_KEY: {"method": "isotonic"}})
    with pytest.raises(ValueError, match="finite"):
        Calibration.from_metadata({METADATA_KEY: {"method": "platt", "a": "nan", "b": 0}})
