"""Client side: the background-job client, locked jobs, job contexts and the job events."""

from hivemind_jobs.client.context import JobCancelled, JobContext, ScopedActivator, current_job
from hivemind_jobs.client.events import JobSaved, JobSaving, JobStateApplied, StateElection
from hivemind_jobs.client.jobs import (
    BackgroundJobClient,
    CancelResult,
    CreateOptions,
    DeleteResult,
    JobCall,
    JobLogEntry,
    JobRef,
    call,
)
from hivemind_jobs.client.locked import LockAttempt, LockedJob

__all__ = [
    "BackgroundJobClient",
    "CancelResult",
    "CreateOptions",
    "DeleteResult",
    "JobCall",
    "JobCancelled",
    "JobContext",
    "JobLogEntry",
    "JobRef",
    "JobSaved",
    "JobSaving",
    "JobStateApplied",
    "LockAttempt",
    "LockedJob",
    "ScopedActivator",
    "StateElection",
    "call",
    "current_job",
]
