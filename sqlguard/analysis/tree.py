"""Facts from one sqlglot tree, in a single walk over every node.

Why not ``sqlglot.optimizer.scope``: its scopes skip exactly what a firewall must see. In
``WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d`` scope builds no scope for the
DELETE, so it reports ``d`` as a real table and never mentions ``t``; DML targets (UPDATE t,
MERGE INTO t) are not sources at all; table functions appear as tables; COPY is not
traversable. All we need from scope is CTE-name resolution, and PostgreSQL's rule for that is
lexical (see ``_names_cte``), so each unqualified table name climbs its ancestors instead.
The walk is sqlglot's own iterative ``walk()`` (no recursion limit), and per node costs one
dict lookup by node class; only tables, functions and DML do more.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlglot import exp

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.sqlglot_parse import NAME_KEY, Unsupported

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

_ROOT_KINDS: dict[type[exp.Expr], Kind] = {
    exp.Values: Kind.select,
    exp.Copy: Kind.copy,
    exp.Create: Kind.create,
    exp.Alter: Kind.alter,
    exp.Drop: Kind.drop,
    exp.TruncateTable: Kind.truncate,
    exp.Grant: Kind.grant,
    exp.Revoke: Kind.revoke,
}
"""Kinds that only a whole statement has: a Drop inside ALTER TABLE is DROP COLUMN."""

_RELATION_KINDS = frozenset(
    {"TABLE", "VIEW", "MATERIALIZED VIEW", "INDEX", "SEQUENCE", "FOREIGN TABLE"}
)
"""DDL object kinds whose names are relations (pg_class), so count as tables."""

Visitor = Callable[[exp.Expr, "_Found"], None]


@dataclass
class _Found:
    """What the walk has collected so far."""

    kinds: set[Kind] = field(default_factory=set)
    tables: set[str] = field(default_factory=set)
    unscoped: set[Kind] = field(default_factory=set)
    functions: set[str] = field(default_factory=set)


def tree_facts(text: str, root: exp.Expr) -> StatementFacts:
    """The facts of a parsed statement; raises Unsupported for trees we must not trust."""
    found = _Found()
    if (kind := _ROOT_KINDS.get(type(root))) is not None:
        found.kinds.add(kind)
    for node in root.walk():
        cls = type(node)
        visit = _VISITORS[cls] if cls in _VISITORS else _visitor_for(cls)
        if visit is not None:
            visit(node, found)
    return StatementFacts(
        text=text,
        kinds=frozenset(found.kinds),
        tables=frozenset(found.tables),
        unscoped=frozenset(found.unscoped),
        functions=frozenset(found.functions),
    )


def _visitor_for(cls: type[exp.Expr]) -> Visitor | None:
    """Pick (once per node class) what to do with its nodes; most classes need nothing."""
    kind = _NODE_KINDS.get(cls)
    if kind is not None:
        visitor: Visitor | None = lambda node, found: found.kinds.add(kind)  # noqa: E731
    elif issubclass(cls, exp.Func):
        visitor = _visit_function
    else:
        visitor = None
    _VISITORS[cls] = visitor
    return visitor


def row_filter(node: exp.Expr) -> exp.Expr | None:
    """The predicate limiting the target rows of an UPDATE/DELETE or a MERGE action."""
    if isinstance(node, exp.When):
        merge = node.find_ancestor(exp.Merge)
        return merge.args.get("on") if merge is not None else None
    where = node.args.get("where")
    return where.this if where is not None else None


def where_restricts(predicate: exp.Expr | None) -> bool:
    """Does this predicate restrict which rows are changed?

    For now any predicate does; the policy issue adds tautologies (``1=1``, ``id = id``),
    uncorrelated subqueries and predicates that only restrict another relation.
    """
    return predicate is not None


def _visit_dml(node: exp.Expr, found: _Found) -> None:
    """UPDATE/DELETE: PostgreSQL has no LIMIT/ORDER BY there; note a missing WHERE."""
    if node.args.get("limit") or node.args.get("order"):
        raise Unsupported("PostgreSQL does not allow LIMIT or ORDER BY in UPDATE/DELETE")
    kind = _NODE_KINDS[type(node)]
    found.kinds.add(kind)
    if not isinstance(node.parent, exp.When) and not where_restricts(row_filter(node)):
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
    if not where_restricts(row_filter(node)):
        found.unscoped.add(kind)


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


def _visit_table(node: exp.Expr, found: _Found) -> None:
    """A table reference, unless it names a CTE, a table function or a non-relation."""
    if not isinstance(node.this, exp.Identifier) or _names_other_object(node):
        return
    if node.db or node.catalog:
        found.tables.add(".".join(part for part in (node.catalog, node.db, node.name) if part))
    elif _is_dml_target(node) or not _names_cte(node):
        found.tables.add(node.name)


def _names_cte(node: exp.Expr) -> bool:
    """Is this unqualified name a CTE visible at this point of the statement?

    PostgreSQL's scoping: a WITH's CTEs are visible in the statement that owns it; inside
    the WITH, a CTE sees the ones before it (all of them, WITH RECURSIVE).
    """
    name, child, parent = node.name, node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            names = [cte.alias for cte in parent.expressions]
            if name in (names if parent.recursive else names[: child.index]):
                return True
        elif _defines(parent.args.get("with_"), name, child):
            return True
        child, parent = parent, parent.parent
    return False


def _names_other_object(node: exp.Expr) -> bool:
    """Is this 'table' the name of a schema, function, trigger ... in DDL?"""
    parent = node.parent
    if isinstance(parent, exp.UserDefinedFunction):
        return True
    if isinstance(parent, (exp.Drop, exp.Create)):
        return str(parent.args.get("kind") or "").upper() not in _RELATION_KINDS
    return False


def _defines(with_: exp.Expr | None, name: str, child: exp.Expr) -> bool:
    """Does this statement's WITH (reached from outside it) define a CTE ``name``?"""
    if with_ is None or with_ is child:
        return False
    return any(cte.alias == name for cte in with_.expressions)


def _is_dml_target(node: exp.Expr) -> bool:
    """PostgreSQL never resolves an INSERT/UPDATE/DELETE/MERGE target to a CTE."""
    parent = node.parent
    if isinstance(parent, exp.Schema):
        node, parent = parent, parent.parent
    return node.arg_key == "this" and isinstance(parent, exp.DML)


def _visit_function(node: exp.Expr, found: _Found) -> None:
    """A call by name. SQL syntax sqlglot models as functions (CAST, CASE, EXTRACT,
    current_user) has no name as written and is skipped unless schema-qualified."""
    name = node.name if isinstance(node, exp.Anonymous) else node.meta.get(NAME_KEY)
    qualifier = _qualifier(node)
    if not name and not qualifier:
        return
    name = name or node.key
    found.functions.add(f"{qualifier}.{name}" if qualifier else name)


def _qualifier(node: exp.Expr) -> str:
    """The schema (and database) a call is qualified with: ``pg_catalog`` in
    ``pg_catalog.lower(x)``; for a table function ``s.f()`` sqlglot puts it on the Table."""
    parent = node.parent
    if isinstance(parent, exp.Dot) and node.arg_key == "expression":
        return _dotted(parent.this)
    if isinstance(parent, exp.Table) and node.arg_key == "this":
        return ".".join(part for part in (parent.catalog, parent.db) if part)
    return ""


def _dotted(node: exp.Expr) -> str:
    if isinstance(node, exp.Dot):
        return f"{_dotted(node.this)}.{_dotted(node.expression)}"
    return node.name


_VISITORS: dict[type[exp.Expr], Visitor | None] = {
    exp.Update: _visit_dml,
    exp.Delete: _visit_dml,
    exp.When: _visit_when,
    exp.OnConflict: _visit_on_conflict,
    exp.Into: _visit_into,
    exp.Command: _visit_command,
    exp.Table: _visit_table,
}
