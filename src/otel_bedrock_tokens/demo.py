"""``otel-bedrock-tokens demo``: see what the instrumentation records, with no AWS account.

The demo starts the local Bedrock emulator, sets up the OpenTelemetry SDK, instruments botocore,
and runs a realistic mixed workload: a dozen models from seven vendors, every model-id form (plain
ids, ``us.``/``global.`` profiles, ARNs, an application inference profile), InvokeModel, Converse and
both streams, prompt caching, tool use, embeddings and one throttled call. It then prints a
per-model table built *only from the exported telemetry* and checks it against the emulator's
ledger of what it billed: the two must agree to the token, or the demo exits non-zero.

With ``OTEL_EXPORTER_OTLP_ENDPOINT`` set, spans and metrics are also exported over OTLP/HTTP (the
``[demo]`` extra installs the exporter), so the same run shows up in your own backend.

Throttled calls: the client runs with botocore retries off, so the throttled call reaches the
caller as ``ThrottlingException``. Bedrock bills nothing for it; the ledger counts it as an error,
not a call, and so does the telemetry (a duration point with ``error.type``, no token points).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, TextIO

from .billing import BillingTerms
from .cost import price_book_for
from .emulator import BedrockEmulator, Fault, ModelTotals
from .emulator.ledger import LedgerEntry
from .names import COST, PREDICTED_INPUT_TOKENS
from .usage import Usage

#: The attribute of the SDK's point for attribute sets past its cardinality limit.
OVERFLOW = "otel.metric.overflow"

# --- the workload ---------------------------------------------------------------------------------

ANTHROPIC_VERSION = "bedrock-2023-05-31"
APP_PROFILE = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/demo7support"
#: A long, stable system prompt: long enough for every model's minimum cacheable prefix.
POLICY = " ".join(
    f"Rule {number}: answer politely, quote the order number, and never promise a refund you cannot grant."
    for number in range(1, 161)
)
QUESTIONS = (
    "Where is my order 4417?",
    "Can I change the delivery address of order 5120?",
    "What is the weather in Seattle today?",
    "Summarize the refund policy in two sentences.",
    "Translate 'thank you for your patience' to Spanish.",
    "Which plan suits a team of five engineers?",
)
WEATHER_TOOL = {
    "toolSpec": {
        "name": "get_weather",
        "description": "Current weather in a city.",
        "inputSchema": {
            "json": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
        },
    }
}


@dataclass(frozen=True, slots=True)
class Step:
    """One call of the workload."""

    operation: str
    model_id: str
    #: ``i`` (the call's number) -> keyword arguments for the botocore method.
    params: Callable[[int], dict[str, Any]]


def _question(i: int) -> str:
    return QUESTIONS[i % len(QUESTIONS)]


def _invoke(model_id: str, body: Callable[[int], dict[str, Any]], stream: bool = False) -> Step:
    operation = "InvokeModelWithResponseStream" if stream else "InvokeModel"
    return Step(operation, model_id, lambda i: {"modelId": model_id, "body": json.dumps(body(i))})


def _converse(
    model_id: str, extra: Callable[[int], dict[str, Any]] | None = None, stream: bool = False
) -> Step:
    def params(i: int) -> dict[str, Any]:
        request: dict[str, Any] = {
            "modelId": model_id,
            "messages": [{"role": "user", "content": [{"text": _question(i)}]}],
            "inferenceConfig": {"maxTokens": 200},
        }
        request.update(extra(i) if extra is not None else {})
        return request

    return Step("ConverseStream" if stream else "Converse", model_id, params)


def _claude_messages(i: int, cached: bool = False) -> dict[str, Any]:
    system: Any = (
        [{"type": "text", "text": POLICY, "cache_control": {"type": "ephemeral"}}] if cached else None
    )
    body: dict[str, Any] = {
        "anthropic_version": ANTHROPIC_VERSION,
        "max_tokens": 256,
        "messages": [{"role": "user", "content": _question(i)}],
    }
    if system is not None:
        body["system"] = system
    return body


def _cached_system(i: int) -> dict[str, Any]:
    return {"system": [{"text": POLICY}, {"cachePoint": {"type": "default"}}]}


def _tools(i: int) -> dict[str, Any]:
    return {"toolConfig": {"tools": [WEATHER_TOOL]}}


STEPS: tuple[Step, ...] = (
    _invoke("anthropic.claude-3-5-haiku-20241022-v1:0", lambda i: _claude_messages(i, cached=True)),
    _converse("us.anthropic.claude-sonnet-4-20250514-v1:0", _cached_system),
    _invoke("global.anthropic.claude-sonnet-4-5-20250929-v1:0", _claude_messages, stream=True),
    _converse("us.anthropic.claude-sonnet-4-20250514-v1:0", _tools, stream=True),
    _converse("arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"),
    _invoke(
        "us.amazon.nova-micro-v1:0",
        lambda i: {
            "schemaVersion": "messages-v1",
            "messages": [{"role": "user", "content": [{"text": _question(i)}]}],
            "inferenceConfig": {"maxTokens": 200},
        },
    ),
    _converse("amazon.nova-pro-v1:0", _cached_system, stream=True),
    _invoke(
        "amazon.titan-text-express-v1",
        lambda i: {"inputText": _question(i), "textGenerationConfig": {"maxTokenCount": 200}},
    ),
    _invoke("amazon.titan-embed-text-v2:0", lambda i: {"inputText": _question(i)}),
    _invoke(
        "meta.llama3-1-8b-instruct-v1:0", lambda i: {"prompt": _question(i), "max_gen_len": 200}, stream=True
    ),
    _invoke(
        "mistral.mistral-large-2407-v1:0",
        lambda i: {"messages": [{"role": "user", "content": _question(i)}], "max_tokens": 200},
    ),
    _invoke("cohere.command-r-plus-v1:0", lambda i: {"message": _question(i), "max_tokens": 200}),
    _invoke("cohere.embed-english-v3", lambda i: {"texts": [_question(i)], "input_type": "search_query"}),
    _invoke("us.deepseek.r1-v1:0", lambda i: {"prompt": _question(i), "max_tokens": 200}),
    _invoke(
        "openai.gpt-oss-20b-1:0",
        lambda i: {"messages": [{"role": "user", "content": _question(i)}], "max_completion_tokens": 200},
    ),
    _converse(APP_PROFILE),
    _invoke(
        "anthropic.claude-3-5-haiku-20241022-v1:0", lambda i: _claude_messages(i, cached=True), stream=True
    ),
)

#: Latency per vendor: (seconds to first byte, seconds per output token).
LATENCY = {
    "anthropic.": (0.020, 0.0004),
    "amazon.": (0.008, 0.0002),
    "meta.": (0.012, 0.0003),
    "mistral.": (0.012, 0.0003),
    "cohere.": (0.010, 0.0002),
    "deepseek.": (0.025, 0.0004),
    "openai.": (0.015, 0.0003),
}
THROTTLED_MODEL = "arn:aws:bedrock:us-east-1::foundation-model/amazon.nova-lite-v1:0"
DRIFTING_MODEL = "anthropic.claude-3-5-haiku-20241022-v1:0"


def workload(calls: int) -> list[Step]:
    """``calls`` steps, cycling through :data:`STEPS`."""
    return [STEPS[i % len(STEPS)] for i in range(max(0, calls))]


def configure(emulator: BedrockEmulator) -> None:
    emulator.alias(APP_PROFILE, "anthropic.claude-sonnet-4-20250514-v1:0")
    for vendor, (first_byte, per_token) in LATENCY.items():
        emulator.set_latency(first_byte, per_token, model=f"{vendor}*")
    # Bedrock throttles the second Converse call to Nova Lite; retries are off, so the app sees it.
    emulator.inject(Fault.throttle(), operation="Converse", model=THROTTLED_MODEL, skip=1)
    # CountTokens is 3% high for Claude 3.5 Haiku: what a prediction error looks like.
    emulator.set_drift(DRIFTING_MODEL, factor=1.03)
    # CountTokens answers fast, so parallel predictions land before the calls they predict end.
    emulator.set_latency(0.001, model="*", operation="CountTokens")


def call(client: Any, step: Step, number: int) -> None:
    """Make the call and consume it the way an app does (streams read to the end)."""
    params = step.params(number)
    if step.operation == "InvokeModel":
        client.invoke_model(**params)["body"].read()
    elif step.operation == "InvokeModelWithResponseStream":
        for _event in client.invoke_model_with_response_stream(**params)["body"]:
            pass
    elif step.operation == "Converse":
        client.converse(**params)
    else:
        for _event in client.converse_stream(**params)["stream"]:
            pass


# --- progress -------------------------------------------------------------------------------------


class Progress:
    """A progress bar on a terminal (``\\r`` updates), a line every quarter otherwise."""

    def __init__(self, total: int, stream: TextIO, enabled: bool = True) -> None:
        self.total = max(1, total)
        self.stream = stream
        self.enabled = enabled
        self.tty = enabled and stream.isatty()
        self._last_quarter = -1

    def update(self, done: int, label: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            width = 30
            filled = width * done // self.total
            bar = "#" * filled + "-" * (width - filled)
            self.stream.write(f"\r[{bar}] {done:>4}/{self.total} {label[:48]:<48}")
            self.stream.flush()
            return
        quarter = 4 * done // self.total
        if quarter != self._last_quarter:
            self._last_quarter = quarter
            self.stream.write(f"progress: {done}/{self.total} calls\n")
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


# --- telemetry ------------------------------------------------------------------------------------


@dataclass(slots=True)
class Row:
    """One model's line of the table, from telemetry only."""

    model: str
    calls: int = 0
    errors: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    #: Calls with a CountTokens prediction on their span, the predicted and the actual input.
    predictions: int = 0
    predicted_input: int = 0
    predicted_actual: int = 0
    durations: list[float] = field(default_factory=list)
    #: USD from ``bedrock_tokens.client.cost``; ``priced``: the model had cost points at all.
    cost_usd: float = 0.0
    priced: bool = False

    def percentile(self, fraction: float) -> float | None:
        if not self.durations:
            return None
        ordered = sorted(self.durations)
        rank = max(0, min(len(ordered) - 1, round(fraction * len(ordered) + 0.5) - 1))
        return ordered[rank]


@dataclass(slots=True)
class DemoProviders:
    """The SDK pieces the demo reads back, and the OTLP exporters when configured."""

    tracer_provider: Any
    meter_provider: Any
    reader: Any
    spans: Any
    otlp_endpoint: str | None
    #: Metrics that had points past the SDK's cardinality limit (``otel.metric.overflow``), and the
    #: tokens of ``gen_ai.client.token.usage`` in its overflow point: no model, no token type.
    overflowed: set[str] = field(default_factory=set)
    overflow_tokens: int = 0

    @classmethod
    def create(cls) -> DemoProviders:
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import InMemoryMetricReader, PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        resource = Resource.create({"service.name": "otel-bedrock-tokens-demo"})
        reader = InMemoryMetricReader()
        spans = InMemorySpanExporter()
        readers: list[Any] = [reader]
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
        endpoint = otlp_endpoint()
        if endpoint is not None:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            timeout = None if os.environ.get("OTEL_EXPORTER_OTLP_TIMEOUT") else 5.0
            readers.append(
                PeriodicExportingMetricReader(
                    OTLPMetricExporter(timeout=timeout), export_interval_millis=60_000
                )
            )
            tracer_provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(timeout=timeout)))
        meter_provider = MeterProvider(resource=resource, metric_readers=readers)
        return cls(tracer_provider, meter_provider, reader, spans, endpoint)

    def rows(self) -> dict[str, Row]:
        rows: dict[str, Row] = {}

        def row(attributes: Any) -> Row:
            model = str(attributes.get("gen_ai.request.model", "?"))
            return rows.setdefault(model, Row(model))

        data = self.reader.get_metrics_data()
        for resource_metrics in data.resource_metrics if data is not None else ():
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        attributes = point.attributes or {}
                        if attributes.get(OVERFLOW):
                            self.overflowed.add(metric.name)
                            if metric.name == "gen_ai.client.token.usage":
                                self.overflow_tokens += int(point.sum)
                            continue  # no model to put it under
                        if attributes.get("gen_ai.operation.name") == "count_tokens":
                            continue  # the app's own CountTokens calls bill nothing
                        target = row(attributes)
                        if metric.name == "gen_ai.client.token.usage":
                            kind = attributes.get("gen_ai.token.type")
                            if kind == "input":
                                target.input_tokens += int(point.sum)
                            elif kind == "output":
                                target.output_tokens += int(point.sum)
                        elif metric.name == "bedrock_tokens.client.cache.token.usage":
                            kind = attributes.get("bedrock_tokens.cache.type")
                            if kind == "read":
                                target.cache_read_tokens += int(point.sum)
                            elif kind == "write":
                                target.cache_write_tokens += int(point.sum)
                        elif metric.name == COST:
                            target.cost_usd += float(point.value)
                            target.priced = True
                        elif metric.name == "gen_ai.client.operation.duration":
                            if "error.type" in attributes:
                                target.errors += point.count
                            else:
                                target.calls += point.count
        for span in self.spans.get_finished_spans():
            attributes = span.attributes or {}
            if "gen_ai.request.model" not in attributes or not span.end_time or not span.start_time:
                continue
            if attributes.get("gen_ai.operation.name") == "count_tokens":
                continue
            target = row(attributes)
            target.durations.append((span.end_time - span.start_time) / 1e9)
            predicted = attributes.get(PREDICTED_INPUT_TOKENS)
            actual = attributes.get("gen_ai.usage.input_tokens")
            if isinstance(predicted, int) and isinstance(actual, int):
                target.predictions += 1
                target.predicted_input += predicted
                target.predicted_actual += actual
        return rows

    def shutdown(self) -> None:
        """Flush (and export, with OTLP) everything recorded."""
        self.tracer_provider.shutdown()
        self.meter_provider.shutdown()


def otlp_endpoint() -> str | None:
    for variable in (
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    ):
        value = os.environ.get(variable, "").strip()
        if value:
            return value
    return None


# --- the check ------------------------------------------------------------------------------------


def ledger_costs(entries: list[LedgerEntry]) -> dict[str, float] | None:
    """What the emulator billed, priced the way the instrumentation prices calls (the same price
    book: genai-prices and ``OTEL_BEDROCK_TOKENS_PRICES``), per model id; ``None`` when cost is off.
    Computed from the ledger's own counts and terms, never from telemetry."""
    book = price_book_for(None)
    if book is None:
        return None
    costs: dict[str, float] = {}
    for entry in entries:
        if not entry.billed or entry.operation == "CountTokens":
            continue
        hour = entry.cache_write_1h_tokens
        terms = BillingTerms(
            service_tier=entry.service_tier,
            cache_write_5m=entry.cache_write_tokens - hour,
            cache_write_1h=hour,
        )
        usage = Usage(
            entry.input_tokens, entry.output_tokens, entry.cache_read_tokens, entry.cache_write_tokens
        )
        cost = book.cost(entry.model_id, usage, terms)
        if cost is not None:
            costs[entry.model_id] = costs.get(entry.model_id, 0.0) + cost.total_usd
    return costs


def compare(
    rows: dict[str, Row], ledger: dict[str, ModelTotals], costs: dict[str, float] | None = None
) -> list[str]:
    """Every difference between the telemetry and the ledger, as readable lines (empty: they agree).
    ``costs``: the ledger priced (:func:`ledger_costs`), compared with the cost counter's sums."""
    problems: list[str] = []
    for model in sorted(set(costs or {}) | {m for m, row in rows.items() if row.priced}):
        seen = rows[model].cost_usd if model in rows else 0.0
        truth = (costs or {}).get(model, 0.0)
        if abs(seen - truth) > 1e-9 * max(1.0, abs(truth)):
            problems.append(f"{model}: cost: telemetry {seen:.9f} USD != billed {truth:.9f} USD")
    for model in sorted(set(rows) | set(ledger)):
        row = rows.get(model, Row(model))
        billed = ledger.get(model, ModelTotals())
        if billed.calls == 0 and billed.errors == 0 and model not in rows:
            continue  # CountTokens-only entries
        pairs = (
            ("calls", row.calls, billed.calls),
            ("errors", row.errors, billed.errors),
            ("input tokens (cache included)", row.input_tokens, billed.total_input_tokens),
            ("output tokens", row.output_tokens, billed.output_tokens),
            ("cache read tokens", row.cache_read_tokens, billed.cache_read_tokens),
            ("cache write tokens", row.cache_write_tokens, billed.cache_write_tokens),
        )
        for name, seen, truth in pairs:
            if seen != truth:
                problems.append(f"{model}: {name}: telemetry {seen:,} != billed {truth:,}")
    return problems


def overflow_problems(telemetry: DemoProviders) -> list[str]:
    """What the table cannot show when the SDK's cardinality limit was hit (empty: it was not)."""
    if not telemetry.overflowed:
        return []
    return [
        f"{', '.join(sorted(telemetry.overflowed))}: more attribute sets than the OpenTelemetry SDK's "
        f"cardinality limit (2,000 per metric by default); the rest went into one "
        f"{OVERFLOW}=true point with no model and no token type ({telemetry.overflow_tokens:,} tokens), "
        "so the per-model figures are short: raise the limit with a View (README, Cardinality)"
    ]


# --- output ---------------------------------------------------------------------------------------


def _short(model: str, width: int = 50) -> str:
    """Fit a model id in a column: ARNs keep their resource part, the rest their ends."""
    if len(model) <= width:
        return model
    if model.startswith("arn:"):
        resource = model.split(":", 5)[-1]
        model = f"arn:…:{resource}"
        if len(model) <= width:
            return model
    keep = width - 1
    return model[: keep // 3] + "…" + model[-(keep - keep // 3) :]


def _ms(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds * 1000:.0f}"


def _prediction(row: Row) -> tuple[str, str]:
    """(predicted input, error of the prediction) over the calls that had one."""
    if not row.predictions:
        return "—", "—"
    delta = row.predicted_actual - row.predicted_input
    percent = 100.0 * delta / row.predicted_input if row.predicted_input else 0.0
    return f"{row.predicted_input:,}", f"{delta:+,} ({percent:+.1f}%)"


def table(rows: dict[str, Row]) -> list[str]:
    header = (
        "model",
        "calls",
        "err",
        "input",
        "output",
        "cache rd",
        "cache wr",
        "predicted",
        "actual-pred",
        "p50 ms",
        "p95 ms",
        "cost USD",
    )
    lines: list[tuple[str, ...]] = []
    total = Row("TOTAL")
    for model in sorted(rows):
        row = rows[model]
        predicted, error = _prediction(row)
        lines.append(
            (
                _short(model),
                f"{row.calls:,}",
                f"{row.errors:,}",
                f"{row.input_tokens:,}",
                f"{row.output_tokens:,}",
                f"{row.cache_read_tokens:,}",
                f"{row.cache_write_tokens:,}",
                predicted,
                error,
                _ms(row.percentile(0.50)),
                _ms(row.percentile(0.95)),
                f"{row.cost_usd:.6f}" if row.priced else "—",
            )
        )
        total.cost_usd += row.cost_usd
        total.priced = total.priced or row.priced
        for name in (
            "calls",
            "errors",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
        ):
            setattr(total, name, getattr(total, name) + getattr(row, name))
        total.durations.extend(row.durations)
    lines.append(
        (
            "TOTAL",
            f"{total.calls:,}",
            f"{total.errors:,}",
            f"{total.input_tokens:,}",
            f"{total.output_tokens:,}",
            f"{total.cache_read_tokens:,}",
            f"{total.cache_write_tokens:,}",
            "",
            "",
            _ms(total.percentile(0.50)),
            _ms(total.percentile(0.95)),
            f"{total.cost_usd:.6f}" if total.priced else "—",
        )
    )
    widths = [max(len(header[i]), *(len(line[i]) for line in lines)) for i in range(len(header))]

    def render(cells: tuple[str, ...]) -> str:
        first = cells[0].ljust(widths[0])
        return "  ".join(
            [first, *(cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True))]
        )

    rule = "-" * len(render(header))
    return [render(header), rule, *(render(line) for line in lines[:-1]), rule, render(lines[-1])]


class Colors:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.enabled else text

    def good(self, text: str) -> str:
        return self.paint(text, "32")

    def bad(self, text: str) -> str:
        return self.paint(text, "31")

    def dim(self, text: str) -> str:
        return self.paint(text, "2")


def use_color(stream: TextIO, requested: bool | None) -> bool:
    if requested is not None:
        return requested
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


# --- the job --------------------------------------------------------------------------------------


class DemoError(RuntimeError):
    """The demo cannot run (e.g. botocore is already instrumented in this process)."""


@dataclass(slots=True)
class DemoResult:
    rows: dict[str, Row]
    ledger: dict[str, ModelTotals]
    problems: list[str]
    calls: int
    failures: dict[str, int]
    seconds: float
    endpoint_url: str
    otlp_endpoint: str | None
    #: The ledger priced like the calls (``None``: cost is off, genai-prices not installed).
    ledger_costs: dict[str, float] | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "calls": self.calls,
            "seconds": round(self.seconds, 3),
            "failures": self.failures,
            "problems": self.problems,
            "otlp_endpoint": self.otlp_endpoint,
            "telemetry": {
                model: {key: value for key, value in asdict(row).items() if key != "durations"}
                | {"p50_s": row.percentile(0.5), "p95_s": row.percentile(0.95)}
                for model, row in self.rows.items()
            },
            "ledger": {model: totals.to_dict() for model, totals in self.ledger.items()},
            "ledger_cost_usd": self.ledger_costs,
        }


def run_workload(client: Any, steps: list[Step], progress: Progress) -> dict[str, int]:
    """Make every call; return the AWS errors the app saw, by code (the throttled call)."""
    from botocore.exceptions import ClientError

    failures: dict[str, int] = {}
    for number, step in enumerate(steps):
        try:
            call(client, step, number)
        except ClientError as failure:
            code = str(failure.response.get("Error", {}).get("Code", type(failure).__name__))
            failures[code] = failures.get(code, 0) + 1
        progress.update(number + 1, f"{step.operation} {step.model_id}")
    progress.close()
    return failures


def run(
    calls: int = 60,
    *,
    color: bool | None = None,
    show_progress: bool = True,
    as_json: bool = False,
    count_tokens: str = "parallel",
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> DemoResult:
    """Run the demo; print the table (or JSON) to ``stdout``, progress to ``stderr``."""
    from . import BedrockTokensInstrumentor

    out = stdout or sys.stdout
    err = stderr or sys.stderr
    instrumentor = BedrockTokensInstrumentor()
    if instrumentor.is_instrumented_by_opentelemetry:
        raise DemoError("botocore is already instrumented in this process; the demo needs its own providers")
    started = time.perf_counter()
    telemetry = DemoProviders.create()
    steps = workload(calls)
    with BedrockEmulator() as emulator:
        configure(emulator)
        instrumentor.instrument(
            tracer_provider=telemetry.tracer_provider,
            meter_provider=telemetry.meter_provider,
            count_tokens=count_tokens,
        )
        try:
            client = emulator.client(retries=0)
            if not as_json:
                out.write(
                    f"otel-bedrock-tokens demo: {len(steps)} calls to a local Bedrock emulator at "
                    f"{emulator.endpoint_url} (no AWS account needed)\n"
                )
                out.flush()
            failures = run_workload(client, steps, Progress(len(steps), err, enabled=show_progress))
            wait = getattr(instrumentor, "wait_for_predictions", None)
            if callable(wait):
                wait(5.0)
        finally:
            instrumentor.uninstrument()
        endpoint_url = emulator.endpoint_url
        ledger = emulator.ledger.totals()
        costs = ledger_costs(emulator.ledger.entries())
    rows = telemetry.rows()
    telemetry.shutdown()
    result = DemoResult(
        rows=rows,
        ledger=ledger,
        problems=compare(rows, ledger, costs) + overflow_problems(telemetry),
        calls=len(steps),
        failures=failures,
        seconds=time.perf_counter() - started,
        endpoint_url=endpoint_url,
        otlp_endpoint=telemetry.otlp_endpoint,
        ledger_costs=costs,
    )
    if as_json:
        out.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        report(result, out, Colors(use_color(out, color)))
    return result


def report(result: DemoResult, out: TextIO, colors: Colors) -> None:
    out.write("\nPer model, from the exported telemetry (tokens as gen_ai.client.token.usage records them;\n")
    out.write("input includes cache reads and writes; latency from spans):\n\n")
    for line in table(result.rows):
        out.write(line + "\n")
    failures = ", ".join(f"{count} x {code}" for code, count in sorted(result.failures.items()))
    out.write(f"\n{result.calls} calls in {result.seconds:.1f}s; errors the app saw: {failures or 'none'}.\n")
    if result.otlp_endpoint:
        out.write(f"Spans and metrics were also exported over OTLP/HTTP to {result.otlp_endpoint}.\n")
    billed = sum(totals.calls for totals in result.ledger.values())
    counted = sum(totals.count_tokens_calls for totals in result.ledger.values())
    if result.ok:
        out.write(
            colors.good("✓ telemetry matches the emulator's ledger")
            + f" ({billed} billed calls, every token accounted for"
            + (
                f", {sum(result.ledger_costs.values()):.6f} USD priced alike"
                if result.ledger_costs is not None
                else ""
            )
            + (f"; {counted} CountTokens calls" if counted else "")
            + ").\n"
        )
        return
    out.write(colors.bad("✗ telemetry does not match the emulator's ledger:") + "\n")
    for problem in result.problems:
        out.write(f"  - {problem}\n")
    streams = [
        m
        for m, t in result.ledger.items()
        if {"ConverseStream", "InvokeModelWithResponseStream"} & set(t.by_operation)
    ]
    if any(result.rows.get(model, Row(model)).calls == 0 for model in streams):
        hint = "models called only through streams have no telemetry: is stream instrumentation in place?"
        out.write(colors.dim(f"  ({hint})\n"))


def main(
    calls: int = 60, color: bool | None = None, show_progress: bool = True, as_json: bool = False
) -> int:
    """CLI entry: 0 when telemetry equals the ledger, 1 when it does not, 2 when the demo cannot run."""
    try:
        result = run(calls, color=color, show_progress=show_progress, as_json=as_json)
    except DemoError as error:
        sys.stderr.write(f"error: {error}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("\ninterrupted\n")
        return 130
    return 0 if result.ok else 1
