"""Is this HTTP request a Bedrock call, and which one? Decided from method, path and headers only.

Every request an instrumented HTTP client sends passes through :func:`recognize`, so the common case
(not Bedrock) must cost next to nothing: a non-``POST`` request is refused on one string comparison,
a ``POST`` on a few suffix and substring tests of its path; headers are looked at only when the path
already looks like a Bedrock route. The path decides the operation; the ``Authorization`` header
decides that it is Bedrock at all, because the base URL may be anything (a VPC endpoint, a proxy, the
emulator): a SigV4 credential scope naming the service ``bedrock`` or ``bedrock-mantle``, or a bearer
token (Bedrock API keys) sent to a Bedrock host.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote

#: Operation names: the botocore ones for bedrock-runtime routes, our own for the mantle APIs.
INVOKE_MODEL = "InvokeModel"
INVOKE_MODEL_STREAM = "InvokeModelWithResponseStream"
CONVERSE = "Converse"
CONVERSE_STREAM = "ConverseStream"
COUNT_TOKENS = "CountTokens"
#: Anthropic Messages on bedrock-mantle (``/anthropic/v1/messages``); streamed or not per the body.
MESSAGES = "Messages"
#: Anthropic ``/v1/messages/count_tokens`` on bedrock-mantle.
MESSAGES_COUNT_TOKENS = "MessagesCountTokens"
#: OpenAI Chat Completions and Responses on bedrock-mantle.
CHAT_COMPLETIONS = "ChatCompletions"
RESPONSES = "Responses"

_MODEL_ACTIONS = {
    "invoke": INVOKE_MODEL,
    "invoke-with-response-stream": INVOKE_MODEL_STREAM,
    "converse": CONVERSE,
    "converse-stream": CONVERSE_STREAM,
    "count-tokens": COUNT_TOKENS,
}
#: Mantle path suffixes (after any base-URL prefix such as ``/anthropic``, ``/openai`` or a proxy's).
_MANTLE_SUFFIXES = (
    ("/v1/messages", MESSAGES),
    ("/v1/messages/count_tokens", MESSAGES_COUNT_TOKENS),
    ("/v1/chat/completions", CHAT_COMPLETIONS),
    ("/v1/responses", RESPONSES),
)
#: A path can only be a mantle route when it ends in one of these (one ``str.endswith`` call).
_MANTLE_ENDINGS = tuple(suffix for suffix, _ in _MANTLE_SUFFIXES)
#: The same, by the path's last segment (one dict lookup, then one suffix test).
_MANTLE_BY_LAST_SEGMENT = {
    suffix.rsplit("/", 1)[1]: (suffix, operation) for suffix, operation in _MANTLE_SUFFIXES
}
_MODEL_SEGMENT = "/model/"
_SIGV4 = "AWS4-HMAC-SHA256"
_BEDROCK_SERVICES = frozenset({"bedrock", "bedrock-mantle"})
#: Host name fragments of Bedrock endpoints (``bedrock-runtime.<region>.amazonaws.com``,
#: ``bedrock-runtime-fips...``, ``bedrock-mantle.<region>.api.aws``, VPC endpoint names).
_BEDROCK_HOST_MARKERS = ("bedrock-runtime", "bedrock-mantle")


class BedrockRequest(NamedTuple):
    """A recognized Bedrock request."""

    #: One of the operation constants of this module.
    operation: str
    #: The model id as the caller passed it (percent-decoded from the path); ``None`` for the mantle
    #: APIs, which carry the model in the body.
    model_id: str | None
    #: ``bedrock`` (bedrock-runtime routes) or ``bedrock-mantle``.
    service: str


def route(path: str) -> tuple[str, str | None, str] | None:
    """``(operation, model id, service)`` for a Bedrock-shaped path (query string allowed), else
    ``None``. Says nothing about whether the request really goes to Bedrock (see :func:`recognize`)."""
    query = path.find("?")
    if query >= 0:
        path = path[:query]
    if path.endswith("/"):
        path = path[:-1]
    at = path.find(_MODEL_SEGMENT)
    if at >= 0:
        rest = path[at + len(_MODEL_SEGMENT) :]
        slash = rest.rfind("/")
        if slash > 0:
            operation = _MODEL_ACTIONS.get(rest[slash + 1 :])
            if operation is not None:
                return operation, unquote(rest[:slash]), "bedrock"
        return None
    found = _MANTLE_BY_LAST_SEGMENT.get(path[path.rfind("/") + 1 :])
    if found is not None and path.endswith(found[0]):
        return found[1], None, "bedrock-mantle"
    return None


def _signed_service(authorization: str) -> str | None:
    """The service of a SigV4 ``Authorization`` header's credential scope
    (``Credential=AKID/20250101/us-east-1/bedrock/aws4_request``)."""
    at = authorization.find("Credential=")
    if at < 0:
        return None
    end = authorization.find(",", at)
    scope = authorization[at + 11 : end if end >= 0 else len(authorization)].strip().split("/")
    return scope[3] if len(scope) == 5 else None


def is_bedrock_authorization(authorization: str | None, host: str) -> bool:
    """SigV4 signed for a Bedrock service (whatever the host), or a bearer token to a Bedrock host."""
    if not authorization:
        return False
    if authorization.startswith(_SIGV4):
        return _signed_service(authorization) in _BEDROCK_SERVICES
    if authorization[:7].lower() == "bearer ":
        lowered = host.lower()
        return _BEDROCK_HOST_MARKERS[0] in lowered or _BEDROCK_HOST_MARKERS[1] in lowered
    return False


def _plausible(path: str) -> bool:
    """One substring search and one suffix test: the whole cost for almost every request (a trailing
    slash defeats the suffix test, so such paths go on to the full match). ``path`` without query."""
    return _MODEL_SEGMENT in path or path.endswith(_MANTLE_ENDINGS) or path.endswith("/")


def plausible(path: str) -> bool:
    """Whether a raw path (query allowed) may be a Bedrock route: a transport's pre-check before it
    reads anything else of the request (the ``Host`` header for :func:`recognize`)."""
    query = path.find("?")
    return _plausible(path[:query] if query >= 0 else path)


def recognize(method: str, path: str, host: str, headers: Mapping[str, str]) -> BedrockRequest | None:
    """The Bedrock call this request is, or ``None`` (most requests: decided without reading headers).

    ``path`` is the raw (still percent-encoded) path with any query; ``headers`` any mapping with
    case-insensitive ``get`` (httpx's and httpx2's ``Headers``; a plain dict with lower-case keys).
    Never raises for ``str`` arguments.
    """
    if method != "POST":
        return None
    query = path.find("?")
    if query >= 0:
        path = path[:query]
    if not _plausible(path):
        return None
    found = route(path)
    if found is None:
        return None
    if not is_bedrock_authorization(headers.get("authorization"), host):
        return None
    return BedrockRequest(*found)
