"""FrameScanner and StartupReader: every stream split at every point gives the same frames."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sqlguard.wire import messages as m
from sqlguard.wire.framing import MAX_STARTUP_PACKET, Frame, FrameError, FrameScanner, StartupReader

STREAM = (
    m.message(b"1")
    + m.message(b"D", b"\x00\x01\x00\x00\x00\x03abc")
    + m.message(b"E", b"SERROR\0C42501\0Mno\0\0")
    + m.message(b"d", b"x" * 100)
    + m.ready_for_query(b"T")
)


def _scan(scanner: FrameScanner, chunks: list[bytes]) -> tuple[bytes, list[Frame]]:
    passed, frames = b"", []
    for chunk in chunks:
        for item in scanner.feed(chunk):
            if isinstance(item, Frame):
                frames.append(item)
                passed += item.raw
            else:
                passed += item
    return passed, frames


def test_whole_stream_passes_in_order_with_inspected_frames() -> None:
    passed, frames = _scan(FrameScanner(frozenset(b"EZ")), [STREAM])
    assert passed == STREAM
    assert [f.type for f in frames] == [ord("E"), ord("Z")]
    assert frames[1].body == b"T"


@pytest.mark.parametrize("split", range(1, len(STREAM)))
def test_split_at_every_point(split: int) -> None:
    passed, frames = _scan(FrameScanner(frozenset(b"EZ")), [STREAM[:split], STREAM[split:]])
    assert passed == STREAM
    assert [f.type for f in frames] == [ord("E"), ord("Z")]


def test_byte_by_byte() -> None:
    chunks = [STREAM[i : i + 1] for i in range(len(STREAM))]
    passed, frames = _scan(FrameScanner(frozenset(b"EZ")), chunks)
    assert passed == STREAM
    assert len(frames) == 2


def test_large_passthrough_message_streams_without_buffering() -> None:
    scanner = FrameScanner(frozenset(b"Z"))
    header = b"d" + struct.pack("!I", 4 + 1_000_000)
    assert scanner.feed(header + b"a" * 10) == [header + b"a" * 10]
    assert scanner.buffered == 0
    assert scanner.feed(b"b" * 999_990 + m.ready_for_query(b"I"))[0] == b"b" * 999_990


def test_inspected_message_over_cap_is_refused_before_it_arrives() -> None:
    scanner = FrameScanner(frozenset(b"Q"), max_inspected=1000)
    with pytest.raises(FrameError, match="max_message_bytes"):
        scanner.feed(b"Q" + struct.pack("!I", 2_000_000))


def test_two_gigabyte_length_is_refused() -> None:
    with pytest.raises(FrameError, match="1 GB"):
        FrameScanner(frozenset()).feed(b"d" + struct.pack("!I", 0x80000000))


def test_length_below_four_is_refused() -> None:
    with pytest.raises(FrameError, match="invalid message length"):
        FrameScanner(frozenset()).feed(b"Q\x00\x00\x00\x02")


def test_unknown_type_is_refused_when_types_are_restricted() -> None:
    with pytest.raises(FrameError, match="invalid message type"):
        FrameScanner(frozenset(), allowed_types=frozenset(b"Q")).feed(m.message(b"?"))


def test_startup_reader_keeps_the_rest() -> None:
    startup = m.StartupMessage(3, 0, {"user": "ann"}).encode()
    reader = StartupReader()
    assert reader.feed(startup[:5]) is None
    body = reader.feed(startup[5:] + b"Q")
    assert m.decode_startup_packet(body) == m.StartupMessage(3, 0, {"user": "ann"})
    assert reader.take_rest() == b"Q"


def test_startup_reader_refuses_oversized_packet() -> None:
    with pytest.raises(FrameError):
        StartupReader().feed(struct.pack("!I", MAX_STARTUP_PACKET + 1))


@given(st.binary(max_size=2000), st.lists(st.integers(1, 50), max_size=40))
def test_scanner_never_crashes_on_garbage(data: bytes, cuts: list[int]) -> None:
    """Arbitrary bytes either frame or raise FrameError; nothing else, nothing lost."""
    scanner = FrameScanner(frozenset(b"QPEZ"), max_inspected=4096)
    out = b""
    pos = 0
    try:
        for cut in [*cuts, len(data)]:
            for item in scanner.feed(data[pos : pos + cut]):
                out += item.raw if isinstance(item, Frame) else item
            pos += cut
    except FrameError:
        return
    assert data.startswith(out)
    assert len(data) - len(out) <= scanner.buffered or pos < len(data)


@given(st.binary(max_size=300))
def test_startup_decoder_never_crashes(body: bytes) -> None:
    with contextlib.suppress(m.MalformedMessage):
        m.decode_startup_packet(body)


# Messages for runs: DataRows of a few widths (many identical headers in a row), other
# pass-through types, and inspected ones between them.
_RUN_MESSAGES = st.lists(
    st.tuples(
        st.sampled_from([b"D", b"D", b"D", b"d", b"1", b"C", b"Z"]),
        st.sampled_from([0, 3, 3, 3, 7, 250, 256 + 3]),
        st.integers(1, 600),
    ),
    max_size=12,
)


@given(_RUN_MESSAGES, st.lists(st.integers(1, 9000), max_size=30))
def test_runs_of_identical_headers_frame_like_one_message_at_a_time(
    runs: list[tuple[bytes, int, int]], cuts: list[int]
) -> None:
    """Skipping a run of identical headers in one step (fixed-width rows) gives what
    walking it one message at a time gives: same bytes passed, same frames, any split."""
    stream = b"".join(m.message(kind, b"r" * width) * count for kind, width, count in runs)
    chunks, pos = [], 0
    for cut in [*cuts, len(stream)]:
        chunks.append(stream[pos : pos + cut])
        pos += cut
    passed, frames = _scan(FrameScanner(frozenset(b"CZ")), chunks)
    assert passed == stream
    inspected = [(kind[0], width, count) for kind, width, count in runs if kind in (b"C", b"Z")]
    expected = [(kind, width) for kind, width, count in inspected for _ in range(count)]
    assert [(frame.type, len(frame.body)) for frame in frames] == expected
