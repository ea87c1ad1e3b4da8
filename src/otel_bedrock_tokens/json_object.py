"""JSON objects from response bytes: the one parser of every body, chunk and event payload.

Every wire shape (InvokeModel bodies, stream chunks, Converse events on raw bytes, mantle SSE data)
is a JSON object or nothing to us; one function with one contract (exactly what ``json.loads``
accepts, ``None`` for anything else, never raises) keeps the botocore and raw-HTTP paths reading the
same bytes the same way.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

#: The C scanner behind ``json.loads``, called directly: for the small bodies and chunks of most calls
#: the Python wrapping around it (encoding detection, ``decode`` and ``raw_decode``) costs about as
#: much as the parse itself.
_scan_json: Callable[[str, int], tuple[Any, int]] = json.JSONDecoder().scan_once  # type: ignore[attr-defined]
_JSON_WHITESPACE = " \t\n\r"


def parse_json_object(data: object) -> dict[str, Any] | None:
    """``data`` (bytes or str) as a JSON object, or ``None`` for anything else; never raises.

    Accepts exactly what ``json.loads`` accepts: a UTF-8 text that starts with ``{`` goes straight to
    the scanner (and trailing non-whitespace is refused as ``json.loads`` refuses it); anything else
    (a BOM, leading whitespace, UTF-16, invalid UTF-8) is left to ``json.loads`` itself."""
    if not isinstance(data, (bytes, bytearray, str)) or not data:
        return None
    try:
        text = data if isinstance(data, str) else data.decode()
        if text[0] == "{":
            parsed, end = _scan_json(text, 0)
            if end != len(text) and text[end:].strip(_JSON_WHITESPACE):
                return None
        else:
            parsed = json.loads(data)
    except UnicodeDecodeError:  # not UTF-8: json.loads detects UTF-16 and UTF-32, refuses the rest
        try:
            parsed = json.loads(data)
        except (ValueError, RecursionError):
            return None
    except (ValueError, RecursionError, StopIteration):
        return None
    return parsed if isinstance(parsed, dict) else None
