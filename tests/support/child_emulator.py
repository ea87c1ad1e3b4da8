"""The emulator in a child process, for tests that measure this process (memory peaks, CPU).

An in-process emulator parses and tokenizes every request body in the test's own process: under
``tracemalloc`` that work is both counted in the peak and slowed several times over by tracing. In
a child process only the client side (the code under test) is measured and traced.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_CHILD = """
import sys
from otel_bedrock_tokens.emulator import BedrockEmulator
with BedrockEmulator() as emulator:
    print(emulator.endpoint_url, flush=True)
    sys.stdin.read()
"""


@contextmanager
def child_emulator() -> Iterator[str]:
    """Starts the emulator in a child interpreter; yields its URL; stops it when stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the emulator did not start: {url!r}")
        yield url
    finally:
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)


def client_for(url: str, read_timeout: float = 120.0) -> Any:
    """A real botocore ``bedrock-runtime`` client for ``url`` (dummy credentials, no retries).
    The read timeout is a failure guard only: a loaded machine must not turn into a flake."""
    import botocore.session
    from botocore.config import Config

    return botocore.session.get_session().create_client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}, read_timeout=read_timeout),
    )
