"""A backend of Django's Tasks framework that runs ``@task`` functions on HiveMind colonies.

.. code-block:: python

    TASKS = {"default": {"BACKEND": "hivemind_jobs.contrib.django.TasksBackend"}}

Django 6's ``django.tasks`` or, before it, the ``django-tasks`` backport. A task becomes a job
of :func:`run_task` (queue ``queue_name``, the Django ``default`` queue being HiveMind's default
queue; priority -100..100 folded into HiveMind's five; ``run_after`` as a delay), with the task's
path, queue and priority as job properties (``django.task``, ``django.queue``,
``django.priority``). ``get_result`` reads the job back: READY while it waits (also between
retries), RUNNING while it executes, SUCCESSFUL with the return value, FAILED with one
``TaskError`` per failed attempt (or when the job was deleted).

Enqueued inside ``transaction.atomic()`` on the environment's Django database, the job is written
in that transaction: workers see it once the transaction commits, and never if it rolls back
(``OPTIONS = {"ENQUEUE_ON_COMMIT": False}`` writes it at once instead). Read results outside
the transaction that enqueued them (a ``TransactionTestCase`` in tests).

``OPTIONS``: ``ENVIRONMENT`` (default: the default one), ``ENQUEUE_ON_COMMIT`` (default True),
``MAX_RETRIES`` (default 0: a task that raises is FAILED, as Django's other backends report it).
"""

from __future__ import annotations

import inspect
import json
import traceback as traceback_module
from collections.abc import Sequence
from typing import Any, cast

from hivemind_jobs.client.context import JobContext
from hivemind_jobs.core.names import DEFAULT_QUEUE, validate_queue_name
from hivemind_jobs.core.priority import Priority
from hivemind_jobs.core.retry import RetryPolicy
from hivemind_jobs.core.states import Executing, Failed, State, Succeeded
from hivemind_jobs.errors import HiveMindError

try:  # Django 6
    from django.tasks import DEFAULT_TASK_QUEUE_NAME, TaskContext, TaskResult, TaskResultStatus
    from django.tasks import exceptions as _exceptions
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
    from django.tasks.signals import task_enqueued, task_finished, task_started
except ImportError:  # the django-tasks backport
    from django_tasks import DEFAULT_TASK_QUEUE_NAME, TaskContext, TaskResult, TaskResultStatus
    from django_tasks import exceptions as _exceptions
    from django_tasks.backends.base import BaseTaskBackend
    from django_tasks.base import Task, TaskError
    from django_tasks.exceptions import TaskResultDoesNotExist
    from django_tasks.signals import task_enqueued, task_finished, task_started

#: the exception of an invalid task (``InvalidTask`` in Django 6, ``InvalidTaskError`` in the backport)
InvalidTaskError: type[Exception] = getattr(_exceptions, "InvalidTask", None) or _exceptions.InvalidTaskError

__all__ = ["TasksBackend", "hivemind_priority", "run_task"]

TASK_PROPERTY = "django.task"
QUEUE_PROPERTY = "django.queue"
PRIORITY_PROPERTY = "django.priority"
BACKEND_PROPERTY = "django.backend"
_OPTIONS = {"ENVIRONMENT", "ENQUEUE_ON_COMMIT", "MAX_RETRIES"}


def hivemind_priority(priority: int) -> Priority:
    """Django's priority (-100 lowest .. 100 highest, 0 default) as one of HiveMind's five."""
    if priority >= 60:
        return Priority.CRITICAL
    if priority >= 20:
        return Priority.HIGH
    if priority > -20:
        return Priority.NORMAL
    if priority > -60:
        return Priority.LOW
    return Priority.NONE


def _queue(django_queue: str) -> str:
    return DEFAULT_QUEUE if django_queue == DEFAULT_TASK_QUEUE_NAME else django_queue


def _json(value: Any) -> Any:
    """``value`` as Django stores task arguments and results: through JSON and back."""
    return json.loads(json.dumps(value))


def _load_task(path: str) -> Any:
    from django.utils.module_loading import import_string

    task = import_string(path)
    if not isinstance(task, Task):
        raise HiveMindError(f"{path} is not a Django task (decorate it with @task)")
    return task


def run_task(ctx: JobContext, task: str, args: list[Any], kwargs: dict[str, Any]) -> Any:
    """The job a Django task runs as: call the task ``task`` (its import path) on a colony's
    thread, with Django's database connections checked before and closed after, as a request's
    are."""
    from asgiref.sync import async_to_sync
    from django.db import close_old_connections

    django_task = _load_task(task)
    locked = ctx.job
    result = _result(django_task, str(locked.id), locked.job.states, args, kwargs, backend=django_task.backend)
    task_started.send(type(django_task.get_backend()), task_result=result)
    close_old_connections()
    try:
        call_args = [TaskContext(task_result=result), *args] if django_task.takes_context else list(args)
        if inspect.iscoroutinefunction(django_task.func):
            # asgiref's loop: the ORM calls of the task (thread-sensitive) run on this thread, whose
            # connections are closed below
            value = _json(async_to_sync(django_task.func)(*call_args, **kwargs))
        else:
            value = _json(django_task.func(*call_args, **kwargs))
    except BaseException as error:
        finished = _with(result, status=TaskResultStatus.FAILED)
        finished.errors.append(
            TaskError(
                exception_class_path=f"{type(error).__module__}.{type(error).__qualname__}",
                traceback="".join(traceback_module.format_exception(error)),
            )
        )
        task_finished.send(type(django_task.get_backend()), task_result=finished)
        raise
    finally:
        close_old_connections()
    succeeded = _with(result, status=TaskResultStatus.SUCCESSFUL, _return_value=value)
    task_finished.send(type(django_task.get_backend()), task_result=succeeded)
    return value


def _with(result: Any, **changes: Any) -> Any:
    for name, value in changes.items():
        object.__setattr__(result, name, value)
    return result


def _status(state: State) -> Any:
    if isinstance(state, Succeeded):
        return TaskResultStatus.SUCCESSFUL
    if state.final:  # Failed, deleted
        return TaskResultStatus.FAILED
    if isinstance(state, Executing):
        return TaskResultStatus.RUNNING
    return TaskResultStatus.READY


def _result(
    task: Any, result_id: str, states: Sequence[State], args: list[Any], kwargs: dict[str, Any], *, backend: str
) -> Any:
    """A TaskResult of the job's state history."""
    runs = [state for state in states if isinstance(state, Executing)]
    current = states[-1]
    errors = [
        TaskError(
            exception_class_path=state.exception_type or "builtins.Exception",
            traceback=state.traceback or state.message or "",
        )
        for state in states
        if isinstance(state, Failed)
    ]
    if current.final and not isinstance(current, Succeeded | Failed):  # deleted before it succeeded
        errors.append(TaskError(exception_class_path="hivemind_jobs.errors.HiveMindError", traceback=str(current)))
    result = TaskResult(
        task=task,
        id=result_id,
        status=_status(current),
        enqueued_at=states[0].elected_at,
        started_at=runs[0].elected_at if runs else None,
        finished_at=current.elected_at if current.final else None,
        last_attempted_at=runs[-1].elected_at if runs else None,
        args=args,
        kwargs=kwargs,
        backend=backend,
        errors=errors,
        worker_ids=[state.colony or "" for state in runs],
    )
    if isinstance(current, Succeeded):
        object.__setattr__(result, "_return_value", current.result)
    return result


class TasksBackend(BaseTaskBackend):
    """Django's task backend on HiveMind (see the module's documentation)."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        unknown = set(self.options) - _OPTIONS
        if unknown:
            raise HiveMindError(
                f"TASKS[{alias!r}]['OPTIONS']: unknown key(s) {sorted(unknown)}; known: {sorted(_OPTIONS)}"
            )
        self.environment: str | None = self.options.get("ENVIRONMENT")
        self.enqueue_on_commit = bool(self.options.get("ENQUEUE_ON_COMMIT", True))
        self.retry = RetryPolicy(max_retries=int(self.options.get("MAX_RETRIES", 0)))

    def validate_task(self, task: Any) -> None:
        super().validate_task(task)
        try:
            validate_queue_name(_queue(task.queue_name))
        except HiveMindError as error:
            raise InvalidTaskError(str(error)) from None

    def _client(self) -> Any:
        """The jobs client to write with: in the Django transaction open on the environment's
        database when there is one (and ENQUEUE_ON_COMMIT), else the hive's own."""
        from django.db import connections

        from hivemind_jobs.contrib.django import hive
        from hivemind_jobs.contrib.django.conf import hive_settings

        settings = hive_settings()
        name = self.environment or settings.default.name
        environment = next((env for env in settings.environments if env.name == name), None)
        if environment is None:
            raise HiveMindError(f"TASKS[{self.alias!r}]: no HiveMind environment {name!r} in HIVEMIND")
        if self.enqueue_on_commit and environment.database is not None:
            connection = connections[environment.database]
            if connection.in_atomic_block:
                return hive().transaction(name, connection=connection)
        return None

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        from hivemind_jobs.contrib.django import hive

        self.validate_task(task)
        args, kwargs = _json(list(args)), _json(dict(kwargs))
        options: dict[str, Any] = {
            "queue": _queue(task.queue_name),
            "priority": hivemind_priority(task.priority),
            "retry": self.retry,
            "properties": {
                TASK_PROPERTY: task.module_path,
                QUEUE_PROPERTY: task.queue_name,
                PRIORITY_PROPERTY: task.priority,
                BACKEND_PROPERTY: self.alias,
            },
        }
        if task.run_after is not None:
            options["delay_until"] = task.run_after
        transaction = self._client()
        if transaction is not None:
            with transaction as tx:
                job_id = tx.jobs.options(**options).create(run_task, task.module_path, args, kwargs)
                job = tx.jobs.get(job_id)
        else:
            jobs = (hive().env(self.environment) if self.environment else hive()).jobs
            job_id = jobs.options(**options).create(run_task, task.module_path, args, kwargs)
            job = jobs.get(job_id)
        result = _result(task, str(job_id), job.states, args, kwargs, backend=self.alias)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> Any:
        from hivemind_jobs.contrib.django import hive

        try:
            job_id = int(result_id)
        except (TypeError, ValueError):
            raise TaskResultDoesNotExist(result_id) from None
        jobs = (hive().env(self.environment) if self.environment else hive()).jobs
        job = jobs.try_get(job_id)
        if job is None or job.get_property(BACKEND_PROPERTY) != self.alias:
            raise TaskResultDoesNotExist(result_id)
        path = str(job.get_property(TASK_PROPERTY))
        task = _load_task(path).using(
            queue_name=str(job.get_property(QUEUE_PROPERTY, DEFAULT_TASK_QUEUE_NAME)),
            priority=int(cast(int, job.get_property(PRIORITY_PROPERTY, 0))),
            backend=self.alias,
        )
        arguments = job.invocation.arguments
        return _result(
            task, result_id, job.states, arguments.get("args", []), arguments.get("kwargs", {}), backend=self.alias
        )
