"""The web dashboard: an ASGI app over every environment of a HiveMind (extra ``[dashboard]``).

``hive.dashboard(authorize=is_admin)`` returns it; mount it in a Starlette, FastAPI or Litestar
app (``app.mount("/jobs", hive.dashboard(authorize=is_admin))``) or run it with ``hivemind
dashboard module:hive``. Pages are rendered on the server (Jinja2) and refreshed in place with
htmx; every script and stylesheet is served from the package itself.
"""

from __future__ import annotations

from hivemind_jobs.dashboard.app import Authorize, create_dashboard

__all__ = ["Authorize", "create_dashboard"]
