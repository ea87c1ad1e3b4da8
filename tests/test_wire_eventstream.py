"""wire.eventstream: the incremental frame decoder gives the same frames however the bytes are split."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from otel_bedrock_tokens.emulator.eventstream import chunk_frame, encode_frame, event_frame
from otel_bedrock_tokens.wire.eventstream import EventStreamDecoder, Frame

_HEADER_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=20)
_FRAMES = st.lists(
    st.tuples(
        st.lists(st.tuples(_HEADER_TEXT, st.text(max_size=40)), max_size=4, unique_by=lambda h: h[0]),
        st.binary(max_size=300),
    ),
    min_size=1,
    max_size=6,
)


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def _decode(pieces: list[bytes]) -> tuple[list[Frame], EventStreamDecoder]:
    decoder = EventStreamDecoder()
    frames: list[Frame] = []
    for piece in pieces:
        frames += decoder.feed(piece)
    return frames, decoder


@given(_FRAMES, st.lists(st.integers(min_value=0), max_size=30))
def test_any_chunking_gives_the_encoded_frames(frames: list, cuts: list[int]) -> None:
    wire = b"".join(encode_frame(headers, payload) for headers, payload in frames)
    decoded, decoder = _decode(_split(wire, cuts))
    assert [(list(f.headers.items()), f.payload) for f in decoded] == [
        (list(dict(headers).items()), payload) for headers, payload in frames
    ]
    assert decoder.pending == 0 and not decoder.broken


@given(st.binary(max_size=400), st.lists(st.integers(min_value=0), max_size=10))
def test_garbage_never_raises_and_chunking_does_not_matter(data: bytes, cuts: list[int]) -> None:
    whole, _ = _decode([data])
    split, _ = _decode(_split(data, cuts))
    assert whole == split


def test_bedrock_chunk_event_headers_and_payload() -> None:
    frame = chunk_frame({"type": "message_stop"}, 3)
    (decoded,) = EventStreamDecoder().feed(frame)
    assert decoded.event_type == "chunk"
    assert decoded.message_type == "event"
    assert decoded.payload.startswith(b'{"bytes":"')


def test_a_frame_is_returned_only_once_complete() -> None:
    frame = event_frame("metadata", {"usage": {"inputTokens": 1}})
    decoder = EventStreamDecoder()
    assert decoder.feed(frame[:-1]) == []
    assert decoder.pending == len(frame) - 1
    assert [f.payload for f in decoder.feed(frame[-1:])] == [b'{"usage":{"inputTokens":1}}']


def test_an_impossible_length_stops_the_decoder() -> None:
    decoder = EventStreamDecoder()
    assert decoder.feed(b"\x00\x00\x00\x05" + b"\x00" * 20) == []
    assert decoder.broken
    assert decoder.feed(event_frame("x", {})) == []
