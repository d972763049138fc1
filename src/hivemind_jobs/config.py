"""Settings from the environment and from a configuration file, for the CLI and applications.

Precedence: a command-line flag, then an environment variable (``HIVEMIND_<KEY>``, the key in
upper case: ``HIVEMIND_URL``, ``HIVEMIND_APP``, ``HIVEMIND_ENV``, ``HIVEMIND_LOG_LEVEL``,
``HIVEMIND_POLL_INTERVAL`` ...), then the configuration file, then the built-in default. The file
is ``HIVEMIND_CONFIG`` (or ``hivemind --config FILE``) if set, else ``hivemind.toml`` in the current
directory (its top-level keys), else the ``[tool.hivemind]`` table of ``pyproject.toml`` there.
Keys are the long option names with ``_`` for ``-`` (``poll_interval``), plus ``url``, ``app``,
``env`` and ``prefix``.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hivemind_jobs.errors import ConfigurationError

__all__ = ["CONFIG_ENV", "ENV_PREFIX", "ConfigFile", "env_name", "find_config", "load_config", "settings_from_env"]

ENV_PREFIX = "HIVEMIND_"
CONFIG_ENV = "HIVEMIND_CONFIG"


@dataclass(frozen=True)
class ConfigFile:
    """The settings of one configuration file and where they came from."""

    path: Path | None
    values: Mapping[str, Any]

    def describe(self) -> str:
        return "no configuration file" if self.path is None else str(self.path)


def env_name(key: str) -> str:
    """The environment variable of a setting: ``poll_interval`` -> ``HIVEMIND_POLL_INTERVAL``."""
    return ENV_PREFIX + key.upper().replace("-", "_")


def find_config(explicit: str | os.PathLike[str] | None = None, directory: Path | None = None) -> ConfigFile:
    """The configuration file that applies: ``explicit``, else ``HIVEMIND_CONFIG``, else
    ``hivemind.toml`` or ``pyproject.toml``'s ``[tool.hivemind]`` in ``directory`` (the current one)."""
    named = explicit if explicit is not None else os.environ.get(CONFIG_ENV) or None
    if named is not None:
        return load_config(Path(named))
    here = directory or Path.cwd()
    if (here / "hivemind.toml").is_file():
        return load_config(here / "hivemind.toml")
    pyproject = here / "pyproject.toml"
    if pyproject.is_file():
        table = _tool_table(_read_toml(pyproject), pyproject)
        if table is not None:
            return ConfigFile(pyproject, _checked(table, pyproject))
    return ConfigFile(None, {})


def load_config(path: Path) -> ConfigFile:
    """The settings of the TOML file ``path``: its ``[tool.hivemind]`` table for a ``pyproject.toml``,
    its top-level keys otherwise."""
    data = _read_toml(path)
    if path.name == "pyproject.toml":
        data = _tool_table(data, path) or {}
    return ConfigFile(path, _checked(data, path))


def _tool_table(data: Mapping[str, Any], path: Path) -> dict[str, Any] | None:
    """The ``[tool.hivemind]`` table of a ``pyproject.toml``'s data, None when it has none."""
    tool = data.get("tool")
    table = tool.get("hivemind") if isinstance(tool, dict) else None
    if table is not None and not isinstance(table, dict):
        raise ConfigurationError(f"{path}: [tool.hivemind] must be a table")
    return table


def settings_from_env(keys: tuple[str, ...] = ("url", "env", "prefix")) -> dict[str, str]:
    """The settings among ``keys`` that ``HIVEMIND_*`` environment variables give."""
    return {key: os.environ[env_name(key)] for key in keys if os.environ.get(env_name(key))}


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigurationError(f"configuration file {path}: {error.strerror or error}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {error}") from None


def _checked(values: Mapping[str, Any], path: Path) -> dict[str, Any]:
    checked: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            raise ConfigurationError(f'{path}: {key!r} is a table; HiveMind settings are plain keys (url = "...")')
        checked[key.replace("-", "_")] = value
    return checked
