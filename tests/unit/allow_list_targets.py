"""Names an allowed module can hold that lead outside it (imported modules, re-exported functions,
built-ins), next to real job targets; the allow-list tests resolve stored targets against it."""

from __future__ import annotations

import json as json_module
import os
import os.path
import subprocess
from builtins import print
from json import dumps
from threading import Thread
from typing import Any

from click import echo

from tests.sample_jobs import add

__all__ = [
    "Jobs",
    "Middle",
    "Thread",
    "Wrapped",
    "add",
    "dumps",
    "echo",
    "json_module",
    "legit",
    "os",
    "print",
    "subprocess",
]


def legit(value: int) -> int:
    return value * 2


class Jobs:
    """A class of job methods that also holds foreign things as attributes."""

    helpers = os  # a module as a class attribute
    system = staticmethod(os.system)  # a built-in as a static method
    run_process = staticmethod(subprocess.run)  # a foreign Python function as a static method
    decoder = json_module.JSONDecoder()  # an instance of a foreign class

    @staticmethod
    def static(value: int) -> int:
        return value + 1

    @classmethod
    def build(cls, value: int) -> int:
        return value + 2

    def run(self, value: int) -> int:
        return value + 3

    class Nested:
        @staticmethod
        def deep(value: int) -> int:
            return value + 4


class Wrapped(Thread):
    """Defined here, so instance-method jobs on it are allowed (even a method it inherits)."""

    def work(self) -> str:
        return "worked"


class Middle:
    async def __call__(self, context: Any, input: Any, call_next: Any) -> Any:
        return await call_next()
