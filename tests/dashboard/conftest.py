"""A dashboard served for real (uvicorn on a free port, in a thread with its own event loop, the
hive opened there) and a real browser to drive it: Debian's chromium through Playwright.

Under ``CI=true`` a missing chromium or Playwright fails the browser tests (``scripts/ensure-chromium``
installs chromium); elsewhere they are skipped.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

import hivemind_jobs as hm

T = TypeVar("T")

#: screenshots of the pages go here when HIVEMIND_SCREENSHOTS names a folder (docs/images for the README)
SCREENSHOTS = os.environ.get("HIVEMIND_SCREENSHOTS")


class LiveDashboard:
    """A hive on ``url`` and its dashboard served on 127.0.0.1, run on a loop of their own.

    ``run(factory)`` runs a coroutine on that loop (the hive's storage lives there), from the test.
    """

    def __init__(self, url: str, **dashboard_options: Any) -> None:
        import uvicorn

        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="live-dashboard", daemon=True)
        self.thread.start()
        self.hive = hm.HiveMind(url)
        self.run(self.hive.open)
        app = self.hive.dashboard(**dashboard_options)
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self._serving = asyncio.run_coroutine_threadsafe(self.server.serve(), self.loop)
        self.run(self._started)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.base = f"http://127.0.0.1:{port}"

    async def _started(self) -> None:
        for _ in range(500):
            if self.server.started:
                return
            await asyncio.sleep(0.01)
        raise RuntimeError("the dashboard server did not start")

    def run(self, factory: Callable[[], Coroutine[Any, Any, T]], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(factory(), self.loop).result(timeout)

    def close(self) -> None:
        self.server.should_exit = True
        try:
            self._serving.result(10)
        finally:
            self.run(self.hive.close)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)
            self.loop.close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveDashboard]:
    dashboard = LiveDashboard(f"sqlite:///{tmp_path}/live.db", authorize=lambda request: True)
    try:
        yield dashboard
    finally:
        dashboard.close()


@pytest.fixture
def live_read_only(tmp_path: Path) -> Iterator[LiveDashboard]:
    dashboard = LiveDashboard(f"sqlite:///{tmp_path}/read-only.db", read_only=True)
    try:
        yield dashboard
    finally:
        dashboard.close()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")  # Playwright's sync API holds the thread's event loop: not past the module
def browser() -> Iterator[Any]:
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        executable = None
    if executable is None:
        message = (
            "the browser tests need Debian's chromium and Playwright: run scripts/ensure-chromium and "
            "pip install -e '.[dev]'"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(str(error)))

    def console(message: Any) -> None:  # a page answered 4xx on purpose is checked by its test
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def response(answer: Any) -> None:  # every script, style and chart request must succeed
        if answer.status >= 400 and answer.request.resource_type != "document":
            errors.append(f"{answer.status} for {answer.url}")

    opened.on("console", console)
    opened.on("response", response)
    try:
        yield opened
        assert not errors, f"the page reported errors (a blocked script, a CSP violation...): {errors}"
    finally:
        context.close()


def screenshot(page: Any, name: str) -> None:
    """Save a screenshot of ``page`` as ``<name>.png`` when HIVEMIND_SCREENSHOTS names a folder."""
    if SCREENSHOTS:
        folder = Path(SCREENSHOTS)
        folder.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(folder / f"{name}.png"), full_page=False)
