"""``hivemind demo``: HiveMind doing its main job on embedded SQLite, no server needed.

It creates a mix of jobs (sync and async functions, an instance method; priorities in one queue,
several queues, delays, a continuation, job middleware, a job that fails once and succeeds on
retry, two jobs cancelled while they run, an election handler refusing a job, a few hundred quick
ones), runs a colony with a root swarm and a sub-swarm until everything settled, shows the progress
live (a plain line per second when the output is not a terminal), then a summary read back from the
database: jobs by state, throughput, lead times, and the history of the jobs worth a look.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from collections import Counter, deque
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table

import hivemind_jobs as hm
from hivemind_jobs.cli.views import due_at, plural, state_counts_table

QUICK_JOBS = 400
REPORTS = ("Q1", "Q2", "Q3", "Q4")
DELAYS = (timedelta(seconds=2), timedelta(seconds=3))
SETTLED = ("Succeeded", "Failed", "Idle", "Deleted")
COLUMNS = ("Enqueued", "Awaiting", "Executing", *SETTLED)
#: the colony is stopped after this even if some jobs did not settle (the summary says so)
DEADLINE_SECONDS = 15.0


# ----------------------------------------------------------------------------- the demo's jobs


@dataclass
class Invoice:
    number: int
    customer: str
    amount_cents: int


def send_welcome_mail(address: str) -> str:
    return f"welcome mail to {address}"


async def resize_image(ctx: hm.JobContext, image_id: int, width: int = 640) -> str:
    await asyncio.sleep(0.05)
    ctx.log.info("image %s resized to %s px", image_id, width)
    return f"image {image_id} at {width}px"


async def charge_invoice(ctx: hm.JobContext, invoice: Invoice) -> str:
    """Fails on its first attempt (the payment provider times out), succeeds on the retry.

    The attempt number is job data: written at once, so it survives the failed attempt.
    """
    attempt = await ctx.job.try_get_data("attempt", int, default=0) + 1
    await ctx.job.set_data("attempt", attempt)
    if attempt == 1:
        raise TimeoutError(f"payment provider timed out charging invoice {invoice.number}")
    return f"invoice {invoice.number} charged {invoice.amount_cents / 100:.2f} EUR on attempt {attempt}"


async def export_everything(ctx: hm.JobContext) -> str:
    """A long async export, cancelled by the demo while it runs (its task is cancelled)."""
    for chunk in range(200):
        await asyncio.sleep(0.05)
        ctx.log.debug("chunk %s exported", chunk)
    return "exported"


def import_catalogue(ctx: hm.JobContext) -> str:
    """A long sync import, cancelled by the demo while it runs: it polls for the request."""
    for _ in range(200):
        ctx.raise_if_cancelled()
        time.sleep(0.05)
    return "imported"


def render_report(name: str) -> str:
    time.sleep(0.1)  # a sync job: it runs in the colony's thread pool
    return f"report {name} rendered"


def archive_report(name: str) -> str:
    return f"report {name} archived"


def quick(number: int) -> int:
    return number


class ThumbnailService:
    """Its method is a job: the class is created for every execution."""

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
    """Job middleware: skips the job (and says so) while its tenant is in maintenance."""

    async def __call__(self, ctx: hm.JobContext, input: list[str], call_next: hm.CallNext) -> Any:
        tenant = ctx.job.get_property("tenant")
        if tenant in input:
            ctx.log.warning("tenant %s is in maintenance: job skipped", tenant)
            return "skipped: maintenance"
        return await call_next()


class TenantPaymentEnforcer:
    """Refuses executions for a tenant that has not paid (answers Failed instead of Executing)."""

    def __call__(self, request: hm.StateElection) -> hm.State | None:
        if isinstance(request.elected, hm.Executing) and request.job.get_property("tenant") == "unpaid":
            return hm.Failed(message="tenant has not paid", reason="tenant has not paid its bill; execution refused")
        return None


# ----------------------------------------------------------------------------- creating


@dataclass
class Landmarks:
    """The jobs the summary looks at."""

    mail: list[int]
    first_kinds: list[int]
    retried: int
    cancelled_async: int
    cancelled_sync: int
    delayed: list[int]
    reports: list[int]
    archive: int
    timed: int
    skipped: int
    refused: int
    quick: list[int]

    @property
    def to_cancel(self) -> tuple[int, int]:
        return (self.cancelled_async, self.cancelled_sync)

    @property
    def all_ids(self) -> list[int]:
        return [
            *self.first_kinds,
            *self.mail,
            self.retried,
            *self.to_cancel,
            *self.delayed,
            *self.reports,
            self.archive,
            self.timed,
            self.skipped,
            self.refused,
            *self.quick,
        ]


async def create_jobs(hive: hm.HiveMind, console: Console) -> Landmarks:
    jobs = hive.jobs
    first_kinds = [
        await jobs.create(send_welcome_mail, "ada@home.org"),  # sync function, queue global
        await jobs.options(queue="images").create(resize_image, 7, width=320),  # async function
        await jobs.options(queue="images").create(hm.instance(ThumbnailService).build, 7),  # instance method
    ]
    mail = [
        await jobs.options(queue="mail", priority=priority).create(send_welcome_mail, f"{priority.name.lower()}@x")
        for priority in (hm.Priority.LOW, hm.Priority.CRITICAL, hm.Priority.NORMAL)
    ]
    retry = hm.RetryPolicy(max_retries=3, delays=[timedelta(milliseconds=500)])
    retried = await jobs.options(queue="billing", retry=retry).create(charge_invoice, Invoice(1001, "Ada", 4200))
    cancelled_async = await jobs.create(export_everything)
    cancelled_sync = await jobs.create(import_catalogue)
    delayed = [
        await jobs.options(delay=delay).create(send_welcome_mail, f"in-{delay.seconds}s@example.com")
        for delay in DELAYS
    ]
    async with hive.transaction() as tx:  # the reports and the archiving of the last one, created together
        reports = [await tx.jobs.options(queue="reports").create(render_report, name) for name in REPORTS]
        after_last = hm.After(reports[-1], on=hm.Continue.SUCCEEDED)
        archive = await tx.jobs.options(queue="reports", after=after_last).create(archive_report, REPORTS[-1])
    timed = await jobs.options(middleware=[hm.Middleware(Timing, "resize", priority=1)]).create(resize_image, 8)
    maintenance = [hm.Middleware(MaintenanceWindow, ["acme"], priority=0)]
    skipped = await jobs.options(middleware=maintenance, properties={"tenant": "acme"}).create(quick, -1)
    refused = await jobs.options(properties={"tenant": "unpaid"}).create(quick, -2)
    quick_ids = await jobs.create_many([hm.call(quick, number) for number in range(QUICK_JOBS)])
    marks = Landmarks(
        mail,
        first_kinds,
        retried,
        cancelled_async,
        cancelled_sync,
        delayed,
        reports,
        archive,
        timed,
        skipped,
        refused,
        quick_ids,
    )
    try:
        await jobs.create(send_welcome_mail, 42)  # type: ignore[call-overload]
    except hm.ArgumentBindingError as error:
        console.print(f"  [red]refused before writing anything:[/] {error}", soft_wrap=True)
    console.print(
        f"  created {len(marks.all_ids)} jobs in queues global, mail, images, billing and reports "
        f"({QUICK_JOBS} of them quick no-ops, {len(DELAYS)} delayed, 1 awaiting its parent)",
        soft_wrap=True,
    )
    return marks


# ----------------------------------------------------------------------------- running


class Throughput:
    """Jobs processed per second: since the start, and over the last second."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.samples: deque[tuple[float, int]] = deque([(self.started, 0)])

    def add(self, processed: int) -> None:
        now = time.perf_counter()
        self.samples.append((now, processed))
        while len(self.samples) > 2 and now - self.samples[1][0] >= 1.0:
            self.samples.popleft()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    @property
    def average(self) -> float:
        return self.samples[-1][1] / max(self.elapsed, 1e-3)

    @property
    def current(self) -> float:
        (first_at, first), (last_at, last) = self.samples[0], self.samples[-1]
        return (last - first) / max(last_at - first_at, 1e-3)


def settled_count(counts: dict[str, int]) -> int:
    return sum(counts.get(name, 0) for name in SETTLED)


def progress_view(counts: dict[str, int], delayed: int, total: int, rate: Throughput, colony: hm.Colony) -> Group:
    settled = settled_count(counts)
    heading = (
        f"[bold]{settled}/{total}[/] jobs settled - {rate.elapsed:4.1f} s - "
        f"{rate.current:,.0f} jobs/s now, {rate.average:,.0f} jobs/s on average"
    )
    table = state_counts_table(counts, COLUMNS, {"Enqueued": f"({delayed} delayed)"} if delayed else None)
    bar = Table.grid(padding=(0, 1))
    bar.add_row(ProgressBar(total=max(total, 1), completed=settled, width=60), f"{100 * settled / max(total, 1):5.1f}%")
    swarms = "   ".join(
        f"swarm [cyan]{swarm['name']}[/] {swarm['busy']}/{plural(len(swarm['drones']), 'drone')} busy"
        for swarm in colony.describe()["swarms"]
    )
    return Group(heading, bar, table, swarms)


def progress_line(counts: dict[str, int], total: int, rate: Throughput) -> str:
    """The plain progress of output that is not a terminal (logs, CI, tests)."""
    states = ", ".join(f"{name} {counts[name]}" for name in COLUMNS if counts.get(name))
    return f"  {rate.elapsed:4.1f} s  {settled_count(counts)}/{total} settled  ({states})  {rate.current:,.0f} jobs/s"


@dataclass
class RunReport:
    elapsed: float
    processed: int
    cancel_requested: dict[int, datetime]
    settled: bool


async def run_colony(hive: hm.HiveMind, marks: Landmarks, console: Console) -> RunReport:
    colony = hive.colony(
        name="demo",
        allow=hm.AllowList(modules=[__name__]),
        # a short grace period keeps the demo bounded should a job still run at the deadline
        options=hm.ColonyOptions(poll_interval=timedelta(milliseconds=100), graceful_stop=timedelta(seconds=2)),
    )
    # the root swarm works mail first (queue priority 0), then images, billing and global together
    root = colony.swarm("main", drones=8, queues=[("mail", 0), "images", "billing"])
    # the sub-swarm works its own queue first, then helps with the root swarm's queues
    root.swarm("reports", drones=2, queues=["reports"])
    total = len(marks.all_ids)
    cancel_requested: dict[int, datetime] = {}
    rate = Throughput()
    next_line = 0.5
    counts: dict[str, int] = {}
    display: AbstractContextManager[Live | None] = (
        Live(console=console, refresh_per_second=8, transient=True) if console.is_terminal else nullcontext()
    )
    async with colony:
        with display as live:
            while rate.elapsed < DEADLINE_SECONDS:
                counts = await hive.jobs.count_by_state()
                delayed = sum(stat.delayed for stat in await hive.jobs.queue_stats())
                rate.add(colony.processed)
                if live is not None:
                    live.update(progress_view(counts, delayed, total, rate, colony))
                elif rate.elapsed >= next_line:
                    console.print(progress_line(counts, total, rate), soft_wrap=True)
                    next_line += 0.5
                for job_id in marks.to_cancel:
                    if job_id not in cancel_requested and isinstance((await hive.jobs.get(job_id)).state, hm.Executing):
                        cancel_requested[job_id] = hive.clock.now()
                        result = await hive.jobs.cancel(job_id, reason="no longer needed")
                        console.print(f"  cancel job #{job_id} while it runs: {result.value}")
                if settled_count(counts) == total:
                    break
                await asyncio.sleep(0.15)
        counts = await hive.jobs.count_by_state()
        delayed = sum(stat.delayed for stat in await hive.jobs.queue_stats())
        rate.add(colony.processed)
        view = progress_view(counts, delayed, total, rate, colony)
    console.print(view)
    settled = settled_count(counts) == total
    if not settled:
        console.print(f"[yellow]stopped after {DEADLINE_SECONDS:.0f} s with jobs still unsettled[/]")
    return RunReport(rate.elapsed, colony.processed, cancel_requested, settled)


# ----------------------------------------------------------------------------- summary


def executions(job: hm.BackgroundJob) -> list[hm.Executing]:
    return [state for state in job.states if isinstance(state, hm.Executing)]


def started_at(job: hm.BackgroundJob) -> datetime | None:
    """When the job's (last) execution started (None: it never ran)."""
    return max((state.elected_at for state in executions(job) if state.elected_at), default=None)


def percentile(ordered: list[float], fraction: float) -> float:
    """Nearest-rank percentile of sorted values."""
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def describe_call(job: hm.BackgroundJob) -> tuple[str, str]:
    """(what it calls, which kind of call)."""
    invocation = job.invocation
    name = invocation.target.partition(":")[2]
    if invocation.method is not None:
        return f"{name}.{invocation.method}", "instance method"
    return name, "async" if invocation.is_async else "sync"


def history(job: hm.BackgroundJob) -> str:
    return " -> ".join(state.name + (f" ({state.reason})" if state.reason else "") for state in job.states)


def ms(delta: timedelta) -> str:
    return f"{delta.total_seconds() * 1000:.0f} ms"


async def summary(hive: hm.HiveMind, marks: Landmarks, run: RunReport, console: Console) -> None:
    jobs = hive.jobs
    loaded = {job_id: await jobs.get(job_id) for job_id in marks.all_ids}

    counts = await jobs.count_by_state()
    by_state = Table(title="Jobs by state")
    by_state.add_column("state")
    by_state.add_column("jobs", justify="right")
    for name, count in sorted(counts.items()):
        by_state.add_row(name, str(count))
    by_swarm = Table(title="Jobs claimed by swarm")
    by_swarm.add_column("swarm")
    by_swarm.add_column("claims", justify="right")
    swarm_counts = Counter(state.swarm for job in loaded.values() for state in executions(job))
    for swarm, count in sorted(swarm_counts.items(), key=lambda item: str(item[0])):
        by_swarm.add_row(str(swarm), str(count))
    side_by_side = Table.grid(padding=(0, 4))
    side_by_side.add_row(by_state, by_swarm)
    console.print(side_by_side)

    lead_times: list[float] = []
    starts: list[datetime] = []
    ends: list[datetime] = []
    for job_id in marks.quick:
        job = loaded[job_id]
        state = job.state
        began = started_at(job)
        if isinstance(state, hm.Succeeded) and state.lead_time and state.elected_at and began:
            lead_times.append(state.lead_time.total_seconds() * 1000)
            ends.append(state.elected_at)
            starts.append(began)
    if lead_times:
        lead_times.sort()
        span = max((max(ends) - min(starts)).total_seconds(), 1e-3)
        console.print(
            f"[bold]throughput[/]: {len(lead_times)} quick jobs in {span:.2f} s = "
            f"[bold]{len(lead_times) / span:,.0f} jobs/s[/]; the colony processed {plural(run.processed, 'execution')} "
            f"in {run.elapsed:.1f} s (waiting for the delayed jobs included)",
            soft_wrap=True,
        )
        console.print(
            f"[bold]queue latency[/] of the quick jobs (Succeeded.lead_time: due -> started; all {QUICK_JOBS} "
            f"were due at once): p50 {percentile(lead_times, 0.5):.0f} ms, p95 {percentile(lead_times, 0.95):.0f} ms, "
            f"max {lead_times[-1]:.0f} ms",
            soft_wrap=True,
        )

    kinds = Table(title="A few jobs of each kind")
    for name in ("job", "calls", "kind", "queue", "priority", "run by"):
        kinds.add_column(name, no_wrap=True)
    kinds.add_column("result", overflow="fold")
    shown = [*marks.first_kinds, *marks.mail, marks.reports[0], marks.archive]
    for job_id in shown:
        job = loaded[job_id]
        call, kind = describe_call(job)
        ran = executions(job)
        where = str(ran[-1].drone) if ran else "-"
        result = job.state.result if isinstance(job.state, hm.Succeeded) else job.state.name
        kinds.add_row(f"#{job_id}", call, kind, job.queue, job.priority.name, where, str(result))
    console.print(kinds)

    mail = [loaded[job_id] for job_id in marks.mail]
    mail.sort(key=lambda job: started_at(job) or datetime.max.replace(tzinfo=UTC))
    console.print("[bold]mail queue, in the order run[/]: " + ", ".join(job.priority.name for job in mail))

    retried = loaded[marks.retried]
    console.print(f"[bold]retried[/] #{marks.retried}: {history(retried)}", soft_wrap=True)
    retry_due = next(
        (due for s in retried.states if isinstance(s, hm.Enqueued) and s.delay and (due := due_at(s))), None
    )
    again_at = started_at(retried)
    if isinstance(retried.state, hm.Succeeded) and retry_due and again_at:
        console.print(
            f"    result: {retried.state.result}; retries: {retried.get_property('hm.retries')}", soft_wrap=True
        )
        console.print(
            f"    due again at {retry_due:%H:%M:%S.%f}"[:-3] + f" UTC, started {ms(again_at - retry_due)} after that "
            "(jobs due before it in its queue group go first)",
            soft_wrap=True,
        )

    for label, job_id in (("async", marks.cancelled_async), ("sync", marks.cancelled_sync)):
        job = loaded[job_id]
        console.print(f"[bold]cancelled while running ({label})[/] #{job_id}: {history(job)}", soft_wrap=True)
        requested = run.cancel_requested.get(job_id)
        if isinstance(job.state, hm.Idle) and requested is not None and job.state.elected_at is not None:
            console.print(f"    final state {job.state.name}, {ms(job.state.elected_at - requested)} after the request")

    console.print(f"[bold]continuation[/] #{marks.archive}: {history(loaded[marks.archive])}", soft_wrap=True)

    for delay, job_id in zip(DELAYS, marks.delayed, strict=True):
        job = loaded[job_id]
        console.print(f"[bold]delayed {delay.seconds} s[/] #{job_id}: {history(job)}")
        due = due_at(job.states[1])
        began = started_at(job)
        if due and job.created_at and began:
            console.print(
                f"    due {(due - job.created_at).total_seconds():.1f} s after its creation, "
                f"started {ms(began - due)} after that"
            )

    refused = loaded[marks.refused]
    console.print(f"[bold]refused by an election handler[/] #{marks.refused}: {history(refused)}", soft_wrap=True)
    skipped = loaded[marks.skipped]
    skipped_result = skipped.state.result if isinstance(skipped.state, hm.Succeeded) else None
    console.print(f"[bold]skipped by middleware[/] #{marks.skipped}: {skipped.state.name}, result {skipped_result!r}")
    for job_id in (marks.timed, marks.skipped):
        for entry in await jobs.get_logs(job_id):
            console.print(f"[bold]job log[/] #{job_id} [{entry.level_name}] {entry.message}")

    for info in await hive.colonies.list():
        console.print(
            f"[bold]colony[/] {info.name} ({info.id}) {info.status}: "
            + ", ".join(f"swarm {swarm['name']} with {plural(len(swarm['drones']), 'drone')}" for swarm in info.swarms)
        )


async def run_demo(database: Path | None, console: Console) -> None:
    began = time.perf_counter()
    if database is None:
        database = Path(tempfile.mkdtemp(prefix="hivemind-demo-")) / "demo.db"
    console.print(f"[bold]HiveMind demo[/] - embedded SQLite at {database}", soft_wrap=True)
    # no retries unless a job asks for them (the invoice job does)
    options = hm.Options(lock_timeout=timedelta(seconds=10), retry=hm.RetryPolicy(max_retries=0))
    async with hm.HiveMind(f"sqlite:///{database}", options=options) as hive:
        hive.mediator.add_request_handler(hm.StateElection, TenantPaymentEnforcer())
        console.rule("[bold cyan]1. Jobs of every kind")
        marks = await create_jobs(hive, console)
        console.rule("[bold cyan]2. Colony 'demo' runs them: swarm main (8 drones) and its sub-swarm reports (2)")
        run = await run_colony(hive, marks, console)
        console.rule("[bold cyan]3. Summary")
        await summary(hive, marks, run, console)
    console.print(f"[bold green]demo finished[/] in {time.perf_counter() - began:.1f} s")


def main(database: Path | None = None) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # piped output: do not wrap at 80 columns
    asyncio.run(run_demo(database, console))
