"""Chest CT phantoms: torso, ribcage, two implicit-surface lungs with vessel and airway trees,
and lung nodules of five kinds with distractors outside the lungs.

The anatomy is drawn in the DICOM patient coordinate system (LPS, mm): x towards the patient's
left, y posterior, z towards the head. Every truth position is in that system.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import numpy as np
from pydicom.dataset import Dataset
from scipy import ndimage

from dicomnode.phantoms._dicom import base_dataset, phantom_uid, set_pixels
from dicomnode.phantoms._fields import FourierField, segment_distance

__all__ = ["CT_IMAGE_STORAGE", "ChestCase", "Distractor", "NoduleKind", "PhantomNodule", "chest_ct"]

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"


class NoduleKind(StrEnum):
    """Appearance of a phantom nodule."""

    SOLID = "solid"
    PART_SOLID = "part_solid"
    GROUND_GLASS = "ground_glass"
    LOBULATED = "lobulated"
    SPICULATED = "spiculated"


@dataclass(frozen=True)
class PhantomNodule:
    """A nodule's truth: centre in patient mm, nominal diameter, kind and where it sits."""

    centre_mm: tuple[float, float, float]
    diameter_mm: float
    kind: NoduleKind
    site: str  # "isolated", "juxtapleural" or "juxtavascular"


@dataclass(frozen=True)
class Distractor:
    """Something nodule- or lesion-like outside the target organ."""

    kind: str
    centre_mm: tuple[float, ...]


@dataclass(frozen=True)
class ChestCase:
    """A chest CT phantom: its datasets (in file order) and its truth."""

    seed: int
    datasets: list[Dataset]
    nodules: tuple[PhantomNodule, ...]
    distractors: tuple[Distractor, ...]
    pixel_spacing_mm: float
    slice_spacing_mm: float
    slice_thickness_mm: float


@dataclass(frozen=True)
class _Torso:
    a: float  # half-width of the body (x)
    b: float  # half-depth of the body (y)
    fat: float
    muscle: float
    z_top: float  # lung apex
    z_bot: float  # lowest lung point (costophrenic recess)
    dome: tuple[float, float]  # dome height above z_bot, right and left
    breasts: bool

    @property
    def ai(self) -> float:
        return self.a - self.fat - self.muscle - 9.0

    @property
    def bi(self) -> float:
        return self.b - self.fat - self.muscle - 9.0


def _lung_field(t: _Torso, wobble: FourierField, x, y, z, side: int) -> np.ndarray:
    """< 0 inside the lung of ``side`` (-1 right, +1 left); implicit and smooth."""
    cx, cy = side * t.ai * 0.5, t.bi * 0.05
    lx, ly = t.ai * 0.46, t.bi * 0.9
    q = ((x - cx) / lx) ** 2 + ((y - cy) / ly) ** 2
    apex = np.clip((t.z_top - z) / 70.0, 1e-3, 1.0)
    dome_top = t.z_bot + t.dome[0 if side < 0 else 1]
    dome = dome_top - (dome_top - t.z_bot) * np.clip(q, 0, 1) ** 0.7
    medial = (28.0 - side * x) / 10.0  # the mediastinum between the lungs
    spine = 1.0 - (((x) / 32.0) ** 2 + ((y - t.bi * 0.8) / 30.0) ** 2)
    f = q / apex - 1.0 + 0.06 * wobble(x, y, z)
    f = np.maximum(f, (dome - z) / 20.0)
    f = np.maximum(f, medial)
    return np.maximum(f, spine)


def _heart(t: _Torso, x, y, z) -> np.ndarray:
    cz = t.z_bot + max(t.dome) + 25.0
    return (
        ((x - 22.0) / (t.ai * 0.48)) ** 2
        + ((y + t.bi * 0.25) / (t.bi * 0.55)) ** 2
        + ((z - cz) / 55.0) ** 2
    ) < 1.0


@dataclass(frozen=True)
class _Segment:
    a: np.ndarray
    b: np.ndarray
    r: float
    generation: int


def _tree(t: _Torso, rng, wobble, side: int) -> list[_Segment]:
    """A branching, tapering vessel tree from the hilum of one lung, each branch drawn towards
    a random point of the lung (so the tree fills the lung)."""
    box = rng.uniform(
        [side * 20.0 if side > 0 else -t.ai, -t.bi, t.z_bot],
        [t.ai if side > 0 else -20.0, t.bi, t.z_top],
        size=(3000, 3),
    )
    targets = box[_lung_field(t, wobble, box[:, 0], box[:, 1], box[:, 2], side) < -0.05]
    start = np.array([side * 32.0, t.bi * 0.05, (t.z_top + t.z_bot) / 2 + 10.0])
    out: list[_Segment] = []
    stack = [(start, np.array([side * 1.0, 0.0, 0.0]), 30.0, 5.5, 0)]
    while stack:
        p, d, length, r, gen = stack.pop()
        q = p + d / np.linalg.norm(d) * length
        out.append(_Segment(p, q, r, gen))
        if r < 0.8 or gen >= 7 or not len(targets):
            continue
        for _ in range(2):
            target = targets[int(rng.integers(len(targets)))]
            towards = target - q
            dist = float(np.linalg.norm(towards))
            if dist < 5.0:
                continue
            child_len = float(np.clip(dist * rng.uniform(0.4, 0.6), 4.0, 50.0))
            stack.append((q, towards / dist, child_len, r * rng.uniform(0.68, 0.8), gen + 1))
    return out


class _Grid:
    def __init__(self, xs: np.ndarray, ys: np.ndarray, zs: np.ndarray) -> None:
        self.xs, self.ys, self.zs = xs, ys, zs
        self.z = zs[:, None, None]
        self.y = ys[None, :, None]
        self.x = xs[None, None, :]

    def box(self, lo: np.ndarray, hi: np.ndarray):
        """Index slices and the patient points of the voxels within [lo, hi]."""
        sl = []
        for axis, v in ((self.zs, 2), (self.ys, 1), (self.xs, 0)):
            step = axis[1] - axis[0] if len(axis) > 1 else 1.0
            i0 = int(np.clip(np.floor((lo[v] - axis[0]) / step), 0, len(axis)))
            i1 = int(np.clip(np.ceil((hi[v] - axis[0]) / step) + 1, 0, len(axis)))
            sl.append(slice(i0, i1))
        zz, yy, xx = np.meshgrid(self.zs[sl[0]], self.ys[sl[1]], self.xs[sl[2]], indexing="ij")
        return tuple(sl), np.stack([xx, yy, zz], axis=-1).astype(np.float32)


def _paint_tube(grid: _Grid, field: np.ndarray, seg: _Segment, radius: float, pad: float) -> None:
    lo = np.minimum(seg.a, seg.b) - radius - pad
    hi = np.maximum(seg.a, seg.b) + radius + pad
    sl, pts = grid.box(lo, hi)
    if pts.size == 0:
        return
    d, t = segment_distance(pts, seg.a.astype(np.float32), seg.b.astype(np.float32))
    r = radius * (1.0 - 0.25 * t)  # taper along the segment
    occ = np.clip((r - d) / pad + 0.5, 0, 1)
    field[sl] = np.maximum(field[sl], occ)


def _nodule_occupancy(
    pts: np.ndarray, centre: np.ndarray, r: float, kind: NoduleKind, rng, soft: float
):
    """Solid and ground-glass occupancies (0-1) of one nodule at ``pts``."""
    d = np.linalg.norm(pts - centre, axis=-1)
    if kind is NoduleKind.LOBULATED:
        d_min = d / r
        for _ in range(int(rng.integers(3, 6))):
            off = rng.normal(size=3)
            off = off / np.linalg.norm(off) * r * rng.uniform(0.3, 0.5)
            rr = r * rng.uniform(0.5, 0.7)
            d_min = np.minimum(d_min, np.linalg.norm(pts - centre - off, axis=-1) / rr)
        solid = np.clip((1 - d_min) * r / soft + 0.5, 0, 1)
        return solid, np.zeros_like(solid)
    if kind is NoduleKind.SPICULATED:
        core = r * 0.8
        solid = np.clip((core - d) / soft + 0.5, 0, 1)
        for _ in range(int(rng.integers(6, 13))):
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            tip = centre + direction * r * rng.uniform(1.4, 2.1)
            ds, t = segment_distance(pts, centre.astype(np.float32), tip.astype(np.float32))
            width = rng.uniform(0.5, 0.9) * (1.0 - 0.8 * t)
            solid = np.maximum(solid, np.clip((width - ds) / soft + 0.5, 0, 1))
        return solid, np.zeros_like(solid)
    whole = np.clip((r - d) / soft + 0.5, 0, 1)
    if kind is NoduleKind.GROUND_GLASS:
        return np.zeros_like(whole), whole
    if kind is NoduleKind.PART_SOLID:
        core = r * rng.uniform(0.35, 0.6)
        return np.clip((core - d) / soft + 0.5, 0, 1), whole
    return whole, np.zeros_like(whole)


def _pixel_spacing(rng, matrix: int) -> float:
    low = max(0.55, 240.0 / matrix)
    return float(rng.uniform(low, max(low, 0.9)))


def chest_ct(
    seed: int,
    *,
    matrix: int = 320,
    slices: int = 120,
    n_nodules: tuple[int, int] = (2, 4),
    small_fraction: float = 0.15,
) -> ChestCase:
    """A chest CT phantom series with its nodules' truth.

    Parameters
    ----------
    seed : int
        Everything (anatomy, nodules, acquisition, UIDs) follows from it.
    matrix : int
        Rows = columns of each image.
    slices : int
        About how many slices (the spacing is chosen so the lungs are covered; 0.8-3 mm).
    n_nodules : tuple of 2 int
        Range (inclusive) of the number of nodules.
    small_fraction : float
        Probability that a nodule is 3-5 mm (else 5-25 mm).
    """
    if matrix < 32 or slices < 8:
        raise ValueError(f"matrix must be >= 32 and slices >= 8, got {matrix}, {slices}")
    rng = np.random.default_rng([seed, 1])
    spacing = _pixel_spacing(rng, matrix)
    fov = spacing * matrix
    a = float(rng.uniform(min(125.0, fov / 2 - 12), min(175.0, fov / 2 - 4)))
    t = _Torso(
        a=a,
        b=a * float(rng.uniform(0.62, 0.78)),
        fat=float(rng.uniform(4.0, 22.0)) * a / 150,
        muscle=float(rng.uniform(7.0, 13.0)) * a / 150,
        z_top=float(rng.uniform(70.0, 95.0)),
        z_bot=-float(rng.uniform(120.0, 165.0)),
        dome=(float(rng.uniform(45.0, 70.0)), float(rng.uniform(30.0, 55.0))),
        breasts=bool(rng.random() < 0.4),
    )
    coverage = t.z_top - t.z_bot + 24.0
    dz = float(np.clip(coverage / (slices * rng.uniform(0.85, 1.15)), 0.8, 3.0))
    nz = int(math.ceil(coverage / dz))
    thickness = dz * float(rng.choice([1.0, 1.0, 1.25, 1.5]))
    centre_y = float(rng.uniform(-10, 15))
    xs = (np.arange(matrix) - (matrix - 1) / 2) * spacing + float(rng.uniform(-5, 5))
    ys = (np.arange(matrix) - (matrix - 1) / 2) * spacing + centre_y
    zs = t.z_bot - 12.0 + np.arange(nz) * dz
    g = _Grid(xs.astype(np.float32), ys.astype(np.float32), zs.astype(np.float32))
    wobble = FourierField(rng, 3, (60.0, 160.0), 10)
    hu, lungs, segments, distractors = _anatomy(t, g, rng, wobble)
    nodules = _nodules(g, hu, lungs, segments, rng, n_nodules, small_fraction)
    distractors += _distractor_blob(t, g, hu, rng)
    image = _acquire(hu, rng, spacing, dz, thickness)
    datasets = _datasets(seed, rng, image, g, spacing, dz, thickness)
    return ChestCase(
        seed=seed,
        datasets=datasets,
        nodules=tuple(nodules),
        distractors=tuple(distractors),
        pixel_spacing_mm=spacing,
        slice_spacing_mm=dz,
        slice_thickness_mm=thickness,
    )


def _anatomy(t: _Torso, g: _Grid, rng, wobble):
    x, y, z = g.x, g.y, g.z
    outline = FourierField(rng, 2, (80.0, 200.0), 6)
    # body: a superellipse, flatter at the back, with a gentle outline wobble
    p = float(rng.uniform(2.1, 2.6))
    ru = (np.abs(x / t.a) ** p + np.abs(y / (t.b * np.where(y > 0, 0.95, 1.0))) ** p) ** (1 / p)
    ru = ru + 0.02 * outline(x, z)
    hu = np.full(np.broadcast_shapes(x.shape, y.shape, z.shape), -1000.0, np.float32)
    depth = (1.0 - ru) * (t.a + t.b) / 2  # ~ mm below the skin
    body = depth > 0
    hu[body] = -100.0
    distractors: list[Distractor] = []
    if t.breasts:
        for side in (-1, 1):
            c = np.array([side * t.a * 0.45, -t.b + 5, float(rng.uniform(-20, 20))])
            rad = float(rng.uniform(35, 60))
            e = ((x - c[0]) / rad) ** 2 + ((y - c[1]) / (rad * 0.7)) ** 2 + ((z - c[2]) / rad) ** 2
            breast = (e < 1) & (y < 0)
            gland = (e < 0.45) & (FourierField(rng, 3, (6.0, 14.0), 8)(x, y, z) > 0.2)
            hu[breast & ~body] = -105.0
            hu[breast & gland & ~body] = 25.0
            distractors.append(Distractor("breast", tuple(float(v) for v in c)))
    muscle = depth > t.fat
    hu[muscle] = 48.0
    ribs_zone = (depth > t.fat + t.muscle) & (depth < t.fat + t.muscle + 9.0)
    pitch = float(rng.uniform(24.0, 30.0))
    angle = np.abs(np.degrees(np.arctan2(x, y)))  # 0 posterior, 180 anterior
    phase = np.mod(z + 0.25 * angle, pitch)
    rib = ribs_zone & (phase < 9.0) & (angle < 150) & (z < t.z_top + 15) & (z > t.z_bot - 5)
    hu[rib] = 250.0
    hu[rib & ((phase < 1.6) | (phase > 7.4))] = 900.0
    cavity = depth > t.fat + t.muscle + 9.0
    hu[cavity] = 40.0
    # spine and sternum
    vert = ((x / 18.0) ** 2 + ((y - t.bi * 0.95) / 16.0) ** 2) < 1
    canal = ((x / 7.0) ** 2 + ((y - t.bi * 0.95 - 24) / 7.0) ** 2) < 1
    hu[np.broadcast_to(vert, hu.shape)] = 260.0
    rim = (x / 18.0) ** 2 + ((y - t.bi * 0.95) / 16.0) ** 2
    hu[np.broadcast_to((rim > 0.8) & (rim < 1), hu.shape)] = 850.0
    hu[np.broadcast_to(canal, hu.shape)] = 20.0
    sternum = (((x / 14.0) ** 2 + ((y + t.bi + 3) / 5.0) ** 2) < 1) & (z > t.z_bot + 40)
    hu[sternum] = 500.0
    hu[_heart(t, x, y, z) & cavity] = 38.0
    aorta = (((x - 18) / 11.0) ** 2 + ((y - t.bi * 0.6) / 11.0) ** 2) < 1
    hu[np.broadcast_to(aorta, hu.shape) & cavity] = 42.0
    # below the diaphragm: liver and abdomen
    lungs = np.zeros(hu.shape, bool)
    for side in (-1, 1):
        lungs |= _lung_field(t, wobble, x, y, z, side) < 0
    lungs &= cavity & ~_heart(t, x, y, z)
    gradient = 40.0 * np.clip(y / max(t.bi, 1.0), -1, 1)  # dependent lung is denser
    lung_hu = np.broadcast_to(-865.0 + gradient, hu.shape)
    hu[lungs] = lung_hu[lungs]
    segments = _trees(t, g, hu, lungs, rng, wobble)
    # the CT table under the back
    top = t.b + float(rng.uniform(4, 15)) + 0.0006 * x**2
    table = (y > top) & (y < top + 14) & (np.abs(x) < t.a * 1.3)
    skin = (y > top) & ((y < top + 2) | (y > top + 12))
    hu[np.broadcast_to(table, hu.shape)] = -900.0
    hu[np.broadcast_to(table & skin, hu.shape)] = 150.0
    distractors.append(Distractor("table", (0.0, float(t.b + 10), float(np.mean(g.zs)))))
    return hu, lungs, segments, distractors


def _trees(t: _Torso, g: _Grid, hu: np.ndarray, lungs: np.ndarray, rng, wobble) -> list[_Segment]:
    """Paint both lungs' vessel trees, the bronchi beside them and the trachea; the segments."""
    vessels = np.zeros(hu.shape, np.float32)
    airway_wall = np.zeros(hu.shape, np.float32)
    airway_lumen = np.zeros(hu.shape, np.float32)
    pad = float(g.xs[1] - g.xs[0])
    segments = []
    for side in (-1, 1):
        tree = _tree(t, rng, wobble, side)
        segments += tree
        for seg in tree:
            _paint_tube(g, vessels, seg, seg.r, pad)
            if seg.generation <= 3:  # a bronchus beside the artery
                off = np.cross(seg.b - seg.a, [0, 0, 1.0])
                off = off / max(np.linalg.norm(off), 1e-6) * (seg.r * 1.6 + 1.0)
                bro = _Segment(seg.a + off, seg.b + off, seg.r * 0.9, seg.generation)
                _paint_tube(g, airway_wall, bro, bro.r + 1.2, pad)
                _paint_tube(g, airway_lumen, bro, bro.r, pad)
    trachea = _Segment(
        np.array([0.0, t.bi * 0.2, (t.z_top + t.z_bot) / 2 + 15]),
        np.array([0.0, t.bi * 0.1, t.z_top + 30]),
        8.0,
        0,
    )
    _paint_tube(g, airway_wall, trachea, 10.0, pad)
    _paint_tube(g, airway_lumen, trachea, 8.0, pad)
    inside = lungs
    v = vessels * inside
    hu[...] = hu * (1 - v) + 40.0 * v
    hu[...] = hu * (1 - airway_wall) + (-50.0) * airway_wall
    hu[...] = hu * (1 - airway_lumen) + (-1000.0) * airway_lumen
    return segments


def _nodules(g, hu, lungs, segments, rng, n_nodules, small_fraction) -> list[PhantomNodule]:
    """Place and paint the nodules: isolated, on the chest wall, or beside a vessel."""
    step = float(g.xs[1] - g.xs[0])
    dz = float(g.zs[1] - g.zs[0])
    inner = ndimage.distance_transform_edt(lungs[:, ::2, ::2], sampling=(dz, 2 * step, 2 * step))
    count = int(rng.integers(n_nodules[0], n_nodules[1] + 1))
    out: list[PhantomNodule] = []
    kinds = list(NoduleKind)
    for _ in range(count):
        diameter = (
            float(rng.uniform(3.0, 5.0))
            if rng.random() < small_fraction
            else float(np.exp(rng.uniform(np.log(5.0), np.log(25.0))))
        )
        r = diameter / 2
        kind = kinds[int(rng.integers(len(kinds)))]
        site = str(rng.choice(["isolated", "isolated", "juxtapleural", "juxtavascular"]))
        centre = None
        for _attempt in range(40):
            if site == "juxtavascular":
                big = [s for s in segments if 1.2 < s.r < 4.0]
                seg = big[int(rng.integers(len(big)))]
                p = seg.a + (seg.b - seg.a) * rng.uniform(0.2, 0.8)
                off = np.cross(seg.b - seg.a, rng.normal(size=3))
                cand = p + off / np.linalg.norm(off) * (r + seg.r * 0.6)
                lo, hi = r * 0.9, 1e9
            else:
                lo, hi = (r + 3.0, 1e9) if site == "isolated" else (r * 0.4, r * 0.8)
                zone = np.argwhere((inner >= lo) & (inner <= hi))
                if not len(zone):
                    break
                k, j, i = zone[int(rng.integers(len(zone)))]
                cand = np.array([g.xs[2 * i], g.ys[2 * j], g.zs[k]], float)
            k = int(round((cand[2] - g.zs[0]) / dz))
            j = int(round((cand[1] - g.ys[0]) / (2 * step)))
            i = int(round((cand[0] - g.xs[0]) / (2 * step)))
            if not (
                0 <= k < inner.shape[0] and 0 <= j < inner.shape[1] and 0 <= i < inner.shape[2]
            ):
                continue
            if not lo <= inner[k, j, i] <= hi:
                continue
            if (
                site == "juxtapleural" and abs(cand[0]) < 40
            ):  # on the chest wall, not the mediastinum
                continue
            if all(np.linalg.norm(cand - n.centre_mm) > r + n.diameter_mm / 2 + 8 for n in out):
                centre = cand
                break
        if centre is None:
            continue
        _paint_nodule(g, hu, centre, r, kind, rng, step)
        out.append(PhantomNodule(tuple(float(v) for v in centre), diameter, kind, site))  # type: ignore[arg-type]
    return out


def _paint_nodule(g: _Grid, hu: np.ndarray, centre: np.ndarray, r: float, kind, rng, step) -> None:
    sl, pts = g.box(centre - 2.3 * r - 2, centre + 2.3 * r + 2)
    solid, glass = _nodule_occupancy(pts, centre, r, kind, rng, step)
    solid_hu = float(rng.uniform(10.0, 60.0))
    glass_hu = float(rng.uniform(-680.0, -450.0))
    region = hu[sl]
    glass = glass * (region < glass_hu)
    region = region * (1 - glass) + glass_hu * glass
    region = region * (1 - solid) + solid_hu * solid
    hu[sl] = region


def _distractor_blob(t: _Torso, g: _Grid, hu: np.ndarray, rng) -> list[Distractor]:
    angle = float(rng.uniform(-2.6, -0.5)) * float(rng.choice([-1, 1]))  # antero-lateral
    r = float(rng.uniform(4.0, 9.0))
    rho = 1.0 - (t.fat * 0.5 + 1.0) / ((t.a + t.b) / 2)
    centre = np.array(
        [
            t.a * rho * math.sin(angle),
            -t.b * rho * abs(math.cos(angle)) * 0.9,
            float(rng.uniform(t.z_bot + 40, t.z_top - 20)),
        ]
    )
    sl, pts = g.box(centre - r - 2, centre + r + 2)
    occ = np.clip(
        (r - np.linalg.norm(pts - centre, axis=-1)) / float(g.xs[1] - g.xs[0]) + 0.5, 0, 1
    )
    hu[sl] = hu[sl] * (1 - occ) + 45.0 * occ
    return [Distractor("chest_wall_blob", tuple(float(v) for v in centre))]


def _acquire(hu: np.ndarray, rng, spacing: float, dz: float, thickness: float) -> np.ndarray:
    sharp = bool(rng.random() < 0.5)
    sigma_z = max(0.0, 0.42 * thickness / dz - 0.2)
    image = ndimage.gaussian_filter(hu, (sigma_z, 0.6, 0.6))
    noise = rng.standard_normal(hu.shape, dtype=np.float32)
    if sharp:
        noise = noise - 0.8 * ndimage.gaussian_filter(noise, (0, 1.0, 1.0))
    else:
        noise = ndimage.gaussian_filter(noise, (0, 1.1, 1.1))
    noise *= float(rng.uniform(8.0, 28.0)) / max(float(noise.std()), 1e-6)
    return image + noise


def _datasets(seed, rng, image, g: _Grid, spacing, dz, thickness) -> list[Dataset]:
    signed = bool(rng.random() < 0.5)
    offset = float(rng.choice([0.0, 0.0, rng.uniform(-6, 6)]))
    values = np.clip(np.rint(image + offset), -1024, 3071)
    reverse = bool(rng.random() < 0.5)
    order = list(range(len(g.zs)))[::-1] if reverse else list(range(len(g.zs)))
    kernel = "PHANTOM_SHARP" if rng.random() < 0.5 else "PHANTOM_SOFT"
    out = []
    for n, k in enumerate(order, start=1):
        ds = base_dataset(
            kind="chest",
            seed=seed,
            sop_class_uid=CT_IMAGE_STORAGE,
            modality="CT",
            instance=n,
            series_number=3,
            series_description="Phantom chest axial",
        )
        ds.FrameOfReferenceUID = phantom_uid("chest", seed, "frame-of-reference")
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.BodyPartExamined = "CHEST"
        ds.PatientPosition = "FFS"
        ds.AcquisitionNumber = 1
        ds.KVP = 120
        ds.ConvolutionKernel = kernel
        ds.SliceThickness = round(thickness, 3)
        ds.SpacingBetweenSlices = round(dz, 4)
        ds.PixelSpacing = [round(spacing, 6), round(spacing, 6)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [
            round(float(g.xs[0]), 4),
            round(float(g.ys[0]), 4),
            round(float(g.zs[k]), 4),
        ]
        ds.SliceLocation = round(float(g.zs[k]), 4)
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        if signed:
            ds.RescaleIntercept = 0
            set_pixels(ds, values[k].astype(np.int16), bits_stored=16, photometric="MONOCHROME2")
        else:
            ds.RescaleIntercept = -1024
            set_pixels(
                ds, (values[k] + 1024).astype(np.uint16), bits_stored=12, photometric="MONOCHROME2"
            )
        ds.WindowCenter = -600
        ds.WindowWidth = 1500
        out.append(ds)
    return out
