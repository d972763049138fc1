"""FastAPI: the hive's lifespan, the dependencies, a worker process and an in-process colony."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.requests import HTTPConnection

import hivemind_jobs as hm
from hivemind_jobs.contrib import fastapi as hm_fastapi
from tests.contrib.support import FAST, hivemind_worker, job_state, wait_for
from tests.contrib.web_jobs import greet


def _app(lifespan: Any = None) -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.post("/greet/{name}")
    async def create_greeting(name: str, jobs: hm_fastapi.Jobs) -> dict[str, int]:
        return {"job_id": await jobs.create(greet, name)}

    @app.get("/jobs/{job_id}")
    async def read_job(job_id: int, hive: hm_fastapi.Hive) -> dict[str, Any]:
        job = await hive.jobs.get(job_id)
        result = job.state.result if isinstance(job.state, hm.Succeeded) else None
        return {"state": job.state.state_name, "result": result}

    return app


def test_the_hives_lifespan_opens_it_and_closes_it(sqlite_url: str) -> None:
    hive = hm.HiveMind(sqlite_url)
    app = _app(hive.lifespan)
    with TestClient(app) as client:
        assert app.state.hive is hive
        response = client.post("/greet/ada")
        assert response.status_code == 200, response.text
        job_id = response.json()["job_id"]
        assert client.get(f"/jobs/{job_id}").json() == {"state": "Enqueued", "result": None}
    assert not hasattr(app.state, "hive")
    with pytest.raises(hm.HiveMindError, match="not open"):
        asyncio.run(hive.jobs.get(job_id))
    assert job_state(sqlite_url, job_id).invocation.arguments == {"name": "ada"}


def test_the_contrib_lifespan_composes_the_applications_own(sqlite_url: str) -> None:
    hive = hm.HiveMind(sqlite_url)
    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        # the hive is already open: the application's startup may create jobs
        seen.append(f"startup job {await hive.jobs.create(greet, 'startup')}")
        yield {"greeting": "hi"}
        seen.append("shutdown")

    app = _app(hm_fastapi.lifespan(hive, own))

    @app.get("/state")
    async def state(hive_given: hm_fastapi.Hive, request: HTTPConnection) -> dict[str, Any]:
        return {"same_hive": hive_given is hive, "greeting": request.state.greeting}

    with TestClient(app) as client:
        assert client.get("/state").json() == {"same_hive": True, "greeting": "hi"}
        assert client.post("/greet/bob").json() == {"job_id": 2}
        assert seen == ["startup job 1"]
    assert seen == ["startup job 1", "shutdown"]
    assert job_state(sqlite_url, 2).invocation.arguments == {"name": "bob"}


def test_without_the_lifespan_a_handler_gets_a_clear_error(sqlite_url: str) -> None:
    app = _app()
    with TestClient(app) as client, pytest.raises(hm.ConfigurationError, match=r"FastAPI\(lifespan=hive.lifespan\)"):
        client.post("/greet/nobody")


def test_a_hive_the_application_opened_itself_is_found_on_its_state(sqlite_url: str) -> None:
    @contextlib.asynccontextmanager
    async def own(app: FastAPI) -> AsyncIterator[None]:
        async with hm.HiveMind(sqlite_url) as hive:
            app.state.hive = hive
            yield

    with TestClient(_app(own)) as client:
        assert client.post("/greet/eve").json() == {"job_id": 1}
    assert job_state(sqlite_url, 1).invocation.arguments == {"name": "eve"}


def test_a_worker_process_runs_the_job_a_route_created(sqlite_url: str, tmp_path: Path) -> None:
    hive = hm.HiveMind(sqlite_url)
    with TestClient(_app(hive.lifespan)) as client:
        job_id = client.post("/greet/worker").json()["job_id"]
        worker = hivemind_worker(
            ["hivemind_jobs:HiveMind.from_env", "--allow", "tests.contrib", "--drones", "1", *FAST],
            tmp_path / "worker.log",
            env={"HIVEMIND_URL": sqlite_url},
        )
        try:
            wait_for(
                lambda: client.get(f"/jobs/{job_id}").json()["state"] == "Succeeded",
                f"job {job_id} succeeded",
                output=worker.output,
            )
            assert client.get(f"/jobs/{job_id}").json() == {"state": "Succeeded", "result": "hello worker"}
        finally:
            status = worker.stop()
    assert status == 0, worker.output()
    assert "colony stopped after 1 job" in worker.output()


def _colony(hive: hm.HiveMind) -> hm.Colony:
    colony = hive.colony(name="web", allow=hm.AllowList(modules=["tests.contrib"]))
    colony.swarm("main", drones=1)
    return colony


def test_an_in_process_colony_runs_jobs_while_the_app_serves(sqlite_url: str) -> None:
    hive = hm.HiveMind(sqlite_url)
    app = _app(hm_fastapi.lifespan(hive, colony=_colony))
    colonies: list[hm.Colony] = []

    @app.get("/colony")
    async def colony(request: HTTPConnection) -> dict[str, str]:
        colonies.append(request.state.colony)
        return {"status": request.state.colony.status}

    with TestClient(app) as client:
        assert client.get("/colony").json() == {"status": "running"}
        job_id = client.post("/greet/colony").json()["job_id"]
        wait_for(lambda: client.get(f"/jobs/{job_id}").json()["state"] == "Succeeded", f"job {job_id} succeeded")
        assert client.get(f"/jobs/{job_id}").json()["result"] == "hello colony"
    assert colonies[0].status == "stopped"
    assert colonies[0].processed == 1


def test_an_in_process_colony_must_belong_to_the_lifespans_hive(sqlite_url: str, tmp_path: Path) -> None:
    hive = hm.HiveMind(sqlite_url)
    other = hm.HiveMind(f"sqlite:///{tmp_path / 'other.db'}")
    app = _app(hm_fastapi.lifespan(hive, colony=_colony(other)))
    with pytest.raises(hm.ConfigurationError, match="the lifespan's own hive"), TestClient(app):
        pytest.fail("the application started")
    assert not hasattr(app.state, "hive")
