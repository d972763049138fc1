"""Retry policy: how often and after which delay a failed job is enqueued again, and the decision
for one failed run (pure maths, no I/O)."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from hivemind_jobs.core.states import Enqueued
from hivemind_jobs.errors import ConfigurationError, JobDefinitionError, SerializationError

__all__ = [
    "FRAMEWORK_FATAL",
    "RESCUES_PROPERTY",
    "RETRIES_PROPERTY",
    "RETRY_POLICY_PROPERTY",
    "RetryPolicy",
    "decide_retry",
    "retry_policy_of",
]

#: job properties the runtime keeps: retries after failures, rescues after lost locks, and a
#: job's own retry policy (JSON) when it was created with one
RETRIES_PROPERTY = "hm.retries"
RESCUES_PROPERTY = "hm.rescues"
RETRY_POLICY_PROPERTY = "hm.retry"

FatalPredicate = Callable[[BaseException], bool]
#: "Cannot run this" errors of the framework itself (not allowed / not found / arguments no longer
#: bind or decode): retrying cannot help, so they are always fatal.
FRAMEWORK_FATAL: tuple[type[BaseException], ...] = (JobDefinitionError, SerializationError)


@dataclass(frozen=True, kw_only=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, or an explicit table of delays.

    Retry *n* (1-based) waits ``min(max_delay, base_delay * multiplier**(n-1))`` scaled by a random factor
    in ``[1 - jitter, 1 + jitter]``; with ``delays`` set, retry *n* waits ``delays[n-1]`` (the last entry
    repeats). ``fatal`` exception types and ``fatal_when`` predicates are never retried.
    """

    max_retries: int = 10
    base_delay: timedelta = timedelta(seconds=15)
    multiplier: float = 2.0
    max_delay: timedelta = timedelta(hours=1)
    jitter: float = 0.2
    delays: Sequence[timedelta] | None = None
    fatal: tuple[type[BaseException], ...] = ()
    fatal_when: tuple[FatalPredicate, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.max_retries < 0:
            raise ConfigurationError(f"RetryPolicy.max_retries must be >= 0, got {self.max_retries}")
        if self.base_delay < timedelta(0) or self.max_delay < timedelta(0):
            raise ConfigurationError("RetryPolicy delays must not be negative")
        if self.multiplier < 1:
            raise ConfigurationError(f"RetryPolicy.multiplier must be >= 1, got {self.multiplier}")
        if not 0 <= self.jitter < 1:
            raise ConfigurationError(f"RetryPolicy.jitter must be in [0, 1), got {self.jitter}")
        if self.delays is not None:
            if not self.delays:
                raise ConfigurationError("RetryPolicy.delays must not be empty; use None for exponential backoff")
            if any(delay < timedelta(0) for delay in self.delays):
                raise ConfigurationError("RetryPolicy.delays must not be negative")

    def to_json(self) -> str:
        """The numeric part of the policy (fatal types stay with the environment's policy)."""
        document: dict[str, object] = {
            "max_retries": self.max_retries,
            "base_delay": self.base_delay.total_seconds(),
            "multiplier": self.multiplier,
            "max_delay": self.max_delay.total_seconds(),
            "jitter": self.jitter,
        }
        if self.delays is not None:
            document["delays"] = [delay.total_seconds() for delay in self.delays]
        return json.dumps(document, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str, base: RetryPolicy) -> RetryPolicy:
        """A stored per-job policy, keeping ``base``'s fatal types and predicates."""
        document = json.loads(text)
        delays = document.get("delays")
        return cls(
            max_retries=int(document["max_retries"]),
            base_delay=timedelta(seconds=float(document["base_delay"])),
            multiplier=float(document["multiplier"]),
            max_delay=timedelta(seconds=float(document["max_delay"])),
            jitter=float(document["jitter"]),
            delays=None if delays is None else [timedelta(seconds=float(value)) for value in delays],
            fatal=base.fatal,
            fatal_when=base.fatal_when,
        )

    def should_retry(self, retries_done: int, error: BaseException | None) -> bool:
        if retries_done >= self.max_retries:
            return False
        return error is None or not self.is_fatal(error)

    def is_fatal(self, error: BaseException) -> bool:
        if isinstance(error, FRAMEWORK_FATAL + self.fatal):
            return True
        return any(predicate(error) for predicate in self.fatal_when)

    def delay_for(self, retry_number: int, rng: random.Random | None = None) -> timedelta:
        """The wait before retry ``retry_number`` (1 = first retry)."""
        if retry_number < 1:
            raise ValueError("retry_number starts at 1")
        if self.delays is not None:
            return self.delays[min(retry_number, len(self.delays)) - 1]
        seconds = min(
            self.max_delay.total_seconds(), self.base_delay.total_seconds() * self.multiplier ** (retry_number - 1)
        )
        if self.jitter:
            seconds *= (rng or random).uniform(1 - self.jitter, 1 + self.jitter)
        return timedelta(seconds=min(seconds, self.max_delay.total_seconds()))


def retry_policy_of(stored: object, base: RetryPolicy) -> RetryPolicy:
    """The policy a job runs under: its own (``stored``, the JSON of its ``hm.retry`` property) with
    ``base``'s fatal types, or ``base`` when it has none or it cannot be read."""
    if not isinstance(stored, str):
        return base
    try:
        return RetryPolicy.from_json(stored, base)
    except (ValueError, ConfigurationError):
        return base


def decide_retry(
    policy: RetryPolicy, retries_done: int, error: BaseException, *, rng: random.Random | None = None
) -> Enqueued | str:
    """What follows a run that failed with ``error`` after ``retries_done`` retries.

    Retried: the Enqueued state of retry ``retries_done + 1`` (due after the policy's delay, measured
    on the database clock when it is saved); the caller counts it in ``hm.retries``. Not retried:
    the reason the job stays Failed (a fatal error, or the retries are used up).
    """
    if policy.should_retry(retries_done, error):
        delay = policy.delay_for(retries_done + 1, rng)
        return Enqueued(
            delay=delay,
            reason=f"retry {retries_done + 1} of {policy.max_retries} in {delay.total_seconds():.3g} s",
        )
    if policy.is_fatal(error):
        return "fatal error: not retried"
    return f"gave up after {retries_done} retries"
