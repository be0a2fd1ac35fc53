"""Analysis plus policy: the verdict for one message text, as the session asks for it.

Analysis depends only on the text, so its result is cached by the exact bytes; the
policy (cheap) is evaluated every time because it depends on who is asking and on the
rule set, which can be swapped atomically while connections are live.
"""

from __future__ import annotations

import logging
from collections import OrderedDict

from sqlguard.analysis.facts import StatementFacts
from sqlguard.analysis.parse import analyze_bytes
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import RuleSet
from sqlguard.policy.model import Action, Decision, Identity

log = logging.getLogger("sqlguard.decisions")

# Texts longer than this are analysed every time: caching them could pin a lot of memory.
_CACHEABLE_TEXT = 8 * 1024


class Firewall:
    """Judges statement texts for an identity under the current rule set."""

    def __init__(self, rules: RuleSet, cache_size: int = 4096) -> None:
        self._rules = rules
        self._cache: OrderedDict[bytes, tuple[StatementFacts, ...]] = OrderedDict()
        self._cache_size = cache_size

    @property
    def rules(self) -> RuleSet:
        return self._rules

    def rules_version(self) -> str:
        return self._rules.version

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in a new, already validated rule set (one assignment: atomic for the loop)."""
        self._rules = rules

    def judge(self, text: bytes, identity: Identity) -> Decision:
        """The one place decisions come from; every non-allow decision is logged here."""
        decision = evaluate(self._rules, identity, self.facts(text))
        if decision.action is not Action.allow:
            # Rule and identity only: statement texts may hold secrets (audit comes later).
            log.info(
                "%s by rule %s for user=%s database=%s application=%r client=%s",
                decision.action,
                decision.rule_id,
                identity.user,
                identity.database,
                identity.application_name,
                identity.client_addr,
            )
        return decision

    def facts(self, text: bytes) -> tuple[StatementFacts, ...]:
        cached = self._cache.get(text)
        if cached is not None:
            self._cache.move_to_end(text)
            return cached
        facts = analyze_bytes(text)
        if len(text) <= _CACHEABLE_TEXT:
            self._cache[text] = facts
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return facts
