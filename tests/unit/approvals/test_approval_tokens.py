"""Approval tokens: round trip, one canonical spelling, and no alteration goes unnoticed."""

from __future__ import annotations

import base64
import json
import re

import pytest
from approval_support import APPROVERS, FINGERPRINT, KEYS, NOW, approval, token
from hypothesis import given
from hypothesis import strategies as st

from sqlguard.approvals.tokens import (
    MalformedToken,
    mint,
    read_token,
    signature_valid,
)
from sqlguard.approvals.verify import Refused, Verified, verify


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def check(text: str) -> Verified | Refused:
    return verify(
        text, approvers=APPROVERS, requester="bob", requester_groups={"contractors"},
        database="shop", fingerprint=FINGERPRINT, now=NOW, clock_skew=30,
    )  # fmt: skip


def test_round_trip() -> None:
    claims = approval(reason="ticket 42: purge order 5 — ünïcode")
    text = mint(claims, KEYS["dana"])
    read, payload, signature = read_token(text)
    assert read == claims
    assert signature_valid(KEYS["dana"].public_key(), payload, signature)
    assert not signature_valid(KEYS["eve"].public_key(), payload, signature)


def test_token_text_fits_in_a_comment_and_a_string() -> None:
    text = token(reason="a */ b ' c \" d")
    assert re.fullmatch(r"sga1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+", text)
    assert len(text) < 600


def test_payload_is_canonical_json() -> None:
    payload = read_token(token())[1]
    data = json.loads(payload)
    assert payload == json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    assert set(data) == {
        "id", "requester", "approver", "database", "fingerprint", "issued_at", "expires_at",
        "reason",
    }  # fmt: skip


def test_ids_are_unique() -> None:
    assert len({approval().id for _ in range(200)}) == 200


def resigned(data: dict[str, object], *, raw: bytes | None = None) -> str:
    """A token with a valid signature over an arbitrary payload (what a forger with the key
    could make): read_token must still refuse payloads that are not canonical approvals."""
    payload = raw if raw is not None else json.dumps(data).encode()
    signature = KEYS["dana"].sign(b"sga1." + payload)
    return f"sga1.{b64(payload)}.{b64(signature)}"


def good_data() -> dict[str, object]:
    return json.loads(read_token(token())[1])


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"issued_at": "1800000000"}, "issued_at is not a time"),
        ({"issued_at": True}, "issued_at is not a time"),
        ({"expires_at": 1.5}, "expires_at is not a time"),
        ({"requester": ""}, "must not be empty"),
        ({"requester": 7}, "requester is not text"),
        ({"fingerprint": "ABC"}, "fingerprint is not 32"),
        ({"id": "short"}, "id is not"),
        ({"expires_at": NOW}, "expires before it is issued"),
        ({"reason": "x" * 501}, "reason is longer"),
        ({"extra": 1}, "exactly the fields"),
    ],
)
def test_read_token_refuses_bad_fields(change: dict[str, object], problem: str) -> None:
    data = {**good_data(), **change}
    with pytest.raises(MalformedToken, match=problem):
        read_token(resigned(dict(sorted(data.items()))))


def test_read_token_refuses_non_canonical_payload() -> None:
    raw = json.dumps(good_data(), sort_keys=True).encode()  # with spaces
    with pytest.raises(MalformedToken, match="canonical"):
        read_token(resigned({}, raw=raw))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "form"),
        ("sga1.abc", "form"),
        ("sga2.abc.def", "form"),
        ("sga1.a.b.c", "form"),
        ("sga1.ab+c.def", "base64url text"),
        ("sga1.abc=.def", "base64url text"),
        ("sga1.a.def", "valid base64url"),
        ("sga1.bm90IGpzb24.AAAA", "not JSON"),
        ("sga1." + "A" * 5000 + ".x", "longer than"),
    ],
)
def test_read_token_refuses_malformed_text(text: str, problem: str) -> None:
    with pytest.raises(MalformedToken, match=problem):
        read_token(text)


def test_non_canonical_base64_is_refused() -> None:
    prefix, payload, signature = token().split(".")
    # The last character of an unpadded segment carries unused bits: set one of them.
    last = signature[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    sibling = alphabet[alphabet.index(last) ^ 1]
    with pytest.raises(MalformedToken, match="canonical base64url"):
        read_token(f"{prefix}.{payload}.{signature[:-1]}{sibling}")


def test_mint_refuses_what_read_token_would() -> None:
    with pytest.raises(MalformedToken):
        mint(approval(fingerprint="not hex"), KEYS["dana"])


def test_altered_payload_fails_the_signature() -> None:
    data = good_data() | {"requester": "mallory"}
    payload = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    signature = token().split(".")[2]
    result = check(f"sga1.{b64(payload)}.{signature}")
    assert isinstance(result, Refused) and result.reason == "bad_signature"


def test_altered_signature_fails() -> None:
    prefix, payload, signature = token().split(".")
    flipped = ("B" if signature[0] == "A" else "A") + signature[1:]
    result = check(f"{prefix}.{payload}.{flipped}")
    assert isinstance(result, Refused) and result.reason == "bad_signature"


TOKEN = token()


@given(st.integers(0, len(TOKEN) - 1), st.characters(codec="ascii"))
def test_no_single_character_change_verifies(position: int, char: str) -> None:
    """Whatever character is replaced, the token is refused as malformed or badly signed."""
    assert isinstance(check(TOKEN), Verified)
    altered = TOKEN[:position] + char + TOKEN[position + 1 :]
    if altered == TOKEN:
        return
    result = check(altered)
    assert isinstance(result, Refused)
    assert result.reason in ("malformed", "bad_signature", "unknown_approver")
