"""``hivemind demo``: HiveMind doing its main job on embedded SQLite, no server needed.

It creates a mix of jobs (functions, async functions, an instance method; priorities, queues, a
delay, a continuation, middleware, a job that fails once and succeeds on retry, a job cancelled
while it runs, an election handler refusing a job, a few hundred quick ones), runs a colony with a
swarm and a sub-swarm until everything settled, shows the progress live, then a summary.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

import hivemind_jobs as hm

QUICK_JOBS = 400
SETTLED = ("Succeeded", "Failed", "Idle", "Deleted")
DEADLINE_SECONDS = 25.0


# ----------------------------------------------------------------------------- the demo's jobs


@dataclass
class Invoice:
    number: int
    customer: str
    amount_cents: int


def send_welcome_mail(address: str) -> str:
    return f"welcome mail sent to {address}"


async def resize_image(ctx: hm.JobContext, image_id: int, width: int = 640) -> str:
    await asyncio.sleep(0.05)
    ctx.log.info("image %s resized to %s px", image_id, width)
    return f"image {image_id} at {width}px"


async def charge_invoice(ctx: hm.JobContext, invoice: Invoice) -> str:
    """Fails on its first attempt (the payment provider times out), succeeds on the retry."""
    attempt = await ctx.job.try_get_data("attempt", int, default=0) + 1
    await ctx.job.set_data("attempt", attempt)
    if attempt == 1:
        raise TimeoutError(f"payment provider timed out charging invoice {invoice.number}")
    return f"invoice {invoice.number} charged {invoice.amount_cents / 100:.2f} EUR on attempt {attempt}"


async def export_everything(ctx: hm.JobContext) -> str:
    """A long export, cancelled by the demo while it runs."""
    for chunk in range(200):
        await asyncio.sleep(0.1)
        ctx.log.debug("chunk %s exported", chunk)
    return "exported"


def render_report(name: str) -> str:
    time.sleep(0.1)  # a sync job: it runs in the colony's thread pool
    return f"report {name} rendered"


def archive_report(name: str) -> str:
    return f"report {name} archived"


def quick(number: int) -> int:
    return number


class ThumbnailService:
    def build(self, image_id: int) -> str:
        return f"thumbnail of image {image_id}"


class Timing:
    """Job middleware: logs how long the job took (persisted with the job)."""

    async def __call__(self, ctx: hm.JobContext, input: str, call_next: hm.CallNext) -> Any:
        started = time.perf_counter()
        result = await call_next()
        ctx.log.info("%s took %.1f ms", input, (time.perf_counter() - started) * 1000)
        return result


class MaintenanceWindow:
    """Job middleware: skips the job (and says so) while a tenant is in maintenance."""

    async def __call__(self, ctx: hm.JobContext, input: list[str], call_next: hm.CallNext) -> Any:
        if ctx.job.get_property("tenant") in input:
            ctx.log.warning("tenant %s is in maintenance: job skipped", ctx.job.get_property("tenant"))
            return "skipped: maintenance"
        return await call_next()


class TenantPaymentEnforcer:
    """Refuses executions for a tenant that has not paid (answers Failed instead of Executing)."""

    def __call__(self, request: hm.StateElection) -> hm.State | None:
        if isinstance(request.elected, hm.Executing) and request.job.get_property("tenant") == "unpaid":
            return hm.Failed(message="tenant has not paid", reason="tenant has not paid its bill; execution refused")
        return None


# ----------------------------------------------------------------------------- the run


@dataclass
class Landmarks:
    """Jobs the summary looks at."""

    retried: int
    cancelled: int
    report: int
    archive: int
    delayed: int
    skipped: int
    refused: int
    timed: int
    mail: list[int]
    quick: list[int]
    all_ids: list[int]


async def create_jobs(hive: hm.HiveMind, console: Console) -> Landmarks:
    jobs = hive.jobs
    ids: list[int] = []
    ids.append(await jobs.create(send_welcome_mail, "ada@example.com"))
    ids.append(await jobs.options(queue="images").create(resize_image, 7, width=320))
    ids.append(await jobs.options(queue="images").create(hm.instance(ThumbnailService).build, 7))
    mail = []
    for priority in (hm.Priority.LOW, hm.Priority.CRITICAL, hm.Priority.NORMAL):
        mail.append(await jobs.options(queue="mail", priority=priority).create(send_welcome_mail, f"{priority.name}@x"))
    ids += mail
    retry = hm.RetryPolicy(max_retries=3, delays=[timedelta(milliseconds=500)])
    retried = await jobs.options(queue="billing", retry=retry).create(charge_invoice, Invoice(1001, "Ada", 4200))
    cancelled = await jobs.create(export_everything)
    delayed = await jobs.options(delay=timedelta(seconds=2)).create(send_welcome_mail, "later@example.com")
    async with hive.transaction() as tx:  # a report and its archiving, created together
        report = await tx.jobs.options(queue="reports").create(render_report, "Q3")
        archive = await tx.jobs.options(after=hm.After(report, on=hm.Continue.SUCCEEDED)).create(archive_report, "Q3")
    timed = await jobs.options(middleware=[hm.Middleware(Timing, "resize", priority=1)]).create(resize_image, 8)
    maintenance = [hm.Middleware(MaintenanceWindow, ["acme"], priority=0)]
    skipped = await jobs.options(middleware=maintenance, properties={"tenant": "acme"}).create(quick, -1)
    refused = await jobs.options(properties={"tenant": "unpaid"}).create(quick, -2)
    ids += [retried, cancelled, delayed, report, archive, timed, skipped, refused]
    quick_ids = await jobs.create_many([hm.call(quick, number) for number in range(QUICK_JOBS)])
    ids += quick_ids
    try:
        await jobs.create(send_welcome_mail, 42)  # type: ignore[call-overload]
    except hm.ArgumentBindingError as error:
        console.print(f"  [red]refused before writing anything:[/] {error}")
    console.print(f"  created {len(ids)} jobs in queues global, mail, images, billing and reports")
    return Landmarks(retried, cancelled, report, archive, delayed, skipped, refused, timed, mail, quick_ids, ids)


def progress_view(counts: dict[str, int], total: int, elapsed: float, processed: int) -> Group:
    settled = sum(counts.get(name, 0) for name in SETTLED)
    table = Table(
        title=f"{settled}/{total} jobs settled - {elapsed:4.1f} s - {processed / max(elapsed, 1e-3):,.0f} jobs/s"
    )
    for name in ("Enqueued", "Awaiting", "Executing", *SETTLED):
        table.add_column(name, justify="right")
    table.add_row(*(str(counts.get(name, 0)) for name in ("Enqueued", "Awaiting", "Executing", *SETTLED)))
    bar = "#" * int(40 * settled / max(total, 1))
    return Group(table, f"[green]{bar:<40}[/] {100 * settled / max(total, 1):5.1f}%")


async def run_colony(hive: hm.HiveMind, marks: Landmarks, console: Console) -> float:
    colony = hive.colony(
        name="demo",
        allow=hm.AllowList(modules=[__name__]),
        options=hm.ColonyOptions(poll_interval=timedelta(milliseconds=100)),
    )
    main = colony.swarm("main", drones=8, queues=[("mail", 0), "images", "billing"])
    main.swarm("reporting", drones=2, queues=["reports"])
    total = len(marks.all_ids)
    started = time.perf_counter()
    async with colony:
        with Live(console=console, refresh_per_second=8, transient=not console.is_terminal) as live:
            cancel_sent = False
            while time.perf_counter() - started < DEADLINE_SECONDS:
                counts = await hive.jobs.count_by_state()
                elapsed = time.perf_counter() - started
                live.update(progress_view(counts, total, elapsed, colony.processed))
                if not cancel_sent and isinstance((await hive.jobs.get(marks.cancelled)).state, hm.Executing):
                    await hive.jobs.cancel(marks.cancelled, reason="export no longer needed")
                    cancel_sent = True
                if sum(counts.get(name, 0) for name in SETTLED) == total:
                    break
                await asyncio.sleep(0.15)
    elapsed = time.perf_counter() - started
    console.print(progress_view(await hive.jobs.count_by_state(), total, elapsed, colony.processed))
    return elapsed


def started_at(job: hm.BackgroundJob) -> datetime:
    """When the job's (last) execution started."""
    return max(state.elected_at for state in job.states if isinstance(state, hm.Executing) and state.elected_at)


async def summary(hive: hm.HiveMind, marks: Landmarks, elapsed: float, console: Console) -> None:
    jobs = hive.jobs
    counts = await jobs.count_by_state()
    table = Table(title="Jobs by state")
    table.add_column("state")
    table.add_column("jobs", justify="right")
    for name, count in sorted(counts.items()):
        table.add_row(name, str(count))
    console.print(table)
    lead_times = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for job_id in marks.quick:
        job = await jobs.get(job_id)
        state = job.state
        if isinstance(state, hm.Succeeded) and state.lead_time is not None and state.elected_at is not None:
            lead_times.append(state.lead_time.total_seconds() * 1000)
            ends.append(state.elected_at)
            starts.append(started_at(job))
    lead_times.sort()
    if lead_times and starts:
        span = max((max(ends) - min(starts)).total_seconds(), 1e-3)
        p50 = statistics.median(lead_times)
        p95 = lead_times[min(len(lead_times) - 1, int(len(lead_times) * 0.95))]
        console.print(
            f"throughput: {len(lead_times)} quick jobs in {span:.2f} s = {len(lead_times) / span:,.0f} jobs/s "
            f"(all {len(marks.all_ids)} jobs settled in {elapsed:.1f} s, the delayed one included)"
        )
        console.print(
            f"queue latency (due -> started): p50 {p50:.1f} ms, p95 {p95:.1f} ms - the quick jobs were all due at once"
        )
    mail = [await jobs.get(job_id) for job_id in marks.mail]
    mail.sort(key=started_at)
    console.print("[bold]mail queue, in the order run[/]: " + ", ".join(job.priority.name for job in mail))

    async def history(label: str, job_id: int) -> None:
        job = await jobs.get(job_id)
        steps = " -> ".join(f"{state.name}" + (f" ({state.reason})" if state.reason else "") for state in job.states)
        console.print(f"[bold]{label}[/] #{job_id}: {steps}")

    await history("retried", marks.retried)
    retried = await jobs.get(marks.retried)
    if isinstance(retried.state, hm.Succeeded):
        console.print(f"    result: {retried.state.result}; retries: {retried.get_property('hm.retries')}")
    await history("cancelled while running", marks.cancelled)
    await history("continuation", marks.archive)
    await history("delayed 2 s", marks.delayed)
    delayed = await jobs.get(marks.delayed)
    due = delayed.states[1]
    began = delayed.states[2].elected_at
    if isinstance(due, hm.Enqueued) and due.delay_until is not None and began is not None:
        late = (began - due.delay_until).total_seconds() * 1000
        console.print(f"    due at {due.delay_until:%H:%M:%S.%f}, started {late:.0f} ms after (never before)")
    await history("refused by an election handler", marks.refused)
    skipped = await jobs.get(marks.skipped)
    console.print(f"[bold]skipped by middleware[/] #{marks.skipped}: {skipped.state!r}")
    for entry in await jobs.get_logs(marks.timed):
        console.print(f"[bold]job log[/] #{marks.timed} [{entry.level_name}] {entry.message}")
    for info in await hive.colonies.list():
        console.print(
            f"[bold]colony[/] {info.name} ({info.id}) {info.status}: "
            + ", ".join(f"{swarm['name']} {len(swarm['drones'])} drones" for swarm in info.swarms)
        )


async def run_demo(database: Path | None, console: Console) -> None:
    if database is None:
        database = Path(tempfile.mkdtemp(prefix="hivemind-demo-")) / "demo.db"
    console.print(f"[bold]HiveMind demo[/] - embedded SQLite at {database}")
    options = hm.Options(lock_timeout=timedelta(seconds=10), retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(f"sqlite:///{database}", options=options) as hive:
        hive.mediator.add_request_handler(hm.StateElection, TenantPaymentEnforcer())
        console.rule("[bold cyan]1. Jobs of every kind")
        marks = await create_jobs(hive, console)
        console.rule(
            "[bold cyan]2. A colony runs them: swarm main (mail first, then images, billing, global), sub-swarm"
        )
        elapsed = await run_colony(hive, marks, console)
        console.rule("[bold cyan]3. Summary")
        await summary(hive, marks, elapsed, console)


def main(database: Path | None = None) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped output: do not wrap at 80 columns
    asyncio.run(run_demo(database, console))
