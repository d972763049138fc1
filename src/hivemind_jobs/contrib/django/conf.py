"""The ``HIVEMIND`` setting of a Django project.

.. code-block:: python

    HIVEMIND = {
        "DATABASE": "default",        # the Django database the default environment lives in
        "URL": None,                  # or a HiveMind URL of its own (then jobs cannot join requests' transactions)
        "ENVIRONMENT": "main",        # the default environment's name
        "TABLE_PREFIX": None,
        "OPTIONS": None,              # a hivemind_jobs.Options
        "ENVIRONMENTS": {             # more environments: name -> URL, or a dict of the keys above
            "reports": {"DATABASE": "reports"},
        },
        "ALLOW": None,                # modules whose jobs workers run (default: the project's apps)
    }

Without ``URL`` an environment is on its Django database, through the same connection settings
(SQLite ``NAME``, PostgreSQL with psycopg 3, MySQL/MariaDB), and its tables are created when it
first opens (``auto_migrate``); ``manage.py hivemind db upgrade`` creates them ahead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from hivemind_jobs.core.names import DEFAULT_ENVIRONMENT
from hivemind_jobs.core.options import Options
from hivemind_jobs.errors import ConfigurationError
from hivemind_jobs.hive import HiveMind

__all__ = ["EnvironmentSetting", "HiveSettings", "create_hive", "database_url", "hive_settings", "settings_url"]

_KEYS = {"DATABASE", "URL", "ENVIRONMENT", "TABLE_PREFIX", "OPTIONS", "ENVIRONMENTS", "ALLOW"}
_ENVIRONMENT_KEYS = {"DATABASE", "URL", "TABLE_PREFIX", "OPTIONS"}


@dataclasses.dataclass(frozen=True)
class EnvironmentSetting:
    name: str
    #: the Django database alias it lives in (None: a URL of its own)
    database: str | None
    url: str
    table_prefix: str | None
    options: Options | None


@dataclasses.dataclass(frozen=True)
class HiveSettings:
    database: str
    environments: tuple[EnvironmentSetting, ...]
    allow: tuple[str, ...]

    @property
    def default(self) -> EnvironmentSetting:
        return self.environments[0]


def database_url(alias: str) -> str:
    """A HiveMind URL on the Django database ``alias``, from its connection settings (the test
    database's while tests run)."""
    from django.db import connections

    try:
        settings = connections[alias].settings_dict
    except Exception as error:  # django.utils.connection.ConnectionDoesNotExist
        raise ConfigurationError(f"HIVEMIND: no Django database {alias!r} in DATABASES") from error
    return settings_url(alias, settings)


def settings_url(alias: str, settings: Mapping[str, Any]) -> str:
    """The HiveMind URL of a Django ``DATABASES`` entry (``alias`` names it in errors)."""
    engine = str(settings.get("ENGINE", ""))
    vendor = engine.rsplit(".", 1)[-1]
    name = str(settings.get("NAME") or "")
    if vendor == "sqlite3":
        if not name or name == ":memory:" or (name.startswith("file:") and "mode=memory" in name):
            raise ConfigurationError(
                f"HIVEMIND: the Django database {alias!r} is an SQLite database in memory, which another "
                "connection cannot open; give it a file (and DATABASES[...]['TEST']['NAME'] a file for tests)"
            )
        return f"sqlite:///{name}"
    schemes = {"postgresql": "postgresql", "mysql": "mysql"}
    if vendor not in schemes:
        raise ConfigurationError(
            f"HIVEMIND: the Django database {alias!r} uses {engine!r}; HiveMind runs on SQLite, PostgreSQL and "
            "MySQL/MariaDB (set HIVEMIND['URL'] to a database of its own)"
        )
    user = quote(str(settings.get("USER") or ""), safe="")
    password = quote(str(settings.get("PASSWORD") or ""), safe="")
    credentials = f"{user}:{password}@" if password else f"{user}@" if user else ""
    host = str(settings.get("HOST") or "127.0.0.1")
    port = str(settings.get("PORT") or "")
    location = f"{host}:{port}" if port else host
    return f"{schemes[vendor]}://{credentials}{location}/{quote(name, safe='')}?auto_migrate=true"


def _environment(name: str, value: object, *, where: str) -> EnvironmentSetting:
    if isinstance(value, str):
        value = {"URL": value}
    if not isinstance(value, Mapping):
        raise ConfigurationError(f"{where} must be a URL or a dict of {sorted(_ENVIRONMENT_KEYS)}, got {value!r}")
    unknown = (
        set(value) - _ENVIRONMENT_KEYS - ({"ENVIRONMENT", "ENVIRONMENTS", "ALLOW"} if where == "HIVEMIND" else set())
    )
    if unknown:
        raise ConfigurationError(f"{where}: unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    options = value.get("OPTIONS")
    if options is not None and not isinstance(options, Options):
        raise ConfigurationError(f"{where}['OPTIONS'] must be a hivemind_jobs.Options, got {options!r}")
    url = value.get("URL")
    database = None if url else str(value.get("DATABASE") or "default")
    return EnvironmentSetting(
        name=name,
        database=database,
        url=str(url) if url else database_url(database or "default"),
        table_prefix=value.get("TABLE_PREFIX"),
        options=options,
    )


def hive_settings() -> HiveSettings:
    """The ``HIVEMIND`` setting, checked (a misspelt key is an error, not ignored)."""
    from django.conf import settings

    raw: Any = getattr(settings, "HIVEMIND", None) or {}
    if not isinstance(raw, Mapping):
        raise ConfigurationError(f"HIVEMIND must be a dict, got {type(raw).__name__}")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigurationError(f"HIVEMIND: unknown key(s) {sorted(unknown)}; known: {sorted(_KEYS)}")
    default = _environment(str(raw.get("ENVIRONMENT") or DEFAULT_ENVIRONMENT), raw, where="HIVEMIND")
    more = raw.get("ENVIRONMENTS") or {}
    if not isinstance(more, Mapping):
        raise ConfigurationError(f"HIVEMIND['ENVIRONMENTS'] must be a dict of name -> URL or dict, got {more!r}")
    environments = [default]
    environments += [
        _environment(str(name), value, where=f"HIVEMIND['ENVIRONMENTS'][{name!r}]") for name, value in more.items()
    ]
    allow = raw.get("ALLOW")
    if allow is None:
        allow = _project_modules(settings)
    elif isinstance(allow, str) or not all(isinstance(item, str) for item in allow):
        raise ConfigurationError(f"HIVEMIND['ALLOW'] must be a list of module names, got {allow!r}")
    return HiveSettings(default.database or "default", tuple(environments), tuple(allow))


def _project_modules(settings: Any) -> list[str]:
    """The project's own top-level packages: its apps' and the settings module's (not Django's)."""
    names: list[str] = []
    for entry in [*settings.INSTALLED_APPS, getattr(settings, "SETTINGS_MODULE", None) or ""]:
        top = str(entry).split(".", 1)[0]
        if top and top not in ("django", "hivemind_jobs") and top not in names:
            names.append(top)
    return names


def create_hive(**kwargs: Any) -> HiveMind:
    """A (closed) HiveMind on the ``HIVEMIND`` settings; ``kwargs`` as for ``HiveMind(...)``
    (activator, clock, codec). ``manage.py hivemind`` runs its commands on one of these."""
    settings = hive_settings()
    default = settings.default
    hive = HiveMind(
        default.url, environment=default.name, options=default.options, table_prefix=default.table_prefix, **kwargs
    )
    for environment in settings.environments[1:]:
        hive.add_environment(
            environment.name, environment.url, options=environment.options, table_prefix=environment.table_prefix
        )
    return hive


def upgrade(environment: EnvironmentSetting) -> None:
    """Create or upgrade the tables of ``environment`` (opening it does, on its URL)."""
    from hivemind_jobs.sync import SyncHiveMind

    with SyncHiveMind(
        environment.url,
        environment=environment.name,
        options=environment.options,
        table_prefix=environment.table_prefix,
    ):
        pass
