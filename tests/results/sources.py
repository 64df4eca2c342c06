"""Small generated source series with correct geometry headers, for the results tests."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    CTImageStorage,
    DigitalMammographyXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    MRImageStorage,
)

from dicomnode.results.common import derive_uid

ROOT = "1.2.826.0.1.3680043.10.1234"  # test root


def _uid(*parts: object) -> str:
    return derive_uid(ROOT, *(str(p) for p in parts))


def _base(sop_class: str, modality: str, study: str, series: str, sop: str, number: int) -> Dataset:
    ds = Dataset()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.PatientName = "Phantom^Test"
    ds.PatientID = "PHANTOM01"
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"
    ds.StudyInstanceUID = study
    ds.StudyDate = "20260101"
    ds.StudyTime = "120000"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC0001"
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = "Synthetic phantom"
    ds.Modality = modality
    ds.SeriesInstanceUID = series
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.Manufacturer = "dicomnode-tests"
    ds.ContentDate = "20260101"
    ds.ContentTime = "120000"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 16
    ds.HighBit = 15
    return ds


def volume_series(
    *,
    modality: str = "CT",
    slices: int = 20,
    rows: int = 64,
    columns: int = 64,
    pixel_spacing: tuple[float, float] = (0.8, 0.7),
    z_positions: Sequence[float] | None = None,
    tilt_degrees: float = 0.0,
    reverse: bool = False,
    key: str = "ct",
) -> list[Dataset]:
    """A single-frame CT/MR series; slice k of the returned list is volume slice k.

    ``z_positions`` gives the table positions (non-uniform spacing allowed); ``tilt_degrees``
    tilts the image planes about the x axis (gantry tilt) while the table moves along z;
    ``reverse`` stores the series head-to-feet (z decreasing).
    """
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    zs = list(z_positions) if z_positions is not None else [2.5 * k for k in range(slices)]
    if reverse:
        zs = zs[::-1]
    t = math.radians(tilt_degrees)
    orientation = [1.0, 0.0, 0.0, 0.0, math.cos(t), math.sin(t)]
    study, series, frame = _uid(key, "study"), _uid(key, "series"), _uid(key, "for")
    yy, xx = np.mgrid[0:rows, 0:columns]
    out = []
    for k, z in enumerate(zs):
        ds = _base(sop_class, modality, study, series, _uid(key, "sop", k), k + 1)
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame
        ds.PositionReferenceIndicator = ""
        ds.ImagePositionPatient = [-25.0, -20.0, float(z)]
        ds.ImageOrientationPatient = orientation
        ds.PixelSpacing = list(pixel_spacing)
        ds.SliceThickness = 2.5
        ds.SliceLocation = float(z)
        ds.Rows, ds.Columns = rows, columns
        ds.PixelRepresentation = 1
        ds.AcquisitionNumber = 1
        ds.BodyPartExamined = "CHEST" if modality == "CT" else "BRAIN"
        ds.PatientPosition = "HFS"
        if modality == "CT":
            ds.RescaleIntercept = 0
            ds.RescaleSlope = 1
            ds.RescaleType = "HU"
            ds.KVP = 120
            ds.GantryDetectorTilt = tilt_degrees
        else:
            ds.ScanningSequence = "SE"
            ds.SequenceVariant = "NONE"
            ds.ScanOptions = ""
            ds.MRAcquisitionType = "2D"
            ds.EchoTime = 100
            ds.RepetitionTime = 9000
            ds.EchoTrainLength = 1
            ds.SeriesDescription = "AX FLAIR"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        pixels = (100 * np.sin(xx / 6.0) * np.cos(yy / 7.0) + 10 * k).astype(np.int16)
        ds.PixelData = pixels.tobytes()
        out.append(ds)
    return out


def mammo_study(*, size: tuple[int, int] = (96, 64), key: str = "mg") -> list[Dataset]:
    """Four MG For-Presentation views: R CC, L CC, R MLO, L MLO."""
    study, series = _uid(key, "study"), _uid(key, "series")
    views = {
        "CC": ("399162004", "cranio-caudal"),
        "MLO": ("399368009", "medio-lateral oblique"),
    }
    out = []
    rows, columns = size
    yy, xx = np.mgrid[0:rows, 0:columns]
    for n, (view, side) in enumerate((("CC", "R"), ("CC", "L"), ("MLO", "R"), ("MLO", "L"))):
        ds = _base(
            DigitalMammographyXRayImageStorageForPresentation,
            "MG",
            study,
            series,
            _uid(key, "sop", n),
            n + 1,
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImageLaterality = side
        ds.Laterality = side
        ds.PatientOrientation = ["A", "R"] if side == "R" else ["P", "L"]
        ds.BodyPartExamined = "BREAST"
        ds.ViewPosition = view
        code = Dataset()
        code.CodeValue, code.CodingSchemeDesignator = views[view][0], "SCT"
        code.CodeMeaning = views[view][1]
        ds.ViewCodeSequence = [code]
        ds.Rows, ds.Columns = rows, columns
        ds.BitsStored, ds.HighBit = 12, 11
        ds.PixelRepresentation = 0
        ds.ImagerPixelSpacing = [0.1, 0.1]
        ds.PixelSpacing = [0.1, 0.1]
        ds.WindowCenter, ds.WindowWidth = 2048, 4096
        ds.RescaleIntercept, ds.RescaleSlope, ds.RescaleType = 0, 1, "US"
        ds.BurnedInAnnotation = "NO"
        ds.PresentationLUTShape = "IDENTITY"
        pixels = ((xx * 40 + yy * 20 + 500 * n) % 4096).astype(np.uint16)
        ds.PixelData = pixels.tobytes()
        out.append(ds)
    return out
