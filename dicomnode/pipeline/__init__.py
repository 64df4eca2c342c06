"""The pipeline contract, the registry of pipelines, and device selection."""

from dicomnode.pipeline.contract import (
    InputRefused,
    Pipeline,
    PipelineInputs,
    PipelineLevel,
    PipelineResult,
    RunContext,
    SeriesInput,
)
from dicomnode.pipeline.registry import (
    ENTRY_POINT_GROUP,
    PipelineRegistry,
    PipelineStatus,
    PipelineUnavailable,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "InputRefused",
    "Pipeline",
    "PipelineInputs",
    "PipelineLevel",
    "PipelineRegistry",
    "PipelineResult",
    "PipelineStatus",
    "PipelineUnavailable",
    "RunContext",
    "SeriesInput",
]
