"""Facts from PostgreSQL's parse tree of one statement, in one walk over every node.

The tree is libpg_query's JSON (see ``postgres``), walked iteratively, so depth costs no
Python recursion. It is the single source of the statement's names (tables, functions,
columns, as PostgreSQL's scanner folded them), its kinds and command names (``commands``),
the settings it changes and where COPY reads or writes. sqlglot still judges whether an
UPDATE/DELETE/MERGE really restricts its rows (``scoping``); this walk records what the
grammar alone settles: no WHERE at all (unscoped), ``WHERE CURRENT OF`` (scoped), and which
WHEREs are left for sqlglot to judge.

Scoping of names follows PostgreSQL: a WITH's CTE names are visible in its statement and,
in order (all of them, WITH RECURSIVE), inside the WITH; a DML target is never a CTE; a
plain EXPLAIN plans but does not run its statement, so what it would run does not count.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlguard.analysis import commands, settings
from sqlguard.analysis.facts import Kind
from sqlguard.analysis.postgres import INLINE

Fields = dict[str, Any]


class Scope(NamedTuple):
    """What holds at a node: the CTE names visible there, and whether it would run."""

    ctes: frozenset[str]
    runs: bool


@dataclass
class Reading:
    """PostgreSQL's reading of one statement (see the module docstring)."""

    root: Fields
    kinds: set[Kind] = field(default_factory=set)
    commands: set[str] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)
    columns: set[str] = field(default_factory=set)
    settings: set[str] = field(default_factory=set)
    copy_endpoints: set[str] = field(default_factory=set)
    unwhered: set[Kind] = field(default_factory=set)
    """UPDATE/DELETE kinds (that run) with no WHERE at all: unscoped whatever sqlglot says."""
    unjudged: set[Kind] = field(default_factory=set)
    """UPDATE/DELETE/MERGE kinds (that run) whose WHERE or ON only sqlglot can judge."""
    executes: list[tuple[str, bool]] = field(default_factory=list)
    """EXECUTE name, and whether the statement runs it (not under a plain EXPLAIN)."""
    reason: str | None = None


Entry = tuple[str, Fields, Scope]
Visitor = Callable[[Fields, Scope, Reading], "Iterable[Entry] | None"]
"""Records what a node says; returns the entries to walk instead of its children, or None."""
Visitors = dict[str, Visitor | None]


def walk(node_type: str, fields: Fields, visitors: Visitors) -> Reading:
    """Walk a statement node and everything in it, letting ``visitors`` record facts.

    A node type without a visitor is walked into (unless it is a leaf such as a constant);
    ``statement_visitor`` supplies the visitor of statement types met for the first time.
    """
    reading = Reading(root=fields)
    stack: list[Entry] = [(node_type, fields, Scope(frozenset(), True))]
    while stack:
        node_type, fields, scope = stack.pop()
        visit = visitors[node_type] if node_type in visitors else _first(node_type, visitors)
        instead = visit(fields, scope, reading) if visit is not None else None
        if instead is not None:
            stack.extend(instead)
        elif node_type not in _LEAVES:
            stack.extend(children(node_type, fields, scope))
    return reading


def _first(node_type: str, visitors: Visitors) -> Visitor | None:
    """The visitor of a node type met for the first time: statements count, others none."""
    visitor = counting(node_type) if node_type.endswith("Stmt") else None
    visitors[node_type] = visitor
    return visitor


def children(node_type: str, fields: Fields, scope: Scope) -> list[Entry]:
    """The child nodes of a node, with the CTE names its WITH makes visible.

    Plain loops and ``append``: this runs once per node of every statement (hot path).
    """
    entries: list[Entry] = []
    append = entries.append
    if "withClause" in fields:
        scope = _with_scope(fields["withClause"], scope, entries)
    inline = INLINE.get(node_type, _NOTHING)
    for key, value in fields.items():
        kind = type(value)
        if kind is list:
            for item in value:
                if type(item) is dict:
                    for sub_type, sub in item.items():
                        append((sub_type, sub, scope))
        elif kind is dict:
            struct = inline.get(key)
            if struct is None:
                for sub_type, sub in value.items():
                    append((sub_type, sub, scope))
            elif key != "withClause":
                append((struct, value, scope))
    return entries


_NOTHING: dict[str, str] = {}


def _with_scope(with_clause: Fields, scope: Scope, entries: list[Entry]) -> Scope:
    """Queue each CTE with the names it sees; return the scope of the statement body."""
    ctes = [cte["CommonTableExpr"] for cte in with_clause.get("ctes", ())]
    names = [cte["ctename"] for cte in ctes]
    for index, cte in enumerate(ctes):
        visible = names if with_clause.get("recursive") else names[:index]
        entries.append(("CommonTableExpr", cte, scope._replace(ctes=scope.ctes | set(visible))))
    return scope._replace(ctes=scope.ctes | set(names))


def relation_name(relation: Fields) -> str:
    """catalog.schema.name of a RangeVar, with the parts that were written."""
    parts = (relation.get("catalogname"), relation.get("schemaname"), relation.get("relname"))
    return ".".join(part for part in parts if part)


def _visit_range_var(fields: Fields, scope: Scope, reading: Reading) -> None:
    if "schemaname" in fields or fields.get("relname") not in scope.ctes:
        reading.tables.add(relation_name(fields))


def _visit_func_call(fields: Fields, scope: Scope, reading: Reading) -> None:
    """A call by name. SQL syntax the grammar turns into calls (EXTRACT, TRIM, AT TIME
    ZONE ...) is marked COERCE_SQL_SYNTAX and has no name as written: skipped."""
    name = [part["String"]["sval"] for part in fields["funcname"]]
    if fields.get("funcformat") != "COERCE_SQL_SYNTAX":
        reading.functions.add(".".join(name))
    setting = settings.call_setting(name, fields.get("args", []))
    if setting is not None:
        reading.settings.add(setting)


def _visit_column_ref(fields: Fields, scope: Scope, reading: Reading) -> None:
    last = fields["fields"][-1]
    if "String" in last:
        reading.columns.add(last["String"]["sval"])


def count(node_type: str, fields: Fields, scope: Scope, reading: Reading) -> None:
    """Record a statement's kinds and command names (if it runs); refuse unknown ones."""
    description = commands.describe(node_type, fields)
    if description is None:
        reading.reason = f"sqlguard does not know PostgreSQL's {node_type} statements"
    elif scope.runs:
        reading.kinds.update(description[0])
        reading.commands.update(description[1])


def counting(node_type: str, also: Visitor | None = None) -> Visitor:
    """A statement's visitor: count it, then let ``also`` record the rest."""

    def visit(fields: Fields, scope: Scope, reading: Reading) -> Iterable[Entry] | None:
        count(node_type, fields, scope, reading)
        return also(fields, scope, reading) if also is not None else None

    return visit


_LEAVES = frozenset({"A_Const", "String", "Integer", "Float", "Boolean", "BitString"})
_LEAVES |= {"ParamRef", "TypeName", "Alias", "RoleSpec", "A_Star", "SQLValueFunction"}
NAME_VISITORS: dict[str, Visitor | None] = {
    "RangeVar": _visit_range_var,
    "FuncCall": _visit_func_call,
    "ColumnRef": _visit_column_ref,
}
