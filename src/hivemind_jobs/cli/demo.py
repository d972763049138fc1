"""``hivemind demo``: the core engine at work on embedded SQLite, no server needed.

It creates jobs of every kind, continues them, locks and transitions them the way a worker does
(claiming from the queue in group, priority and due-time order), lets an election handler refuse
an execution, and reads everything back.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

import hivemind_jobs as hm
from hivemind_jobs.storage.protocol import QueueClaim

UNPAID_TENANT = uuid.UUID("00000000-0000-0000-0000-00000000dead")


# ----------------------------------------------------------------------------- the demo's jobs


@dataclass
class Invoice:
    number: int
    customer: str
    amount_cents: int


def send_welcome_mail(address: str) -> str:
    return f"welcome mail sent to {address}"


async def render_invoice(ctx: hm.JobContext, invoice: Invoice) -> str:
    return f"invoice {invoice.number} rendered"


def archive_invoice(number: int) -> None:
    return None


class ReportWriter:
    def write(self, ctx: hm.JobContext, title: str, pages: int = 1) -> str:
        return f"{title}: {pages} pages"

    @staticmethod
    def cleanup(days: int) -> None:
        return None


class AuditMiddleware:
    async def __call__(self, ctx: hm.JobContext, input: Any, call_next: hm.CallNext) -> Any:
        return await call_next()


class TenantPaymentEnforcer:
    """Refuses executions for a tenant that has not paid (answers Failed instead of Executing)."""

    priority = 0

    def __call__(self, request: hm.StateElection) -> hm.State | None:
        if isinstance(request.elected, hm.Executing) and request.job.get_property("tenant") == UNPAID_TENANT:
            return hm.Failed(reason="tenant has not paid its bill; execution refused")
        return None


# ----------------------------------------------------------------------------- the run


class Demo:
    def __init__(self, hive: hm.HiveMind, console: Console) -> None:
        self.hive = hive
        self.console = console
        self.jobs = hive.jobs
        self.names: dict[int, str] = {}

    def step(self, title: str) -> None:
        self.console.rule(f"[bold cyan]{title}")

    def note(self, text: str) -> None:
        self.console.print(f"  {text}")

    async def create(self, label: str, client: hm.BackgroundJobClient, function: Any, *args: Any) -> int:
        job_id = await client.create(function, *args)
        self.names[job_id] = label
        job = await self.jobs.get(job_id)
        self.note(f"[green]#{job_id:<3}[/] {label:<36} {job.queue}/{job.priority.name} {job.state.name}")
        return job_id

    async def run(self) -> None:
        jobs = self.jobs
        self.hive.mediator.add_request_handler(hm.StateElection, TenantPaymentEnforcer())

        self.step("1. Any function or method becomes a job (arguments checked and stored as JSON)")
        welcome = await self.create("send_welcome_mail (function)", jobs, send_welcome_mail, "ada@example.com")
        await self.create("render_invoice (async, ctx injected)", jobs, render_invoice, Invoice(1001, "Ada", 4200))
        await self.create("ReportWriter.write (instance)", jobs, hm.instance(ReportWriter).write, "Q3 report")
        await self.create("ReportWriter.cleanup (static)", jobs, ReportWriter.cleanup, 30)
        try:
            await jobs.create(send_welcome_mail, 42)  # type: ignore[call-overload]
        except hm.ArgumentBindingError as error:
            self.note(f"[red]refused before writing anything:[/] {error}")

        self.step("2. Queues, priorities, delays, properties and middleware")
        critical = jobs.options(queue="billing", priority=hm.Priority.CRITICAL, properties={"tenant": uuid.uuid4()})
        await self.create("billing / CRITICAL", critical, archive_invoice, 1)
        await self.create("billing / LOW", jobs.options(queue="billing", priority=hm.Priority.LOW), archive_invoice, 2)
        unpaid = jobs.options(queue="billing", priority=hm.Priority.HIGH, properties={"tenant": UNPAID_TENANT})
        await self.create("billing / HIGH (unpaid tenant)", unpaid, archive_invoice, 3)
        delayed = await self.create("delayed by 1 hour", jobs.options(delay=timedelta(hours=1)), archive_invoice, 4)
        audited = jobs.options(middleware=[hm.Middleware(AuditMiddleware, {"level": "full"}, priority=1)])
        await self.create("with audit middleware", audited, archive_invoice, 5)

        self.step("3. Continuations, created atomically in one transaction")
        async with self.hive.transaction() as tx:
            parent = await tx.jobs.options(queue="reports").create(hm.instance(ReportWriter).write, "annual", 40)
            child = await tx.jobs.options(after=hm.After(parent, on=hm.Continue.SUCCEEDED)).create(archive_invoice, 99)
            cleanup = await tx.jobs.options(after=hm.After(child, on=hm.Continue.ANY)).create(ReportWriter.cleanup, 7)
            self.note(f"inside the transaction: job #{parent} is visible only to it: {await jobs.try_get(parent)}")
        for job_id, label in ((parent, "annual report"), (child, "archive after report"), (cleanup, "cleanup after")):
            self.names[job_id] = label
            self.note(f"[green]#{job_id:<3}[/] {label:<36} {(await jobs.get(job_id)).state.name}")

        self.step("4. A worker's view: claim by queue group, priority and due time; run under the lock")
        groups = (("billing",), ("reports", "global"))
        for round_number in range(1, 6):
            async with self.hive.env().storage.transaction() as tx:
                claimed = await tx.queue_claim(QueueClaim(groups, 10, "demo-drone"))
            if not claimed:
                self.note(f"round {round_number}: nothing ready (the delayed job waits for its time)")
                break
            order = ", ".join(f"#{c.job_id} {c.queue}/{hm.Priority(c.priority).name}" for c in claimed)
            self.note(f"[bold]round {round_number}[/] claimed: {order}")
            for item in claimed:
                await self.execute(item.job_id)

        self.step("5. Locks are exclusive; cancel and delete")
        locked = await jobs.get_with_lock(welcome, requester="support-desk")
        try:
            await jobs.get_with_lock(welcome, requester="someone-else")
        except hm.JobLockedError as error:
            self.note(f"[yellow]second requester refused:[/] {error}")
        await locked.change_state(hm.Idle(reason="parked by support"))
        await locked.save()
        self.note(f"#{welcome} parked: {(await jobs.get(welcome)).state!r}")
        self.note(f"cancel the delayed job #{delayed}: {(await jobs.cancel(delayed, reason='no longer needed')).value}")
        self.note(f"delete #{welcome}: {(await jobs.delete(welcome)).value}")

        self.step("6. Read back: state history, data, logs")
        for job_id in (child, cleanup):
            history = await jobs.get(job_id)
            self.note(f"#{job_id} history: " + " -> ".join(state.name for state in history.states))
            released = next(state for state in history.states if isinstance(state, hm.Enqueued))
            self.note(f"     enqueued because: {released.reason}")
        self.note(f"#{parent} data 'progress' = {await jobs.get_data(parent, 'progress', int)}")
        for entry in await jobs.get_logs(parent):
            self.note(f"#{parent} log [{entry.level_name}] {entry.message}")
        await self.totals()

    async def execute(self, job_id: int) -> None:
        """What a drone does with a claimed job (the worker runtime automates this)."""
        started = time.perf_counter()
        async with self.jobs.get_with_lock(job_id, requester="demo-drone") as job:
            executing = await job.change_state(hm.Executing(colony="demo", swarm="main", drone="drone-1"))
            await job.save(keep_lock=True)
            if not executing:
                self.note(f"[red]#{job_id}[/] {self.names.get(job_id, '')}: {job.state.reason}")
                return
            await job.set_data("progress", 100)
            await job.add_log(f"ran {job.invocation.display_name}")
            elapsed = timedelta(seconds=time.perf_counter() - started)
            await job.change_state(hm.Succeeded(result="ok", duration=elapsed))
            await job.save()
        self.note(f"[green]#{job_id}[/] {self.names.get(job_id, '')}: Succeeded")

    async def totals(self) -> None:
        counts = await self.jobs.count_by_state()
        table = Table(title="Jobs by state")
        table.add_column("state")
        table.add_column("jobs", justify="right")
        for name, count in sorted(counts.items()):
            table.add_row(name, str(count))
        self.console.print(table)
        queues = Table(title="Queues")
        for column in ("queue", "priority", "ready", "delayed"):
            queues.add_column(column)
        for stat in await self.jobs.queue_stats():
            queues.add_row(stat.queue, hm.Priority(stat.priority).name, str(stat.ready), str(stat.delayed))
        self.console.print(queues)


async def run_demo(database: Path | None, console: Console) -> None:
    if database is None:
        directory = Path(tempfile.mkdtemp(prefix="hivemind-demo-"))
        database = directory / "demo.db"
    console.print(f"[bold]HiveMind demo[/] - embedded SQLite at {database}")
    async with hm.HiveMind(f"sqlite:///{database}") as hive:
        await Demo(hive, console).run()


def main(database: Path | None = None) -> None:
    console = Console()
    if not console.is_terminal:
        console = Console(width=110)  # piped output: do not wrap at 80 columns
    asyncio.run(run_demo(database, console))
