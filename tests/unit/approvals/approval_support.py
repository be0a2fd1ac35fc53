"""Keys, approvers and approvals shared by the approval tests (imported by name)."""

from __future__ import annotations

from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sqlguard.analysis.fingerprint import fingerprint
from sqlguard.approvals.tokens import Approval, mint, new_approval
from sqlguard.approvals.verify import Approver

NOW = 1_800_000_000
STATEMENT = "DELETE FROM orders WHERE id = 5"
FINGERPRINT = fingerprint(STATEMENT)
KEYS = {name: Ed25519PrivateKey.generate() for name in ("dana", "eve", "frank", "bob")}
APPROVERS = {
    # dana approves for contractors, frank for anyone, eve is revoked; bob is a requester
    # with a key of his own, to try approving for himself.
    "dana": Approver("dana", KEYS["dana"].public_key(), frozenset({"contractors"})),
    "eve": Approver("eve", KEYS["eve"].public_key(), frozenset({"contractors"}), True),
    "frank": Approver("frank", KEYS["frank"].public_key(), frozenset({"*"})),
    "bob": Approver("bob", KEYS["bob"].public_key(), frozenset({"contractors"})),
}


def approval(**changes: object) -> Approval:
    """dana's approval of STATEMENT for bob on shop, issued at NOW for 15 minutes."""
    base = new_approval(
        requester="bob", approver="dana", database="shop", fingerprint=FINGERPRINT,
        now=NOW, ttl=900,
    )  # fmt: skip
    return replace(base, **changes)  # type: ignore[arg-type]


def token(signer: str | None = None, **changes: object) -> str:
    """A token for ``approval(**changes)``, signed by ``signer``'s key (default: the
    approver's, or dana's for an approver without a key)."""
    claims = approval(**changes)
    return mint(claims, KEYS[signer or (claims.approver if claims.approver in KEYS else "dana")])
