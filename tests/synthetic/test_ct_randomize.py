"""Widened chest CT families: pixel conventions, ground glass, attachments, thickness, vessels."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from dicomnode.synthetic import (
    NoduleAttachment,
    NoduleKind,
    NoduleMix,
    NoduleSpec,
    chest_ct,
)
from dicomnode.synthetic._ct_shapes import CENTRAL_VESSEL_MM
from dicomnode.synthetic.common import axis_coordinates
from dicomnode.synthetic.randomize import draw_chest_ct, random_chest_ct

_SMALL = (64, 64, 32)


def _rescaled(ds: object) -> np.ndarray:
    pixels = ds.pixel_array.astype(np.int32)  # type: ignore[attr-defined]
    return pixels * int(ds.RescaleSlope) + int(ds.RescaleIntercept)  # type: ignore[attr-defined]


def test_unsigned_with_intercept_reads_as_the_same_hu_as_signed() -> None:
    signed = chest_ct(5, shape=_SMALL, pixel_convention="signed", hu_offset=-15.0)
    unsigned = chest_ct(5, shape=_SMALL, pixel_convention="unsigned", hu_offset=-15.0)
    assert signed.datasets[0].PixelRepresentation == 1
    assert float(signed.datasets[0].RescaleIntercept) == 0.0
    assert unsigned.datasets[0].PixelRepresentation == 0
    assert float(unsigned.datasets[0].RescaleIntercept) == -1024.0
    assert unsigned.datasets[0].pixel_array.min() >= 0
    for a, b in zip(signed.datasets, unsigned.datasets, strict=True):
        assert np.array_equal(_rescaled(a), _rescaled(b))


def test_hu_offset_shifts_the_image() -> None:
    plain = chest_ct(5, shape=_SMALL, noise_hu=0.0)
    shifted = chest_ct(5, shape=_SMALL, noise_hu=0.0, hu_offset=18.0)
    body = (plain.volume > -900) & (plain.volume < 2000)
    assert abs(float((shifted.volume - plain.volume.astype(np.int32))[body].mean()) - 18.0) < 1.0


def test_padding_outside_the_scan_circle() -> None:
    ct = chest_ct(5, shape=_SMALL, padding=True, pixel_convention="signed")
    ds = ct.datasets[0]
    assert ds.PixelPaddingValue == -2000
    assert ds.pixel_array[0, 0] == -2000 and ds.pixel_array[32, 32] != -2000


def _nodule_voxels(ct: object, index: int, fraction: float) -> np.ndarray:
    nodule = ct.nodules[index]  # type: ignore[attr-defined]
    x, y, z = axis_coordinates(ct.geometry)  # type: ignore[attr-defined]
    cx, cy, cz = nodule.centre_mm
    distance = np.sqrt(
        (x[None, None, :] - cx) ** 2 + (y[None, :, None] - cy) ** 2 + (z[:, None, None] - cz) ** 2
    )
    return distance < fraction * nodule.diameter_mm / 2


def test_ground_glass_nodule_mean_hu_in_ggo_range() -> None:
    mix = NoduleMix(ground_glass=1.0)
    ct = chest_ct(8, shape=(96, 96, 48), n_nodules=2, diameter_range_mm=(12, 20), mix=mix)
    for index, nodule in enumerate(ct.nodules):
        assert nodule.kind is NoduleKind.GROUND_GLASS and nodule.solid_diameter_mm == 0.0
        mean = float(ct.volume[_nodule_voxels(ct, index, 0.8)].mean())
        assert -750.0 <= mean <= -300.0, mean


def test_juxtapleural_nodule_touches_the_chest_wall() -> None:
    mix = NoduleMix(juxtapleural=1.0)
    ct = chest_ct(3, shape=(96, 96, 48), n_nodules=1, diameter_range_mm=(10, 14), mix=mix)
    nodule = ct.nodules[0]
    assert nodule.attachment is NoduleAttachment.PLEURA
    labels, _ = ndimage.label(ct.volume > -300)
    i, j, k = nodule.voxel
    component = labels == labels[k, j, i]
    sphere = _nodule_voxels(ct, 0, 1.0)
    # connected to the body: the soft-tissue component is far larger than the nodule itself
    assert component.sum() > 20 * sphere.sum()
    free = chest_ct(
        3, shape=(96, 96, 48), nodules=[NoduleSpec((-70.0, -5.0, -150.0), 12.0)], noise_hu=5.0
    )
    labels, _ = ndimage.label(free.volume > -300)
    i, j, k = free.nodules[0].voxel
    assert (labels == labels[k, j, i]).sum() < 2 * _nodule_voxels(free, 0, 1.2).sum()


def _z_roughness(ct: object) -> float:
    """Energy of the slice-to-slice differences (total variation would not change with blur)."""
    volume = ct.volume.astype(np.float32)  # type: ignore[attr-defined]
    return float(np.square(np.diff(volume, axis=0)).mean())


def test_thick_slices_are_smoother_along_z() -> None:
    common = dict(shape=(48, 48, 40), slice_spacing_mm=2.5, noise_hu=0.0, n_nodules=2)
    thin = chest_ct(6, slice_thickness_mm=1.0, partial_volume=True, **common)  # type: ignore[arg-type]
    thick = chest_ct(6, slice_thickness_mm=5.0, partial_volume=True, **common)  # type: ignore[arg-type]
    assert float(thick.datasets[0].SliceThickness) == 5.0
    assert _z_roughness(thick) < 0.8 * _z_roughness(thin)


def test_vessels_inside_the_lungs() -> None:
    plain = chest_ct(9, shape=_SMALL, n_nodules=0)
    vessels = chest_ct(9, shape=_SMALL, n_nodules=0, vessels=True)
    assert vessels.vessels and not plain.vessels
    lungs = ndimage.binary_erosion(plain.volume < -600, iterations=1)
    dense = (vessels.volume > -300) & lungs
    assert dense.sum() > 0.005 * lungs.sum()
    # only inside the lungs: outside them the two images are the same
    assert np.array_equal(vessels.volume[plain.volume > -400], plain.volume[plain.volume > -400])


def test_random_chest_ct_is_deterministic_and_varies_across_seeds() -> None:
    assert draw_chest_ct(100) == draw_chest_ct(100)
    domains = [draw_chest_ct(seed) for seed in range(100, 140)]
    for name in ("kernel", "pixel_convention", "slice_thickness_mm", "shape", "padding"):
        assert len({getattr(domain, name) for domain in domains}) > 1, name
    small = [d for d in domains if d.shape[0] * d.shape[2] < 256 * 60][:1] or domains[:1]
    seed = 100 + domains.index(small[0])
    first, second = random_chest_ct(seed), random_chest_ct(seed)
    assert np.array_equal(first.volume, second.volume)
    assert first.nodules == second.nodules


def _distance_to_axis(point: np.ndarray, start: np.ndarray, end: np.ndarray) -> float:
    axis = end - start
    t = float(np.clip((point - start) @ axis / (axis @ axis), 0.0, 1.0))
    return float(np.linalg.norm(point - (start + t * axis)))


def test_juxtavascular_nodule_touches_a_vessel() -> None:
    mix = NoduleMix(juxtavascular=1.0)
    ct = chest_ct(4, shape=(96, 96, 48), n_nodules=1, vessels=True, mix=mix)
    nodule = ct.nodules[0]
    assert nodule.attachment is NoduleAttachment.VESSEL
    centre = np.asarray(nodule.centre_mm)
    gaps = [
        _distance_to_axis(centre, np.asarray(t.start), np.asarray(t.end))
        - nodule.diameter_mm / 2
        - t.end_radius_mm
        for t in ct.vessels
    ]
    assert min(gaps) < 0.0


def test_spiculated_nodule_reaches_beyond_its_diameter() -> None:
    spec = NoduleSpec((-70.0, -5.0, -150.0), 14.0, margin="spiculated")
    smooth = chest_ct(2, shape=(96, 96, 48), nodules=[NoduleSpec((-70.0, -5.0, -150.0), 14.0)])
    spiculated = chest_ct(2, shape=(96, 96, 48), nodules=[spec])
    shell = _nodule_voxels(smooth, 0, 1.6) & ~_nodule_voxels(smooth, 0, 1.15)
    # same seed, same noise: the difference is what the spicules add outside the smooth ball
    added = spiculated.volume.astype(np.int32) - smooth.volume
    assert (added[shell] > 60).sum() >= 5


def _hu_at(ct: object, point: tuple[float, float, float]) -> float | None:
    """HU of the voxel nearest ``point`` (patient mm), None outside the volume."""
    i, j, k = (round(v) for v in ct.geometry.patient_to_index(*point))  # type: ignore[attr-defined]
    volume = ct.volume  # type: ignore[attr-defined]
    if not all(0 <= a < n for a, n in zip((k, j, i), volume.shape, strict=True)):
        return None
    return float(volume[k, j, i])


def test_airways_are_air_tubes_beside_the_arteries() -> None:
    plain = chest_ct(9, shape=(160, 160, 24), n_nodules=0, vessels=True)
    ct = chest_ct(9, shape=(160, 160, 24), n_nodules=0, vessels=True, airways=True)
    assert ct.airways and not plain.airways
    trachea = ct.airways[0].lumen
    middle = tuple((np.asarray(trachea.start) + np.asarray(trachea.end)) / 2)
    below_apex = [
        (ct_hu, plain_hu)
        for point in (middle, trachea.end)
        if (ct_hu := _hu_at(ct, point)) is not None and (plain_hu := _hu_at(plain, point))
    ]
    assert below_apex and all(hu < -900 < plain_hu for hu, plain_hu in below_apex)
    # the middles of the largest intrapulmonary bronchi in the lungs: air, darker than the lung
    bronchi = sorted((a for a in ct.airways if a.in_lung), key=lambda a: -a.lumen.end_radius_mm)
    middles = [tuple((np.asarray(a.lumen.start) + np.asarray(a.lumen.end)) / 2) for a in bronchi]
    pairs = [
        (hu, base)
        for point in middles[:8]
        if (hu := _hu_at(ct, point)) is not None
        and (base := _hu_at(plain, point)) is not None
        and -950 < base < -700
    ]
    assert len(pairs) >= 3
    assert np.median([hu for hu, _ in pairs]) < np.median([base for _, base in pairs]) - 60


def test_hilar_trunks_are_the_largest_vessels_and_bright_in_the_lungs() -> None:
    ct = chest_ct(9, shape=(160, 160, 24), n_nodules=0, vessels=True)
    trunks = [t for t in ct.vessels if t.start_radius_mm >= CENTRAL_VESSEL_MM]
    lobar = [t for t in ct.vessels if t.start_radius_mm < CENTRAL_VESSEL_MM]
    # an artery into each hilum and a vein out of each lower lobe, wider than any branch
    assert sum(t.end[0] < 0 for t in trunks) >= 2 and sum(t.end[0] > 0 for t in trunks) >= 2
    assert min(max(t.start_radius_mm, t.end_radius_mm) for t in trunks) > max(
        t.start_radius_mm for t in lobar
    )
    # where a trunk runs through the lung it is painted as blood, not left as lung
    along = [
        hu
        for t in trunks
        for f in (0.25, 0.5, 0.75)
        if (hu := _hu_at(ct, tuple(np.asarray(t.start) + f * np.subtract(t.end, t.start))))
        is not None
    ]
    assert along and max(along) > -200


def test_log_sizes_draw_small_nodules_as_often_as_large_ones_on_a_log_scale() -> None:
    """Log-uniform over 4-26 mm: about half the nodules under the geometric mean (10.2 mm),
    where a draw uniform in mm puts about a quarter there (a little more: large ones fit
    less often)."""

    def diameters(mix: NoduleMix) -> np.ndarray:
        cts = [
            chest_ct(seed, shape=(128, 128, 48), n_nodules=4, diameter_range_mm=(4, 26), mix=mix)
            for seed in range(10)
        ]
        return np.asarray([n.diameter_mm for ct in cts for n in ct.nodules])

    logged = diameters(NoduleMix(log_sizes=True))
    linear = diameters(NoduleMix())
    assert logged.min() >= 4.0 and logged.max() <= 26.0
    assert np.mean(logged < 10.2) >= 0.45 > 0.35 >= np.mean(linear < 10.2)


def test_juxtavascular_nodules_sit_on_large_vessels_in_proportion_to_their_radius() -> None:
    """Of a 6 mm and a 1.5 mm vessel, the large one is drawn about 4 times in 5 (by radius),
    not half the time (by count)."""
    from dicomnode.synthetic._ct_nodules import _on_vessel, _Scene
    from dicomnode.synthetic._ct_shapes import Tube

    large = Tube((0.0, -100.0, 0.0), (0.0, 100.0, 0.0), 6.0, 6.0)
    small = Tube((100.0, -100.0, 0.0), (100.0, 100.0, 0.0), 1.5, 1.5)
    scene = _Scene(phantom=None, z_low=-50.0, z_high=50.0, vessels=(large, small))  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    centres = [_on_vessel(rng, scene, 3.0) for _ in range(400)]
    on_large = np.mean([abs(c[0]) < 50.0 for c in centres if c is not None])
    assert 0.72 <= on_large <= 0.88


def test_a_mid_lung_slice_crosses_many_vessels() -> None:
    """The vessel trees reach the periphery: a mid-lung slice shows 10 or more separate vessel
    cross-sections inside the lungs (trees of 5 generations showed 4-6)."""
    for seed in range(3):
        ct = chest_ct(seed, shape=(256, 256, 60), vessels=True)
        hu = ct.volume[ct.volume.shape[0] // 2]
        air, _ = ndimage.label(hu < -500)
        outside = np.unique(np.concatenate([air[0], air[-1], air[:, 0], air[:, -1]]))
        lungs = ndimage.binary_fill_holes((air > 0) & ~np.isin(air, outside))
        assert ndimage.label((hu > -300) & lungs)[1] >= 10
