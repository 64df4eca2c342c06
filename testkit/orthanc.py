"""Orthanc as a test's peer."""

from __future__ import annotations

from dicomnode.demo.orthanc import Orthanc
from dicomnode.demo.processes import stop_process

__all__ = ["discard"]


def discard(orthanc: Orthanc) -> None:
    """Kill a test's Orthanc at once (its process group): its storage goes with the test's
    temporary folder, and :meth:`Orthanc.stop` waits about 3.4 s for Orthanc to shut down."""
    stop_process(orthanc.proc, grace=0, group=True)
    orthanc.proc = None
