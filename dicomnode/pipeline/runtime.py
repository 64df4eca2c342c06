"""Device selection for inference: ``auto`` is CUDA when present, else the CPU."""

from __future__ import annotations

__all__ = ["resolve_device"]


def resolve_device(requested: str = "auto") -> str:
    """Resolve ``workers.device`` (``auto``, ``cpu``, ``cuda``, ``cuda:N``) to a torch device.

    Imports torch (``cpu`` excepted): call it in the worker process, never on the SCP's
    start-up path.

    Raises
    ------
    ValueError
        When CUDA is requested but not available, or the name is unknown.
    """
    if requested == "cpu":
        return "cpu"
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if requested.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"workers.device is {requested!r} but CUDA is not available")
        return requested
    raise ValueError(f"workers.device must be auto, cpu, cuda or cuda:N, got {requested!r}")
