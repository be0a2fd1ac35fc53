"""Does an UPDATE/DELETE/MERGE really restrict which rows of its target it changes?

A WHERE (or MERGE's ON) restricts when it holds a predicate that depends on a column of the
target and is not true for every row. So none of these restrict: a constant (``1=1``,
``true``, ``'a'='a'``, ``NOT false``, ``$1``, an uncorrelated ``EXISTS`` or scalar subquery);
a self-comparison (``id = id``, ``u.id = u2.id`` where u2 is the target table again,
``x IS NOT DISTINCT FROM x``); ``x LIKE '%'``; ``id IN (SELECT id FROM <target>)`` whose
subquery does not itself restrict (a LIMIT is no restriction: it only picks a batch); a
predicate only on a joined USING/FROM relation. A join predicate ``target.col = other.col``,
a correlated subquery and ``WHERE CURRENT OF`` do restrict.

Logic: negations are pushed down to the predicates (De Morgan) so ``NOT (id <> id)`` is
``id = id``; an AND restricts if any conjunct does; an OR only if every disjunct does and no
two disjuncts cover every value together (``x IS NULL OR x IS NOT NULL``, ``id > 0 OR
id <= 0``, ``id > 5 OR id < 10``).

Column ownership, failing closed: a column qualified with the target's alias (or its name
when it has none) is the target's; an unqualified one is the target's only when no other
relation is joined, because with a join it may belong to the other relation. Inside a
subquery, unqualified columns belong to the subquery (PostgreSQL resolves innermost first),
so a subquery is correlated only through columns qualified with the target's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from sqlglot import exp

_NEGATED: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.EQ: exp.NEQ,
    exp.NEQ: exp.EQ,
    exp.GT: exp.LTE,
    exp.LTE: exp.GT,
    exp.LT: exp.GTE,
    exp.GTE: exp.LT,
    exp.NullSafeEQ: exp.NullSafeNEQ,
    exp.NullSafeNEQ: exp.NullSafeEQ,
}
_FLIPPED: dict[type[exp.Expr], type[exp.Expr]] = {
    exp.GT: exp.LT,
    exp.LT: exp.GT,
    exp.GTE: exp.LTE,
    exp.LTE: exp.GTE,
}
_TRUE_ON_SELF = (exp.EQ, exp.GTE, exp.LTE, exp.NullSafeEQ)
"""Comparisons that hold whenever both sides are the same expression (and not NULL)."""


@dataclass(frozen=True)
class Target:
    """The relation a DML statement changes, and the other relations it joins."""

    table: str
    names: frozenset[str]
    """What a column may be qualified with to mean the target: its alias, else its name."""
    others: dict[str, str | None]
    """Alias -> table of the joined relations (None for a subquery or function)."""

    @classmethod
    def of(cls, dml: exp.Expr) -> Target:
        """The target of an Update, Delete or Merge node."""
        table = dml.this
        joined = [dml.args.get("from_"), *_as_list(dml.args.get("using"))]
        others = {
            source.alias_or_name: _identity(source)
            for relation in joined
            if isinstance(relation, exp.Expr)
            for source in relation.find_all(exp.Table, exp.Subquery)
        }
        return cls(_identity(table) or "", frozenset({table.alias_or_name}), others)

    def owns(self, column: exp.Column) -> bool:
        """Is this column (outside any subquery) the target's?"""
        return column.table in self.names if column.table else not self.others

    def is_self(self, column: exp.Column) -> bool:
        """Does this column name a row of the target table (through any alias of it)?"""
        return self.owns(column) or self.others.get(column.table, None) == self.table


def _as_list(value: object) -> list[object]:
    return value if isinstance(value, list) else [value]


def _identity(source: exp.Expr) -> str | None:
    if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
        return None
    return ".".join(part for part in (source.db, source.name) if part)


def restricts(predicate: exp.Expr | None, target: Target) -> bool:
    """Does ``predicate`` restrict which target rows change?

    >>> from sqlglot import parse_one
    >>> delete = parse_one("DELETE FROM t WHERE id = 1 OR 1 = 1", read="postgres")
    >>> restricts(delete.args["where"].this, Target.of(delete))
    False
    """
    return predicate is not None and _restricts(predicate, False, target)


def _restricts(node: exp.Expr, negated: bool, target: Target) -> bool:
    node = node.unnest()
    if isinstance(node, exp.Not):
        return _restricts(node.this, not negated, target)
    if isinstance(node, exp.Connector):
        parts = _flatten(node)
        if isinstance(node, exp.And) != negated:  # an AND, or a negated OR (De Morgan)
            return any(_restricts(part, negated, target) for part in parts)
        keys = [_key(*_atom(part, negated)) for part in parts]
        return all(_restricts(part, negated, target) for part in parts) and not _covers(keys)
    return _depends_on_target(node, target) and not _always_true(node, negated, target)


def _atom(node: exp.Expr, negated: bool) -> tuple[exp.Expr, bool]:
    """A predicate without its parentheses and NOTs, and whether it is negated."""
    node = node.unnest()
    while isinstance(node, exp.Not):
        node, negated = node.this.unnest(), not negated
    return node, negated


def _flatten(node: exp.Connector) -> list[exp.Expr]:
    """The operands of a chain of the same connector, parentheses removed."""
    kind, parts = type(node), []
    todo: list[exp.Expr] = [node]
    while todo:
        current = todo.pop().unnest()
        if type(current) is kind and isinstance(current, exp.Connector):
            todo.extend((current.right, current.left))
        else:
            parts.append(current)
    return parts


def _effective(node: exp.Expr, negated: bool) -> bool:
    """Is the predicate negated, counting sqlglot's own ``negate`` flag (IS NOT, NOT LIKE)?"""
    return negated != bool(node.args.get("negate"))


def _always_true(node: exp.Expr, negated: bool, target: Target) -> bool:
    """Tautologies that mention the target: self-comparisons, LIKE '%', self-subqueries."""
    kind = type(node)
    if kind in _NEGATED:
        kind = _NEGATED[kind] if negated else kind
        return kind in _TRUE_ON_SELF and _same(node.this, node.expression, target)
    if _effective(node, negated):
        return False
    if isinstance(node, (exp.Like, exp.ILike)):
        pattern = node.expression  # only % matches anything (but NULL)
        return isinstance(pattern, exp.Literal) and _only_percent(pattern.name)
    if isinstance(node, exp.In) and node.args.get("query") is not None:
        return _whole_table(node.this, node.args["query"], target)
    return False


def _only_percent(pattern: str) -> bool:
    return pattern != "" and not pattern.strip("%")


def _same(left: exp.Expr, right: exp.Expr, target: Target) -> bool:
    """The same value on both sides: equal expressions, or one column of the target table
    reached through two aliases (a self-join: every row matches itself)."""
    left, right = left.unnest(), right.unnest()
    if left == right:
        return True
    if not (isinstance(left, exp.Column) and isinstance(right, exp.Column)):
        return False
    return left.name == right.name and target.is_self(left) and target.is_self(right)


def _whole_table(column: exp.Expr, query: exp.Expr, target: Target) -> bool:
    """``col IN (SELECT col FROM <target table> [unrestricted])``: every row is in it."""
    select = query.unnest()
    if isinstance(select, exp.Subquery):
        select = select.this
    if not isinstance(select, exp.Select) or len(select.expressions) != 1:
        return False
    source = select.args.get("from_")
    if source is None or select.args.get("joins") or _identity(source.this) != target.table:
        return False
    inner = Target(target.table, frozenset({source.this.alias_or_name}), {})
    where = select.args.get("where")
    picked = select.expressions[0].unalias()
    return (
        isinstance(column, exp.Column)
        and isinstance(picked, exp.Column)
        and picked.name == column.name
        and not _correlated(select, target)
        and not restricts(where.this if where else None, inner)
    )


def _depends_on_target(node: exp.Expr, target: Target) -> bool:
    """Does the predicate read a target column, directly or in a correlated subquery?"""
    for column in node.find_all(exp.Column):
        if _query_between(column, node) is None:
            if target.owns(column):
                return True
        elif _correlated_column(column, node, target):
            return True
    return False


def _query_between(column: exp.Expr, top: exp.Expr) -> exp.Expr | None:
    """The innermost query around ``column`` below ``top`` (None if it is not in one)."""
    node = column.parent
    while node is not None and node is not top:
        if isinstance(node, exp.Query):
            return node
        node = node.parent
    return top if isinstance(top, exp.Query) else None


def _correlated(query: exp.Expr, target: Target) -> bool:
    return any(_correlated_column(column, query, target) for column in query.find_all(exp.Column))


def _correlated_column(column: exp.Column, top: exp.Expr, target: Target) -> bool:
    """Is this column, inside a subquery of ``top``, an outer reference to the target?"""
    if not column.table or column.table not in target.names:
        return False
    node = column.parent
    while node is not None and node is not top.parent:
        if isinstance(node, exp.Select) and column.table in _defined_names(node):
            return False  # the qualifier names a relation of the subquery itself
        node = node.parent
    return True


def _defined_names(select: exp.Select) -> set[str]:
    sources = [select.args.get("from_"), *select.args.get("joins", [])]
    return {
        found.alias_or_name
        for source in sources
        if source is not None
        for found in source.find_all(exp.Table, exp.Subquery)
    }


Key = tuple[object, ...]


def _key(node: exp.Expr, negated: bool) -> Key:
    """A predicate as (what, operands) with the column first, so complements compare."""
    kind = type(node)
    if kind not in _NEGATED:
        plain = tuple((k, tuple(v) if isinstance(v, list) else v) for k, v in node.args.items())
        return (_effective(node, negated), kind, tuple(p for p in plain if p[0] != "negate"))
    left, right = node.this.unnest(), node.expression.unnest()
    if isinstance(left, exp.Literal) and not isinstance(right, exp.Literal):
        left, right, kind = right, left, _FLIPPED.get(kind, kind)
    return (_NEGATED[kind] if negated else kind, left, right)


def _complement(key: Key) -> Key:
    head = key[0]
    if isinstance(head, bool):
        return (not head, *key[1:])
    return (_NEGATED[head], *key[1:])  # type: ignore[index]


def _covers(keys: list[Key]) -> bool:
    """Do some of these disjuncts together hold for every value?"""
    present = set(keys)
    if any(_complement(key) in present for key in keys):
        return True
    lows, highs = _bounds(keys, exp.GT, exp.GTE), _bounds(keys, exp.LT, exp.LTE)
    return any(
        what == other and (low < high or (low == high and (closed or other_closed)))
        for what, low, closed in lows
        for other, high, other_closed in highs
    )


def _bounds(keys: list[Key], strict: type, inclusive: type) -> list[tuple[object, Decimal, bool]]:
    """(expression, number, inclusive) of the ``expr > n`` (or ``<``) disjuncts."""
    bounds = []
    for key in keys:
        number = _number(key[2]) if key[0] in (strict, inclusive) else None
        if number is not None:
            bounds.append((key[1], number, key[0] is inclusive))
    return bounds


def _number(node: object) -> Decimal | None:
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    try:
        return Decimal(node.name)
    except InvalidOperation:
        return None
