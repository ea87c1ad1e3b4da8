"""``otel-bedrock-tokens``: the command line.

* ``demo``      run the demo against the local emulator (no AWS account needed);
* ``emulator``  run the local Bedrock emulator until interrupted, for your own app or tests;
* ``count``     count the input tokens of a prompt or request file with Bedrock's CountTokens
                (real AWS by default; ``--endpoint-url`` for the emulator);
* ``prices``    show the price the instrumentation uses for a model id (needs the ``cost`` extra or
                a price file); exit 1 when the id is unpriced.

Exit status: 0 success, 1 failure (an API error, or the demo's telemetry disagreeing with the
ledger), 2 usage errors.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

from .version import __version__

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class UsageError(Exception):
    """A problem with the arguments: exit status 2."""


# --- demo -----------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from . import demo

    if args.calls < 1:
        raise UsageError("--calls must be at least 1")
    return demo.main(
        args.calls, color=False if args.no_color else None, show_progress=not args.quiet, as_json=args.json
    )


# --- emulator -------------------------------------------------------------------------------------


def _drift(spec: str) -> tuple[str, int, float]:
    """``MODEL=+5`` (offset), ``MODEL=x1.03`` (factor) or ``MODEL=x1.03+5``."""
    model, equals, value = spec.rpartition("=")
    if not equals or not model or not value:
        raise UsageError(f"--drift {spec!r}: expected MODEL=+N, MODEL=-N or MODEL=xFACTOR")
    factor, offset = 1.0, 0
    try:
        if value[0] in "x*":
            head, sign, tail = value[1:].partition("+") if "+" in value else value[1:].partition("-")
            factor = float(head)
            offset = int(sign + tail) if sign else 0
        else:
            offset = int(value)
    except ValueError:
        raise UsageError(f"--drift {spec!r}: expected MODEL=+N, MODEL=-N or MODEL=xFACTOR") from None
    return model, offset, factor


def _pair(option: str, spec: str) -> tuple[str, str]:
    key, equals, value = spec.rpartition("=")
    if not equals or not key or not value:
        raise UsageError(f"{option} {spec!r}: expected MODEL=VALUE")
    return key, value


def _emulator(args: argparse.Namespace) -> int:
    from .emulator import BedrockEmulator

    if args.host not in LOOPBACK_HOSTS:
        raise UsageError(f"--host {args.host!r}: the emulator only listens on loopback (127.0.0.1, ::1)")
    aliases = dict(_pair("--alias", spec) for spec in args.alias)
    try:
        emulator = BedrockEmulator(
            args.port,
            args.host,
            aliases=aliases,
            output_tokens=args.output_tokens,
            cache_minimum=args.cache_minimum,
            count_tokens_accepts_profiles=args.count_tokens_profiles,
        )
        for spec in args.fault:
            emulator.faults.add_spec(spec)
        for spec in args.drift:
            model, offset, factor = _drift(spec)
            emulator.set_drift(model, offset=offset, factor=factor)
        if args.latency_ms or args.per_token_ms:
            emulator.set_latency(args.latency_ms / 1000.0, args.per_token_ms / 1000.0)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if not args.quiet:
        emulator.ledger.subscribe(_log_entry)
    stop = threading.Event()

    def on_signal(number: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        with emulator:
            print(f"Bedrock emulator listening on {emulator.endpoint_url}", flush=True)
            print(f"export AWS_ENDPOINT_URL_BEDROCK_RUNTIME={emulator.endpoint_url}", flush=True)
            sys.stderr.write("Any credentials work; Ctrl-C stops it. Control: GET/POST /_emulator/...\n")
            sys.stderr.flush()
            stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    _summary(emulator)
    if args.ledger_json:
        Path(args.ledger_json).write_text(json.dumps(emulator.ledger.to_dict(), indent=2))
    return 0


def _log_entry(entry: Any) -> None:
    usage = (
        f"in={entry.input_tokens} out={entry.output_tokens} cache_r={entry.cache_read_tokens} "
        f"cache_w={entry.cache_write_tokens}"
        if entry.billed
        else f"counted={entry.counted_tokens}"
        if entry.counted_tokens is not None
        else "not billed"
    )
    problem = f" {entry.error}" if entry.error else ""
    fault = f" [fault: {entry.fault}]" if entry.fault else ""
    sys.stderr.write(
        f"{entry.status} {entry.operation} {entry.model_id}{problem}{fault} {usage} {entry.latency_ms}ms\n"
    )
    sys.stderr.flush()


def _summary(emulator: Any) -> None:
    totals = emulator.ledger.totals()
    if not totals:
        sys.stderr.write("No requests served.\n")
        return
    sys.stderr.write("Served (billed calls / input / output / cache read / cache write / errors):\n")
    for model, t in sorted(totals.items()):
        sys.stderr.write(
            f"  {model}: {t.calls} / {t.input_tokens} / {t.output_tokens} / {t.cache_read_tokens} / "
            f"{t.cache_write_tokens} / {t.errors}\n"
        )


# --- count ----------------------------------------------------------------------------------------

#: Keys that mark a file as an InvokeModel body rather than a Converse request.
_INVOKE_MARKERS = frozenset(
    {"anthropic_version", "inputText", "prompt", "schemaVersion", "texts", "message", "inferenceConfig"}
)


def count_input(text: str | None, document: Any, raw: str | None, kind: str) -> dict[str, Any]:
    """The CountTokens ``input`` for a prompt text or a request file."""
    if text is not None:
        return {"converse": {"messages": [{"role": "user", "content": [{"text": text}]}]}}
    if not isinstance(document, dict):
        raise UsageError("the request file must hold a JSON object")
    if kind == "auto":
        if isinstance(document.get("input"), dict) and {"invokeModel", "converse"} & set(document["input"]):
            return dict(document["input"])
        kind = "invoke" if _INVOKE_MARKERS & set(document) or _has_typed_blocks(document) else "converse"
    if kind == "converse":
        from .count_tokens_input import count_tokens_input

        converse = count_tokens_input("Converse", document)
        if converse is None or not isinstance(document["messages"], list):
            raise UsageError("a Converse request file needs a 'messages' list")
        return converse
    return {"invokeModel": {"body": raw if raw is not None else json.dumps(document)}}


def _has_typed_blocks(document: dict[str, Any]) -> bool:
    """Anthropic Messages bodies have ``{"type": ...}`` content blocks or string content."""
    for message in document.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        if isinstance(content, str):
            return True
        if isinstance(content, list) and any(
            isinstance(block, dict) and "type" in block for block in content
        ):
            return True
    return False


def count_model_id(model: str) -> tuple[str, str | None]:
    """The id to ask CountTokens about, and a note when it names another model than ``model``.

    The same id the predictor asks about (:func:`.count_tokens_input.count_model_id`): the plain
    foundation-model id, also for a foundation-model ARN (no note: the same model) and a cross-region
    profile (with a note: the foundation model behind it). Opaque ids name no model CountTokens can
    count: a usage error."""
    from .count_tokens_input import count_model_id as foundation_model_of
    from .model_id import parse_model_id

    ref = parse_model_id(model)
    counted = foundation_model_of(ref)
    if counted is None:
        raise UsageError(
            f"{model} is an {ref.kind} id: CountTokens needs a foundation model id "
            "(e.g. anthropic.claude-sonnet-4-20250514-v1:0)"
        )
    if ref.kind in ("inference-profile",) or ref.geo is not None:
        return counted, f"counting with {counted}, the foundation model behind {model}"
    return counted, None


def _is_loopback(url: str | None) -> bool:
    return url is not None and (urlsplit(url).hostname or "") in LOOPBACK_HOSTS


def _count(args: argparse.Namespace) -> int:
    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

    raw: str | None = None
    document: Any = None
    if args.file is not None:
        try:
            raw = sys.stdin.read() if args.file == "-" else Path(args.file).read_text(encoding="utf-8")
            document = json.loads(raw)
        except OSError as error:
            raise UsageError(f"cannot read {args.file}: {error.strerror or error}") from None
        except ValueError as error:
            raise UsageError(f"{args.file} is not JSON: {error}") from None
    count_for = count_input(args.text, document, raw, args.kind)
    model, note = count_model_id(args.model)
    if note is not None:
        sys.stderr.write(f"note: {note}\n")
    try:
        session = botocore.session.Session(profile=args.profile)
        credentials = session.get_credentials()
    except ProfileNotFound as error:
        raise UsageError(str(error)) from None
    keys: dict[str, str] = {}
    if credentials is None:
        if not _is_loopback(args.endpoint_url):
            sys.stderr.write(
                "error: no AWS credentials found. Configure them (aws configure, AWS_PROFILE, or "
                "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY), or count against the local emulator with "
                "--endpoint-url http://127.0.0.1:PORT (see 'otel-bedrock-tokens emulator').\n"
            )
            return 1
        keys = {"aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}
    region = args.region or session.get_config_variable("region") or "us-east-1"
    client = session.create_client(
        "bedrock-runtime",
        region_name=region,
        endpoint_url=args.endpoint_url,
        config=Config(
            retries={"total_max_attempts": 3, "mode": "standard"}, read_timeout=30, connect_timeout=10
        ),
        **keys,
    )
    try:
        response = client.count_tokens(modelId=model, input=count_for)
    except NoCredentialsError:
        sys.stderr.write("error: no AWS credentials found (see 'aws configure').\n")
        return 1
    except ClientError as error:
        details = error.response.get("Error", {})
        code, message = details.get("Code", "Error"), details.get("Message", str(error))
        if code == "ValidationException" and "support counting tokens" in message:
            sys.stderr.write(f"error: {model} does not support CountTokens ({message})\n")
        elif code == "AccessDeniedException":
            sys.stderr.write(f"error: access denied to CountTokens for {model} ({message})\n")
        else:
            sys.stderr.write(f"error: {code}: {message}\n")
        return 1
    except BotoCoreError as error:
        sys.stderr.write(f"error: {error}\n")
        return 1
    tokens = int(response["inputTokens"])
    if args.json:
        print(json.dumps({"modelId": model, "inputTokens": tokens}))
    else:
        print(tokens)
    return 0


# --- prices ---------------------------------------------------------------------------------------


def _prices(args: argparse.Namespace) -> int:
    from .pricing import PriceBook, PriceFileError, load_price_file, user_prices_from_env

    try:
        user = load_price_file(args.prices) if args.prices else user_prices_from_env()
    except PriceFileError as error:
        raise UsageError(str(error)) from None
    book = PriceBook(user)
    prices = book.prices_for(args.model_id, args.tier)
    if prices is None:
        version = book.genai_prices_version
        where = (
            f"genai-prices {version}"
            if version
            else "genai-prices (not installed: pip install 'otel-bedrock-tokens[cost]')"
        )
        files = f" or the price file {user.path}" if user is not None else ""
        print(
            f"{args.model_id}: no price at service tier {args.tier!r} in {where}{files}; "
            "its calls are unpriced (bedrock_tokens.cost.source=unpriced)",
            file=sys.stderr,
        )
        return 1
    user_file = user.path if user is not None and prices.source == "user" else None
    snapshot = f"price file {user_file}" if user_file else book.snapshot_description()
    rows = {
        "model": args.model_id,
        "priced as": prices.model_ref,
        "matched": prices.matched,
        "service tier": prices.tier,
        "region kind": prices.region_kind,
        "source": prices.source,
        "data": snapshot,
    }
    if args.json:
        print(json.dumps({**rows, "usd_per_mtok": dict(prices.per_mtok)}))
        return 0
    width = max(len(name) for name in rows)
    for name, value in rows.items():
        print(f"{name:<{width}}  {value}")
    print("USD per million tokens:")
    for key, value in prices.per_mtok:
        print(f"  {key:<20}  {value}")
    return 0


# --- parser ---------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-bedrock-tokens",
        description="OpenTelemetry token telemetry for Amazon Bedrock: demo, local emulator, token counting.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    demo = commands.add_parser(
        "demo",
        help="run a mixed Bedrock workload against the local emulator and show the telemetry",
        description="Runs a realistic workload against the local Bedrock emulator, prints the per-model "
        "telemetry and checks it against what the emulator billed. Exports over OTLP when "
        "OTEL_EXPORTER_OTLP_ENDPOINT is set.",
    )
    demo.add_argument("--calls", type=int, default=60, help="number of calls (default: 60)")
    demo.add_argument("--no-color", action="store_true", help="no ANSI colors (NO_COLOR is honoured too)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument("--json", action="store_true", help="print the result as JSON instead of a table")
    demo.set_defaults(run=_demo)

    emulator = commands.add_parser(
        "emulator",
        help="run the local Bedrock emulator until interrupted",
        description="Serves bedrock-runtime (InvokeModel, InvokeModelWithResponseStream, Converse, "
        "ConverseStream, CountTokens) on a loopback port. Point boto3 at it with "
        "endpoint_url=... or AWS_ENDPOINT_URL_BEDROCK_RUNTIME; any credentials work.",
    )
    emulator.add_argument("--host", default="127.0.0.1", help="loopback address (default: 127.0.0.1)")
    emulator.add_argument("--port", type=int, default=0, help="TCP port (default: 0, any free port)")
    emulator.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault, e.g. 'throttle,operation=Converse,times=2' or "
        "'stream-exception,events=3,model=anthropic.claude-3-5-haiku-20241022-v1:0' (repeatable)",
    )
    emulator.add_argument(
        "--drift",
        action="append",
        default=[],
        metavar="MODEL=DELTA",
        help="CountTokens error for a model: MODEL=+N, MODEL=-N or MODEL=x1.05 (repeatable)",
    )
    emulator.add_argument(
        "--alias",
        action="append",
        default=[],
        metavar="ID=BACKING",
        help="serve an opaque id as a model or family",
    )
    emulator.add_argument("--latency-ms", type=float, default=0.0, help="time to first byte, ms")
    emulator.add_argument("--per-token-ms", type=float, default=0.0, help="time per output token, ms")
    emulator.add_argument("--output-tokens", type=int, default=24, help="typical reply length in tokens")
    emulator.add_argument("--cache-minimum", type=int, default=None, help="minimum cacheable prefix (tokens)")
    emulator.add_argument(
        "--count-tokens-profiles",
        action="store_true",
        help="let CountTokens accept us./eu./global. profile ids",
    )
    emulator.add_argument("--ledger-json", metavar="FILE", help="write the ledger as JSON on exit")
    emulator.add_argument("--quiet", action="store_true", help="do not log each request to stderr")
    emulator.set_defaults(run=_emulator)

    count = commands.add_parser(
        "count",
        help="count input tokens with Bedrock's CountTokens",
        description="Prints the input tokens of a prompt (--text) or of a Converse / InvokeModel request "
        "file (--file, '-' for stdin) as Bedrock's CountTokens API counts them: the number the "
        "call will bill as input. Uses your AWS credentials; --endpoint-url points it at the emulator.",
    )
    count.add_argument("--model", required=True, help="foundation model id (profiles map to their model)")
    source = count.add_mutually_exclusive_group(required=True)
    source.add_argument("--text", help="a prompt, counted as one user message")
    source.add_argument("--file", help="a JSON Converse request or InvokeModel body ('-': stdin)")
    count.add_argument(
        "--kind",
        choices=("auto", "converse", "invoke"),
        default="auto",
        help="how to read --file (default: auto)",
    )
    count.add_argument("--endpoint-url", help="e.g. the emulator's http://127.0.0.1:PORT")
    count.add_argument("--region", help="AWS region (default: from your config, else us-east-1)")
    count.add_argument("--profile", help="AWS profile")
    count.add_argument("--json", action="store_true", help='print {"modelId": ..., "inputTokens": N}')
    count.set_defaults(run=_count)

    prices = commands.add_parser(
        "prices",
        help="show the price used for a model id",
        description="Prints the per-token prices the instrumentation uses for MODEL_ID (any id form: "
        "profiles, ARNs): which genai-prices entry or price-file entry matched, the service tier, the "
        "source and the price data. Exit status 1 when the id is unpriced.",
    )
    prices.add_argument("model_id", metavar="MODEL_ID", help="a Bedrock model id, profile id or ARN")
    prices.add_argument(
        "--tier",
        default="default",
        choices=("default", "priority", "flex", "reserved"),
        help="service tier (default: default)",
    )
    prices.add_argument(
        "--prices", metavar="FILE", help="a price file (default: $OTEL_BEDROCK_TOKENS_PRICES)"
    )
    prices.add_argument("--json", action="store_true", help="print one JSON object")
    prices.set_defaults(run=_prices)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except UsageError as error:
        parser.exit(2, f"{parser.prog} {args.command}: error: {error}\n")


if __name__ == "__main__":
    sys.exit(main())
