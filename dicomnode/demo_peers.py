"""Receiving peers of ``dicomnode demo``: Orthanc when installed, else a built-in Storage SCP.

Both listen on loopback only (Orthanc's HTTP; its DICOM port accepts stores from the node's AE
at 127.0.0.1 only), keep what they receive in a temporary folder and answer
:meth:`Peer.received`: the result objects they hold for a study, with the time each arrived.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Protocol

import pydicom
from pynetdicom import AE, AllStoragePresentationContexts, _config, evt
from pynetdicom.sop_class import Verification  # type: ignore[attr-defined]

from dicomnode.dimse import Status

__all__ = ["ORTHANC", "BuiltinReceiver", "OrthancPeer", "Peer", "Received", "free_port"]

log = logging.getLogger(__name__)

ORTHANC = shutil.which("Orthanc") or "/usr/sbin/Orthanc"
"""Orthanc's executable (Debian's package installs it in /usr/sbin)."""

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Received:
    """One object a peer holds: its study, Part 10 bytes and arrival time (``time.time()``)."""

    study_uid: str
    sop_instance_uid: str
    modality: str
    data: bytes
    arrived: float


class Peer(Protocol):
    """What the demo needs from a receiving peer."""

    name: str
    ae_title: str
    port: int

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def received(self, study_uid: str) -> list[Received]:
        """Objects held for ``study_uid``, oldest first."""
        ...


class BuiltinReceiver:
    """A small pynetdicom Storage SCP on loopback that keeps every object in memory.

    Parameters
    ----------
    ae_title : str
        Its AE title (the node's destination).
    """

    name = "built-in receiver"

    def __init__(self, ae_title: str = "DEMOPACS"):
        self.ae_title = ae_title
        self.port = 0
        self._lock = threading.Lock()
        self._items: list[Received] = []
        self._server: Any = None

    def start(self) -> None:
        """Listen on a free loopback port."""
        _config.LOG_REQUEST_IDENTIFIERS = False
        _config.LOG_RESPONSE_IDENTIFIERS = False
        ae = AE(ae_title=self.ae_title)
        ae.supported_contexts = AllStoragePresentationContexts
        ae.add_supported_context(Verification)
        ae.maximum_pdu_size = 0
        self._server = ae.start_server(
            ("127.0.0.1", 0), block=False, evt_handlers=[(evt.EVT_C_STORE, self._on_store)]
        )
        self.port = int(self._server.server_address[1])

    def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.shutdown()
            self._server = None

    def _on_store(self, event: evt.Event) -> int:
        """Keep the dataset; never raises (a DIMSE status instead)."""
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            buffer = BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            item = Received(
                study_uid=str(ds.StudyInstanceUID),
                sop_instance_uid=str(ds.SOPInstanceUID),
                modality=str(ds.get("Modality", "")),
                data=buffer.getvalue(),
                arrived=time.time(),
            )
        except MemoryError:
            return Status.OUT_OF_RESOURCES
        except Exception as exc:  # any decoding problem becomes "cannot understand"
            log.warning("receiver: unreadable dataset: %s", type(exc).__name__)
            return Status.CANNOT_UNDERSTAND
        with self._lock:
            self._items.append(item)
        return Status.SUCCESS

    def received(self, study_uid: str) -> list[Received]:
        """Objects held for ``study_uid``, oldest first."""
        with self._lock:
            return [item for item in self._items if item.study_uid == study_uid]


class OrthancPeer:
    """Orthanc with a temporary config and storage; the node is its only allowed sender.

    Parameters
    ----------
    root : Path
        Its folder (config, storage, log).
    sender_ae : str
        The AE title allowed to store (the node's).
    """

    name = "Orthanc"

    def __init__(self, root: Path, sender_ae: str, ae_title: str = "ORTHANC"):
        self.root = root
        self.sender_ae = sender_ae
        self.ae_title = ae_title
        self.port = 0
        self.http_port = 0
        self._proc: subprocess.Popen[bytes] | None = None
        self._arrivals: dict[str, float] = {}
        self._cache: dict[str, Received] = {}

    def start(self, timeout: float = 30) -> None:
        """Start Orthanc and wait for its REST API; RuntimeError when it does not come up."""
        self.port, self.http_port = free_port(), free_port()
        storage = self.root / "storage"
        storage.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": "dicomnode-demo-pacs",
            "StorageDirectory": str(storage),
            "IndexDirectory": str(storage),
            "HttpPort": self.http_port,
            "DicomPort": self.port,
            "DicomAet": self.ae_title,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "DicomModalities": {"node": {"AET": self.sender_ae, "Host": "127.0.0.1", "Port": 104}},
            "Plugins": [],
        }
        path = self.root / "orthanc.json"
        path.write_text(json.dumps(config, indent=2), encoding="utf-8")
        with open(self.root / "orthanc.log", "ab") as log_file:
            self._proc = subprocess.Popen(
                [ORTHANC, str(path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, "TCP_NODELAY": "1"},  # Nagle off (libdcmnet)
                start_new_session=True,  # Ctrl-C reaches the demo, which stops it in order
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"Orthanc exited (log: {self.root / 'orthanc.log'})")
            try:
                self._get("/system")
                return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError("Orthanc did not answer on its REST port within 30 s")

    def stop(self) -> None:
        """Terminate Orthanc and wait for it."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
        self._proc = None

    def _request(self, method: str, path: str, body: bytes | None = None) -> Any:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.http_port}{path}",
            data=body,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310 - loopback
            data = response.read()
            if response.headers.get_content_type() == "application/json":
                return json.loads(data)
            return data

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def received(self, study_uid: str) -> list[Received]:
        """Objects held for ``study_uid``; arrival is when this peer first saw them listed."""
        query = {"Level": "Instance", "Expand": True, "Query": {"StudyInstanceUID": study_uid}}
        found = self._request("POST", "/tools/find", json.dumps(query).encode())
        items = []
        for entry in found:
            orthanc_id = str(entry["ID"])
            if orthanc_id not in self._cache:
                data = self._get(f"/instances/{orthanc_id}/file")
                ds = pydicom.dcmread(BytesIO(data), stop_before_pixels=True)
                self._cache[orthanc_id] = Received(
                    study_uid=study_uid,
                    sop_instance_uid=str(ds.SOPInstanceUID),
                    modality=str(ds.get("Modality", "")),
                    data=data,
                    arrived=time.time(),
                )
            items.append(self._cache[orthanc_id])
        return sorted(items, key=lambda item: item.arrived)


def valid_uid(text: str) -> bool:
    """Whether ``text`` is a DICOM UID (safe as a file name part)."""
    return len(text) <= 64 and bool(_UID.match(text))
