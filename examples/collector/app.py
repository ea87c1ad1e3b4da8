"""Sample app for the collector example: Amazon Bedrock calls measured by otel-bedrock-tokens.

Run it under ``opentelemetry-instrument`` (zero code: the SDK, the OTLP exporters and our
instrumentor, found by its ``bedrock_tokens`` entry point, are set up from ``OTEL_*`` variables)::

    OTEL_SERVICE_NAME=bedrock-tokens-app \\
    OTEL_EXPORTER_OTLP_ENDPOINT=http://localhost:4318 OTEL_EXPORTER_OTLP_PROTOCOL=http/protobuf \\
    OTEL_BEDROCK_TOKENS_COUNT_TOKENS=parallel \\
    opentelemetry-instrument python examples/collector/app.py

By default it calls the built-in Bedrock emulator (no AWS account, nothing billed), round after
round, the same mixed workload as ``otel-bedrock-tokens demo``: a dozen models, InvokeModel, Converse
and both streams, prompt caching, CountTokens predictions, a throttled call and a stream that fails
mid-way in every round. ``--bedrock aws`` (or ``APP_BEDROCK=aws``) calls real Amazon Bedrock with
your default AWS credentials instead: that costs money, so it makes one round unless told otherwise.

Each call runs inside an application span (as a request handler would), so the metric exemplars the
SDK attaches carry a trace id, and a latency or token point in Grafana links to its trace in Jaeger.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

from otel_bedrock_tokens import BedrockTokensInstrumentor, demo
from otel_bedrock_tokens.emulator import BedrockEmulator, Fault

#: ``OTEL_SERVICE_NAME`` in docker-compose.yaml: the dashboard's ``service`` variable (Prometheus ``job``).
SERVICE_NAME = "bedrock-tokens-app"
#: Real Bedrock: a model that supports prompt caching and CountTokens, through a US inference profile.
DEFAULT_AWS_MODEL = "us.anthropic.claude-3-5-haiku-20241022-v1:0"
#: The stream that fails mid-way in every emulator round (``error.type=modelStreamErrorException``).
FAILING_STREAM_MODEL = "meta.llama3-1-8b-instruct-v1:0"


# --- the workload -------------------------------------------------------------------------------


def emulator_steps() -> list[demo.Step]:
    """One round against the emulator: every step of the demo once."""
    return list(demo.workload(len(demo.STEPS)))


def aws_steps(model_id: str) -> list[demo.Step]:
    """One round against real Bedrock: the four operations on one model, a cached system prompt."""

    def converse(i: int) -> dict[str, Any]:
        return {
            "modelId": model_id,
            "system": [{"text": demo.POLICY}, {"cachePoint": {"type": "default"}}],
            "messages": [{"role": "user", "content": [{"text": demo.QUESTIONS[i % len(demo.QUESTIONS)]}]}],
            "inferenceConfig": {"maxTokens": 200},
        }

    def invoke(i: int) -> dict[str, Any]:
        body = {
            "anthropic_version": demo.ANTHROPIC_VERSION,
            "max_tokens": 200,
            "system": [{"type": "text", "text": demo.POLICY, "cache_control": {"type": "ephemeral"}}],
            "messages": [{"role": "user", "content": demo.QUESTIONS[i % len(demo.QUESTIONS)]}],
        }
        return {"modelId": model_id, "body": json.dumps(body)}

    return [
        demo.Step("Converse", model_id, converse),
        demo.Step("ConverseStream", model_id, converse),
        demo.Step("InvokeModel", model_id, invoke),
        demo.Step("InvokeModelWithResponseStream", model_id, invoke),
    ]


def configure_emulator(emulator: BedrockEmulator) -> None:
    """The demo's models, latencies and CountTokens drift; faults are added per round."""
    demo.configure(emulator)
    emulator.faults.clear()


def inject_round_faults(emulator: BedrockEmulator) -> None:
    """One throttled Converse call and one stream cut by an exception frame, per round."""
    emulator.inject(Fault.throttle(), operation="Converse", model=demo.THROTTLED_MODEL, times=1)
    emulator.inject(
        Fault.stream_exception(after_events=1),
        operation="InvokeModelWithResponseStream",
        model=FAILING_STREAM_MODEL,
        times=1,
    )


def run_round(client: Any, steps: Sequence[demo.Step], tracer: Any, round_number: int) -> dict[str, int]:
    """Make every call of one round, each in its own application span; the AWS error codes seen."""
    from botocore.exceptions import ClientError
    from opentelemetry.trace import SpanKind

    errors: dict[str, int] = {}
    for index, step in enumerate(steps):
        number = round_number * len(steps) + index
        with tracer.start_as_current_span(
            "handle question", kind=SpanKind.SERVER, attributes={"app.question.number": number}
        ):
            try:
                demo.call(client, step, number)
            except ClientError as error:
                code = str(error.response.get("Error", {}).get("Code", type(error).__name__))
                errors[code] = errors.get(code, 0) + 1
    return errors


# --- running it ---------------------------------------------------------------------------------


def _flush() -> None:
    """Export what is pending before the process ends (the SDK also does so at exit)."""
    from opentelemetry import metrics, trace

    BedrockTokensInstrumentor().wait_for_predictions(10.0)
    for provider in (trace.get_tracer_provider(), metrics.get_meter_provider()):
        flush = getattr(provider, "force_flush", None)
        if callable(flush):
            flush()


def _aws_client() -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("bedrock-runtime", config=Config(retries={"mode": "standard", "max_attempts": 3}))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--bedrock",
        choices=("emulator", "aws"),
        default=os.environ.get("APP_BEDROCK", "emulator"),
        help="the local emulator (default) or real Amazon Bedrock (default credentials; costs money)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=int(os.environ["APP_ROUNDS"]) if os.environ.get("APP_ROUNDS") else None,
        help="rounds of calls; 0 runs until interrupted (default: 0 with the emulator, 1 with aws)",
    )
    parser.add_argument("--pause", type=float, default=float(os.environ.get("APP_PAUSE", "2")))
    parser.add_argument("--model", default=os.environ.get("APP_MODEL_ID", DEFAULT_AWS_MODEL))
    parser.add_argument("--json", action="store_true", help="print a JSON summary (with the ledger)")
    args = parser.parse_args(argv)
    rounds = args.rounds if args.rounds is not None else (0 if args.bedrock == "emulator" else 1)

    from opentelemetry import trace

    if not BedrockTokensInstrumentor().is_instrumented_by_opentelemetry:
        print("note: botocore is not instrumented; run me under opentelemetry-instrument", file=sys.stderr)
    tracer = trace.get_tracer("bedrock-tokens-sample-app")
    errors: dict[str, int] = {}
    done = 0
    steps: list[demo.Step] = []
    emulator: BedrockEmulator | None = None
    try:
        if args.bedrock == "emulator":
            emulator = BedrockEmulator(port=int(os.environ.get("APP_EMULATOR_PORT", "0"))).start()
            configure_emulator(emulator)
            client, steps = emulator.client(retries=0), emulator_steps()
            print(f"calling the Bedrock emulator at {emulator.endpoint_url}", file=sys.stderr)
        else:
            client, steps = _aws_client(), aws_steps(args.model)
            print(f"calling Amazon Bedrock ({args.model}); this is billed", file=sys.stderr)
        while rounds == 0 or done < rounds:
            if emulator is not None:
                inject_round_faults(emulator)
            for code, count in run_round(client, steps, tracer, done).items():
                errors[code] = errors.get(code, 0) + count
            done += 1
            print(f"round {done}: {done * len(steps)} calls, errors so far: {errors}", file=sys.stderr)
            if rounds == 0 or done < rounds:
                time.sleep(args.pause)
    except KeyboardInterrupt:
        pass
    finally:
        _flush()
        ledger = emulator.ledger.to_dict() if emulator is not None else None
        if emulator is not None:
            emulator.stop()
    if args.json:
        summary = {"rounds": done, "calls": done * len(steps), "errors": errors}
        if ledger is not None:
            summary["ledger"] = {"models": ledger["models"], "total": ledger["total"]}
        print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
