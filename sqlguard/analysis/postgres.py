"""PostgreSQL's own reading of a message, from its grammar (libpg_query, through pglast).

Why: a firewall that reads SQL differently from the server can be walked around. sqlguard's
scanner and sqlglot give one reading; this module gives the server's, and the analysis refuses
wherever the two differ. We ask libpg_query for JSON (``parse_sql_json``) and decode it with
the standard library: pglast's Python node objects cost ~150 µs per small statement, the JSON
~25 µs. The JSON leaves out fields at their default (0, false, empty) and inlines fields whose
C type is a specific struct (``DeleteStmt.relation`` is a bare RangeVar, not ``{"RangeVar":
...}``); ``INLINE`` records those, read once from pglast's own description of the nodes.
"""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from pglast import ast, parser

Fields = dict[str, Any]


class PgRejects(Exception):
    """PostgreSQL's parser does not accept the text; ``str()`` is the server's message."""


class PgStatement(NamedTuple):
    """One top-level statement as PostgreSQL sees it: its node and where it lies.

    ``start``/``end`` are character offsets of its first and last token in the message
    (``end`` is None for the last statement, which PostgreSQL lets run to the end).
    """

    node_type: str
    fields: Fields
    start: int
    end: int | None


def _inline_fields() -> dict[str, dict[str, str]]:
    """node type -> {field: struct type} for the fields the JSON writes without a wrapper."""
    generic = {"Node*", "List*", "char*", "Expr*", "void*", "Bitmapset*"}
    inline: dict[str, dict[str, str]] = {}
    for name in dir(ast):
        slots = getattr(getattr(ast, name), "__slots__", None)
        if not isinstance(slots, dict):
            continue
        for field, info in slots.items():
            if info.c_type.endswith("*") and info.c_type not in generic:
                inline.setdefault(name, {})[field] = info.c_type[:-1]
    return inline


INLINE = _inline_fields()


def parse_message(sql: str) -> list[PgStatement]:
    """PostgreSQL's statements of a message; raises PgRejects when its parser does.

    >>> [(s.node_type, s.start, s.end) for s in parse_message("SELECT 'é'; /* c */ DROP TABLE t")]
    [('SelectStmt', 0, 10), ('DropStmt', 20, None)]
    """
    try:
        tree = json.loads(parser.parse_sql_json(sql))
    except parser.ParseError as exc:
        raise PgRejects(str(exc.args[0]) if exc.args else str(exc)) from exc
    raw_statements = tree.get("stmts", [])
    offsets = _CharOffsets(sql)
    statements = []
    for raw in raw_statements:
        ((node_type, fields),) = raw["stmt"].items()
        start = offsets.char(raw.get("stmt_location", 0))
        length = raw.get("stmt_len", 0)
        end = offsets.char(raw.get("stmt_location", 0) + length) if length else None
        statements.append(PgStatement(node_type, fields, start, end))
    return statements


class _CharOffsets:
    """Byte offsets of the UTF-8 text (what libpg_query reports) to character offsets.

    Offsets only grow from one statement to the next, so each conversion decodes just the
    bytes since the previous one: linear in the message, not quadratic.
    """

    def __init__(self, text: str) -> None:
        self._raw = None if text.isascii() else text.encode()
        self._byte = self._char = 0

    def char(self, byte: int) -> int:
        if self._raw is None:
            return byte
        if byte < self._byte:
            self._byte = self._char = 0
        self._char += len(self._raw[self._byte : byte].decode())
        self._byte = byte
        return self._char
