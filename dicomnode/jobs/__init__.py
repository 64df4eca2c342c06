"""dicomnode.jobs: the durable job queue in the database, its workers, and queueing on completion.

Importing this package loads neither torch nor any pipeline: pipelines are imported in the
workers' child processes (and, for the cheap ``check``, by the completion hook).
"""

from dicomnode.jobs.enqueue import JobPlan, RoutingHook, outputs_for
from dicomnode.jobs.errors import JobError
from dicomnode.jobs.keys import instance_set_digest, job_key
from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobResult, JobState
from dicomnode.jobs.plugins import ConfiguredRegistry, registry_for
from dicomnode.jobs.queue import (
    Backoff,
    ClaimedJob,
    ResultRecord,
    claim,
    fail,
    heartbeat,
    reap_expired,
    release,
    retry,
    succeed,
)
from dicomnode.jobs.worker import ChildProcess, Worker, WorkerPool, results_root

__all__ = [
    "Backoff",
    "ChildProcess",
    "ClaimedJob",
    "ConfiguredRegistry",
    "Delivery",
    "DeliveryState",
    "Job",
    "JobError",
    "JobPlan",
    "JobResult",
    "JobState",
    "ResultRecord",
    "RoutingHook",
    "Worker",
    "WorkerPool",
    "claim",
    "fail",
    "heartbeat",
    "instance_set_digest",
    "job_key",
    "outputs_for",
    "reap_expired",
    "registry_for",
    "release",
    "results_root",
    "retry",
    "succeed",
]
