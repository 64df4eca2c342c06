"""A tiny pipeline for the node's tests: thresholds pixel values, finds one region.

Knobs, so tests can make it misbehave on chosen series only:

- options ``threshold`` (pixel value, default 0), ``sleep`` (seconds per run), ``runlog``
  (a file: one ``start``/``end`` line per run with the series UID and the pid);
- SeriesDescription containing ``TOY:crash`` (``os._exit(3)`` in the child), ``TOY:oom``
  (raises MemoryError, as a CUDA OOM would), ``TOY:fail`` (raises RuntimeError),
  ``TOY:refuse`` (refused by ``check``), ``TOY:sleep=N`` (sleeps N seconds),
  ``TOY:check-sleep=N`` (``check`` writes a ``check`` line to the run log, then sleeps N s),
  ``TOY:leak`` (raises an error quoting the patient's name, ID and birth date from the
  header), ``TOY:phi-refusal`` (refused by ``check`` with the same identifiers in the reason),
  ``TOY:unencodable`` (a mask on frames of single-frame images: the SEG cannot be made),
  ``TOY:cuda`` (a small tensor on ``ctx.device``, logged), ``TOY:cuda-oom`` (a real CUDA
  out-of-memory error).
"""

from __future__ import annotations

import dataclasses
import os
import re
import time
from pathlib import Path

import numpy as np
import pydicom

from dicomnode.pipeline import (
    InputRefused,
    Pipeline,
    PipelineInputs,
    PipelineResult,
    RunContext,
)
from dicomnode.results import FindingKind, Findings, Mask, RegionFinding
from dicomnode.results.changes import Comparison, InstanceRef

__all__ = ["ToyPipeline", "ToyPriorsPipeline"]


def _log(path: str | None, word: str, inputs: PipelineInputs) -> None:
    if path:
        with open(path, "a", encoding="ascii") as handle:
            handle.write(f"{word} {inputs.series[0].series_uid} {os.getpid()}\n")
            handle.flush()
            os.fsync(handle.fileno())


def _identifiers(path: Path) -> str:
    """The patient's identifiers, quoted the ways careless error messages quote them."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    name = ds.PatientName
    return (
        f"patient {name} ({name.given_name} {name.family_name.lower()}), "
        f"id={ds.PatientID!r}, other ids {ds.get('OtherPatientIDs', '')}, "
        f"born {ds.PatientBirthDate}, accession {ds.get('AccessionNumber', '')}, "
        f"series {ds.SeriesInstanceUID}"
    )


class ToyPipeline(Pipeline):
    """Thresholds the first input series; a region at the centre of the volume."""

    name = "toy"
    version = "1.0"

    def check(self, inputs: PipelineInputs) -> None:
        for series in inputs.series:
            found = re.search(r"TOY:check-sleep=([0-9.]+)", series.description or "")
            if found:
                _log(self.options.get("runlog"), "check", inputs)
                time.sleep(float(found.group(1)))
            if "TOY:refuse" in (series.description or ""):
                raise InputRefused("series asked to be refused (TOY:refuse)")
            if "TOY:phi-refusal" in (series.description or ""):
                raise InputRefused(f"refused for {_identifiers(series.files[0])}")
            if series.modality not in ("CT", "MR"):
                raise InputRefused(f"modality {series.modality} is not CT or MR")

    def run(self, inputs: PipelineInputs, ctx: RunContext) -> PipelineResult:
        from dicomnode.results import geometry_from_datasets

        runlog = self.options.get("runlog")
        _log(runlog, "start", inputs)
        description = inputs.series[0].description or ""
        if "TOY:crash" in description:
            os._exit(3)
        if "TOY:oom" in description:
            raise MemoryError("simulated CUDA out of memory")
        if "TOY:leak" in description:
            raise ValueError(f"cannot process {_identifiers(inputs.series[0].files[0])}")
        if "TOY:fail" in description:
            raise RuntimeError("simulated pipeline failure")
        if "TOY:cuda-oom" in description:
            import torch

            torch.empty(2**50, dtype=torch.uint8, device=ctx.device)  # far beyond any GPU
        if "TOY:cuda" in description:
            import torch

            value = torch.ones(8, device=ctx.device).sum().item()
            _log(runlog, f"device={torch.device(ctx.device).type}:{value:g}", inputs)
        found = re.search(r"TOY:sleep=([0-9.]+)", description)
        time.sleep(float(found.group(1)) if found else float(self.options.get("sleep", 0)))
        datasets = [pydicom.dcmread(p) for p in inputs.series[0].files]
        geometry = geometry_from_datasets(datasets)
        by_uid = {str(ds.SOPInstanceUID): ds for ds in datasets}
        volume = np.stack([by_uid[uid].pixel_array for uid in geometry.sop_instance_uids])
        mask = volume > float(self.options.get("threshold", 0))
        if "TOY:unencodable" in description:  # frames of single-frame images: no SEG
            frames = tuple(range(1, len(geometry.sop_instance_uids) + 1))
            geometry = dataclasses.replace(geometry, frame_numbers=frames)
            mask[...] = True
        centre = np.asarray(geometry.positions[len(geometry.positions) // 2], dtype=float)
        findings = Findings(
            kinds=(FindingKind.LUNG_NODULE,),
            regions=(RegionFinding.sphere(FindingKind.LUNG_NODULE, centre, 4.0, score=0.9),),
            masks=(Mask(FindingKind.LUNG_NODULE, mask, geometry),) if mask.any() else (),
        )
        _log(runlog, "end", inputs)
        return PipelineResult(findings, model_sha256="")


def write_runlog_path(root: Path) -> str:
    """Where tests keep the run log."""
    return str(root / "runs.log")


class ToyPriorsPipeline(ToyPipeline):
    """The toy, declaring that it uses priors: each run appends one JSON line to the file of
    option ``priorslog`` with what it got (prior study/series UIDs, study dates, file counts,
    the SOP Instance UIDs of the earlier reports, the note), then runs as the toy. When a
    prior comes with earlier reports, its findings compare with that prior and reference the
    reports (the SR's Pertinent Other Evidence)."""

    name = "toy_priors"
    uses_priors = True

    def run(self, inputs: PipelineInputs, ctx: RunContext) -> PipelineResult:
        import json

        path = self.options.get("priorslog")
        if path:
            line = {
                "study": inputs.study_uid,
                "priors": [
                    {
                        "study": p.series.study_uid,
                        "series": p.series.series_uid,
                        "date": p.study_date,
                        "files": len(p.series.files),
                        "exist": all(f.is_file() for f in p.series.files),
                        "role": p.series.role,
                        "reports": [str(_report_ref(r).sop_instance_uid) for r in p.reports],
                    }
                    for p in inputs.priors
                ],
                "note": inputs.priors_note,
            }
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(line) + "\n")
        result = super().run(inputs, ctx)
        reported = [p for p in inputs.priors if p.reports]
        if not reported:
            return result
        comparison = Comparison(
            prior_study_uid=reported[0].series.study_uid,
            prior_study_date=reported[0].study_date,
            evidence=tuple(_report_ref(r) for r in reported[0].reports),
        )
        findings = dataclasses.replace(result.findings, comparison=comparison)
        return dataclasses.replace(result, findings=findings)


def _report_ref(path: Path) -> InstanceRef:
    """The identity of an earlier report file."""
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    return InstanceRef(
        str(ds.StudyInstanceUID),
        str(ds.SeriesInstanceUID),
        str(ds.SOPClassUID),
        str(ds.SOPInstanceUID),
    )
