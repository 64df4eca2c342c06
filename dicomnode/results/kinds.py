"""The kinds of result object a pipeline's findings are encoded as, defined once.

Light (no pydicom, no highdicom): the config schema, the routes and the pipeline contract use
these names; the encoders in :mod:`dicomnode.results.outputs` act on them.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["DEFAULT_OUTPUTS", "OutputKind"]


class OutputKind(StrEnum):
    """A kind of result object (the values of ``outputs`` in routes and ``pipelines.<name>``)."""

    SR = "sr"
    SEG = "seg"
    SUMMARY = "summary"


DEFAULT_OUTPUTS: tuple[OutputKind, ...] = (OutputKind.SR, OutputKind.SEG, OutputKind.SUMMARY)
"""SR always, SEG when a mask is non-empty, summary image."""
