"""How the command line configures logging (the library itself never does).

``--log-level`` sets the root level; ``--log-format text|json`` picks one line of text or one JSON
object per record (:class:`~hivemind_jobs.core.joblog.JsonLogFormatter`), written to stderr
with the running job's fields added (:class:`~hivemind_jobs.core.joblog.JobContextFilter`);
``--log-config FILE`` hands a :func:`logging.config.dictConfig` dictionary (JSON, TOML, or YAML
with PyYAML installed) the whole configuration instead; ``--quiet-jobs`` turns the worker's
per-job lines (logger ``hivemind_jobs.worker``) off.
"""

from __future__ import annotations

import json
import logging
import logging.config
import tomllib
from pathlib import Path
from typing import Any

import click

from hivemind_jobs.core.joblog import WORKER_LOGGER, JobContextFilter, JsonLogFormatter

__all__ = ["LOG_FORMATS", "TEXT_FORMAT", "configure_logging", "load_log_config"]

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FORMATS = ("text", "json")


def load_log_config(path: str) -> dict[str, Any]:
    """The dictConfig dictionary in ``path`` (by its suffix: .json, .toml, .yaml or .yml)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if suffix not in (".json", ".toml", ".yaml", ".yml"):
        raise click.BadParameter(
            f"{path}: a logging config is a .json, .toml, .yaml or .yml file", param_hint="--log-config"
        )
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as error:
        raise click.BadParameter(f"{path}: {error.strerror or error}", param_hint="--log-config") from None
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            try:
                import yaml  # type: ignore[import-untyped]
            except ImportError:
                raise click.BadParameter(
                    f"{path}: YAML logging configs need PyYAML (pip install pyyaml); or use .json or .toml",
                    param_hint="--log-config",
                ) from None
            data = yaml.safe_load(text)
    except (ValueError, tomllib.TOMLDecodeError) as error:
        raise click.BadParameter(
            f"{path}: not valid {suffix[1:].upper()}: {error}", param_hint="--log-config"
        ) from None
    except Exception as error:  # the YAML parser's own errors
        raise click.BadParameter(f"{path}: not valid YAML: {error}", param_hint="--log-config") from None
    if not isinstance(data, dict) or data.get("version") != 1:
        raise click.BadParameter(
            f"{path}: a logging.config.dictConfig dictionary with version: 1 is expected", param_hint="--log-config"
        )
    return data


def configure_logging(
    level: str, log_format: str = "text", config: str | None = None, quiet_jobs: bool = False
) -> None:
    """Configure this process's logging as the command's options say (see the module docstring)."""
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise click.BadParameter(
            f"{level!r} is no logging level; use DEBUG, INFO, WARNING, ERROR or CRITICAL", param_hint="--log-level"
        )
    if log_format not in LOG_FORMATS:
        raise click.BadParameter(f"{log_format!r}: use text or json", param_hint="--log-format")
    if config is not None:
        settings = load_log_config(config)
        try:
            logging.config.dictConfig(settings)
        except (ValueError, TypeError, AttributeError, ImportError) as error:
            raise click.BadParameter(f"{config}: {error}", param_hint="--log-config") from None
    else:
        handler = logging.StreamHandler()
        handler.setFormatter(JsonLogFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
        handler.addFilter(JobContextFilter())
        logging.basicConfig(level=number, handlers=[handler])  # no-op where logging was set up before
    if quiet_jobs:
        logging.getLogger(WORKER_LOGGER).setLevel(logging.CRITICAL + 1)
