"""The pipeline contract, the registry of pipelines, the one execution path, device selection."""

from dicomnode.pipeline.contract import (
    InputRefused,
    Pipeline,
    PipelineInputs,
    PipelineLevel,
    PipelineResult,
    RunContext,
    SeriesInput,
)
from dicomnode.pipeline.execute import Execution, ResultFile, choose_outputs, execute
from dicomnode.pipeline.registry import (
    ENTRY_POINT_GROUP,
    PipelineRegistry,
    PipelineStatus,
    PipelineUnavailable,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Execution",
    "InputRefused",
    "Pipeline",
    "PipelineInputs",
    "PipelineLevel",
    "PipelineRegistry",
    "PipelineResult",
    "PipelineStatus",
    "PipelineUnavailable",
    "ResultFile",
    "RunContext",
    "SeriesInput",
    "choose_outputs",
    "execute",
]
