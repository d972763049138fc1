"""The web application: views that create jobs, and their status.

``flask --app app run`` serves it; ``flask --app app hivemind worker`` runs its jobs.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, abort, request
from tasks import make_report, send_welcome_email

import hivemind_jobs as hm
from hivemind_jobs.contrib.flask import HiveMindFlask

hivemind = HiveMindFlask()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    # HIVEMIND_URL: by default the variable of that name when set, else hivemind.db in the app's
    # instance folder. The worker may run the jobs of tasks.py:
    app.config["HIVEMIND_ALLOW"] = ["tasks"]
    app.config.update(config or {})
    hivemind.init_app(app)

    @app.post("/welcome")
    def welcome() -> dict[str, int]:
        address = request.args.get("address") or abort(400, "give ?address=")
        return {"job_id": hivemind.jobs.create(send_welcome_email, address)}

    @app.post("/reports")
    def report() -> dict[str, int]:
        title = request.args.get("title", "daily")
        return {"job_id": hivemind.jobs.create(make_report, title, rows=int(request.args.get("rows", 10)))}

    @app.get("/jobs/<int:job_id>")
    def job_status(job_id: int) -> dict[str, object]:
        job = hivemind.jobs.try_get(job_id)
        if job is None:
            abort(404, f"no job {job_id}")
        result = hivemind.jobs.wait(job_id) if isinstance(job.state, hm.Succeeded) else None
        return {"job_id": job_id, "state": job.state.state_name, "result": result}

    return app


app = create_app()
