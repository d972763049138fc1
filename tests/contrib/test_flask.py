"""Flask: the extension's settings and hive, views creating jobs, and ``flask hivemind``."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

import hivemind_jobs as hm
from hivemind_jobs.contrib.flask import HiveMindFlask
from tests.contrib import flask_app
from tests.contrib.support import FAST, flask_command, job_state, wait_for
from tests.contrib.web_jobs import greet


@pytest.fixture
def app(sqlite_url: str) -> Iterator[Flask]:
    app = flask_app.create_app({"HIVEMIND_URL": sqlite_url})
    yield app
    flask_app.hivemind.close(app)


def test_a_view_creates_a_job_through_the_apps_hive(app: Flask, sqlite_url: str) -> None:
    response = app.test_client().post("/greet/ada")
    assert response.status_code == 200, response.text
    job_id = response.json["job_id"]
    with app.app_context():
        assert flask_app.hivemind.jobs.get(job_id).state.state_name == "Enqueued"
    assert app.extensions["hivemind"] is flask_app.hivemind
    assert job_state(sqlite_url, job_id).invocation.arguments == {"name": "ada"}


def test_the_hive_is_opened_once_per_process_and_closed_on_demand(app: Flask) -> None:
    extension = flask_app.hivemind
    with app.app_context():
        first = extension.hive
        assert extension.hive is first
        assert extension.get_hive(app) is first
    extension.close(app)
    with pytest.raises(hm.HiveMindError):
        first.jobs.count()
    reopened = extension.get_hive(app)
    assert reopened is not first
    assert reopened.jobs.count() == 0


def test_a_forked_process_opens_a_hive_of_its_own(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    extension = flask_app.hivemind
    parent = extension.get_hive(app)
    monkeypatch.setattr(os, "getpid", lambda: -1)
    try:
        child = extension.get_hive(app)
        assert child is not parent
        assert child.jobs.create(greet, "child") == 1
    finally:
        parent.close()


def test_settings_default_to_the_instance_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HIVEMIND_URL", "HIVEMIND_ENV", "HIVEMIND_PREFIX"):
        monkeypatch.delenv(name, raising=False)
    app = Flask("tests.contrib.some_app", instance_path=str(tmp_path / "instance"))
    extension = HiveMindFlask(app)
    assert app.config["HIVEMIND_URL"] == f"sqlite:///{tmp_path / 'instance' / 'hivemind.db'}"
    assert app.config["HIVEMIND_ENVIRONMENT"] == "main"
    assert extension.allowed_modules() == ["tests"]
    try:
        assert extension.jobs.create(greet, "default") == 1  # no app context: the extension's own app
    finally:
        extension.close()
    assert (tmp_path / "instance" / "hivemind.db").is_file()
    with pytest.raises(hm.ConfigurationError, match="already has a HiveMind extension"):
        extension.init_app(app)


def test_environment_and_table_prefix_come_from_the_config(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    app = flask_app.create_app(
        {
            "HIVEMIND_URL": url,
            "HIVEMIND_ENVIRONMENT": "billing",
            "HIVEMIND_TABLE_PREFIX": "bill_",
            "HIVEMIND_ALLOW": "a b",
        }
    )
    hive = flask_app.hivemind.make_hive(app)
    assert hive.default_environment == "billing"
    assert hive.env().info.table_prefix == "bill_"
    assert flask_app.hivemind.allowed_modules(app) == ["a", "b"]


def test_without_an_application_the_extension_says_how_to_get_one() -> None:
    with pytest.raises(RuntimeError, match="app context"):
        HiveMindFlask().jobs  # noqa: B018 - the property is the call under test


def test_flask_hivemind_worker_runs_the_job_a_view_created(app: Flask, sqlite_url: str) -> None:
    job_id = app.test_client().post("/greet/worker").json["job_id"]
    result = app.test_cli_runner().invoke(args=["hivemind", "worker", "--burst", "--drones", "1", *FAST])
    assert result.exit_code == 0, result.output
    assert "colony stopped after 1 job" in result.output
    job = job_state(sqlite_url, job_id)
    assert isinstance(job.state, hm.Succeeded) and job.state.result == "hello worker"


def test_flask_hivemind_jobs_reads_the_apps_database(app: Flask) -> None:
    client = app.test_client()
    ids = [client.post(f"/greet/{name}").json["job_id"] for name in ("a", "b")]
    result = app.test_cli_runner().invoke(args=["hivemind", "jobs", "ls", "--json"])
    assert result.exit_code == 0, result.output
    assert sorted(job["id"] for job in json.loads(result.output)["jobs"]) == ids
    counted = app.test_cli_runner().invoke(args=["hivemind", "jobs", "count", "--json"])
    assert json.loads(counted.output) == {"count": 2}


def test_flask_hivemind_worker_with_processes_stops_gracefully(app: Flask, sqlite_url: str, tmp_path: Path) -> None:
    job_id = app.test_client().post("/greet/processes").json["job_id"]
    worker = flask_command(
        ["--app", "tests.contrib.flask_app", "hivemind", "worker", "--processes", "2", "--drones", "1", *FAST],
        tmp_path / "worker.log",
        env={"HIVEMIND_URL": sqlite_url},
    )
    try:
        wait_for(
            lambda: isinstance(job_state(sqlite_url, job_id).state, hm.Succeeded),
            f"job {job_id} succeeded",
            output=worker.output,
        )
        # both colonies loaded the app (in their own processes) and run before they are stopped
        wait_for(lambda: worker.output().count(" running 1 drone") == 2, "two colonies running", output=worker.output)
    finally:
        status = worker.stop()
    assert status == 0, worker.output()
    assert worker.output().count("colony stopped after") == 2
