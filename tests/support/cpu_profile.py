"""Opt-in pytest plugin: CPU time (user+sys of this process, every thread) per test and per module.

    python -m pytest -p tests.support.cpu_profile -n 2 ...   # writes .cpu-profile/<worker>.tsv

Wall-clock durations mislead on a shared, loaded machine (a test waiting for the CPU looks slow);
the CPU a test burns does not depend on the load. Child processes a test starts are not counted
(their time shows in the run's total from ``/usr/bin/time``). ``python -m tests.support.cpu_profile``
prints the top tests and the per-module totals from those files.
"""

from __future__ import annotations

import os
import sys
import time
from collections import defaultdict
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

DIRECTORY = Path(".cpu-profile")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: Any) -> Generator[None, None, None]:
    started = time.process_time()
    yield
    spent = time.process_time() - started
    DIRECTORY.mkdir(exist_ok=True)
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    with (DIRECTORY / f"{worker}.tsv").open("a") as out:
        out.write(f"{spent:.3f}\t{item.nodeid}\n")


def main() -> None:
    """Top 40 tests by CPU, then every module's total, from the workers' files."""
    tests: list[tuple[float, str]] = []
    for path in DIRECTORY.glob("*.tsv"):
        for line in path.read_text().splitlines():
            spent, nodeid = line.split("\t", 1)
            tests.append((float(spent), nodeid))
    modules: dict[str, float] = defaultdict(float)
    for spent, nodeid in tests:
        modules[nodeid.split("::", 1)[0]] += spent
    print(f"total CPU in tests: {sum(s for s, _ in tests):.1f} s over {len(tests)} tests")
    for spent, nodeid in sorted(tests, reverse=True)[:40]:
        print(f"{spent:8.2f}s  {nodeid}")
    print("--- per module")
    for module, spent in sorted(modules.items(), key=lambda kv: -kv[1])[:40]:
        print(f"{spent:8.2f}s  {module}")


if __name__ == "__main__":
    sys.exit(main())
