"""The record types of the audit log and the field names shared by writers and readers.

Records are plain dicts so each adapter can add what it knows; these helpers keep the names
that ``audit search`` filters on (``user``, ``decision``, ``type``) the same everywhere.

>>> from sqlguard.policy.model import Action, Decision, Identity
>>> identity_fields(Identity("ann", "shop", "psql", "10.0.0.7"))
{'user': 'ann', 'database': 'shop', 'application': 'psql', 'client_addr': '10.0.0.7'}
>>> decision_fields(Decision(Action.deny, "no-ddl", "m", "d", "h"), "v7")["decision"]
'deny'
"""

from __future__ import annotations

import enum
from typing import Any

from sqlguard.policy.model import Decision, Identity


class RecordType(enum.StrEnum):
    """The ``type`` of a record: one per event the issue asks to be audited."""

    connection_open = "connection_open"
    connection_close = "connection_close"
    login = "login"
    """``ok``: true or false, and ``reason`` when false."""
    statement = "statement"
    rules_reload = "rules_reload"
    approval_issued = "approval_issued"
    approval_used = "approval_used"
    approval_refused = "approval_refused"
    identity_expired = "identity_expired"
    identity_revoked = "identity_revoked"
    identities_reload = "identities_reload"
    rotated_from = "rotated_from"
    """Written by the log itself: the first record of a new live file."""
    crash_recovered = "crash_recovered"
    """Written by the log itself: an unfinished line a crash left, cut off and kept here."""


def identity_fields(identity: Identity) -> dict[str, Any]:
    """Who: the fields every connection, login and statement record carries."""
    return {
        "user": identity.user,
        "database": identity.database,
        "application": identity.application_name,
        "client_addr": identity.client_addr,
    }


def decision_fields(decision: Decision, rules_version: str) -> dict[str, Any]:
    """What the firewall decided, under which rule and rule-set version, on whose approval."""
    approval = decision.approval
    return {
        "decision": str(decision.action),
        "rule_id": decision.rule_id,
        "rules_version": rules_version,
        "observed": list(decision.observed),
        "approval_id": approval.id if approval else None,
        "approver": approval.approver if approval else None,
    }
