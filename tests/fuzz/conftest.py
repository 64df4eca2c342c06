"""Fixtures of the fuzz tests: a real store (SQLite) shared by all inputs of one property."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from dicomnode.store.db import open_database
from dicomnode.store.ingest import Store


@pytest.fixture
def fuzz_store(tmp_path: Path) -> Iterator[Store]:
    """A store on SQLite in ``tmp_path``; pydicom's warnings about bad values silenced."""
    db = open_database(f"sqlite:///{tmp_path / 'state.db'}")
    logging.disable(logging.ERROR)  # every refusal logs; thousands of lines help nobody
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield Store(tmp_path / "store", db, min_free=0)
    finally:
        logging.disable(logging.NOTSET)
        db.dispose()
