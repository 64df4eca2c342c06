"""One decoded CT series with its lungs and the identity of its instances."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from dicomnode.results.changes import InstanceRef

if TYPE_CHECKING:
    from pipelines.common.dicomio import Volume
    from pipelines.lung_nodule.lungs import LungMask

__all__ = ["Scan"]


@dataclass(frozen=True)
class Scan:
    """A CT series ready for detection.

    Attributes
    ----------
    volume : Volume
        HU and geometry.
    lungs : LungMask
        Its lungs.
    study_uid, series_uid, sop_class_uid : str
        Identity of the series' instances.
    study_date : str, optional
        StudyDate (``YYYYMMDD``).
    """

    volume: Volume
    lungs: LungMask
    study_uid: str
    series_uid: str
    sop_class_uid: str
    study_date: str | None = None

    def instance_at(self, centre_mm: np.ndarray) -> InstanceRef:
        """The instance holding the slice nearest ``centre_mm``."""
        uid = self.volume.sop_instance_at(centre_mm)
        return InstanceRef(self.study_uid, self.series_uid, self.sop_class_uid, uid)
