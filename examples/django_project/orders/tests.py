"""The shop under Django's test runner (``python manage.py test``), on SQLite, PostgreSQL or
MariaDB (``SHOP_DB``): requests write their jobs in their own transaction, a worker runs them, and
Django's task API reads the results back."""

from __future__ import annotations

import contextlib
import gc
import io
import json
from datetime import UTC, datetime, timedelta

from asgiref.sync import sync_to_async
from django.core.management import call_command
from django.db import transaction
from django.test import TransactionTestCase
from django_tasks import TaskResultStatus, default_task_backend
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist

import hivemind_jobs as hm
import hivemind_jobs.contrib.django as hivemind
from orders.jobs import confirm
from orders.models import Order
from orders.tasks import attempt_number, out_of_stock, send_receipt, stock_level


# --8<-- [start:worker]
def run_worker() -> None:
    """A colony until nothing is due: ``manage.py hivemind worker --burst``."""
    call_command("hivemind", "worker", "--burst", "--swarm", "main:2:mail", "--log-level", "WARNING", "--quiet-jobs")


class ShopTests(TransactionTestCase):
    # --8<-- [end:worker]
    @classmethod
    def tearDownClass(cls) -> None:
        hivemind.close()  # its connections end before Django drops the test database
        # so do the ORM connections the worker's job threads opened: those threads have ended, and
        # Django's connection objects (reference cycles) are freed by the cycle collector
        gc.collect()
        super().tearDownClass()

    def test_an_order_and_its_jobs_commit_together_and_a_worker_runs_them(self) -> None:
        response = self.client.post(
            "/orders", json.dumps({"item": "tea", "email": "a@example.com"}), "application/json"
        )
        self.assertEqual(response.status_code, 201)
        placed = response.json()
        hive = hivemind.hive()
        self.assertEqual(hive.jobs.get(placed["job"]).state.name, "Enqueued")
        receipt = send_receipt.get_result(placed["receipt"])
        self.assertEqual(receipt.status, TaskResultStatus.READY)
        self.assertEqual(hive.jobs.get(int(placed["receipt"])).queue, "mail")
        self.assertEqual(hive.jobs.get(int(placed["receipt"])).priority, hm.Priority.HIGH)  # Django's 50

        run_worker()

        self.assertTrue(Order.objects.get(pk=placed["order"]).confirmed)  # the plain job ran, with the ORM
        self.assertEqual(hive.jobs.get(placed["job"]).state.result, f"order {placed['order']} confirmed")
        receipt.refresh()
        self.assertEqual(receipt.status, TaskResultStatus.SUCCESSFUL)
        self.assertEqual(receipt.return_value, {"to": "a@example.com", "subject": "Your tea"})
        self.assertEqual(receipt.args, [placed["order"], "a@example.com"])
        self.assertEqual(receipt.attempts, 1)
        self.assertIsNotNone(receipt.started_at)
        self.assertGreaterEqual(receipt.finished_at, receipt.started_at)

    def test_a_failed_request_leaves_no_order_and_no_job(self) -> None:
        before = hivemind.hive().jobs.count()
        with self.assertRaises(RuntimeError):
            self.client.post(
                "/orders", json.dumps({"item": "tea", "email": "b@example.com", "fail": True}), "application/json"
            )
        self.assertEqual(Order.objects.count(), 0)
        self.assertEqual(hivemind.hive().jobs.count(), before)

    def test_jobs_outside_a_transaction_are_refused(self) -> None:
        with self.assertRaisesMessage(hm.TransactionError, "transaction.atomic()"), hivemind.transaction() as tx:
            tx.jobs.create(confirm, 1)

    def test_a_rolled_back_atomic_block_leaves_no_task(self) -> None:
        with self.assertRaises(ZeroDivisionError), transaction.atomic():
            result = send_receipt.enqueue(1, "c@example.com")
            _ = 1 / 0
        with self.assertRaises(TaskResultDoesNotExist):
            send_receipt.get_result(result.id)

    def test_task_failures_context_and_delays(self) -> None:
        failing = out_of_stock.enqueue("tea")
        counted = attempt_number.enqueue()
        later = send_receipt.using(run_after=datetime.now(UTC) + timedelta(hours=1)).enqueue(1, "d@example.com")
        run_worker()
        failing.refresh()
        self.assertEqual(failing.status, TaskResultStatus.FAILED)
        self.assertEqual([error.exception_class for error in failing.errors], [LookupError])
        self.assertIn("no tea left", failing.errors[0].traceback)
        with self.assertRaises(ValueError):
            _ = failing.return_value
        counted.refresh()
        self.assertEqual((counted.status, counted.return_value), (TaskResultStatus.SUCCESSFUL, 1))
        later.refresh()
        self.assertEqual(later.status, TaskResultStatus.READY)  # not due for an hour
        self.assertIsNone(later.started_at)

    def test_results_of_unknown_ids_and_invalid_tasks(self) -> None:
        for unknown in ("999999", "not-an-id"):
            with self.assertRaises(TaskResultDoesNotExist):
                default_task_backend.get_result(unknown)
        with self.assertRaises(InvalidTaskError):
            send_receipt.using(queue_name="not a queue").enqueue(1, "e@example.com")

    def test_the_command_line_works_on_the_project(self) -> None:
        result = send_receipt.enqueue(1, "f@example.com")
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            call_command("hivemind", "jobs", "ls", "--queue", "mail", "--json")
        self.assertIn(f'"id": {result.id}', shown.getvalue())

    async def test_the_async_api_and_async_tasks(self) -> None:
        await Order.objects.acreate(item="mate")
        result = await stock_level.aenqueue("mate")
        self.assertEqual((await stock_level.aget_result(result.id)).status, TaskResultStatus.READY)
        await sync_to_async(run_worker)()
        await result.arefresh()
        self.assertEqual((result.status, result.return_value), (TaskResultStatus.SUCCESSFUL, 1))
