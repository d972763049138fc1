"""Size limits of what a job stores: its arguments, data, log lines, exception text and result.

Every backend could store far larger values than these, but not equally: MySQL / MariaDB refuse a
statement larger than the server's ``max_allowed_packet`` (and then report a broken protocol
rather than the reason), PostgreSQL and SQLite store tens of megabytes and then read them back on
every page of a search. The limits are checked where a value enters HiveMind, so an oversized
value fails (or is shortened) the same way on every backend, with a message that says which limit.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

from hivemind_jobs.core.codec import JSONValue, compact_json
from hivemind_jobs.core.invocation import Invocation
from hivemind_jobs.errors import ConfigurationError, LimitExceededError

__all__ = ["KIB", "MAX_LIMIT", "MIB", "MIN_LIMIT", "Limits", "utf8_size"]

KIB = 1024
MIB = 1024 * KIB
#: the smallest allowed limit: room for a useful head of the text plus the truncation marker
MIN_LIMIT = KIB
#: the largest allowed limit: no backend stores a single value over about 1 GB, and a statement
#: carries a value escaped, which can double its size
MAX_LIMIT = 512 * MIB


def utf8_size(text: str) -> int:
    """The size of ``text`` in UTF-8 bytes (what the databases store); ASCII text is not encoded."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-8", "surrogatepass"))


def _head(text: str, max_bytes: int) -> str:
    """The longest start of ``text`` within ``max_bytes`` UTF-8 bytes (never half a character)."""
    if max_bytes <= 0:
        return ""
    return text.encode("utf-8", "surrogatepass")[:max_bytes].decode("utf-8", "ignore")


def _tail(text: str, max_bytes: int) -> str:
    """The longest end of ``text`` within ``max_bytes`` UTF-8 bytes (never half a character)."""
    if max_bytes <= 0:
        return ""
    return text.encode("utf-8", "surrogatepass")[-max_bytes:].decode("utf-8", "ignore")


def _json_bound(value: JSONValue) -> int | None:
    """An upper bound of the compact JSON size of a scalar without encoding it (a character takes at
    most 6 bytes, as ``\\u001f``); None for containers, which are measured by encoding them."""
    if value is None or isinstance(value, bool | float):
        return 32
    if isinstance(value, str):
        return 6 * len(value) + 2
    if isinstance(value, int):
        return value.bit_length() // 3 + 2  # a decimal digit carries more than 3 bits, plus the sign
    return None


@dataclass(frozen=True, kw_only=True)
class Limits:
    """How large the values a job stores may be; part of :class:`~hivemind_jobs.Options` (``limits=``).

    Sizes are UTF-8 bytes of the text as stored (compact JSON for arguments, data and results).

    - ``max_argument_bytes`` (1 MiB): the stored call of a job (its arguments as JSON, plus the
      function's name). ``create``, ``create_many`` and ``recurring.create_or_update`` raise
      :class:`~hivemind_jobs.errors.LimitExceededError` above it and write nothing: a transaction
      the call was part of is untouched, the caller decides whether to commit what it did before.
      Store large inputs elsewhere (a table, a file, object storage) and pass a reference.
    - ``max_data_bytes`` (1 MiB): one job data item as JSON; ``set_data`` raises
      ``LimitExceededError`` above it and writes nothing. Split the value into several items or
      store a reference.
    - ``max_result_bytes`` (1 MiB): a job's return value as JSON. A larger result does not fail
      the job (its side effects happened): ``Succeeded.result`` holds a short note that starts with
      ``[result not stored:`` instead, and a WARNING job log says why. A result that cannot be
      encoded is stored as its ``repr`` (with a WARNING), within the same limit.
    - ``max_log_message_bytes`` (16 KiB): one job log message (``ctx.log``, ``add_log``, the
      drone's own notes); a longer one is cut and ends with ``… [truncated: …]``, so a job never
      fails because it logged a lot.
    - ``max_exception_bytes`` (64 KiB): the message plus the traceback of a failed job's
      exception (and of an exception attached to a job log record). Above it the message keeps its
      start and the traceback its start and its end (the innermost frames and the exception line),
      with a ``[… bytes cut …]`` marker between them.
    - ``max_property_text_length`` (4,000 characters, fixed): a text property value; numbers,
      booleans and datetimes have fixed sizes. Queries compare text of at most this length, so it
      is not configurable; store larger text as job data.

    Every configurable limit is a whole number of bytes from 1 KiB to 512 MiB. On MySQL / MariaDB a
    value travels escaped inside one statement, which the server refuses above its
    ``max_allowed_packet``: opening an environment logs a WARNING when a limit is more than half of
    it (raise the server setting, or keep the limits below it).
    """

    max_argument_bytes: int = MIB
    max_data_bytes: int = MIB
    max_result_bytes: int = MIB
    max_log_message_bytes: int = 16 * KIB
    max_exception_bytes: int = 64 * KIB
    max_property_text_length: ClassVar[int] = 4000

    def __post_init__(self) -> None:
        for item in fields(self):
            value = getattr(self, item.name)
            if not isinstance(value, int) or isinstance(value, bool) or not MIN_LIMIT <= value <= MAX_LIMIT:
                raise ConfigurationError(
                    f"Limits.{item.name} must be a whole number of bytes from {MIN_LIMIT:,} to {MAX_LIMIT:,}, "
                    f"got {value!r}"
                )

    def sizes(self) -> dict[str, int]:
        """Every configurable limit by name (for a backend that compares them with its own ceiling)."""
        return {item.name: getattr(self, item.name) for item in fields(self)}

    # ------------------------------------------------------------------ refused values
    def check_arguments(self, invocation: Invocation) -> None:
        """Raise LimitExceededError when the stored call would be larger than ``max_argument_bytes``.

        The stored text is measured: building the invocation already wrote it (and keeps it for
        the insert), so measuring it costs no second encoding.
        """
        limit = self.max_argument_bytes
        size = utf8_size(invocation.to_json())
        if size > limit:
            raise LimitExceededError(
                f"the arguments of {invocation.display_name} take {size:,} bytes as stored JSON, more than "
                f"Limits.max_argument_bytes ({limit:,} bytes); nothing was written. Store large inputs elsewhere "
                "(a table, a file, object storage) and pass a reference such as an id or a key, or raise the limit "
                "with Options(limits=Limits(max_argument_bytes=...))"
            )

    def check_data(self, job_id: int, name: str, text: str) -> None:
        """Raise LimitExceededError when the JSON ``text`` of a job data item is over ``max_data_bytes``."""
        limit = self.max_data_bytes
        if len(text) * 4 <= limit:  # a character takes at most 4 bytes
            return
        size = utf8_size(text)
        if size > limit:
            raise LimitExceededError(
                f"job data {name!r} of job {job_id} takes {size:,} bytes as JSON, more than Limits.max_data_bytes "
                f"({limit:,} bytes); nothing was written. Split it into several data items, store it elsewhere and "
                "keep a reference in the job data, or raise the limit with Options(limits=Limits(max_data_bytes=...))"
            )

    # ------------------------------------------------------------------ shortened values
    def log_message(self, message: str) -> str:
        """``message`` cut to ``max_log_message_bytes`` with a visible marker (unchanged if it fits)."""
        limit = self.max_log_message_bytes
        if len(message) * 4 <= limit:
            return message
        size = utf8_size(message)
        if size <= limit:
            return message
        marker = f"… [truncated: the message has {size:,} bytes, Limits.max_log_message_bytes is {limit:,}]"
        return _head(message, limit - utf8_size(marker)) + marker

    def exception_text(self, message: str | None, traceback: str | None) -> tuple[str | None, str | None]:
        """An exception's message and traceback within ``max_exception_bytes`` together.

        Each gets at least half of the limit when it needs it and the other leaves room; the message
        keeps its start, the traceback its start and its end, each with a marker where text was cut.
        """
        limit = self.max_exception_bytes
        length = len(message or "") + len(traceback or "")
        if length * 4 <= limit:
            return message, traceback
        message_size = utf8_size(message) if message else 0
        traceback_size = utf8_size(traceback) if traceback else 0
        if message_size + traceback_size <= limit:
            return message, traceback
        traceback_share = min(traceback_size, limit // 2)
        message_budget = limit - traceback_share
        if message_size <= message_budget:
            traceback_budget = limit - message_size
        else:
            traceback_budget = traceback_share
            assert message is not None
            marker = f"… [truncated: the message has {message_size:,} bytes, Limits.max_exception_bytes is {limit:,}]"
            message = _head(message, message_budget - utf8_size(marker)) + marker
        if traceback is not None and traceback_size > traceback_budget:
            traceback = _head_and_tail(traceback, traceback_size, traceback_budget, limit)
        return message, traceback

    def oversized_result(self, encoded: JSONValue) -> tuple[str, str] | None:
        """For an encoded result over ``max_result_bytes``: the note stored instead and the WARNING
        logged with the job; None when it fits."""
        limit = self.max_result_bytes
        bound = _json_bound(encoded)
        if bound is not None and bound <= limit:
            return None
        size = utf8_size(compact_json(encoded))
        if size <= limit:
            return None
        note = f"[result not stored: {size:,} bytes of JSON, more than Limits.max_result_bytes ({limit:,})]"
        warning = (
            f"the result was not stored: it takes {size:,} bytes as JSON, more than Limits.max_result_bytes "
            f"({limit:,} bytes); the job succeeded and its result holds a note instead. Return a reference to a "
            "large result stored elsewhere, or raise the limit with Options(limits=Limits(max_result_bytes=...))"
        )
        return note, warning


def _head_and_tail(text: str, size: int, budget: int, limit: int) -> str:
    # the end of a traceback holds the innermost frames and the exception line: it gets two thirds
    widest = f"\n… [{size:,} bytes cut: Limits.max_exception_bytes is {limit:,}] …\n"
    room = max(0, budget - utf8_size(widest))
    head = _head(text, room // 3)
    tail = _tail(text, room - utf8_size(head))
    cut = size - utf8_size(head) - utf8_size(tail)
    return f"{head}\n… [{cut:,} bytes cut: Limits.max_exception_bytes is {limit:,}] …\n{tail}"
