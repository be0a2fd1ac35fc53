"""The public evasion corpus at the level of facts.

Every item is analysed without raising; what PostgreSQL rejects (or never parses: NUL,
invalid UTF-8) is unknown; and for the categories whose verdict the facts alone decide,
the deciding fact is there exactly for the items the corpus expects to be refused. The
verdicts themselves (deny / require_approval / allow) are the policy tests' business.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.parse import analyze_bytes

CORPUS = Path(__file__).parents[4] / "shared" / "corpus" / "evasion.yaml"
Facts = Sequence[StatementFacts]


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


def _items(expected: str | None = None) -> list[Any]:
    if not CORPUS.is_file():
        return [pytest.param(None, marks=pytest.mark.skip(reason=f"no corpus at {CORPUS}"))]
    items = yaml.safe_load(CORPUS.read_text(encoding="utf-8"))["items"]
    chosen = [item for item in items if expected in (None, item["expected"])]
    return [pytest.param(item, id=item["id"]) for item in chosen]


def _message(item: dict[str, Any]) -> bytes:
    if "sql_b64" in item:
        return base64.b64decode(item["sql_b64"])
    if "sql_build" in item:
        build = item["sql_build"]
        return (build["prefix"] + build["unit"] * build["count"] + build["suffix"]).encode()
    return str(item["sql"]).encode()


@pytest.mark.parametrize("item", _items())
def test_corpus_item_facts(item: dict[str, Any]) -> None:
    facts = analyze_bytes(_message(item))
    assert facts and all(isinstance(f, StatementFacts) for f in facts)
    pg = item["pg"]
    if item.get("intentionally_invalid") or pg.get("grammar_valid") is not True:
        assert any(f.is_unknown for f in facts), item["id"]
    else:  # what PostgreSQL parses, sqlguard understands, statement for statement
        assert not any(f.is_unknown for f in facts), [f.reason for f in facts]
        assert len(facts) == len(pg["statements"])
    signal = SIGNALS.get(item["category"])
    if signal is not None:
        assert signal(facts) == (item["expected"] == "deny"), [f for f in facts]


@pytest.mark.parametrize("item", _items("allow"))
def test_allowed_items_have_no_refusing_fact(item: dict[str, Any]) -> None:
    for facts in analyze_bytes(_message(item)):
        assert not facts.is_unknown and not facts.unscoped
        assert not facts.copy_endpoints & {"program", "file"}
        assert Kind.session not in facts.kinds
