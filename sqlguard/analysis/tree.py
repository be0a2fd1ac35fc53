"""sqlglot's reading of a statement: what runs in it, and which changes are unscoped.

Names (tables, functions, columns) come from PostgreSQL's own tree (``pgtree``); sqlglot's
tree is what judges the WHERE of UPDATE/DELETE and the ON of MERGE (``scoping``), and its
kinds are compared with PostgreSQL's so a misreading refuses instead of passing. The walk is
sqlglot's own iterative ``walk()`` (no recursion limit); per node it costs one dict lookup
by node class, and only statement nodes do more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from sqlguard.analysis import scoping
from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.sqlglot_parse import Unsupported

_NODE_KINDS: dict[type[exp.Expr], Kind] = {
    exp.Select: Kind.select,
    exp.Union: Kind.select,
    exp.Intersect: Kind.select,
    exp.Except: Kind.select,
    exp.Insert: Kind.insert,
    exp.Update: Kind.update,
    exp.Delete: Kind.delete,
    exp.Merge: Kind.merge,
}
"""Statement nodes that count wherever they appear (CTE, subquery, MERGE action)."""

Visitor = Callable[[exp.Expr, "_Found"], None]


@dataclass
class _Found:
    """What the walk has collected so far."""

    kinds: set[Kind] = field(default_factory=set)
    unscoped: set[Kind] = field(default_factory=set)


def tree_facts(text: str, root: exp.Expr) -> StatementFacts:
    """The facts of a parsed statement; raises Unsupported for trees we must not trust."""
    found = _Found()
    if isinstance(root, exp.Values):  # a VALUES statement; VALUES in INSERT does not count
        found.kinds.add(Kind.select)
    for node in root.walk():
        cls = type(node)
        visit = _VISITORS[cls] if cls in _VISITORS else _visitor_for(cls)
        if visit is not None:
            visit(node, found)
    return StatementFacts(
        text=text, kinds=frozenset(found.kinds), unscoped=frozenset(found.unscoped)
    )


def _visitor_for(cls: type[exp.Expr]) -> Visitor | None:
    """Pick (once per node class) what to do with its nodes; most classes need nothing."""
    kind = _NODE_KINDS.get(cls)
    if kind is not None:
        visitor: Visitor | None = lambda node, found: found.kinds.add(kind)  # noqa: E731
    else:
        visitor = None
    _VISITORS[cls] = visitor
    return visitor


def where_restricts(node: exp.Expr) -> bool:
    """Does this UPDATE/DELETE, or MERGE action (a When), restrict the rows it changes?

    A MERGE action is restricted by the MERGE's ON or by its own ``WHEN ... AND`` condition.
    """
    if isinstance(node, exp.When):
        merge = node.find_ancestor(exp.Merge)
        if merge is None:
            return False
        target = scoping.Target.of(merge)
        on, condition = merge.args.get("on"), node.args.get("condition")
        return scoping.restricts(on, target) or scoping.restricts(condition, target)
    where = node.args.get("where")
    return scoping.restricts(where.this if where is not None else None, scoping.Target.of(node))


def _visit_dml(node: exp.Expr, found: _Found) -> None:
    """UPDATE/DELETE: PostgreSQL has no LIMIT/ORDER BY there; note a missing WHERE."""
    if node.args.get("limit") or node.args.get("order"):
        raise Unsupported("PostgreSQL does not allow LIMIT or ORDER BY in UPDATE/DELETE")
    kind = _NODE_KINDS[type(node)]
    found.kinds.add(kind)
    if not isinstance(node.parent, exp.When) and not where_restricts(node):
        found.unscoped.add(kind)  # (a MERGE action is scoped by its MERGE: see _visit_when)


def _visit_when(node: exp.Expr, found: _Found) -> None:
    """A MERGE action: THEN DELETE is a Var, THEN UPDATE an Update node."""
    then = node.args.get("then")
    if isinstance(then, exp.Var) and then.name.upper() == "DELETE":
        kind = Kind.delete
    elif isinstance(then, exp.Update):
        kind = Kind.update
    else:
        return
    found.kinds.add(kind)
    if not where_restricts(node):
        found.unscoped.update({kind, Kind.merge})


def _visit_on_conflict(node: exp.Expr, found: _Found) -> None:
    """INSERT ... ON CONFLICT DO UPDATE updates rows, but only the conflicting ones."""
    action = node.args.get("action")
    if action is not None and "UPDATE" in action.name.upper():
        found.kinds.add(Kind.update)


def _visit_into(node: exp.Expr, found: _Found) -> None:
    """SELECT ... INTO creates a table."""
    found.kinds.add(Kind.create)


def _visit_command(node: exp.Expr, found: _Found) -> None:
    raise Unsupported(f"sqlguard's SQL parser does not support {node.name.upper()} there")


_VISITORS: dict[type[exp.Expr], Visitor | None] = {
    exp.Update: _visit_dml,
    exp.Delete: _visit_dml,
    exp.When: _visit_when,
    exp.OnConflict: _visit_on_conflict,
    exp.Into: _visit_into,
    exp.Command: _visit_command,
}
