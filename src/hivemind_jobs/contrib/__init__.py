"""Integrations with the frameworks and containers an application runs HiveMind in.

Each submodule imports its framework, installed with the extra of the same name
(``pip install 'hivemind-jobs[django]'``); importing :mod:`hivemind_jobs` never imports them.
"""
