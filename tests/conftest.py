"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testkit.nodeproc import NodeProcess, running


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


@pytest.fixture(scope="module")
def shared_node(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One node started for a whole module, on the module's ``SHARED_NODE`` config overrides
    (default: none). Its tests must not need a fresh node: each looks at what the node gained
    while it ran (:class:`testkit.since.Since`)."""
    overrides = getattr(request.module, "SHARED_NODE", {})
    with running(tmp_path_factory.mktemp("shared") / "node", overrides) as node:
        yield node


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """URL of a database in a PostgreSQL cluster started for this test session."""
    from testkit.pg import postgres_cluster

    with postgres_cluster() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """A migrated state database on each supported backend."""
    from dicomnode.store.db import open_database

    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'state.db'}"
    else:
        from testkit.pg import fresh_database

        base = request.getfixturevalue("postgres_url")
        url = fresh_database(base, f"t{abs(hash(request.node.nodeid)) % 10**12}")
    db = open_database(url)
    yield db
    db.dispose()
