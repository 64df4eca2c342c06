"""HTTP API: health, readiness, Prometheus metrics, JSON status of studies/jobs/deliveries."""

from dicomnode.api.metrics import NodeMetrics, StateCollector
from dicomnode.api.server import ApiServer

__all__ = ["ApiServer", "NodeMetrics", "StateCollector"]
