"""A job's findings in brief, read from the findings JSON it wrote (no pixel data decoded).

Every run keeps its findings beside its results (:data:`dicomnode.pipeline.execute.
FINDINGS_FILE`); :meth:`FindingsSummary.from_directory` reads them back as measured items,
which the ``findings`` conditions of the webhooks are tested on, and which
:meth:`FindingsSummary.as_json` sums up per finding kind (counts, largest size and score) for
the job row and the notification bodies.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomnode.notify.schema import FindingCondition

__all__ = ["FindingsSummary", "Measured"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Measured:
    """One finding (a region or a classification) with the measurements it has."""

    kind: str
    diameter_mm: float | None = None
    volume_ml: float | None = None
    score: float | None = None

    def meets(self, condition: FindingCondition) -> bool:
        """Whether this finding is of the condition's kind and reaches each of its minima."""
        if self.kind != condition.kind.value:
            return False
        pairs = (
            (self.diameter_mm, condition.min_diameter_mm),
            (self.volume_ml, condition.min_volume_ml),
            (self.score, condition.min_score),
        )
        return all(
            bound is None or (value is not None and value >= bound) for value, bound in pairs
        )


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _largest(values: Iterable[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


@dataclass(frozen=True)
class FindingsSummary:
    """What one job found, per finding kind.

    Attributes
    ----------
    searched : tuple of str
        The finding kinds the pipeline looked for (reported with a count of 0 when none).
    items : tuple of Measured
        Every region and classification.
    mask_voxels : dict
        Finding kind → voxels set in its mask (kinds with an empty or no mask left out).
    """

    searched: tuple[str, ...] = ()
    items: tuple[Measured, ...] = ()
    mask_voxels: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_documents(cls, documents: Iterable[Mapping[str, Any]]) -> FindingsSummary:
        """Merge findings documents (``dataclasses.asdict`` of :class:`~dicomnode.results.
        Findings`, masks as ``{"shape", "nonzero"}``)."""
        searched: list[str] = []
        items: list[Measured] = []
        voxels: dict[str, int] = {}
        for doc in documents:
            searched.extend(str(kind) for kind in doc.get("kinds", ()) if kind not in searched)
            for region in doc.get("regions", ()):
                items.append(
                    Measured(
                        str(region.get("kind")),
                        _number(region.get("diameter_mm")),
                        _number(region.get("volume_ml")),
                        _number(region.get("score")),
                    )
                )
            for item in doc.get("classifications", ()):
                items.append(Measured(str(item.get("kind")), score=_number(item.get("score"))))
            for mask in doc.get("masks", ()):
                nonzero = (mask.get("array") or {}).get("nonzero")
                if isinstance(nonzero, int) and nonzero > 0:
                    kind = str(mask.get("kind"))
                    voxels[kind] = voxels.get(kind, 0) + nonzero
        return cls(tuple(searched), tuple(items), voxels)

    @classmethod
    def from_directory(cls, directory: Path) -> FindingsSummary | None:
        """The findings files of a job's results directory; None when there is none (or
        none can be read: logged, never raised, the job's success does not depend on it)."""
        documents = []
        for path in sorted(directory.glob("findings-*.json")):
            try:
                documents.append(json.loads(path.read_text(encoding="utf-8")))
            except (OSError, ValueError) as exc:
                log.warning("cannot read a findings file: %s", type(exc).__name__)
        return cls.from_documents(documents) if documents else None

    @property
    def anything(self) -> bool:
        """Whether anything was found (a region, a classification, a non-empty mask)."""
        return bool(self.items or self.mask_voxels)

    def meets(self, condition: FindingCondition) -> bool:
        """Whether one finding meets ``condition``; a condition without minima is also met by
        a non-empty mask of its kind."""
        if any(item.meets(condition) for item in self.items):
            return True
        plain = (condition.min_diameter_mm, condition.min_volume_ml, condition.min_score)
        return all(bound is None for bound in plain) and condition.kind.value in self.mask_voxels

    def as_json(self) -> dict[str, dict[str, Any]]:
        """Per finding kind: ``count`` (regions and classifications), ``max_diameter_mm``,
        ``max_volume_ml``, ``max_score`` (null when unmeasured) and ``mask_voxels``."""
        kinds = list(self.searched)
        kinds += sorted(({i.kind for i in self.items} | set(self.mask_voxels)) - set(kinds))
        summary = {}
        for kind in kinds:
            mine = [item for item in self.items if item.kind == kind]
            summary[kind] = {
                "count": len(mine),
                "max_diameter_mm": _largest(item.diameter_mm for item in mine),
                "max_volume_ml": _largest(item.volume_ml for item in mine),
                "max_score": _largest(item.score for item in mine),
                "mask_voxels": self.mask_voxels.get(kind, 0),
            }
        return summary
