"""No content, no request body, no credential ever reaches telemetry or our logs (SECURITY.md).

Every recording in ``tests/recordings`` is replayed through a real boto3 client that has distinctive
credentials (access key, secret key, session token), with our instrumentation on and CountTokens
prediction in ``parallel`` mode (the replay server answers CountTokens too), our loggers at DEBUG.
Streams are read to the end. Then everything that left through OpenTelemetry or our loggers is
searched: span names, span attributes (keys and values), events and status descriptions; every metric
point's attributes; every log record of ``otel_bedrock_tokens``, fully formatted. None may
contain a snippet of any prompt or response text of the recording (request and response bodies,
stream chunks decoded), the credentials, or the ``Authorization`` header the client sent (nor its
signature).

Three runs: normal; with span start forced to fail; with span end forced to fail. A forced failure
adds the ``repr`` of everything our code holds at that point (the request facts; the response facts
and stream attributes) to the searched text, so the search shows that none of what we extract from
a call carries content, and raises an exception quoting it, which our log must not quote.

Then our log alone: whatever exception an internal failure raises, whatever it chains, our log
carries our message, exception types and code locations, never an exception's text.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from opentelemetry.sdk.trace import SpanProcessor

from otel_bedrock_tokens import BedrockTokensInstrumentor, telemetry

from .support.replay import (
    RECORDINGS,
    Interaction,
    Replayer,
    all_recordings,
    answer,
    call_recorded,
    load,
    replay_server,
)
from .support.telemetry import TelemetryCapture, make_telemetry

#: Scheduled first under xdist; deselect with ``-m 'not slow'`` for a quick run.
pytestmark = pytest.mark.slow

ACCESS_KEY = "AKIASECURITYPROBE7Q3Z"
SECRET_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECURITYPROBE"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjSECURITYPROBETOKENxyz0123456789"
#: Keys whose string values are prompt or response content in Bedrock bodies.
CONTENT_KEYS = frozenset(
    {
        "text",
        "prompt",
        "inputText",
        "outputText",
        "completion",
        "generation",
        "content",
        "message",
        "system",
        "data",
        "input",
        "outputs",
        "results",
        "generations",
        "messages",
        "delta",
        "completions",
        "toolUse",
        "toolResult",
        "json",
    }
)
#: Keys of metadata inside content (ids, model names, roles, stop reasons): not content themselves.
METADATA_KEYS = frozenset(
    {
        "id",
        "model",
        "type",
        "role",
        "stop_reason",
        "stopReason",
        "stop_sequence",
        "finish_reason",
        "completionReason",
        "toolUseId",
        "tool_use_id",
        "anthropic_version",
    }
)
MIN_SNIPPET = 12
OUR_LOGGER = "otel_bedrock_tokens"


# --- what the recordings say -------------------------------------------------------------------


def _event_payloads(body: bytes) -> Iterator[Any]:
    """JSON payloads of an event-stream body (chunk ``bytes`` decoded too)."""
    offset = 0
    while offset + 12 <= len(body):
        total, headers_length = struct.unpack_from(">II", body, offset)
        if total < 16 or offset + total > len(body):
            return
        payload = body[offset + 12 + headers_length : offset + total - 4]
        offset += total
        try:
            value = json.loads(payload)
        except ValueError:
            continue
        yield value
        if isinstance(value, dict) and isinstance(value.get("bytes"), str):
            try:
                yield json.loads(base64.b64decode(value["bytes"]))
            except ValueError:
                continue


def _json_values(data: bytes) -> Iterator[Any]:
    try:
        yield json.loads(data)
    except ValueError:
        yield from _event_payloads(data)


def _content_strings(value: Any, inside: bool = False) -> Iterator[str]:
    """String leaves under a content key (``text``, ``prompt``, ``content``...), at any depth."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key not in METADATA_KEYS:
                yield from _content_strings(item, inside or key in CONTENT_KEYS)
    elif isinstance(value, list):
        for item in value:
            yield from _content_strings(item, inside)
    elif isinstance(value, str) and inside:
        yield value


def snippets(interaction: Interaction) -> set[str]:
    """Pieces of the prompt and response text of one interaction, as a telemetry leak would show
    them: each content string of at least 12 characters, its first 24 and its last 24."""
    found: set[str] = set()
    # An error answer's ``message`` is the service's, not content: the app's own exception carries it,
    # and a traceback we log while that exception is being handled may show it (see SECURITY.md).
    bodies = (
        (interaction.request_body, interaction.body)
        if interaction.status < 400
        else (interaction.request_body,)
    )
    for data in bodies:
        pieces: list[str] = []
        for value in _json_values(data):
            pieces.extend(_content_strings(value))
        # A stream's text arrives in small deltas: the text they make up is content too.
        for text in [*pieces, "".join(pieces)]:
            text = text.strip()
            if len(text) >= MIN_SNIPPET:
                found.update({text[:24], text[-24:]})
    return found


def test_the_recordings_have_content_to_look_for() -> None:
    """The search is not vacuous: most recordings yield prompt and response snippets."""
    files = all_recordings()
    with_snippets = [path for path in files if any(snippets(i) for i in load(path))]
    assert len(files) > 100
    assert len(with_snippets) >= 0.9 * len(files)
    claude = load(
        RECORDINGS / "openllmetry" / "traces__test_anthropic__test_anthropic_3_completion_streaming.yaml"
    )
    assert any("distributed" in snippet or "span" in snippet for snippet in snippets(claude[0]))


# --- what left -----------------------------------------------------------------------------------


class Captured(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
        self.lines: list[str] = []
        self.records = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.startswith(OUR_LOGGER) and ".emulator" not in record.name:
            self.records += 1
            self.lines.append(self.format(record))


def exported_text(telemetry: TelemetryCapture, logs: Captured) -> str:
    parts: list[str] = []
    for span in telemetry.spans():
        parts.append(span.name)
        parts.append(str(span.status.description))
        for key, value in (span.attributes or {}).items():
            parts.append(f"{key}={value!r}")
        for event in span.events:
            parts.append(event.name)
            parts.extend(f"{key}={value!r}" for key, value in (event.attributes or {}).items())
    data = telemetry.reader.get_metrics_data()
    if data is not None:
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    parts.append(metric.name)
                    for point in metric.data.data_points:
                        parts.extend(f"{key}={value!r}" for key, value in point.attributes.items())
    parts.extend(logs.lines)
    return "\n".join(parts)


# --- the replay ------------------------------------------------------------------------------------


def probe_client(replayer: Replayer, authorizations: list[str]) -> Any:
    client = boto3.client(
        "bedrock-runtime",
        region_name="us-east-1",
        endpoint_url=replayer.endpoint_url,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        aws_session_token=SESSION_TOKEN,
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}, read_timeout=10),
    )

    def remember(request: Any, **_: Any) -> None:
        authorizations.append(str(request.headers.get("Authorization")))

    client.meta.events.register("before-send.bedrock-runtime", remember)
    return client


def consume(result: Any) -> None:
    stream = result.get("body") if "body" in result else result.get("stream")
    if stream is None:
        return
    if hasattr(stream, "read") and not hasattr(stream, "__iter__"):
        stream.read()
        return
    try:
        if hasattr(stream, "read"):
            stream.read()
        else:
            for _ in stream:
                pass
    except Exception:
        pass  # a recorded stream that ends in an error: what matters is what we exported


def replay_everything(telemetry: TelemetryCapture, logs: Captured) -> dict[Path, str]:
    """Replay every recording; returns, per file, the text exported while it was replayed."""
    exported: dict[Path, str] = {}
    authorizations: list[str] = []
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=telemetry.tracer_provider,
        meter_provider=telemetry.meter_provider,
        count_tokens="parallel",
        count_tokens_cache_size=0,
    )
    try:
        with replay_server() as replayer:
            client = probe_client(replayer, authorizations)
            for path in all_recordings():
                for interaction in load(path):
                    replayer.serve(interaction, answer("CountTokens", 200, {"inputTokens": 42}))
                    with contextlib.suppress(Exception):  # recorded errors (HTTP 400...) reach the app
                        consume(call_recorded(client, interaction))
                instrumentor.wait_for_predictions(10.0)
                exported[path] = exported_text(telemetry, logs)
                telemetry.exporter.clear()
                logs.lines.clear()
    finally:
        instrumentor.uninstrument()
    assert len(authorizations) > len(exported)
    secrets = {ACCESS_KEY, SECRET_KEY, SESSION_TOKEN}
    for authorization in authorizations:
        assert ACCESS_KEY in authorization  # the probe really signed with these credentials
        secrets.add(authorization)
        secrets.add(authorization.rsplit("Signature=", 1)[-1])
    exported[Path("__secrets__")] = "\n".join(sorted(secrets))
    return exported


@pytest.fixture
def logs() -> Iterator[Captured]:
    handler = Captured()
    logger = logging.getLogger(OUR_LOGGER)
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


def check(exported: dict[Path, str]) -> None:
    secrets = exported.pop(Path("__secrets__")).splitlines()
    leaks: list[str] = []
    for path, text in exported.items():
        for interaction in load(path):
            leaks.extend(f"{path.name}: {snippet!r}" for snippet in snippets(interaction) if snippet in text)
        leaks.extend(f"{path.name}: a credential or signature" for secret in secrets if secret in text)
    assert leaks == []


def test_nothing_leaks_from_normal_calls(logs: Captured) -> None:
    telemetry = make_telemetry()
    exported = replay_everything(telemetry, logs)
    joined = "\n".join(exported.values())
    assert "gen_ai.usage.input_tokens" in joined and "bedrock_tokens.prediction.status" in joined
    check(exported)


def test_nothing_leaks_when_span_start_fails(logs: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_start(self: Any, request: Any) -> Any:
        logs.lines.append(repr(request))  # what our code holds is searched as if it were logged
        raise RuntimeError(f"forced failure at span start, holding {request!r}")

    monkeypatch.setattr(telemetry.Instruments, "start", failing_start)
    exported = replay_everything(make_telemetry(), logs)
    assert logs.records > 100  # the forced failures were logged: their type, not their message
    joined = "\n".join(exported.values())
    assert "RuntimeError raised at" in joined and "forced failure" not in joined
    assert "RequestFacts(" in joined
    check(exported)


def test_nothing_leaks_when_span_end_fails(logs: Captured, monkeypatch: pytest.MonkeyPatch) -> None:
    real_end = telemetry.Call.record_end  # every end, with or without a prediction, goes through it

    def failing_end(self: Any, response: Any, error_type: Any = None, extra: Any = None) -> Any:
        real_end(self, None, "forced")  # the span still ends, so the next call starts clean
        held = f"{response!r} {error_type!r} {extra!r}"
        logs.lines.append(held)  # what our code holds is searched as if it were logged
        raise RuntimeError(f"forced failure at span end, holding {held}")

    monkeypatch.setattr(telemetry.Call, "record_end", failing_end)
    exported = replay_everything(make_telemetry(), logs)
    assert logs.records > 100
    joined = "\n".join(exported.values())
    assert "RuntimeError raised at" in joined and "forced failure" not in joined
    assert "ResponseFacts(" in joined
    check(exported)


def test_a_failed_call_whose_error_quotes_the_prompt_does_not_reach_our_log(
    logs: Captured, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Defence in depth: even when our recording of a failed call itself fails, the app's exception
    (whose message may quote the request) must not end up in our debug log."""
    secret = "SECRET-PROMPT-TEXT-7f3a"

    def failing_end(self: Any, response: Any, error_type: Any = None, extra: Any = None) -> Any:
        raise RuntimeError("forced failure at span end")

    monkeypatch.setattr(telemetry.Call, "record_end", failing_end)
    record = make_telemetry()
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=record.tracer_provider, meter_provider=record.meter_provider)
    try:
        with replay_server() as replayer:
            client = probe_client(replayer, [])
            with pytest.raises(Exception, match=secret):  # botocore refuses bytes where text is due
                client.converse(
                    modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                    messages=[{"role": "user", "content": [{"text": secret.encode()}]}],
                )
    finally:
        instrumentor.uninstrument()
    assert logs.records == 1  # our failure was logged...
    assert secret not in "\n".join(logs.lines)  # ...without the prompt


# --- our debug log quotes no exception text (issue 13 item 7) -----------------------------------

MARKER = "SECRET-MARKER-91c2"


def _app_error() -> BaseException:
    """The app's exception being handled while our code ends the failed call's span."""
    import sys

    from botocore.exceptions import ParamValidationError

    error = sys.exc_info()[1]
    assert isinstance(error, ParamValidationError) and MARKER in str(error)
    return error


def _cause_chains_the_app_error() -> None:
    # The common exporter pattern: wrap the inner failure; the inner one chains the app's error.
    try:
        raise ValueError("inner failure")
    except ValueError as inner:
        raise RuntimeError("export failed") from inner


def _context_is_the_app_error() -> None:
    raise RuntimeError("export failed")


def _cause_of_cause_is_the_app_error() -> None:
    inner = ValueError("inner failure")
    inner.__cause__ = _app_error()
    raise RuntimeError("export failed") from inner


def _marker_in_the_raised_message() -> None:
    raise RuntimeError(f"export failed for {MARKER}")


def _marker_in_the_cause_message() -> None:
    raise RuntimeError("export failed") from ValueError(f"bad value {MARKER}")


class _FailingProcessor(SpanProcessor):
    """A span processor whose ``on_end`` raises the way ``raising`` does."""

    def __init__(self, raising: Any) -> None:
        self.raising = raising

    def on_end(self, span: Any) -> None:
        self.raising()


def _everything_logged(caplog: pytest.LogCaptureFixture) -> str:
    """Every record of every logger, formatted fully (tracebacks and stack info included)."""
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    return "\n".join(formatter.format(record) for record in caplog.records)


@pytest.mark.parametrize(
    "raising",
    [
        _cause_chains_the_app_error,
        _context_is_the_app_error,
        _cause_of_cause_is_the_app_error,
        _marker_in_the_raised_message,
        _marker_in_the_cause_message,
    ],
)
def test_no_exception_text_reaches_our_log(raising: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    record = make_telemetry()
    record.tracer_provider.add_span_processor(_FailingProcessor(raising))
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(tracer_provider=record.tracer_provider, meter_provider=record.meter_provider)
    try:
        with replay_server() as replayer:
            client = probe_client(replayer, [])
            with pytest.raises(Exception, match=MARKER):  # botocore refuses bytes where text is due
                client.converse(
                    modelId="anthropic.claude-3-5-haiku-20241022-v1:0",
                    messages=[{"role": "user", "content": [{"text": MARKER.encode()}]}],
                )
    finally:
        instrumentor.uninstrument()
    ours = [r for r in caplog.records if r.name.startswith(OUR_LOGGER)]
    assert [r.getMessage().split(":")[:2] for r in ours] == [
        ["bedrock-tokens", " could not record a failed call"]
    ]
    assert MARKER not in _everything_logged(caplog)  # no exception's text...
    assert "RuntimeError" in ours[0].getMessage()  # ...but the type of what failed


def test_logging_our_failure_leaves_the_exception_untouched(caplog: pytest.LogCaptureFixture) -> None:
    """A hook may raise an exception the app keeps: logging it must not rewrite its chain."""
    caplog.set_level(logging.DEBUG)
    kept = ValueError("the app's own")
    earlier = KeyError("earlier")
    try:
        raise earlier
    except KeyError:
        with contextlib.suppress(ValueError):
            raise kept  # noqa: B904 (the implicit context is the point)
    assert kept.__context__ is earlier

    def hook(*_: Any) -> None:
        raise kept

    record = make_telemetry()
    instrumentor = BedrockTokensInstrumentor()
    instrumentor.instrument(
        tracer_provider=record.tracer_provider, meter_provider=record.meter_provider, request_hook=hook
    )
    try:
        with replay_server() as replayer:
            replayer.serve(answer("Converse", 200, {"output": {}, "usage": {}}))
            with contextlib.suppress(Exception):
                probe_client(replayer, []).converse(
                    modelId="anthropic.claude-3-5-haiku-20241022-v1:0", messages=[]
                )
    finally:
        instrumentor.uninstrument()
    assert any("a user hook raised" in r.getMessage() for r in caplog.records)
    assert (kept.__context__, kept.__suppress_context__) == (earlier, False)


def test_the_aiobotocore_warning_quotes_no_exception_text(caplog: pytest.LogCaptureFixture) -> None:
    """The aiobotocore patch is applied when the app imports it, which may be while the app handles
    an exception of its own: the warning names what failed, never the chain."""
    import types

    from otel_bedrock_tokens.instrumentor import _AioPatch

    caplog.set_level(logging.DEBUG)
    patch = _AioPatch(object())  # type: ignore[arg-type]
    try:
        raise ValueError(MARKER)
    except ValueError:
        patch.apply(types.ModuleType(f"no_client_class_{MARKER}"))
    (warning,) = [r for r in caplog.records if r.name.startswith(OUR_LOGGER)]
    assert "could not instrument aiobotocore" in warning.getMessage()
    assert MARKER not in _everything_logged(caplog)
