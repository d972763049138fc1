"""One way for every command to take its settings: flag > ``HIVEMIND_*`` variable > file > default.

:func:`install` gives each configurable parameter its environment variable (``--url`` reads
``HIVEMIND_URL``, ``hivemind worker --poll-interval`` ``HIVEMIND_POLL_INTERVAL``); the group's
callback turns the configuration file (:func:`hivemind_jobs.config.find_config`) into click's
``default_map``, so a file value counts only where neither a flag nor a variable gave one. The
target of a command (``url``, ``app``, ``env``, ``prefix``) and the logging settings are
configurable for every command that has them, and every option of ``hivemind worker``; switches
such as ``--json`` or ``--yes`` never are.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import click

from hivemind_jobs.config import ConfigFile, env_name

__all__ = ["SHARED_KEYS", "commands", "default_map", "install", "setting_key"]

#: settings any command that has the option takes from the environment or the file
SHARED_KEYS = ("url", "app", "env", "prefix", "log_level", "log_format", "log_config", "quiet_jobs")
#: every option of these commands is configurable
ALL_OPTIONS = {("worker",)}
_NEVER = {"help", "supervisor_fd"}


def commands(group: click.Group, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    """Every command under ``group`` with its path of names (groups included)."""
    for name, command in sorted(group.commands.items()):
        yield (*path, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*path, name))


def setting_key(path: tuple[str, ...], param: click.Parameter) -> str | None:
    """The setting a parameter takes (its long option name, ``app`` for an APP argument), or None."""
    if isinstance(param, click.Argument):
        key = "app" if param.name == "app_path" else None
    elif isinstance(param, click.Option) and not param.hidden:
        long = next((opt for opt in param.opts if opt.startswith("--")), None)
        key = long[2:].replace("-", "_") if long else None
    else:
        key = None
    if key is None or key in _NEVER:
        return None
    return key if key in SHARED_KEYS or path in ALL_OPTIONS else None


def install(group: click.Group) -> None:
    """Give every configurable parameter under ``group`` its ``HIVEMIND_*`` variable."""
    for path, command in commands(group):
        for param in command.params:
            key = setting_key(path, param)
            if key is not None:
                param.envvar = env_name(key)
                if isinstance(param, click.Option):
                    param.show_envvar = True


def default_map(group: click.Group, config: ConfigFile) -> dict[str, Any]:
    """click's ``default_map`` for ``group`` from the file's settings; an unknown key is refused."""
    result: dict[str, Any] = {}
    used: set[str] = set()
    for path, command in commands(group):
        for param in command.params:
            key = setting_key(path, param)
            if key is None or key not in config.values or param.name is None:
                continue
            value = config.values[key]
            if getattr(param, "multiple", False) and isinstance(value, str):
                value = [value]
            node = result
            for name in path:
                node = node.setdefault(name, {})
            node[param.name] = value
            used.add(key)
    unknown = sorted(set(config.values) - used)
    if unknown:
        known = sorted(
            {key for path, command in commands(group) for p in command.params if (key := setting_key(path, p))}
        )
        raise click.UsageError(
            f"{config.describe()}: unknown setting(s) {', '.join(unknown)}; known: {', '.join(known)}"
        )
    return result
