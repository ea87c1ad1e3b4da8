"""Bedrock's errors, with the status codes of botocore's service model and Bedrock's wording.

An error response is the status, ``x-amzn-ErrorType: <Code>:http://internal.amazon.com/coral/
com.amazon.bedrock/`` and ``{"message": ...}``, as recorded from the real service; botocore turns it
into ``ClientError`` with ``Error.Code == <Code>``. Inside a stream the same errors travel as
exception frames named by their lower-camel member name (``throttlingException``).
"""

from __future__ import annotations

from typing import Any

ERROR_TYPE_SUFFIX = ":http://internal.amazon.com/coral/com.amazon.bedrock/"

#: Code -> (HTTP status, Bedrock's message).
CATALOG: dict[str, tuple[int, str]] = {
    "ThrottlingException": (429, "Too many requests, please wait before trying again."),
    "AccessDeniedException": (403, "You don't have access to the model with the specified model ID."),
    "ValidationException": (400, "The provided model identifier is invalid."),
    "ResourceNotFoundException": (404, "The specified resource could not be found."),
    "ServiceQuotaExceededException": (400, "Your request exceeds the service quota for your account."),
    "InternalServerException": (500, "The server encountered an internal error."),
    "ServiceUnavailableException": (503, "Bedrock is unable to process your request."),
    "ModelTimeoutException": (408, "Model has timed out in processing the request. Try your request again."),
    "ModelNotReadyException": (429, "The model is not ready to serve inference requests."),
    "ModelErrorException": (424, "The model encountered an error processing your request."),
    "ModelStreamErrorException": (424, "The model encountered an error while streaming the response."),
}

INVALID_MODEL = "The provided model identifier is invalid."
COUNT_TOKENS_UNSUPPORTED = "The provided model doesn't support counting tokens."
CONVERSE_UNSUPPORTED = (
    "This action doesn't support the model that you provided. Try again with a supported text or chat model."
)
STREAMING_UNSUPPORTED = "The model is unsupported for streaming."
MALFORMED_INPUT = "Malformed input request, please reformat your input and try again."


class BedrockError(Exception):
    """An error the emulator answers with; raised anywhere while a request is being planned."""

    def __init__(self, code: str, message: str, status: int, extra: tuple[tuple[str, Any], ...] = ()) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.status = status
        self.extra = extra

    @classmethod
    def of(cls, code: str, message: str | None = None, **extra: Any) -> BedrockError:
        status, default = CATALOG.get(code, (400, code))
        return cls(code, message if message is not None else default, status, tuple(extra.items()))

    @classmethod
    def validation(cls, message: str) -> BedrockError:
        return cls.of("ValidationException", message)

    @property
    def stream_member(self) -> str:
        """The event-stream member name: ``ThrottlingException`` -> ``throttlingException``."""
        return self.code[:1].lower() + self.code[1:]

    def payload(self) -> dict[str, Any]:
        return {"message": self.message, **dict(self.extra)}

    def __str__(self) -> str:
        return f"{self.code} ({self.status}): {self.message}"
