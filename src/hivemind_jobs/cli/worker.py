"""``hivemind worker``: run a colony from the command line (``hivemind colonies`` lists them).

The application is given uvicorn-style as ``module:attribute``; the attribute is a
:class:`~hivemind_jobs.HiveMind`, a :class:`~hivemind_jobs.Colony` (run as configured) or a
callable returning either.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import importlib
import inspect
import logging
import math
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from click.core import ParameterSource

import hivemind_jobs as hm
from hivemind_jobs.cli.logs import LOG_FORMATS, configure_logging
from hivemind_jobs.cli.supervisor import EXIT_ALLOWANCE, PROCESS_ENV, Supervisor, watch_supervisor
from hivemind_jobs.cli.views import plural
from hivemind_jobs.core.text import redact_secrets
from hivemind_jobs.core.timeouts import validate_timeout
from hivemind_jobs.errors import RetryableStorageError

__all__ = [
    "SETTINGS",
    "Setting",
    "WorkerSettingError",
    "apply_settings",
    "load_app",
    "parse_settings",
    "parse_swarm",
    "parse_swarm_settings",
    "run_worker",
]

_log = logging.getLogger("hivemind_jobs.cli.worker")


def load_app(path: str) -> Any:
    """Import ``module:attribute`` (the current directory is importable, like uvicorn)."""
    target = _resolve_app(path)
    if callable(target) and not isinstance(target, hm.HiveMind | hm.Colony | type):
        _check_factory(path, target)
        target = target()  # the application's own failure shows its traceback (passwords redacted)
    if not isinstance(target, hm.HiveMind | hm.Colony):
        raise click.BadParameter(
            f"{path} is a {type(target).__name__}; expected a HiveMind, a Colony or a function returning one",
            param_hint="APP",
        )
    return target


def _check_factory(path: str, function: Any) -> None:
    """A function given as APP is called to get the app only if it needs no arguments (a job
    function named by mistake is refused, not run)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return
    required = [
        name
        for name, parameter in signature.parameters.items()
        if parameter.default is inspect.Parameter.empty
        and parameter.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    ]
    if required:
        raise click.BadParameter(
            f"{path} is a function of ({', '.join(required)}), not a HiveMind; APP names a HiveMind, a Colony or "
            "a function without arguments that returns one (e.g. myapp.jobs:hive)",
            param_hint="APP",
        )


def _resolve_app(path: str) -> Any:
    """The object ``module:attribute`` names (a factory not called yet)."""
    module_name, _, attribute = path.partition(":")
    if not module_name or not attribute:
        raise click.BadParameter(f"expected module:attribute, got {path!r}", param_hint="APP")
    if str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise click.BadParameter(
            f"cannot import {module_name!r}: {redact_secrets(str(error))}", param_hint="APP"
        ) from error
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise click.BadParameter(f"{module_name} has no attribute {attribute!r}", param_hint="APP") from None
    return target


def parse_swarm(spec: str) -> tuple[list[str], int, list[str | tuple[str, int]]]:
    """``name[/sub...]:drones[:queue,queue=priority,...]`` -> (path, drones, queues)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise click.BadParameter(
            f"{spec!r}: use name:drones[:queue1,queue2=priority] (sub-swarms: parent/child:drones:queues)",
            param_hint="--swarm",
        )
    try:
        drones = int(parts[1])
    except ValueError:
        raise click.BadParameter(f"{spec!r}: drones must be a number, got {parts[1]!r}", param_hint="--swarm") from None
    queues: list[str | tuple[str, int]] = []
    for item in parts[2].split(",") if len(parts) == 3 and parts[2] else []:
        name, _, priority = item.partition("=")
        if priority:
            try:
                queues.append((name, int(priority)))
            except ValueError:
                raise click.BadParameter(f"{item!r}: queue priority must be a number", param_hint="--swarm") from None
        else:
            queues.append(name)
    return parts[0].split("/"), drones, queues


def parse_swarm_settings(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name:drones[:queues]@process,timeout=SECONDS`` into the swarm spec and the keyword
    arguments of its swarm (``execution``: ``process`` or ``thread``; ``timeout``: a timedelta)."""
    base, at, tail = spec.partition("@")
    settings: dict[str, Any] = {}
    if not at:
        return base, settings
    for item in tail.split(","):
        if item in ("process", "thread"):
            settings["execution"] = item
            continue
        key, equals, raw = item.partition("=")
        if key != "timeout" or not equals:
            raise click.BadParameter(
                f"{spec!r}: unknown swarm setting {item!r}; use name:drones[:queues]@process,timeout=SECONDS",
                param_hint="--swarm",
            )
        try:
            seconds = float(raw)
        except ValueError:
            raise click.BadParameter(
                f"{spec!r}: timeout must be a number of seconds, e.g. timeout=30, got {raw!r}", param_hint="--swarm"
            ) from None
        if not math.isfinite(seconds) or seconds <= 0:
            raise click.BadParameter(
                f"{spec!r}: timeout must be more than 0 seconds, got {raw!r}", param_hint="--swarm"
            )
        try:
            settings["timeout"] = validate_timeout(timedelta(seconds=seconds), "timeout")
        except (OverflowError, hm.HiveMindError) as error:
            raise click.BadParameter(f"{spec!r}: {error}", param_hint="--swarm") from None
    return base, settings


class WorkerSettingError(click.ClickException):
    """A worker setting that cannot work: one line ``Error: ...`` on stderr, exit status 2."""

    exit_code = 2


@dataclasses.dataclass(frozen=True)
class Setting:
    """A worker timing: ``key`` names it in a configuration file, ``--key-with-dashes`` on the command
    line; the value goes to the ``field`` of the colony's :class:`~hivemind_jobs.ColonyOptions`
    (``target="colony"``) or of its environment's :class:`~hivemind_jobs.Options` (``"environment"``)."""

    key: str
    target: str
    field: str
    #: "seconds" (a number, given as a timedelta) or "count" (a whole number)
    kind: str
    #: the smallest value allowed; ``inclusive=False``: values must be above it
    minimum: float
    inclusive: bool
    help: str

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")

    def parse(self, raw: object, label: str) -> timedelta | int:
        """``raw`` (the text of a flag, or a number from a configuration file) as the option's value."""
        if isinstance(raw, bool):
            raise WorkerSettingError(f"{label} {raw!r}: expected a number")
        if self.kind == "count":
            try:
                count = int(str(raw).strip()) if not isinstance(raw, int) else raw
            except ValueError:
                raise WorkerSettingError(f"{label} {raw!r}: expected a whole number (0 or more)") from None
            if count < self.minimum:
                raise WorkerSettingError(f"{label} {raw!r}: must be {self.minimum:g} or more")
            return count
        try:
            seconds = float(raw) if isinstance(raw, int | float) else float(str(raw).strip())
        except ValueError:
            raise WorkerSettingError(f"{label} {raw!r}: expected a number of seconds, e.g. 30 or 0.5") from None
        if not math.isfinite(seconds):
            raise WorkerSettingError(f"{label} {raw!r}: expected a finite number of seconds")
        if seconds < self.minimum or (seconds == self.minimum and not self.inclusive):
            bound = "at least" if self.inclusive else "more than"
            unit = "second" if self.minimum == 1 else "seconds"
            raise WorkerSettingError(f"{label} {raw!r}: must be {bound} {self.minimum:g} {unit}")
        try:
            return timedelta(seconds=seconds)
        except OverflowError:
            raise WorkerSettingError(f"{label} {raw!r}: too many seconds") from None


#: The worker timings settable without Python code: the flags of ``hivemind worker`` and the keys of a
#: configuration file. Unset ones keep the app's (or the defaults of the options classes).
SETTINGS: tuple[Setting, ...] = (
    Setting(
        "lock_timeout", "environment", "lock_timeout", "seconds", 1.0, True,
        "Seconds without a heartbeat after which a running job's lock expires and the job is rescued"
        " (at least 1; default: the app's, 60 unless its Options say otherwise).",
    ),
    Setting(
        "heartbeat_interval", "colony", "heartbeat_interval", "seconds", 0.0, False,
        "Seconds between lock renewals of running jobs (default: a quarter of the lock timeout).",
    ),
    Setting(
        "max_rescues", "colony", "max_rescues", "count", 0, True,
        "How often a job whose lock expired is rescued; it runs at most N+1 times, then fails as poison"
        " (default: 3).",
    ),
    Setting(
        "graceful_stop", "colony", "graceful_stop", "seconds", 0.0, False,
        "Seconds running jobs get to finish on stop before they are cancelled (default: 10).",
    ),
    Setting(
        "shutdown_timeout", "colony", "shutdown_timeout", "seconds", 0.0, False,
        "Seconds the rest of a stop may take after the graceful stop, even when the database does not"
        " answer (default: 10).",
    ),
)  # fmt: skip


def parse_settings(values: dict[str, object], *, flags: bool = True) -> dict[str, timedelta | int]:
    """The given settings (key -> raw value; None: not given) checked and converted; an unknown key
    or a value that cannot work is a :class:`WorkerSettingError` naming the flag (or the key)."""
    by_key = {setting.key: setting for setting in SETTINGS}
    unknown = sorted(set(values) - set(by_key))
    if unknown:
        raise WorkerSettingError(f"unknown worker setting(s) {', '.join(unknown)}; known: {', '.join(by_key)}")
    parsed: dict[str, timedelta | int] = {}
    for key, raw in values.items():
        if raw is not None:
            setting = by_key[key]
            parsed[key] = setting.parse(raw, setting.flag if flags else key)
    return parsed


def apply_settings(colony: hm.Colony, settings: dict[str, timedelta | int]) -> None:
    """Give ``colony`` (and its environment: the lock timeout) the parsed ``settings``."""
    if not settings:
        return
    by_key = {setting.key: setting for setting in SETTINGS}
    environment = colony.environment
    changes = {by_key[key].field: value for key, value in settings.items() if by_key[key].target == "environment"}
    if changes:
        environment.options = dataclasses.replace(environment.options, **changes)  # type: ignore[arg-type]
    changes = {by_key[key].field: value for key, value in settings.items() if by_key[key].target == "colony"}
    if changes:
        try:
            colony.options = dataclasses.replace(colony.options, **changes)  # type: ignore[arg-type]
        except hm.HiveMindError as error:
            raise WorkerSettingError(str(error)) from None
    if "heartbeat_interval" in settings or "lock_timeout" in settings:
        lock_timeout = environment.options.lock_timeout.total_seconds()
        margin = lock_timeout * (1 - colony.options.lock_safety)
        every = colony.options.heartbeat_every(environment.options.lock_timeout)
        if every >= margin:
            given = "--heartbeat-interval" if "heartbeat_interval" in settings else "the heartbeat interval"
            raise WorkerSettingError(
                f"{given} {every:g} s is too long for a lock timeout of {lock_timeout:g} s: renew locks at least"
                f" every {margin:g} s (the lock timeout less its {colony.options.lock_safety:.0%} safety margin),"
                " or running jobs lose their locks between renewals"
            )


def _build_colony(app: Any, options: dict[str, Any]) -> hm.Colony:
    if isinstance(app, hm.Colony):
        if options["swarms"]:
            raise click.UsageError("the app is a configured Colony; --swarm cannot change it")
        apply_settings(app, options.get("settings", {}))
        return app
    hive: hm.HiveMind = app
    allow_modules = list(options["allow"]) or [options["app_path"].partition(":")[0].split(".")[0]]
    allow = hm.AllowList(modules=allow_modules, allow_all=options["allow_all"])
    monitor = options["monitor_interval"]
    colony_options = hm.ColonyOptions(
        poll_interval=timedelta(seconds=options["poll_interval"]),
        lock_monitor_interval=timedelta(seconds=monitor) if monitor else None,
    )
    colony = hive.colony(name=options["name"], environment=options["environment"], options=colony_options, allow=allow)
    apply_settings(colony, options.get("settings", {}))
    specs = options["swarms"] or [f"main:{options['drones']}"]
    built: dict[str, hm.Swarm] = {}
    for given in specs:
        spec, settings = parse_swarm_settings(given)
        path, drones, queues = parse_swarm(spec)
        parent_path, name = "/".join(path[:-1]), path[-1]
        if parent_path:
            parent = built.get(parent_path)
            if parent is None:
                raise click.BadParameter(
                    f"{spec!r}: define swarm {parent_path!r} before its sub-swarms", param_hint="--swarm"
                )
            built["/".join(path)] = parent.swarm(name, drones=drones, queues=queues, **settings)
        else:
            built[name] = colony.swarm(name, drones=drones, queues=queues, **settings)
    return colony


async def run_worker(app: Any, options: dict[str, Any]) -> int:
    colony = _build_colony(app, options)
    hive: hm.HiveMind = app if isinstance(app, hm.HiveMind) else app.hive
    await open_waiting(hive, options.get("wait_for_db", 0.0))
    metrics: Any = options.get("metrics")
    refresher: asyncio.Task[None] | None = None
    if metrics is not None:
        metrics.instrument(hive)
        every = options.get("metrics_interval") or _METRICS_INTERVAL
        refresher = asyncio.create_task(metrics.keep_refreshed(hive, colony, every), name="hivemind-metrics")
    supervisor_fd: int | None = options.get("supervisor_fd")
    # a colony of `--processes N` stops when its supervisor is gone, even killed: no orphans
    unwatch = (
        watch_supervisor(asyncio.get_running_loop(), supervisor_fd, colony.stop) if supervisor_fd is not None else None
    )
    try:
        await colony.run(burst=options["burst"], handle_signals=True)
    finally:
        if unwatch is not None:
            unwatch()
        if refresher is not None:
            refresher.cancel()
            metrics.count_drones(colony)
        # the storage closes within what is left of the stop's budget, database reachable or not
        await hive.close(timeout=max(colony.shutdown_remaining(), _CLOSE_FLOOR))
    return colony.processed


async def open_waiting(hive: hm.HiveMind, budget: float) -> None:
    """Open ``hive``; while its database does not answer (refused, timed out, starting up) try
    again with backoff for up to ``budget`` seconds, then fail in one line. A refusal (wrong
    password, unknown database) fails at once: waiting would not change it."""
    deadline = time.monotonic() + budget
    delay = _FIRST_WAIT
    while True:
        try:
            await hive.open()
            return
        except RetryableStorageError as error:
            left = deadline - time.monotonic()
            why = " ".join(redact_secrets(str(error)).split())  # one line
            if left <= 0:
                await hive.close()
                waited = f" within {budget:g} s" if budget > 0 else ""
                raise click.ClickException(f"the database did not answer{waited}: {why}") from None
            pause = min(delay, left)
            _log.warning("the database does not answer yet (%s); trying again in %.1f s", why, pause)
            await asyncio.sleep(pause)
            delay = min(delay * 2, _LONGEST_WAIT)


#: --wait-for-db: the first pause between attempts, doubling up to the longest
_FIRST_WAIT = 0.5
_LONGEST_WAIT = 5.0
#: seconds between two reads of the queue depths and colonies for the metrics
_METRICS_INTERVAL = 5.0
#: the least time closing the storage gets after a stop, even one whose budget is spent
_CLOSE_FLOOR = 0.2
#: what the worker gives tasks still pending after the colony stopped (abandoned by a bounded stop)
_LEFTOVER_WAIT = 0.3

_T = TypeVar("_T")


def _run_to_exit(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run`` without its unbounded waits at the end: what a bounded stop left behind (a
    task stuck on a database that does not answer, a helper thread) cannot keep the process from
    exiting. Sync jobs still running in threads do not either (the colony's threads are daemons)."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(main)
    finally:
        try:
            leftovers = asyncio.all_tasks(loop)
            for task in leftovers:
                task.cancel()
            if leftovers:
                loop.run_until_complete(asyncio.wait(leftovers, timeout=_LEFTOVER_WAIT))
        finally:
            asyncio.set_event_loop(None)
            loop.close()  # the default executor is shut down without waiting for its threads


#: colony names have 1-64 characters (``core.names``)
_NAME_MAX = 64
#: options a child of ``--processes`` is not given as they were: it gets its own name and pipe
_NOT_FORWARDED = frozenset({"processes", "name", "supervisor_fd", "metrics_port", "metrics_host", "metrics_child"})


def _run_supervisor(ctx: click.Context, app_path: str, processes: int, options: dict[str, Any]) -> int:
    """Check the app and its options once here, then supervise ``processes`` colony processes."""
    if isinstance(_resolve_app(app_path), hm.Colony):
        raise click.UsageError(
            f"{app_path} is one configured Colony: its {processes} processes would all have its name. Give a"
            f" HiveMind, or a function returning the Colony that names it from ${PROCESS_ENV} (1..{processes})"
        )
    app = load_app(app_path)
    suffix = len(f"-{processes}")
    names: dict[int, str] = {}
    if isinstance(app, hm.HiveMind):
        base = options["name"]
        if base is None:
            base = f"{socket.gethostname().split('.')[0]}-{os.getpid()}"[: _NAME_MAX - suffix]
        elif len(base) + suffix > _NAME_MAX:
            raise click.BadParameter(
                f"{base!r}: the colonies are named {base}-1..{base}-{processes}; use at most"
                f" {_NAME_MAX - suffix} characters",
                param_hint="--name",
            )
        names = {index: f"{base}-{index}" for index in range(1, processes + 1)}
    try:
        # what each child would build: a swarm, a setting or a name that cannot work fails here, once
        probe = _build_colony(app, {**options, "name": names.get(processes, options["name"])})
    except hm.HiveMindError as error:
        raise click.ClickException(redact_secrets(str(error))) from error
    forwarded = _forwarded_options(ctx)

    port: int | None = options.get("metrics_port")
    metrics = ["--metrics-child"] if port is not None else []

    def command(index: int, fd: int) -> list[str]:
        name = [f"--name={names[index]}"] if names else []
        worker_command = [sys.executable, "-m", "hivemind_jobs.cli", "worker", app_path]
        return [*worker_command, *forwarded, *name, *metrics, f"--supervisor-fd={fd}"]

    budget = (probe.options.graceful_stop + probe.options.stop_budget).total_seconds()
    with contextlib.ExitStack() as stack:
        env: dict[str, str] | None = None
        on_exit: Callable[[int], None] | None = None
        if port is not None:
            # the children write their metrics to files here; this process serves their sum
            from hivemind_jobs import prometheus

            directory = stack.enter_context(tempfile.TemporaryDirectory(prefix="hivemind-metrics-"))
            env = {**os.environ, prometheus.MULTIPROCESS_ENV: directory}
            server = _serve_metrics(lambda: prometheus.serve_processes(port, options["metrics_host"], directory))
            stack.callback(server.shutdown)
            on_exit = functools.partial(_child_died, directory=directory)
        supervisor = Supervisor(
            command,
            processes,
            labels=lambda index: f"colony {names[index]}" if names else f"colony process {index}",
            stop_budget=budget + EXIT_ALLOWANCE,
            burst=options["burst"],
            env=env,
            on_exit=on_exit,
        )
        return supervisor.run()


def _child_died(pid: int, *, directory: str) -> None:
    from hivemind_jobs import prometheus

    prometheus.process_died(pid, directory)


def _prometheus() -> Any:
    """The metrics module, or a one-line error naming the extra."""
    try:
        from hivemind_jobs import prometheus
    except ImportError as error:
        raise click.UsageError(f"--metrics-port: {error}") from None
    return prometheus


def _serve_metrics(start: Callable[[], Any]) -> Any:
    try:
        return start()
    except OSError as error:
        raise click.UsageError(f"--metrics-port: cannot serve the metrics: {error}") from None


def _forwarded_options(ctx: click.Context) -> list[str]:
    """The options given to this command (``--flag=value``), for a child to get the same ones."""
    arguments: list[str] = []
    for param in ctx.command.params:
        if not isinstance(param, click.Option) or param.name is None or param.name in _NOT_FORWARDED:
            continue
        if ctx.get_parameter_source(param.name) in (None, ParameterSource.DEFAULT):
            continue
        flag = next(opt for opt in param.opts if opt.startswith("--"))
        value = ctx.params[param.name]
        if param.is_flag:
            arguments.extend([flag] if value else [])
        elif param.multiple:
            arguments.extend(f"{flag}={item}" for item in value)
        elif value is not None:
            arguments.append(f"{flag}={value}")
    return arguments


def _setting_options(command: Callable[..., None]) -> Callable[..., None]:
    """One option per :data:`SETTINGS` entry, checked by :func:`parse_settings` (errors in one line)."""
    for setting in reversed(SETTINGS):
        metavar = "N" if setting.kind == "count" else "SECONDS"
        command = click.option(setting.flag, setting.key, default=None, metavar=metavar, help=setting.help)(command)
    return command


@click.command()
@click.argument("app_path", metavar="APP", required=False)
@click.option("--env", "environment", default=None, help="Environment to work (default: the app's default one).")
@click.option("--name", default=None, help="Readable colony name (default: host-pid).")
@click.option(
    "--swarm",
    "swarms",
    multiple=True,
    help="name:drones[:queue1,queue2=priority][@process,timeout=SECONDS]; repeat for more swarms,"
    " parent/child:... for sub-swarms; @process runs its sync jobs in child processes.",
)
@click.option("--drones", default=4, show_default=True, help="Drones of the default swarm when no --swarm is given.")
@click.option(
    "--allow", multiple=True, help="Module (prefix) whose jobs may run; default: the app's top-level package."
)
@click.option("--allow-all", is_flag=True, help="Run any stored job target (only for trusted databases).")
@click.option("--poll-interval", default=1.0, show_default=True, type=float, help="Seconds between idle polls.")
@click.option("--monitor-interval", default=None, type=float, help="Seconds between lock-monitor runs.")
@click.option("--burst", is_flag=True, help="Process what is due, then exit.")
@click.option("--log-level", default="INFO", show_default=True, help="Python logging level of the worker.")
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default="text",
    show_default=True,
    help="Log lines as text, or as one JSON object per line (with the job's fields).",
)
@click.option(
    "--log-config",
    default=None,
    metavar="FILE",
    help="A logging.config.dictConfig dictionary (.json, .toml, or .yaml with PyYAML) instead of the above.",
)
@click.option("--quiet-jobs", is_flag=True, help="No line per job outcome (logger hivemind_jobs.worker).")
@click.option(
    "--processes",
    default=1,
    show_default=True,
    type=click.IntRange(min=1),
    help="Colony processes to run under one supervisor (named NAME-1..NAME-N); 1: this process is the colony.",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    default=None,
    metavar="PORT",
    help="Serve Prometheus metrics on http://HOST:PORT/metrics (extra [prometheus]); with --processes, the"
    " supervisor serves the sum of its colonies.",
)
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address the metrics are served on.")
@click.option(
    "--metrics-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=_METRICS_INTERVAL,
    show_default=True,
    metavar="SECONDS",
    help="Seconds between two reads of the queue depths and colonies for the metrics.",
)
@click.option("--metrics-child", is_flag=True, hidden=True)
@click.option(
    "--wait-for-db",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="When the database does not answer at start, try again with backoff this long before giving up (0: not).",
)
@click.option("--supervisor-fd", type=int, default=None, hidden=True)
@_setting_options
def worker(app_path: str | None, **options: Any) -> None:
    """Run a colony for APP (module:attribute holding a HiveMind or Colony; or HIVEMIND_APP, or
    app = "..." in the settings file)."""
    if not app_path:
        raise click.UsageError(
            'give APP (module:attribute of your HiveMind), set HIVEMIND_APP, or put app = "..." in hivemind.toml'
        )
    configure_logging(
        options.pop("log_level"), options.pop("log_format"), options.pop("log_config"), options.pop("quiet_jobs")
    )
    processes: int = options.pop("processes")
    options["app_path"] = app_path
    options["settings"] = parse_settings({setting.key: options.pop(setting.key) for setting in SETTINGS})
    if options["poll_interval"] <= 0:
        raise click.BadParameter("timings must be positive")
    if processes > 1:
        ctx = click.get_current_context()
        if options["metrics_port"] is not None:
            _prometheus()
        ctx.exit(_run_supervisor(ctx, app_path, processes, options))
    port = options.pop("metrics_port")
    host = options.pop("metrics_host")
    if port is not None or options.pop("metrics_child"):
        prometheus = _prometheus()
        # a registry of its own: a second worker run in one process registers its metrics again
        metrics = options["metrics"] = prometheus.HiveMetrics(prometheus.CollectorRegistry())
        if port is not None:
            _serve_metrics(lambda: prometheus.serve(port, host, metrics.registry))
    app = load_app(app_path)
    try:
        processed = _run_to_exit(run_worker(app, options))
    except hm.HiveMindError as error:
        raise click.ClickException(redact_secrets(str(error))) from error
    click.echo(f"colony stopped after {plural(processed, 'job')}", err=True)
