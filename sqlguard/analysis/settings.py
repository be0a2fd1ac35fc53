"""Which settings (GUCs) a statement changes, read from PostgreSQL's parse tree.

A setting changes through SET/RESET (and their spellings SET ROLE, SET NAMES, SET TIME ZONE,
SET SESSION AUTHORIZATION, which the grammar already turns into the GUC they set), ALTER
SYSTEM/DATABASE/ROLE ... SET, ``set_config()`` calls anywhere, and ``UPDATE pg_settings``
(whose rewrite rule calls set_config). Each becomes ``name=value`` (lower case, unquoted,
several values joined by ","), ``name`` when no value is given (RESET, SET ... TO DEFAULT),
``all`` for RESET ALL, and ``*`` where a name is not a literal, so a rule can still refuse.
"""

from __future__ import annotations

from typing import Any

Fields = dict[str, Any]
ANY = "*"
_SET_CONFIG = (["set_config"], ["pg_catalog", "set_config"])
_CONSTANTS = (("sval", ""), ("ival", 0), ("fval", "0"), ("bsval", ""))
_TRANSACTION_PREFIX = {"transaction": "", "session characteristics": "default_"}


def literal(node: Fields | None) -> str | None:
    """The text of a constant node as PostgreSQL would pass it to a setting, or None.

    >>> literal({"A_Const": {"sval": {"sval": "UTC"}}}), literal({"A_Const": {"ival": {}}})
    ('UTC', '0')
    """
    if node is None:
        return None
    ((node_type, fields),) = node.items()
    if node_type == "TypeCast":  # SET TIME ZONE INTERVAL '+1' HOUR: the literal is inside
        return literal(fields.get("arg"))
    if node_type != "A_Const" or fields.get("isnull"):
        return None
    if "boolval" in fields:
        return "on" if fields["boolval"].get("boolval") else "off"
    for key, empty in _CONSTANTS:  # the JSON leaves out a value at its default
        if key in fields:
            return str(fields[key].get(key, empty))
    return None


def variable_settings(fields: Fields) -> set[str]:
    """The settings of a SET/RESET (or the ``setstmt`` of ALTER SYSTEM/DATABASE/ROLE).

    >>> app, x = {"A_Const": {"sval": {"sval": "App"}}}, {"A_Const": {"sval": {"sval": "x"}}}
    >>> variable_settings({"kind": "VAR_SET_VALUE", "name": "search_path", "args": [app, x]})
    {'search_path=app,x'}
    """
    kind = fields["kind"]
    name = fields.get("name", "").lower()
    if kind == "VAR_RESET_ALL":
        return {"all"}
    if kind == "VAR_SET_MULTI":
        return _transaction_settings(name, fields.get("args", ()))
    if kind != "VAR_SET_VALUE":  # DEFAULT, RESET, FROM CURRENT: no value written
        return {name}
    values = [literal(arg) for arg in fields.get("args", ())]
    if None in values:
        return {f"{name}={ANY}"}
    return {f"{name}={','.join(values).lower()}"}  # type: ignore[arg-type]


def _transaction_settings(name: str, options: Any) -> set[str]:
    """SET TRANSACTION / SET SESSION CHARACTERISTICS AS TRANSACTION: one GUC per option."""
    prefix = _TRANSACTION_PREFIX.get(name, "")
    settings = set()
    for option in options:
        element = option["DefElem"]
        value = literal(element.get("arg"))
        settings.add(f"{prefix}{element['defname']}={(value or ANY).lower()}")
    return settings


def call_setting(function: list[str], args: list[Fields]) -> str | None:
    """The setting a ``set_config(name, value, is_local)`` call changes; None for others.

    >>> call_setting(["set_config"], [{"A_Const": {"sval": {"sval": "ROLE"}}},
    ...     {"A_Const": {"sval": {"sval": "Admin"}}}])
    'role=admin'
    """
    if function not in _SET_CONFIG:
        return None
    name = literal(args[0]) if args else None
    if name is None:
        return ANY
    value = literal(args[1]) if len(args) > 1 else None
    return f"{name}={value if value is not None else ANY}".lower()


def pg_settings_update(fields: Fields) -> set[str]:
    """``UPDATE pg_settings SET setting = v WHERE name = n`` calls set_config(n, v).

    The names come from ``name = 'x'`` / ``name IN (...)`` conjuncts of the WHERE; without
    them every setting may change (``*``).
    """
    value = ANY
    for target in fields.get("targetList", ()):
        res = target["ResTarget"]
        if res.get("name") == "setting":
            value = (literal(res.get("val")) or ANY).lower()
    names = _where_names(fields.get("whereClause")) or {ANY}
    return {ANY if name == ANY else f"{name}={value}" for name in names}


def _where_names(where: Fields | None) -> set[str]:
    """Setting names pinned by ``name = 'x'`` or ``name IN ('x', ...)`` in AND-ed conjuncts."""
    if where is None:
        return set()
    ((node_type, fields),) = where.items()
    if node_type == "BoolExpr" and fields["boolop"] == "AND_EXPR":
        return set().union(*(_where_names(arg) for arg in fields["args"]))
    if node_type != "A_Expr" or not _is_column(fields.get("lexpr"), "name"):
        return set()
    right = fields.get("rexpr")
    constants = right["List"]["items"] if right and "List" in right else [right]
    names = [literal(constant) for constant in constants]
    operator = [part["String"]["sval"] for part in fields.get("name", ())]
    if operator != ["="] or fields["kind"] not in ("AEXPR_OP", "AEXPR_IN") or None in names:
        return set()
    return {name.lower() for name in names if name is not None}


def _is_column(node: Fields | None, name: str) -> bool:
    if node is None or "ColumnRef" not in node:
        return False
    last = node["ColumnRef"]["fields"][-1]
    return last.get("String", {}).get("sval") == name


def is_pg_settings(relation: Fields) -> bool:
    """Is this UPDATE target the pg_settings view (in pg_catalog, as PostgreSQL finds it)?"""
    return relation.get("relname") == "pg_settings" and relation.get("schemaname") in (
        None,
        "pg_catalog",
    )
