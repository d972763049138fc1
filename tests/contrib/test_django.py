"""The Django integration: the example shop's own test suite under Django's test runner on
SQLite, PostgreSQL and MariaDB, a worker process started by ``manage.py hivemind worker``, and
the settings' translation to HiveMind URLs."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from hivemind_jobs.contrib.django.conf import settings_url
from hivemind_jobs.contrib.django.management.commands.hivemind import APP, hivemind_arguments
from hivemind_jobs.errors import ConfigurationError
from tests import backends

SHOP = Path(__file__).parents[2] / "examples" / "django_project"
VENDORS = {"sqlite": "sqlite", "postgres": "postgresql", "mariadb": "mysql"}


def _shop_env(backend_name: str, tmp_path: Path) -> dict[str, str]:
    env = {**os.environ, "SHOP_DB": VENDORS[backend_name], "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    env.pop("HIVEMIND_URL", None)
    env.pop("HIVEMIND_APP", None)
    if backend_name == "sqlite":
        env["SHOP_DB_NAME"] = str(tmp_path / "shop.sqlite3")
    else:
        env["SHOP_DB_NAME"] = f"hmt_{uuid.uuid4().hex[:12]}"  # Django creates and drops test_<name>
        if backend_name == "mariadb":
            settings = backends.mysql_settings()
            env.update(SHOP_DB_HOST=settings["host"], SHOP_DB_PORT=str(settings["port"]), SHOP_DB_USER=settings["user"])
            env["SHOP_DB_PASSWORD"] = settings["password"]
    return env


def _manage(env: dict[str, str], *arguments: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *arguments],
        cwd=SHOP,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize("backend_name", list(VENDORS))
def test_the_shop_passes_its_django_tests(backend_name: str, tmp_path: Path) -> None:
    backends.require(backend_name)
    done = _manage(_shop_env(backend_name, tmp_path), "test", "orders", "--noinput")
    assert done.returncode == 0, done.stderr[-4000:]
    assert "Ran 8 tests" in done.stderr and "\nOK" in done.stderr


def test_a_worker_process_runs_what_a_request_enqueued(tmp_path: Path) -> None:
    env = _shop_env("sqlite", tmp_path)
    assert _manage(env, "migrate", "--noinput").returncode == 0
    placed = _manage(
        env,
        "shell",
        "-c",
        "import json; from django.test import Client; "
        "r = Client().post('/orders', json.dumps({'item': 'mate', 'email': 'x@example.com'}), 'application/json'); "
        "print(r.status_code, r.json()['receipt'])",
    )
    status, receipt = placed.stdout.splitlines()[-1].split()  # after the shell's own note
    assert status == "201", placed.stderr
    worker = _manage(env, "hivemind", "worker", "--burst", "--swarm", "main:2:mail", "--quiet-jobs")
    assert worker.returncode == 0, worker.stderr[-4000:]
    assert "colony stopped after 2 jobs" in worker.stdout + worker.stderr
    shown = _manage(
        env,
        "shell",
        "-c",
        "from orders.models import Order; from orders.tasks import send_receipt; "
        f"r = send_receipt.get_result('{receipt}'); print(r.status, r.return_value['subject'], "
        "Order.objects.get().confirmed)",
    )
    assert shown.stdout.splitlines()[-1].split() == ["SUCCESSFUL", "Your", "mate", "True"], shown.stderr[-4000:]
    listed = _manage(env, "hivemind", "jobs", "ls", "--state", "Succeeded", "--json")
    assert listed.returncode == 0 and listed.stdout.count('"id"') == 2, listed.stderr


def test_settings_translate_to_hivemind_urls() -> None:
    assert settings_url("default", {"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/app/db.sqlite3"}) == (
        "sqlite:////srv/app/db.sqlite3"
    )
    postgres = {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "shop",
        "USER": "app",
        "PASSWORD": "p@ss/word",
        "HOST": "db.internal",
        "PORT": 5433,
    }
    assert settings_url("default", postgres) == "postgresql://app:p%40ss%2Fword@db.internal:5433/shop?auto_migrate=true"
    assert settings_url("default", {"ENGINE": "django.db.backends.mysql", "NAME": "shop"}) == (
        "mysql://127.0.0.1/shop?auto_migrate=true"
    )
    with pytest.raises(ConfigurationError, match="in memory"):
        settings_url("default", {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"})
    with pytest.raises(ConfigurationError, match="oracle"):
        settings_url("legacy", {"ENGINE": "django.db.backends.oracle", "NAME": "x"})


def test_manage_py_arguments() -> None:
    assert hivemind_arguments(["worker", "--drones", "2"], ("shop", "orders")) == (
        ["worker", "--drones", "2", "--allow", "shop", "--allow", "orders", "--allow", "hivemind_jobs.contrib.django"],
        True,
    )
    assert hivemind_arguments(["worker", "--allow-all"], ("shop",)) == (["worker", "--allow-all"], True)
    assert hivemind_arguments(["jobs", "ls", "--url", "sqlite:///x.db"], ("shop",)) == (
        ["jobs", "ls", "--url", "sqlite:///x.db"],
        False,
    )
    assert hivemind_arguments(["worker", "other.module:hive", "--allow", "other"], ()) == (
        ["worker", "other.module:hive", "--allow", "other"],
        False,
    )
    assert APP.endswith(":create_hive")
