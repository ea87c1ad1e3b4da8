"""Cost of the httpx/httpx2 adapter: per Bedrock call against the botocore path, per other request.

- Per call: the CPU an InvokeModel call gains from the instrumentation (instrumented minus
  uninstrumented, medians of interleaved blocks, ``time.process_time``), on both paths with the
  same canned response (a Claude body and Bedrock's token headers): an ``httpx2.Client`` on a
  ``MockTransport`` (the request carries a SigV4 ``Authorization`` header naming ``bedrock``, as
  the anthropic SDK's does), and a boto3 client answered by a ``before-send`` handler.
- Other: the CPU a POST to an ordinary API gains end to end (the wrapt layer plus the check; a
  difference of two medians of ~100 us calls, so only good to a microsecond or so).
- Check: what our layer adds to a request that is not Bedrock (a GET; a POST to an ordinary API
  path): the layer on a stub client against the stub alone, best of ``--rounds``.

    python benchmarks/bench_httpx.py [--rounds 15] [--calls 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httpx2

from bench_core import Setup
from canned import Canned, interleaved
from otel_bedrock_tokens.httpx_adapter import HttpxPatch

CLAUDE = "anthropic.claude-3-5-haiku-20241022-v1:0"
SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/bedrock/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=" + "0" * 64
)
REQUEST = json.dumps(
    {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "Name three rivers of Europe, briefly."}],
    }
).encode()
RESPONSE = json.dumps(
    {
        "id": "msg_bdrk_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-3-5-haiku-20241022",
        "content": [{"type": "text", "text": "Danube, Rhine, Elbe."}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": 17, "output_tokens": 9},
    }
).encode()
HEADERS = {
    "content-type": "application/json",
    "x-amzn-requestid": "00000000-0000-0000-0000-000000000000",
    "x-amzn-bedrock-input-token-count": "17",
    "x-amzn-bedrock-output-token-count": "9",
    "x-amzn-bedrock-invocation-latency": "321",
}
URL = f"https://bedrock-runtime.us-east-1.amazonaws.com/model/{CLAUDE}/invoke"


def per_call_added(setup: Setup, call: Any, rounds: int, calls: int) -> float:
    """Microseconds of CPU the instrumentation adds to one ``call()`` (median difference)."""
    for _ in range(5):
        call()
    base, measured = interleaved(call, call, setup.instrument, rounds, calls, time.process_time)
    return (statistics.median(measured) - statistics.median(base)) * 1e6


def httpx_call() -> Any:
    client = httpx2.Client(
        transport=httpx2.MockTransport(
            lambda request: httpx2.Response(200, headers=HEADERS, content=RESPONSE)
        )
    )
    headers = {"authorization": SIGV4, "content-type": "application/json"}

    def call() -> None:
        client.post(URL, content=REQUEST, headers=headers).read()

    return call


def botocore_call() -> Any:
    canned = Canned()
    canned.answer(RESPONSE, HEADERS)

    def call() -> None:
        canned.client.invoke_model(modelId=CLAUDE, body=REQUEST)["body"].read()

    return call


def other_call() -> Any:
    """A POST to an ordinary API through the same kind of client: pays the layer and the check."""
    client = httpx2.Client(
        transport=httpx2.MockTransport(lambda request: httpx2.Response(200, content=b"{}"))
    )

    def call() -> None:
        client.post("https://api.example.com/v1/items", content=b"{}").read()

    return call


class _Client:
    def _send_single_request(self, request: Any) -> Any:
        return request


class _AsyncClient:
    async def _send_single_request(self, request: Any) -> Any:
        return request


class _Patched(_Client):
    pass


class _PatchedAsync(_AsyncClient):
    pass


def check_cost(rounds: int) -> dict[str, float]:
    """Seconds our ``_send_single_request`` layer adds to a request that is not Bedrock: the layer
    applied to a stub client (whose method returns at once) against the same stub unpatched."""
    _Patched._send_single_request = _Client.__dict__["_send_single_request"]  # type: ignore[method-assign]
    _PatchedAsync._send_single_request = _AsyncClient.__dict__["_send_single_request"]  # type: ignore[method-assign]
    HttpxPatch(None).apply(SimpleNamespace(Client=_Patched, AsyncClient=_PatchedAsync))  # type: ignore[arg-type]
    requests = {
        "get": httpx2.Request("GET", "https://api.example.com/v1/items?page=2"),
        "post": httpx2.Request("POST", "https://api.example.com/v1/items", content=b"{}"),
    }
    plain, patched = _Client(), _Patched()
    out = {}
    for name, request in requests.items():
        best = {}
        for label, client in (("plain", plain), ("patched", patched)):
            send = client._send_single_request
            best[label] = float("inf")
            for _ in range(rounds):
                started = time.perf_counter()
                for _ in range(20_000):
                    send(request)
                best[label] = min(best[label], (time.perf_counter() - started) / 20_000)
        out[name] = best["patched"] - best["plain"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=300)
    args = parser.parse_args()
    setup = Setup("simple")
    httpx_us = per_call_added(setup, httpx_call(), args.rounds, args.calls)
    botocore_us = per_call_added(setup, botocore_call(), args.rounds, args.calls)
    other_us = per_call_added(setup, other_call(), args.rounds, args.calls)
    print(
        f"added CPU per InvokeModel call: httpx2 path {httpx_us:.1f} us, botocore path {botocore_us:.1f} us"
    )
    print(f"added CPU per non-Bedrock httpx2 POST (layer + check, noisy): {other_us:.2f} us")
    for name, seconds in check_cost(args.rounds).items():
        print(f"non-Bedrock {name}: layer + check {seconds * 1e6:.3f} us")


if __name__ == "__main__":
    main()
