"""``dicomnode demo``: the whole node on one machine in a few minutes.

:mod:`~dicomnode.demo.run` drives it (a node subprocess on the embedded defaults beside a
receiving peer), :mod:`~dicomnode.demo.studies` generates and sends the studies,
:mod:`~dicomnode.demo.peers` receives the results (:mod:`~dicomnode.demo.orthanc` when Orthanc
is installed); :mod:`~dicomnode.demo.processes` has the local-process helpers they share with
the tests and benchmarks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DemoFailed", "DemoNode", "DemoOptions", "run_demo"]


def __getattr__(name: str) -> Any:
    # lazily: the tests' helpers import dicomnode.demo.processes without the demo's imports
    if name in __all__:
        from dicomnode.demo import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
