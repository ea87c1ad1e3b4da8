"""What the predictor remembers about Bedrock's answers: a bounded LRU cache of CountTokens counts
for identical requests, and the models CountTokens refused (remembered for ``remember_seconds``).

Both are plain data about Bedrock, as true in a forked child as in its parent (a ``--preload``
parent's warm cache serves every worker): :meth:`CountCache.after_fork_in_child` keeps them and only
replaces the lock, which a parent thread may have held at the fork. Each change is one dict
operation under the GIL, so a fork never leaves the data half-changed; the cache is trimmed to its
bound again in case the fork fell between an insertion and its eviction.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from time import monotonic
from typing import Any

#: A cache key: the whole count-model id, the kind of CountTokens input, and a digest of the input.
#: The model id is a tuple member, never hashed into 16 bytes of ``person=`` (which truncated it, and
#: so gave every ``anthropic.claude...`` id one shared cache).
CacheKey = tuple[str, str, bytes]
NO_KEY: CacheKey = ("", "", b"")

#: Most models remembered as unsupported at once: bounded, whatever ids an app invents.
_MAX_UNSUPPORTED = 4096


def cache_key(model: str, count_input: Mapping[str, Any]) -> CacheKey:
    """The cache key of one CountTokens question: two different models never share one."""
    invoke = count_input.get("invokeModel")
    if invoke is not None:
        payload: bytes = invoke["body"]
        kind = "invokeModel"
    else:
        payload = json.dumps(count_input, sort_keys=True, default=repr).encode()
        kind = "converse"
    return model, kind, hashlib.blake2b(payload, digest_size=16).digest()


class CountCache:
    """The counts of requests already counted (``size`` entries, 0: none) and the models
    CountTokens does not support (for ``remember_seconds`` each)."""

    def __init__(self, size: int, remember_seconds: float) -> None:
        self.size = size
        self._remember_seconds = remember_seconds
        self._counts: OrderedDict[CacheKey, int] = OrderedDict()
        self._unsupported: dict[str, float] = {}  # count model id -> remembered until (monotonic)
        self._lock = threading.Lock()

    def key(self, model: str, count_input: Mapping[str, Any]) -> CacheKey:
        """The key of a question, or :data:`NO_KEY` without a cache (nothing is hashed then)."""
        return cache_key(model, count_input) if self.size else NO_KEY

    def get(self, key: CacheKey) -> int | None:
        """The count of an identical request counted before, or ``None``."""
        if not self.size:
            return None
        with self._lock:
            value = self._counts.get(key)
            if value is not None:
                self._counts.move_to_end(key)
            return value

    def put(self, key: CacheKey, predicted: int) -> None:
        if not self.size:
            return
        with self._lock:
            self._counts[key] = predicted
            self._counts.move_to_end(key)
            while len(self._counts) > self.size:
                self._counts.popitem(last=False)

    def is_unsupported(self, model: str) -> bool:
        """Whether CountTokens refused ``model`` within the last ``remember_seconds``."""
        until = self._unsupported.get(model)
        if until is None:
            return False
        if monotonic() < until:
            return True
        with self._lock:
            self._unsupported.pop(model, None)
        return False

    def remember_unsupported(self, model: str) -> None:
        with self._lock:
            self._unsupported[model] = monotonic() + self._remember_seconds
            if len(self._unsupported) > _MAX_UNSUPPORTED:
                self._unsupported.pop(next(iter(self._unsupported)))

    def sizes(self) -> dict[str, tuple[int, int]]:
        """Each structure's size and bound (for the soak benchmark)."""
        return {
            "cache": (len(self._counts), self.size),
            "unsupported": (len(self._unsupported), _MAX_UNSUPPORTED),
        }

    def after_fork_in_child(self) -> None:
        """A fresh lock (the parent's may have been held at the fork); the data is kept, trimmed."""
        self._lock = threading.Lock()
        while len(self._counts) > self.size:
            self._counts.popitem(last=False)
