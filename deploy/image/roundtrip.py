"""``dicomnode demo`` with the node in a container and everything else outside it.

The node runs from the image (the command given after ``--``, on the host's network); this
Python, outside, generates the demo's chest CT, FLAIR MR and mammography studies, sends them
to it over DICOM, and receives the results with a built-in Storage SCP. Exit 0 when every
result came back. ``{work}`` in the command is the demo's temporary folder (config and data
dir), to be mounted at the same path::

    python deploy/image/roundtrip.py -- \\
        buildah run --network host -v {work}:{work} CONTAINER -- dicomnode
    python deploy/image/roundtrip.py -- \\
        docker run --rm --network host -v {work}:{work} dicomnode:0.1.0

.ci/image runs it against the image it built.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from dicomnode.demo import DemoOptions, run_demo


def main(argv: list[str] | None = None) -> int:
    """Parse ``[--timeout S] [--out DIR] -- COMMAND...`` and run the demo against COMMAND."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds for the results")
    parser.add_argument("--out", type=Path, help="result folder (default: the demo's)")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then how to run dicomnode")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give the command that runs dicomnode in the image after --")
    options = DemoOptions(
        out=args.out, orthanc=False, timeout=args.timeout, node_command=tuple(command)
    )
    return run_demo(options)


if __name__ == "__main__":
    sys.exit(main())
