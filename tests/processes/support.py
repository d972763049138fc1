"""What the worker-process tests share: ``hivemind worker`` processes, polling with the workers'
logs on failure, colony status, and a TCP proxy that silently drops a worker's database traffic."""

from __future__ import annotations

import asyncio
import os
import selectors
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import pytest

import hivemind_jobs as hm

REPO = Path(__file__).resolve().parents[2]
#: the worker options of the tests: test-scale polls, lock monitor and graceful stop
TEST_SCALE = ("--poll-interval", "0.1", "--monitor-interval", "0.5", "--graceful-stop", "2")


class WorkerProcess:
    """One ``hivemind worker`` process; its output goes to ``log``."""

    def __init__(self, name: str, process: subprocess.Popen[bytes], log: Path) -> None:
        self.name = name
        self.process = process
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def signal(self, number: signal.Signals) -> None:
        self.process.send_signal(number)

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout=timeout)


class WorkerProcesses:
    """The ``hivemind worker`` processes of one test, all running ``app`` (a factory of the
    HiveMind that reads its settings from the environment); :meth:`cleanup` kills the ones left."""

    def __init__(self, tmp_path: Path, app: str, *, options: Sequence[str] = TEST_SCALE) -> None:
        self.tmp_path = tmp_path
        self.app = app
        self.options = tuple(options)
        self.started: list[WorkerProcess] = []

    def launch(
        self,
        name: str,
        environment: Mapping[str, str],
        *,
        drones: int = 1,
        swarm: str | None = None,
        options: Sequence[str] | None = None,
        arguments: Sequence[str] | None = None,
    ) -> WorkerProcess:
        """Start a worker named ``name`` with ``environment`` added to this process's: one swarm of
        ``drones`` (or ``swarm``), jobs of ``tests.processes`` allowed, ``options`` (default: the
        ones given to this object); ``arguments`` replaces all of that (an app that sets it up)."""
        log = self.tmp_path / f"{name}.log"
        env = {**os.environ, **environment}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
        if arguments is None:
            swarms = ["--swarm", swarm] if swarm else ["--drones", str(drones)]
            extra = self.options if options is None else tuple(options)
            arguments = ["--name", name, *swarms, "--allow", "tests.processes", *extra]
        command = [sys.executable, "-m", "hivemind_jobs.cli", "worker", self.app, *arguments]
        with log.open("wb") as sink:
            process = subprocess.Popen(command, cwd=REPO, env=env, stdout=sink, stderr=subprocess.STDOUT)
        worker = WorkerProcess(name, process, log)
        self.started.append(worker)
        return worker

    def logs(self) -> str:
        return "\n".join(f"----- {w.name} (pid {w.pid})\n{w.output()[-5000:]}" for w in self.started)

    def stop_all(self, timeout: float = 20) -> list[int]:
        """SIGTERM every worker still running; the exit codes of all, in start order."""
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.send_signal(signal.SIGTERM)
        return [worker.process.wait(timeout=timeout) for worker in self.started]

    def cleanup(self) -> None:
        for worker in self.started:
            if worker.process.poll() is None:
                worker.process.kill()
            worker.process.wait(timeout=10)


class HasLogs(Protocol):
    def logs(self) -> str: ...


async def wait_until(
    check: Callable[[], Awaitable[bool]], timeout: float, what: str, workers: HasLogs, interval: float = 0.1
) -> float:
    """Poll ``check`` until it is true; returns the seconds it took, fails with the workers' logs after ``timeout``."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            pytest.fail(f"not within {timeout:.1f} s: {what}\n{workers.logs()}")
        await asyncio.sleep(interval)
    return time.monotonic() - started


async def colony_running(client: hm.HiveMind, name: str) -> bool:
    return any(info.name == name and info.status == "running" for info in await client.colonies.list())


class BlackholeProxy:
    """A TCP proxy on 127.0.0.1 that can stop forwarding while keeping every socket open (the
    database then neither answers nor resets). Everything is closed after ``lifetime`` seconds."""

    def __init__(self, host: str, port: int, *, lifetime: float = 120.0) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.2)
        self.port = int(self.listener.getsockname()[1])
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.closed = threading.Event()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, name="blackhole-proxy", daemon=True).start()
        self.timer = threading.Timer(lifetime, self.close)
        self.timer.daemon = True
        self.timer.start()

    def _accept(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.lock:
                self.sockets.append(client)
            if not self.forwarding.is_set():
                continue  # a new connection is accepted and then ignored, like the others
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets.append(upstream)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, first: socket.socket, second: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(first, selectors.EVENT_READ, second)
            selector.register(second, selectors.EVENT_READ, first)
            while not self.closed.is_set():
                if not self.forwarding.is_set():
                    self.closed.wait(0.1)
                    continue
                for key, _ in selector.select(timeout=0.1):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(65536)
                        if data:
                            key.data.sendall(data)
                    except OSError:
                        data = b""
                    if not data:
                        first.close()
                        second.close()
                        return

    def blackhole(self) -> None:
        self.forwarding.clear()

    def close(self) -> None:
        self.closed.set()
        self.timer.cancel()
        self.listener.close()
        with self.lock:
            for sock in self.sockets:
                sock.close()
