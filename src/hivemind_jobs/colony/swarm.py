"""Swarms: a tree of drone pools, each subscribed to ordered queues.

The fetch order of a swarm is a list of queue groups, walked in order (within a group, job priority
then due time decides):

1. the swarm's own queues that have a priority, one group per priority, lowest first;
2. its own queues without a priority, plus ``global`` when it works the global queue (by default
   only the root swarm does);
3. then its parent's groups, and so on up the tree, unless the swarm is ``dedicated``.

A queue already listed in a closer group is removed from later ones.

A swarm's ``execution`` says where its sync jobs run: ``"thread"`` (the colony's thread pool) or
``"process"`` (a child process per drone, :mod:`hivemind_jobs.colony.processes`); a sub-swarm
without one uses its parent's. A swarm's ``timeout`` bounds each run of the jobs it runs that
have no timeout of their own; a sub-swarm without one uses its parent's (see
:mod:`hivemind_jobs.core.timeouts` for the order).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta

from hivemind_jobs.core.job import Middleware
from hivemind_jobs.core.names import DEFAULT_QUEUE, validate_queue_name, validate_swarm_name
from hivemind_jobs.core.timeouts import validate_timeout
from hivemind_jobs.errors import ConfigurationError

__all__ = ["QueueSpec", "Swarm"]

QueueSpec = str | tuple[str, int]
_EXECUTIONS = ("thread", "process")


@dataclass(eq=False)
class Swarm:
    """A pool of ``drones`` working its queues; build sub-swarms with :meth:`swarm`."""

    name: str
    drones: int
    queues: tuple[tuple[str, int | None], ...] = ()
    dedicated: bool = False
    work_on_global: bool | None = None
    middleware: tuple[Middleware, ...] = ()
    parent: Swarm | None = None
    children: list[Swarm] = field(default_factory=list)
    #: the names taken in the whole colony (shared by every swarm of it)
    taken: set[str] = field(default_factory=set, repr=False)
    #: how long one run of a job without a timeout of its own may take here (None: the parent's)
    timeout: timedelta | None = None
    #: where its sync jobs run, "thread" or "process" (None: as its parent's, "thread" at the root)
    execution: str | None = None

    @classmethod
    def define(
        cls,
        name: str,
        *,
        drones: int,
        queues: Iterable[QueueSpec] = (),
        dedicated: bool = False,
        work_on_global: bool | None = None,
        middleware: Iterable[Middleware] = (),
        parent: Swarm | None = None,
        taken: set[str] | None = None,
        timeout: timedelta | None = None,
        execution: str | None = None,
    ) -> Swarm:
        """A swarm; ``taken`` holds the names already used in its colony (the new one is added)."""
        validate_swarm_name(name)
        names = taken if taken is not None else set()
        if name in names:
            raise ConfigurationError(f"swarm names must be unique in a colony; {name!r} is taken")
        if not isinstance(drones, int) or isinstance(drones, bool) or drones < 0:
            raise ConfigurationError(f"swarm {name!r}: drones must be an int >= 0, got {drones!r}")
        parsed: list[tuple[str, int | None]] = []
        seen: set[str] = set()
        for spec in queues:
            queue, priority = (spec, None) if isinstance(spec, str) else spec
            validate_queue_name(queue)
            if priority is not None and (not isinstance(priority, int) or isinstance(priority, bool) or priority < 0):
                raise ConfigurationError(f"swarm {name!r}: queue priority must be an int >= 0, got {priority!r}")
            if queue in seen:
                raise ConfigurationError(f"swarm {name!r} lists queue {queue!r} twice")
            seen.add(queue)
            parsed.append((queue, priority))
        entries = tuple(middleware)
        for entry in entries:
            if not isinstance(entry, Middleware):
                raise ConfigurationError(f"swarm {name!r}: middleware must be hivemind_jobs.Middleware(...)")
        validate_timeout(timeout, f"swarm {name!r}: timeout")
        if execution is not None and execution not in _EXECUTIONS:
            raise ConfigurationError(f"swarm {name!r}: execution must be 'thread' or 'process', got {execution!r}")
        names.add(name)
        return cls(
            name,
            drones,
            tuple(parsed),
            dedicated,
            work_on_global,
            entries,
            parent,
            taken=names,
            timeout=timeout,
            execution=execution,
        )

    def swarm(
        self,
        name: str,
        *,
        drones: int = 1,
        queues: Iterable[QueueSpec] = (),
        dedicated: bool = False,
        work_on_global: bool | None = None,
        middleware: Iterable[Middleware] = (),
        timeout: timedelta | None = None,
        execution: str | None = None,
    ) -> Swarm:
        """Add a sub-swarm; it works its own queues first, then (unless dedicated) this swarm's. Without
        a ``timeout`` or an ``execution`` of its own it uses this swarm's."""
        child = Swarm.define(
            name,
            drones=drones,
            queues=queues,
            dedicated=dedicated,
            work_on_global=work_on_global,
            middleware=middleware,
            parent=self,
            taken=self.taken,
            timeout=timeout,
            execution=execution,
        )
        self.children.append(child)
        return child

    @property
    def root(self) -> Swarm:
        node = self
        while node.parent is not None:
            node = node.parent
        return node

    @property
    def path(self) -> str:
        """``root/child/grandchild``."""
        return self.name if self.parent is None else f"{self.parent.path}/{self.name}"

    def walk(self) -> list[Swarm]:
        """This swarm and all its descendants, depth first."""
        nodes = [self]
        for child in self.children:
            nodes.extend(child.walk())
        return nodes

    def works_on_global(self) -> bool:
        return self.parent is None if self.work_on_global is None else self.work_on_global

    def own_groups(self) -> list[tuple[str, ...]]:
        prioritised = sorted({priority for _, priority in self.queues if priority is not None})
        groups = [tuple(queue for queue, priority in self.queues if priority == level) for level in prioritised]
        plain = [queue for queue, priority in self.queues if priority is None]
        if self.works_on_global() and DEFAULT_QUEUE not in {queue for queue, _ in self.queues}:
            plain.append(DEFAULT_QUEUE)
        if plain:
            groups.append(tuple(plain))
        return groups

    def queue_groups(self) -> tuple[tuple[str, ...], ...]:
        """The fetch order of this swarm (see the module docstring), duplicates removed."""
        groups: list[tuple[str, ...]] = []
        node: Swarm | None = self
        while node is not None:
            groups.extend(node.own_groups())
            if node.dedicated:
                break
            node = node.parent
        seen: set[str] = set()
        result: list[tuple[str, ...]] = []
        for group in groups:
            fresh = tuple(queue for queue in group if queue not in seen)
            seen.update(fresh)
            if fresh:
                result.append(fresh)
        return tuple(result)

    def run_timeout(self) -> timedelta | None:
        """The timeout of this swarm, or of its nearest ancestor that has one (None: none has)."""
        node: Swarm | None = self
        while node is not None:
            if node.timeout is not None:
                return node.timeout
            node = node.parent
        return None

    def run_execution(self) -> str:
        """Where its sync jobs run: its own ``execution``, or its nearest ancestor's, else "thread"."""
        node: Swarm | None = self
        while node is not None:
            if node.execution is not None:
                return node.execution
            node = node.parent
        return "thread"

    def middleware_chain(self) -> Sequence[Middleware]:
        """Middleware of this swarm and its ancestors (outermost first)."""
        chain: list[Middleware] = []
        node: Swarm | None = self
        while node is not None:
            chain[:0] = node.middleware
            node = node.parent
        return chain
