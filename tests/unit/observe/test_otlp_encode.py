"""The hand-written OTLP request against the SDK's encoder: parsed back, they must be the
same message for any batch sqlguard can produce."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind

from sqlguard.observe import otlp_encode
from sqlguard.observe.otlp_encode import SpanEncoder, varint
from sqlguard.observe.span_export import FinishedSpan, readable_spans

RESOURCE = Resource.create({"service.name": "sidecar-test", "deployment.replicas": 3})
INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
PRIMITIVE = st.one_of(
    st.text(),
    st.booleans(),
    INT64,
    st.floats(allow_nan=False),
    st.binary(max_size=20),
    st.none(),
)
VALUE = st.one_of(
    PRIMITIVE, st.lists(st.text(max_size=10), max_size=3), st.lists(INT64, max_size=3)
)
ID64 = st.integers(min_value=1, max_value=2**64 - 1)
SPAN = st.tuples(
    st.text(max_size=40),
    st.sampled_from([kind.value for kind in SpanKind]),
    st.integers(min_value=1, max_value=2**128 - 1),
    ID64,
    st.one_of(st.just(0), ID64),
    st.booleans(),
    st.booleans(),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.integers(min_value=0, max_value=2**64 - 1),
    st.dictionaries(st.text(max_size=30), VALUE, max_size=8),
    st.booleans(),
)


def sdk_request(batch: list[FinishedSpan]) -> ExportTraceServiceRequest:
    data = encode_spans(readable_spans(batch, RESOURCE)).SerializePartialToString()
    return ExportTraceServiceRequest.FromString(data)


def our_request(batch: list[FinishedSpan], encoder: SpanEncoder | None = None) -> Any:
    encoder = encoder or SpanEncoder(RESOURCE.attributes, "sqlguard")
    return ExportTraceServiceRequest.FromString(encoder.request(batch))


def statement_span(number: int, text: str = "SELECT 1", failed: bool = False) -> FinishedSpan:
    attributes: dict[str, Any] = {
        "db.system.name": "postgresql",
        "db.query.text": text,
        "sqlguard.decision": "allow",
        "db.response.returned_rows": number,
    }
    return (
        "SELECT",
        SpanKind.CLIENT.value,
        1 << 100,
        number,
        99,
        True,
        True,
        5,
        9,
        attributes,
        failed,
    )


# One encoder across examples: what it caches from one batch must never change another.
SHARED = SpanEncoder(RESOURCE.attributes, "sqlguard")


@settings(max_examples=300, deadline=None)
@given(st.lists(SPAN, max_size=5))
def test_the_same_request_as_the_sdk_encoder(batch: list[FinishedSpan]) -> None:
    expected = sdk_request(batch)
    assert our_request(batch) == expected
    assert our_request(batch, SHARED) == expected


def test_statement_spans_encode_to_the_sdks_exact_bytes() -> None:
    batch = [statement_span(n, failed=n % 3 == 0) for n in range(1, 20)]
    expected = encode_spans(readable_spans(batch, RESOURCE)).SerializePartialToString()
    assert SpanEncoder(RESOURCE.attributes, "sqlguard").request(batch) == expected


def test_the_attribute_cache_starts_over_when_full(monkeypatch: Any) -> None:
    monkeypatch.setattr(otlp_encode, "CACHE_LIMIT", 4)
    encoder = SpanEncoder(RESOURCE.attributes, "sqlguard")
    batch = [statement_span(n, text=f"SELECT {n}") for n in range(1, 30)]
    assert our_request(batch, encoder) == sdk_request(batch)
    assert our_request(batch[:3], encoder) == sdk_request(batch[:3])
    assert len(encoder._attributes) <= 4
    named = [(f"SELECT {n}", *statement_span(n)[1:]) for n in range(10)]
    assert our_request(named, encoder) == sdk_request(named) and len(encoder._names) <= 4


def test_varint() -> None:
    assert varint(0) == b"\x00" and varint(127) == b"\x7f"
    assert varint(128) == b"\x80\x01" and varint(300) == b"\xac\x02"
    assert varint(2**64 - 1) == b"\xff" * 9 + b"\x01"


def test_an_attribute_type_otlp_cannot_carry_is_refused() -> None:
    encoder = SpanEncoder(RESOURCE.attributes, "sqlguard")
    span = statement_span(1)
    span[9]["bad"] = object()
    try:
        encoder.request([span])
    except TypeError as error:
        assert "cannot be a object" in str(error)
    else:
        raise AssertionError("an object attribute was encoded")
