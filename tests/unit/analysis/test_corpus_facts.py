"""The public evasion corpus at the level of facts.

Every item is analysed without raising; what PostgreSQL rejects (or never parses: NUL,
invalid UTF-8) is unknown; and for the categories whose verdict the facts alone decide,
the deciding fact is there exactly for the items the corpus expects to be refused. The
verdicts themselves (deny / require_approval / allow) are the policy tests' business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.parse import analyze_bytes
from sqlguard.testing.corpus import CorpusItem, load_corpus

CORPUS = load_corpus()
ALLOWED = [item for item in CORPUS if item.expected == "allow"]
Facts = Sequence[StatementFacts]
pytestmark = pytest.mark.skipif(not CORPUS, reason="the corpus is not beside this checkout")


def _unknown_or_unscoped(facts: Facts) -> bool:
    return any(f.is_unknown or f.unscoped for f in facts)


def _changes_identity(facts: Facts) -> bool:
    identity = ("role", "session_authorization")
    return any(
        Kind.session in f.kinds or any(s.split("=")[0] in identity for s in f.settings)
        for f in facts
    )


def _server_side_copy(facts: Facts) -> bool:
    return any(f.copy_endpoints & {"program", "file"} or f.unscoped for f in facts)


FILE_FUNCTIONS = {"pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file"}
FILE_FUNCTIONS |= {"pg_file_write", "lo_import", "lo_export", "lo_unlink"}


def _reads_server_files(facts: Facts) -> bool:
    return any({name.rsplit(".", 1)[-1] for name in f.functions} & FILE_FUNCTIONS for f in facts)


def _unresolved_execute(facts: Facts) -> bool:
    return any(f.is_unknown or "EXECUTE" in f.commands for f in facts)


SIGNALS: dict[str, Callable[[Facts], bool]] = {
    "tautological_where": _unknown_or_unscoped,
    "using_from_join": _unknown_or_unscoped,
    "unscoped_dml": _unknown_or_unscoped,
    "delete_limit_subquery": _unknown_or_unscoped,
    "merge": _unknown_or_unscoped,
    "data_modifying_cte": _unknown_or_unscoped,
    "unicode_whitespace": _unknown_or_unscoped,
    "explain_analyze": _unknown_or_unscoped,
    "transaction_control": _unknown_or_unscoped,
    "quoted_identifiers": lambda facts: _unknown_or_unscoped(facts) or _reads_server_files(facts),
    "role_session": _changes_identity,
    "copy": _server_side_copy,
    "server_file_access": _reads_server_files,
    "prepare_execute": _unresolved_execute,
    "invalid_utf8": lambda facts: all(f.is_unknown for f in facts),
    "nul_bytes": lambda facts: all(f.is_unknown for f in facts),
}
"""Per category: the fact a rule refuses on, present exactly for the items to deny."""


@pytest.mark.parametrize("item", CORPUS, ids=[item.id for item in CORPUS])
def test_corpus_item_facts(item: CorpusItem) -> None:
    facts = analyze_bytes(item.message)
    assert facts and all(isinstance(f, StatementFacts) for f in facts)
    if item.postgres_rejects:
        assert any(f.is_unknown for f in facts), item.id
    else:  # what PostgreSQL parses, sqlguard understands, statement for statement
        assert not any(f.is_unknown for f in facts), [f.reason for f in facts]
        assert len(facts) == len(item.pg_statements)
    signal = SIGNALS.get(item.category)
    if signal is not None:
        assert signal(facts) == (item.expected == "deny"), [f for f in facts]


@pytest.mark.parametrize("item", ALLOWED, ids=[item.id for item in ALLOWED])
def test_allowed_items_have_no_refusing_fact(item: CorpusItem) -> None:
    for facts in analyze_bytes(item.message):
        assert not facts.is_unknown and not facts.unscoped
        assert not facts.copy_endpoints & {"program", "file"}
        assert Kind.session not in facts.kinds
