"""One segmented brain MR: what the follow-up compares."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dicomnode.results import RegionFinding
from dicomnode.results.changes import InstanceRef

if TYPE_CHECKING:
    from pipelines.common.dicomio import Volume

__all__ = ["Segmentation"]


@dataclass(frozen=True)
class Segmentation:
    """The lesions of one study on its source grid.

    Attributes
    ----------
    volume : Volume
        The FLAIR (the last input channel) and its geometry.
    regions : list of RegionFinding
        The reported lesions, ``lesion n`` on label ``n``.
    labels : numpy.ndarray
        Integer ``[slice, row, column]`` label volume of the reported lesions.
    brain : numpy.ndarray
        Boolean ``[slice, row, column]`` skull-stripped brain.
    study_uid, series_uid, sop_class_uid : str
        Identity of the FLAIR's instances.
    study_date : str, optional
        Its StudyDate.
    """

    volume: Volume
    regions: list[RegionFinding]
    labels: np.ndarray
    brain: np.ndarray
    study_uid: str
    series_uid: str
    sop_class_uid: str
    study_date: str | None = None

    def instance_at(self, centre_mm: Sequence[float]) -> InstanceRef:
        """The FLAIR instance holding the slice nearest ``centre_mm``."""
        uid = self.volume.sop_instance_at(centre_mm)
        return InstanceRef(self.study_uid, self.series_uid, self.sop_class_uid, uid)
