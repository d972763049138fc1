"""The worker runtime: colonies hosting swarms of drones and daemons."""

from hivemind_jobs.colony.colony import RESCUES_PROPERTY, RETRIES_PROPERTY, Colony, ColonyStatus
from hivemind_jobs.colony.events import ColonyStatusChanged, JobEnded, JobExecuted, JobExecuting
from hivemind_jobs.colony.options import ColonyOptions, RestartPolicy
from hivemind_jobs.colony.swarm import Swarm
from hivemind_jobs.daemons.runtime import DaemonContext, DaemonSpec, DaemonStatus

__all__ = [
    "RESCUES_PROPERTY",
    "RETRIES_PROPERTY",
    "Colony",
    "ColonyOptions",
    "ColonyStatus",
    "ColonyStatusChanged",
    "DaemonContext",
    "DaemonSpec",
    "DaemonStatus",
    "JobEnded",
    "JobExecuted",
    "JobExecuting",
    "RestartPolicy",
    "Swarm",
]
