"""HTTP API: health, readiness, Prometheus metrics, JSON status of studies/jobs/deliveries.

:class:`ApiServer` (FastAPI and uvicorn) is imported on first use: commands that never serve
HTTP do not load the web stack.
"""

from typing import TYPE_CHECKING, Any

from dicomnode.api.metrics import NodeMetrics, StateCollector

if TYPE_CHECKING:
    from dicomnode.api.server import ApiServer

__all__ = ["ApiServer", "NodeMetrics", "StateCollector"]


def __getattr__(name: str) -> Any:
    if name == "ApiServer":
        from dicomnode.api.server import ApiServer

        return ApiServer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
