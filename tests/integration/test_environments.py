"""Several isolated environments in one process, with their own storage and options."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

import hivemind_jobs as hm
from tests import backends
from tests import sample_jobs as jobs

ALLOW = hm.AllowList(modules=["tests.sample_jobs"])


async def test_environments_on_separate_files_and_shared_files(tmp_path: Path) -> None:
    shared = f"sqlite:///{tmp_path / 'shared.db'}"
    hive = hm.HiveMind(f"sqlite:///{tmp_path / 'main.db'}")
    hive.add_environment("TenantA", shared, options=hm.Options(retention=timedelta(days=7)))
    hive.add_environment("TenantB", shared, options=hm.Options(retention=timedelta(days=14)))
    hive.add_environment(
        "Machine", f"sqlite:///{tmp_path / 'machine.db'}", options=hm.Options(retention=timedelta(days=1))
    )
    hive.add_environment("Process", f"sqlite:///{tmp_path / 'process.db'}", options=hm.Options(retention=timedelta(0)))
    async with hive:
        created = {
            name: await hive.env(name).jobs.create(hm.instance(jobs.ConsoleWriterJob).run, f"I'm a job for {name}")
            for name in ("TenantA", "TenantB", "Machine", "Process")
        }
        for name, job_id in created.items():
            job = await hive.env(name).jobs.get(job_id)
            assert job.environment == name
            assert job.invocation.arguments == {"text": f"I'm a job for {name}"}
        assert hive.env("TenantA").options.retention == timedelta(days=7)
        assert hive.env("Process").options.retention == timedelta(0)
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"hm_TenantA_job", "hm_TenantB_job"} <= tables


async def test_one_environment_can_neither_see_nor_change_anothers_jobs(db_url: str) -> None:
    hive = hm.HiveMind(db_url, environment="a")
    hive.add_environment("b", db_url)
    async with hive:
        a, b = hive.env("a").jobs, hive.env("b").jobs
        only_in_a = [await a.create(jobs.do_stuff) for _ in range(3)]
        in_b = await b.options(queue="b-queue").create(jobs.do_stuff)
        assert await b.count_by_state() == {"Enqueued": 1}
        assert await a.count_by_state() == {"Enqueued": 3}
        for job_id in only_in_a:
            seen = await b.try_get(job_id)
            assert seen is None or seen.queue == "b-queue"  # ids may coincide; rows never do
        missing = max(only_in_a)
        assert missing > in_b
        with pytest.raises(hm.JobNotFoundError, match="environment 'b'"):
            await b.change_state(missing, hm.Idle())
        with pytest.raises(hm.JobNotFoundError):
            await b.set_data(missing, "x", 1)
        assert await b.cancel(in_b) is hm.CancelResult.CANCELLED
        assert await a.count_by_state() == {"Enqueued": 3}  # untouched


@pytest.mark.parametrize("name", ["Main; DROP TABLE hm_main_job", "tenant a", "x" * 65, "a.b", "", "ümlaut"])
def test_hostile_environment_names_are_rejected_before_sql(tmp_path: Path, name: str) -> None:
    with pytest.raises(hm.InvalidNameError):
        hm.HiveMind(f"sqlite:///{tmp_path / 'x.db'}", environment=name)
    hive = hm.HiveMind(f"sqlite:///{tmp_path / 'x.db'}")
    with pytest.raises(hm.InvalidNameError):
        hive.add_environment(name, f"sqlite:///{tmp_path / 'y.db'}")
    assert not (tmp_path / "y.db").exists()


def test_environment_configuration_errors(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'x.db'}"
    hive = hm.HiveMind(url)
    with pytest.raises(hm.ConfigurationError, match="already exists"):
        hive.add_environment("main", url)
    with pytest.raises(hm.ConfigurationError, match="would share the tables"):
        hive.add_environment("other", url, table_prefix="hm_main_")
    with pytest.raises(hm.InvalidNameError):
        hive.add_environment("other", url, table_prefix='x"; DROP TABLE y; --')
    with pytest.raises(hm.ConfigurationError, match="no environment 'nope'"):
        hive.env("nope")
    with pytest.raises(hm.ConfigurationError, match="no storage backend"):
        hive.add_environment("other", "redis://localhost/0")
    with pytest.raises(hm.ConfigurationError, match="has no scheme"):
        hive.add_environment("other", "just-a-path.db")
    with pytest.raises(hm.ConfigurationError, match="in-memory"):
        hive.add_environment("other", "sqlite:///:memory:")
    with pytest.raises(hm.ConfigurationError, match="unknown SQLite URL option"):
        hive.add_environment("other", f"{url}?journal=DELETE")


async def test_per_environment_lock_timeout(db_url: str) -> None:
    hive = hm.HiveMind(db_url, options=hm.Options(lock_timeout=timedelta(seconds=1)))
    hive.add_environment("patient", db_url, options=hm.Options(lock_timeout=timedelta(minutes=5)))
    async with hive:
        quick = await hive.jobs.get_with_lock(await hive.jobs.create(jobs.do_stuff), "holder")
        slow = await hive.env("patient").jobs.get_with_lock(
            await hive.env("patient").jobs.create(jobs.do_stuff), "holder"
        )
        import asyncio

        await asyncio.sleep(1.2)
        with pytest.raises(hm.JobLockStaleError):
            await quick.heartbeat()
        await slow.heartbeat()
        await slow.release()


async def test_synchronous_full_url_option(tmp_path: Path) -> None:
    async with hm.HiveMind(f"sqlite:///{tmp_path / 'full.db'}?synchronous=FULL&busy_timeout=5") as hive:
        job_id = await hive.jobs.create(jobs.do_stuff)
        assert hive.env().info.extras == {"synchronous": "FULL"}
        assert (await hive.jobs.get(job_id)).id == job_id


async def test_mixed_backends_in_one_process(tmp_path: Path, postgres_url: str, mariadb_url: str) -> None:
    """The seed's environments example on every backend: two tenants sharing one PostgreSQL
    database (schema), the machine's environment on MariaDB, the process's on SQLite; each with its
    own options, jobs and colony."""
    import asyncio

    hive = hm.HiveMind(postgres_url, environment="TenantA", options=hm.Options(retention=timedelta(days=7)))
    hive.add_environment("TenantB", postgres_url, options=hm.Options(retention=timedelta(days=14)))
    hive.add_environment("Machine", mariadb_url, options=hm.Options(retention=timedelta(days=1)))
    hive.add_environment("Process", f"sqlite:///{tmp_path / 'process.db'}", options=hm.Options(retention=timedelta(0)))
    names = ("TenantA", "TenantB", "Machine", "Process")
    colony_options = hm.ColonyOptions(poll_interval=timedelta(milliseconds=100))
    async with hive:
        created: dict[str, list[int]] = {}
        for number, name in enumerate(names, start=1):
            created[name] = [await hive.env(name).jobs.create(jobs.add, number, n) for n in range(number * 3)]
        for name in names:
            assert await hive.env(name).jobs.count_by_state() == {"Enqueued": len(created[name])}
        colonies = [
            hive.colony(name=f"worker-{name}", environment=name, allow=ALLOW, options=colony_options) for name in names
        ]
        for colony in colonies:
            colony.swarm("main", drones=2)
        async with colonies[0], colonies[1], colonies[2], colonies[3]:
            for _ in range(200):
                counts = [await hive.env(name).jobs.count_by_state() for name in names]
                if all(count == {"Succeeded": len(created[name])} for count, name in zip(counts, names, strict=True)):
                    break
                await asyncio.sleep(0.05)
        for number, name in enumerate(names, start=1):
            env = hive.env(name)
            assert await env.jobs.count_by_state() == {"Succeeded": len(created[name])}
            for n, job_id in enumerate(created[name]):
                job = await env.jobs.get(job_id)
                assert job.environment == name
                assert isinstance(job.state, hm.Succeeded) and job.state.result == number + n
        assert hive.env("TenantB").options.retention == timedelta(days=14)
    schema = backends.url_schema(postgres_url)
    tables = {
        row[0]
        for row in backends.raw(
            postgres_url, "SELECT table_name FROM information_schema.tables WHERE table_schema = ?", schema
        )
    }
    assert {"hm_TenantA_job", "hm_TenantB_job"} <= tables
