"""Daemons a colony supervises: their context, specs and supervisor (:mod:`.runtime`), the loop of
periodic ones (:mod:`.periodic`), and the built-in maintenance daemons every colony runs (each
scoped to the colony's environment). Never imports the colony: it sees it as a :class:`DaemonHost`."""

from hivemind_jobs.daemons.colonies import ColonyCleanup, colony_cleanup_daemon
from hivemind_jobs.daemons.lock_monitor import JobRescued, LockMonitor, lock_monitor_daemon, rescue_expired_locks
from hivemind_jobs.daemons.maintenance import Maintenance, maintenance_daemon, run_maintenance
from hivemind_jobs.daemons.periodic import PeriodicDaemon
from hivemind_jobs.daemons.runtime import (
    DaemonContext,
    DaemonFunction,
    DaemonHost,
    DaemonOptions,
    DaemonSpec,
    DaemonStatus,
    DaemonSupervisor,
    RestartPolicy,
)
from hivemind_jobs.daemons.scheduler import Scheduler, scheduler_daemon

__all__ = [
    "ColonyCleanup",
    "DaemonContext",
    "DaemonFunction",
    "DaemonHost",
    "DaemonOptions",
    "DaemonSpec",
    "DaemonStatus",
    "DaemonSupervisor",
    "JobRescued",
    "LockMonitor",
    "Maintenance",
    "PeriodicDaemon",
    "RestartPolicy",
    "Scheduler",
    "colony_cleanup_daemon",
    "lock_monitor_daemon",
    "maintenance_daemon",
    "rescue_expired_locks",
    "run_maintenance",
    "scheduler_daemon",
]
