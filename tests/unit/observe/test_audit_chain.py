"""The chain alone: round trip, and each kind of tampering named at the right record."""

from __future__ import annotations

import json

import pytest
from audit_support import KEY, chained_lines, statement
from hypothesis import given, settings
from hypothesis import strategies as st

from sqlguard.observe.audit_chain import (
    CHAIN_FIELDS,
    GENESIS,
    AuditChain,
    canonical,
    mac_of,
    verify_lines,
)


def test_round_trip_verifies_and_reports_where_it_ends() -> None:
    lines = chained_lines(5)
    result = verify_lines(KEY, lines)
    assert result.ok and result.records == 5 and result.last_seq == 5
    assert result.last_mac == json.loads(lines[-1])["mac"]
    first = json.loads(lines[0])
    assert first["seq"] == 1 and first["prev"] == GENESIS
    assert first["mac"] == mac_of(KEY, first)


def test_every_single_byte_change_is_caught_at_that_record() -> None:
    lines = chained_lines(3)
    middle = lines[1]
    for index in range(len(middle) - 1):  # every byte but the newline
        changed = chr(ord(middle[index]) ^ 1)
        tampered = [lines[0], middle[:index] + changed + middle[index + 1 :], lines[2]]
        problem = verify_lines(KEY, tampered).problem
        assert problem is not None and problem.line == 2, (index, problem)
        assert problem.kind in {"altered", "malformed"}


def test_changed_value_is_reported_as_altered_with_its_seq() -> None:
    lines = chained_lines(4)
    lines[2] = lines[2].replace("SELECT 3", "SELECT 9")
    problem = verify_lines(KEY, lines).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.seq) == ("altered", 3, 3)
    assert str(problem) == "line 3: seq 3: altered: mac mismatch: edited, or wrong key"


def test_removed_record_fails_at_the_record_after_the_gap() -> None:
    lines = chained_lines(5)
    del lines[2]
    problem = verify_lines(KEY, lines).problem
    assert problem is not None
    assert (problem.kind, problem.line, problem.seq) == ("missing", 3, 4)


def test_swapped_records_fail() -> None:
    lines = chained_lines(5)
    lines[1], lines[2] = lines[2], lines[1]
    problem = verify_lines(KEY, lines).problem
    assert problem is not None and problem.line == 2 and problem.seq == 3


def test_record_resealed_with_the_same_seq_breaks_prev() -> None:
    """A forged record needs the key; with it, the replaced record still shows via prev."""
    lines = chained_lines(3)
    forged = AuditChain(KEY, GENESIS, 2).seal(statement(99))
    problem = verify_lines(KEY, [lines[0], forged + "\n", lines[2]]).problem
    assert problem is not None and (problem.kind, problem.line) == ("reordered", 2)


def test_wrong_key_fails_at_the_first_record() -> None:
    problem = verify_lines(b"another key, just as long....", chained_lines(2)).problem
    assert problem is not None and (problem.kind, problem.line) == ("altered", 1)


def test_truncated_last_line_is_a_warning_and_earlier_records_verify() -> None:
    lines = chained_lines(4)
    lines[-1] = lines[-1][:40]
    result = verify_lines(KEY, lines)
    assert result.ok and result.records == 3
    assert [(w.kind, w.line) for w in result.warnings] == [("truncated", 4)]


def test_truncated_line_fails_when_more_files_follow_or_lines_follow() -> None:
    lines = chained_lines(3)
    lines[-1] = lines[-1][:40]
    assert verify_lines(KEY, lines, last_file=False).problem.kind == "truncated"
    lines[1] = lines[1][:40] + "\n"
    assert verify_lines(KEY, lines).problem.kind == "malformed"


def test_invalid_utf8_is_malformed_not_a_crash() -> None:
    lines = chained_lines(2)
    lines[1] = lines[1].replace("SELECT", "SEL\udcffCT")
    problem = verify_lines(KEY, lines).problem
    assert problem is not None and (problem.kind, problem.line) == ("malformed", 2)


_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.text()
    | st.floats(allow_nan=False),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(), children, max_size=3)
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.text().filter(lambda k: k not in CHAIN_FIELDS), _JSON, max_size=8))
def test_a_sealed_line_is_canonical_and_verifies(record: dict) -> None:
    """Sealing builds the line from one serialisation: it must equal the canonical form."""
    line = AuditChain(KEY).seal(record)
    parsed = json.loads(line)
    assert canonical(parsed) == line
    assert parsed["mac"] == mac_of(KEY, parsed)


def test_a_value_json_cannot_carry_is_refused_when_sealing() -> None:
    """The writer turns this into an ``unwritable_record`` (test_audit_writer)."""
    with pytest.raises(TypeError):
        AuditChain(KEY).seal({"n": 2**70})
