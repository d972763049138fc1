"""The Django app: ``INSTALLED_APPS = [..., "hivemind_jobs.contrib.django"]``."""

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


class HiveMindConfig(AppConfig):
    name = "hivemind_jobs.contrib.django"
    label = "hivemind"
    verbose_name = "HiveMind"

    def ready(self) -> None:
        from hivemind_jobs.contrib.django.conf import hive_settings

        hive_settings()  # a misspelt key fails at start-up, not at the first job
        post_migrate.connect(_upgrade_after_migrate, sender=self, dispatch_uid="hivemind_upgrade")


def _upgrade_after_migrate(using: str = "default", **kwargs: Any) -> None:
    """``manage.py migrate`` (and the test runner's database creation) also creates or upgrades
    the tables of the environments on that database: a request's transaction then never waits
    for them (on SQLite a table created while a request holds the write lock would wait forever)."""
    del kwargs
    from hivemind_jobs.contrib.django.conf import hive_settings, upgrade

    for environment in hive_settings().environments:
        if environment.database == using:
            upgrade(environment)
