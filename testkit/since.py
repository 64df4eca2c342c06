"""What a node shared by several tests gained since one test began.

A node start costs seconds (a Python process, its imports, SCP processes), a test case over
the wire milliseconds: a module whose cases need no fresh state starts one node and each case
checks only what it added: files in the store, rows (by id) and log text. A fresh node per case
checked the same things against an empty start.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from testkit.nodeproc import NodeProcess

__all__ = ["Since"]

#: Tables whose rows a case may count; each has an integer ``id`` that only grows.
TABLES = ("studies", "series", "instances", "audit_events")


class Since:
    """The state of ``node`` now; its methods answer with what was added after that."""

    def __init__(self, node: NodeProcess, *, from_empty: bool = False):
        self.node = node
        self.port = node.port
        self._files = set() if from_empty else set(node.stored_files())
        self._ids = {table: 0 if from_empty else self._last_id(table) for table in TABLES}
        self._log = 0 if from_empty else len(node.log_text())

    @property
    def store(self) -> Path:
        """The node's store (its spool ``.incoming`` is empty between cases, shared or not)."""
        return self.node.store

    @property
    def root(self) -> Path:
        return self.node.root

    @classmethod
    def everything(cls, node: NodeProcess) -> Since:
        """A view of all that ``node`` holds (as if it began empty)."""
        return cls(node, from_empty=True)

    def _last_id(self, table: str) -> int:
        return int(self.node.query(f"select coalesce(max(id), 0) from {table}")[0][0])  # noqa: S608

    def stored_files(self) -> list[Path]:
        """Files of the store proper that were not there at the start."""
        return sorted(set(self.node.stored_files()) - self._files)

    def rows(self, table: str, columns: str = "count(*)", where: str = "1 = 1") -> list[Any]:
        """``select columns from table where ...`` over the rows added since the start, in
        the order they were added."""
        if table not in self._ids:
            raise ValueError(f"table must be one of {', '.join(TABLES)}, got {table!r}")
        since = self._ids[table]
        return self.node.query(
            f"select {columns} from {table} where id > {since} and ({where}) order by id"  # noqa: S608
        )

    def count(self, table: str, where: str = "1 = 1") -> int:
        """Rows added to ``table`` since the start (that match ``where``)."""
        return int(self.rows(table, "count(*)", where)[0][0])

    def log_text(self) -> str:
        """The node's log written since the start."""
        return self.node.log_text()[self._log :]

    def audit(self, kind: str, *, expect: int = 0, timeout: float = 10) -> list[tuple[Any, ...]]:
        """(peer, detail) of the ``kind`` audit rows added since the start, once there are
        ``expect`` of them (or after ``timeout`` seconds: the caller asserts on what came)."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows("audit_events", "peer, detail", f"kind = '{kind}'")
            if len(rows) >= expect or time.monotonic() > deadline:
                return rows
            time.sleep(0.05)
