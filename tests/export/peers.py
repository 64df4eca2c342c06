"""Real receiving peers for export tests: dcmtk storescp, and a pynetdicom SCP whose
C-STORE status the test chooses."""

from __future__ import annotations

import subprocess
from pathlib import Path

from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomnode.demo.processes import stop_process
from testkit.nodeproc import DCMTK_ENV, free_port, wait_listening

STORESCP = "/usr/bin/storescp"


class Storescp:
    """dcmtk storescp as the PACS: every received instance becomes a new file (``+uf``)."""

    def __init__(self, out: Path, port: int | None = None, ae_title: str = "PACS"):
        self.out = out
        self.port = port or free_port()
        self.ae_title = ae_title
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Storescp:
        """Start it and wait until it accepts connections."""
        self.out.mkdir(parents=True, exist_ok=True)
        log = self.out.with_name(f"{self.out.name}-storescp.log")
        with log.open("ab") as handle:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                [
                    STORESCP,
                    "--fork",
                    "+uf",
                    "-aet",
                    self.ae_title,
                    "-od",
                    str(self.out),
                    str(self.port),
                ],
                env=DCMTK_ENV,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        wait_listening(self.proc, self.port, 10, log)
        return self

    def files(self) -> list[Path]:
        return sorted(p for p in self.out.iterdir() if p.is_file())

    def stop(self) -> None:
        stop_process(self.proc, grace=0)


class StatusSCP:
    """A pynetdicom Storage SCP answering every C-STORE with ``status`` (changeable)."""

    def __init__(self, status: int, ae_title: str = "PACS"):
        self.status = status
        self.port = free_port()
        self.received: list[str] = []
        self.ae = AE(ae_title=ae_title)
        self.ae.supported_contexts = AllStoragePresentationContexts
        self.ae.add_supported_context(Verification)
        self.server = None

    def _on_store(self, event: evt.Event) -> int:
        self.received.append(str(event.request.AffectedSOPInstanceUID))
        return self.status

    def start(self) -> StatusSCP:
        self.server = self.ae.start_server(
            ("127.0.0.1", self.port), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
