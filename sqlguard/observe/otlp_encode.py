"""OTLP protobuf (an ExportTraceServiceRequest) written straight from finished span tuples.

Why not the SDK's ``encode_spans``: on pgbench's statement spans (ten attributes each) it
took 130 µs a span, building a protobuf object per attribute, value and span and hashing
the resource once per span; with every statement traced, the exporter process spent half a
core on it, on a machine where the sidecar, PostgreSQL and the clients share two. The
message here is the same (the tests parse both and compare them field by field), written
as bytes: a span's fixed fields are a few concatenations, and an attribute's encoding is
looked up, since most values (the system, database, decision, rule, the text of a prepared
statement) repeat from span to span.

Only what sqlguard's spans hold is written: one resource, one instrumentation scope, no
events or links, a status that is unset or error; attribute values are str, bool, int,
float, bytes, None and sequences of those, as the SDK allows.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlguard.observe.span_export import FinishedSpan

_FIXED64 = struct.Struct("<Q").pack
# start_time_unix_nano (field 7) and end_time_unix_nano (field 8), both fixed64.
_TIMES = struct.Struct("<BQBQ").pack
_DOUBLE = struct.Struct("<d").pack
_ONE_BYTE = [bytes((value,)) for value in range(0x80)]
_INT64_MASK = (1 << 64) - 1

# Field tags: (field number << 3) | wire type (0 varint, 1 fixed64, 2 length-delimited).
_REQUEST_RESOURCE_SPANS = b"\x0a"
_RESOURCE_SPANS_RESOURCE, _RESOURCE_SPANS_SCOPE_SPANS = b"\x0a", b"\x12"
_RESOURCE_ATTRIBUTE = b"\x0a"
_SCOPE_SPANS_SCOPE, _SCOPE_SPANS_SPAN = b"\x0a", b"\x12"
_SCOPE_NAME = b"\x0a"
_TRACE_ID, _SPAN_ID, _PARENT_SPAN_ID = b"\x0a\x10", b"\x12\x08", b"\x22\x08"
_NAME, _KIND, _START, _END = b"\x2a", b"\x30", 0x39, 0x41
_SPAN_ATTRIBUTE = b"\x4a"
_KEY, _VALUE = b"\x0a", b"\x12"
# AnyValue's oneof: string 1, bool 2, int 3, double 4, array 5, bytes 7.
_STRING, _BOOL, _INT, _DOUBLE_VALUE = b"\x0a", b"\x10", b"\x18", b"\x21"
_ARRAY, _BYTES = b"\x2a", b"\x3a"
_ARRAY_VALUE = b"\x0a"
# status (field 15): empty for unset, code (field 3) 2 for error.
_STATUS_UNSET, _STATUS_ERROR = b"\x7a\x00", b"\x7a\x02\x18\x02"
# flags (field 16, fixed32): the parent's is-remote bit is known (0x100), and set (0x200).
_FLAGS_LOCAL, _FLAGS_REMOTE = b"\x85\x01\x00\x01\x00\x00", b"\x85\x01\x00\x03\x00\x00"
# SDK SpanKind values (INTERNAL 0 .. CONSUMER 4) are the protobuf's minus one.
_KINDS = [_KIND + _ONE_BYTE[sdk_kind + 1] for sdk_kind in range(5)]
# Attribute (and name) encodings kept for reuse; past this many distinct (key, value) pairs
# the cache starts over, so a stream of distinct statement texts cannot grow it without
# bound. Only str and int values are kept: a bool or float equal to an int must not share
# its entry (True == 1 == 1.0).
CACHE_LIMIT = 4096
_CACHED_TYPES = (str, int)


def varint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _delimited(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def any_value(value: Any) -> bytes:
    """An AnyValue message, as the SDK encodes each attribute type."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _BOOL + _ONE_BYTE[value]
    if isinstance(value, str):
        return _delimited(_STRING, value.encode())
    if isinstance(value, int):
        return _INT + varint(value & _INT64_MASK)
    if isinstance(value, float):
        return _DOUBLE_VALUE + _DOUBLE(value)
    if isinstance(value, bytes):
        return _delimited(_BYTES, value)
    if isinstance(value, Sequence):
        array = b"".join(_delimited(_ARRAY_VALUE, any_value(item)) for item in value)
        return _delimited(_ARRAY, array)
    raise TypeError(f"an OpenTelemetry attribute cannot be a {type(value).__name__}: {value!r}")


def key_value(tag: bytes, key: str, value: Any) -> bytes:
    """A KeyValue message as field `tag` of its parent."""
    return _delimited(tag, _delimited(_KEY, key.encode()) + _delimited(_VALUE, any_value(value)))


class SpanEncoder:
    """Encodes batches for one resource and scope (a process's, fixed for its lifetime)."""

    def __init__(self, resource_attributes: Mapping[str, Any], scope_name: str) -> None:
        resource = b"".join(
            key_value(_RESOURCE_ATTRIBUTE, key, value) for key, value in resource_attributes.items()
        )
        self._resource = _delimited(_RESOURCE_SPANS_RESOURCE, resource)
        self._scope = _delimited(_SCOPE_SPANS_SCOPE, _delimited(_SCOPE_NAME, scope_name.encode()))
        self._attributes: dict[tuple[str, str | int], bytes] = {}
        self._names: dict[str, bytes] = {}

    def request(self, batch: Sequence[FinishedSpan]) -> bytes:
        """The ExportTraceServiceRequest body for `batch` (no spans: an empty request)."""
        if not batch:
            return b""
        scope_spans = [self._scope]
        scope_spans.extend(_delimited(_SCOPE_SPANS_SPAN, self._span(span)) for span in batch)
        resource_spans = self._resource + _delimited(
            _RESOURCE_SPANS_SCOPE_SPANS, b"".join(scope_spans)
        )
        return _delimited(_REQUEST_RESOURCE_SPANS, resource_spans)

    def _span(self, span: FinishedSpan) -> bytes:
        name, kind, trace_id, span_id, parent_id, remote, _, start, end, attributes, failed = span
        parts = [_TRACE_ID, trace_id.to_bytes(16, "big"), _SPAN_ID, span_id.to_bytes(8, "big")]
        if parent_id:
            parts += (_PARENT_SPAN_ID, parent_id.to_bytes(8, "big"))
        encoded_name = self._names.get(name)
        if encoded_name is None:
            if len(self._names) >= CACHE_LIMIT:
                self._names.clear()
            encoded_name = self._names[name] = _delimited(_NAME, name.encode())
        parts += (encoded_name, _KINDS[kind], _TIMES(_START, start, _END, end))
        cache = self._attributes
        for key, value in attributes.items():
            if type(value) in _CACHED_TYPES:
                encoded = cache.get((key, value))
                if encoded is None:
                    if len(cache) >= CACHE_LIMIT:
                        cache.clear()
                    encoded = cache[key, value] = key_value(_SPAN_ATTRIBUTE, key, value)
                parts.append(encoded)
            else:
                parts.append(key_value(_SPAN_ATTRIBUTE, key, value))
        parts.append(_STATUS_ERROR if failed else _STATUS_UNSET)
        parts.append(_FLAGS_REMOTE if parent_id and remote else _FLAGS_LOCAL)
        return b"".join(parts)
