"""Idempotency of jobs: the digest of an instance set and the key of a job."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

__all__ = ["instance_set_digest", "job_key"]


def instance_set_digest(instances: Iterable[tuple[str, str]]) -> str:
    """sha256 of a set of instances, independent of order.

    Parameters
    ----------
    instances : iterable of (str, str)
        ``(SOP Instance UID, sha256 of the stored file)`` pairs.

    Returns
    -------
    str
        64 hexadecimal digits; changes when an instance is added, removed or replaced.
    """
    lines = sorted(f"{uid}:{sha}" for uid, sha in instances)
    return hashlib.sha256("\n".join(lines).encode("ascii")).hexdigest()


def job_key(
    *,
    route: str,
    pipeline: str,
    version: str,
    inputs: Sequence[tuple[str, str | None]],
    digest: str,
) -> str:
    """The idempotency key of a job (sha256, 64 hexadecimal digits).

    Parameters
    ----------
    route, pipeline, version : str
        The route, and the pipeline's name and version.
    inputs : sequence of (str, str or None)
        ``(SeriesInstanceUID, role)`` of every input series.
    digest : str
        :func:`instance_set_digest` of every instance of the inputs.
    """
    parts = [route, pipeline, version, digest]
    parts += sorted(f"{uid}={role or ''}" for uid, role in inputs)
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()
