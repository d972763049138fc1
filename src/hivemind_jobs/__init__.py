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
    JobCall,
    JobCancelled,
    JobContext,
    JobLogEntry,
    JobRef,
    JobSaved,
    JobSaving,
    JobStateApplied,
    LockAttempt,
    LockedJob,
    ScopedActivator,
    StateElection,
    call,
    current_job,
)
from hivemind_jobs.client.colonies import ColonyInfo, ColonyNotFoundError, DaemonLogEntry
from hivemind_jobs.client.queues import PausedQueue
from hivemind_jobs.client.search import BulkResult, JobPage, LockedJobs
from hivemind_jobs.client.unique import Unique
from hivemind_jobs.colony import (
    Colony,
    ColonyOptions,
    ColonyStatus,
    ColonyStatusChanged,
    DaemonContext,
    DaemonStatus,
    JobEnded,
    JobExecuted,
    JobExecuting,
    RestartPolicy,
    Swarm,
)
from hivemind_jobs.core.clock import Clock, FrozenClock, SystemClock
from hivemind_jobs.core.codec import Codec, UndecodedValue, register_type
from hivemind_jobs.core.continuations import After, Continue
from hivemind_jobs.core.invocation import Activator, AllowList, DefaultActivator, Invocation, instance
from hivemind_jobs.core.job import BackgroundJob, LockInfo, Middleware, MiddlewareEntry, PropertyType
from hivemind_jobs.core.joblog import JobContextFilter, JsonLogFormatter
from hivemind_jobs.core.limits import Limits
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
from hivemind_jobs.core.throttle import Limit, RateLimit
from hivemind_jobs.daemons.lock_monitor import JobRescued
from hivemind_jobs.environment import Environment, Transaction
from hivemind_jobs.errors import (
    ArgumentBindingError,
    ArgumentSerializationError,
    ConcurrencyConflictError,
    ConfigurationError,
    DuplicateJobError,
    HiveMindError,
    InvalidNameError,
    InvalidTransitionError,
    JobDataNotFoundError,
    JobDefinitionError,
    JobDeletedError,
    JobFailedError,
    JobLockedError,
    JobLockError,
    JobLockReleasedError,
    JobLockStaleError,
    JobLockTimeoutError,
    JobNotFoundError,
    JobNotSucceededError,
    JobWaitTimeoutError,
    LimitExceededError,
    QueryError,
    ScheduleError,
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
from hivemind_jobs.query import Condition, Order, any_of, job, not_, past_state, prop, recurring_job, state, where
from hivemind_jobs.recurring import (
    Calendar,
    CalendarRegistry,
    DailyTimeFrame,
    DayCalendar,
    Misfire,
    NextRunBase,
    RecurringJob,
    RecurringJobClient,
    RecurringNotFoundError,
    RecurringSettings,
    RecurringStats,
    Schedule,
    WeekdayCalendar,
    cron,
    every,
)
from hivemind_jobs.sync import (
    SyncBackgroundJobClient,
    SyncColonyClient,
    SyncEnvironment,
    SyncHiveMind,
    SyncJobRef,
    SyncLockedJob,
    SyncLockedJobs,
    SyncQueueClient,
    SyncRecurringJobClient,
    SyncTransaction,
)

__version__ = "0.1.0"

__all__ = [
    "TRANSIENT",
    "Activator",
    "After",
    "AllowList",
    "ArgumentBindingError",
    "ArgumentSerializationError",
    "Awaiting",
    "BackgroundJob",
    "BackgroundJobClient",
    "BulkResult",
    "Calendar",
    "CalendarRegistry",
    "CallNext",
    "CancelResult",
    "Clock",
    "Codec",
    "Colony",
    "ColonyInfo",
    "ColonyNotFoundError",
    "ColonyOptions",
    "ColonyStatus",
    "ColonyStatusChanged",
    "ConcurrencyConflictError",
    "Condition",
    "ConfigurationError",
    "Continue",
    "CreateOptions",
    "Created",
    "DaemonContext",
    "DaemonLogEntry",
    "DaemonStatus",
    "DailyTimeFrame",
    "DayCalendar",
    "DefaultActivator",
    "DeleteResult",
    "Deleted",
    "DuplicateJobError",
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
    "JobContextFilter",
    "JobDataNotFoundError",
    "JobDefinitionError",
    "JobDeletedError",
    "JobEnded",
    "JobExecuted",
    "JobExecuting",
    "JobFailedError",
    "JobLockError",
    "JobLockReleasedError",
    "JobLockStaleError",
    "JobLockTimeoutError",
    "JobLockedError",
    "JobLogEntry",
    "JobMiddleware",
    "JobNotFoundError",
    "JobNotSucceededError",
    "JobPage",
    "JobRef",
    "JobRescued",
    "JobSaved",
    "JobSaving",
    "JobStateApplied",
    "JobWaitTimeoutError",
    "JsonLogFormatter",
    "Limit",
    "LimitExceededError",
    "Limits",
    "LockAttempt",
    "LockInfo",
    "LockedJob",
    "LockedJobs",
    "Mediator",
    "Middleware",
    "MiddlewareEntry",
    "Misfire",
    "NextRunBase",
    "Options",
    "Order",
    "PausedQueue",
    "Priority",
    "PropertyType",
    "QueryError",
    "RateLimit",
    "RecurringJob",
    "RecurringJobClient",
    "RecurringNotFoundError",
    "RecurringSettings",
    "RecurringStats",
    "Request",
    "RestartPolicy",
    "RetryPolicy",
    "Schedule",
    "ScheduleError",
    "SchemaError",
    "ScopedActivator",
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
    "SyncColonyClient",
    "SyncEnvironment",
    "SyncFacadeError",
    "SyncHiveMind",
    "SyncJobRef",
    "SyncLockedJob",
    "SyncLockedJobs",
    "SyncQueueClient",
    "SyncRecurringJobClient",
    "SyncTransaction",
    "SystemClock",
    "SystemDeleted",
    "SystemDeleting",
    "Transaction",
    "TransactionError",
    "UndecodedValue",
    "Unique",
    "UnknownState",
    "WeekdayCalendar",
    "__version__",
    "any_of",
    "call",
    "cron",
    "current_job",
    "every",
    "instance",
    "job",
    "not_",
    "past_state",
    "prop",
    "recurring_job",
    "register_type",
    "state",
    "where",
]

#: modules of optional extras, imported on first use: ``hm.otel`` (``[otel]``), ``hm.prometheus``
#: (``[prometheus]``)
_EXTRAS = frozenset({"otel", "prometheus"})


def __getattr__(name: str) -> object:
    if name in _EXTRAS:
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
