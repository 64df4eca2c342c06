"""dicomnode.jobs: the durable job queue in the database, its workers, and queueing on completion.

Flow: the stability sweep completes a series (study) and commits; then the
:class:`RoutingHook` matches the routes, asks the pipelines outside any transaction, and
inserts one ``jobs`` row per match in a short one that marks the completion handled (idempotency
key: route, pipeline name and version, input series and roles, digest of the instance set),
or a ``refused`` row when the pipeline's ``check`` says no. A :class:`Worker` claims a due
job with a lease (``FOR UPDATE SKIP LOCKED``), heartbeats while its long-lived inference
child (:mod:`dicomnode.jobs.child`) runs the pipeline and encodes the results under
``<data_dir>/results/<job id>/``, then records the result UIDs and one pending delivery per
(result, destination) in one transaction; :mod:`dicomnode.export` sends them.

Pipelines come from the ``dicomnode.pipelines`` entry points and from
``pipelines.<name>.class: "package.module:Class"`` in the config, both through one
:class:`dicomnode.pipeline.PipelineRegistry`.

Importing this package loads neither torch nor any pipeline: pipelines are imported in the
workers' child processes (and, for the cheap ``check``, by the completion hook).
"""

from dicomnode.jobs.enqueue import JobPlan, RoutingHook, outputs_for
from dicomnode.jobs.errors import InvalidJobId, JobError, NoSuchJob
from dicomnode.jobs.keys import instance_set_digest, job_key
from dicomnode.jobs.models import Delivery, DeliveryState, Job, JobResult, JobState
from dicomnode.jobs.process import ChildProcess
from dicomnode.jobs.queue import (
    Backoff,
    ClaimedJob,
    ResultRecord,
    claim,
    fail,
    heartbeat,
    reap_expired,
    release,
    succeed,
)
from dicomnode.jobs.retry import MAX_JOB_ID, checked_job_id, retry
from dicomnode.jobs.worker import Worker, WorkerPool, results_root

__all__ = [
    "MAX_JOB_ID",
    "Backoff",
    "ChildProcess",
    "ClaimedJob",
    "InvalidJobId",
    "NoSuchJob",
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
    "checked_job_id",
    "claim",
    "fail",
    "heartbeat",
    "instance_set_digest",
    "job_key",
    "outputs_for",
    "reap_expired",
    "release",
    "results_root",
    "retry",
    "succeed",
]
