"""Brain FLAIR phantoms: an analytic head model (scalp, skull, CSF, folded cortex, white matter,
ventricles, orbits, skull base) with white-matter hyperintensities, imaged in any plane.

The model is a function of patient coordinates (LPS, mm), so the truth lesion mask can be drawn
on any grid: :func:`truth_mask_for` maps it onto the geometry a pipeline reports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.phantoms._dicom import base_dataset, phantom_uid, set_pixels
from dicomnode.phantoms._fields import FourierField, segment_distance
from dicomnode.phantoms.chest import Distractor
from dicomnode.results import VolumeGeometry

__all__ = ["MR_IMAGE_STORAGE", "BrainCase", "PhantomLesion", "brain_flair", "truth_mask_for"]

MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"

_WM, _GM, _CSF, _SCALP, _BONE, _BASE = 0.46, 0.58, 0.07, 0.9, 0.03, 0.25


@dataclass(frozen=True)
class PhantomLesion:
    """One white-matter hyperintensity: centre (patient mm), diameter, kind, contrast to WM."""

    centre_mm: tuple[float, float, float]
    diameter_mm: float
    kind: str  # periventricular, juxtacortical, confluent, deep
    contrast: float


@dataclass(frozen=True, eq=False)
class _HeadModel:
    axes: np.ndarray  # brain semi-axes (x, y, z)
    scalp: float
    skull: float
    csf: float
    cortex: float
    ventricles: tuple[tuple[np.ndarray, np.ndarray, float], ...]  # segments with radii
    blobs: tuple[
        tuple[np.ndarray, np.ndarray, np.ndarray, float], ...
    ]  # centre, R, semi-axes, gain
    scalp_blob: tuple[np.ndarray, float]
    folds: FourierField
    wobble: FourierField
    lesion_texture: FourierField
    bias: FourierField
    bias_amplitude: float

    def evaluate(self, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """FLAIR signal (before bias and noise) and lesion membership at points ``p`` (..., 3)."""
        x, y, z = p[..., 0], p[..., 1], p[..., 2]
        rho = np.sqrt(((p / self.axes) ** 2).sum(-1)) + 0.025 * self.wobble(x, y, z)
        d = (rho - 1.0) * float(self.axes.mean())  # mm outside the brain surface
        out = np.zeros(x.shape, np.float32)
        out[d <= self.skull + self.scalp] = _SCALP
        out[d <= self.skull] = _BONE
        out[(d <= self.skull * 0.6) & (d > self.skull * 0.3)] = 0.15  # diploe
        out[d <= 0] = _CSF
        base = z < -0.5 * self.axes[2] + 0.25 * np.maximum(-y, 0)  # skull base, higher in front
        brain = (d <= -self.csf) & ~base
        folds = self.folds(x, y, z)
        cortex = d > -(self.csf + self.cortex + 1.5 * (folds + 1))
        sulcus = cortex & (np.abs(folds) < 0.22) & (d > -(self.csf + self.cortex + 4))
        out[brain] = _WM
        out[brain & cortex] = _GM
        out[brain & sulcus] = _CSF
        out[(d <= 0) & base] = _BASE
        vent = np.zeros(x.shape, bool)
        for a, b, r in self.ventricles:
            dist, _ = segment_distance(p, a, b)
            vent |= dist < r
        parenchyma = brain & ~sulcus & ~vent
        out[vent] = _CSF
        self._orbits(p, out)
        lesion = np.zeros(x.shape, bool)
        gain = np.zeros(x.shape, np.float32)
        tex = self.lesion_texture(x, y, z)
        for centre, rot, semi, g in self.blobs:
            q = ((p - centre) @ rot) / semi
            inside = ((q**2).sum(-1) + 0.12 * tex < 1.0) & parenchyma
            lesion |= inside
            gain = np.where(inside, np.maximum(gain, g), gain)
        out = np.where(lesion, _WM * (1.0 + gain), out)
        c, r = self.scalp_blob
        blob = np.linalg.norm(p - c, axis=-1) < r
        out[blob] = 0.85
        return out.astype(np.float32), lesion

    def _orbits(self, p: np.ndarray, out: np.ndarray) -> None:
        for side in (-1, 1):
            centre = np.array(
                [side * 0.45 * self.axes[0], -self.axes[1] * 0.92, -0.42 * self.axes[2]]
            )
            dist = np.linalg.norm(p - centre, axis=-1)
            out[dist < 17.0] = 0.8  # orbital fat
            out[dist < 11.5] = 0.1  # globe


@dataclass(frozen=True)
class BrainCase:
    """A FLAIR phantom series and its truth.

    ``lesion_masks`` maps each image's SOP Instance UID to its lesion mask [row, column].
    """

    seed: int
    datasets: list[Dataset]
    lesions: tuple[PhantomLesion, ...]
    distractors: tuple[Distractor, ...]
    plane: str
    tilt_deg: float
    slice_thickness_mm: float
    lesion_masks: dict[str, np.ndarray] = field(repr=False)
    model: _HeadModel = field(repr=False)

    @property
    def lesion_volume_ml(self) -> float:
        """Truth lesion volume as sampled by the acquisition."""
        ds = self.datasets[0]
        voxel = (
            float(ds.PixelSpacing[0]) * float(ds.PixelSpacing[1]) * float(ds.SpacingBetweenSlices)
        )
        return sum(int(m.sum()) for m in self.lesion_masks.values()) * voxel / 1000.0


def _rotation(rng: np.random.Generator, degrees: float) -> np.ndarray:
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    a = math.radians(degrees)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * k @ k


def _model(
    rng: np.random.Generator, n_lesions: tuple[int, int]
) -> tuple[_HeadModel, list[PhantomLesion]]:
    scale = float(rng.uniform(0.88, 1.08))
    axes = np.array([70.0, 86.0, 66.0]) * scale * rng.uniform(0.95, 1.05, 3)
    vsize = float(rng.uniform(0.7, 1.4))  # ventricle enlargement
    ventricles = []
    for side in (-1, 1):
        path = [
            np.array(
                [
                    side * (9 + 3 * math.sin(math.pi * t)),
                    -28 + 52 * t,
                    14 + 9 * math.sin(math.pi * t) - 18 * max(t - 0.8, 0),
                ]
            )
            * scale
            for t in np.linspace(0, 1, 7)
        ]
        for k, (a, b) in enumerate(zip(path[:-1], path[1:], strict=True)):
            r = (3.0 + 3.0 * math.sin(math.pi * (k + 0.5) / 6)) * vsize
            ventricles.append((a, b, r))
    ventricles.append((np.array([0, -10.0, -4]) * scale, np.array([0, 8.0, 2]) * scale, 1.8))
    lesions: list[PhantomLesion] = []
    blobs = []
    for _ in range(int(rng.integers(n_lesions[0], n_lesions[1] + 1))):
        kind = str(
            rng.choice(["periventricular", "periventricular", "juxtacortical", "confluent", "deep"])
        )
        diameter = float(rng.uniform(3.0, 15.0))
        contrast = float(rng.choice([rng.uniform(0.12, 0.25), rng.uniform(0.3, 0.9)]))
        if kind in ("periventricular", "confluent"):
            a, b, r = ventricles[int(rng.integers(1, 5)) + (6 if rng.random() < 0.5 else 0)]
            on = a + (b - a) * rng.uniform(0.2, 0.8)
            out = np.array([np.sign(on[0]) * 1.0, rng.uniform(-0.3, 0.3), rng.uniform(0.2, 1.0)])
            out /= np.linalg.norm(out)
            centre = on + out * (r + diameter * 0.35)
        elif kind == "juxtacortical":
            direction = rng.normal(size=3) * np.array([1, 1, 0.5]) + np.array([0, 0, 0.4])
            direction /= np.linalg.norm(direction)
            depth = 1.0 - (3.0 + 6.5 + diameter * 0.4) / float(axes.mean())
            centre = direction * axes * depth
        else:
            centre = rng.uniform([-35, -45, 0], [35, 40, 35]) * scale
        rot = _rotation(rng, float(rng.uniform(0, 180)))
        semi = diameter / 2 * np.array([1.0, rng.uniform(0.55, 0.9), rng.uniform(0.55, 0.9)])
        if kind == "periventricular":
            semi = diameter / 2 * np.array([1.0, 0.6, 0.6])
        blobs.append((centre, rot, semi, contrast))
        if kind == "confluent":
            for _ in range(int(rng.integers(2, 4))):
                blobs.append(
                    (
                        centre + rng.normal(size=3) * diameter * 0.35,
                        rot,
                        semi * rng.uniform(0.6, 0.9),
                        contrast,
                    )
                )
        lesions.append(PhantomLesion(tuple(float(v) for v in centre), diameter, kind, contrast))  # type: ignore[arg-type]
    scalp, skull = float(rng.uniform(4.0, 7.0)), float(rng.uniform(5.0, 8.0))
    direction = np.array([rng.uniform(-1, 1), rng.uniform(-1, 0.5), rng.uniform(0.2, 1)])
    direction /= np.linalg.norm(direction)
    blob_centre = direction * (axes + skull + scalp * 0.5)
    model = _HeadModel(
        axes=axes,
        scalp=scalp,
        skull=skull,
        csf=float(rng.uniform(1.5, 3.5)),
        cortex=float(rng.uniform(2.5, 4.0)),
        ventricles=tuple(ventricles),
        blobs=tuple(blobs),
        scalp_blob=(blob_centre, float(rng.uniform(3.0, 6.0))),
        folds=FourierField(rng, 3, (9.0, 16.0), 14),
        wobble=FourierField(rng, 3, (50.0, 120.0), 6),
        lesion_texture=FourierField(rng, 3, (4.0, 8.0), 6),
        bias=FourierField(rng, 3, (150.0, 300.0), 5),
        bias_amplitude=float(rng.uniform(0.05, 0.2)),
    )
    return model, lesions


def _sample(
    model: _HeadModel,
    positions: np.ndarray,
    orientation: np.ndarray,
    spacing: tuple[float, float],
    shape: tuple[int, int],
    thickness: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Signal and lesion mask [slice, row, column] of the planes at ``positions``, each
    averaged over ``thickness`` along the normal (3 sub-planes when it exceeds 2 mm)."""
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    j, i = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    plane = i[..., None] * spacing[1] * row + j[..., None] * spacing[0] * col
    offsets = [-thickness / 3, 0.0, thickness / 3] if thickness > 2.0 else [0.0]
    signal = np.zeros((len(positions), *shape), np.float32)
    lesion = np.zeros((len(positions), *shape), np.float32)
    for k, pos in enumerate(positions):
        for off in offsets:
            s, m = model.evaluate((plane + pos + off * normal).astype(np.float32))
            signal[k] += s / len(offsets)
            lesion[k] += m / len(offsets)
    return signal, lesion >= 0.5


def brain_flair(
    seed: int,
    *,
    matrix: tuple[int, int] | None = None,
    max_slices: int = 60,
    n_lesions: tuple[int, int] = (2, 6),
    plane: str | None = None,
) -> BrainCase:
    """A FLAIR MR phantom series with its lesions' truth.

    Parameters
    ----------
    seed : int
        Everything follows from it.
    matrix : tuple of 2 int, optional
        Rows and columns; drawn from 160-256 when omitted.
    max_slices : int
        At most this many slices (the slice spacing grows to cover the head).
    n_lesions : tuple of 2 int
        Range (inclusive) of the number of lesions.
    plane : str, optional
        "axial", "sagittal" or "coronal"; drawn (mostly axial) when omitted.
    """
    rng = np.random.default_rng([seed, 2])
    model, lesions = _model(rng, n_lesions)
    if matrix is None:
        side = int(rng.choice([160, 192, 224, 256]))
        matrix = (side, side)
    plane = plane or str(rng.choice(["axial"] * 6 + ["sagittal", "coronal"]))
    bases = {
        "axial": ([1.0, 0, 0], [0, 1.0, 0]),
        "sagittal": ([0, 1.0, 0], [0, 0, -1.0]),
        "coronal": ([1.0, 0, 0], [0, 0, -1.0]),
    }
    if plane not in bases:
        raise ValueError(f"plane must be axial, sagittal or coronal, got {plane!r}")
    tilt = float(rng.uniform(0, 15)) if rng.random() < 0.5 else 0.0
    rot = _rotation(rng, tilt)
    row, col = (rot @ np.array(v) for v in bases[plane])
    normal = np.cross(row, col)
    spacing = max(float(rng.uniform(0.9, 1.2)), 235.0 / max(matrix))
    thickness = float(rng.uniform(1.0, 5.0))
    extent = 2 * float(np.linalg.norm(normal * (model.axes + 14))) + 4
    dz = max(thickness, extent / max_slices)
    n = int(math.ceil(extent / dz))
    centre = rng.uniform(-4, 4, 3) + np.array([0, 0, -8.0])
    first = centre - ((matrix[1] - 1) * spacing * row + (matrix[0] - 1) * spacing * col) / 2
    first = first - (n - 1) / 2 * dz * normal
    positions = np.array([first + k * dz * normal for k in range(n)])
    orientation = np.concatenate([row, col])
    signal, lesion = _sample(model, positions, orientation, (spacing, spacing), matrix, thickness)
    image = _acquire(model, rng, signal, positions, orientation, spacing)
    datasets = _datasets(seed, rng, image, positions, orientation, spacing, thickness, dz)
    masks = {str(ds.SOPInstanceUID): lesion[k] for k, ds in enumerate(datasets)}
    if rng.random() < 0.5:
        datasets = datasets[::-1]
    return BrainCase(
        seed=seed,
        datasets=datasets,
        lesions=tuple(lesions),
        distractors=(Distractor("scalp_blob", tuple(float(v) for v in model.scalp_blob[0])),),
        plane=plane,
        tilt_deg=tilt,
        slice_thickness_mm=thickness,
        lesion_masks=masks,
        model=model,
    )


def _acquire(model, rng, signal, positions, orientation, spacing) -> np.ndarray:
    """Bias field and Rician noise, scaled to stored values."""
    row, col = orientation[:3], orientation[3:]
    k, j, i = (np.arange(n, dtype=np.float32) for n in signal.shape)
    pts = (
        positions[:, None, None, :]
        + i[None, None, :, None] * spacing * row
        + j[None, :, None, None] * spacing * col
    )
    step = max(1, signal.shape[1] // 32)  # the bias field is smooth: sample it coarsely
    coarse = pts[:, ::step, ::step]
    bias_c = np.exp(
        model.bias_amplitude * model.bias(coarse[..., 0], coarse[..., 1], coarse[..., 2])
    )
    bias = np.repeat(np.repeat(bias_c, step, 1), step, 2)[:, : signal.shape[1], : signal.shape[2]]
    del k
    sigma = float(rng.uniform(0.012, 0.03))
    real = signal * bias + rng.normal(0, sigma, signal.shape).astype(np.float32)
    imag = rng.normal(0, sigma, signal.shape).astype(np.float32)
    return np.sqrt(real**2 + imag**2) * float(rng.uniform(800.0, 2500.0))


def _datasets(seed, rng, image, positions, orientation, spacing, thickness, dz) -> list[Dataset]:
    values = np.clip(np.rint(image), 0, 4095).astype(np.uint16)
    te, tr, ti = (
        float(rng.uniform(80, 140)),
        float(rng.uniform(6000, 11000)),
        float(rng.uniform(2000, 2800)),
    )
    frame = phantom_uid("head", seed, "frame-of-reference")
    out = []
    for k in range(len(positions)):
        ds = base_dataset(
            kind="head",
            seed=seed,
            sop_class_uid=MR_IMAGE_STORAGE,
            modality="MR",
            instance=k + 1,
            series_number=4,
            series_description="Phantom head FLAIR",
        )
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.BodyPartExamined = "HEAD"
        ds.PatientPosition = "HFS"
        ds.ScanningSequence = ["SE", "IR"]
        ds.SequenceVariant = ["SK", "SP"]
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "2D"
        ds.SequenceName = "tir2d1_16"
        ds.RepetitionTime = round(tr, 1)
        ds.EchoTime = round(te, 2)
        ds.InversionTime = round(ti, 1)
        ds.EchoTrainLength = 16
        ds.MagneticFieldStrength = float(rng.choice([1.5, 3.0]))
        ds.ImagingFrequency = 63.87 if ds.MagneticFieldStrength == 1.5 else 123.25
        ds.ImagedNucleus = "1H"
        ds.FlipAngle = 150
        ds.AcquisitionNumber = 1
        ds.SliceThickness = round(thickness, 3)
        ds.SpacingBetweenSlices = round(dz, 4)
        ds.PixelSpacing = [round(spacing, 6), round(spacing, 6)]
        ds.ImageOrientationPatient = [round(float(v), 8) for v in orientation]
        ds.ImagePositionPatient = [round(float(v), 4) for v in positions[k]]
        set_pixels(ds, values[k], bits_stored=12, photometric="MONOCHROME2")
        ds.WindowCenter = int(np.percentile(values, 99) // 2)
        ds.WindowWidth = int(np.percentile(values, 99))
        out.append(ds)
    return out


def truth_mask_for(case: BrainCase, geometry: VolumeGeometry) -> np.ndarray:
    """The truth lesion mask on ``geometry`` (bool, [slice, row, column] in its slice order).

    Slices of the case's own images are taken by SOP Instance UID; other planes are drawn from
    the head model at their voxel centres (each averaged over the case's slice thickness).
    """
    if (
        all(uid in case.lesion_masks for uid in geometry.sop_instance_uids)
        and geometry.frame_numbers is None
    ):
        return np.stack([case.lesion_masks[uid] for uid in geometry.sop_instance_uids])
    _, lesion = _sample(
        case.model,
        np.asarray(geometry.positions, float),
        np.asarray(geometry.orientation, float),
        (float(geometry.pixel_spacing[0]), float(geometry.pixel_spacing[1])),
        (geometry.rows, geometry.columns),
        case.slice_thickness_mm,
    )
    return lesion
