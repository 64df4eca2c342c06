"""Orthanc (Debian's package) as the PACS of the end-to-end tests.

Started with a temporary JSON config on free loopback ports, storage in a temp dir, Nagle off.
Talks REST with the standard library only.
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

from tests.support.nodeproc import free_port

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"


@dataclass
class Orthanc:
    """A running Orthanc; ``modalities`` maps a name to ``(ae_title, host, port)``."""

    root: Path
    modalities: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    ae_title: str = "ORTHANC"
    http_port: int = 0
    dicom_port: int = 0
    proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30) -> Orthanc:
        self.http_port = self.http_port or free_port()
        self.dicom_port = self.dicom_port or free_port()
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "dicomnode-test-pacs",
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
            "OverwriteInstances": True,
            "Plugins": [],
            "DicomModalities": {
                name: [aet, host, port] for name, (aet, host, port) in self.modalities.items()
            },
        }
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=2))
        log = open(self.root / "orthanc.log", "ab")  # noqa: SIM115 - kept open for the child
        self.proc = subprocess.Popen(
            [ORTHANC, str(path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "TCP_NODELAY": "1"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((self.root / "orthanc.log").read_text()[-2000:])
            try:
                self.get("/system")
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise TimeoutError("Orthanc did not start")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

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
        return self._request("GET", path)

    def post(self, path: str, payload: Any) -> Any:
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
        assert isinstance(data, bytes)
        return data

    def results_of_study(self, study_uid: str, exclude: set[str]) -> list[dict[str, Any]]:
        """Instances of the study whose SOP Instance UID is not in ``exclude`` (the sources)."""
        return [
            item
            for item in self.instances_of_study(study_uid)
            if item["MainDicomTags"]["SOPInstanceUID"] not in exclude
        ]
