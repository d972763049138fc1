"""Concurrency and rate limits: how many jobs sharing a key may run at once, or start per period.

A job gets its limits when it is created (``jobs.options(concurrency=Limit(...),
rate_limit=RateLimit(...))``, or the environment's ``Options.queue_limits`` for its queue) and
keeps them through retries. Claims enforce them in the database, across colonies: a job over a
limit stays Enqueued, in its place, until a claim finds room for it (see
:meth:`hivemind_jobs.storage.rows.ClaimWalk.apply_limits`).

A key is a template: ``{name}`` fields are filled with the job's properties, its arguments (by
parameter name), ``{queue}`` and ``{function}``; no key means one key per function (a job option)
or per queue (``Options.queue_limits``).
"""

from __future__ import annotations

import json
import string
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

from hivemind_jobs.errors import ConfigurationError

__all__ = ["JobLimits", "Limit", "RateLimit", "limit_key"]

#: a stored key is at most this long (the servers index it)
MAX_KEY = 200


def _check_key(key: object, what: str) -> None:
    if key is not None and (not isinstance(key, str) or not key or len(key) > MAX_KEY):
        raise ConfigurationError(
            f"{what} key must be a non-empty string of at most {MAX_KEY} characters or None, got {key!r}"
        )


def _check_max(value: object, what: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigurationError(f"{what} max must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class Limit:
    """At most ``max`` jobs sharing ``key`` Executing at once, across every colony.

    ``key``: a template such as ``"tenant:{TenantId}"`` (see :mod:`hivemind_jobs.core.throttle`);
    None: the job's function (a job option) or its queue (``Options.queue_limits``).
    """

    max: int
    key: str | None = None

    def __post_init__(self) -> None:
        _check_max(self.max, "Limit")
        _check_key(self.key, "Limit")


@dataclass(frozen=True)
class RateLimit:
    """At most ``max`` starts of jobs sharing ``key`` per ``per`` (a sliding window), across every
    colony. ``key`` as for :class:`Limit`."""

    max: int
    per: timedelta = timedelta(seconds=1)
    key: str | None = None

    def __post_init__(self) -> None:
        _check_max(self.max, "RateLimit")
        if not isinstance(self.per, timedelta) or self.per < timedelta(milliseconds=1):
            raise ConfigurationError(f"RateLimit per must be a timedelta of at least 1 ms, got {self.per!r}")
        _check_key(self.key, "RateLimit")

    @property
    def period_ms(self) -> int:
        return int(self.per / timedelta(milliseconds=1))


def limit_key(
    template: str | None,
    *,
    default: str,
    queue: str,
    function: str,
    arguments: Mapping[str, Any],
    properties: Mapping[str, Any],
) -> str:
    """The stored key of a limit: ``template`` with its fields filled (properties win over
    arguments of the same name, both over ``queue`` and ``function``), or ``default``."""
    if template is None:
        key = default
    elif "{" not in template:
        key = template
    else:
        fields = {"queue": queue, "function": function, **arguments, **properties}
        for _, name, _, _ in string.Formatter().parse(template):
            if name is not None and not name.isidentifier():
                raise ConfigurationError(
                    f"limit key {template!r}: {{{name}}} is not a plain name; use {{name}} fields of the "
                    "job's properties and arguments (or queue, function) only"
                )
        try:
            key = template.format_map({name: str(value) for name, value in fields.items()})
        except (KeyError, IndexError, ValueError, AttributeError) as error:
            raise ConfigurationError(
                f"limit key {template!r} names {error}, which is neither a property nor an argument of the "
                "job (nor queue or function); use {name} fields of those only"
            ) from None
    if not key or len(key) > MAX_KEY:
        raise ConfigurationError(f"limit key {key[:40]!r}... must be 1 to {MAX_KEY} characters, it is {len(key)}")
    return key


def queue_limit_entries(value: object, queue: str) -> tuple[Limit | None, RateLimit | None]:
    """One entry of ``Options.queue_limits``: a :class:`Limit`, a :class:`RateLimit` or a tuple
    of at most one of each."""
    entries = value if isinstance(value, (tuple, list)) else (value,)
    concurrency = [entry for entry in entries if isinstance(entry, Limit)]
    rate = [entry for entry in entries if isinstance(entry, RateLimit)]
    if len(concurrency) + len(rate) != len(entries) or len(concurrency) > 1 or len(rate) > 1 or not entries:
        raise ConfigurationError(
            f"Options.queue_limits[{queue!r}] must be a Limit, a RateLimit or a tuple of one of each, got {value!r}"
        )
    return (concurrency[0] if concurrency else None, rate[0] if rate else None)


@dataclass(frozen=True)
class JobLimits:
    """The limits of one job as stored: its keys filled, None where it has no such limit."""

    limit_key: str | None = None
    limit_max: int | None = None
    rate_key: str | None = None
    rate_max: int | None = None
    rate_period_ms: int | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> JobLimits:
        data = json.loads(text)
        if not isinstance(data, dict) or set(data) - set(cls.__dataclass_fields__):
            raise ValueError(f"not stored limits: {text[:80]!r}")
        limits = cls(**data)
        for name in ("limit_key", "rate_key"):
            if not isinstance(getattr(limits, name), str | None):
                raise ValueError(f"limits: {name} must be text or null")
        for name in ("limit_max", "rate_max", "rate_period_ms"):
            value = getattr(limits, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"limits: {name} must be a positive integer or null")
        return limits


def job_limits(
    concurrency: Limit | None,
    rate: RateLimit | None,
    *,
    queue: str,
    function: str,
    arguments: Mapping[str, Any],
    properties: Mapping[str, Any],
    queue_limits: Mapping[str, object],
) -> JobLimits | None:
    """The stored limits of a job: its own ``concurrency`` and ``rate`` over those its queue has in
    ``queue_limits`` (``Options.queue_limits``); None when it has neither. Keys are filled now, so
    a bad key fails before anything is written."""
    own_concurrency, own_rate = concurrency, rate
    entry = queue_limits.get(queue)
    if entry is not None:
        queue_concurrency, queue_rate = queue_limit_entries(entry, queue)
        concurrency = concurrency or queue_concurrency
        rate = rate or queue_rate
    if concurrency is None and rate is None:
        return None

    def key(limit: Limit | RateLimit | None, own: Limit | RateLimit | None) -> str | None:
        if limit is None:
            return None
        default = f"function:{function}" if limit is own else f"queue:{queue}"
        return limit_key(
            limit.key, default=default, queue=queue, function=function, arguments=arguments, properties=properties
        )

    return JobLimits(
        limit_key=key(concurrency, own_concurrency),
        limit_max=concurrency.max if concurrency is not None else None,
        rate_key=key(rate, own_rate),
        rate_max=rate.max if rate is not None else None,
        rate_period_ms=rate.period_ms if rate is not None else None,
    )
