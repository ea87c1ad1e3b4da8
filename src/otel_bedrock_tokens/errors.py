"""``error.type`` for a failed call, and what a botocore error still tells about the call."""

from __future__ import annotations

from botocore.exceptions import ClientError

from .facts import ResponseFacts
from .families._fields import as_dict
from .metering import response_metadata


def error_type_of(error: BaseException) -> str:
    """The AWS error code (``ThrottlingException``, ``modelStreamErrorException``) when the service
    answered with one, else the exception's fully qualified class name (transport errors)."""
    if isinstance(error, ClientError):
        details = as_dict(error.response.get("Error")) if isinstance(error.response, dict) else None
        code = details.get("Code") if details is not None else None
        if isinstance(code, str) and code:
            return code
    cls = type(error)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def error_facts(error: BaseException) -> ResponseFacts | None:
    """Request id and retry count of a service error (no usage: a refused call bills nothing)."""
    if not isinstance(error, ClientError) or not isinstance(error.response, dict):
        return None
    facts = ResponseFacts()
    response_metadata(error.response, facts)
    return facts
