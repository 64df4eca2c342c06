"""The breast in a mammogram: breast region, pectoral muscle (MLO) and in-breast normalisation.

Works on an image already in MONOCHROME2 sense (dense tissue bright) with the chest wall on the
left (:func:`pipelines.mammo_score.model.view_tensor` turns it so).

- *Breast*: pixels clearly above the background, the largest component (labels, markers,
  skin folds and other blobs in the background are separate components: the threshold is taken
  again without them, so that they change nothing), holes filled. The background of a FOR
  PRESENTATION image is the unattenuated exposure, flat and the darkest part: its level is the
  2nd percentile of the image, and the breast starts a fifth of the way from it to Otsu's
  threshold. Otsu's threshold alone splits a breast with dark fat and bright glands between the
  two classes of tissue: the fatty periphery, a quarter of such a breast, would be lost (and
  with it the breast's size, which the share of dense tissue is relative to).
- *Pectoral muscle* (MLO only): the bright triangle at the top of the chest wall, bounded by
  a straight edge fitted by consensus to where each row's run of muscle from the chest wall
  ends (:func:`_pectoral`). The muscle brightens downwards as it thickens, the breast's outline
  can clip it at the top, and dense tissue can lie beside it: none of these may hide it, since
  a missed muscle sets the top of the brightness scale and the breast reads fatty.
- *Normalisation*: the 1st and 99th percentiles of the breast without the pectoral muscle map
  to 0.1 and 1; the breast is clipped to [0.1, 1.5], the background is 0. The floor keeps the
  fattiest tissue apart from the background (density is the share of dense tissue in the whole
  breast, fat included); the headroom keeps what is brighter than the parenchyma (a mass in a
  dense breast, calcifications) brighter, instead of clipping it onto the parenchyma.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from pipelines.common.masks import largest_components, otsu

__all__ = ["BREAST_CEILING", "BREAST_FLOOR", "BreastRegions", "breast_regions", "normalise_breast"]


@dataclass(frozen=True)
class BreastRegions:
    """Masks of one view, on the image's grid.

    Attributes
    ----------
    breast : numpy.ndarray
        Boolean ``[rows, columns]``: the breast, pectoral muscle included.
    pectoral : numpy.ndarray
        Boolean ``[rows, columns]``: the pectoral muscle (empty on CC).
    """

    breast: np.ndarray
    pectoral: np.ndarray

    @property
    def tissue(self) -> np.ndarray:
        """The breast without the pectoral muscle."""
        return self.breast & ~self.pectoral


def _runs(mask: np.ndarray) -> np.ndarray:
    """Per row, the length of the run of ``mask`` starting at the first column."""
    return np.where(mask.all(axis=1), mask.shape[1], np.argmin(mask, axis=1))


def _pectoral_by_consensus(image: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The pectoral triangle at the top of the chest wall (left), or an empty mask.

    Per row of the upper 60 %, the muscle is what runs from the chest wall at its brightness
    there (the muscle brightens downwards as it thickens): the row's edge is where the row first
    falls, for 3 pixels or more, a quarter of the way from the chest-wall pixel to the breast's
    fat (dense tissue beside the muscle is darker than the muscle, if not by much), or by 3 times
    the muscle's texture if that is more. Rows whose chest-wall pixel is
    not clearly brighter than the fat, and rows whose run reaches the skin line (at the top the
    breast's outline can clip the muscle), give no edge. A line through the edges is fitted by
    consensus (of all lines through two edges, the one most edges lie within a few pixels of,
    then least squares on those), so rows where dense tissue beside the muscle lengthens the
    run are outvoted. The muscle is kept only if that line narrows downwards, is already inside
    the breast at its top row, is supported from the upper third of the breast down, and by at
    least 40 % of the rows between its first and last supporting row.
    """
    rows, columns = image.shape
    empty = np.zeros(image.shape, bool)
    upper = int(0.6 * rows)
    runs = _runs(breast)[:upper]
    present = np.nonzero(runs >= 3)[0]
    if present.size < max(4, rows // 10):
        return empty
    smooth = ndimage.uniform_filter(image, 5)
    fat = float(np.percentile(image[breast], 10))
    wall = np.median(smooth[:upper, :3], axis=1)
    contrast = wall - fat
    # The muscle's texture, from row-to-row changes down the chest wall (robust to the steps
    # where the muscle ends and tissue begins): a drop must clear it as well.
    texture = 1.4826 * float(np.median(np.abs(np.diff(wall)))) / np.sqrt(2)
    drop = np.maximum(0.25 * contrast, 3 * texture)
    below = smooth[:upper] < (wall - drop)[:, None]
    below = ndimage.binary_opening(below, np.ones((1, 3), bool))  # ignore one- and two-pixel dips
    edges = np.argmax(below, axis=1)
    edges = np.where(below.any(axis=1), edges, columns)
    usable = (
        (contrast > max(0.1 * (float(np.percentile(image[breast], 99)) - fat), 1e-6))
        & (edges >= 2)
        & (edges < runs - 2)
    )
    usable[: present[0]] = False
    rows_used = np.nonzero(usable)[0]
    minimum = max(6, rows // 25)
    if rows_used.size < minimum:
        return empty
    step = max(1, rows_used.size // 40)
    sample = rows_used[::step]
    x, y = rows_used.astype(float), edges[rows_used].astype(float)
    tolerance = max(2.0, columns / 100)
    best = np.zeros(x.shape, bool)
    for i in range(sample.size):
        for j in range(i + 1, sample.size):
            r0, r1 = float(sample[i]), float(sample[j])
            slope = (edges[sample[j]] - edges[sample[i]]) / (r1 - r0)
            if slope >= 0:  # the muscle narrows downwards
                continue
            inliers = np.abs(y - (edges[sample[i]] + slope * (x - r0))) <= tolerance
            if inliers.sum() > best.sum():
                best = inliers
    if best.sum() < minimum:
        return empty
    slope, intercept = np.polyfit(x[best], y[best], 1)
    if slope >= 0 or intercept + slope * present[0] < 2 or x[best].min() > present[0] + 0.35 * rows:
        return empty
    within = (x >= x[best].min()) & (x <= x[best].max())
    if best.sum() < 0.4 * within.sum():
        return empty
    edge = intercept + slope * np.arange(rows, dtype=float)
    return breast & (np.arange(columns)[None, :] < edge[:, None])


def _pectoral_from_top(image: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The pectoral triangle of a muscle that fills the breast's top rows, or an empty mask.

    Seeded on the top rows, where the muscle is all the breast region holds; grown as the
    pixels of the muscle's intensity (within 3 robust standard deviations) that run from the
    chest wall; its edge is a line from the top width, with the median slope of the runs over
    the upper 60 % of rows.
    """
    rows, columns = image.shape
    empty = np.zeros(image.shape, bool)
    band = max(2, rows // 50)
    runs = _runs(breast)
    top = int(np.median(runs[:band]))
    widest = int(runs.max())
    if top < 2 or top > 0.8 * widest:
        return empty
    smooth = ndimage.uniform_filter(image, 3)
    seed = smooth[:band, :top]
    level = float(np.median(seed))
    if level <= float(np.median(image[breast])):  # fat at the top: the muscle is not in view
        return empty
    spread = 1.4826 * float(np.median(np.abs(seed - level))) + 1e-6
    similar = breast & (np.abs(smooth - level) <= 3 * spread)
    lengths = _runs(similar)[: int(0.6 * rows)].astype(float)
    # The edge runs from (row 0, ``top``) down-and-in: each row's run gives a slope; tissue of
    # the muscle's brightness next to it lengthens runs, so the median slope of the rows whose
    # run did not grow past the top is taken (a Theil-Sen estimate anchored at the top).
    used = np.nonzero((lengths > 0) & (lengths <= top))[0]
    used = used[used >= band]
    if used.size < max(4, rows // 20):
        return empty
    slope = float(np.median((lengths[used] - top) / used))
    intercept = float(top)
    if slope >= 0:
        return empty
    edge = intercept + slope * np.arange(rows, dtype=float)
    return breast & (np.arange(columns)[None, :] < edge[:, None])


def _pectoral(image: np.ndarray, breast: np.ndarray) -> np.ndarray:
    """The pectoral muscle: by consensus of the rows' edges (:func:`_pectoral_by_consensus`),
    else (a textured muscle hardly brighter than the tissue beside it, whose rows' edges do
    not agree) from the muscle's own intensity on the top rows (:func:`_pectoral_from_top`)."""
    found = _pectoral_by_consensus(image, breast)
    return found if found.any() else _pectoral_from_top(image, breast)


def _above_background(values: np.ndarray) -> float:
    """The level above which a pixel of ``values`` is not the (flat, darkest) background."""
    level = float(np.percentile(values, 2))
    return level + 0.2 * (otsu(values) - level)


def breast_regions(image: np.ndarray, *, mlo: bool) -> BreastRegions:
    """The breast and (on MLO) the pectoral muscle of one view.

    Parameters
    ----------
    image : numpy.ndarray
        ``[rows, columns]`` float, MONOCHROME2 sense, chest wall on the left.
    mlo : bool
        Whether the view is an MLO (only then is a pectoral muscle looked for).
    """
    image = np.asarray(image, np.float32)
    if float(image.max()) <= float(image.min()):
        empty = np.zeros(image.shape, bool)
        return BreastRegions(empty, empty)
    candidate = image > _above_background(image.ravel())
    breast = largest_components(candidate, 1)[0]
    others = candidate & ~breast
    if others.any():
        # Bright blobs beside the breast (markers, skin folds) must not move its threshold:
        # it is taken again without them.
        keep = ~ndimage.binary_dilation(others, iterations=2)
        breast = largest_components((image > _above_background(image[keep])) & keep, 1)[0]
    breast = np.asarray(ndimage.binary_fill_holes(breast))
    pectoral = _pectoral(image, breast) if mlo else np.zeros(image.shape, bool)
    return BreastRegions(breast, pectoral)


BREAST_FLOOR, BREAST_CEILING = 0.1, 1.5
"""The value of the breast's ``lower`` percentile, and the highest value of the breast (its
``upper`` percentile is 1)."""


def normalise_breast(
    image: np.ndarray, regions: BreastRegions, *, lower: float = 1.0, upper: float = 99.0
) -> np.ndarray:
    """Map the ``lower``/``upper`` percentiles of the breast tissue (pectoral excluded) to
    :data:`BREAST_FLOOR` / 1, clipped to [:data:`BREAST_FLOOR`, :data:`BREAST_CEILING`]; the
    background is 0."""
    tissue = regions.tissue if regions.tissue.any() else regions.breast
    if not tissue.any():
        return np.zeros(image.shape, np.float32)
    low, high = np.percentile(image[tissue], [lower, upper])
    unit = (image - low) / max(float(high - low), 1e-6)
    scaled = np.clip(BREAST_FLOOR + (1 - BREAST_FLOOR) * unit, BREAST_FLOOR, BREAST_CEILING)
    return np.where(regions.breast, scaled, 0.0).astype(np.float32)
