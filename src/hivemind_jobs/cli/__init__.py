"""The ``hivemind`` command."""
