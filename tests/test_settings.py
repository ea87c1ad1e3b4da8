"""Settings: every bad value is a ``SettingError`` naming the keyword or variable and what it accepts;
unknown names are reported; under the auto-instrumentation loader a bad value is logged and that
setting falls back to its default (issue 13 item 8)."""

from __future__ import annotations

import logging
import re
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otel_bedrock_tokens import BedrockTokensInstrumentor
from otel_bedrock_tokens.settings import DOCS, SettingError, Settings, env_name

#: What a parse error must say about the accepted forms.
ACCEPTS = re.compile(r" must (be|look like|map) .+; got ")

SPECIAL = [
    "²",
    "\uff11\uff12"  # fullwidth 12,
    "٣",
    "1e309",
    "-1e309",
    "nan",
    "NaN",
    "inf",
    "-inf",
    "-0",
    "+0",
    "0x10",
    "1_000",
    "1.5",
    "1e3",
    " ",
    "\u2003",
    "\t7\n",
    "9" * 5000,
    "-" + "9" * 5000,
    "=",
    "a=",
    "=b",
    "*=²",
    "*=9" + "9" * 5000,
    "a=1,",
    ",",
    "true",
    "ON",
]

garbage_text = st.one_of(st.sampled_from(SPECIAL), st.text(max_size=30))
garbage_object = st.one_of(
    garbage_text,
    st.integers(),
    st.sampled_from([10**400, -(10**400), 2**63, float("nan"), float("inf"), True, False, b"1", 1j]),
    st.floats(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(
        st.one_of(st.text(max_size=5), st.integers()),
        st.one_of(garbage_text, st.integers(), st.none(), st.floats()),
        max_size=3,
    ),
)


def _context(keyword: str) -> dict[str, str]:
    """The other settings a value of ``keyword`` needs to be judged on its own."""
    return {"count_tokens": "before"} if keyword in ("max_input_tokens", "max_request_cost_usd") else {}


def _assert_named(error: SettingError, name: str) -> None:
    message = str(error)
    assert isinstance(error, ValueError)
    assert name in message, message
    assert ACCEPTS.search(message), message


@pytest.mark.parametrize("keyword", sorted(DOCS))
@settings(max_examples=150, deadline=None)
@given(raw=garbage_text)
def test_a_bad_variable_is_a_setting_error_naming_it(keyword: str, raw: str) -> None:
    environ = {env_name(key): value for key, value in _context(keyword).items()}
    environ[env_name(keyword)] = raw
    try:
        Settings.load({}, environ)
    except SettingError as error:
        _assert_named(error, env_name(keyword))


@pytest.mark.parametrize("keyword", sorted(DOCS))
@settings(max_examples=150, deadline=None)
@given(value=garbage_object)
def test_a_bad_keyword_value_is_a_setting_error_naming_it(keyword: str, value: Any) -> None:
    try:
        Settings.load({**_context(keyword), keyword: value}, {})
    except SettingError as error:
        _assert_named(error, f"instrument({keyword}=...)")


def test_a_superscript_budget_names_the_variable() -> None:
    """``'²'.isdigit()`` is true but ``int('²')`` fails: that was a bare ValueError."""
    environ = {env_name("count_tokens"): "before", env_name("max_input_tokens"): "²"}
    with pytest.raises(SettingError, match="OTEL_BEDROCK_TOKENS_MAX_INPUT_TOKENS must be a whole number"):
        Settings.load({}, environ)


def test_an_unknown_keyword_is_a_type_error_naming_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"'count_token'.*did you mean 'count_tokens'.*max_input_tokens"):
        Settings.load({"count_token": "parallel"}, {})


def test_instrument_refuses_an_unknown_keyword() -> None:
    instrumentor = BedrockTokensInstrumentor()
    with pytest.raises(TypeError, match="count_token"):
        instrumentor.instrument(count_token="parallel")
    instrumentor.uninstrument()


@pytest.mark.parametrize(
    "keyword", ["tracer_provider", "meter_provider", "logger_provider", "event_logger_provider"]
)
def test_the_keywords_other_instrumentations_take_are_accepted(keyword: str) -> None:
    assert Settings.load({keyword: object()}, {}) == Settings()


def test_an_unknown_variable_is_one_warning_naming_the_closest(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    Settings.load({}, {"OTEL_BEDROCK_TOKENS_COUNT_TOKEN": "parallel", "OTEL_OTHER": "x"})
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "OTEL_BEDROCK_TOKENS_COUNT_TOKEN " in record.getMessage()
    assert "did you mean OTEL_BEDROCK_TOKENS_COUNT_TOKENS?" in record.getMessage()


def test_an_unknown_variable_far_from_any_lists_the_known(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    Settings.load({}, {"OTEL_BEDROCK_TOKENS_XYZZY": "1"})
    (record,) = caplog.records
    assert "OTEL_BEDROCK_TOKENS_XYZZY" in record.getMessage()
    assert all(env_name(keyword) in record.getMessage() for keyword in DOCS)


def test_known_variables_warn_nothing(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    Settings.load({}, {env_name(keyword): "" for keyword in DOCS})
    assert caplog.records == []


# --- lenient loading: what the auto-instrumentation loader gets -------------------------------------


def test_leniently_a_bad_variable_is_one_error_and_its_default(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    environ = {env_name("count_tokens"): "bogus", env_name("count_tokens_workers"): "7"}
    loaded = Settings.load({}, environ, lenient=True)
    assert (loaded.prediction.mode, loaded.prediction.workers) == ("off", 7)
    (record,) = caplog.records
    assert record.levelno == logging.ERROR
    assert "OTEL_BEDROCK_TOKENS_COUNT_TOKENS must be one of off, parallel, before" in record.getMessage()
    assert "using the default" in record.getMessage()


def test_leniently_each_bad_setting_is_reported_once(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    environ = {
        env_name("count_tokens"): "bogus",
        env_name("count_tokens_workers"): "²",
        env_name("max_input_tokens"): "100",  # fine, but it needs count_tokens=before
    }
    assert Settings.load({}, environ, lenient=True) == Settings()
    named = sorted(
        re.findall(r"OTEL_BEDROCK_TOKENS_[A-Z_]+", " ".join(r.getMessage()[:60] for r in caplog.records))
    )
    assert named == [env_name("count_tokens"), env_name("count_tokens_workers"), env_name("max_input_tokens")]


def test_leniently_an_unknown_keyword_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    assert Settings.load({"count_token": "parallel"}, {}, lenient=True) == Settings()
    (record,) = caplog.records
    assert record.levelno == logging.ERROR and "count_token" in record.getMessage()


def test_instrument_called_by_the_auto_instrumentation_loader_logs_instead_of_raising(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The loader is recognised on the call stack (the end-to-end run is in
    test_opentelemetry_instrument.py); an explicit call with the same environment raises."""
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("OTEL_BEDROCK_TOKENS_COUNT_TOKENS", "bogus")
    instrumentor = BedrockTokensInstrumentor()
    loader = {"__name__": "opentelemetry.instrumentation.auto_instrumentation._load", "it": instrumentor}
    try:
        exec("it.instrument(skip_dep_check=True)", loader)
        assert instrumentor.is_instrumented_by_opentelemetry
    finally:
        instrumentor.uninstrument()
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "OTEL_BEDROCK_TOKENS_COUNT_TOKENS must be one of" in record.getMessage()
    with pytest.raises(SettingError, match="OTEL_BEDROCK_TOKENS_COUNT_TOKENS"):
        instrumentor.instrument()
    instrumentor.uninstrument()
