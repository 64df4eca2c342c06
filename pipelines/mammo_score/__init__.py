"""Screening mammography: per-breast mass score and density (MONAI classifier bundle)."""

from pipelines.mammo_score.pipeline import MammoScorePipeline

__all__ = ["MammoScorePipeline"]
