"""Soak, bounded: the workload of ``benchmarks/soak.py`` (every operation and stream ending, faults,
opaque ids, CountTokens prediction on a share of calls) for a few thousand calls. After a warm-up,
the heap (tracemalloc), the memory allocated by our package, threads, file descriptors, sockets and
every cache of ours stay flat / within their bounds. The emulator runs in a child process, so
only the client is measured. ``python benchmarks/soak.py`` runs the 100k-call version.
"""

from __future__ import annotations

import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

import soak

#: Scheduled first under xdist; deselect with ``-m 'not slow'`` for a quick run.
pytestmark = pytest.mark.slow

WARMUP = 600
MEASURED = 1500


@pytest.fixture(scope="module")
def emulator_url() -> Iterator[str]:
    with soak.emulator_process() as url:
        yield url


def test_memory_threads_and_descriptors_stay_flat(emulator_url: str) -> None:
    thread_limit = threading.active_count() + 1 + soak.WORKERS + soak.OUR_REAPER
    # A prediction cache and an opaque-id pool that the warm-up fills, so growth after it is a leak.
    with soak.instrumentation(cache_size=16) as spans:
        workload = soak.Workload(soak.make_client(emulator_url), opaque_pool=40)
        for index in range(WARMUP):
            workload.run(index)
        spans()
        tracemalloc.start(1)
        started = time.perf_counter()
        try:
            first = soak.sample(WARMUP, started)
            for index in range(WARMUP, WARMUP + MEASURED):
                workload.run(index)
            exported = spans()
            last = soak.sample(WARMUP + MEASURED, started)
        finally:
            tracemalloc.stop()
    print(first.line())
    print(last.line())
    assert exported == WARMUP + MEASURED  # one span per call, whatever happened
    assert set(workload.errors) == {"ThrottlingException"}, workload.errors
    found = soak.problems(first, last, thread_limit, heap_limit=768 * 1024, ours_limit=64 * 1024)
    assert found == [], found


def test_every_cache_stays_within_its_bound(emulator_url: str) -> None:
    """More distinct model ids than the model-id cache holds, more distinct prompts than the
    prediction cache holds: each cache stops at its bound."""
    from otel_bedrock_tokens import model_id

    bound = model_id.parse_model_id.cache_info().maxsize
    assert bound is not None
    with soak.instrumentation(cache_size=32) as spans:
        client = soak.make_client(emulator_url)
        for index in range(bound + 100):
            client.converse(
                modelId=soak.OPAQUE.format(100_000 + index),
                messages=soak.messages(f"distinct question {index}"),
            )
        for index in range(120):  # predicted (sample rate 0.25): ~30 distinct cache entries and more
            client.converse(modelId=soak.HAIKU, messages=soak.messages(f"another distinct question {index}"))
        spans()
        sizes = soak.cache_sizes()
    assert sizes["model_id.parse_model_id"] == (bound, bound)
    for name, (size, limit) in sizes.items():
        assert limit is None or size <= limit, (name, size, limit)
    assert 0 < sizes["predictor.cache"][0] <= 32
