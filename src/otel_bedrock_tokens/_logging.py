"""Logging of our own failures, without ever logging the application's data.

An exception's text can quote the application's data: botocore's ``ParamValidationError`` quotes the
offending parameter (a prompt), a ``ValueError`` from parsing quotes the value, and an exception a
span processor or a user hook raises may chain (``__cause__`` or ``__context__``, at any depth) the
application's own exception that was being handled. A logged traceback prints all of that. So we log
our constant message, the qualified type of what was raised, the types it chained, and where it was
raised (module, line, function per frame): never an exception's text, never source lines.

The exception is only read, never changed: it may be the application's own object (a user hook may raise
an exception the application keeps), and its chain is the application's to see intact.
"""

from __future__ import annotations

import logging
import sys
from types import TracebackType

#: Log record attribute holding the raised exception's qualified type: the OpenTelemetry semantic
#: convention's name, so an OpenTelemetry logging handler exports it as such.
ERROR_TYPE_ATTRIBUTE = "exception.type"

_MAX_FRAMES = 12
_MAX_CHAINED = 8


def type_name(error: BaseException) -> str:
    kind = type(error)
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _frames(traceback: TracebackType | None) -> list[str]:
    """``module:line in function`` per frame, outermost first (the innermost ``_MAX_FRAMES``)."""
    frames: list[str] = []
    while traceback is not None:
        code = traceback.tb_frame.f_code
        module = traceback.tb_frame.f_globals.get("__name__", "?")
        frames.append(f"{module}:{traceback.tb_lineno} in {code.co_name}")
        traceback = traceback.tb_next
    return frames[-_MAX_FRAMES:]


def _chained(error: BaseException) -> list[str]:
    """Types of the exceptions ``error`` chains, as a traceback would show them (no text)."""
    found: list[str] = []
    seen = {id(error)}
    current: BaseException | None = error
    while current is not None and len(found) < _MAX_CHAINED:
        if current.__cause__ is not None:
            current, how = current.__cause__, "caused by"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, how = current.__context__, "while handling"
        else:
            break
        if id(current) in seen:
            break
        seen.add(id(current))
        found.append(f"{how} {type_name(current)}")
    return found


def describe(error: BaseException) -> str:
    """What failed, where, and what it chained: type names and code locations only."""
    parts = [f"{type_name(error)} raised at {' > '.join(_frames(error.__traceback__)) or '?'}"]
    parts.extend(_chained(error))
    return "; ".join(parts)


def log_internal_error(logger: logging.Logger, message: str, level: int = logging.DEBUG) -> None:
    """Log the exception being handled as ``message`` plus :func:`describe` (cheap when disabled)."""
    if not logger.isEnabledFor(level):
        return
    error = sys.exc_info()[1]
    if error is None:
        logger.log(level, message)
        return
    logger.log(level, "%s: %s", message, describe(error), extra={ERROR_TYPE_ATTRIBUTE: type_name(error)})
