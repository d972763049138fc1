"""The web application: routes that create jobs, and their status.

``uvicorn app:app`` serves it; the jobs run in a worker started next to it (``hivemind worker jobs:hive``).
``uvicorn app:app_with_colony`` runs them in the web process itself instead (small deployments).
"""

from __future__ import annotations

from fastapi import FastAPI, HTTPException
from jobs import hive, make_thumbnail, send_welcome_email

import hivemind_jobs as hm
from hivemind_jobs.contrib import fastapi as hm_fastapi


def in_process_colony(hive: hm.HiveMind) -> hm.Colony:
    """The colony ``app_with_colony`` runs while it serves: two drones, the jobs of ``jobs.py``."""
    colony = hive.colony(name="web", allow=hm.AllowList(modules=["jobs"]))
    colony.swarm("main", drones=2)
    return colony


def create_app(*, colony: bool = False) -> FastAPI:
    lifespan = hm_fastapi.lifespan(hive, colony=in_process_colony if colony else None)
    app = FastAPI(title="HiveMind example", lifespan=lifespan)

    @app.post("/welcome")
    async def welcome(address: str, jobs: hm_fastapi.Jobs) -> dict[str, int]:
        return {"job_id": await jobs.create(send_welcome_email, address)}

    @app.post("/thumbnails")
    async def thumbnail(image: str, jobs: hm_fastapi.Jobs, size: int = 128) -> dict[str, int]:
        return {"job_id": await jobs.create(make_thumbnail, image, size)}

    @app.get("/jobs/{job_id}")
    async def job_status(job_id: int, jobs: hm_fastapi.Jobs) -> dict[str, object]:
        job = await jobs.try_get(job_id)
        if job is None:
            raise HTTPException(status_code=404, detail=f"no job {job_id}")
        result = await jobs.wait(job_id) if isinstance(job.state, hm.Succeeded) else None
        return {"job_id": job_id, "state": job.state.state_name, "result": result}

    return app


app = create_app()
app_with_colony = create_app(colony=True)
