"""Random fields and small geometric helpers used by the phantom image models (numpy only)."""

from __future__ import annotations

import numpy as np

__all__ = ["FourierField", "segment_distance", "smooth_noise_2d"]


class FourierField:
    """A smooth random field: a sum of cosines with random wave vectors, evaluable anywhere.

    Parameters
    ----------
    rng : numpy.random.Generator
        Source of the wave vectors and phases.
    dims : int
        Dimension of the points it is evaluated at.
    wavelength_mm : tuple of 2 float
        Range of the wavelengths.
    terms : int
        Number of cosines; the field has unit variance.
    """

    def __init__(
        self, rng: np.random.Generator, dims: int, wavelength_mm: tuple[float, float], terms: int
    ) -> None:
        directions = rng.normal(size=(terms, dims))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        lengths = rng.uniform(*wavelength_mm, size=(terms, 1))
        self.k = (2 * np.pi / lengths * directions).astype(np.float32)
        self.phase = rng.uniform(0, 2 * np.pi, terms).astype(np.float32)
        self.scale = np.float32(np.sqrt(2.0 / terms))

    def __call__(self, *coords: np.ndarray) -> np.ndarray:
        """The field at points given as one array per coordinate (broadcast together)."""
        out = np.zeros(np.broadcast_shapes(*(np.shape(c) for c in coords)), np.float32)
        for k, phase in zip(self.k, self.phase, strict=True):
            arg = sum(k[d] * coords[d] for d in range(len(coords))) + phase
            out += np.cos(arg, dtype=np.float32)
        return out * self.scale


def segment_distance(
    points: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Distance of ``points`` (..., 3) to the segment a-b, and the position along it (0-1)."""
    ab = b - a
    t = np.clip(((points - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    nearest = a + t[..., None] * ab
    return np.linalg.norm(points - nearest, axis=-1), t


def smooth_noise_2d(
    rng: np.random.Generator, shape: tuple[int, int], sigma: float | tuple[float, float]
) -> np.ndarray:
    """Gaussian-filtered white noise normalised to unit standard deviation."""
    from scipy.ndimage import gaussian_filter

    field = gaussian_filter(rng.normal(size=shape).astype(np.float32), sigma)
    return field / max(float(field.std()), 1e-6)
