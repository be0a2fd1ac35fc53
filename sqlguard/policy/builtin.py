"""Built-in refusals: what no rule file can allow, because the firewall itself depends on it.

* ``sqlguard.unparsed``: a statement sqlguard could not understand. Refusing is the only safe
  answer (fail closed).
* ``sqlguard.lexer-settings``: a setting that changes how PostgreSQL reads the *next*
  messages (``standard_conforming_strings``, a ``client_encoding`` other than UTF-8, or a
  setting whose name is computed at run time). After it, sqlguard's tokenizer would split
  and read statements differently from the server.
* ``sqlguard.no-group``: the identity is in no group and the rule files name no
  ``default_group``; sqlguard never falls back to "allow everything".
"""

from __future__ import annotations

import re

from sqlguard.analysis.facts import StatementFacts
from sqlguard.policy.model import Action
from sqlguard.policy.verdicts import Verdict

UNPARSED = "sqlguard.unparsed"
LEXER_SETTINGS = "sqlguard.lexer-settings"
NO_GROUP = "sqlguard.no-group"

_UNPARSED_HINT = (
    "Simplify the statement or split it into several simpler ones; if it must run as "
    "written, ask a DBA to review and run it."
)
_LEXER_TEXT = (
    "This setting changes how the server reads later statements (quoting, escapes or "
    "character encoding), so sqlguard could no longer read them the same way."
)
_LEXER_HINT = (
    "Keep standard_conforming_strings on and the client encoding UTF8; write string "
    "escapes as E'...' literals instead."
)
_NO_GROUP_TEXT = (
    "No rule decides this statement and the rule files name no default_group for "
    "identities outside every group."
)
_NO_GROUP_HINT = "Ask a DBA to add a rule for this statement or set default_group."
_SAFE_SETTINGS = re.compile(
    r"client_encoding(=(utf-?8|unicode|default))?|standard_conforming_strings=(on|true|yes|1)"
)
_LEXER_NAMES = ("client_encoding", "standard_conforming_strings", "*")


def refusal(facts: StatementFacts, where: str) -> Verdict | None:
    """The built-in refusal of one statement, if any; ``where`` locates it in the message."""
    if facts.is_unknown or not facts.kinds:
        reason = (facts.reason or "no reason given").rstrip(".")
        text = f"The statement could not be understood: {reason}. "
        text += "sqlguard refuses what it cannot analyse."
        return Verdict(Action.deny, UNPARSED, text, _UNPARSED_HINT, where)
    if any(_changes_lexing(setting) for setting in facts.settings):
        return Verdict(Action.deny, LEXER_SETTINGS, _LEXER_TEXT, _LEXER_HINT, where)
    return None


def no_group(about: str) -> Verdict:
    """The refusal when no rule decides and the identity has no group."""
    return Verdict(Action.deny, NO_GROUP, _NO_GROUP_TEXT, _NO_GROUP_HINT, about, False)


def _changes_lexing(setting: str) -> bool:
    """``setting`` is "name=value" or "name" (RESET), lower case.

    >>> [_changes_lexing(s) for s in ("client_encoding=latin1", "client_encoding=utf8", "*")]
    [True, False, True]
    """
    name = setting.partition("=")[0]
    return name in _LEXER_NAMES and not _SAFE_SETTINGS.fullmatch(setting)
