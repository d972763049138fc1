"""Random identifiers for the hot path (execution ids), without a system call for each one.

``new_execution_key()`` returns the text of a random (version 4) UUID. Keys are made 256 at a
time from one ``os.urandom`` call, so creating a job costs no system call and no text formatting of
its own; the keys made are thrown away in a forked child so that two processes never hand out the
same one.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_execution_key"]

#: keys made at a time: one ``os.urandom`` call, the version bits set and the text written for all
_BLOCK_KEYS = 256
_lock = threading.Lock()
_keys: list[str] = []


def _reset() -> None:
    _keys.clear()


os.register_at_fork(after_in_child=_reset)


def _make_keys() -> list[str]:
    raw = bytearray(os.urandom(16 * _BLOCK_KEYS))
    raw[6::16] = bytes([(byte & 0x0F) | 0x40 for byte in raw[6::16]])  # version 4
    raw[8::16] = bytes([(byte & 0x3F) | 0x80 for byte in raw[8::16]])  # RFC 4122 variant
    text = raw.hex()
    return [
        f"{text[i : i + 8]}-{text[i + 8 : i + 12]}-{text[i + 12 : i + 16]}-{text[i + 16 : i + 20]}-{text[i + 20 : j]}"
        for i, j in zip(range(0, len(text), 32), range(32, len(text) + 1, 32), strict=True)
    ]


def new_execution_key() -> str:
    """A fresh random UUID (version 4) in its canonical text form."""
    try:
        return _keys.pop()  # atomic: two threads never get the same key
    except IndexError:
        with _lock:
            if not _keys:
                _keys.extend(_make_keys())
        return new_execution_key()
