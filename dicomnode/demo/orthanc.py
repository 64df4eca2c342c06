"""Orthanc (Debian's package) on loopback: the demo's receiving PACS, and the tests' and benches'.

Started with a temporary JSON config on free loopback ports, storage in its own folder and
Nagle off (PITFALLS: libdcmnet waits for delayed ACKs otherwise); talks REST with the standard
library only.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dicomnode.demo.processes import free_port, stop_process

__all__ = ["DICOMWEB_PLUGIN", "ORTHANC", "Orthanc"]

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
"""Orthanc's executable (Debian's package installs it in /usr/sbin)."""
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
"""Orthanc's DICOMweb plugin (Debian's package ``orthanc-dicomweb``)."""


@dataclass
class Orthanc:
    """A running Orthanc; ``modalities`` maps a name to ``(ae_title, host, port)``.

    Attributes
    ----------
    root : Path
        Its folder: config, storage, log.
    known_senders_only : bool
        Accept C-STOREs only from ``modalities`` (AE title and host checked); otherwise from
        anyone.
    dicomweb : bool
        Load the DICOMweb plugin (QIDO-RS, WADO-RS, STOW-RS at :attr:`dicomweb_url`).
    """

    root: Path
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    ae_title: str = "ORTHANC"
    name: str = "dicomnode-pacs"
    known_senders_only: bool = False
    dicomweb: bool = False
    http_port: int = 0
    dicom_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        """Orthanc's log file."""
        return self.root / "orthanc.log"

    @property
    def dicomweb_url(self) -> str:
        """Base URL of its DICOMweb service (with :attr:`dicomweb`)."""
        return f"http://127.0.0.1:{self.http_port}/dicom-web"

    def start(self, timeout: float = 30) -> Orthanc:
        """Start and wait for the REST API; RuntimeError (naming the log) when it does not."""
        self.http_port = self.http_port or free_port()
        self.dicom_port = self.dicom_port or free_port()
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": self.name,
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "HttpServerEnabled": True,
            "DicomServerEnabled": True,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": not self.known_senders_only,
            "DicomCheckModalityHost": self.known_senders_only,
            "OverwriteInstances": True,
            "Plugins": [str(DICOMWEB_PLUGIN)] if self.dicomweb else [],
            "DicomWeb": {"Enable": self.dicomweb, "Root": "/dicom-web/"},
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
        }
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        with open(self.log_path, "ab") as log_file:
            self.proc = subprocess.Popen(
                [ORTHANC, str(path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TCP_NODELAY": "1"},  # Nagle off (libdcmnet)
                start_new_session=True,  # Ctrl-C reaches the caller, which stops it in order
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited (log: {self.log_path})")
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError(
            f"Orthanc did not answer on its REST port within {timeout:g} s (log: {self.log_path})"
        )

    def stop(self) -> None:
        """Terminate Orthanc and wait for it."""
        stop_process(self.proc, grace=20)
        self.proc = None

    def _request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "application/json",
    ) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=body,
            method=method,
            headers={"Content-Type": content_type},
        )
        with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310 - loopback
            data = response.read()
            if response.headers.get_content_type() == "application/json":
                return json.loads(data)
            return data

    def get(self, path: str) -> Any:
        """GET ``path`` of the REST API (JSON decoded, else bytes)."""
        return self._request("GET", path)

    def post(self, path: str, payload: Any) -> Any:
        """POST ``payload`` as JSON to ``path`` of the REST API."""
        return self._request("POST", path, json.dumps(payload).encode())

    def upload(self, files: list[Path]) -> set[str]:
        """Upload Part 10 files over REST; returns the Orthanc study IDs."""
        studies = set()
        for path in files:
            answer = self._request("POST", "/instances", path.read_bytes(), "application/dicom")
            studies.add(answer["ParentStudy"])
        return studies

    def send_study(self, modality: str, study_id: str) -> Any:
        """C-STORE a study to a configured modality (what "send to node" does)."""
        return self.post(
            f"/modalities/{modality}/store", {"Resources": [study_id], "Synchronous": True}
        )

    def instances_of_study(self, study_uid: str) -> list[dict[str, Any]]:
        """Every instance Orthanc holds in the study with this StudyInstanceUID."""
        found = self.post(
            "/tools/find",
            {"Level": "Instance", "Expand": True, "Query": {"StudyInstanceUID": study_uid}},
        )
        return list(found)

    def file(self, instance_id: str) -> bytes:
        """The Part 10 bytes of one instance (by Orthanc ID)."""
        data = self._request("GET", f"/instances/{instance_id}/file")
        if not isinstance(data, bytes):
            raise RuntimeError(f"Orthanc answered JSON for the file of {instance_id}")
        return data

    def results_of_study(self, study_uid: str, exclude: set[str]) -> list[dict[str, Any]]:
        """Instances of the study whose SOP Instance UID is not in ``exclude`` (the sources)."""
        return [
            item
            for item in self.instances_of_study(study_uid)
            if item["MainDicomTags"]["SOPInstanceUID"] not in exclude
        ]
