"""``python -m hivemind_jobs``: the ``hivemind`` command."""

from hivemind_jobs.cli.main import main

main()
