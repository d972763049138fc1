"""Flask: the blocking :class:`~hivemind_jobs.SyncHiveMind` of an application, and ``flask hivemind``.

::

    from flask import Flask
    from hivemind_jobs.contrib.flask import HiveMindFlask

    hivemind = HiveMindFlask()


    def create_app() -> Flask:
        app = Flask(__name__)
        app.config["HIVEMIND_URL"] = "sqlite:///app.db"
        hivemind.init_app(app)

        @app.post("/reports")
        def order_report() -> dict[str, int]:
            return {"job_id": hivemind.jobs.create(send_report, "weekly")}

        return app

Settings (``app.config``), read when the hive is first used:

``HIVEMIND_URL``
    the storage URL; default: the ``HIVEMIND_URL`` variable, else ``hivemind.db`` in the app's
    instance folder (created when needed).
``HIVEMIND_ENVIRONMENT``
    the environment's name; default: the ``HIVEMIND_ENV`` variable, else ``main``.
``HIVEMIND_TABLE_PREFIX``
    its table prefix; default: the ``HIVEMIND_PREFIX`` variable, else ``hm_<environment>_``.
``HIVEMIND_ALLOW``
    the modules (prefixes) whose jobs ``flask hivemind worker`` may run when it is not given
    ``--allow``; default: the top-level package of the app's import name.

The hive is opened at its first use in each process (after a fork too) and closed when the process
exits. ``flask hivemind worker [OPTIONS]`` runs a colony with the app's settings and takes every
option of ``hivemind worker``; ``flask hivemind jobs|queues|recurring|colonies|db ...`` are the
``hivemind`` commands of the same name on the app's database.
"""

from __future__ import annotations

import atexit
import functools
import os
import threading
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, has_app_context
from flask.cli import ScriptInfo

from hivemind_jobs.core.invocation import Activator
from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT
from hivemind_jobs.core.options import Options
from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.hive import HiveMind
from hivemind_jobs.sync import SyncBackgroundJobClient, SyncHiveMind

__all__ = ["EXTENSION_KEY", "WORKER_APP", "HiveMindFlask", "worker_hive"]

#: the key of the extension in ``app.extensions``
EXTENSION_KEY = "hivemind"
#: the APP that ``flask hivemind worker`` gives ``hivemind worker``: the Flask app's hive
WORKER_APP = f"{__name__}:worker_hive"
#: the Flask app's import path, for the colony processes of ``flask hivemind worker --processes N``
FLASK_APP_ENV = "HIVEMIND_FLASK_APP"
#: the ``hivemind`` commands ``flask hivemind`` offers on the app's database
DATABASE_COMMANDS = ("colonies", "db", "jobs", "queues", "recurring")
#: seconds closing the hive may take when the process exits
CLOSE_TIMEOUT = 5.0


class HiveMindFlask:
    """The HiveMind of one or more Flask applications (``HiveMindFlask(app)`` or ``init_app(app)``).

    ``options`` and ``activator`` are given to every hive it makes (as to ``HiveMind(...)``).
    """

    def __init__(
        self, app: Flask | None = None, *, options: Options | None = None, activator: Activator | None = None
    ) -> None:
        self.options = options
        self.activator = activator
        self.app = app
        self._lock = threading.Lock()
        #: app -> (the process that opened it, the hive, what closes it at exit)
        self._hives: weakref.WeakKeyDictionary[Flask, tuple[int, SyncHiveMind, Callable[[], None]]] = (
            weakref.WeakKeyDictionary()
        )
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Give ``app`` its settings' defaults, ``app.extensions["hivemind"]`` and ``flask hivemind``."""
        if EXTENSION_KEY in app.extensions:
            raise ConfigurationError(f"{app.name} already has a HiveMind extension (app.extensions['hivemind'])")
        app.config.setdefault("HIVEMIND_URL", os.environ.get("HIVEMIND_URL") or _instance_url(app))
        app.config.setdefault("HIVEMIND_ENVIRONMENT", os.environ.get("HIVEMIND_ENV") or DEFAULT_ENVIRONMENT)
        app.config.setdefault("HIVEMIND_TABLE_PREFIX", os.environ.get("HIVEMIND_PREFIX") or None)
        app.config.setdefault("HIVEMIND_ALLOW", None)
        app.extensions[EXTENSION_KEY] = self
        app.cli.add_command(_command_group(self, app))

    # ------------------------------------------------------------------ the hive of an app
    def _app(self, app: Flask | None) -> Flask:
        if app is not None:
            return app
        if has_app_context():
            return current_app._get_current_object()  # type: ignore[attr-defined,no-any-return]
        if self.app is not None:
            return self.app
        raise RuntimeError(
            "no Flask application: use the hive in a request or an app context (with app.app_context():), "
            "or create the extension with HiveMindFlask(app)"
        )

    def _settings(self, app: Flask) -> dict[str, Any]:
        url: str = app.config["HIVEMIND_URL"]
        if url == _instance_url(app):
            Path(app.instance_path).mkdir(parents=True, exist_ok=True)
        return {
            "url": url,
            "environment": app.config["HIVEMIND_ENVIRONMENT"],
            "table_prefix": app.config["HIVEMIND_TABLE_PREFIX"],
            "options": self.options,
            "activator": self.activator,
        }

    def make_hive(self, app: Flask | None = None) -> HiveMind:
        """A new, unopened async :class:`~hivemind_jobs.HiveMind` on the app's settings (the current
        app, or the one the extension was created with): what ``flask hivemind worker`` runs."""
        return HiveMind(**self._settings(self._app(app)))

    def get_hive(self, app: Flask | None = None) -> SyncHiveMind:
        """The app's open blocking hive: opened at the first call in each process, closed at its exit."""
        app = self._app(app)
        pid = os.getpid()
        with self._lock:
            entry = self._hives.get(app)
            if entry is not None and entry[0] == pid:
                return entry[1]
            # none yet, or one opened before a fork: its loop thread did not come along
            hive = SyncHiveMind(**self._settings(app))
            hive.open()
            closer = functools.partial(hive.close, CLOSE_TIMEOUT)
            atexit.register(closer)
            self._hives[app] = (pid, hive, closer)
            return hive

    def close(self, app: Flask | None = None) -> None:
        """Close the app's hive now (it opens again at the next use)."""
        app = self._app(app)
        with self._lock:
            entry = self._hives.pop(app, None)
        if entry is None or entry[0] != os.getpid():
            return
        _pid, hive, closer = entry
        atexit.unregister(closer)
        hive.close(CLOSE_TIMEOUT)

    @property
    def hive(self) -> SyncHiveMind:
        """The current app's open blocking hive (see :meth:`get_hive`)."""
        return self.get_hive()

    @property
    def jobs(self) -> SyncBackgroundJobClient:
        """The job client of the current app's hive, for views: ``hivemind.jobs.create(...)``."""
        return self.get_hive().jobs

    def allowed_modules(self, app: Flask | None = None) -> list[str]:
        """The modules whose jobs ``flask hivemind worker`` runs without ``--allow``."""
        app = self._app(app)
        configured = app.config["HIVEMIND_ALLOW"]
        if configured is None:
            return [app.import_name.split(".")[0]]
        if isinstance(configured, str):
            return configured.split()
        return list(configured)


def _instance_url(app: Flask) -> str:
    return f"sqlite:///{Path(app.instance_path) / 'hivemind.db'}"


# ----------------------------------------------------------------------------- flask hivemind


#: the app ``flask hivemind worker`` runs for in this process
_worker_app: Flask | None = None


def worker_hive() -> HiveMind:
    """The hive ``flask hivemind worker`` runs a colony of: that of its Flask app. A colony process
    of ``--processes N`` loads the app again (the import path in ``HIVEMIND_FLASK_APP``, else the
    app Flask finds in the current directory)."""
    app = _worker_app
    if app is None:
        app = ScriptInfo(app_import_path=os.environ.get(FLASK_APP_ENV) or None).load_app()
    extension = app.extensions.get(EXTENSION_KEY)
    if not isinstance(extension, HiveMindFlask):
        raise ConfigurationError(f"the Flask app {app.name!r} has no HiveMindFlask extension")
    return extension.make_hive(app)


def _command_group(extension: HiveMindFlask, app: Flask) -> click.Group:
    from hivemind_jobs.cli.main import cli

    database_commands = {name: cli.commands[name] for name in DATABASE_COMMANDS}

    @click.group("hivemind")
    @click.pass_context
    def group(ctx: click.Context) -> None:
        """HiveMind on this application's database: run a worker, see and manage its jobs."""
        settings = {
            "url": app.config["HIVEMIND_URL"],
            "environment": app.config["HIVEMIND_ENVIRONMENT"],
            "prefix": app.config["HIVEMIND_TABLE_PREFIX"],
        }
        defaults = dict(ctx.default_map or {})
        for path, params in _commands_with_params(database_commands):
            node = defaults
            for name in path:
                node = node.setdefault(name, {})
            node.update({key: value for key, value in settings.items() if key in params and value is not None})
        ctx.default_map = defaults

    group.add_command(_worker_command(extension, app, cli.commands["worker"]))
    for command in database_commands.values():
        group.add_command(command)
    return group


def _commands_with_params(commands: dict[str, click.Command]) -> Iterator[tuple[tuple[str, ...], set[str]]]:
    for name, command in commands.items():
        yield (name,), {param.name for param in command.params if param.name is not None}
        if isinstance(command, click.Group):
            for path, params in _commands_with_params(dict(command.commands)):
                yield (name, *path), params


def _worker_command(extension: HiveMindFlask, app: Flask, worker: click.Command) -> click.Command:
    """``hivemind worker`` with this app's hive as its APP (every other parameter is the same)."""
    assert worker.callback is not None
    run_worker = worker.callback

    @click.pass_context
    def callback(ctx: click.Context, /, **options: Any) -> None:
        global _worker_app
        if not options["allow"]:
            options["allow"] = tuple(extension.allowed_modules(app))
        if options["processes"] > 1:
            _prepare_processes(ctx, options["allow"])
        previous, _worker_app = _worker_app, app
        try:
            run_worker(app_path=WORKER_APP, **options)
        finally:
            _worker_app = previous

    params: Sequence[click.Parameter] = [param for param in worker.params if param.name != "app_path"]
    return click.Command(
        "worker",
        callback=callback,
        params=list(params),
        help="Run a colony on this application's database (the options of `hivemind worker`; without --allow, "
        "the jobs of HIVEMIND_ALLOW, else of the app's top-level package).",
        short_help="Run a colony on this application's database.",
    )


def _prepare_processes(ctx: click.Context, allow: Sequence[str]) -> None:
    """What the colony processes of ``--processes N`` need to find the app: its import path, and
    the modules they may run jobs of (they inherit this process's environment)."""
    info = ctx.find_object(ScriptInfo)
    if info is not None and info.app_import_path:
        os.environ[FLASK_APP_ENV] = info.app_import_path
    os.environ["HIVEMIND_ALLOW"] = " ".join(allow)
