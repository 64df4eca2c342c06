"""Studies of ``dicomnode demo``: generate them, send them over DICOM, describe the findings.

Held-out seeds (9000 and up; the demo weights were trained on lower ones) and small sizes that
the pipelines accept, so the three pipelines finish in seconds on two CPU cores.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy.random  # noqa: F401 - imported before the demo's signal handlers (see demo.py)
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom import AE, _config

from dicomnode.dimse import Status
from dicomnode.errors import DicomNodeError
from dicomnode.net.peer import keep_responses, no_delay
from dicomnode.results import Findings, findings_from_sr
from dicomnode.results.errors import EncodingError
from dicomnode.synthetic import (
    CT_IMAGE_STORAGE,
    MG_FOR_PRESENTATION_STORAGE,
    MR_IMAGE_STORAGE,
    brain_mr,
    chest_ct,
    mammography,
    write_study,
)

__all__ = ["DemoStudy", "describe_findings", "generate_studies", "routes_for", "send_study"]

log = logging.getLogger(__name__)

CT_SEED, MR_SEED, MG_SEED = 9401, 9402, 9403


@dataclass
class DemoStudy:
    """One generated study and what became of it.

    Attributes
    ----------
    label : str
        What it is, for people (no identifiers).
    pipeline : str
        The pipeline its route runs.
    study_uid : str
    series_uids : frozenset of str
    files : list of Path
        The generated Part 10 files.
    truth : str
        Ground truth in brief.
    """

    label: str
    pipeline: str
    study_uid: str
    series_uids: frozenset[str]
    files: list[Path]
    truth: str
    sent_at: float | None = None
    done_at: float | None = None
    outcome: str = "waiting"
    findings: str = ""
    objects: list[str] = field(default_factory=list)
    result_files: list[Path] = field(default_factory=list)

    @property
    def seconds(self) -> float | None:
        """From the end of sending to the last result held by the peer."""
        if self.sent_at is None or self.done_at is None:
            return None
        return self.done_at - self.sent_at


def generate_studies(folder: Path) -> list[DemoStudy]:
    """Write a chest CT, a FLAIR brain MR and a 4-view mammogram under ``folder``."""
    ct = chest_ct(CT_SEED, shape=(256, 256, 96), n_nodules=2, diameter_range_mm=(8, 16))
    mr = brain_mr(MR_SEED, shape=(160, 160, 64), n_lesions=3, radius_range_mm=(4, 8))
    mg = mammography(MG_SEED, shape=(384, 312), masses={"L": 1})
    studies = []
    for label, pipeline, datasets, truth in (
        ("CT chest", "lung_nodule", ct.datasets, f"{len(ct.nodules)} nodules"),
        ("MR brain FLAIR", "brain_lesion", mr.datasets, f"{len(mr.lesions)} lesions"),
        ("MG 4 views", "mammo_score", mg.datasets, _mammo_truth(mg.truth.has_mass)),
    ):
        files = write_study(datasets, folder / pipeline)
        studies.append(
            DemoStudy(
                label=label,
                pipeline=pipeline,
                study_uid=str(datasets[0].StudyInstanceUID),
                series_uids=frozenset(str(ds.SeriesInstanceUID) for ds in datasets),
                files=files,
                truth=truth,
            )
        )
    return studies


def _mammo_truth(has_mass: object) -> str:
    sides = [side for side in "LR" if has_mass(side)]  # type: ignore[operator]
    return "mass " + "+".join(sides) if sides else "no mass"


def routes_for(destination: str) -> list[dict[str, object]]:
    """The demo's three routes, each sending to ``destination``."""
    return [
        {
            "name": "chest-ct-nodules",
            "pipeline": "lung_nodule",
            "when": {"Modality": "CT", "BodyPartExamined": ["CHEST", "LUNG"]},
            "send_to": [destination],
        },
        {
            "name": "brain-flair-lesions",
            "pipeline": "brain_lesion",
            "when": {"Modality": "MR", "SeriesDescription": {"regex": "flair|dark.?fluid"}},
            "send_to": [destination],
        },
        {
            "name": "screening-mammo",
            "pipeline": "mammo_score",
            "level": "study",
            "when": {"Modality": "MG"},
            "send_to": [destination],
        },
    ]


def send_study(study: DemoStudy, port: int, *, called_ae: str, calling_ae: str = "DEMO") -> None:
    """C-STORE every file of ``study`` to the node on loopback over one association.

    Raises
    ------
    DicomNodeError
        When the association fails or an instance is not stored with Success.
    """
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 60
    for sop_class in (CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, MG_FOR_PRESENTATION_STORAGE):
        ae.add_requested_context(sop_class, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])
    assoc = ae.associate("127.0.0.1", port, ae_title=called_ae)
    if not assoc.is_established:
        raise DicomNodeError(f"the node did not accept an association on port {port}")
    no_delay(assoc)
    keep_responses(assoc)
    try:
        for path in study.files:
            status = assoc.send_c_store(pydicom.dcmread(path))
            code = int(status.Status) if "Status" in status else None
            if code != Status.SUCCESS:
                shown = "no response" if code is None else f"0x{code:04X}"
                raise DicomNodeError(f"{study.label}: C-STORE of {path.name} answered {shown}")
    finally:
        if assoc.is_established:
            assoc.release()


def describe_findings(pipeline: str, sr_bytes: bytes) -> str:
    """What an SR reports, in one short line (no identifiers)."""
    try:
        findings = findings_from_sr(pydicom.dcmread(BytesIO(sr_bytes)))
    except (EncodingError, ValueError) as exc:
        return f"unreadable SR ({exc})"
    return _describe(pipeline, findings)


def _describe(pipeline: str, findings: Findings) -> str:
    if findings.classifications:
        parts = []
        for item in findings.classifications:
            side = item.laterality.value if item.laterality is not None else "?"
            density = item.density.value if item.density is not None else "?"
            score = f" score {item.score:.2f}" if item.score is not None else ""
            parts.append(f"{side}: density {density}{score}")
        parts.sort()
        return "; ".join(parts)
    regions = findings.regions
    noun = {"lung_nodule": "nodule", "brain_lesion": "lesion"}.get(pipeline, "finding")
    if not regions:
        return f"no {noun} found"
    text = f"{len(regions)} {noun}{'s' if len(regions) != 1 else ''}"
    volumes = [r.volume_ml for r in regions if r.volume_ml is not None]
    diameters = [r.diameter_mm for r in regions if r.diameter_mm is not None]
    if pipeline == "brain_lesion" and volumes:
        return f"{text}, {sum(volumes):.2f} mL"
    if diameters:
        return f"{text}, largest {max(diameters):.0f} mm"
    return text
