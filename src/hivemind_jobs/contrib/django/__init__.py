"""HiveMind in a Django project.

Add ``"hivemind_jobs.contrib.django"`` to ``INSTALLED_APPS``; settings go in ``HIVEMIND``
(see :mod:`hivemind_jobs.contrib.django.conf`), by default the project's own database. Then:

- :func:`hive` is the process's blocking :class:`~hivemind_jobs.SyncHiveMind`, opened at first use;
- :func:`transaction` writes jobs in the request's own transaction (inside ``transaction.atomic()``
  or under ``ATOMIC_REQUESTS``): a view that rolls back leaves no job;
- ``manage.py hivemind worker|dashboard|jobs|db ...`` is the ``hivemind`` command with the
  project's settings and apps loaded;
- :class:`~hivemind_jobs.contrib.django.tasks.TasksBackend` runs Django's own ``@task``
  functions (``django.tasks``, or the ``django-tasks`` backport) on HiveMind colonies.
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

from hivemind_jobs.contrib.django.conf import create_hive, hive_settings

if TYPE_CHECKING:
    from hivemind_jobs.sync import SyncHiveMind, SyncTransaction

__all__ = ["TasksBackend", "close", "create_hive", "hive", "transaction"]

_lock = threading.Lock()
_hive: SyncHiveMind | None = None


def hive() -> SyncHiveMind:
    """The process's blocking HiveMind on the ``HIVEMIND`` settings, opened at first use (and
    closed at exit, or by :func:`close`)."""
    global _hive
    current = _hive
    if current is not None:
        return current
    with _lock:
        if _hive is None:
            from hivemind_jobs.sync import SyncHiveMind

            opened = SyncHiveMind._around(create_hive())
            opened.open()
            _hive = opened
            atexit.register(_close_at_exit, opened)
        return _hive


def _close_at_exit(opened: SyncHiveMind) -> None:
    opened.close()  # a no-op once closed


def close() -> None:
    """Close the process's HiveMind (the next :func:`hive` opens a new one on the settings of
    then: tests that switch databases call it)."""
    global _hive
    with _lock:
        current, _hive = _hive, None
    if current is not None:
        current.close()


def transaction(using: str | None = None, *, environment: str | None = None) -> SyncTransaction:
    """``with hivemind_jobs.contrib.django.transaction() as tx: tx.jobs.create(...)`` - the jobs are
    written on Django's connection ``using`` (default: the ``HIVEMIND["DATABASE"]`` alias), in
    its open transaction: they commit when the request's transaction commits and vanish when it
    rolls back. Call it inside ``transaction.atomic(using=...)`` (or under ``ATOMIC_REQUESTS``);
    the environment must be on that database (the default one is)."""
    from django.db import connections

    alias = using or hive_settings().database
    return hive().transaction(environment, connection=connections[alias])


def __getattr__(name: str) -> Any:
    if name == "TasksBackend":  # imports django.tasks / django_tasks only when named
        from hivemind_jobs.contrib.django.tasks import TasksBackend

        return TasksBackend
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
