"""Random identifiers for the hot path (execution ids), without a system call for each one.

``new_execution_key()`` returns the text of a random (version 4) UUID. Random bytes come from
``os.urandom`` in blocks, so creating a job costs no system call of its own; the block is thrown
away in a forked child so that two processes never hand out the same bytes.
"""

from __future__ import annotations

import os
import threading

__all__ = ["new_execution_key"]

_BLOCK = 4096
_lock = threading.Lock()
_buffer = b""
_position = 0


def _reset() -> None:
    global _buffer, _position
    _buffer, _position = b"", 0


os.register_at_fork(after_in_child=_reset)


def new_execution_key() -> str:
    """A fresh random UUID (version 4) in its canonical text form."""
    global _buffer, _position
    with _lock:
        if _position + 16 > len(_buffer):
            _buffer, _position = os.urandom(_BLOCK), 0
        raw = bytearray(_buffer[_position : _position + 16])
        _position += 16
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
