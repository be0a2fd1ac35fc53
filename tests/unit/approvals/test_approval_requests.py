"""Pending approval requests and the outcomes log."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from approval_support import FINGERPRINT, NOW, STATEMENT, approval

from sqlguard.approvals.requests import MAX_STATEMENT_CHARS, RequestStore


@pytest.fixture
def store(tmp_path: Path) -> RequestStore:
    return RequestStore(tmp_path / "requests.sqlite3")


def test_record_and_get(store: RequestStore) -> None:
    request_id = store.record("bob", "shop", FINGERPRINT, STATEMENT, 1, NOW)
    assert len(request_id) == 8
    request = store.get(request_id)
    assert request is not None
    assert (request.requester, request.database, request.fingerprint) == (
        "bob",
        "shop",
        FINGERPRINT,
    )
    assert (request.statement, request.estimate_rows, request.times) == (STATEMENT, 1, 1)
    assert (request.first_at, request.last_at, request.status) == (NOW, NOW, "pending")
    assert store.get("nothere") is None


def test_asking_again_refreshes_the_same_request(store: RequestStore) -> None:
    first = store.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW)
    again = store.record("bob", "shop", FINGERPRINT, STATEMENT.lower(), 7, NOW + 60)
    assert again == first
    request = store.get(first)
    assert request is not None
    assert (request.times, request.first_at, request.last_at) == (2, NOW, NOW + 60)
    assert (request.statement, request.estimate_rows) == (STATEMENT.lower(), 7)


def test_other_requester_or_database_is_another_request(store: RequestStore) -> None:
    ids = {
        store.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW),
        store.record("carol", "shop", FINGERPRINT, STATEMENT, None, NOW),
        store.record("bob", "crm", FINGERPRINT, STATEMENT, None, NOW),
    }
    assert len(ids) == 3


def test_list_newest_first(store: RequestStore) -> None:
    old = store.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW)
    new = store.record("carol", "shop", FINGERPRINT, STATEMENT, None, NOW + 5)
    assert [request.id for request in store.list()] == [new, old]


def test_mark_used(store: RequestStore) -> None:
    request_id = store.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW)
    claims = approval()
    assert store.mark_used(FINGERPRINT, "bob", claims, now=NOW + 10) == request_id
    assert store.list() == []
    [used] = store.list(pending_only=False)
    assert (used.status, used.approver, used.approval_id, used.used_at) == (
        "used", "dana", claims.id, NOW + 10,
    )  # fmt: skip
    assert store.mark_used(FINGERPRINT, "bob", claims) is None  # nothing pending any more
    # Asking again after a use opens a new request.
    assert store.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW + 20) != request_id


def test_outcomes(store: RequestStore) -> None:
    store.record_outcome("bob", "dana", FINGERPRINT, "used", "id1", NOW, database="shop")
    store.record_outcome("bob", "", FINGERPRINT, "malformed", "", NOW + 1)
    store.record_outcome("carol", "dana", FINGERPRINT, "expired", "id2", NOW + 2)
    outcomes = store.outcomes("bob", FINGERPRINT)
    assert [(o.outcome, o.approver, o.token_id) for o in outcomes] == [
        ("malformed", "", ""), ("used", "dana", "id1"),
    ]  # fmt: skip


def test_long_statements_are_cut(store: RequestStore) -> None:
    text = "SELECT " + "1," * MAX_STATEMENT_CHARS + "1"
    request = store.get(store.record("bob", "shop", FINGERPRINT, text, None, NOW))
    assert request is not None and len(request.statement) == MAX_STATEMENT_CHARS


def test_shared_by_two_stores(tmp_path: Path) -> None:
    """Two sidecar processes on one host share the file; the second sees the first's rows."""
    first, second = RequestStore(tmp_path / "r.sqlite3"), RequestStore(tmp_path / "r.sqlite3")
    request_id = first.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW)
    assert second.record("bob", "shop", FINGERPRINT, STATEMENT, None, NOW + 1) == request_id
    first.close()
    second.close()


def test_file_is_private(tmp_path: Path) -> None:
    RequestStore(tmp_path / "requests.sqlite3").close()
    assert stat.S_IMODE((tmp_path / "requests.sqlite3").stat().st_mode) == 0o600
