"""The prompt cache: written on first use of a cache point, read while it lives.

Bedrock semantics, as far as billing shows them: each cache point caches the prompt up to it; a
request reads the longest cached prefix and writes the part of its longest cache point that was not
read. Prefixes shorter than the model's minimum are never cached (Bedrock silently skips them). A hit
refreshes the entry's lifetime. Entries are keyed per backing model, so two ids of the same model
(``us.`` profile and foundation id) share a cache, as they do on Bedrock within one account.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from .prompt import CachePrefix

#: Bound on the number of live entries; the oldest go first (tests never get near it).
MAX_ENTRIES = 10_000


@dataclass(frozen=True, slots=True)
class CacheOutcome:
    read: int = 0
    write: int = 0


class PromptCache:
    """Thread-safe: concurrent first uses may both write, exactly as on Bedrock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: OrderedDict[tuple[str, str], float] = OrderedDict()

    def apply(self, namespace: str, prefixes: Sequence[CachePrefix], minimum: int) -> CacheOutcome:
        eligible = [prefix for prefix in prefixes if prefix.tokens >= minimum]
        if not eligible:
            return CacheOutcome()
        with self._lock:
            now = self._clock()
            read = 0
            for prefix in eligible:
                expiry = self._expiry.get((namespace, prefix.digest))
                if expiry is not None and expiry > now:
                    read = max(read, prefix.tokens)
            longest = max(prefix.tokens for prefix in eligible)
            for prefix in eligible:
                key = (namespace, prefix.digest)
                self._expiry[key] = max(self._expiry.get(key, 0.0), now + prefix.ttl)
                self._expiry.move_to_end(key)
            while len(self._expiry) > MAX_ENTRIES:
                self._expiry.popitem(last=False)
        return CacheOutcome(read=read, write=longest - read if longest > read else 0)

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)
