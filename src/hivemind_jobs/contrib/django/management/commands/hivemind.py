"""``manage.py hivemind ...``: the ``hivemind`` command with the project loaded.

Every command of ``hivemind`` works (``worker``, ``dashboard``, ``jobs``, ``recurring``, ``db``,
``colonies``, ``queues``); those taking an application get the project's HiveMind
(:func:`hivemind_jobs.contrib.django.conf.create_hive`) unless given ``--url``/``--app``, and
``worker`` runs the jobs of the project's modules (``HIVEMIND["ALLOW"]``) unless given
``--allow``/``--allow-all``.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from django.core.management.base import BaseCommand

APP = "hivemind_jobs.contrib.django.conf:create_hive"


def hivemind_arguments(argv: list[str], allow: tuple[str, ...]) -> tuple[list[str], bool]:
    """The ``hivemind`` arguments for ``manage.py hivemind <argv>``, and whether the commands
    should get the project's HiveMind (no ``--url``/``--app``/APP of their own)."""
    arguments = list(argv)
    if not arguments or arguments[0].startswith("-"):
        return arguments, False
    given = {item.split("=", 1)[0] for item in arguments[1:] if item.startswith("--")}
    own_app = bool(given & {"--url", "--app"}) or (
        arguments[0] in ("worker", "dashboard") and any(not item.startswith("-") for item in arguments[1:2])
    )
    if arguments[0] == "worker" and not given & {"--allow", "--allow-all"}:
        for module in (*allow, "hivemind_jobs.contrib.django"):
            arguments += ["--allow", module]
    return arguments, not own_app


class Command(BaseCommand):
    help = "HiveMind's command line (worker, dashboard, jobs, recurring, db ...) with the project loaded."

    def run_from_argv(self, argv: list[str]) -> None:
        from hivemind_jobs.cli.main import main

        main(_prepare(argv[2:]), prog_name=f"{os.path.basename(argv[0])} hivemind")

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> Any:
        parser = super().create_parser(prog_name, subcommand, **kwargs)
        parser.add_argument("arguments", nargs=argparse.REMAINDER, help="hivemind's command and its arguments")
        return parser

    def handle(self, *args: Any, **options: Any) -> None:
        """``call_command("hivemind", "jobs", "list")``: the command's exit status is an exception
        (``SystemExit``) only when it fails."""
        from hivemind_jobs.cli.main import cli

        try:
            cli.main(args=_prepare(list(options["arguments"])), prog_name="manage.py hivemind")
        except SystemExit as exit_:
            if exit_.code not in (None, 0):
                raise


def _prepare(argv: list[str]) -> list[str]:
    from hivemind_jobs.contrib.django.conf import hive_settings

    arguments, project_app = hivemind_arguments(argv, hive_settings().allow)
    if project_app and not os.environ.get("HIVEMIND_URL"):
        os.environ.setdefault("HIVEMIND_APP", APP)  # every command's APP / --app (HIVEMIND_APP)
    return arguments
