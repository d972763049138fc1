"""The example projects (examples/fastapi_app, examples/flask_app) on a SQLite file of their own:
a job created through a route flows through to Succeeded, as their READMEs say."""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
from fastapi.testclient import TestClient

from tests.contrib.support import FAST, REPO, hivemind_worker, wait_for

EXAMPLES = REPO / "examples"


@contextlib.contextmanager
def _example(directory: Path, modules: tuple[str, ...], monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """The example's ``app`` module, imported as its README runs it (from its own directory); its
    top-level modules (``app``, ``jobs``...) are forgotten before and after (the other example has
    modules of the same names)."""
    monkeypatch.syspath_prepend(str(directory))
    for name in modules:
        sys.modules.pop(name, None)
    try:
        yield importlib.import_module("app")
    finally:
        for name in modules:
            sys.modules.pop(name, None)


@pytest.fixture
def url(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("HIVEMIND_URL", sqlite_url)
    return sqlite_url


@pytest.fixture
def fastapi_example(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with _example(EXAMPLES / "fastapi_app", ("app", "jobs"), monkeypatch) as module:
        yield module


@pytest.fixture
def flask_example(url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    with _example(EXAMPLES / "flask_app", ("app", "tasks"), monkeypatch) as module:
        yield module
        module.hivemind.close(module.app)


def _succeeded(client: TestClient, job_id: int) -> bool:
    return bool(client.get(f"/jobs/{job_id}").json()["state"] == "Succeeded")


def test_the_fastapi_example_with_its_worker(fastapi_example: ModuleType, url: str, tmp_path: Path) -> None:
    assert url == sys.modules["jobs"].URL
    with TestClient(fastapi_example.app) as client:
        job_id = client.post("/welcome", params={"address": "ada@example.com"}).json()["job_id"]
        assert client.get(f"/jobs/{job_id}").json()["state"] == "Enqueued"
        # the README's command, run in the example's directory
        worker = hivemind_worker(["jobs:hive", *FAST], tmp_path / "worker.log", cwd=EXAMPLES / "fastapi_app", env={})
        try:
            wait_for(lambda: _succeeded(client, job_id), f"job {job_id} succeeded", output=worker.output)
        finally:
            status = worker.stop()
        assert client.get(f"/jobs/{job_id}").json()["result"] == "welcome mail sent to ada@example.com"
    assert status == 0, worker.output()


def test_the_fastapi_example_with_its_in_process_colony(fastapi_example: ModuleType) -> None:
    with TestClient(fastapi_example.app_with_colony) as client:
        job_id = client.post("/thumbnails", params={"image": "cat.png", "size": 64}).json()["job_id"]
        wait_for(lambda: _succeeded(client, job_id), f"job {job_id} succeeded")
        assert client.get(f"/jobs/{job_id}").json() == {
            "job_id": job_id,
            "state": "Succeeded",
            "result": "cat.png@64px",
        }
        assert client.get("/jobs/999").status_code == 404


def test_the_flask_example_with_its_worker(flask_example: ModuleType) -> None:
    app = flask_example.app
    client = app.test_client()
    welcome = client.post("/welcome?address=ada@example.com").json["job_id"]
    report = client.post("/reports?title=weekly&rows=3").json["job_id"]
    assert client.get(f"/jobs/{welcome}").json["state"] == "Enqueued"
    result = app.test_cli_runner().invoke(args=["hivemind", "worker", "--burst", *FAST])
    assert result.exit_code == 0, result.output
    assert "colony stopped after 2 jobs" in result.output
    assert client.get(f"/jobs/{welcome}").json["result"] == "welcome mail sent to ada@example.com"
    assert client.get(f"/jobs/{report}").json["result"] == {"title": "weekly", "rows": 3}
    assert client.post("/welcome").status_code == 400
