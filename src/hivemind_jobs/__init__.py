"""HiveMind: persistent, distributed background jobs for Python.

Any importable function or method becomes a job with typed, validated arguments stored as JSON.
Jobs have queues, five priorities, delays, continuations, middleware, typed properties, data and
logs, and are state machines whose transitions handlers can intercept.

    import hivemind_jobs as hm

    hive = hm.HiveMind()                      # environment "main" on ./hivemind.db
    async with hive:
        job_id = await hive.jobs.create(send_welcome_mail, user_id=42)
"""

from hivemind_jobs.client import (
    BackgroundJobClient,
    CancelResult,
    CreateOptions,
    DeleteResult,
    Environment,
    JobCall,
    JobCancelled,
    JobContext,
    JobLogEntry,
    JobSaved,
    JobSaving,
    JobStateApplied,
    LockAttempt,
    LockedJob,
    StateElection,
    Transaction,
    call,
    current_job,
)
from hivemind_jobs.client.colonies import ColonyInfo, ColonyNotFoundError, DaemonLogEntry
from hivemind_jobs.colony import (
    Colony,
    ColonyOptions,
    ColonyStatus,
    DaemonContext,
    DaemonStatus,
    RestartPolicy,
    Swarm,
)
from hivemind_jobs.core.clock import Clock, FrozenClock, SystemClock
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.continuations import After, Continue
from hivemind_jobs.core.invocation import Activator, AllowList, DefaultActivator, Invocation, instance
from hivemind_jobs.core.job import BackgroundJob, LockInfo, Middleware, MiddlewareEntry, PropertyType
from hivemind_jobs.core.options import Options
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.retry import RetryPolicy
from hivemind_jobs.core.states import (
    TRANSIENT,
    Awaiting,
    Created,
    Deleted,
    Enqueued,
    Executing,
    Failed,
    Idle,
    State,
    Succeeded,
    SystemDeleted,
    SystemDeleting,
    UnknownState,
)
from hivemind_jobs.errors import (
    ArgumentBindingError,
    ConcurrencyConflictError,
    ConfigurationError,
    HiveMindError,
    InvalidNameError,
    InvalidTransitionError,
    JobDataNotFoundError,
    JobDefinitionError,
    JobLockedError,
    JobLockError,
    JobLockReleasedError,
    JobLockStaleError,
    JobLockTimeoutError,
    JobNotFoundError,
    SchemaError,
    SerializationError,
    StateElectionLoopError,
    StateError,
    StateRegistrationError,
    StorageClosedError,
    StorageError,
    SyncFacadeError,
    TransactionError,
)
from hivemind_jobs.hive import HiveMind
from hivemind_jobs.mediator import Mediator, Request
from hivemind_jobs.middleware import CallNext, JobMiddleware
from hivemind_jobs.sync import SyncBackgroundJobClient, SyncEnvironment, SyncHiveMind, SyncLockedJob, SyncTransaction

__version__ = "0.1.0"

__all__ = [
    "TRANSIENT",
    "Activator",
    "After",
    "AllowList",
    "ArgumentBindingError",
    "Awaiting",
    "BackgroundJob",
    "BackgroundJobClient",
    "CallNext",
    "CancelResult",
    "Clock",
    "Codec",
    "Colony",
    "ColonyInfo",
    "ColonyNotFoundError",
    "ColonyOptions",
    "ColonyStatus",
    "ConcurrencyConflictError",
    "ConfigurationError",
    "Continue",
    "CreateOptions",
    "Created",
    "DaemonContext",
    "DaemonLogEntry",
    "DaemonStatus",
    "DefaultActivator",
    "DeleteResult",
    "Deleted",
    "Enqueued",
    "Environment",
    "Executing",
    "Failed",
    "FrozenClock",
    "HiveMind",
    "HiveMindError",
    "Idle",
    "InvalidNameError",
    "InvalidTransitionError",
    "Invocation",
    "JobCall",
    "JobCancelled",
    "JobContext",
    "JobDataNotFoundError",
    "JobDefinitionError",
    "JobLockError",
    "JobLockReleasedError",
    "JobLockStaleError",
    "JobLockTimeoutError",
    "JobLockedError",
    "JobLogEntry",
    "JobMiddleware",
    "JobNotFoundError",
    "JobSaved",
    "JobSaving",
    "JobStateApplied",
    "LockAttempt",
    "LockInfo",
    "LockedJob",
    "Mediator",
    "Middleware",
    "MiddlewareEntry",
    "Options",
    "Priority",
    "PropertyType",
    "Request",
    "RestartPolicy",
    "RetryPolicy",
    "SchemaError",
    "SerializationError",
    "State",
    "StateElection",
    "StateElectionLoopError",
    "StateError",
    "StateRegistrationError",
    "StorageClosedError",
    "StorageError",
    "Succeeded",
    "Swarm",
    "SyncBackgroundJobClient",
    "SyncEnvironment",
    "SyncFacadeError",
    "SyncHiveMind",
    "SyncLockedJob",
    "SyncTransaction",
    "SystemClock",
    "SystemDeleted",
    "SystemDeleting",
    "Transaction",
    "TransactionError",
    "UnknownState",
    "__version__",
    "call",
    "current_job",
    "instance",
]
