"""Helpers for queue tests: put series into a store, build configs, sweep with the hook."""

from __future__ import annotations

import hashlib
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from dicomnode.config import parse_config
from dicomnode.config.schema import Config
from dicomnode.jobs import JobState, RoutingHook
from dicomnode.jobs.checker import CheckResult
from dicomnode.pipeline import InputRefused, PipelineInputs, PipelineRegistry, PipelineUnavailable
from dicomnode.routing import Priority, compile_routes
from dicomnode.store.db import Database
from dicomnode.store.ingest import Store
from dicomnode.store.models import utcnow
from dicomnode.store.stability import sweep

TOY = "testkit.toy_pipeline:ToyPipeline"


def job_row(
    name: str,
    *,
    state: JobState = JobState.QUEUED,
    run_after: datetime | None = None,
    priority: Priority = Priority.ROUTINE,
) -> dict[str, object]:
    """Column values of a ``jobs`` row without inputs, for tests that insert rows directly."""
    now = utcnow()
    return dict(
        key=hashlib.sha256(name.encode()).hexdigest(),
        route=name,
        pipeline="toy",
        pipeline_version="1",
        level="series",
        study_uid="1.2.3",
        subject=f"1.2.3.{len(name)}",
        inputs="[]",
        digest="0" * 64,
        outputs="[]",
        send_to="[]",
        shadow=False,
        state=state,
        attempts=0,
        max_attempts=3,
        run_after=now if run_after is None else run_after,
        priority=priority.rank,
        created_at=now,
        updated_at=now,
    )


def config(tmp: Path, url: str, **sections: Any) -> Config:
    """A config on ``url`` with the toy pipeline, a ``pacs`` destination and one route."""
    data: dict[str, Any] = {
        "data_dir": str(tmp / "data"),
        "database": {"url": url},
        "storage": {"min_free": "1MB"},
        "stability": {"series_seconds": 1, "study_seconds": 2},
        "workers": {
            "count": 1,
            "device": "cpu",
            "lease_seconds": 3,
            "heartbeat_seconds": 0.5,
            "backoff_seconds": 0,
            "poll_seconds": 0.1,
        },
        "destinations": {"pacs": {"ae_title": "PACS", "host": "127.0.0.1", "port": 1}},
        "pipelines": {"toy": {"class": TOY}},
        "routes": [
            {"name": "ct-toy", "pipeline": "toy", "when": {"Modality": "CT"}, "send_to": ["pacs"]}
        ],
    }
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


def ingest(store: Store, files: list[Path], *, calling_ae: str = "MODALITY") -> None:
    """Store ``files`` as if received over the network."""
    import pydicom

    for path in files:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        spool = store.incoming / f"{path.parent.name}-{path.name}"
        shutil.copyfile(path, spool)
        store.ingest(
            spool,
            sop_class_uid=str(ds.SOPClassUID),
            sop_instance_uid=str(ds.SOPInstanceUID),
            calling_ae=calling_ae,
        )


class InProcessChecker:
    """Test double of :class:`~dicomnode.jobs.checker.IsolatedChecker`: the pipeline's
    ``check`` in this process (the toy pipeline needs no isolation), with its answers."""

    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.registry = PipelineRegistry(cfg.class_paths)

    def __call__(self, name: str, inputs: PipelineInputs) -> CheckResult:
        try:
            section = self.cfg.pipelines.get(name)
            pipeline = self.registry.get(name)(section.options if section else {})
        except PipelineUnavailable as exc:
            return CheckResult(problem=str(exc))
        version, defaults = pipeline.version, tuple(map(str, pipeline.default_outputs))
        try:
            pipeline.check(inputs)
        except InputRefused as exc:
            return CheckResult(version, defaults, refused=exc.reason)
        except Exception as exc:
            return CheckResult(version, defaults, problem=f"check failed: {exc}")
        return CheckResult(version, defaults)


def hook_for(cfg: Config) -> RoutingHook:
    """The completion hook a node builds from ``cfg`` (its checker in this process)."""
    routes = compile_routes(cfg.routes, destinations=set(cfg.destinations))
    return RoutingHook(cfg, routes, checker=InProcessChecker(cfg))


def complete_all(db: Database, cfg: Config, hook: RoutingHook | None = None) -> Any:
    """Sweep as if the quiet period passed for everything received so far."""
    return sweep(
        db,
        series_seconds=cfg.stability.series_seconds,
        study_seconds=cfg.stability.study_seconds,
        now=utcnow() + timedelta(hours=1),
        hooks=[hook or hook_for(cfg)],
    )
