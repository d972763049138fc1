"""Every error HiveMind raises derives from :class:`HiveMindError`.

Each error also subclasses the builtin a caller would naturally catch (``ValueError`` for bad
input, ``LookupError`` for something missing, ``TimeoutError`` for waits), so code that does not
know HiveMind still handles it sensibly. Messages say what was wrong and what to do about it.

::

    HiveMindError
    ├── ConfigurationError (ValueError)          bad option, URL or environment setup
    │   ├── InvalidNameError                     queue / property / environment / state name
    │   ├── QueryError                           a query, its order, page or limits are invalid
    │   ├── ScheduleError                        a schedule, calendar or time zone is invalid or never fires
    │   └── LimitExceededError                   a value is larger than a configured size limit
    ├── JobDefinitionError (TypeError)           the callable cannot be a job
    │   └── ArgumentBindingError                 arguments do not fit the signature or its types
    │       └── ArgumentSerializationError       an argument's value cannot be stored (also a SerializationError)
    ├── SerializationError (TypeError)           a value cannot be stored as JSON or read back
    ├── JobNotFoundError (LookupError)           no job with that id in this environment
    ├── JobDataNotFoundError (LookupError)       no job data item with that name
    ├── JobNotSucceededError                     a waited-for job ended without a result
    │   ├── JobFailedError                       it failed (the stored exception type, message, traceback)
    │   └── JobDeletedError                      it was deleted (or removed) before it succeeded
    ├── JobWaitTimeoutError (TimeoutError)       a wait for a job's result gave up
    ├── DuplicateJobError                        a unique job's key is held (``on_conflict="raise"``)
    ├── JobLockError                             lock problems
    │   ├── JobLockedError                       held by another requester
    │   ├── JobLockStaleError                    our lock expired or was taken over before the save
    │   ├── JobLockReleasedError                 the handle no longer holds the lock
    │   └── JobLockTimeoutError (TimeoutError)   wait_for_lock gave up
    ├── StateError
    │   ├── InvalidTransitionError (ValueError)  a transition the state machine forbids
    │   ├── StateElectionLoopError (RuntimeError) handlers kept replacing each other's states
    │   └── StateRegistrationError (TypeError)   a custom state class is malformed or clashes
    ├── StorageError                             the database refused or failed
    │   ├── SchemaError                          schema missing, behind or newer than this code
    │   ├── ConcurrencyConflictError             a compare-and-set lost against another writer
    │   ├── RetryableStorageError                deadlock, serialization failure or lost connection:
    │   │                                        running the unit of work again may succeed
    │   └── StorageClosedError (RuntimeError)    used after close
    ├── TransactionError (RuntimeError)          misuse of a transaction (finished, nested, deadlock)
    ├── SyncFacadeError (RuntimeError)           blocking facade called inside a running event loop
    ├── JobCancelled                             a running job was asked to stop (``ctx.raise_if_cancelled()``)
    └── ColonyNotFoundError (LookupError)        no colony with that id in this environment

The last two are defined next to the code that raises them (``client.context``,
``client.colonies``). ``JobCancelled`` is an ordinary exception, not :class:`asyncio.CancelledError`.
"""

from __future__ import annotations

__all__ = [
    "ArgumentBindingError",
    "ArgumentSerializationError",
    "ConcurrencyConflictError",
    "ConfigurationError",
    "DuplicateJobError",
    "HiveMindError",
    "InvalidNameError",
    "InvalidTransitionError",
    "JobDataNotFoundError",
    "JobDefinitionError",
    "JobDeletedError",
    "JobFailedError",
    "JobLockError",
    "JobLockReleasedError",
    "JobLockStaleError",
    "JobLockTimeoutError",
    "JobLockedError",
    "JobNotFoundError",
    "JobNotSucceededError",
    "JobWaitTimeoutError",
    "LimitExceededError",
    "QueryError",
    "RetryableStorageError",
    "ScheduleError",
    "SchemaError",
    "SerializationError",
    "StateElectionLoopError",
    "StateError",
    "StateRegistrationError",
    "StorageClosedError",
    "StorageError",
    "SyncFacadeError",
    "TransactionError",
]


class HiveMindError(Exception):
    """Root of every error raised by HiveMind."""


class ConfigurationError(HiveMindError, ValueError):
    """An option, URL or environment setting is invalid."""


class QueryError(ConfigurationError):
    """A job query, its order, page or limits are invalid (nothing was read or changed)."""


class ScheduleError(ConfigurationError):
    """A recurring schedule, calendar or time zone is invalid, or the schedule never fires."""


class LimitExceededError(ConfigurationError):
    """A value (arguments, a property, job data, a log line, exception text, a result) is larger
    than the environment's configured limit for it; nothing was written."""


class InvalidNameError(ConfigurationError):
    """A queue, property, environment, state or data name does not match its pattern."""


class JobDefinitionError(HiveMindError, TypeError):
    """The callable cannot become a job (not importable, a lambda, a bound instance...)."""


class ArgumentBindingError(JobDefinitionError):
    """The job arguments do not bind to the function's signature or do not match its type hints."""


class SerializationError(HiveMindError, TypeError):
    """A value cannot be encoded to JSON, or stored JSON cannot be decoded to the expected type."""


class ArgumentSerializationError(ArgumentBindingError, SerializationError):
    """A job argument's value cannot be stored as JSON (unsupported type, a cycle, text no database
    can store): both an :class:`ArgumentBindingError` and a :class:`SerializationError`."""


class JobNotFoundError(HiveMindError, LookupError):
    """No background job with the given id exists in this environment."""

    def __init__(self, job_id: int, environment: str) -> None:
        super().__init__(f"background job {job_id} does not exist in environment {environment!r}")
        self.job_id = job_id
        self.environment = environment


class DuplicateJobError(HiveMindError):
    """A unique job was created while another job holds its key (``Unique(on_conflict="raise")``);
    ``job_id`` is the id of that job."""

    def __init__(self, job_id: int, key: str) -> None:
        super().__init__(
            f"unique key {key!r} is held by background job {job_id}; use that job, or create with "
            'Unique(on_conflict="existing") to get its id instead of this error'
        )
        self.job_id = job_id
        self.key = key


class JobDataNotFoundError(HiveMindError, LookupError):
    """The job has no data item with the requested name."""


class JobNotSucceededError(HiveMindError):
    """A job waited for reached a final state other than Succeeded (raised as such for a custom
    final state; Failed and Deleted raise the subclasses)."""

    def __init__(self, job_id: int, state: str, reason: str | None, message: str | None = None) -> None:
        because = f" ({reason})" if reason else ""
        super().__init__(message or f"background job {job_id} ended in state {state}{because}, without a result")
        self.job_id = job_id
        self.state = state
        self.reason = reason


class JobFailedError(JobNotSucceededError):
    """A job waited for failed (for good: no retry is left); carries the exception it raised as
    stored: its type's ``module.QualifiedName``, message and formatted traceback."""

    def __init__(
        self,
        job_id: int,
        *,
        exception_type: str | None,
        exception_message: str | None,
        traceback: str | None,
        reason: str | None = None,
    ) -> None:
        raised = f"{exception_type or 'an exception'}: {exception_message or ''}".rstrip(": ")
        super().__init__(job_id, "Failed", reason, f"background job {job_id} failed with {raised}")
        self.exception_type = exception_type
        self.exception_message = exception_message
        self.traceback = traceback


class JobDeletedError(JobNotSucceededError):
    """A job waited for was deleted, or removed from storage, before it succeeded."""

    def __init__(self, job_id: int, state: str, reason: str | None = None) -> None:
        because = f" ({reason})" if reason else ""
        super().__init__(job_id, state, reason, f"background job {job_id} was deleted{because} before it succeeded")


class JobWaitTimeoutError(HiveMindError, TimeoutError):
    """A wait for a job's result ended before the job did (the job goes on: wait again later)."""

    def __init__(self, job_id: int, timeout: float) -> None:
        super().__init__(f"background job {job_id} did not finish within {timeout:g} s; it goes on, wait again later")
        self.job_id = job_id
        self.timeout = timeout


class JobLockError(HiveMindError):
    """Base class of job lock errors."""


class JobLockedError(JobLockError):
    """The job is locked by another requester."""

    def __init__(self, job_id: int, holder: str | None, requester: str) -> None:
        super().__init__(
            f"background job {job_id} is locked by {holder!r}, so {requester!r} cannot lock it; "
            "retry later or use wait_for_lock()"
        )
        self.job_id = job_id
        self.holder = holder
        self.requester = requester


class JobLockStaleError(JobLockError):
    """Our lock expired (no heartbeat within the lock timeout) or was taken over before the save."""


class JobLockReleasedError(JobLockError):
    """The locked-job handle was saved with keep_lock=False or released; lock the job again."""


class JobLockTimeoutError(JobLockError, TimeoutError):
    """wait_for_lock() did not get the lock within its timeout."""


class StateError(HiveMindError):
    """Base class of state machine errors."""


class InvalidTransitionError(StateError, ValueError):
    """The state machine does not allow this transition."""


class StateElectionLoopError(StateError, RuntimeError):
    """Election handlers kept answering new states past the environment's hop limit."""


class StateRegistrationError(StateError, TypeError):
    """A custom state class is malformed or its name clashes with another state."""


class StorageError(HiveMindError):
    """The storage backend failed or refused an operation."""


class SchemaError(StorageError):
    """The database schema is missing, behind, or newer than this version of HiveMind."""


class ConcurrencyConflictError(StorageError):
    """A compare-and-set write lost against a concurrent writer."""


class StorageClosedError(StorageError, RuntimeError):
    """The storage was used after it was closed."""


class TransactionError(HiveMindError, RuntimeError):
    """A transaction was misused: used after it finished, or opened where it would deadlock."""


class SyncFacadeError(HiveMindError, RuntimeError):
    """The blocking facade was called from inside a running event loop."""


class RetryableStorageError(StorageError):
    """A deadlock, serialization failure or lost connection; the transaction was rolled back and
    running the whole unit of work again may succeed (the worker runtime does so with backoff)."""
