"""Every PromQL query of the Grafana dashboard, evaluated by a real Prometheus server.

The path is the compose stack's, minus Docker: the sample app's workload (examples/collector/app.py)
runs against the Bedrock emulator with CountTokens predictions on; the real OTLP/HTTP exporter sends
its metrics to the collector stand-in (test_collector_translate), which serves them the way the
collector's ``prometheus`` exporter does (names, labels, OpenMetrics exemplars); a real Prometheus
(the Debian package; ``.ci/run`` installs it) scrapes it with the scrape job of the shipped
``prometheus.yml``, on 127.0.0.1, with a temporary data directory. The official
``opentelemetry-exporter-prometheus`` reader on the same MeterProvider is scraped too, as a second job:
an independent port of the same naming rules, which must agree with the stand-in.

The workload runs three times (the same round, as a long-running app does), each export scraped
before the next round, so every series exists before the last round: ``increase()`` over a range from
the scrape before it to the scrape after it measures exactly that round, and the dashboard's totals
are compared with the emulator's ledger to the token (Prometheus extrapolates ``increase`` to the
edges of its range; the test puts the edges on samples, where the extrapolation is zero).
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import pytest
import yaml

from otel_bedrock_tokens import BedrockTokensInstrumentor, demo
from otel_bedrock_tokens.emulator import BedrockEmulator, ModelTotals

from .support.collector import (
    COLLECTOR_NAMES,
    DASHBOARD,
    EXAMPLE,
    CollectorStandIn,
    load_app,
    prometheus_targets,
)

#: Scheduled first under xdist; deselect with ``-m 'not slow'`` for a quick run.
pytestmark = pytest.mark.slow

PYTHON_JOB = "python-exporter"
INSTANCE = "prometheus-test-1"
TOKENS = COLLECTOR_NAMES["gen_ai.client.token.usage"]
DEADLINE = 60.0
#: Rounds of the sample app's workload. Prometheus counts a counter's increase from its first sample
#: on, so a series born during the measured round (a model's first cache read, a first throttle)
#: would be undercounted by increase(): two warm-up rounds create every series, the third is measured.
ROUNDS = 3


def prometheus_binary() -> str:
    binary = shutil.which("prometheus")
    if binary is None:
        message = (
            "the Prometheus server is not installed "
            "(Debian: apt-get install --no-install-recommends prometheus)"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return binary


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class Prometheus:
    """A Prometheus server on 127.0.0.1 with a temporary config and data directory."""

    def __init__(self, binary: str, directory: Path, config: dict[str, Any]) -> None:
        self.binary = binary
        self.directory = directory
        self.config_path = directory / "prometheus.yml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.log_path = directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> Prometheus:
        for _attempt in range(3):  # a free port can be taken between probing and binding
            self.port = free_port()
            with self.log_path.open("ab") as log:
                self.process = subprocess.Popen(
                    [
                        self.binary,
                        f"--config.file={self.config_path}",
                        f"--storage.tsdb.path={self.directory / 'data'}",
                        f"--web.listen-address=127.0.0.1:{self.port}",
                        "--enable-feature=exemplar-storage",
                        "--log.level=warn",
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            if self._wait_ready():
                return self
            self.stop()
        raise RuntimeError(f"Prometheus did not start:\n{self.log()}")

    def _wait_ready(self) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        return True
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            try:  # the pause between polls doubles as a check that the server is still running
                self.process.wait(timeout=0.1)
                return False
            except subprocess.TimeoutExpired:
                continue
        return False

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def api(self, path: str, **params: Any) -> Any:
        query = urllib.parse.urlencode(params, doseq=True)
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/{path}?{query}", timeout=30) as response:
                body = json.load(response)
        except urllib.error.HTTPError as error:
            raise AssertionError(f"{path} {params}: HTTP {error.code} {error.read().decode()}") from error
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": data["result"]}]
        assert data["resultType"] in ("vector", "matrix"), (expr, data["resultType"])
        return data["result"]  # type: ignore[no-any-return]

    def wait_for(self, expr: str, expected: float, what: str) -> None:
        """Poll ``expr`` (a single-value query) until it equals ``expected``, with a deadline."""
        deadline = time.monotonic() + DEADLINE
        seen: Any = None
        while time.monotonic() < deadline:
            result = self.query(expr)
            seen = [float(item["value"][1]) for item in result]
            if seen == [expected]:
                return
            assert self.process is not None
            try:
                self.process.wait(timeout=0.2)
                break
            except subprocess.TimeoutExpired:
                continue
        raise AssertionError(f"{what}: {expr} is {seen}, expected {expected}\n{self.log()}")


def scrape_config(stand_in: CollectorStandIn, python_target: str) -> dict[str, Any]:
    """The shipped prometheus.yml, its collector job pointed at the stand-in, scraping every second."""
    config = yaml.safe_load((EXAMPLE / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    (collector_job,) = [job for job in config["scrape_configs"] if job["job_name"] == "otel-collector"]
    collector_job["static_configs"] = [{"targets": [stand_in.metrics_target]}]
    python_job = copy.deepcopy(collector_job)
    python_job.update(job_name=PYTHON_JOB, honor_labels=False, static_configs=[{"targets": [python_target]}])
    config["scrape_configs"] = [collector_job, python_job]
    return config


def ledger_difference(
    after: dict[str, ModelTotals], before: dict[str, ModelTotals]
) -> dict[str, ModelTotals]:
    """Per model: what was billed between two ledger snapshots (numeric fields only)."""
    numeric = [f.name for f in fields(ModelTotals) if f.type in ("int", int)]
    difference = {}
    for model, totals in after.items():
        earlier = before.get(model, ModelTotals())
        difference[model] = ModelTotals(
            **{name: getattr(totals, name) - getattr(earlier, name) for name in numeric}
        )
    return difference


def grafana_regex_escape(value: str) -> str:
    """How Grafana writes one value of a multi-value variable into a PromQL regex matcher."""
    return re.sub(r"[$^*+?.()|\\{}\[\]]", lambda match: "\\\\" + match.group(0), value)


@dataclass
class Stack:
    prometheus: Prometheus
    stand_in: CollectorStandIn
    service: str
    #: Ledger per model id: everything, and the measured (last) round only.
    ledger: dict[str, ModelTotals]
    measured_round: dict[str, ModelTotals]
    #: Evaluation time (the last scrape) and the range covering the measured round, for Grafana's
    #: ``$__range`` and ``$__rate_interval``.
    at: float
    window: str

    def substitute(self, expr: str, model: str = ".*") -> str:
        values = {
            "service": grafana_regex_escape(self.service),
            "model": model,
            "scope": "otel_bedrock_tokens.telemetry",
            "__range": self.window,
            "__rate_interval": self.window,
        }
        return re.sub(r"\$\{?(\w+)\}?", lambda match: values[match.group(1)], expr)

    def evaluate(self, expr: str, model: str = ".*") -> list[dict[str, Any]]:
        return self.prometheus.query(self.substitute(expr, model), at=self.at)

    def inference_models(self) -> set[str]:
        return {model for model, totals in self.ledger.items() if totals.calls or totals.errors}


def _round(app: Any, emulator: BedrockEmulator, client: Any, tracer: Any, number: int) -> None:
    app.inject_round_faults(emulator)
    errors = app.run_round(client, app.emulator_steps(), tracer, number)
    assert errors == {"ThrottlingException": 1, "modelStreamErrorException": 1}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    binary = prometheus_binary()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from prometheus_client import CollectorRegistry, start_http_server

    app = load_app()
    resource = Resource.create({"service.name": app.SERVICE_NAME, "service.instance.id": INSTANCE})
    with CollectorStandIn() as stand_in:
        registry = CollectorRegistry()
        python_reader = PrometheusMetricReader(registry=registry)
        python_server, python_thread = start_http_server(0, addr="127.0.0.1", registry=registry)
        otlp_reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{stand_in.otlp_endpoint}/v1/metrics", timeout=10),
            export_interval_millis=math.inf,  # exported when the test flushes
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[otlp_reader, python_reader])
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{stand_in.otlp_endpoint}/v1/traces", timeout=10))
        )
        prometheus = Prometheus(
            binary,
            tmp_path_factory.mktemp("prometheus"),
            scrape_config(stand_in, f"127.0.0.1:{python_server.server_port}"),
        ).start()
        instrumentor = BedrockTokensInstrumentor()
        assert not instrumentor.is_instrumented_by_opentelemetry
        try:
            with BedrockEmulator() as emulator:
                app.configure_emulator(emulator)
                instrumentor.instrument(
                    tracer_provider=tracer_provider, meter_provider=meter_provider, count_tokens="parallel"
                )
                client = emulator.client(retries=0)
                tracer = tracer_provider.get_tracer("bedrock-tokens-sample-app")
                service = f'job="{app.SERVICE_NAME}"'
                scraped: list[float] = []
                for number in range(ROUNDS):
                    if number == ROUNDS - 1:
                        warmed_up = emulator.ledger.totals()
                    _round(app, emulator, client, tracer, number)
                    assert instrumentor.wait_for_predictions(10.0)
                    assert meter_provider.force_flush(timeout_millis=10_000)
                    billed = emulator.ledger.total()
                    expected = billed.total_input_tokens + billed.output_tokens
                    for job in (service, f'job="{PYTHON_JOB}"'):
                        prometheus.wait_for(f"sum({TOKENS}_sum{{{job}}})", expected, f"round {number + 1}")
                    # The time of a scrape that holds this state, for every series of the job.
                    stamps = prometheus.query(f"timestamp({TOKENS}_sum{{{service}}})")
                    assert len({item["value"][1] for item in stamps}) == 1
                    scraped.append(float(stamps[0]["value"][1]))
                ledger = emulator.ledger.totals()
            start, last = scraped[-2], scraped[-1]
            major = int(prometheus.api("status/buildinfo")["version"].split(".")[0])
            # Prometheus 2 ranges include their start; 3 excludes it: reach 1 ms further back.
            window_ms = round((last - start) * 1000) + (1 if major >= 3 else 0)
            yield Stack(
                prometheus,
                stand_in,
                app.SERVICE_NAME,
                ledger,
                ledger_difference(ledger, warmed_up),
                last,
                f"{window_ms}ms",
            )
        finally:
            instrumentor.uninstrument()
            prometheus.stop()
            python_server.shutdown()
            python_server.server_close()
            python_thread.join(timeout=5)
            meter_provider.shutdown()
            tracer_provider.shutdown()


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def panel_targets(title: str) -> dict[str, str]:
    found = {
        target["refId"]: target["expr"]
        for panel, target in prometheus_targets(dashboard()["panels"])
        if panel["title"] == title
    }
    assert found, f"no panel titled {title!r}"
    return found


def single(stack: Stack, title: str) -> float:
    (expr,) = panel_targets(title).values()
    (item,) = stack.evaluate(expr)
    return float(item["value"][1])


def close(seen: float, expected: float, major_version: int) -> bool:
    if major_version < 3:
        return seen == pytest.approx(expected, rel=1e-12, abs=1e-9)
    return seen == pytest.approx(expected, rel=1e-3)


def major(stack: Stack) -> int:
    return int(stack.prometheus.api("status/buildinfo")["version"].split(".")[0])


# --- every query returns data ---------------------------------------------------------------------


def test_every_dashboard_query_returns_data(stack: Stack) -> None:
    empty = []
    priced = importlib.util.find_spec("genai_prices") is not None  # cost is on with genai-prices
    for panel, target in prometheus_targets(dashboard()["panels"]):
        if not priced and "_USD_" in target["expr"]:
            continue  # Python 3.10: genai-prices needs 3.11+, no price file here: no cost series
        result = stack.evaluate(target["expr"])
        values = [float(item["value"][1]) for item in result]
        if not any(math.isfinite(value) for value in values):
            empty.append(
                f"{panel['title']} [{target['refId']}]: {stack.substitute(target['expr'])} -> {values}"
            )
    assert not empty, "queries without data:\n" + "\n".join(empty)


def test_the_model_variable_filters_with_grafana_escaping(stack: Stack) -> None:
    """A model id selected in Grafana is regex-escaped (dots, colons in ARNs...): it still matches."""
    expr = panel_targets("Tokens by model over the selected range")["A"]
    for model in sorted(stack.inference_models()):
        if not stack.measured_round[model].calls:
            continue
        result = stack.evaluate(expr, model=grafana_regex_escape(model))
        assert [item["metric"]["gen_ai_request_model"] for item in result] == [model]


def test_template_variable_queries_return_the_services_and_models(stack: Stack) -> None:
    variables = {variable["name"]: variable for variable in dashboard()["templating"]["list"]}
    found = {}
    for name in ("service", "model"):
        query = variables[name]["query"]
        query = stack.substitute(query["query"] if isinstance(query, dict) else query)
        match = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", query)
        assert match is not None, query
        found[name] = set(
            stack.prometheus.api(
                f"label/{match.group(2)}/values", **{"match[]": match.group(1), "start": 0, "end": stack.at}
            )
        )
    assert stack.service in found["service"]
    assert found["model"] == stack.inference_models()


# --- the totals are the ledger's --------------------------------------------------------------------


def test_range_totals_match_the_ledger_of_the_measured_round(stack: Stack) -> None:
    billed = stack.measured_round.values()
    version = major(stack)
    expected = {
        "Input tokens": sum(t.total_input_tokens for t in billed),
        "Output tokens": sum(t.output_tokens for t in billed),
        "Cache read tokens": sum(t.cache_read_tokens for t in billed),
        "Cache write tokens": sum(t.cache_write_tokens for t in billed),
        "Calls": sum(t.calls + t.errors for t in billed),
    }
    assert expected["Cache read tokens"] and expected["Calls"]
    for title, value in expected.items():
        assert close(single(stack, title), value, version), title
    assert close(single(stack, "Failed calls"), sum(t.errors for t in billed) / expected["Calls"], version)
    assert close(
        single(stack, "Cache hit ratio"), expected["Cache read tokens"] / expected["Input tokens"], version
    )


def test_per_model_table_matches_the_ledger_of_the_measured_round(stack: Stack) -> None:
    version = major(stack)
    columns = {
        "A": lambda t: t.total_input_tokens,
        "B": lambda t: t.output_tokens,
        "C": lambda t: t.cache_read_tokens,
        "D": lambda t: t.cache_write_tokens,
        "E": lambda t: t.calls + t.errors,
    }
    for ref, expr in panel_targets("Tokens by model over the selected range").items():
        seen = {
            item["metric"]["gen_ai_request_model"]: float(item["value"][1]) for item in stack.evaluate(expr)
        }
        expected = {model: columns[ref](t) for model, t in stack.measured_round.items() if columns[ref](t)}
        assert set(seen) >= set(expected), ref
        for model, value in seen.items():
            assert close(value, expected.get(model, 0), version), (ref, model)


def test_cumulative_tokens_match_the_whole_ledger_on_both_paths(stack: Stack) -> None:
    """Independent of any range: the counters Prometheus holds are the ledger's, per model and type,
    through the collector stand-in and through opentelemetry-exporter-prometheus alike."""
    for job in (stack.service, PYTHON_JOB):
        result = stack.prometheus.query(  # now: both jobs have scraped the final state
            f'sum by (gen_ai_request_model, gen_ai_token_type) ({TOKENS}_sum{{job="{job}"}})'
        )
        seen = {
            (i["metric"]["gen_ai_request_model"], i["metric"]["gen_ai_token_type"]): float(i["value"][1])
            for i in result
        }
        for model in stack.inference_models():
            totals = stack.ledger[model]
            assert seen.get((model, "input"), 0) == totals.total_input_tokens, (job, model)
            assert seen.get((model, "output"), 0) == totals.output_tokens, (job, model)


def test_prediction_error_shows_the_drifting_model(stack: Stack) -> None:
    """The emulator's CountTokens answers 3% high for one model: its error is negative (predicted
    more than billed); the exact models are at zero."""
    expr = panel_targets("Predicted vs actual input tokens: error by model")["A"]
    seen = {item["metric"]["gen_ai_request_model"]: float(item["value"][1]) for item in stack.evaluate(expr)}
    assert seen[demo.DRIFTING_MODEL] == pytest.approx(-0.03 / 1.03, abs=0.005)
    assert all(
        value == 0 for model, value in seen.items() if model != demo.DRIFTING_MODEL and math.isfinite(value)
    )


# --- the collector path agrees with the official Python exporter -----------------------------------


def _series(stack: Stack, job: str) -> dict[str, set[frozenset[str]]]:
    """Metric name -> the label-name sets of its series (job and instance aside)."""
    found: dict[str, set[frozenset[str]]] = {}
    for series in stack.prometheus.api(
        "series", **{"match[]": f'{{job="{job}"}}', "start": 0, "end": stack.at}
    ):
        name = series.pop("__name__")
        labels = frozenset(set(series) - {"job", "instance"})
        found.setdefault(name, set()).add(labels)
    return found


def test_stand_in_names_and_labels_equal_the_python_exporters(stack: Stack) -> None:
    ours, theirs = _series(stack, stack.service), _series(stack, PYTHON_JOB)
    for found in (ours, theirs):  # Prometheus' own series of a scrape job, and the resource
        for name in [name for name in found if name == "up" or name.startswith(("scrape_", "target_info"))]:
            del found[name]
    assert set(ours) == set(theirs)
    for name in ours:
        assert ours[name] == theirs[name], name
    # The same bucket bounds; the strings differ (the collector writes OTLP's doubles the Go way,
    # "1024.0", "1.048576e+06"; the Python exporter the advisory's ints, "1024", "1048576").
    le = f"{COLLECTOR_NAMES['gen_ai.client.token.usage']}_bucket"
    bounds = {}
    for job in (stack.service, PYTHON_JOB):
        values = stack.prometheus.api("label/le/values", **{"match[]": f'{le}{{job="{job}"}}'})
        bounds[job] = {float(value) for value in values}
    assert bounds[stack.service] == bounds[PYTHON_JOB]
    collector_le = stack.prometheus.api("label/le/values", **{"match[]": f'{le}{{job="{stack.service}"}}'})
    assert "1024.0" in collector_le and "1.048576e+06" in collector_le


# --- exemplars link to the traces ----------------------------------------------------------------------


def test_exemplar_queries_return_trace_ids_of_exported_spans(stack: Stack) -> None:
    traces = {span.span.trace_id.hex() for span in stack.stand_in.received.spans}
    bedrock_traces = {
        span.span.trace_id.hex()
        for span in stack.stand_in.received.spans
        if span.scope_name == "otel_bedrock_tokens.telemetry"
    }
    targets = [(p, t) for p, t in prometheus_targets(dashboard()["panels"]) if t.get("exemplar")]
    assert targets
    for panel, target in targets:
        data = stack.prometheus.api(
            "query_exemplars", query=stack.substitute(target["expr"]), start=0, end=f"{stack.at + 60:.3f}"
        )
        exemplars = [exemplar for series in data for exemplar in series["exemplars"]]
        assert exemplars, f"{panel['title']} [{target['refId']}]"
        trace_ids = {exemplar["labels"]["trace_id"] for exemplar in exemplars}
        assert trace_ids <= traces
        assert trace_ids & bedrock_traces, "an exemplar opens a trace that holds the Bedrock span"
