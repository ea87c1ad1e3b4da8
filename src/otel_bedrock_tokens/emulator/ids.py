"""Identifiers the emulator hands out: request ids, message ids, tool-use ids.

Drawn from a seeded generator under a lock, so one emulator instance produces the same sequence
in every run (reproducible test output) and concurrent requests never share an id.
"""

from __future__ import annotations

import random
import threading
import uuid

_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


class Ids:
    def __init__(self, seed: int = 0) -> None:
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def token(self, length: int = 24) -> str:
        with self._lock:
            return "".join(self._random.choice(_BASE62) for _ in range(length))

    def uuid(self) -> str:
        with self._lock:
            return str(uuid.UUID(int=self._random.getrandbits(128), version=4))


def uuid_from(text: str) -> str:
    """A stable uuid-looking id derived from another id (Nova's tool-use ids look like uuids)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, text))
