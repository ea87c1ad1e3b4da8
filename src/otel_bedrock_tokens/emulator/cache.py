"""The prompt cache: written on first use of a cache point, read while it lives.

Bedrock semantics, as far as billing shows them: each cache point caches the prompt up to it; a
request reads the longest cached prefix and writes the part of its longest cache point that was not
read. Prefixes shorter than the model's minimum are never cached (Bedrock silently skips them). A hit
refreshes the entry's lifetime. Entries are keyed per backing model, so two ids of the same model
(``us.`` profile and foundation id) share a cache, as they do on Bedrock within one account.

Entries are kept per TTL (``cachePoint.ttl`` / ``cache_control.ttl``: ``5m`` or ``1h``): a prefix
cached for an hour and the same prefix cached for five minutes are two entries, each read only by a
cache point of its own TTL. Writes are reported per TTL, as Bedrock bills them: the tokens between
two cache points belong to the TTL of the cache point that ends them.
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


#: Seconds of the one-hour TTL (everything else is the default five minutes).
ONE_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class CacheOutcome:
    read: int = 0
    write: int = 0
    #: ``write`` split by TTL: written with a one-hour lifetime (the rest is five minutes).
    write_1h: int = 0

    @property
    def write_5m(self) -> int:
        return self.write - self.write_1h


class PromptCache:
    """Thread-safe: concurrent first uses may both write, exactly as on Bedrock."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._expiry: OrderedDict[tuple[str, str, float], float] = OrderedDict()

    def apply(self, namespace: str, prefixes: Sequence[CachePrefix], minimum: int) -> CacheOutcome:
        eligible = [prefix for prefix in prefixes if prefix.tokens >= minimum]
        if not eligible:
            return CacheOutcome()
        with self._lock:
            now = self._clock()
            read = 0
            for prefix in eligible:
                expiry = self._expiry.get((namespace, prefix.digest, prefix.ttl))
                if expiry is not None and expiry > now:
                    read = max(read, prefix.tokens)
            for prefix in eligible:
                key = (namespace, prefix.digest, prefix.ttl)
                self._expiry[key] = max(self._expiry.get(key, 0.0), now + prefix.ttl)
                self._expiry.move_to_end(key)
            while len(self._expiry) > MAX_ENTRIES:
                self._expiry.popitem(last=False)
        write = write_1h = 0
        covered = read
        for prefix in sorted(eligible, key=lambda prefix: prefix.tokens):
            if prefix.tokens > covered:
                written = prefix.tokens - covered
                write += written
                if prefix.ttl >= ONE_HOUR:
                    write_1h += written
                covered = prefix.tokens
        return CacheOutcome(read=read, write=write, write_1h=write_1h)

    def clear(self) -> None:
        with self._lock:
            self._expiry.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._expiry)
