"""Approval tokens: an Ed25519-signed statement of who approved what, for whom, until when.

Token text: ``sga1.<payload>.<signature>``, both parts unpadded base64url; the payload is the
canonical JSON of an ``Approval`` (sorted keys, no spaces, ASCII), the signature is Ed25519
over ``b"sga1." + payload``. The alphabet (letters, digits, ``-``, ``_``, ``.``) fits in a
SQL comment and a string literal without quoting, and cannot close a comment. Only one
spelling of each token is accepted (canonical JSON and base64), so a token cannot be
re-encoded into a "different" one; single use is keyed on ``Approval.id`` anyway.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
from dataclasses import asdict, dataclass, fields

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

PREFIX = "sga1"
MAX_TOKEN_LENGTH = 4096
MAX_REASON_LENGTH = 500
_SEGMENT = re.compile(r"[A-Za-z0-9_-]+")
_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")
_FINGERPRINT = re.compile(r"[0-9a-f]{32}")


class MalformedToken(ValueError):
    """The text is not a well-formed sqlguard approval token; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class Approval:
    """What an approver signed. Times are unix seconds; ``expires_at`` is the first second at
    which the token is no longer valid (before clock-skew allowance)."""

    id: str
    requester: str
    approver: str
    database: str
    fingerprint: str
    issued_at: int
    expires_at: int
    reason: str = ""


def new_approval(
    *,
    requester: str,
    approver: str,
    database: str,
    fingerprint: str,
    now: int,
    ttl: int,
    reason: str = "",
) -> Approval:
    """An approval valid for ``ttl`` seconds from ``now``, with a fresh random id.

    >>> a = new_approval(requester="bob", approver="dana", database="shop",
    ...                  fingerprint="0" * 32, now=1000, ttl=900)
    >>> (a.expires_at, len(a.id))
    (1900, 22)
    """
    approval = Approval(
        secrets.token_urlsafe(16),
        requester,
        approver,
        database,
        fingerprint,
        now,
        now + ttl,
        reason,
    )
    _check(approval)
    return approval


def mint(approval: Approval, private_key: Ed25519PrivateKey) -> str:
    """The token text for ``approval``, signed with the approver's private key.

    >>> key = Ed25519PrivateKey.generate()
    >>> a = new_approval(requester="bob", approver="dana", database="shop",
    ...                  fingerprint="0" * 32, now=1000, ttl=900)
    >>> read_token(mint(a, key))[0] == a
    True
    """
    _check(approval)
    payload = _canonical(approval)
    signature = private_key.sign(_signed_bytes(payload))
    return f"{PREFIX}.{_b64(payload)}.{_b64(signature)}"


def read_token(token: str) -> tuple[Approval, bytes, bytes]:
    """The approval, payload and signature of ``token``; ``MalformedToken`` if it is not one.

    The signature is not checked here: see ``signature_valid``.
    """
    if len(token) > MAX_TOKEN_LENGTH:
        raise MalformedToken(f"it is longer than {MAX_TOKEN_LENGTH} characters")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != PREFIX:
        raise MalformedToken(f"it does not have the form {PREFIX}.PAYLOAD.SIGNATURE")
    payload, signature = _unb64(parts[1], "payload"), _unb64(parts[2], "signature")
    approval = _approval_from(payload)
    if _canonical(approval) != payload:
        raise MalformedToken("its payload is not in canonical form")
    return approval, payload, signature


def signature_valid(public_key: Ed25519PublicKey, payload: bytes, signature: bytes) -> bool:
    """Did the holder of ``public_key``'s private key sign ``payload``?"""
    try:
        public_key.verify(signature, _signed_bytes(payload))
    except InvalidSignature:
        return False
    return True


def _signed_bytes(payload: bytes) -> bytes:
    """The prefix is signed too, so a signature cannot be reused under another token format."""
    return PREFIX.encode() + b"." + payload


def _canonical(approval: Approval) -> bytes:
    return json.dumps(
        asdict(approval), sort_keys=True, separators=(",", ":"), ensure_ascii=True
    ).encode("ascii")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(segment: str, what: str) -> bytes:
    if not _SEGMENT.fullmatch(segment):
        raise MalformedToken(f"its {what} is not base64url text")
    try:
        data = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    except (binascii.Error, ValueError):
        raise MalformedToken(f"its {what} is not valid base64url") from None
    if _b64(data) != segment:
        raise MalformedToken(f"its {what} is not in canonical base64url")
    return data


def _approval_from(payload: bytes) -> Approval:
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise MalformedToken("its payload is not JSON") from None
    names = {field.name for field in fields(Approval)}
    if not isinstance(data, dict) or set(data) != names:
        raise MalformedToken(f"its payload must have exactly the fields {', '.join(sorted(names))}")
    approval = Approval(**data)
    _check(approval)
    return approval


def _check(approval: Approval) -> None:
    """Field types and shapes; mint refuses what read_token would refuse."""
    for name in ("id", "requester", "approver", "database", "fingerprint", "reason"):
        if not isinstance(getattr(approval, name), str):
            raise MalformedToken(f"its {name} is not text")
    for name in ("issued_at", "expires_at"):
        value = getattr(approval, name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise MalformedToken(f"its {name} is not a time in unix seconds")
    if not _ID.fullmatch(approval.id):
        raise MalformedToken("its id is not 16-64 base64url characters")
    if not (approval.requester and approval.approver and approval.database):
        raise MalformedToken("its requester, approver and database must not be empty")
    if not _FINGERPRINT.fullmatch(approval.fingerprint):
        raise MalformedToken("its fingerprint is not 32 lower-case hex digits")
    if approval.expires_at <= approval.issued_at:
        raise MalformedToken("it expires before it is issued")
    if len(approval.reason) > MAX_REASON_LENGTH:
        raise MalformedToken(f"its reason is longer than {MAX_REASON_LENGTH} characters")
