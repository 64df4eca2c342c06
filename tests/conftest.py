"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.nodeproc import NodeProcess


@pytest.fixture
def node_factory(tmp_path: Path) -> Iterator[Any]:
    """Start node subprocesses; every one is stopped at the end of the test."""
    started: list[NodeProcess] = []

    def make(name: str = "node", **overrides: Any) -> NodeProcess:
        node = NodeProcess(tmp_path / name, overrides)
        started.append(node)
        return node

    yield make
    for node in started:
        node.kill()
