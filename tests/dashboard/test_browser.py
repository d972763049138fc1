"""The dashboard in a real browser (Debian's chromium through Playwright), served by uvicorn over
SQLite, with a real colony where the test needs jobs to run.

Run with ``HIVEMIND_SCREENSHOTS=docs/images`` to refresh the README's screenshots.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

import hivemind_jobs as hm
from tests.dashboard.conftest import LiveDashboard, screenshot

pytestmark = pytest.mark.browser

WAIT_MS = 15_000  # pages refresh every 5 s


async def succeed(label: str) -> str:
    return f"done {label}"


async def nap(seconds: float) -> None:
    """Runs until cancelled (or ``seconds`` pass): a busy drone to look at and to cancel."""
    await asyncio.sleep(seconds)


def fail_once(label: str) -> None:
    raise ValueError(f"the printer is on fire ({label})")


@contextmanager
def running_colony(live: LiveDashboard) -> Iterator[hm.Colony]:
    options = hm.ColonyOptions(
        poll_interval=timedelta(milliseconds=50),
        state_sync_interval=timedelta(milliseconds=200),
        graceful_stop=timedelta(seconds=1),
    )
    colony = live.hive.colony(name="browser", allow=hm.AllowList(modules=[__name__]), options=options)
    colony.swarm("main", drones=2, queues=["global"])

    async def start() -> None:
        await colony.__aenter__()

    async def stop() -> None:
        await colony.__aexit__(None, None, None)

    live.run(start)
    try:
        yield colony
    finally:
        live.run(stop)


def wait_for_state(live: LiveDashboard, job_id: int, name: str, seconds: float = 15) -> None:
    async def poll() -> None:
        for _ in range(int(seconds * 20)):
            if (await live.hive.jobs.get(job_id)).state.name == name:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"job {job_id} did not reach {name}")

    live.run(poll, timeout=seconds + 5)


def rows(page: Any) -> list[int]:
    return [int(text.lstrip("#")) for text in page.locator("table.jobs tbody td:nth-child(2) a").all_inner_texts()]


def test_overview_chart_and_counts(live: LiveDashboard, page: Any) -> None:
    async def seed() -> None:
        jobs = live.hive.jobs
        for label in ("a", "b", "c"):
            await jobs.create(succeed, label)
        failed = await jobs.options(queue="mail").create(fail_once, "x")
        await jobs.change_state(failed, hm.Failed.from_exception(ValueError("the printer is on fire")))

    live.run(seed)
    page.goto(live.base + "/")
    assert page.locator("table.counts").inner_text().split() == ["Enqueued", "3", "Failed", "1"]
    page.wait_for_selector("#throughput canvas", timeout=WAIT_MS)  # uPlot drew under the page's CSP
    assert page.locator("#throughput").get_attribute("data-points") == "60"
    page.click("button[data-range=day]")
    # waits through selectors: a string of JavaScript would be evaluated in the page, which its CSP forbids
    page.wait_for_selector("#throughput[data-points='96']", timeout=WAIT_MS)
    assert "the printer is on fire" in page.locator("body").inner_text()
    screenshot(page, "overview")


def test_filter_by_property_and_page(live: LiveDashboard, page: Any) -> None:
    async def seed() -> list[int]:
        jobs = live.hive.jobs
        await jobs.options(properties={"tenant": "other"}).create_many([hm.call(succeed, "o") for _ in range(5)])
        return await jobs.options(properties={"tenant": "acme", "amount": 7}).create_many(
            [hm.call(succeed, str(n)) for n in range(60)]
        )

    acme = live.run(seed)
    page.goto(live.base + "/jobs")
    assert len(rows(page)) == 50
    page.fill("input[name=property]", "tenant=acme")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(re.compile(r".*property=tenant%3Dacme.*"))  # the filter is in the address: bookmarkable
    expect(page.locator("table.jobs tbody tr")).to_have_count(50)
    first = rows(page)
    assert first == sorted(acme, reverse=True)[:50]
    screenshot(page, "jobs")
    page.click("a.next")
    expect(page.locator("table.jobs tbody tr")).to_have_count(10)
    assert rows(page) == sorted(acme, reverse=True)[50:]
    # a typed range works too, and a bad filter says what is wrong
    page.goto(live.base + "/jobs?property=amount%3E%3D8")
    assert rows(page) == []
    page.goto(live.base + "/jobs?property=tenant")
    assert "expected NAME=VALUE" in page.locator("[role=alert]").inner_text()


def test_job_history_logs_and_requeue_until_it_succeeds(live: LiveDashboard, page: Any) -> None:
    async def seed() -> int:
        jobs = live.hive.jobs
        job_id = await jobs.create(succeed, "again")
        await jobs.add_log(job_id, "tried the printer", logger="app.print")
        await jobs.add_log(job_id, "paper jam", logger="app.print", level=40)
        await jobs.change_state(job_id, hm.Failed.from_exception(ValueError("the printer is on fire")))
        return job_id

    job_id = live.run(seed)
    page.goto(live.base + "/jobs?state=Failed")
    page.click(f"text=#{job_id}")
    page.wait_for_url(re.compile(rf".*/jobs/{job_id}$"))
    history = page.locator("ol.timeline").inner_text()
    assert [name for name in ("Created", "Enqueued", "Failed") if name in history] == ["Created", "Enqueued", "Failed"]
    logs = page.locator("table.logs").inner_text()
    assert "tried the printer" in logs and "paper jam" in logs
    screenshot(page, "job")
    page.select_option("select[name=level]", "error")
    page.click("text=Show")
    page.wait_for_url(re.compile(r".*level=error.*"))
    assert "tried the printer" not in page.locator("table.logs").inner_text()

    page.click("button:has-text('Requeue')")
    assert f"job {job_id} requeued" in page.locator("[role=status]").inner_text()
    with running_colony(live):
        wait_for_state(live, job_id, "Succeeded")
        # the page refreshes itself: no reload
        page.wait_for_selector(".summary .state.succeeded", timeout=WAIT_MS)


def test_cancel_a_running_job_and_watch_the_drone(live: LiveDashboard, page: Any) -> None:
    with running_colony(live):
        page.goto(live.base + "/colonies")
        assert "browser" in page.locator("main").inner_text()
        assert page.locator("li.drone.busy").count() == 0
        job_id = live.run(lambda: live.hive.jobs.create(nap, 60))
        page.wait_for_selector(f"li.drone.busy a:has-text('job #{job_id}')", timeout=WAIT_MS)
        screenshot(page, "colonies")
        page.click(f"li.drone.busy a:has-text('job #{job_id}')")
        page.wait_for_selector(".summary .state.executing", timeout=WAIT_MS)
        page.click("button:has-text('Cancel')")
        assert (
            "asked to stop" in page.locator("[role=status]").inner_text()
            or "requested" in page.locator("[role=status]").inner_text()
        )
        wait_for_state(live, job_id, "Idle")
        page.wait_for_selector(".summary .state.idle", timeout=WAIT_MS)


def test_trigger_a_recurring_job(live: LiveDashboard, page: Any) -> None:
    live.run(lambda: live.hive.recurring.create_or_update("nightly-report", hm.cron("0 3 * * *"), succeed, "nightly"))
    page.goto(live.base + "/recurring")
    assert "at 03:00" in page.locator("table").inner_text() or "03:00" in page.locator("table").inner_text()
    screenshot(page, "recurring")
    page.click("text=nightly-report")
    assert len(page.locator("ol li").all_inner_texts()) == 5  # the next runs
    page.click("button:has-text('Trigger now')")
    flash = page.locator("[role=status]").inner_text()
    match = re.search(r"triggered: job (\d+)", flash)
    assert match, flash
    job_id = int(match.group(1))
    with running_colony(live):
        wait_for_state(live, job_id, "Succeeded")
    page.goto(live.base + f"/jobs/{job_id}")
    assert "Succeeded" in page.locator(".summary").inner_text()


def test_queues_page_pauses_a_queue(live: LiveDashboard, page: Any) -> None:
    live.run(lambda: live.hive.jobs.options(queue="mail").create(succeed, "m"))
    page.goto(live.base + "/queues")
    page.click("tr:has-text('mail') button:has-text('Pause')")
    assert "queue mail paused" in page.locator("[role=status]").inner_text()
    assert live.run(lambda: live.hive.queues.is_paused("mail"))
    screenshot(page, "queues")


def test_read_only_shows_no_action(live_read_only: LiveDashboard, page: Any) -> None:
    live = live_read_only
    job_id = live.run(lambda: live.hive.jobs.create(succeed, "r"))
    live.run(lambda: live.hive.recurring.create_or_update("hourly", hm.cron("0 * * * *"), succeed, "h"))
    for path in ("/", "/jobs", f"/jobs/{job_id}", "/recurring", "/recurring/hourly", "/queues", "/colonies"):
        page.goto(live.base + path)
        assert page.locator("form[method=post]").count() == 0, path
        assert page.locator("input[type=checkbox]").count() == 0, path
        assert "read-only" in page.locator("header").inner_text()
