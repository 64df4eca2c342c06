"""Lung nodule detection in chest CT (MONAI RetinaNet bundle)."""

from pipelines.lung_nodule.pipeline import LungNodulePipeline

__all__ = ["LungNodulePipeline"]
