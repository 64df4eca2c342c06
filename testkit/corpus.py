"""A real-world corpus for tests and benchmarks (issue 11 item 8).

Two sources, each a list of named cases:

* the files pydicom ships in its wheel (:func:`pydicom_cases`): real scanner exports,
  Enhanced multi-frame, compressed syntaxes, odd VRs, big endian, files without a file meta;
* header mutations applied to the repository's synthetic series (:func:`mutated_cases`):
  the quirks of real archives (invalid CS terms, trailing NULs, Latin-1 names without a
  SpecificCharacterSet, ISO 2022 character sets, missing Type 1 attributes, zero and negative
  spacing, duplicate instance numbers, localizers in the series, mixed orientations, no frame of
  reference, odd rescale) and the compressed transfer syntaxes archives store (JPEG Lossless,
  JPEG-LS, RLE: each file re-encoded by dcmtk, as a PACS that stores compressed sends it).

A case that cannot be offered over C-STORE at all (not DICOM, a DICOMDIR, no SOP class) says
why in :attr:`CorpusFile.unsendable`. :func:`send_file` offers each file on a presentation
context of its own SOP class and transfer syntax, as a PACS would.
"""

from __future__ import annotations

import copy
import subprocess
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
import pydicom.data
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.filereader import read_file_meta_info
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE

from dicomnode.net.peer import keep_responses, no_delay
from dicomnode.synthetic import brain_mr, chest_ct, mammography
from testkit.scu import lenient_pydicom

__all__ = [
    "MUTATIONS",
    "PIPELINES",
    "CorpusFile",
    "CorpusSeries",
    "SendOutcome",
    "mutated_cases",
    "pydicom_cases",
    "send_file",
]

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
#: Pipeline -> (modality of its input, what makes a route pick the series).
PIPELINES = ("lung_nodule", "brain_lesion", "mammo_score")


@dataclass(frozen=True)
class CorpusFile:
    """One file of the corpus and what a sender needs to offer it."""

    name: str
    path: Path
    sop_class: str = ""
    transfer_syntax: str = ""
    #: Why the file cannot be sent with C-STORE at all (empty when it can).
    unsendable: str = ""


@dataclass
class CorpusSeries:
    """A synthetic study of one pipeline with one header mutation applied."""

    mutation: str
    pipeline: str
    study_uid: str
    files: list[CorpusFile] = field(default_factory=list)


# ----------------------------------------------------------------------------- pydicom files


def _pydicom_paths() -> list[Path]:
    return sorted({Path(p) for p in pydicom.data.get_testdata_files() if Path(p).is_file()})


def _describe(path: Path, out: Path) -> CorpusFile:
    name = f"pydicom/{path.parent.name}/{path.name}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ds = pydicom.dcmread(path, stop_before_pixels=True)
        except InvalidDicomError:
            try:  # no preamble and no file meta: a raw data set, as old exports are
                ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            except Exception as exc:
                return CorpusFile(name, path, unsendable=f"not DICOM ({type(exc).__name__})")
        except Exception as exc:
            return CorpusFile(name, path, unsendable=f"not DICOM ({type(exc).__name__})")
    meta = getattr(ds, "file_meta", FileMetaDataset())
    sop_class = str(ds.get("SOPClassUID") or meta.get("MediaStorageSOPClassUID") or "")
    if sop_class == DICOMDIR_CLASS:
        return CorpusFile(name, path, sop_class, unsendable="a DICOMDIR, not a storage object")
    if not sop_class or "SOPInstanceUID" not in ds:
        return CorpusFile(name, path, sop_class, unsendable="no SOP Class or Instance UID")
    syntax = str(meta.get("TransferSyntaxUID") or "")
    if syntax:
        return CorpusFile(name, path, sop_class, syntax)
    # A data set without a file meta: give it one (its own encoding), the bytes unchanged.
    implicit, little = ds.original_encoding
    syntax = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
    syntax = syntax if little else ExplicitVRBigEndian
    return CorpusFile(name, _with_meta(path, out, ds, syntax), sop_class, syntax)


def _with_meta(path: Path, out: Path, ds: Dataset, syntax: str) -> Path:
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.get("SOPClassUID")
    meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    meta.TransferSyntaxUID = syntax
    with lenient_pydicom(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = pydicom.dcmread(path, force=True)
        full.file_meta = meta
        target = out / "with-meta" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        full.save_as(target, enforce_file_format=True)
    return target


def pydicom_cases(out: Path) -> list[CorpusFile]:
    """Every file pydicom's wheel ships as test data (``pydicom.data.get_testdata_files()``).

    Files without a file meta get a copy under ``out`` with one; the others are used in place.
    """
    return [_describe(path, out) for path in _pydicom_paths()]


# ----------------------------------------------------------------------------- mutations

Mutation = Callable[[list[Dataset]], list[Dataset]]


def _each(fn: Callable[[Dataset], None]) -> Mutation:
    def apply(datasets: list[Dataset]) -> list[Dataset]:
        for ds in datasets:
            fn(ds)
        return datasets

    return apply


def _invalid_cs(ds: Dataset) -> None:
    ds.PatientSex = "0000"  # seen in real exports: not M, F or O
    ds.PatientPosition = "HEADFIRST"  # not a defined term (HFS, FFS, ...)


def _trailing_nuls(ds: Dataset) -> None:
    ds.PatientSex = "F\x00"
    if "BodyPartExamined" in ds:
        ds.BodyPartExamined = f"{ds.BodyPartExamined}\x00"
    ds.SeriesDescription = f"{ds.SeriesDescription}\x00"
    ds.Manufacturer = "ACME\x00\x00"


def _latin1_name(ds: Dataset) -> None:
    if "SpecificCharacterSet" in ds:
        del ds.SpecificCharacterSet
    ds.PatientName = b"M\xfcller^J\xfcrgen"  # Latin-1 bytes, no character set declared
    ds.ReferringPhysicianName = b"Dupr\xe9^Ren\xe9"


def _iso2022(ds: Dataset) -> None:
    ds.SpecificCharacterSet = ["ISO 2022 IR 6", "ISO 2022 IR 87"]
    ds.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"


def _drop(*keywords: str) -> Mutation:
    def fn(ds: Dataset) -> None:
        for keyword in keywords:
            if keyword in ds:
                delattr(ds, keyword)

    return _each(fn)


def _spacing(value: str) -> Mutation:
    def fn(ds: Dataset) -> None:
        for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
            if keyword in ds:
                setattr(ds, keyword, [value, value])
        if "SliceThickness" in ds:
            ds.SliceThickness = value

    return _each(fn)


def _duplicate_numbers(ds: Dataset) -> None:
    ds.InstanceNumber = 1


def _localizers(datasets: list[Dataset]) -> list[Dataset]:
    """Two sagittal LOCALIZER images in the series (new SOP instances, the same series)."""
    extra = []
    for n, source in enumerate(datasets[:2]):
        ds = copy.deepcopy(source)  # Dataset.copy() shares the elements with its source
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = (
            f"{source.SOPInstanceUID}.9{n}"
        )
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
        ds.InstanceNumber = 900 + n
        if "ImageOrientationPatient" in ds:
            ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        extra.append(ds)
    return extra + datasets


def _mixed_orientations(datasets: list[Dataset]) -> list[Dataset]:
    for ds in datasets[::2]:
        if "ImageOrientationPatient" in ds:
            ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]  # coronal among axial slices
    return datasets


def _zero_slope(ds: Dataset) -> None:
    if "RescaleSlope" in ds or ds.Modality == "CT":
        ds.RescaleSlope, ds.RescaleIntercept = "0", "-1024"
    else:
        ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "0", "0", "US"


def _varying_rescale(datasets: list[Dataset]) -> list[Dataset]:
    for n, ds in enumerate(datasets):
        ds.RescaleSlope, ds.RescaleIntercept = f"{1 + n % 3}", f"{-1024 * (n % 2)}"
        if ds.Modality != "CT":
            ds.RescaleType = "US"
    return datasets


#: Mutation name -> function of a series' datasets (in place; may add instances).
MUTATIONS: dict[str, Mutation] = {
    "clean": lambda datasets: datasets,
    "invalid_cs": _each(_invalid_cs),
    "trailing_nuls": _each(_trailing_nuls),
    "pn_latin1_no_charset": _each(_latin1_name),
    "iso2022_charsets": _each(_iso2022),
    "missing_series_uid": _drop("SeriesInstanceUID"),
    "missing_sop_class": _drop("SOPClassUID"),
    "missing_pixel_spacing": _drop("PixelSpacing", "ImagerPixelSpacing"),
    "missing_position": _drop("ImagePositionPatient", "ImageOrientationPatient"),
    "zero_spacing": _spacing("0"),
    "negative_spacing": _spacing("-0.8"),
    "duplicate_instance_numbers": _each(_duplicate_numbers),
    "localizers_mixed_in": _localizers,
    "mixed_orientations": _mixed_orientations,
    "missing_frame_of_reference": _drop("FrameOfReferenceUID"),
    "zero_rescale_slope": _each(_zero_slope),
    "varying_rescale": _varying_rescale,
    "jpeg_lossless": lambda datasets: datasets,  # re-encoded once written: COMPRESSIONS
    "jpeg_ls_lossless": lambda datasets: datasets,
    "rle_lossless": lambda datasets: datasets,
}

#: Mutation name -> the dcmtk tool that re-encodes each written file in its default (lossless)
#: mode: JPEG Lossless first-order prediction (the syntax most archives store), JPEG-LS, RLE.
COMPRESSIONS: dict[str, str] = {
    "jpeg_lossless": "dcmcjpeg",
    "jpeg_ls_lossless": "dcmcjpls",
    "rle_lossless": "dcmcrle",
}


def _compress(paths: list[Path], tool: str) -> None:
    for path in paths:
        encoded = path.with_suffix(".tmp")
        subprocess.run([tool, str(path), str(encoded)], check=True, capture_output=True)
        encoded.replace(path)


def _base(pipeline: str, seed: int) -> list[Dataset]:
    """A small study the pipeline accepts when unmutated (sizes of the e2e tests)."""
    if pipeline == "lung_nodule":
        return chest_ct(seed, shape=(64, 64, 20), n_nodules=1, diameter_range_mm=(8, 14)).datasets
    if pipeline == "brain_lesion":
        return brain_mr(seed, shape=(48, 48, 12), n_lesions=1, radius_range_mm=(4, 7)).datasets
    if pipeline == "mammo_score":
        return mammography(seed, shape=(256, 208), masses={"L": 1}).datasets
    raise ValueError(f"pipeline must be one of {', '.join(PIPELINES)}, got {pipeline!r}")


def _write(datasets: list[Dataset], directory: Path) -> list[Path]:
    with lenient_pydicom(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for n, ds in enumerate(datasets):
            path = directory / f"{n:04d}.dcm"
            ds.save_as(path, enforce_file_format=False)
            paths.append(path)
        return paths


def mutated_cases(
    out: Path,
    *,
    mutations: Iterable[str] = tuple(MUTATIONS),
    pipelines: Iterable[str] = PIPELINES,
    seed: int = 9400,
) -> Iterator[CorpusSeries]:
    """One synthetic study per (mutation, pipeline), mutated and written under ``out``.

    Each study has its own seed (so its own UIDs); its SeriesDescription ends with
    ``corpus:<mutation>`` so routes and reports can tell the cases apart.
    """
    for m, mutation in enumerate(mutations):
        for p, pipeline in enumerate(pipelines):
            datasets = _base(pipeline, seed + 10 * m + p)
            study_uid = str(datasets[0].StudyInstanceUID)
            for ds in datasets:
                ds.SeriesDescription = f"{ds.SeriesDescription} corpus:{mutation}"
            with lenient_pydicom(), warnings.catch_warnings():
                warnings.simplefilter("ignore")
                datasets = MUTATIONS[mutation](datasets)
            paths = _write(datasets, out / "mutated" / mutation / pipeline)
            if mutation in COMPRESSIONS:
                _compress(paths, COMPRESSIONS[mutation])
            files = [
                CorpusFile(
                    f"{mutation}/{pipeline}/{path.name}",
                    path,
                    str(meta.MediaStorageSOPClassUID),
                    str(meta.TransferSyntaxUID),
                )
                for path in paths
                for meta in [read_file_meta_info(path)]  # as written (and re-encoded)
            ]
            yield CorpusSeries(mutation, pipeline, study_uid, files)


# ----------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class SendOutcome:
    """What the node answered: a C-STORE status, or why nothing was stored."""

    status: int | None
    #: Empty when a status came back; else why (context refused, association aborted...).
    problem: str = ""

    @property
    def stored(self) -> bool:
        return self.status is not None and (self.status == 0 or self.status >> 12 == 0xB)


def send_file(port: int, item: CorpusFile, *, ae_title: str = "CORPUSSCU") -> SendOutcome:
    """Send one file as it is, on a context of its own SOP class and transfer syntax."""
    if item.unsendable:
        return SendOutcome(None, item.unsendable)
    ae = AE(ae_title=ae_title)
    ae.add_requested_context(item.sop_class, [item.transfer_syntax])
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    with lenient_pydicom():
        assoc = ae.associate("127.0.0.1", port, ae_title="DICOMNODE")
        if not assoc.is_established:
            offered = UID(item.transfer_syntax).name
            return SendOutcome(None, f"association rejected (offered {offered} only)")
        no_delay(assoc)  # PITFALLS: Nagle
        keep_responses(assoc)
        try:
            if not assoc.accepted_contexts:
                return SendOutcome(None, "presentation context refused (transfer syntax)")
            status = assoc.send_c_store(item.path)
        except Exception as exc:  # what a PACS would see as a failed send
            return SendOutcome(None, f"not sent: {type(exc).__name__}")
        finally:
            if assoc.is_established:
                assoc.release()
    if not status or "Status" not in status:
        return SendOutcome(None, "no response (association aborted)")
    return SendOutcome(int(status.Status))
