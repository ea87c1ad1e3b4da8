"""Debug logging of our own failures, without leaking the application's data.

When our code fails while handling the application's exception (a failed call), Python chains the
two and a logged traceback would print the application's exception too, whose message may quote a
prompt (botocore's ParamValidationError does). We log our exception alone.
"""

from __future__ import annotations

import logging
import sys


def log_internal_error(logger: logging.Logger, message: str) -> None:
    """Log the exception being handled at debug level, cut from the exception it interrupted."""
    if not logger.isEnabledFor(logging.DEBUG):
        return
    error = sys.exc_info()[1]
    if error is not None:
        error.__suppress_context__ = True
        error.__context__ = None
    logger.debug(message, exc_info=error)
