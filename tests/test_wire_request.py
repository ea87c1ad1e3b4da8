"""wire.request: which raw HTTP requests are Bedrock calls, and which operation and model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.wire.request import (
    CHAT_COMPLETIONS,
    CONVERSE,
    CONVERSE_STREAM,
    COUNT_TOKENS,
    INVOKE_MODEL,
    INVOKE_MODEL_STREAM,
    MESSAGES,
    MESSAGES_COUNT_TOKENS,
    RESPONSES,
    BedrockRequest,
    recognize,
)

SIGV4 = (
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20250101/us-east-1/{service}/aws4_request, "
    "SignedHeaders=content-type;host;x-amz-date, Signature=0123abcd"
)
RUNTIME = {"authorization": SIGV4.format(service="bedrock")}
MANTLE = {"authorization": SIGV4.format(service="bedrock-mantle")}
BEARER = {"authorization": "Bearer bedrock-api-key-abc"}


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/invoke", INVOKE_MODEL),
        ("/model/anthropic.claude-3-5-haiku-20241022-v1:0/invoke-with-response-stream", INVOKE_MODEL_STREAM),
        ("/model/us.amazon.nova-lite-v1%3A0/converse", CONVERSE),
        ("/model/us.amazon.nova-lite-v1%3A0/converse-stream", CONVERSE_STREAM),
        ("/model/anthropic.claude-3-5-haiku-20241022-v1%3A0/count-tokens", COUNT_TOKENS),
    ],
)
def test_runtime_routes_give_operation_and_decoded_model(path: str, operation: str) -> None:
    found = recognize("POST", path, "127.0.0.1", RUNTIME)
    assert found is not None
    assert found.operation == operation
    assert found.model_id is not None and found.model_id.startswith(("anthropic.", "us.amazon."))
    assert ":" in found.model_id and "%" not in found.model_id


def test_arn_model_id_stays_one_segment() -> None:
    arn = "arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123def456"
    path = "/model/" + arn.replace(":", "%3A").replace("/", "%2F") + "/converse"
    assert recognize("POST", path, "vpce-1.bedrock-runtime.us-east-1.vpce.amazonaws.com", RUNTIME) == (
        BedrockRequest(CONVERSE, arn, "bedrock")
    )


@pytest.mark.parametrize(
    ("path", "operation"),
    [
        ("/anthropic/v1/messages", MESSAGES),
        ("/anthropic/v1/messages?beta=true", MESSAGES),
        ("/anthropic/v1/messages/count_tokens", MESSAGES_COUNT_TOKENS),
        ("/v1/chat/completions", CHAT_COMPLETIONS),
        ("/openai/v1/chat/completions", CHAT_COMPLETIONS),
        ("/v1/responses", RESPONSES),
        ("/openai/v1/responses/", RESPONSES),
    ],
)
def test_mantle_routes_signed_for_bedrock_mantle(path: str, operation: str) -> None:
    assert recognize("POST", path, "127.0.0.1", MANTLE) == BedrockRequest(operation, None, "bedrock-mantle")


def test_bearer_token_to_a_mantle_host_is_bedrock() -> None:
    found = recognize("POST", "/v1/chat/completions", "bedrock-mantle.us-east-1.api.aws", BEARER)
    assert found == BedrockRequest(CHAT_COMPLETIONS, None, "bedrock-mantle")


def test_bearer_token_to_a_runtime_host_is_bedrock() -> None:
    path = "/model/anthropic.claude-sonnet-4-6/invoke"
    found = recognize("POST", path, "bedrock-runtime.us-west-2.amazonaws.com", BEARER)
    assert found == BedrockRequest(INVOKE_MODEL, "anthropic.claude-sonnet-4-6", "bedrock")


def test_bearer_token_to_another_host_is_not_bedrock() -> None:
    assert recognize("POST", "/v1/chat/completions", "api.openai.com", BEARER) is None


def test_sigv4_for_another_service_is_not_bedrock() -> None:
    headers = {"authorization": SIGV4.format(service="sagemaker")}
    assert recognize("POST", "/model/x/invoke", "runtime.sagemaker.us-east-1.amazonaws.com", headers) is None


def test_unsigned_request_is_not_bedrock() -> None:
    assert recognize("POST", "/model/x/invoke", "127.0.0.1", {}) is None


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "post"])
def test_only_post_is_bedrock(method: str) -> None:
    assert recognize(method, "/model/x/invoke", "127.0.0.1", RUNTIME) is None


@pytest.mark.parametrize(
    "path",
    ["/", "/model/x/list", "/model//invoke", "/v1/embeddings", "/v1/messages/batches", "/api/model"],
)
def test_other_paths_are_not_bedrock(path: str) -> None:
    assert recognize("POST", path, "127.0.0.1", RUNTIME) is None


class _Counting(dict[str, str]):
    """Headers that count lookups: the fast reject must not read them."""

    looked = 0

    def get(self, key: str, default: object = None) -> object:  # type: ignore[override]
        self.looked += 1
        return super().get(key, default)


def test_non_bedrock_paths_are_refused_without_reading_headers() -> None:
    headers = _Counting(RUNTIME)
    for path in ("/api/v2/items", "/graphql", "/v1/embeddings", "/upload/file.bin"):
        assert recognize("POST", path, "example.com", headers) is None
    assert headers.looked == 0


@given(st.text(max_size=200), st.text(max_size=60), st.text(max_size=300))
def test_never_raises_on_arbitrary_text(path: str, host: str, authorization: str) -> None:
    recognize("POST", path, host, {"authorization": authorization})
    recognize("POST", "/model/" + path + "/invoke", host, {"authorization": authorization})
