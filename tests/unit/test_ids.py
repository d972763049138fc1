"""Execution ids: valid, distinct version-4 UUIDs, also across a fork."""

from __future__ import annotations

import os
import threading
import uuid

from hivemind_jobs.core.ids import new_execution_key


def test_keys_are_canonical_version_4_uuids_and_distinct() -> None:
    keys = [new_execution_key() for _ in range(5000)]
    assert len(set(keys)) == len(keys)
    for key in keys:  # every position of the blocks the keys are made in
        parsed = uuid.UUID(key)
        assert str(parsed) == key
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122


def test_a_forked_child_never_repeats_the_parents_keys() -> None:
    new_execution_key()  # the parent has a block of random bytes now
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report its next keys and leave at once
        os.close(read)
        os.write(write, "\n".join(new_execution_key() for _ in range(10)).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = set(pipe.read().split("\n"))
    os.waitpid(pid, 0)
    parent = {new_execution_key() for _ in range(10)}
    assert len(child) == 10 and not child & parent


def test_threads_never_get_the_same_key() -> None:
    made: list[list[str]] = [[] for _ in range(4)]

    def take(into: list[str]) -> None:
        into.extend(new_execution_key() for _ in range(3000))

    threads = [threading.Thread(target=take, args=(keys,)) for keys in made]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [key for keys in made for key in keys]
    assert len(every) == 12_000 and len(set(every)) == 12_000
