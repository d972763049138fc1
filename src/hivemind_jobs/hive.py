"""``HiveMind``: the application object holding every environment of a process."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hivemind_jobs.client.jobs import BackgroundJobClient
from hivemind_jobs.config import find_config, settings_from_env
from hivemind_jobs.core.clock import Clock, SystemClock
from hivemind_jobs.core.codec import Codec
from hivemind_jobs.core.collector import freeze_startup_objects
from hivemind_jobs.core.invocation import Activator, DefaultActivator
from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT, validate_environment_name, validate_table_prefix
from hivemind_jobs.core.options import Options
from hivemind_jobs.environment import Environment, Transaction
from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.mediator import Mediator
from hivemind_jobs.storage import StorageInfo, open_storage, redact_url

if TYPE_CHECKING:
    from hivemind_jobs.client.colonies import ColonyClient
    from hivemind_jobs.client.queues import QueueClient
    from hivemind_jobs.colony import Colony, ColonyOptions
    from hivemind_jobs.core.invocation import AllowList
    from hivemind_jobs.recurring.client import RecurringJobClient

__all__ = ["DEFAULT_URL", "HiveMind"]

DEFAULT_URL = "sqlite:///hivemind.db"


class HiveMind:
    """Environments, each with its own storage and options, and the handlers they share.

    ``HiveMind()`` has one environment, ``main``, on ``./hivemind.db`` (SQLite). Open it with
    ``async with hive:`` (or ``await hive.open()``) before use::

        hive = HiveMind()
        hive.add_environment("tenant_a", "sqlite:///tenant_a.db", options=Options(retention=timedelta(days=7)))
        async with hive:
            await hive.jobs.create(send_report, "weekly")
            await hive.env("tenant_a").jobs.create(send_report, "daily")

    ``gc_freeze`` (default True): the first open in a process collects garbage once and freezes
    every object alive then (imported modules, the application's setup) out of the cyclic
    garbage collector's full passes (:func:`gc.freeze`), which otherwise walk them again and
    again while jobs are created and run (see :mod:`hivemind_jobs.core.collector`). Nothing
    happens when the collector is disabled or objects are frozen already; pass False to leave
    the collector as it is.
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        *,
        environment: str = DEFAULT_ENVIRONMENT,
        options: Options | None = None,
        table_prefix: str | None = None,
        activator: Activator | None = None,
        clock: Clock | None = None,
        codec: Codec | None = None,
        gc_freeze: bool = True,
    ) -> None:
        self.mediator = Mediator()
        self.gc_freeze = gc_freeze
        self.activator: Activator = activator or DefaultActivator()
        self.clock: Clock = clock or SystemClock()
        self.codec = codec or Codec()
        self._environments: dict[str, Environment] = {}
        self.default_environment = validate_environment_name(environment)
        self.add_environment(environment, url, options=options, table_prefix=table_prefix)

    @classmethod
    def from_env(cls, **kwargs: Any) -> HiveMind:
        """A HiveMind on ``HIVEMIND_URL`` (default ``sqlite:///hivemind.db``) with the environment
        ``HIVEMIND_ENV`` and the table prefix ``HIVEMIND_PREFIX`` when set; ``kwargs`` as for
        ``HiveMind(...)`` (options, activator ...)."""
        return cls._from_settings(settings_from_env(), kwargs)

    @classmethod
    def from_config(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> HiveMind:
        """Like :meth:`from_env`, with the settings file's ``url``, ``env`` and ``prefix`` below the
        environment variables: ``path``, else ``HIVEMIND_CONFIG``, else ``./hivemind.toml``, else
        ``[tool.hivemind]`` in ``./pyproject.toml`` (see :mod:`hivemind_jobs.config`)."""
        values = find_config(path).values
        settings = {key: str(values[key]) for key in ("url", "env", "prefix") if values.get(key) is not None}
        return cls._from_settings({**settings, **settings_from_env()}, kwargs)

    @classmethod
    def _from_settings(cls, settings: Mapping[str, str], kwargs: dict[str, Any]) -> HiveMind:
        return cls(
            settings.get("url", DEFAULT_URL),
            environment=settings.get("env", DEFAULT_ENVIRONMENT),
            table_prefix=settings.get("prefix"),
            **kwargs,
        )

    def __repr__(self) -> str:
        return f"<HiveMind environments={list(self._environments)}>"

    # ------------------------------------------------------------------ environments
    def add_environment(
        self, name: str, url: str, *, options: Options | None = None, table_prefix: str | None = None
    ) -> Environment:
        """Add an isolated environment with its own storage (URL) and options.

        Environments may share a database: each one has its own tables (``table_prefix``, by
        default ``hm_<name>_``). Open the hive (again) to open environments added later.
        """
        validate_environment_name(name)
        if name in self._environments:
            raise ConfigurationError(f"environment {name!r} already exists")
        if options is not None and not isinstance(options, Options):
            raise ConfigurationError(f"options must be hivemind_jobs.Options, got {options!r}")
        prefix = validate_table_prefix(table_prefix if table_prefix is not None else f"hm_{name}_")
        storage = open_storage(url, environment=name, table_prefix=prefix)
        for other in self._environments.values():
            if not _same_database(other.info, storage.info):
                continue
            if other.info.table_prefix == prefix:
                raise ConfigurationError(
                    f"environments {other.name!r} and {name!r} would share the tables {prefix}* in "
                    f"{redact_url(storage.info.url)}; give one of them another table_prefix"
                )
            if other.info.table_prefix.lower() == prefix.lower():
                # SQLite ignores case in table names, MySQL/MariaDB in constraint names: the second
                # would share the first one's tables, or half-create its own (errno 121)
                raise ConfigurationError(
                    f"environments {other.name!r} and {name!r} would share tables in {redact_url(storage.info.url)}: "
                    f"their table prefixes {other.info.table_prefix!r} and {prefix!r} differ only in case, which "
                    f"SQLite and MySQL/MariaDB do not tell apart; give {name!r} another name or another table_prefix"
                )
        environment = Environment(
            name,
            storage,
            options=options or Options(),
            mediator=Mediator(parent=self.mediator),
            codec=self.codec,
            clock=self.clock,
            activator=self.activator,
        )
        self._environments[name] = environment
        return environment

    def env(self, name: str | None = None) -> Environment:
        """The named environment (the default one without a name)."""
        key = self.default_environment if name is None else name
        try:
            return self._environments[key]
        except KeyError:
            validate_environment_name(key)
            raise ConfigurationError(
                f"no environment {key!r}; known: {', '.join(sorted(self._environments))}"
            ) from None

    @property
    def environments(self) -> Mapping[str, Environment]:
        return MappingProxyType(self._environments)

    @property
    def jobs(self) -> BackgroundJobClient:
        """The background-job client of the default environment."""
        return self.env().jobs

    @property
    def recurring(self) -> RecurringJobClient:
        """The recurring-job client of the default environment."""
        return self.env().recurring

    @property
    def colonies(self) -> ColonyClient:
        """The colonies (worker processes) of the default environment."""
        return self.env().colonies

    @property
    def queues(self) -> QueueClient:
        """The queues of the default environment: pause and resume them."""
        return self.env().queues

    def colony(
        self,
        *,
        name: str | None = None,
        environment: str | None = None,
        options: ColonyOptions | None = None,
        allow: AllowList | None = None,
        properties: Mapping[str, str | int | float | bool] | None = None,
    ) -> Colony:
        """A worker for one environment: add swarms (and daemons), then ``await colony.run()``.

        ``allow`` says which modules' jobs and middleware it may import and run (default: none,
        so every job fails with a clear reason; pass ``AllowList(modules=["myapp"])``).
        ``properties`` (text, int, float, bool) describe the colony to colony queries.
        """
        from hivemind_jobs.colony import Colony

        return Colony(self, name=name, environment=environment, options=options, allow=allow, properties=properties)

    def dashboard(
        self,
        *,
        authorize: Callable[[Any], bool | Awaitable[bool]] | None = None,
        read_only: bool | None = None,
        title: str = "HiveMind",
    ) -> Any:
        """The web dashboard of every environment, as an ASGI app (extra ``[dashboard]``).

        ``authorize(request) -> bool`` (or an awaitable bool) decides who may see and use it;
        without it, ``read_only=True`` must be chosen explicitly (a dashboard that shows jobs but
        changes nothing). Mount it: ``app.mount("/jobs", hive.dashboard(authorize=is_admin))``.
        Open the hive in the application's lifespan, as for creating jobs."""
        return dashboard_factory()(self, authorize=authorize, read_only=read_only, title=title)

    def transaction(self, environment: str | None = None, *, connection: object | None = None) -> Transaction:
        """``async with hive.transaction() as tx:`` - calls through ``tx.jobs`` commit together.

        ``connection``: write the jobs in the application's own open transaction on that
        connection instead (see :meth:`Environment.transaction`)."""
        return self.env(environment).transaction(connection=connection)

    # ------------------------------------------------------------------ lifecycle
    async def open(self) -> None:
        """Open every environment's storage (creating or migrating SQLite schemas)."""
        if self.gc_freeze:
            freeze_startup_objects()
        opened: list[Environment] = []
        try:
            for environment in self._environments.values():
                await environment.open()
                opened.append(environment)
        except BaseException:
            for environment in opened:
                await environment.close()
            raise

    async def close(self, timeout: float | None = None) -> None:
        """Close every environment's storage; with ``timeout`` (seconds) the whole close ends within
        it even when a database does not answer (what could not close is left to the process's exit)."""
        if timeout is None:
            for environment in self._environments.values():
                await environment.close()
            return
        results = await asyncio.gather(
            *(environment.close(timeout) for environment in self._environments.values()), return_exceptions=True
        )
        for result in results:
            if isinstance(result, BaseException):
                raise result

    @contextlib.asynccontextmanager
    async def lifespan(self, app: object) -> AsyncIterator[dict[str, Any]]:
        """An ASGI lifespan (FastAPI, Starlette, Litestar) that opens this hive on startup and closes it
        on shutdown: ``FastAPI(lifespan=hive.lifespan)``, ``Starlette(lifespan=hive.lifespan)``,
        ``Litestar(lifespan=[hive.lifespan])``.

        The lifespan state it yields is ``{"hive": hive}`` (``request.state.hive`` in a handler);
        the hive is also set as ``app.state.hive`` when the application has such a ``state``.
        :mod:`hivemind_jobs.contrib.fastapi` composes it with the application's own lifespan and an
        in-process colony."""
        state = getattr(app, "state", None)
        async with self:
            if state is not None:
                setattr(state, "hive", self)  # noqa: B010 - the application's state object, whatever its type
            try:
                yield {"hive": self}
            finally:
                if state is not None and getattr(state, "hive", None) is self:
                    with contextlib.suppress(AttributeError):
                        delattr(state, "hive")

    async def __aenter__(self) -> HiveMind:
        await self.open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def dashboard_factory() -> Callable[..., Any]:
    """``create_dashboard`` of the dashboard extra, or a ConfigurationError saying how to install it."""
    try:
        from hivemind_jobs.dashboard import create_dashboard
    except ImportError as error:
        raise ConfigurationError(
            f"the dashboard needs the dashboard extra: pip install 'hivemind-jobs[dashboard]' ({error})"
        ) from None
    return create_dashboard


_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "mysql": 3306, "mariadb": 3306}


def _same_database(a: StorageInfo, b: StorageInfo) -> bool:
    """Whether two storages name the same database (and PostgreSQL schema), whatever their URL
    options (``auto_migrate``, ``pool_size``...) or scheme spelling."""
    return a.url == b.url or _database_key(a) == _database_key(b)


def _database_key(info: StorageInfo) -> tuple[object, ...]:
    parts = urlsplit(info.url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return (scheme, parts.path)
    family = "postgresql" if scheme.startswith("postgres") else "mysql"
    try:
        port = parts.port or _DEFAULT_PORTS.get(scheme)
    except ValueError:
        port = None
    return (family, (parts.hostname or "").lower(), port, parts.path.strip("/"), info.extras.get("schema"))
