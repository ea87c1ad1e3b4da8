"""A stand-in for the OpenTelemetry Collector's OTLP receiver and its ``prometheus`` exporter (the
rules ported in tests/test_collector_translate.py's docstring), shared by the collector tests."""

from __future__ import annotations

import gzip
import http.server
import importlib.util
import json
import math
import re
import socketserver
import sys
import threading
import time
from base64 import b64encode
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.metrics.v1 import metrics_pb2

# --- names: prometheus/otlptranslator, UnderscoreEscapingWithSuffixes -----------------------------

COUNTER = "counter"  # monotonic cumulative sum
GAUGE = "gauge"  # gauge, or a non-monotonic sum
HISTOGRAM = "histogram"

UNIT_MAP = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
PER_UNIT_MAP = {
    "s": "second",
    "m": "minute",
    "h": "hour",
    "d": "day",
    "w": "week",
    "mo": "month",
    "y": "year",
}

_INVALID_METRIC_CHARS = re.compile(r"[^a-zA-Z0-9:]+")
_INVALID_LABEL_CHAR = re.compile(r"[^a-zA-Z0-9_]")


def _clean_unit(unit: str) -> str:
    """``cleanUpUnit``: invalid characters to ``_``, runs of ``_`` collapsed, no leading ``_``."""
    return re.sub(r"__+", "_", re.sub(r"[^a-zA-Z0-9:]", "_", unit)).removeprefix("_")


def _unit_suffixes(unit: str) -> tuple[str, str]:
    """``buildUnitSuffixes``: (main, per) suffixes; ``{annotations}`` give none."""
    parts = unit.split("/", 1)
    main = per = ""
    main_otel = parts[0].strip()
    if main_otel and "{" not in main_otel and "}" not in main_otel:
        main = UNIT_MAP.get(main_otel, main_otel)
    if len(parts) > 1 and parts[1]:
        per_otel = parts[1].strip()
        if per_otel and "{" not in per_otel and "}" not in per_otel:
            per = PER_UNIT_MAP.get(per_otel, per_otel)
        if per:
            per = "per_" + per
    return main, per


def metric_name(name: str, unit: str, kind: str) -> str:
    """The Prometheus metric (family) name the collector's prometheus exporter serves."""
    tokens = [token for token in _INVALID_METRIC_CHARS.split(name) if token]
    main, per = (_clean_unit(suffix) for suffix in _unit_suffixes(unit))
    if main in tokens:
        main = ""
    if per == "per_":
        per = ""
    else:
        per = per.removesuffix("_")
        if per in tokens:
            per = ""
    if per:
        main = main.removesuffix("_")
    tokens += [suffix for suffix in (main, per) if suffix]
    if kind == COUNTER:
        tokens = [token for token in tokens if token != "total"] + ["total"]
    if unit == "1" and kind == GAUGE:
        tokens = [token for token in tokens if token != "ratio"] + ["ratio"]
    result = "_".join(tokens)
    if result and result[0].isdigit():
        result = "_" + result
    return result


def label_name(key: str) -> str:
    """``NormalizeLabel``: invalid characters to ``_``; ``key_`` before a digit or a single ``_``."""
    if not key:
        raise ValueError("empty label name")
    name = _INVALID_LABEL_CHAR.sub("_", key)
    if name[0].isdigit():
        name = "key_" + name
    elif name.startswith("_") and not name.startswith("__"):
        name = "key" + name
    if set(name) == {"_"}:
        raise ValueError(f"label {key!r} normalizes to an invalid name")
    return name


def _float_string(value: float) -> str:
    """pcommon ``Value.AsString`` for doubles (ES6 number formatting, close enough for labels)."""
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    return repr(value)


def attribute_string(value: common_pb2.AnyValue) -> str:
    """pcommon ``Value.AsString``: how an attribute value becomes a label value."""
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind == "int_value":
        return str(value.int_value)
    if kind == "double_value":
        return _float_string(value.double_value)
    if kind == "bytes_value":
        return b64encode(value.bytes_value).decode()
    return json.dumps(attribute_json(value), separators=(",", ":"))


def attribute_json(value: common_pb2.AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [attribute_json(item) for item in value.array_value.values]
    if kind == "kvlist_value":
        return {item.key: attribute_json(item.value) for item in value.kvlist_value.values}
    if kind == "bytes_value":
        return b64encode(value.bytes_value).decode()
    return getattr(value, kind) if kind is not None else None


def attributes_dict(attributes: Any) -> dict[str, Any]:
    """OTLP ``KeyValue`` list -> plain Python values (arrays as lists)."""
    return {item.key: attribute_json(item.value) for item in attributes}


# --- the exporter's state and exposition ------------------------------------------------------


@dataclass
class _Series:
    resource: dict[str, str]
    scope: tuple[str, str, str, tuple[tuple[str, str], ...]]
    name: str
    unit: str
    description: str
    kind: str
    point: Any


def _job_instance(resource: dict[str, str]) -> tuple[str | None, str | None]:
    job = resource.get("service.name")
    if job is not None and "service.namespace" in resource:
        job = f"{resource['service.namespace']}/{job}"
    return job, resource.get("service.instance.id")


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(pairs: dict[str, str]) -> str:
    inner = ",".join(f'{key}="{_escape_label_value(value)}"' for key, value in sorted(pairs.items()) if value)
    return "{" + inner + "}" if inner else ""


def go_float(value: float) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 64)``: shortest digits, exponent form when the
    decimal exponent is below -4 or at least 6 (``1.048576e+06``, ``1e-05``)."""
    if value == 0:
        return "0"
    sign = "-" if value < 0 else ""
    _, digit_tuple, exponent = Decimal(repr(abs(value))).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple))
    point = len(digits) + int(exponent)  # digits before the decimal point
    decimal_exponent = point - 1
    if decimal_exponent < -4 or decimal_exponent >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if decimal_exponent < 0 else '+'}{abs(decimal_exponent):02d}"
    if point <= 0:
        return f"{sign}0.{'0' * -point}{digits}"
    if point >= len(digits):
        return sign + digits + "0" * (point - len(digits))
    return f"{sign}{digits[:point]}.{digits[point:]}"


def _number(value: float) -> str:
    """client_golang's ``writeOpenMetricsFloat``: Go formatting, ``.0`` added to whole numbers."""
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    text = go_float(float(value))
    return text if "." in text or "e" in text else text + ".0"


def _exemplar(exemplar: metrics_pb2.Exemplar) -> tuple[float, str]:
    """(value, ``# {trace_id=...,span_id=...} value timestamp``) as client_golang writes it."""
    labels: dict[str, str] = {}
    if exemplar.trace_id and any(exemplar.trace_id):
        labels["trace_id"] = exemplar.trace_id.hex()
    if exemplar.span_id and any(exemplar.span_id):
        labels["span_id"] = exemplar.span_id.hex()
    value = float(exemplar.as_int) if exemplar.WhichOneof("value") == "as_int" else exemplar.as_double
    inner = ",".join(f'{key}="{labels[key]}"' for key in sorted(labels))
    text = f" # {{{inner}}} {_number(value)} {exemplar.time_unix_nano / 1e9:.9f}"
    return value, text


class PrometheusExporterState:
    """The ``prometheus`` exporter's accumulator: the latest cumulative point of every series."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._series: dict[tuple[Any, ...], _Series] = {}

    def ingest(self, request: metrics_service_pb2.ExportMetricsServiceRequest) -> None:
        with self._lock:
            for resource_metrics in request.resource_metrics:
                resource = {
                    item.key: attribute_string(item.value) for item in resource_metrics.resource.attributes
                }
                resource_key = tuple(sorted(resource.items()))
                for scope_metrics in resource_metrics.scope_metrics:
                    scope_pb = scope_metrics.scope
                    scope = (
                        scope_pb.name,
                        scope_pb.version,
                        scope_metrics.schema_url,
                        tuple(sorted((i.key, attribute_string(i.value)) for i in scope_pb.attributes)),
                    )
                    for metric in scope_metrics.metrics:
                        self._ingest_metric(resource, resource_key, scope, metric)

    def _ingest_metric(
        self,
        resource: dict[str, str],
        resource_key: tuple[Any, ...],
        scope: tuple[str, str, str, tuple[tuple[str, str], ...]],
        metric: metrics_pb2.Metric,
    ) -> None:
        data = metric.WhichOneof("data")
        if data == "histogram":
            kind, points, temporality = HISTOGRAM, metric.histogram.data_points, metric.histogram
        elif data == "sum":
            kind = COUNTER if metric.sum.is_monotonic else GAUGE
            points, temporality = metric.sum.data_points, metric.sum
        elif data == "gauge":
            kind, points, temporality = GAUGE, metric.gauge.data_points, None
        else:
            raise NotImplementedError(f"{metric.name}: {data} is not translated by this stand-in")
        if temporality is not None and temporality.aggregation_temporality != (
            metrics_pb2.AGGREGATION_TEMPORALITY_CUMULATIVE
        ):
            raise NotImplementedError(f"{metric.name}: only cumulative temporality is stood in for")
        for point in points:
            attributes = tuple(sorted((i.key, attribute_string(i.value)) for i in point.attributes))
            key = (resource_key, scope[:2], metric.name, attributes)
            known = self._series.get(key)
            if known is not None and known.point.time_unix_nano > point.time_unix_nano:
                continue
            self._series[key] = _Series(
                resource, scope, metric.name, metric.unit, metric.description, kind, point
            )

    def render(self) -> str:
        """The OpenMetrics text the exporter serves with ``enable_open_metrics: true``."""
        with self._lock:
            series = list(self._series.values())
        families: dict[str, list[_Series]] = {}
        for item in series:
            families.setdefault(metric_name(item.name, item.unit, item.kind), []).append(item)
        lines: list[str] = []
        targets: dict[tuple[str, str], dict[str, str]] = {}
        for item in series:
            job, instance = _job_instance(item.resource)
            if job and instance:
                targets.setdefault((job, instance), item.resource)
        if targets:
            lines += ["# HELP target_info Target metadata", "# TYPE target_info gauge"]
            for (job, instance), resource in sorted(targets.items()):
                labels = {
                    label_name(key): value
                    for key, value in resource.items()
                    if key not in ("service.name", "service.namespace", "service.instance.id")
                }
                labels.update(job=job, instance=instance)
                lines.append(f"target_info{_labels(labels)} 1")
        for name in sorted(families):
            members = families[name]
            first = members[0]
            family = name.removesuffix("_total") if first.kind == COUNTER else name
            help_text = first.description.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
            lines.append(f"# HELP {family} {help_text}")
            lines.append(f"# TYPE {family} {first.kind}")
            for item in members:
                if item.kind != first.kind:
                    continue  # the exporter drops an instrument-type conflict
                lines += self._samples(name, item)
        lines.append("# EOF")
        return "\n".join(lines) + "\n"

    @staticmethod
    def _samples(name: str, item: _Series) -> list[str]:
        point = item.point
        labels: dict[str, str] = {}
        for attribute in point.attributes:
            key = label_name(attribute.key)
            if key in labels:
                raise ValueError(f"{item.name}: two attributes normalize to the label {key!r}")
            labels[key] = attribute_string(attribute.value)
        scope_name, scope_version, schema_url, scope_attributes = item.scope
        for key, value in scope_attributes:
            labels[label_name("otel_scope_" + key)] = value
        labels.update(otel_scope_name=scope_name, otel_scope_version=scope_version)
        labels["otel_scope_schema_url"] = schema_url
        job, instance = _job_instance(item.resource)
        if job is not None:
            labels["job"] = job
        if instance is not None:
            labels["instance"] = instance
        if item.kind == HISTOGRAM:
            return PrometheusExporterState._histogram(name, labels, point)
        value = float(point.as_int) if point.WhichOneof("value") == "as_int" else point.as_double
        line = f"{name}{_labels(labels)} {_number(value)}"
        if item.kind == COUNTER and point.exemplars:
            line += _exemplar(point.exemplars[-1])[1]  # client_golang keeps the last one
        return [line]

    @staticmethod
    def _histogram(name: str, labels: dict[str, str], point: Any) -> list[str]:
        bounds = list(point.explicit_bounds)
        counts = list(point.bucket_counts)
        exemplar_at: dict[int, str] = {}
        for exemplar in point.exemplars:
            value, text = _exemplar(exemplar)
            index = next((i for i, bound in enumerate(bounds) if bound >= value), len(bounds))
            exemplar_at[index] = text  # the last exemplar of a bucket wins, as in client_golang
        lines = []
        cumulative = 0
        for index, bound in enumerate(bounds):
            cumulative += counts[index] if index < len(counts) else 0
            bucket = _labels({**labels, "le": _number(bound)})
            lines.append(f"{name}_bucket{bucket} {cumulative}{exemplar_at.get(index, '')}")
        bucket = _labels({**labels, "le": "+Inf"})
        lines.append(f"{name}_bucket{bucket} {point.count}{exemplar_at.get(len(bounds), '')}")
        lines.append(f"{name}_sum{_labels(labels)} {_number(point.sum)}")
        lines.append(f"{name}_count{_labels(labels)} {point.count}")
        return lines


# --- the collector stand-in: OTLP/HTTP in, Prometheus exporter out ------------------------------


@dataclass
class ReceivedSpan:
    resource: dict[str, Any]
    scope_name: str
    span: Any  # opentelemetry.proto.trace.v1.trace_pb2.Span

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes_dict(self.span.attributes)


@dataclass
class Received:
    """Everything the OTLP/HTTP receiver decoded."""

    metric_requests: list[metrics_service_pb2.ExportMetricsServiceRequest] = field(default_factory=list)
    spans: list[ReceivedSpan] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class CollectorStandIn:
    """An OTLP/HTTP receiver (``/v1/traces``, ``/v1/metrics``) and the prometheus exporter's
    ``/metrics``, both on 127.0.0.1; ``wait_until`` waits for what was received (no sleeping)."""

    def __init__(self) -> None:
        self.received = Received()
        self.exporter = PrometheusExporterState()
        self._changed = threading.Condition()
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []

    # -- lifecycle
    def start(self) -> CollectorStandIn:
        self.otlp = self._serve(self._otlp_handler())
        self.metrics = self._serve(self._metrics_handler())
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> CollectorStandIn:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _serve(self, handler: type[http.server.BaseHTTPRequestHandler]) -> _Server:
        server = _Server(("127.0.0.1", 0), handler)
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        thread.start()
        self._servers.append(server)
        self._threads.append(thread)
        return server

    @property
    def otlp_endpoint(self) -> str:
        """``OTEL_EXPORTER_OTLP_ENDPOINT`` for this receiver."""
        return f"http://127.0.0.1:{self.otlp.server_address[1]}"

    @property
    def metrics_target(self) -> str:
        """``host:port`` for a Prometheus scrape config."""
        return f"127.0.0.1:{self.metrics.server_address[1]}"

    def wait_until(self, predicate: Callable[[Received], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.received):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    # -- handlers
    def _otlp_handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding", "").lower() == "gzip":
                    body = gzip.decompress(body)
                response: Any
                with stand_in._changed:
                    stand_in.received.content_types.add(self.headers.get("Content-Type", ""))
                    if self.path == "/v1/metrics":
                        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
                        stand_in.received.metric_requests.append(request)
                        stand_in.exporter.ingest(request)
                        response = metrics_service_pb2.ExportMetricsServiceResponse()
                    elif self.path == "/v1/traces":
                        traces = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
                        for resource_spans in traces.resource_spans:
                            resource = attributes_dict(resource_spans.resource.attributes)
                            for scope_spans in resource_spans.scope_spans:
                                stand_in.received.spans.extend(
                                    ReceivedSpan(resource, scope_spans.scope.name, span)
                                    for span in scope_spans.spans
                                )
                        response = trace_service_pb2.ExportTraceServiceResponse()
                    else:
                        self.send_error(404)
                        return
                    stand_in._changed.notify_all()
                payload = response.SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler

    def _metrics_handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        stand_in = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                payload = stand_in.exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/openmetrics-text; version=1.0.0; charset=utf-8")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


@contextmanager
def collector_stand_in() -> Iterator[CollectorStandIn]:
    with CollectorStandIn() as stand_in:
        yield stand_in


# --- the names of this project's instruments along the collector path ------------------------

#: OpenTelemetry instrument -> the Prometheus family the collector serves. The README of
#: examples/collector documents this table; the dashboard queries these names.
COLLECTOR_NAMES = {
    "gen_ai.client.token.usage": "gen_ai_client_token_usage",
    "gen_ai.client.operation.duration": "gen_ai_client_operation_duration_seconds",
    "gen_ai.client.operation.time_to_first_chunk": "gen_ai_client_operation_time_to_first_chunk_seconds",
    "gen_ai.client.operation.time_per_output_chunk": "gen_ai_client_operation_time_per_output_chunk_seconds",
    "bedrock_tokens.client.cache.token.usage": "bedrock_tokens_client_cache_token_usage",
    "bedrock_tokens.client.prediction.error": "bedrock_tokens_client_prediction_error",
    "bedrock_tokens.client.prediction.tokens": "bedrock_tokens_client_prediction_tokens",
    "bedrock_tokens.client.prediction.outcomes": "bedrock_tokens_client_prediction_outcomes_total",
    "bedrock_tokens.client.cost": "bedrock_tokens_client_cost_USD_total",
    "bedrock_tokens.client.cost.cache_savings": "bedrock_tokens_client_cost_cache_savings_USD_total",
}


def instrument_definitions() -> dict[str, tuple[str, str]]:
    """Every instrument the instrumentation creates: name -> (unit, kind), read from the SDK."""
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics._internal.instrument import _Counter, _Histogram

    from otel_bedrock_tokens.pricing import PriceBook
    from otel_bedrock_tokens.telemetry import Instruments

    provider = MeterProvider()
    try:
        # With a price book, so the cost counters exist too (cost is on with genai-prices or a file).
        telemetry = Instruments(meter_provider=provider, price_book=PriceBook(None, use_genai_prices=False))
        assert telemetry.cost is not None
        found: dict[str, tuple[str, str]] = {}
        for value in [*vars(telemetry).values(), telemetry.cost.counter, telemetry.cost.savings]:
            if isinstance(value, _Histogram):
                found[value.name] = (value.unit, HISTOGRAM)
            elif isinstance(value, _Counter):
                found[value.name] = (value.unit, COUNTER)
        return found
    finally:
        provider.shutdown()


def prometheus_series_names(family: str, kind: str) -> set[str]:
    """The series names of one family: ``_bucket``/``_sum``/``_count`` for histograms."""
    if kind == HISTOGRAM:
        return {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
    return {family}


# --- the example's files ---------------------------------------------------------------------------

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "collector"
DASHBOARD = EXAMPLE / "grafana" / "dashboards" / "bedrock-tokens.json"


def prometheus_targets(panels: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(panel, target) for every query of every panel, rows' nested panels included."""
    found = []
    for panel in panels:
        found += prometheus_targets(panel.get("panels", []))
        found += [(panel, target) for target in panel.get("targets", [])]
    return found


def load_app() -> ModuleType:
    """examples/collector/app.py as a module (it is a script, not part of the package)."""
    name = "otel_bedrock_tokens_collector_example_app"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, EXAMPLE / "app.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
