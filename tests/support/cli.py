"""Run the ``otel-bedrock-tokens`` command as a user would (a child process, a clean environment)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "otel-bedrock-tokens"
COMMAND = [str(SCRIPT)] if SCRIPT.exists() else [sys.executable, "-m", "otel_bedrock_tokens.cli"]


def _env(**changes: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "OTEL_"))}
    env.update({k: v for k, v in changes.items() if v is not None})
    return env


def run(
    *args: str, timeout: float = 60, env: dict[str, str] | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or _env(),
        input=stdin,
        check=False,
    )
