"""Long fuzz runs of the harnesses of ``tests/fuzz``: the store handler and routing.

Usage: ``python bench/fuzz.py [--examples 20000] [--seconds N] [--target store|routing|headers]``.
Runs each target in batches of random (not derandomized) inputs until the example count or
the time is reached; prints the inputs tried, the outcomes (statuses) per target and the
crashes found. A crash is shrunk by hypothesis; its input is written under ``--out`` and the
run goes on. Exits 1 when a crash was found.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
import traceback
import warnings
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hypothesis import given, seed, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from dicomnode.store.db import open_database  # noqa: E402
from dicomnode.store.ingest import Store  # noqa: E402
from testkit.fuzzing import (  # noqa: E402
    check_routing_file,
    check_routing_header,
    check_store,
    digest,
    headers,
)
from testkit.mutate import routing_cases, store_cases  # noqa: E402

BATCH = 1000


def _targets(store: Store) -> dict[str, tuple[st.SearchStrategy[Any], Callable[[Any], str]]]:
    return {
        "store": (store_cases(), lambda case: check_store(store, case)),
        "routing": (routing_cases(), lambda case: check_routing_file(store, case)),
        "headers": (headers(), check_routing_header),
    }


def run(name: str, strategy: Any, check: Callable[[Any], str], args: argparse.Namespace) -> int:
    """Batches until done; prints a summary line; returns the number of crashes."""
    outcomes: Counter[str] = Counter()
    crashes = 0
    tried = 0
    deadline = time.monotonic() + args.seconds if args.seconds else None
    batch = 0
    while tried < args.examples and (deadline is None or time.monotonic() < deadline):
        size = min(BATCH, args.examples - tried)

        @seed(args.seed + batch)
        @settings(max_examples=size, deadline=None, database=None, derandomize=False)
        @given(strategy)
        def one(value: Any) -> None:
            outcomes[check(value).split("/")[0]] += 1

        before = sum(outcomes.values())
        try:
            one()
        except Exception:
            crashes += 1
            text = traceback.format_exc()
            path = args.out / f"crash-{name}-{digest(text.encode())}.txt"
            path.write_text(text)
            print(f"  CRASH in {name}: {text.splitlines()[-1]} (details: {path})", flush=True)
        tried += sum(outcomes.values()) - before
        batch += 1
    shown = ", ".join(f"{k}={v}" for k, v in outcomes.most_common())
    print(f"{name:8s} inputs={tried:6d} crashes={crashes}  {shown}", flush=True)
    return crashes


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=20_000, help="inputs per target")
    parser.add_argument("--seconds", type=float, default=0, help="time limit per target")
    parser.add_argument("--target", choices=["store", "routing", "headers"], action="append")
    parser.add_argument("--seed", type=int, default=int(time.time()))
    parser.add_argument("--out", type=Path, default=Path("fuzz-crashes"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    warnings.simplefilter("ignore")
    logging.disable(logging.ERROR)
    print(f"seed {args.seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="dicomnode-fuzz-") as tmp:
        db = open_database(f"sqlite:///{Path(tmp) / 'state.db'}")
        store = Store(Path(tmp) / "store", db, min_free=0)
        targets = _targets(store)
        crashes = sum(run(name, *targets[name], args) for name in (args.target or list(targets)))
        db.dispose()
    print(f"crashes found: {crashes}")
    return 1 if crashes else 0


if __name__ == "__main__":
    sys.exit(main())
