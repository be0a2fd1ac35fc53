"""The two-person rule: signed, single-use approval tokens bound to one exact statement.

``tokens`` mints and reads tokens, ``keys`` makes and loads Ed25519 keys, ``verify`` checks a
token against the statement it comes with (pure), ``ledger`` makes each token usable once,
``requests`` records who asked for what, ``comment`` finds a token in a message, ``config``
reads the ``approvals:`` settings and ``cli`` holds the approver's commands.
"""
