"""Process execution: the sync jobs of a swarm with ``execution="process"`` run in child processes.

A :class:`ProcessPool` keeps one child process per drone of its swarm, started with ``spawn`` (or
``forkserver``). A child imports nothing from a job row by itself: the parent sends the job's
stored invocation (JSON) and the colony's allow list, and the child resolves it with the same
checks as a thread would (:func:`~hivemind_jobs.core.invocation.prepare_call`), runs it and sends
back the result encoded by the codec, or the exception's type, message and traceback. Every
message either way is one JSON document on a pipe: nothing from a child is ever unpickled.

A job's context works in the child through the parent: log records become messages the parent adds
to the job's log buffer, and ``ctx.job.get_data`` / ``set_data`` are requests the parent answers
with its own storage. A cancel request reaches the child's ``ctx.cancelled``.

A process can be stopped for real: a run whose timeout is reached, whose task is cancelled (a
colony stop after its grace period, a lost lock) or whose process dies is ended only once its
process is gone (SIGTERM, then SIGKILL one second later); a fresh child takes its place. So the job
is released (Failed, or Enqueued after a stop) only when nothing can still be running it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import TYPE_CHECKING, Any, cast

from hivemind_jobs.client.context import JobCancelled, JobContext
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.invocation import AllowList, DefaultActivator, Invocation, prepare_call
from hivemind_jobs.core.retry import FRAMEWORK_FATAL
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.errors import ConfigurationError, JobDataNotFoundError, JobDefinitionError
from hivemind_jobs.storage.protocol import JobLogRow

if TYPE_CHECKING:
    from hivemind_jobs.client.locked import LockedJob
    from hivemind_jobs.colony.runtime import Run
    from hivemind_jobs.environment import Environment

__all__ = ["EXECUTIONS", "START_METHODS", "JobProcessError", "JobProcessExited", "ProcessPool"]

_log = logging.getLogger("hivemind_jobs.colony")

#: how a swarm runs its sync jobs
EXECUTIONS = ("thread", "process")
#: how child processes are started (``fork`` is not offered: a fork of a running colony copies its
#: threads' locks and connections)
START_METHODS = ("spawn", "forkserver")
#: seconds between SIGTERM and SIGKILL when a child is stopped
_KILL_AFTER = 1.0
#: how long a new child may take to import and say it is ready
_START_TIMEOUT = 60.0
#: the largest message accepted from a child (log rows and results are bounded long before this)
_MAX_MESSAGE = 256 * 1024 * 1024
#: how often a run in a child looks for a cancel request to forward
_CANCEL_CHECK = 0.1
_JOB_CANCELLED = f"{JobCancelled.__module__}.{JobCancelled.__qualname__}"


class JobProcessError(Exception):
    """A job running in a child process raised: its exception's type name, message and traceback as
    the child reported them (the exception object itself stays in the child)."""

    def __init__(self, exception_type: str, message: str, traceback_text: str) -> None:
        super().__init__(message)
        self.exception_type = exception_type
        self.message = message
        self.traceback_text = traceback_text


class _JobProcessFatal(JobProcessError, JobDefinitionError):
    """The child could not run the job at all (not allowed, not found, arguments that no longer bind
    or decode): fatal, like the same error in a thread."""


class JobProcessExited(Exception):
    """The child process running the job died (it was killed, crashed or called ``os._exit``)."""


def _message(op: str, **fields: Any) -> bytes:
    return json.dumps({"op": op, **fields}, separators=(",", ":")).encode()


# ================================================================================= the parent's side


class _Child:
    """One child process and what runs in it now."""

    def __init__(self, pool: ProcessPool, process: BaseProcess, connection: Connection) -> None:
        self.pool = pool
        self.process = process
        self.connection = connection
        self.pid = process.pid or 0
        self.loop = pool.loop
        self.ready: asyncio.Future[None] = self.loop.create_future()
        #: resolved once the process is gone (its pipe closed and the process reaped)
        self.exited: asyncio.Future[int | None] = self.loop.create_future()
        self.run: Run | None = None
        self.outcome: asyncio.Future[Any] | None = None
        self.killing = False
        self._send_guard = threading.Lock()
        self.reader = threading.Thread(target=self._read, name=f"hivemind-child-{self.pid}", daemon=True)

    def send(self, data: bytes) -> None:
        # a child that is gone fails the send: its reader reports the exit
        with self._send_guard, contextlib.suppress(OSError, ValueError):
            self.connection.send_bytes(data)

    def _read(self) -> None:
        """On the reader thread: hand every message to the loop, then report the exit."""
        connection = self.connection
        try:
            while True:
                data = connection.recv_bytes(_MAX_MESSAGE)
                message = json.loads(data)
                if not isinstance(message, dict):
                    raise ValueError("a child message must be a JSON object")
                self._post(self.pool.on_message, self, message)
        except (EOFError, OSError, ValueError, RecursionError):
            pass
        if self.process.is_alive():  # it broke the protocol or closed its pipe: it must not go on
            self._signal(signal.SIGKILL)
        self.process.join()
        with contextlib.suppress(OSError):
            connection.close()
        self._post(self.pool.on_exit, self)

    def _post(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(callback, *args)

    def _signal(self, number: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if not self.exited.done():
                os.kill(self.pid, number)

    def kill(self) -> None:
        """SIGTERM now, SIGKILL one second later if it is still there."""
        if self.killing or self.exited.done():
            return
        self.killing = True
        self._signal(signal.SIGTERM)
        self.loop.call_later(_KILL_AFTER, self._signal, signal.SIGKILL)


class ProcessPool:
    """The child processes of one swarm (one per drone); see the module docstring."""

    def __init__(
        self,
        size: int,
        *,
        environment: Environment,
        allow: AllowList,
        start_method: str,
        name: str,
    ) -> None:
        if start_method not in START_METHODS:
            raise ConfigurationError(f"process start method must be one of {START_METHODS}, got {start_method!r}")
        self.size = size
        self.environment = environment
        self.allow = allow
        self.name = name
        self.context = cast("multiprocessing.context.SpawnContext", multiprocessing.get_context(start_method))
        self.loop = asyncio.get_running_loop()
        self.children: set[_Child] = set()
        self.free: asyncio.Queue[_Child] = asyncio.Queue()
        self.closing = False
        self._tasks: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ children
    def _spawn(self) -> _Child:
        parent_end, child_end = self.context.Pipe(duplex=True)
        allow = self.allow
        process = self.context.Process(
            target=child_main,
            args=(child_end, list(allow.modules), list(allow.targets), allow.allow_all),
            name=f"{self.name}-child",
            daemon=True,
        )
        process.start()
        child_end.close()
        child = _Child(self, process, parent_end)
        self.children.add(child)
        child.reader.start()
        return child

    async def _started(self, child: _Child, *, replacing: bool = False) -> None:
        try:
            await asyncio.wait_for(asyncio.shield(child.ready), _START_TIMEOUT)
        except (TimeoutError, JobProcessExited) as error:
            child.kill()
            problem = f"swarm {self.name}: a child process (pid {child.pid}) did not start: {error or 'timed out'}"
            if not replacing:
                raise ConfigurationError(problem) from None
            _log.error("%s; trying again in 1 s", problem)  # its exit starts another one
            return
        self.free.put_nowait(child)

    async def start(self) -> None:
        """Start the children and wait until each has imported the library and said it is ready."""
        children = [self._spawn() for _ in range(self.size)]
        await asyncio.gather(*(self._started(child) for child in children))

    def _replace(self) -> None:
        if self.closing:
            return
        child = self._spawn()
        task = self.loop.create_task(self._started(child, replacing=True), name=f"hivemind-child-start-{self.name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def on_exit(self, child: _Child) -> None:
        """On the loop: a child's process is gone."""
        self.children.discard(child)
        code = child.process.exitcode
        if not child.ready.done():
            child.ready.set_exception(JobProcessExited(f"exited with code {code} while starting"))
            child.ready.exception()  # retrieved: the start reports it
        if child.outcome is not None and not child.outcome.done():
            child.outcome.set_exception(
                JobProcessExited(f"the process running the job (pid {child.pid}) exited with code {code}")
            )
        if not child.exited.done():
            child.exited.set_result(code)
        if not child.ready.done() or child.ready.exception() is not None:
            self.loop.call_later(1.0, self._replace)  # it never started: do not spin
            return
        if not child.killing and child.run is None and not self.closing:
            _log.warning(
                "swarm %s: idle child process %s exited with code %s; replacing it", self.name, child.pid, code
            )
        self._replace()

    # ------------------------------------------------------------------ messages
    def on_message(self, child: _Child, message: dict[str, Any]) -> None:
        """On the loop: one message of a child."""
        op = message.get("op")
        if op == "ready":
            if not child.ready.done():
                child.ready.set_result(None)
            return
        run, outcome = child.run, child.outcome
        if run is None or outcome is None or message.get("job") != run.job.id:
            return  # a message of a run already ended (or of nothing): dropped
        if op == "log":
            self._log_row(run, message)
        elif op in ("get_data", "set_data"):
            task = self.loop.create_task(self._data_call(child, run, message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        elif op == "done" and not outcome.done():
            outcome.set_result(message.get("result"))
        elif op == "failed" and not outcome.done():
            kind_name, text = _text(message.get("type")), _text(message.get("message"))
            if kind_name == _JOB_CANCELLED:  # it stopped when asked: the same outcome as in a thread
                outcome.set_exception(JobCancelled(text))
                return
            kind = _JobProcessFatal if message.get("fatal") is True else JobProcessError
            outcome.set_exception(kind(kind_name, text, _text(message.get("traceback"))))

    @staticmethod
    def _log_row(run: Run, message: dict[str, Any]) -> None:
        level = message.get("level")
        if not isinstance(level, int) or isinstance(level, bool):
            return
        optional = [message.get(key) for key in ("exception_type", "exception_message", "traceback")]
        run.context.buffer.append(
            JobLogRow(
                job_id=run.job.id,
                level=level,
                message=redact_secrets(_text(message.get("message"))),
                logger=_text(message.get("logger")) or None,
                exception_type=_text(optional[0]) if optional[0] is not None else None,
                exception_message=redact_secrets(_text(optional[1])) if optional[1] is not None else None,
                traceback=redact_secrets(_text(optional[2])) if optional[2] is not None else None,
            )
        )

    async def _data_call(self, child: _Child, run: Run, message: dict[str, Any]) -> None:
        """Answer a child's ``get_data`` / ``set_data`` with this environment's storage."""
        jobs = self.environment.jobs
        codec = self.environment.codec
        request = message.get("id")
        name = message.get("name")
        try:
            if not isinstance(name, str):
                raise ValueError("a job data name must be text")
            if message.get("op") == "set_data":
                await jobs.set_data(run.job.id, name, codec.decode(message.get("value"), Any, path=f"job data {name}"))
                reply: dict[str, Any] = {"ok": True}
            else:
                missing = object()
                value = await jobs.try_get_data(run.job.id, name, Any, default=missing)
                reply = {"ok": True, "found": value is not missing}
                if value is not missing:
                    reply["value"] = codec.encode(value, path=f"job data {name}")
        except Exception as error:
            reply = {"ok": False, "type": type(error).__name__, "message": redact_secrets(str(error))}
        if child.run is run:
            child.send(_message("reply", id=request, **reply))

    # ------------------------------------------------------------------ runs
    async def run(self, run: Run, invocation: str) -> Any:
        """Run a sync job in a free child; returns its result (decoded) or raises what it raised (as
        :class:`JobProcessError`), :class:`JobProcessExited` when its process died. Cancelled, it
        kills the process and waits until it is gone before it lets the cancel through."""
        child = await self.free.get()
        outcome: asyncio.Future[Any] = self.loop.create_future()
        child.run, child.outcome = run, outcome
        run.process = child
        context = run.context
        child.send(
            _message(
                "run",
                job=run.job.id,
                invocation=invocation,
                colony=context.colony,
                swarm=context.swarm,
                drone=context.drone,
                log_level=context.buffer.level,
            )
        )
        cancel_sent = False
        try:
            while not outcome.done():
                await asyncio.wait([outcome], timeout=_CANCEL_CHECK)
                if not cancel_sent and context.cancelled.is_set():
                    cancel_sent = True
                    child.send(_message("cancel", job=run.job.id))
            result = outcome.result()
        except asyncio.CancelledError:
            child.kill()
            await _until_exited(child)
            raise
        finally:
            child.run = child.outcome = None
            if not child.killing and not child.exited.done():
                self.free.put_nowait(child)
        return self.environment.codec.decode(result, Any, path="job result")

    @staticmethod
    def kill(run: Run) -> bool:
        """Kill the process running ``run`` (its run then ends with :class:`JobProcessExited`);
        False when no process runs it."""
        child = cast("_Child | None", run.process)
        if child is None or child.run is not run:
            return False
        child.kill()
        return True

    async def close(self, until: Callable[[], float]) -> None:
        """Stop every child: ask the idle ones to exit, kill the others, and wait until ``until()``
        for them to be gone."""
        self.closing = True
        for child in list(self.children):
            if child.run is None:
                child.send(_message("stop"))
            else:
                child.kill()
        exits = [child.exited for child in self.children]
        deadline = min(until(), time.monotonic() + _KILL_AFTER)
        if exits:
            await asyncio.wait(exits, timeout=max(0.0, deadline - time.monotonic()))
        for child in list(self.children):
            if not child.exited.done():
                child._signal(signal.SIGKILL)
        exits = [child.exited for child in self.children if not child.exited.done()]
        if exits:
            await asyncio.wait(exits, timeout=max(0.0, until() - time.monotonic()))
        for task in list(self._tasks):
            task.cancel()


async def _until_exited(child: _Child) -> None:
    """Wait until the child's process is gone, even when cancelled again meanwhile (a stop cancels
    again and again): the kill makes that a matter of a second."""
    while not child.exited.done():
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(child.exited)


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


# ================================================================================== the child's side


class _ChildJob:
    """``ctx.job`` in a child process: the job's id and its data (through the parent)."""

    def __init__(self, side: _ChildSide, job_id: int) -> None:
        self._side = side
        self.id = job_id

    async def get_data(self, name: str, type_hint: Any = Any) -> Any:
        found, value = self._side.get_data(self.id, name, type_hint)
        if not found:
            raise JobDataNotFoundError(f"job {self.id} has no data item {name!r}")
        return value

    async def try_get_data(self, name: str, type_hint: Any = Any, *, default: Any = None) -> Any:
        found, value = self._side.get_data(self.id, name, type_hint)
        return value if found else default

    async def set_data(self, name: str, value: object) -> None:
        self._side.set_data(self.id, name, value)

    def __getattr__(self, name: str) -> Any:
        raise AttributeError(
            f"ctx.job.{name} is not available to a job running in a process; it has id, get_data, "
            "try_get_data and set_data"
        )


class _ChildLogHandler(logging.Handler):
    def __init__(self, side: _ChildSide, job_id: int, level: int) -> None:
        super().__init__(level)
        self._side = side
        self._job_id = job_id

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a bad format string must not break the job
            text = f"{record.msg!r} % {record.args!r}"
        error = record.exc_info[1] if record.exc_info else None
        fields: dict[str, Any] = {"job": self._job_id, "level": record.levelno, "message": text, "logger": record.name}
        if error is not None:
            kind = type(error)
            fields["exception_type"] = f"{kind.__module__}.{kind.__qualname__}"
            fields["exception_message"] = str(error)
            fields["traceback"] = "".join(traceback.format_exception(error))
        self._side.send(_message("log", **fields))


class _ChildJobContext(JobContext):
    def __init__(self, side: _ChildSide, job_id: int, message: dict[str, Any]) -> None:
        self._job = _ChildJob(side, job_id)
        self._colony = _text(message.get("colony"))
        self._swarm = _text(message.get("swarm"))
        self._drone = _text(message.get("drone"))
        level = message.get("log_level")
        self._level = level if isinstance(level, int) else logging.INFO
        self._logger = logging.Logger(f"hivemind_jobs.job.{job_id}", self._level)
        self._logger.addHandler(_ChildLogHandler(side, job_id, self._level))
        self._cancelled = threading.Event()

    @property
    def job(self) -> LockedJob:
        return cast("LockedJob", self._job)

    @property
    def colony(self) -> str:
        return self._colony

    @property
    def swarm(self) -> str:
        return self._swarm

    @property
    def drone(self) -> str:
        return self._drone

    @property
    def log(self) -> logging.Logger:
        return self._logger

    @property
    def cancelled(self) -> threading.Event:
        return self._cancelled


class _ChildSide:
    """The loop of a child process: receive a job, run it, send its outcome; a reader thread takes
    cancel requests and the answers to data calls meanwhile."""

    def __init__(self, connection: Connection, allow: AllowList) -> None:
        self.connection = connection
        self.allow = allow
        self.codec = Codec()
        self.activator = DefaultActivator()
        self._send_guard = threading.Lock()
        self._jobs: list[dict[str, Any] | None] = []
        self._job_ready = threading.Condition()
        self._replies: dict[int, dict[str, Any]] = {}
        self._reply_ready = threading.Condition()
        self._next_request = 0
        self.context: _ChildJobContext | None = None

    def send(self, data: bytes) -> None:
        with self._send_guard:
            self.connection.send_bytes(data)

    def _read(self) -> None:
        try:
            while True:
                message = json.loads(self.connection.recv_bytes(_MAX_MESSAGE))
                op = message.get("op") if isinstance(message, dict) else None
                if op == "run":
                    self._queue(message)
                elif op == "cancel" and self.context is not None:
                    self.context.cancelled.set()
                elif op == "reply":
                    with self._reply_ready:
                        self._replies[message.get("id")] = message
                        self._reply_ready.notify_all()
                elif op == "stop":
                    break
        except (EOFError, OSError, ValueError):
            # the colony is gone (killed, crashed): its job's lock will expire and the job run again
            # elsewhere, so this run must not go on next to that one
            os._exit(70)
        self._queue(None)
        with self._reply_ready:  # a data call waiting for an answer gets none: the parent is gone
            self._replies[-1] = {}
            self._reply_ready.notify_all()

    def _queue(self, message: dict[str, Any] | None) -> None:
        with self._job_ready:
            self._jobs.append(message)
            self._job_ready.notify()

    def _request(self, op: str, **fields: Any) -> dict[str, Any]:
        with self._reply_ready:
            self._next_request += 1
            request = self._next_request
        self.send(_message(op, id=request, **fields))
        with self._reply_ready:
            while request not in self._replies and -1 not in self._replies:
                self._reply_ready.wait()
            reply = self._replies.pop(request, None)
        if reply is None:
            raise ConnectionError("the colony that runs this job is gone")
        if not reply.get("ok"):
            raise RuntimeError(f"{reply.get('type')}: {reply.get('message')}")
        return reply

    def get_data(self, job_id: int, name: str, type_hint: Any) -> tuple[bool, Any]:
        reply = self._request("get_data", job=job_id, name=name)
        if not reply.get("found"):
            return False, None
        return True, self.codec.decode(reply.get("value"), type_hint, path=f"job data {name}")

    def set_data(self, job_id: int, name: str, value: object) -> None:
        self._request("set_data", job=job_id, name=name, value=self.codec.encode(value, path=f"job data {name}"))

    def serve(self) -> None:
        threading.Thread(target=self._read, name="hivemind-child-reader", daemon=True).start()
        self.send(_message("ready"))
        while True:
            with self._job_ready:
                while not self._jobs:
                    self._job_ready.wait()
                message = self._jobs.pop(0)
            if message is None:
                return
            self._run(message)

    def _run(self, message: dict[str, Any]) -> None:
        job_id = message.get("job")
        if not isinstance(job_id, int):
            return
        context = self.context = _ChildJobContext(self, job_id, message)
        token = context.activate()
        try:
            invocation = Invocation.from_stored(_text(message.get("invocation")))
            if invocation.is_async:
                raise JobDefinitionError("async jobs run on the colony's event loop, not in a process")
            call = prepare_call(
                invocation,
                codec=self.codec,
                activator=self.activator,
                allow=self.allow,
                injections={JobContext: context},
            )
            result = call.function(*call.args, **call.kwargs)
            try:
                encoded = self.codec.encode(result, path="job result")
            except Exception as problem:
                context.log.warning("the result was stored as its repr: %s", problem)
                encoded = repr(result)
            self.send(_message("done", job=job_id, result=encoded))
        except BaseException as error:
            kind = type(error)
            self.send(
                _message(
                    "failed",
                    job=job_id,
                    type=f"{kind.__module__}.{kind.__qualname__}",
                    message=str(error),
                    traceback="".join(traceback.format_exception(error)),
                    fatal=isinstance(error, FRAMEWORK_FATAL),
                )
            )
            if isinstance(error, KeyboardInterrupt | SystemExit):
                raise
        finally:
            context.deactivate(token)
            self.context = None


def child_main(connection: Connection, modules: list[str], targets: list[str], allow_all: bool) -> None:
    """The entry point of a child process (started by :class:`ProcessPool`)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's ^C is the colony's to handle
    _ChildSide(connection, AllowList(modules=tuple(modules), targets=tuple(targets), allow_all=allow_all)).serve()
