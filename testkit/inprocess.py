"""The node's SCP in the test's own process, on a fresh store and SQLite database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dicomnode.config.schema import NodeConfig
from dicomnode.net.scp import StorageSCP, configure_pynetdicom
from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store
from testkit.nodeproc import free_port

__all__ = ["storage_scp"]


def storage_scp(tmp_path: Path, **kwargs: Any) -> StorageSCP:
    """A :class:`StorageSCP` on a free loopback port, not started (``kwargs``: its own)."""
    configure_pynetdicom()
    store = Store(
        tmp_path / "store", open_database(f"sqlite:///{tmp_path / 'state.db'}"), min_free=0
    )
    return StorageSCP(NodeConfig(host="127.0.0.1", port=free_port()), store, **kwargs)
