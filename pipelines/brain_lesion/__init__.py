"""Brain lesion segmentation in MR FLAIR (MONAI SegResNet bundle; BraTS bundle drop-in)."""

from pipelines.brain_lesion.pipeline import BrainLesionPipeline

__all__ = ["BrainLesionPipeline"]
