"""PostgreSQL's reading of a statement: the visitors of the nodes that say more than a name.

``pgtree`` walks; this module knows what the statement nodes mean for the facts: DML
targets and their WHERE, the columns a DML or DDL statement names, COPY's endpoints,
EXPLAIN's ANALYZE, EXECUTE's name, the settings of SET and ALTER ... SET, the relations
DROP names.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlguard.analysis import settings
from sqlguard.analysis.command_names import RELATION_OBJECTS
from sqlguard.analysis.commands import explain_analyzes
from sqlguard.analysis.facts import Kind
from sqlguard.analysis.pgtree import (
    NAME_VISITORS,
    Entry,
    Fields,
    Reading,
    Scope,
    Visitor,
    Visitors,
    children,
    count,
    counting,
    relation_name,
    walk,
)


def read(node_type: str, fields: Fields) -> Reading:
    """PostgreSQL's reading of a statement node.

    >>> r = read("DeleteStmt", {"relation": {"relname": "t"}})
    >>> sorted(r.kinds), sorted(r.commands), sorted(r.tables), sorted(r.unwhered)
    ([<Kind.delete: 'delete'>], ['DELETE'], ['t'], [<Kind.delete: 'delete'>])
    """
    return walk(node_type, fields, _VISITORS)


def _target(fields: Fields, reading: Reading) -> None:
    """A DML target is a table even where a CTE of the same name is visible."""
    reading.tables.add(relation_name(fields["relation"]))


def _targets_columns(targets: Iterable[Fields], reading: Reading) -> None:
    """Columns named by INSERT's column list and the SET of UPDATE/ON CONFLICT/MERGE."""
    reading.columns.update(t["ResTarget"]["name"] for t in targets if "name" in t["ResTarget"])


def _where(fields: Fields, kind: Kind, scope: Scope, reading: Reading) -> None:
    """What the grammar settles about a WHERE: none at all, or CURRENT OF a cursor."""
    if not scope.runs:
        return
    where = fields.get("whereClause")
    if where is None:
        reading.unwhered.add(kind)
    elif "CurrentOfExpr" not in where:
        reading.unjudged.add(kind)


def _insert(fields: Fields, scope: Scope, reading: Reading) -> list[Entry]:
    """INSERT ... VALUES holds its rows in a SelectStmt that is not a query of its own."""
    _target(fields, reading)
    _targets_columns(fields.get("cols", ()), reading)
    entries = children("InsertStmt", fields, scope)
    values = fields.get("selectStmt", {}).get("SelectStmt", {})
    if "valuesLists" in values:
        entries = [("VALUES", values, s) if f is values else (t, f, s) for t, f, s in entries]
    return entries


def _update(fields: Fields, scope: Scope, reading: Reading) -> None:
    _target(fields, reading)
    _targets_columns(fields.get("targetList", ()), reading)
    _where(fields, Kind.update, scope, reading)
    if settings.is_pg_settings(fields["relation"]):
        reading.settings.update(settings.pg_settings_update(fields))


def _delete(fields: Fields, scope: Scope, reading: Reading) -> None:
    _target(fields, reading)
    _where(fields, Kind.delete, scope, reading)


_MERGE_CHANGES = {"CMD_UPDATE": Kind.update, "CMD_DELETE": Kind.delete}


def _merge(fields: Fields, scope: Scope, reading: Reading) -> None:
    """A MERGE's ON always exists; whether it restricts, only sqlglot can judge."""
    _target(fields, reading)
    for clause in fields.get("mergeWhenClauses", ()):
        when = clause["MergeWhenClause"]
        _targets_columns(when.get("targetList", ()), reading)
        change = _MERGE_CHANGES.get(when.get("commandType", ""))
        if change is not None and scope.runs:
            reading.unjudged.update({change, Kind.merge})


def _on_conflict(fields: Fields, scope: Scope, reading: Reading) -> None:
    _targets_columns(fields.get("targetList", ()), reading)


def _copy(fields: Fields, scope: Scope, reading: Reading) -> None:
    """COPY's endpoint: the client (stdin/stdout), a server program, or a server file."""
    if fields.get("is_program"):
        endpoint = "program"
    elif "filename" in fields:
        endpoint = "file"
    else:
        endpoint = "stdin" if fields.get("is_from") else "stdout"
    reading.copy_endpoints.add(endpoint)
    reading.columns.update(name["String"]["sval"] for name in fields.get("attlist", ()))


def _explain(fields: Fields, scope: Scope, reading: Reading) -> list[Entry]:
    """A plain EXPLAIN plans its statement; only EXPLAIN ANALYZE runs it."""
    runs = scope.runs and explain_analyzes(fields)
    ((node_type, query),) = fields["query"].items()
    return [(node_type, query, scope._replace(runs=runs))]


def _execute(fields: Fields, scope: Scope, reading: Reading) -> None:
    reading.executes.append((fields["name"], scope.runs))


def _variable_set(fields: Fields, scope: Scope, reading: Reading) -> list[Entry]:
    """SET is a statement only at the top; inside CREATE FUNCTION it is an option."""
    if fields is reading.root:
        count("VariableSetStmt", fields, scope, reading)
        reading.settings.update(settings.variable_settings(fields))
    return []


def _set_elsewhere(fields: Fields, scope: Scope, reading: Reading) -> list[Entry]:
    """ALTER SYSTEM / DATABASE / ROLE ... SET: the same settings, made lasting."""
    reading.settings.update(settings.variable_settings(fields["setstmt"]))
    return []


def _discard(fields: Fields, scope: Scope, reading: Reading) -> None:
    if fields.get("target", "DISCARD_ALL") == "DISCARD_ALL":
        reading.settings.update({"all", "role", "session_authorization"})


def _drop(fields: Fields, scope: Scope, reading: Reading) -> list[Entry]:
    """DROP names its objects as lists of strings; relations among them are tables."""
    if fields.get("removeType") in RELATION_OBJECTS:
        for name in fields.get("objects", ()):
            parts = [part["String"]["sval"] for part in name["List"]["items"]]
            reading.tables.add(".".join(parts))
    return []


def _into(fields: Fields, scope: Scope, reading: Reading) -> None:
    """SELECT INTO / CREATE TABLE AS create a table, whatever CTE has its name."""
    reading.tables.add(relation_name(fields["rel"]))


_COLUMN_ACTIONS = frozenset(
    {"AT_AddColumn", "AT_DropColumn", "AT_AlterColumnType", "AT_ColumnDefault"}
    | {"AT_DropNotNull", "AT_SetNotNull", "AT_SetStatistics", "AT_SetStorage"}
    | {"AT_SetCompression", "AT_AddIdentity", "AT_SetIdentity", "AT_DropIdentity"}
    | {"AT_DropExpression", "AT_SetExpression", "AT_SetOptions", "AT_ResetOptions"}
)


def _alter_table_cmd(fields: Fields, scope: Scope, reading: Reading) -> None:
    if fields.get("subtype") in _COLUMN_ACTIONS and "name" in fields:
        reading.columns.add(fields["name"])


def _rename(fields: Fields, scope: Scope, reading: Reading) -> None:
    if fields["renameType"] == "OBJECT_COLUMN":
        reading.columns.update({fields["subname"], fields["newname"]})


def _named_column(key: str) -> Visitor:
    """ColumnDef and IndexElem name their column in one field."""

    def visit(fields: Fields, scope: Scope, reading: Reading) -> None:
        if key in fields:
            reading.columns.add(fields[key])

    return visit


_VISITORS: Visitors = {
    **NAME_VISITORS,
    "InsertStmt": counting("InsertStmt", _insert),
    "UpdateStmt": counting("UpdateStmt", _update),
    "DeleteStmt": counting("DeleteStmt", _delete),
    "MergeStmt": counting("MergeStmt", _merge),
    "CopyStmt": counting("CopyStmt", _copy),
    "ExplainStmt": counting("ExplainStmt", _explain),
    "ExecuteStmt": counting("ExecuteStmt", _execute),
    "DiscardStmt": counting("DiscardStmt", _discard),
    "DropStmt": counting("DropStmt", _drop),
    "RenameStmt": counting("RenameStmt", _rename),
    "AlterSystemStmt": counting("AlterSystemStmt", _set_elsewhere),
    "AlterDatabaseSetStmt": counting("AlterDatabaseSetStmt", _set_elsewhere),
    "AlterRoleSetStmt": counting("AlterRoleSetStmt", _set_elsewhere),
    "VariableSetStmt": _variable_set,
    "OnConflictClause": _on_conflict,
    "IntoClause": _into,
    "AlterTableCmd": _alter_table_cmd,
    "ColumnDef": _named_column("colname"),
    "IndexElem": _named_column("name"),
}
