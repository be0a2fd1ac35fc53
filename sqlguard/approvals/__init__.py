"""The two-person rule: signed, single-use approval tokens bound to one exact statement.

Pure: ``tokens`` mints and reads tokens, ``verify`` checks one against the statement it comes
with (``refusals`` words each refusal), ``comment`` finds a token in a message. Files and
network: ``keys`` makes and loads Ed25519 keys, ``ledger`` makes each token usable once
(SQLite or PostgreSQL), ``requests`` records who asked for what and every outcome, ``config``
reads the ``approvals:`` settings. ``cli`` and ``report`` are the approver's commands. The
statement fingerprint itself is ``sqlguard.analysis.fingerprint``.
"""
