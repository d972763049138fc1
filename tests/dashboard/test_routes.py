"""The dashboard's pages, filters, actions and safeguards, over HTTP on SQLite, PostgreSQL and MariaDB.

The app is driven in-process through httpx's ASGI transport, on the test's own event loop, with
the hive opened there (as an application's lifespan would open it).
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import urlencode

import httpx
import pytest
import pytest_asyncio

import hivemind_jobs as hm
from hivemind_jobs.errors import ConfigurationError
from tests import sample_jobs

HOSTILE = "<script>alert(1)</script>\"'><img src=x onerror=alert(2)>\u202e\u0007"


def client_for(app: object) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")  # type: ignore[arg-type]


@pytest_asyncio.fixture
async def dash(hive: hm.HiveMind) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(hive.dashboard(authorize=lambda request: True)) as client:
        yield client


async def token(client: httpx.AsyncClient) -> str:
    """The CSRF token of the client's cookie (set by its first page)."""
    await client.get("/")
    value = client.cookies.get("hivemind_csrf")
    assert value
    return value


async def states(hive: hm.HiveMind, ids: list[int]) -> set[str]:
    return {(await hive.jobs.get(job_id)).state.name for job_id in ids}


def ids_on(page: str) -> list[int]:
    """The job ids listed in a jobs table, in order."""
    return [int(number) for number in re.findall(r'name="ids" value="(\d+)"', page)]


# ----------------------------------------------------------------------------- pages


async def test_every_page_renders_the_environment(hive: hm.HiveMind, dash: httpx.AsyncClient) -> None:
    jobs = hive.jobs
    failed = await jobs.options(queue="mail", properties={"tenant": "acme"}).create(sample_jobs.hello_world, "x")
    await jobs.change_state(failed, hm.Failed.from_exception(ValueError("printer on fire")))
    await jobs.add_log(failed, "first try", logger="app.mail")
    await jobs.set_data(failed, "report", {"pages": 3})
    waiting = await jobs.options(queue="reports", priority="high").create(sample_jobs.add, 1, 2)
    await hive.recurring.create_or_update("nightly", hm.cron("0 3 * * *"), sample_jobs.do_stuff)

    overview = await dash.get("/")
    assert overview.status_code == 200
    assert "Failed" in overview.text and "printer on fire" in overview.text
    assert re.search(r'href="/jobs\?queue=reports&amp;state=Enqueued">reports</a>', overview.text)

    listing = (await dash.get("/jobs")).text
    assert ids_on(listing) == [waiting, failed]
    assert "tests.sample_jobs:hello_world" in listing

    detail = (await dash.get(f"/jobs/{failed}")).text
    for expected in ("printer on fire", "first try", "app.mail", "report", "pages", "tenant"):
        assert expected in detail, expected
    assert re.findall(r'<span class="state \w+">(\w+)</span>', detail)[:3] == [
        "Created",
        "Enqueued",
        "Failed",
    ]
    errors_only = (await dash.get(f"/jobs/{failed}?level=error")).text
    assert "first try" not in errors_only

    recurring = (await dash.get("/recurring")).text
    assert "nightly" in recurring and "tests.sample_jobs:do_stuff" in recurring
    nightly = (await dash.get("/recurring/nightly")).text
    assert "Next runs" in nightly and nightly.count("<li>") >= 5
    assert (await dash.get("/colonies")).status_code == 200
    queues = (await dash.get("/queues")).text
    assert "reports" in queues

    chart = (await dash.get("/throughput?range=hour")).json()
    assert len(chart["times"]) == len(chart["succeeded"]) == len(chart["failed"]) == 60
    # the minute may turn between the failure and the request: its bucket is then the one before the last
    assert sum(chart["failed"]) == 1 and 1 in chart["failed"][-2:] and sum(chart["succeeded"]) == 0
    day = (await dash.get("/throughput?range=day")).json()
    assert len(day["times"]) == 96 and day["bucket_seconds"] == 900
    assert (await dash.get("/throughput?range=year")).status_code == 400

    metrics = await dash.get("/metrics")
    assert metrics.status_code == 200
    assert 'hivemind_queue_depth{environment="main",queue="reports",state="ready"} 1.0' in metrics.text

    assert (await dash.get("/jobs/999999")).status_code == 404
    assert (await dash.get("/recurring/nothing")).status_code == 404
    assert (await dash.get("/jobs/abc")).status_code == 400


async def test_job_filters_and_keyset_pages(hive: hm.HiveMind, dash: httpx.AsyncClient) -> None:
    jobs = hive.jobs
    many = await jobs.options(queue="bulk", properties={"tenant": "acme"}).create_many(
        [hm.call(sample_jobs.add, n, n) for n in range(120)]
    )
    other = await jobs.options(queue="mail", priority="critical", properties={"amount": 42}).create(
        sample_jobs.hello_world, "a"
    )
    assert ids_on((await dash.get("/jobs", params={"function": "tests.sample_jobs:hello_world"})).text) == [other]
    assert ids_on((await dash.get("/jobs", params={"function": "*:hello*"})).text) == [other]
    assert ids_on((await dash.get("/jobs", params={"priority": "critical"})).text) == [other]
    assert ids_on((await dash.get("/jobs", params={"property": "amount>=40"})).text) == [other]
    assert ids_on((await dash.get("/jobs", params={"property": "amount<40"})).text) == []
    assert ids_on((await dash.get("/jobs", params={"property": "amount=42"})).text) == [other]
    assert ids_on((await dash.get("/jobs", params={"property": 'amount="42"'})).text) == []  # typed: text != int
    assert ids_on((await dash.get("/jobs", params={"queue": "ma*", "since": "1h"})).text) == [other]
    assert ids_on((await dash.get("/jobs", params={"until": "1h"})).text) == []
    assert ids_on((await dash.get("/jobs", params={"modified_until": "1h"})).text) == []
    await jobs.change_state(other, hm.Failed.from_exception(ValueError("x")))
    changed = (await jobs.get(other)).modified_at
    assert changed is not None
    since = {"modified_since": changed.isoformat(), "state": "Failed"}
    assert ids_on((await dash.get("/jobs", params=since)).text) == [other]

    # keyset pages of 50 through the tenant's 120 jobs: no job twice, none left out
    seen: list[int] = []
    response = await dash.get("/jobs", params={"property": "tenant=acme", "order": "id"})
    for _ in range(5):
        page = response.text
        seen.extend(ids_on(page))
        found = re.search(r'class="next" rel="next" href="([^"]+)"', page)
        if found is None:
            break
        response = await dash.get(found.group(1).replace("&amp;", "&"))
    assert seen == many

    # an htmx request for the table gets the table alone
    partial = await dash.get("/jobs", params={"queue": "mail"}, headers={"HX-Request": "true", "HX-Target": "content"})
    assert "<html" not in partial.text and ids_on(partial.text) == [other]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"queue": "a b"}, "invalid queue name"),
        ({"property": "tenant"}, "expected NAME=VALUE"),
        ({"property": "due=2024-05-01T10:00"}, "needs a UTC offset"),
        ({"priority": "urgent"}, "priority"),
        ({"since": "3 days"}, "expected a duration"),
        ({"modified_since": "2024-05-01T10:00"}, "needs a UTC offset"),
        ({"state": "9lives"}, "invalid state name"),
        ({"order": "colour"}, "use id, created or modified"),
        ({"after": "garbage"}, "after:"),
        ({"function": "a*\\"}, "lone backslash"),
    ],
)
async def test_bad_filters_say_what_is_wrong(
    hive: hm.HiveMind, dash: httpx.AsyncClient, params: dict[str, str], message: str
) -> None:
    await hive.jobs.create(sample_jobs.do_stuff)
    response = await dash.get("/jobs", params=params)
    assert response.status_code == 400
    assert message in response.text
    assert ids_on(response.text) == []


# ----------------------------------------------------------------------------- actions


async def test_job_actions(hive: hm.HiveMind, dash: httpx.AsyncClient) -> None:
    jobs = hive.jobs
    csrf = await token(dash)
    failed = await jobs.create(sample_jobs.hello_world, "x")
    await jobs.change_state(failed, hm.Failed.from_exception(ValueError("boom")))
    response = await dash.post(f"/jobs/{failed}/requeue", data={"csrf_token": csrf})
    assert response.status_code == 303 and response.headers["location"].startswith(f"/jobs/{failed}?done=")
    assert isinstance((await jobs.get(failed)).state, hm.Enqueued)
    shown = await dash.get(response.headers["location"])
    assert f"job {failed} requeued" in shown.text

    response = await dash.post(f"/jobs/{failed}/priority", data={"csrf_token": csrf, "priority": "critical"})
    assert response.status_code == 303
    assert (await jobs.get(failed)).priority is hm.Priority.CRITICAL
    refused = await dash.post(f"/jobs/{failed}/priority", data={"csrf_token": csrf, "priority": "asap"})
    assert refused.status_code == 400 and "asap" in refused.text

    assert (await dash.post(f"/jobs/{failed}/cancel", data={"csrf_token": csrf})).status_code == 303
    assert isinstance((await jobs.get(failed)).state, hm.Idle)
    assert (await dash.post(f"/jobs/{failed}/delete", data={"csrf_token": csrf})).status_code == 303
    assert isinstance((await jobs.get(failed)).state, hm.Deleted)
    assert (await dash.post(f"/jobs/{failed}/explode", data={"csrf_token": csrf})).status_code == 400

    await hive.recurring.create_or_update("nightly", hm.cron("0 3 * * *"), sample_jobs.do_stuff)
    triggered = await dash.post("/recurring/nightly/trigger", data={"csrf_token": csrf})
    assert triggered.status_code == 303
    assert (await hive.recurring.get("nightly")).job_id is not None
    assert (await dash.post("/recurring/nightly/pause", data={"csrf_token": csrf})).status_code == 303
    assert (await hive.recurring.get("nightly")).is_paused
    assert (await dash.post("/recurring/nightly/resume", data={"csrf_token": csrf})).status_code == 303
    assert not (await hive.recurring.get("nightly")).is_paused
    assert (await dash.post("/recurring/nightly/delete", data={"csrf_token": csrf})).status_code == 303
    assert await hive.recurring.try_get("nightly") is None

    assert (await dash.post("/queues/mail/pause", data={"csrf_token": csrf})).status_code == 303
    assert await hive.queues.is_paused("mail")
    assert "paused" in (await dash.get("/queues")).text
    assert (await dash.post("/queues/mail/resume", data={"csrf_token": csrf})).status_code == 303
    assert not await hive.queues.is_paused("mail")


async def test_bulk_actions_on_the_selection_and_on_everything_matching(
    hive: hm.HiveMind, dash: httpx.AsyncClient
) -> None:
    jobs = hive.jobs
    csrf = await token(dash)
    mail = await jobs.options(queue="mail").create_many([hm.call(sample_jobs.add, n, n) for n in range(5)])
    keep = await jobs.options(queue="reports").create(sample_jobs.do_stuff)

    selected = await dash.post(
        "/jobs/bulk", data={"csrf_token": csrf, "action": "delete", "scope": "selected", "ids": [str(mail[0])]}
    )
    assert selected.status_code == 303 and "1+job+deleted" in selected.headers["location"]
    assert isinstance((await jobs.get(mail[0])).state, hm.Deleted)

    # everything matching: first the count, nothing changed yet
    ask = {"csrf_token": csrf, "action": "cancel", "scope": "matching", "queue": "mail", "state": "Enqueued"}
    confirm = await dash.post("/jobs/bulk", data=ask)
    assert confirm.status_code == 200 and "Cancel 4 jobs?" in confirm.text
    assert await states(hive, mail[1:]) == {"Enqueued"}
    done = await dash.post("/jobs/bulk", data={**ask, "confirm": "yes"})
    assert done.status_code == 303 and "4+jobs+cancelled" in done.headers["location"]
    assert "queue=mail" in done.headers["location"]  # back to the same filter
    assert await states(hive, mail[1:]) == {"Idle"}
    assert isinstance((await jobs.get(keep)).state, hm.Enqueued)

    requeue = {"csrf_token": csrf, "action": "requeue", "scope": "matching", "state": "Idle", "confirm": "yes"}
    assert (await dash.post("/jobs/bulk", data=requeue)).status_code == 303
    assert await states(hive, mail[1:]) == {"Enqueued"}

    nothing = await dash.post("/jobs/bulk", data={"csrf_token": csrf, "action": "delete", "scope": "selected"})
    assert nothing.status_code == 400 and "no job selected" in nothing.text
    bad = await dash.post("/jobs/bulk", data={"csrf_token": csrf, "action": "delete", "ids": ["x"]})
    assert bad.status_code == 400


# ----------------------------------------------------------------------------- safeguards


async def test_authorization(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(sample_jobs.do_stuff)

    async def only_admins(request: object) -> bool:
        return getattr(request, "headers", {}).get("x-user") == "admin"

    async with client_for(hive.dashboard(authorize=only_admins)) as client:
        assert (await client.get("/")).status_code == 403
        assert (await client.get(f"/jobs/{job_id}")).status_code == 403
        assert (await client.post(f"/jobs/{job_id}/delete")).status_code == 403
        assert (await client.get("/static/app.css")).status_code == 200  # assets are not secret
        client.headers["x-user"] = "admin"
        assert (await client.get("/")).status_code == 200
    assert isinstance((await hive.jobs.get(job_id)).state, hm.Enqueued)


async def test_a_dashboard_needs_authorize_or_read_only(hive: hm.HiveMind) -> None:
    with pytest.raises(ConfigurationError, match="pass authorize="):
        hive.dashboard()
    with pytest.raises(ConfigurationError, match="authorize must be a function"):
        hive.dashboard(authorize="admin")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="title"):
        hive.dashboard(read_only=True, title="")


async def test_posts_need_the_csrf_token_of_the_cookie(hive: hm.HiveMind, dash: httpx.AsyncClient) -> None:
    job_id = await hive.jobs.create(sample_jobs.do_stuff)
    csrf = await token(dash)
    url = f"/jobs/{job_id}/delete"
    assert (await dash.post(url)).status_code == 403
    assert (await dash.post(url, data={"csrf_token": "x" * 43})).status_code == 403
    cross_site = await dash.post(url, data={"csrf_token": csrf}, headers={"Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    other_origin = await dash.post(url, data={"csrf_token": csrf}, headers={"Origin": "https://evil.example"})
    assert other_origin.status_code == 403
    dash.cookies.clear()
    assert (await dash.post(url, data={"csrf_token": csrf})).status_code == 403
    assert isinstance((await hive.jobs.get(job_id)).state, hm.Enqueued)
    # the token may come as a header too (htmx requests)
    dash.cookies.set("hivemind_csrf", csrf)
    assert (await dash.post(url, headers={"X-CSRF-Token": csrf})).status_code == 303
    assert isinstance((await hive.jobs.get(job_id)).state, hm.Deleted)


async def test_read_only_shows_no_action_and_refuses_posts(hive: hm.HiveMind) -> None:
    job_id = await hive.jobs.create(sample_jobs.do_stuff)
    await hive.recurring.create_or_update("nightly", hm.cron("0 3 * * *"), sample_jobs.do_stuff)
    async with client_for(hive.dashboard(read_only=True)) as client:
        for path in ("/", "/jobs", f"/jobs/{job_id}", "/recurring", "/recurring/nightly", "/queues", "/colonies"):
            page = await client.get(path)
            assert page.status_code == 200, path
            assert 'method="post"' not in page.text, path
            assert "read-only" in page.text
        csrf = client.cookies.get("hivemind_csrf")
        refused = await client.post(f"/jobs/{job_id}/delete", data={"csrf_token": csrf})
        assert refused.status_code == 403 and "read-only" in refused.text
        assert (await client.post("/recurring/nightly/trigger", data={"csrf_token": csrf})).status_code == 403
    assert isinstance((await hive.jobs.get(job_id)).state, hm.Enqueued)


async def test_user_data_is_escaped_and_scripts_are_external_only(hive: hm.HiveMind, dash: httpx.AsyncClient) -> None:
    jobs = hive.jobs
    job_id = await jobs.options(properties={"note": HOSTILE}).create(sample_jobs.hello_world, HOSTILE)
    await jobs.add_log(job_id, HOSTILE, logger=HOSTILE, exception=ValueError(HOSTILE))
    await jobs.set_data(job_id, "x", HOSTILE)
    await jobs.change_state(job_id, hm.Failed.from_exception(RuntimeError(HOSTILE), reason=HOSTILE))
    filtered = "/jobs?" + urlencode({"property": f"note={HOSTILE}"})  # the filter is echoed in the form
    for path in ("/", "/jobs", f"/jobs/{job_id}", filtered):
        response = await dash.get(path)
        page = response.text
        assert "<script>alert" not in page and "<img src=x" not in page, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, path
        assert "onerror=alert(2)&gt;" in page or path == "/jobs", path
        # every script is a file of the dashboard; the policy forbids inline ones
        scripts = re.findall(r"<script[^>]*>", page)
        assert scripts and all('src="/static/' in tag for tag in scripts), scripts
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert response.headers["x-frame-options"] == "DENY"


async def test_environments_and_redacted_storage(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/main.db"
    hive = hm.HiveMind(url)
    hive.add_environment("reports", f"sqlite:///{tmp_path}/reports.db")
    async with hive:
        main_job = await hive.jobs.create(sample_jobs.do_stuff)
        report_job = await hive.env("reports").jobs.create(sample_jobs.add, 1, 1)
        async with client_for(hive.dashboard(read_only=True)) as client:
            assert ids_on_rows((await client.get("/jobs")).text) == [main_job]
            other = (await client.get("/jobs?env=reports")).text
            assert ids_on_rows(other) == [report_job]
            assert f'href="/jobs/{report_job}?env=reports"' in other  # links keep the environment
            assert '<option value="reports" selected>' in other
            assert (await client.get("/jobs?env=nowhere")).status_code == 404


def ids_on_rows(page: str) -> list[int]:
    """Job ids of a read-only jobs table (no checkboxes): the links of its first column."""
    return [int(number) for number in re.findall(r'<td><a href="/jobs/(\d+)[^"]*">#\d+</a>', page)]


async def test_the_sync_facade_serves_the_dashboard(db_url: str) -> None:
    from starlette.testclient import TestClient

    def work() -> None:
        with hm.SyncHiveMind(db_url) as hive:
            job_id = hive.jobs.create(sample_jobs.do_stuff)
            with TestClient(hive.dashboard(authorize=lambda request: True)) as client:
                assert ids_on(client.get("/jobs").text) == [job_id]
                csrf = client.cookies.get("hivemind_csrf")
                response = client.post(f"/jobs/{job_id}/cancel", data={"csrf_token": csrf}, follow_redirects=False)
                assert response.status_code == 303
            assert isinstance(hive.jobs.get(job_id).state, hm.Idle)

    import asyncio

    await asyncio.to_thread(work)


@pytest.mark.parametrize("backend_name", ["postgres"], indirect=True)
async def test_no_page_shows_the_storage_password(backend_url: str) -> None:
    secret = "s3cret-Pa55"
    url = backend_url.replace("postgresql://root@", f"postgresql://root:{secret}@", 1)  # trust auth ignores it
    assert secret in url
    async with hm.HiveMind(url) as hive:
        job_id = await hive.jobs.create(sample_jobs.do_stuff)
        async with client_for(hive.dashboard(read_only=True)) as client:
            overview = (await client.get("/")).text
            assert "postgresql://root:***@" in overview
            for path in ("/", "/jobs", f"/jobs/{job_id}", "/queues", "/colonies", "/recurring", "/metrics"):
                assert secret not in (await client.get(path)).text, path


async def test_large_states_are_counted_up_to_a_cap_and_on_demand(
    hive: hm.HiveMind, dash: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hivemind_jobs.dashboard import pages

    monkeypatch.setattr(pages, "COUNT_CAP", 3)
    await hive.jobs.create_many([hm.call(sample_jobs.add, n, n) for n in range(5)])
    failed = await hive.jobs.create(sample_jobs.do_stuff)
    await hive.jobs.change_state(failed, hm.Failed.from_exception(ValueError("x")))
    overview = (await dash.get("/")).text
    assert re.search(r'href="/count\?state=Enqueued"[^>]*>3\+</a>', overview)  # at least 3, counted on demand
    assert re.search(r'state=Failed">Failed</a></td><td class="num">1</td>', overview)
    assert (await dash.get("/count?state=Enqueued")).text == "5"
    assert (await dash.get("/count?state=9lives")).status_code == 400
