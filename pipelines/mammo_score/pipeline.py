"""``mammo_score``: MG study (CC and MLO per breast) -> per-breast suspicion score and density."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

import numpy as np
from pydicom.dataset import Dataset

from dicomnode.pipeline import (
    InputRefused,
    PipelineInputs,
    PipelineLevel,
    PipelineResult,
    RunContext,
)
from dicomnode.results import (
    BreastDensity,
    Classification,
    ClassProbability,
    FindingKind,
    Findings,
    Laterality,
)
from pipelines.common.base import BundlePipeline, inference_mode
from pipelines.common.dicomio import (
    check_decode_budget,
    decode_pixels,
    read_datasets,
    read_headers,
    require_modality,
)
from pipelines.mammo_score.views import ViewSelection, select_views, view_key

if TYPE_CHECKING:  # torch: imported by run(), never by check()
    from pipelines.mammo_score.model import OutputChannels

__all__ = ["REQUIRED_VIEWS", "MammoScorePipeline"]

REQUIRED_VIEWS = ("RCC", "LCC", "RMLO", "LMLO")


class MammoScorePipeline(BundlePipeline):
    """Score a screening mammogram per breast with a MONAI classification bundle.

    Options read
    ------------
    bundle, decode_budget_bytes, amp
        See :class:`~pipelines.common.base.BundlePipeline`.
    required_views : list of str
        Views that must be present. Default: the CC and MLO of each breast the study holds
        (after a mastectomy, or in a unilateral study, the one breast is scored; a study with
        no view of either breast is refused naming all four).
    """

    name: ClassVar[str] = "mammo_score"
    version: ClassVar[str] = "0.2.0"
    level: ClassVar[PipelineLevel] = PipelineLevel.STUDY
    default_outputs: ClassVar[tuple[str, ...]] = ("sr", "summary")
    bundle_name: ClassVar[str] = "mammo_classification"

    def _check_headers(self, headers: Sequence[Dataset]) -> ViewSelection:
        """The images the model reads; InputRefused when a required view is not among them."""
        require_modality(headers, "MG")
        selection = select_views(headers)
        present = {view_key(headers[i]).name for i in selection.kept}
        required = self._required_views(present)
        missing = [v for v in required if v not in present]
        if missing:
            found = ", ".join(sorted(present)) or "none"
            left_out = selection.describe_left_out()
            raise InputRefused(
                f"missing views: {', '.join(missing)} (found {found}"
                + (f"; {left_out}" if left_out else "")
                + ")"
            )
        kept = [headers[i] for i in selection.kept]
        check_decode_budget(kept, self.decode_budget, max_ratio=self.max_compression_ratio)
        return selection

    def _required_views(self, present: set[str]) -> list[str]:
        """``required_views`` when set, else CC and MLO of each breast present (R first)."""
        option = self.options.get("required_views")
        if option is not None:
            return [str(v).upper() for v in option]
        sides = {name[0] for name in present}
        return [v for v in REQUIRED_VIEWS if not sides or v[0] in sides]

    def check(self, inputs: PipelineInputs) -> None:
        """Refuse non-MG input, a study without the required For Presentation views, oversized
        images (FOR PROCESSING, tomosynthesis and other views are left out: see
        :func:`~pipelines.mammo_score.views.select_views`)."""
        self._check_headers(read_headers(inputs.files))

    def run(self, inputs: PipelineInputs, ctx: RunContext) -> PipelineResult:
        """One classification per breast: mass score, density class and probabilities."""
        import torch

        from pipelines.mammo_score.model import output_channels, view_tensor

        headers = read_headers(inputs.files)
        selection = self._check_headers(headers)
        if selection.left_out:
            ctx.log.info("mammo_score: %s", selection.describe_left_out())
        files = tuple(inputs.files[i] for i in selection.kept)
        datasets = read_datasets(files)
        network = self.model(ctx.device)
        bundle = self.bundle(ctx.device)
        batch = torch.stack([view_tensor(ds, decode_pixels(ds), bundle) for ds in datasets])
        with inference_mode(ctx.device, self.amp):
            logits = network(batch.to(ctx.device)).float().cpu()
        channels = output_channels(bundle)
        activated = torch.sigmoid(logits) if channels.sigmoid else torch.softmax(logits, dim=1)
        scores = activated.numpy().astype(np.float64)
        if channels.mass is not None:  # the mass score is calibrated; density is a class
            scores[:, channels.mass] = self.calibrated(scores[:, channels.mass])
        per_side: dict[str, list[int]] = defaultdict(list)
        for index, ds in enumerate(datasets):
            per_side[view_key(ds).laterality].append(index)
        classifications = [
            _breast(side, indices, scores, channels, datasets)
            for side, indices in sorted(per_side.items())
        ]
        findings = Findings(
            kinds=(FindingKind.BREAST_ASSESSMENT,), classifications=tuple(classifications)
        )
        return replace(self.result(findings), sources=files)


def _breast(
    side: str,
    indices: list[int],
    scores: np.ndarray,
    channels: OutputChannels,
    datasets: Sequence[Dataset],
) -> Classification:
    from pipelines.mammo_score.model import DENSITY_LABELS

    views = scores[indices]
    density = views[:, list(channels.density)].mean(axis=0)
    density = density / max(float(density.sum()), 1e-6)
    labels = DENSITY_LABELS[: len(channels.density)]
    mass = float(views[:, channels.mass].mean()) if channels.mass is not None else None
    return Classification(
        kind=FindingKind.BREAST_ASSESSMENT,
        laterality=Laterality(side),
        score=mass,
        density=BreastDensity(labels[int(np.argmax(density))]),
        probabilities=tuple(
            ClassProbability(label, float(np.clip(p, 0.0, 1.0)))
            for label, p in zip(labels, density, strict=True)
        ),
        sop_instance_uids=tuple(str(datasets[i].SOPInstanceUID) for i in indices),
    )
