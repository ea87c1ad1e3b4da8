"""examples/collector: the compose file, the collector and Prometheus configs, Grafana's provisioning
and the dashboard parse, and refer to each other consistently (ports, hosts, datasource uids, mount
paths, metric and label names). Docker does not run in CI: this is what can be checked without it;
test_collector_prometheus runs every dashboard query against a real Prometheus."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from .support.collector import (
    COLLECTOR_NAMES,
    DASHBOARD,
    EXAMPLE,
    instrument_definitions,
    label_name,
    prometheus_series_names,
    prometheus_targets,
)

COMPOSE = EXAMPLE / "docker-compose.yaml"

#: Grafana's own variables the dashboard may use.
GRAFANA_BUILTINS = {"__range", "__rate_interval", "__interval", "__all"}
#: PromQL words that look like names in the regex scan below.
PROMQL_WORDS = {
    "sum",
    "by",
    "without",
    "rate",
    "increase",
    "histogram_quantile",
    "scalar",
    "vector",
    "or",
    "and",
    "unless",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "label_values",
    "max",
    "min",
    "avg",
    "count",
    "topk",
    "offset",
}


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE)  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())  # type: ignore[no-any-return]


def mounts(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path (relative to examples/collector) of a service's bind mounts."""
    found: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        found[target] = (EXAMPLE / source).resolve()
    return found


def published(service: dict[str, Any]) -> dict[int, int]:
    """Container port -> host port."""
    ports: dict[int, int] = {}
    for mapping in service.get("ports", []):
        host, container = str(mapping).split(":")[-2:]
        ports[int(container)] = int(host)
    return ports


def flag(command: list[str], name: str) -> str:
    values = [item.split("=", 1)[1] for item in command if item.startswith(name + "=")]
    assert len(values) == 1, f"{name} given {len(values)} times in {command}"
    return values[0]


def host_port(endpoint: str) -> tuple[str, int]:
    if "://" not in endpoint:
        endpoint = "//" + endpoint
    parts = urlsplit(endpoint)
    assert parts.hostname is not None and parts.port is not None, endpoint
    return parts.hostname, parts.port


def all_panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    found = []
    for panel in panels:
        found.append(panel)
        found += all_panels(panel.get("panels", []))
    return found


# --- compose --------------------------------------------------------------------------------------


def test_compose_has_the_stack_with_pinned_images(services: dict[str, Any]) -> None:
    assert {"otel-collector", "jaeger", "prometheus", "grafana", "app"} <= set(services)
    assert services["otel-collector"]["image"].startswith("otel/opentelemetry-collector-contrib:")
    for name, service in services.items():
        if "image" in service:
            image, _, tag = service["image"].rpartition(":")
            assert image and tag and tag != "latest", f"{name}: pin the image version"
    assert services["app"].get("profiles") == ["app"], "the app is opt-in (docker compose --profile app)"


def test_every_bind_mount_exists(services: dict[str, Any]) -> None:
    for name, service in services.items():
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) is missing"


def test_collector_config_is_the_mounted_file_and_its_ports_are_published(services: dict[str, Any]) -> None:
    collector = services["otel-collector"]
    config_path = flag(collector["command"], "--config")
    assert mounts(collector)[config_path] == (EXAMPLE / "otel-collector.yaml").resolve()
    config = load_yaml(EXAMPLE / "otel-collector.yaml")
    protocols = config["receivers"]["otlp"]["protocols"]
    assert host_port(protocols["grpc"]["endpoint"]) == ("0.0.0.0", 4317)
    assert host_port(protocols["http"]["endpoint"]) == ("0.0.0.0", 4318)
    ports = published(collector)
    assert ports[4317] == 4317 and ports[4318] == 4318
    exporter_port = host_port(config["exporters"]["prometheus"]["endpoint"])[1]
    assert exporter_port in ports


def test_collector_pipelines(services: dict[str, Any]) -> None:
    config = load_yaml(EXAMPLE / "otel-collector.yaml")
    pipelines = config["service"]["pipelines"]
    for name, pipeline in pipelines.items():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in (config.get(kind) or {}), f"{name}: {component} is not defined"
    assert set(pipelines) == {"traces", "metrics"}
    # Traces: OTLP gRPC to Jaeger, which listens for OTLP on 4317 inside the compose network.
    (trace_exporter,) = pipelines["traces"]["exporters"]
    assert trace_exporter.split("/")[0] == "otlp_grpc"
    jaeger = config["exporters"][trace_exporter]
    assert host_port(jaeger["endpoint"]) == ("jaeger", 4317)
    assert jaeger["tls"]["insecure"] is True
    assert services["jaeger"]["environment"]["JAEGER_LISTEN_HOST"] == "0.0.0.0"
    # Metrics: the prometheus exporter, OpenMetrics (exemplars), the names the dashboard queries.
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    exporter = config["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True
    assert exporter.get("translation_strategy", "UnderscoreEscapingWithSuffixes") == (
        "UnderscoreEscapingWithSuffixes"
    )
    assert exporter.get("add_metric_suffixes", True) is True
    assert not exporter.get("without_scope_info", False), "the dashboard filters on otel_scope_name"
    assert not exporter.get("namespace"), "a namespace would prefix every metric name"
    # Resource attributes stay on target_info; the dashboard selects services by job.
    assert not (exporter.get("resource_to_telemetry_conversion") or {}).get("enabled", False)


# --- prometheus -----------------------------------------------------------------------------------


def test_prometheus_scrapes_the_collector_exporter(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    command = prometheus["command"]
    config_path = flag(command, "--config.file")
    assert mounts(prometheus)[config_path] == (EXAMPLE / "prometheus.yml").resolve()
    assert "--enable-feature=exemplar-storage" in command
    # A new series' first export counts in increase() (the collector sends start times).
    assert "--enable-feature=created-timestamp-zero-ingestion" in command
    assert published(prometheus)[9090] == 9090
    exporter_port = host_port(
        load_yaml(EXAMPLE / "otel-collector.yaml")["exporters"]["prometheus"]["endpoint"]
    )[1]
    config = load_yaml(EXAMPLE / "prometheus.yml")
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "otel-collector"]
    assert len(jobs) == 1
    (job,) = jobs
    assert job["honor_labels"] is True, "keep the collector's job/instance (service.name/instance.id)"
    assert job.get("metrics_path", "/metrics") == "/metrics"
    targets = [target for group in job["static_configs"] for target in group["targets"]]
    assert targets == [f"otel-collector:{exporter_port}"]


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(EXAMPLE / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- grafana --------------------------------------------------------------------------------------


def datasources() -> list[dict[str, Any]]:
    return load_yaml(EXAMPLE / "grafana/provisioning/datasources/datasources.yaml")["datasources"]  # type: ignore[no-any-return]


def test_grafana_provisioning_is_mounted(services: dict[str, Any]) -> None:
    grafana = services["grafana"]
    volumes = mounts(grafana)
    assert volumes["/etc/grafana/provisioning"] == (EXAMPLE / "grafana/provisioning").resolve()
    providers = load_yaml(EXAMPLE / "grafana/provisioning/dashboards/dashboards.yaml")["providers"]
    (provider,) = providers
    assert provider["type"] == "file"
    dashboards_dir = provider["options"]["path"]
    assert volumes[dashboards_dir] == DASHBOARD.parent.resolve()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{dashboards_dir}/{DASHBOARD.name}"
    environment = grafana["environment"]
    assert environment["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert environment["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert published(grafana)[3000] == 3000


def test_datasources_point_at_the_compose_services(services: dict[str, Any]) -> None:
    by_uid = {source["uid"]: source for source in datasources()}
    assert len(by_uid) == len(datasources())
    prometheus = next(source for source in by_uid.values() if source["type"] == "prometheus")
    jaeger = next(source for source in by_uid.values() if source["type"] == "jaeger")
    assert host_port(prometheus["url"]) == ("prometheus", 9090)
    assert host_port(jaeger["url"]) == ("jaeger", 16686)
    assert published(services["jaeger"])[16686] == 16686
    (destination,) = prometheus["jsonData"]["exemplarTraceIdDestinations"]
    # The collector's prometheus exporter writes the trace id as the exemplar label "trace_id".
    assert destination == {**destination, "name": "trace_id", "datasourceUid": jaeger["uid"]}
    interval = prometheus["jsonData"]["timeInterval"]
    assert interval == load_yaml(EXAMPLE / "prometheus.yml")["global"]["scrape_interval"]


# --- the dashboard --------------------------------------------------------------------------------


def known_labels() -> set[str]:
    """Every label a series of ours can carry along the collector path."""
    labels = {
        "le",
        "job",
        "instance",
        "otel_scope_name",
        "otel_scope_version",
        "otel_scope_schema_url",
        "otel_metric_overflow",  # the SDK's point past its cardinality limit
        "__name__",
    }
    from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as GenAI
    from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
    from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT

    from otel_bedrock_tokens import names

    attributes = [
        GenAI.GEN_AI_OPERATION_NAME,
        GenAI.GEN_AI_PROVIDER_NAME,
        GenAI.GEN_AI_REQUEST_MODEL,
        GenAI.GEN_AI_TOKEN_TYPE,
        SERVER_ADDRESS,
        SERVER_PORT,
        ERROR_TYPE,
        names.CACHE_TYPE,
        names.PREDICTION_STATUS,
        names.PREDICTION_DIRECTION,
        names.PREDICTION_KIND,
        names.SERVICE_TIER,
        names.PERFORMANCE_CONFIG_LATENCY,
        names.CACHE_TTL,
        names.COST_COMPONENT,
    ]
    return labels | {label_name(attribute) for attribute in attributes}


def series_names() -> set[str]:
    definitions = instrument_definitions()
    found: set[str] = set()
    for instrument, family in COLLECTOR_NAMES.items():
        found |= prometheus_series_names(family, definitions[instrument][1])
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [target["expr"] for _, target in prometheus_targets(dashboard["panels"])]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


def test_dashboard_queries_use_only_provisioned_datasources(dashboard: dict[str, Any]) -> None:
    uids = {source["uid"]: source["type"] for source in datasources()}
    for panel in all_panels(dashboard["panels"]):
        if "datasource" in panel:
            assert uids[panel["datasource"]["uid"]] == panel["datasource"]["type"], panel["title"]
    targets = prometheus_targets(dashboard["panels"])
    assert targets
    for panel, target in targets:
        assert uids[target["datasource"]["uid"]] == "prometheus", panel["title"]
        assert target["expr"].strip(), panel["title"]
    for variable in dashboard["templating"]["list"]:
        if "datasource" in variable:
            assert uids[variable["datasource"]["uid"]] == variable["datasource"]["type"]


def test_dashboard_variables(dashboard: dict[str, Any]) -> None:
    variables = {variable["name"]: variable for variable in dashboard["templating"]["list"]}
    assert {"service", "model", "scope"} <= set(variables)
    for name in ("service", "model"):
        assert variables[name]["type"] == "query"
        assert variables[name]["includeAll"] and variables[name]["multi"]
    assert variables["scope"]["current"]["value"] == "otel_bedrock_tokens.telemetry"
    used: set[str] = set()
    for expr in [*expressions(dashboard), *(link["url"] for link in dashboard.get("links", []))]:
        used |= set(re.findall(r"\$\{?(\w+)", expr))
    assert used - GRAFANA_BUILTINS <= set(variables), used - GRAFANA_BUILTINS - set(variables)
    for name in ("service", "model", "scope"):
        assert name in used


def test_dashboard_queries_only_names_the_collector_serves(dashboard: dict[str, Any]) -> None:
    """Metric names: every one is a series of our instruments as the collector names them, and every
    instrument is on the dashboard. Label names: every one exists on our series."""
    names = series_names()
    labels = known_labels()
    used_metrics: set[str] = set()
    for expr in expressions(dashboard):
        text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values are not names
        text = re.sub(r"\[[^\]]*\]", "", text)  # range durations
        for selector in re.findall(r"\{([^}]*)\}", text):
            for matcher in filter(None, (part.strip() for part in selector.split(","))):
                label = re.match(r"(\w+)\s*(=~|!~|!=|=)", matcher)
                assert label is not None, f"cannot read matcher {matcher!r} in {expr}"
                assert label.group(1) in labels, f"unknown label {label.group(1)!r} in {expr}"
        for grouping in re.findall(r"\b(?:by|without|on|ignoring)\s*\(([^)]*)\)", text):
            for label in filter(None, (part.strip() for part in grouping.split(","))):
                assert label in labels, f"unknown label {label!r} in {expr}"
        text = re.sub(r"\{[^}]*\}", "", text)
        text = re.sub(r"\b(?:by|without|on|ignoring)\s*\([^)]*\)", "", text)
        for word in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text):
            if word in PROMQL_WORDS or word in labels:
                continue
            assert word in names, f"{word!r} is not a series of ours as the collector names it: {expr}"
            used_metrics.add(word)
    for instrument, family in COLLECTOR_NAMES.items():
        assert any(name.startswith(family) for name in used_metrics), f"{instrument} has no panel"


def test_latency_and_token_panels_link_exemplars_to_traces(dashboard: dict[str, Any]) -> None:
    with_exemplars = [
        target["expr"] for _, target in prometheus_targets(dashboard["panels"]) if target.get("exemplar")
    ]
    for family in (
        COLLECTOR_NAMES["gen_ai.client.operation.duration"],
        COLLECTOR_NAMES["gen_ai.client.operation.time_to_first_chunk"],
        COLLECTOR_NAMES["gen_ai.client.token.usage"],
    ):
        assert any(f"{family}_bucket" in expr for expr in with_exemplars), family


def test_dashboard_layout(dashboard: dict[str, Any]) -> None:
    panels = all_panels(dashboard["panels"])
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    assert dashboard["uid"] and dashboard["title"]
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    for panel in panels:
        if panel["type"] != "row":
            assert panel.get("description"), f"{panel['title']}: say what the panel shows"
            refs = [target["refId"] for target in panel["targets"]]
            assert len(refs) == len(set(refs)), panel["title"]


# --- the sample app and the README ------------------------------------------------------------------


def test_app_service_sends_otlp_to_the_collector(services: dict[str, Any]) -> None:
    from .support.collector import load_app

    app = services["app"]
    environment = app["environment"]
    collector_config = load_yaml(EXAMPLE / "otel-collector.yaml")
    http_port = host_port(collector_config["receivers"]["otlp"]["protocols"]["http"]["endpoint"])[1]
    assert host_port(environment["OTEL_EXPORTER_OTLP_ENDPOINT"]) == ("otel-collector", http_port)
    assert environment["OTEL_EXPORTER_OTLP_PROTOCOL"] == "http/protobuf"
    assert environment["OTEL_SERVICE_NAME"] == load_app().SERVICE_NAME
    assert "service.instance.id=" in environment["OTEL_RESOURCE_ATTRIBUTES"]
    assert "botocore" in environment["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"].split(",")
    assert environment["OTEL_BEDROCK_TOKENS_COUNT_TOKENS"] == "parallel"
    context = (EXAMPLE / app["build"]["context"]).resolve()  # relative to the compose file
    assert context == EXAMPLE.parent.parent
    dockerfile = (context / app["build"]["dockerfile"]).resolve()
    assert dockerfile == (EXAMPLE / "Dockerfile").resolve()
    text = dockerfile.read_text()
    assert "COPY examples/collector/app.py" in text and "opentelemetry-instrument" in text
    ignored = (EXAMPLE / "Dockerfile.dockerignore").read_text().split()
    assert "!examples/collector/app.py" in ignored and "!src" in ignored


def test_readme_documents_ports_names_and_panels(services: dict[str, Any], dashboard: dict[str, Any]) -> None:
    readme = (EXAMPLE / "README.md").read_text()
    for service in services.values():
        for port in published(service).values():
            assert str(port) in readme, f"port {port} is not in the README"
    for instrument, family in COLLECTOR_NAMES.items():
        assert f"`{instrument}`" in readme and family in readme, instrument
    for panel in all_panels(dashboard["panels"]):
        if panel["type"] != "row":
            assert panel["title"] in readme, f"panel {panel['title']!r} is not described in the README"
