"""Analysis plus policy: the verdict for one message text, as the session asks for it.

Bounded caches sit in front of the work. Facts depend only on the text, so they are
shared by everyone. Decisions depend on the text, the identity and the rules: they are
keyed by (text, identity), and the decision caches are dropped in the same step that
swaps the rule set, so a reload can never serve a decision made under the old rules.
Rules with time windows make decisions depend on the clock too; then only facts are cached.

A text seen for the first time may still have the *shape* of one seen before: the same
statement with other literal values where values cannot change the verdict
(``analysis.shape``). Then the shape's decision and facts are reused instead of analysing
the text again: the simple query protocol sends a new text for every value.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Generic, TypeVar

from sqlguard.analysis.describe import Described, Description, PendingDescription, describe
from sqlguard.analysis.facts import StatementFacts
from sqlguard.analysis.parse import analyze_bytes
from sqlguard.analysis.shape import shape
from sqlguard.policy.engine import evaluate
from sqlguard.policy.loader import RuleSet
from sqlguard.policy.model import Action, Decision, Identity

if TYPE_CHECKING:
    from sqlguard.gate import ApprovalGate

log = logging.getLogger("sqlguard.decisions")

_NO_APPROVERS = (
    "No approvers are configured on this sidecar (the approvals: section of its config), "
    "so ask a DBA to review and run it."
)
# Texts longer than this are analysed every time: caching them could pin a lot of memory.
_CACHEABLE_TEXT = 8 * 1024

# (decision, who asked, the statement text, seconds spent deciding)
DecisionListener = Callable[[Decision, Identity, bytes, float], None]

K = TypeVar("K")
V = TypeVar("V")


class BoundedCache(Generic[K, V]):
    """A least-recently-used map with a fixed number of entries.

    >>> cache = BoundedCache[str, int](2)
    >>> cache.get_or_make("a", len), cache.get_or_make("a", lambda k: 0)
    (1, 1)
    """

    def __init__(self, size: int) -> None:
        self._entries: OrderedDict[K, V] = OrderedDict()
        self._size = size
        self.hits = 0
        self.misses = 0

    def get(self, key: K) -> V | None:
        value = self._entries.get(key)
        if value is None:
            self.misses += 1
        else:
            self.hits += 1
            self._entries.move_to_end(key)
        return value

    def put(self, key: K, value: V) -> None:
        self._entries[key] = value
        if len(self._entries) > self._size:
            self._entries.popitem(last=False)

    def get_or_make(self, key: K, make: Callable[[K], V]) -> V:
        try:
            value = self._entries[key]
        except KeyError:
            self.misses += 1
            value = self._entries[key] = make(key)
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
            return value
        self.hits += 1
        self._entries.move_to_end(key)
        return value

    def clear(self) -> None:
        self._entries.clear()


class Firewall:
    """Judges statement texts for an identity under the current rule set."""

    def __init__(
        self, rules: RuleSet, cache_size: int = 4096, gate: ApprovalGate | None = None
    ) -> None:
        self._rules = rules
        self.gate = gate
        # Called with every decision (metrics, audit); set by the shell, must be cheap.
        self.on_decision: DecisionListener | None = None
        # Asked first: a refusal for every statement while one is due (audit log down).
        self.precheck: Callable[[], Decision | None] | None = None
        self._facts = BoundedCache[bytes, tuple[StatementFacts, ...]](cache_size)
        self._decisions = BoundedCache[tuple[bytes, Identity], Decision](cache_size)
        self._shape_decisions = BoundedCache[tuple[str, Identity], Decision](cache_size)
        self._shape_facts = BoundedCache[str, tuple[StatementFacts, ...]](cache_size)
        self._descriptions = BoundedCache[bytes, Described](cache_size)
        self._shape_descriptions = BoundedCache[str, Description](cache_size)
        self._last_shaped: tuple[bytes | None, str | None] = (None, None)

    @property
    def rules(self) -> RuleSet:
        return self._rules

    def rules_version(self) -> str:
        return self._rules.version

    def replace_rules(self, rules: RuleSet) -> None:
        """Swap in a new, already validated rule set, and forget decisions made under the old."""
        self._rules = rules
        self._decisions.clear()
        self._shape_decisions.clear()

    def judge(self, text: bytes, identity: Identity, token: str | None = None) -> Decision:
        """The one place decisions come from; every non-allow decision is logged here.

        `token` is an approval token sent with the statement; it matters only to statements
        the rules send for approval (it never overrides a deny).
        """
        started = time.perf_counter()
        refusal = self.precheck() if self.precheck is not None else None
        if refusal is not None:
            decision = refusal
        elif self._rules.time_dependent or len(text) > _CACHEABLE_TEXT:
            decision = self._decide((text, identity))
        else:
            decision = self._cached_decision(text, identity)
        if decision.action is Action.require_approval:
            decision = self._review(decision, text, identity, token)
        if decision.action is not Action.allow or decision.observed:
            _log_decision(decision, identity)
        if self.on_decision is not None:
            spent = time.perf_counter() - started
            self.on_decision(decision, identity, text, spent)
        return decision

    def cache_stats(self) -> dict[str, tuple[int, int]]:
        """(hits, misses) of the facts and decision caches, for metrics."""
        return {
            "facts": (self._facts.hits, self._facts.misses),
            "decisions": (self._decisions.hits, self._decisions.misses),
            "shapes": (self._shape_decisions.hits, self._shape_decisions.misses),
        }

    def _cached_decision(self, text: bytes, identity: Identity) -> Decision:
        """The exact text first, then its shape; a miss on both analyses the text."""
        key = (text, identity)
        decision = self._decisions.get(key)
        if decision is not None:
            return decision
        form = self._shape(text)
        if form is None:
            decision = self._decide(key)
        else:
            shape_key = (form, identity)
            decision = self._shape_decisions.get(shape_key)
            if decision is None:
                decision = self._decide(key)
                self._shape_decisions.put(shape_key, decision)
        self._decisions.put(key, decision)
        return decision

    def _shape(self, text: bytes) -> str | None:
        """The text's shape; the last answer is kept, as judge and describe ask in turn."""
        if self._rules.reads_text:
            return None
        if text is self._last_shaped[0]:
            return self._last_shaped[1]
        try:
            form = shape(text.decode("ascii"))
        except UnicodeDecodeError:
            form = None
        self._last_shaped = (text, form)
        return form

    def _review(
        self, decision: Decision, text: bytes, identity: Identity, token: str | None
    ) -> Decision:
        if self.gate is None:
            return replace(decision, hint=f"{decision.hint} {_NO_APPROVERS}".strip())
        groups = [group.name for group in self._rules.groups_of(identity)]
        return self.gate.review(decision, text.decode(), identity, token, groups)

    def facts(self, text: bytes) -> tuple[StatementFacts, ...]:
        if len(text) > _CACHEABLE_TEXT:
            return analyze_bytes(text)
        return self._facts.get_or_make(text, self._analyze)

    def describe(self, text: bytes) -> Described:
        """How audit records and spans show ``text`` (cached like the facts); a new text of a
        known shape is described later, where it is read (``PendingDescription``)."""
        if len(text) > _CACHEABLE_TEXT:
            return describe(text, analyze_bytes(text))
        return self._descriptions.get_or_make(text, self._describe)

    def _describe(self, text: bytes) -> Described:
        form = self._shape(text)
        if form is None:
            return describe(text, self.facts(text))
        known = self._shape_descriptions.get(form)
        if known is None:
            known = describe(text, self.facts(text))
            self._shape_descriptions.put(form, known)
            return known
        return PendingDescription(known, text)

    def _analyze(self, text: bytes) -> tuple[StatementFacts, ...]:
        """Facts of a new text: those of its shape when one was analysed, with its own text."""
        form = self._shape(text)
        if form is None:
            return analyze_bytes(text)
        known = self._shape_facts.get(form)
        if known is None:
            known = analyze_bytes(text)
            self._shape_facts.put(form, known)
            return known
        (facts,) = known  # a shape is one statement
        return (replace(facts, text=_statement_text(text)),)

    def _decide(self, key: tuple[bytes, Identity]) -> Decision:
        text, identity = key
        return evaluate(self._rules, identity, self.facts(text), datetime.now(UTC))


def _statement_text(text: bytes) -> str:
    """What the analysis records as a lone statement's text: no trailing blanks or ';'."""
    return text.decode("ascii").strip().removesuffix(";").rstrip()


def _log_decision(decision: Decision, identity: Identity) -> None:
    # Rule and identity only: statement texts may hold secrets (audit comes later).
    log.info(
        "%s by rule %s%s for user=%s database=%s application=%r client=%s",
        decision.action,
        decision.rule_id,
        f" (observed: {', '.join(decision.observed)})" if decision.observed else "",
        identity.user,
        identity.database,
        identity.application_name,
        identity.client_addr,
    )
