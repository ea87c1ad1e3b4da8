"""wire.sse: the incremental SSE decoder gives the same events however the bytes are split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.wire.sse import SseDecoder, SseEvent

_TEXT = st.text(st.characters(exclude_characters="\r\n", exclude_categories=("Cs",)), max_size=30)
_EVENTS = st.lists(
    st.tuples(
        st.text(st.characters(exclude_characters="\r\n:", exclude_categories=("Cs",)), max_size=12),
        st.lists(_TEXT, min_size=1, max_size=3),
    ),
    min_size=1,
    max_size=6,
)


def _encode(events: list[tuple[str, list[str]]], newline: str) -> bytes:
    out = []
    for name, lines in events:
        out.append(": keep-alive" + newline)
        if name:
            out.append(f"event: {name}{newline}")
        out.extend(f"data: {line}{newline}" for line in lines)
        out.append(newline)
    return "".join(out).encode()


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def _decode(pieces: list[bytes]) -> list[SseEvent]:
    decoder = SseDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


@given(_EVENTS, st.sampled_from(["\n", "\r\n", "\r"]), st.lists(st.integers(min_value=0), max_size=40))
def test_any_chunking_gives_the_encoded_events(events: list, newline: str, cuts: list[int]) -> None:
    expected = [SseEvent(name, "\n".join(lines)) for name, lines in events]
    assert _decode(_split(_encode(events, newline), cuts)) == expected


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0), max_size=20))
def test_arbitrary_bytes_never_raise_and_chunking_does_not_matter(data: bytes, cuts: list[int]) -> None:
    assert _decode(_split(data, cuts)) == _decode([data])


def test_openai_done_sentinel_is_an_unnamed_event() -> None:
    assert SseDecoder().feed(b'data: {"a":1}\n\ndata: [DONE]\n\n') == [
        SseEvent("", '{"a":1}'),
        SseEvent("", "[DONE]"),
    ]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert SseDecoder().feed(b"event: ping\n\n") == []


def test_an_unfinished_event_waits_for_its_blank_line() -> None:
    decoder = SseDecoder()
    assert decoder.feed(b"event: message_stop\ndata: {}\n") == []
    assert decoder.feed(b"\n") == [SseEvent("message_stop", "{}")]
