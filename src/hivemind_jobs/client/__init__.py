"""Client side: environments, transactions, the background-job client and locked jobs."""

from hivemind_jobs.client.context import JobCancelled, JobContext, current_job
from hivemind_jobs.client.environment import Environment, Transaction
from hivemind_jobs.client.events import JobSaved, JobSaving, JobStateApplied, StateElection
from hivemind_jobs.client.jobs import (
    BackgroundJobClient,
    CancelResult,
    CreateOptions,
    DeleteResult,
    JobCall,
    JobLogEntry,
    call,
)
from hivemind_jobs.client.locked import LockAttempt, LockedJob

__all__ = [
    "BackgroundJobClient",
    "CancelResult",
    "CreateOptions",
    "DeleteResult",
    "Environment",
    "JobCall",
    "JobCancelled",
    "JobContext",
    "JobLogEntry",
    "JobSaved",
    "JobSaving",
    "JobStateApplied",
    "LockAttempt",
    "LockedJob",
    "StateElection",
    "Transaction",
    "call",
    "current_job",
]
