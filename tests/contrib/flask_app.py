"""A Flask application of the tests: ``flask --app tests.contrib.flask_app`` in a worker process.

Its database is ``HIVEMIND_URL`` (the extension's default)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from hivemind_jobs.contrib.flask import HiveMindFlask
from tests.contrib.web_jobs import greet

hivemind = HiveMindFlask()


def create_app(config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    app.config.update(config or {})
    hivemind.init_app(app)

    @app.post("/greet/<name>")
    def create_greeting(name: str) -> dict[str, int]:
        return {"job_id": hivemind.jobs.create(greet, name)}

    return app
