"""What the scanner does to the chest: reconstruction kernel, noise texture, pixel convention.

The kernel sets both the noise power spectrum (white, low-pass "soft", band-pass "standard",
high-pass "sharp") and the edge response of the noise-free image (blur, or blur plus the
overshoot of an edge-enhancing kernel).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = [
    "PixelConvention",
    "ReconKernel",
    "edge_response",
    "encode",
    "padding_hu",
    "padding_value",
    "shape_noise",
]


class ReconKernel(enum.StrEnum):
    """Reconstruction kernel; ``NONE`` keeps white noise and ideal edges (the historic default)."""

    NONE = "none"
    SOFT = "soft"
    STANDARD = "standard"
    SHARP = "sharp"


class PixelConvention(enum.StrEnum):
    """How HU are stored.

    ``SIGNED_OFFSET``: int16 ``HU + 1024`` with RescaleIntercept -1024 (the historic default);
    ``SIGNED``: int16 HU with intercept 0; ``UNSIGNED``: uint16 ``HU + 1024`` with intercept -1024.
    """

    SIGNED_OFFSET = "signed_offset"
    SIGNED = "signed"
    UNSIGNED = "unsigned"


@dataclass(frozen=True)
class _KernelModel:
    noise_low_px: float
    noise_high_px: float
    noise_high_weight: float
    edge_mm: float
    overshoot: float


_KERNELS = {
    ReconKernel.SOFT: _KernelModel(1.6, 0.0, 0.0, 1.1, 0.0),
    ReconKernel.STANDARD: _KernelModel(0.9, 2.5, 0.5, 0.7, 0.0),
    ReconKernel.SHARP: _KernelModel(0.5, 1.5, 0.9, 0.35, 0.6),
}


def shape_noise(noise: np.ndarray, kernel: ReconKernel) -> np.ndarray:
    """Filter a white-noise slice to the kernel's noise texture, at unit standard deviation."""
    if kernel is ReconKernel.NONE:
        return noise
    model = _KERNELS[kernel]
    shaped = ndimage.gaussian_filter(noise, model.noise_low_px)
    if model.noise_high_weight:
        shaped -= model.noise_high_weight * ndimage.gaussian_filter(noise, model.noise_high_px)
    std = float(shaped.std())
    return shaped / np.float32(std) if std > 0 else shaped


def edge_response(image: np.ndarray, kernel: ReconKernel, pixel_mm: float) -> None:
    """Blur (and for a sharp kernel, edge-enhance) each slice of ``image`` in place."""
    if kernel is ReconKernel.NONE:
        return
    model = _KERNELS[kernel]
    sigma = model.edge_mm / pixel_mm
    for k in range(image.shape[0]):
        blurred = ndimage.gaussian_filter(image[k], sigma)
        if model.overshoot:
            wide = ndimage.gaussian_filter(image[k], 2.5 * sigma + 0.5)
            blurred += np.float32(model.overshoot) * (blurred - wide)
        image[k] = blurred


def encode(hu: np.ndarray, convention: PixelConvention) -> tuple[np.ndarray, int]:
    """Return the stored pixels of an int16 HU slice and the RescaleIntercept to write."""
    if convention is PixelConvention.SIGNED:
        return hu.astype(np.int16), 0
    stored = hu.astype(np.int32) + 1024
    dtype = np.uint16 if convention is PixelConvention.UNSIGNED else np.int16
    return stored.astype(dtype), -1024


def padding_value(convention: PixelConvention) -> int:
    """The stored PixelPaddingValue outside the scan circle for ``convention``."""
    return 0 if convention is PixelConvention.UNSIGNED else -2000


def padding_hu(convention: PixelConvention) -> int:
    """The HU a reader that ignores PixelPaddingValue sees outside the scan circle."""
    intercept = 0 if convention is PixelConvention.SIGNED else -1024
    return padding_value(convention) + intercept
