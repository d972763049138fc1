"""The app and jobs of the metrics tests: a HiveMind on the database named by
``HIVEMIND_METRICS_TEST_URL``, failed jobs not retried."""

from __future__ import annotations

import os

import hivemind_jobs as hm

URL_ENV = "HIVEMIND_METRICS_TEST_URL"


def hive() -> hm.HiveMind:
    return hm.HiveMind(os.environ[URL_ENV], options=hm.Options(retry=hm.RetryPolicy(max_retries=0)))


def fine(n: int) -> int:
    return n


def broken(n: int) -> int:
    raise ValueError(f"broken {n}")
