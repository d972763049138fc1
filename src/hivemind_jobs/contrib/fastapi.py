"""FastAPI (and Starlette): a lifespan that opens a hive, dependencies that hand it to request handlers.

::

    from fastapi import FastAPI
    from hivemind_jobs.contrib import fastapi as hm_fastapi

    hive = hm.HiveMind("sqlite:///app.db")
    app = FastAPI(lifespan=hm_fastapi.lifespan(hive))  # or FastAPI(lifespan=hive.lifespan)


    @app.post("/reports")
    async def order_report(jobs: hm_fastapi.Jobs) -> dict[str, int]:
        return {"job_id": await jobs.create(send_report, "weekly")}

The jobs run in a separate ``hivemind worker`` process (``hivemind worker myapp.jobs:hive``), or, for a
small deployment, in a colony the lifespan runs in the web process itself (``colony=``).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Annotated, Any, TypeAlias

from fastapi import Depends
from starlette.requests import HTTPConnection

from hivemind_jobs.client.jobs import BackgroundJobClient
from hivemind_jobs.colony import Colony
from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.hive import HiveMind

__all__ = ["AppLifespan", "ColonySpec", "Hive", "Jobs", "get_hive", "get_jobs", "lifespan"]

#: An application lifespan: called with the app, an async context manager giving lifespan state (or None).
AppLifespan: TypeAlias = Callable[[Any], AbstractAsyncContextManager[Mapping[str, Any] | None]]
#: A colony run in the web process: a Colony of the hive, or a function of the hive that builds one.
ColonySpec: TypeAlias = Colony | Callable[[HiveMind], Colony]

_NO_HIVE = (
    "no HiveMind on this application: install its lifespan, FastAPI(lifespan=hive.lifespan) or "
    "FastAPI(lifespan=hivemind_jobs.contrib.fastapi.lifespan(hive)), or set app.state.hive to an open HiveMind"
)


def lifespan(
    hive: HiveMind, inner: AppLifespan | None = None, *, colony: ColonySpec | None = None
) -> Callable[[Any], AbstractAsyncContextManager[dict[str, Any]]]:
    """The lifespan of an application that uses ``hive``: ``FastAPI(lifespan=lifespan(hive))``.

    On startup it opens the hive, then enters ``inner`` (the application's own lifespan, which may
    already create jobs), then starts ``colony``; on shutdown it undoes them in the other order: the
    colony stops gracefully (running jobs get its ``graceful_stop``), ``inner`` exits, the hive
    closes. The lifespan state is ``{"hive": hive}`` plus ``inner``'s own state, and ``"colony"``
    when one runs.

    ``colony`` runs the jobs in the web process, for a small deployment: a :class:`~hivemind_jobs.Colony`
    of ``hive`` or, better, a function of the hive that builds one (a new colony for each startup)::

        def colony(hive: hm.HiveMind) -> hm.Colony:
            colony = hive.colony(allow=hm.AllowList(modules=["myapp"]))
            colony.swarm("main", drones=2)
            return colony

    Without it the jobs wait for a worker: ``hivemind worker myapp.jobs:hive``.
    """

    @contextlib.asynccontextmanager
    async def run(app: Any) -> AsyncIterator[dict[str, Any]]:
        async with contextlib.AsyncExitStack() as stack:
            state = dict(await stack.enter_async_context(hive.lifespan(app)))
            if inner is not None:
                own = await stack.enter_async_context(inner(app))
                if own:
                    state.update(own)
            if colony is not None:
                worker = _colony(hive, colony)
                await stack.enter_async_context(worker)
                state["colony"] = worker
            yield state

    return run


def _colony(hive: HiveMind, spec: ColonySpec) -> Colony:
    worker = spec if isinstance(spec, Colony) else spec(hive)
    if not isinstance(worker, Colony):
        raise ConfigurationError(f"colony= must give a hivemind_jobs.Colony, got {worker!r}")
    if worker.hive is not hive:
        raise ConfigurationError("colony= must give a colony of the lifespan's own hive (made by hive.colony(...))")
    return worker


def get_hive(connection: HTTPConnection) -> HiveMind:
    """The application's hive, for ``Depends``: the lifespan state's ``hive``, else ``app.state.hive``.

    Raises :class:`~hivemind_jobs.ConfigurationError` when neither is there (the lifespan was not
    installed)."""
    hive = getattr(connection.state, "hive", None)
    if hive is None:
        hive = getattr(connection.app.state, "hive", None)
    if not isinstance(hive, HiveMind):
        raise ConfigurationError(_NO_HIVE)
    return hive


def get_jobs(connection: HTTPConnection) -> BackgroundJobClient:
    """The job client of the application's hive (its default environment), for ``Depends``."""
    return get_hive(connection).jobs


#: A handler parameter that receives the application's hive.
Hive: TypeAlias = Annotated[HiveMind, Depends(get_hive)]
#: A handler parameter that receives the job client of the application's hive.
Jobs: TypeAlias = Annotated[BackgroundJobClient, Depends(get_jobs)]
