"""One binder from a backend's operation functions to its transaction class.

A backend writes each operation of :class:`~hivemind_jobs.storage.protocol.Operations` once, as a
function of ``(connection, queries, params)`` (or ``(connection, queries)`` for an operation without
parameters) in its operations module, and binds it there, one line per operation, on a class of
bound operations::

    class SQLiteOperations(BoundOperations):
        job_get = operation(job_get)
        job_insert = operation(job_insert, copy=True)

Its transaction class inherits that class and supplies the one hook, :meth:`BoundOperations._run`,
that runs a function on the transaction's connection (in the connection's thread for SQLite, on a
pooled driver connection with retries for the servers). The transaction class itself names no
operation, and adding one touches only the protocol and each backend's operations module and SQL.

Types: :func:`operation` (plain functions) and :func:`async_operation` (coroutine functions) keep the
function's parameters after the connection and the queries, and its result, so a bound operation is
typed ``(params) -> Coroutine[..., result]``. A class of them is checked against the protocol like
hand-written methods: a missing operation or a wrong parameter or result type is a type error.

Cost: when the class is created, each declaration replaces itself with a plain ``async def`` method
holding the function (and the commit hint's predicate) in its closure, so calling an operation is an
ordinary method call that awaits ``self._run(function, params, final)``: no lookup by name and no
partial per call.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload

from hivemind_jobs.storage.params import JobLockReleased, JobUpdated, PendingInserts, UpdateOutcome
from hivemind_jobs.storage.sql import SQL

__all__ = [
    "BoundOperation",
    "BoundOperations",
    "always",
    "async_operation",
    "never",
    "operation",
    "release_is_final",
    "update_is_final",
    "updates_are_final",
]

P = ParamSpec("P")
R = TypeVar("R")
C = TypeVar("C")
#: the named queries an operation function gets after its connection
Queries = Mapping[str, SQL]
#: whether an operation's result needs no follow-up in its transaction (see ``commit_after_next``)
IsFinal = Callable[[Any], bool]


def always(result: object) -> bool:
    """Any result of the operation is final (the default)."""
    return True


def never(result: object) -> bool:
    """No result of the operation is known final from the result alone: the caller commits."""
    return False


def update_is_final(result: JobUpdated) -> bool:
    """A save is final unless it did not save or has children to release or fired continuations."""
    return result.outcome is UpdateOutcome.SAVED and not result.children and not result.fired


def updates_are_final(results: list[JobUpdated]) -> bool:
    return all(update_is_final(result) for result in results)


def release_is_final(result: JobLockReleased) -> bool:
    """A released lock is final unless continuations fired while the job was locked."""
    return not result.fired


class BoundOperations:
    """The base of a class of bound operations; the transaction class that inherits it runs them."""

    __slots__ = ()

    async def _run(self, function: Callable[..., Any], params: Any, final: IsFinal) -> Any:
        """Run ``function(connection, queries, params)`` on this transaction's connection.

        ``final`` tells whether a result needs no follow-up, for a backend that honours
        ``commit_after_next``. Operations without parameters get ``params`` None (their function is
        wrapped to take and drop it).
        """
        raise NotImplementedError


class BoundOperation(Generic[P, R]):
    """An operation function declared on a :class:`BoundOperations` class (see the module)."""

    __slots__ = ("copy", "final", "function", "takes_params")

    def __init__(self, function: Callable[..., Any], *, copy: bool, final: IsFinal) -> None:
        parameters = len(inspect.signature(function).parameters)
        if parameters not in (2, 3):
            raise TypeError(
                f"an operation function takes (connection, queries) or (connection, queries, params); "
                f"{function.__qualname__} takes {parameters} parameters"
            )
        self.function = function
        self.copy = copy
        self.final = final
        self.takes_params = parameters == 3

    def __set_name__(self, owner: type[Any], name: str) -> None:
        if not issubclass(owner, BoundOperations):
            raise TypeError(f"{owner.__qualname__}.{name}: operations are bound on a BoundOperations class")
        setattr(owner, name, self.method(owner, name))

    def method(self, owner: type[Any], name: str) -> Callable[..., Coroutine[Any, Any, Any]]:
        """The plain method that replaces the declaration on ``owner``."""
        function, final = self.function, self.final
        method: Callable[..., Coroutine[Any, Any, Any]]
        if not self.takes_params:

            def call(connection: Any, queries: Queries, params: None) -> Any:
                return function(connection, queries)

            async def without_params(transaction: BoundOperations) -> Any:
                return await transaction._run(call, None, final)

            method = without_params
        elif self.copy:  # the caller's sequence is copied: it may change it once the call returns

            async def with_copied_params(transaction: BoundOperations, params: Any) -> Any:
                # rows still to be built are built by the operation, as it asks for them
                copied = params if type(params) is PendingInserts else list(params)
                return await transaction._run(function, copied, final)

            method = with_copied_params
        else:

            async def with_params(transaction: BoundOperations, params: Any) -> Any:
                return await transaction._run(function, params, final)

            method = with_params
        method.__name__ = name
        method.__qualname__ = f"{owner.__qualname__}.{name}"
        method.__module__ = owner.__module__
        method.__doc__ = function.__doc__
        # what help() and inspect show: the function's parameters after the connection and queries
        signature = inspect.signature(function)
        shown = [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        shown.extend(list(signature.parameters.values())[2:])
        setattr(method, "__signature__", signature.replace(parameters=shown))  # noqa: B010 - not typed on Callable
        return method

    @overload
    def __get__(self, instance: None, owner: type[Any]) -> Self: ...
    @overload
    def __get__(self, instance: object, owner: type[Any]) -> Callable[P, Coroutine[Any, Any, R]]: ...
    def __get__(self, instance: object, owner: type[Any]) -> Any:
        # a declaration replaces itself when its class is created; this is only reached for one
        # attached to a class afterwards
        if instance is None:
            return self
        raise TypeError("a bound operation must be declared in the body of its BoundOperations class")


def operation(
    function: Callable[Concatenate[C, Queries, P], R], *, copy: bool = False, final: IsFinal = always
) -> BoundOperation[P, R]:
    """Bind a plain function (run where the transaction runs it: SQLite's connection thread).

    ``copy``: the parameter is a sequence, copied to a list at the call. ``final``: whether a
    result needs no follow-up (see ``Transaction.commit_after_next``).
    """
    return BoundOperation(function, copy=copy, final=final)


def async_operation(
    function: Callable[Concatenate[C, Queries, P], Awaitable[R]], *, copy: bool = False, final: IsFinal = always
) -> BoundOperation[P, R]:
    """Bind a coroutine function (awaited on the transaction's connection: the servers)."""
    return BoundOperation(function, copy=copy, final=final)
