"""The real-world corpus through a real node (issue 11 item 8): what is stored, refused, analysed.

Every file pydicom ships as test data and every header mutation of :mod:`testkit.corpus` on a
small synthetic study of each of the three pipelines (CT chest, FLAIR MR, 4-view mammogram) is
sent to one ``dicomnode serve`` process (one association per file, each on a context of its own
SOP class and transfer syntax). Every mutated series is routed; results are kept and checked
with ``dciodvfy``.

Usage: ``python bench/corpus.py [--keep DIR]``. Prints the outcome table and one line per
mutated case; exits 1 when a file has no clear outcome, a result has a dciodvfy error, a
refusal reads like Python, something partial is on disk, or the node died.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # testkit, run from anywhere

from testkit.corpus import PIPELINES, mutated_cases, pydicom_cases  # noqa: E402
from testkit.corpusrun import PYTHON_WORDS, node_config, partial_files, run_corpus  # noqa: E402
from testkit.nodeproc import NodeProcess  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", type=Path, help="work in DIR and keep it (default: a temp dir)")
    args = parser.parse_args(argv)
    root = args.keep or Path(tempfile.mkdtemp(prefix="corpus-"))
    started = time.monotonic()
    files = pydicom_cases(root / "corpus")
    series = list(mutated_cases(root / "corpus"))
    files += [item for case in series for item in case.files]
    node = NodeProcess(root / "node", node_config()).start(timeout=60)
    try:
        # every mutated series that the node keeps should be analysed: one job per study
        run = run_corpus(node, files, expected_jobs=1, timeout=900)
        partial = partial_files(node)
    finally:
        node.stop()
    print(f"corpus run: {time.monotonic() - started:.0f} s, pipelines {', '.join(PIPELINES)}\n")
    print(run.table(series) + "\n")
    print(run.by_mutation(series))
    failures = []
    failures += [f"no clear outcome: {f.name}" for f, out in run.sent if out.status is None
                 and not out.problem]  # fmt: skip
    failures += [f"partial on disk: {p}" for p in partial]
    failures += [
        f"dciodvfy: {job.pipeline} {name}: {lines[0]}"
        for job in run.jobs
        for name, lines in job.dciodvfy_errors.items()
        if lines
    ]
    failures += [
        f"reads like Python: {job.pipeline}: {job.error}"
        for job in run.jobs
        if job.state != "succeeded" and (PYTHON_WORDS.search(job.error) or "\n" in job.error)
    ]
    if not run.alive:
        failures.append("node died")
    for line in failures:
        print("FAIL", line)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
