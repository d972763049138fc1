"""Built-in maintenance daemons every colony runs (each scoped to the colony's environment)."""

from hivemind_jobs.daemons.colonies import colony_cleanup_daemon
from hivemind_jobs.daemons.lock_monitor import lock_monitor_daemon, rescue_expired_locks
from hivemind_jobs.daemons.maintenance import maintenance_daemon, run_maintenance

__all__ = [
    "colony_cleanup_daemon",
    "lock_monitor_daemon",
    "maintenance_daemon",
    "rescue_expired_locks",
    "run_maintenance",
]
