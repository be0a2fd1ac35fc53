"""What a PostgreSQL statement node is: its kinds and its command names.

Command names follow PostgreSQL's command tags (``CreateCommandTag`` in
``src/backend/tcop/utility.c``: "DROP TABLE", "ALTER TABLE", "CREATE FUNCTION" ...), with
refinements a rule needs and a tag does not say: one "ALTER TABLE <action>" per ALTER TABLE
subcommand, "<tag> RENAME", "<tag> OWNER TO", "<tag> SET SCHEMA", "SET ROLE",
"EXPLAIN ANALYZE", "VACUUM FULL" ... A node type missing here is refused by the caller:
sqlguard cannot vouch for a statement it has no name for.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from sqlguard.analysis.command_names import (
    NOT_COMMANDS,
    OBJECT_NAMES,
    ROLE_COMMANDS,
    SIMPLE,
    SUBCOMMANDS,
    TRANSACTIONS,
)
from sqlguard.analysis.facts import Kind

Fields = dict[str, Any]
Description = tuple[frozenset[Kind], tuple[str, ...]]

_K = Kind
_FIRST_WORD_KINDS = {
    "UPDATE": _K.update,
    "DELETE": _K.delete,
    "COPY": _K.copy,
    "TRUNCATE": _K.truncate,
    "CREATE": _K.create,
    "IMPORT": _K.create,
    "ALTER": _K.alter,
    "DROP": _K.drop,
    "SHOW": _K.show,
}


def object_name(object_type: str) -> str:
    """SQL's words for an ObjectType: ``OBJECT_MATVIEW`` -> ``MATERIALIZED VIEW``.

    >>> object_name("OBJECT_FOREIGN_TABLE"), object_name("OBJECT_FDW")
    ('FOREIGN TABLE', 'FOREIGN DATA WRAPPER')
    """
    bare = object_type.removeprefix("OBJECT_")
    return OBJECT_NAMES.get(bare, bare.replace("_", " "))


def describe(node_type: str, fields: Fields) -> Description | None:
    """The kinds and command names of one statement node; None if sqlguard does not know it.

    >>> describe("DropStmt", {"removeType": "OBJECT_MATVIEW"})
    (frozenset({<Kind.drop: 'drop'>}), ('DROP MATERIALIZED VIEW',))
    """
    if node_type in SIMPLE:
        return _by_first_word(SIMPLE[node_type])
    if node_type in ROLE_COMMANDS:
        kinds, commands = _by_first_word(ROLE_COMMANDS[node_type])
        return (kinds - {_K.utility}) | {_K.role}, commands
    special = _SPECIAL.get(node_type)
    if special is not None:
        return special(fields)
    if node_type in NOT_COMMANDS:
        return frozenset(), ()
    return None


def _by_first_word(*commands: str) -> Description:
    """Kinds follow the first command's verb: CREATE ... is ``create``, and so on."""
    verb = commands[0].split(" ", 1)[0]
    return frozenset({_FIRST_WORD_KINDS.get(verb, _K.utility)}), commands


def _select(fields: Fields) -> Description:
    if "intoClause" in fields:
        return frozenset({_K.select, _K.create}), ("SELECT", "SELECT INTO")
    return frozenset({_K.select}), ("SELECT",)


def _insert(fields: Fields) -> Description:
    conflict = fields.get("onConflictClause", {}).get("action")
    updates = {_K.update} if conflict == "ONCONFLICT_UPDATE" else set()
    return frozenset({_K.insert, *updates}), ("INSERT",)


_MERGE_ACTIONS = {"CMD_UPDATE": _K.update, "CMD_DELETE": _K.delete, "CMD_INSERT": _K.insert}


def _merge(fields: Fields) -> Description:
    actions = (clause["MergeWhenClause"] for clause in fields.get("mergeWhenClauses", ()))
    kinds = {_MERGE_ACTIONS.get(action.get("commandType", ""), _K.merge) for action in actions}
    return frozenset({_K.merge, *kinds}), ("MERGE",)


def _explain(fields: Fields) -> Description:
    extra = ("EXPLAIN ANALYZE",) if explain_analyzes(fields) else ()
    return frozenset({_K.utility}), ("EXPLAIN", *extra)


_TRUE = frozenset({"true", "on", "1"})
_FALSE = frozenset({"false", "off", "0"})


def explain_analyzes(fields: Fields) -> bool:
    """Does this EXPLAIN run its statement? ANALYZE's value is read like defGetBoolean;
    a value PostgreSQL would refuse counts as on (fail closed)."""
    for option in fields.get("options", ()):
        element = option["DefElem"]
        if element["defname"] == "analyze":
            return option_value(element) not in _FALSE
    return False


def option_value(element: Fields) -> str:
    """A DefElem's value as text, lower case; "true" when it has none (``ANALYZE``)."""
    arg = element.get("arg")
    if arg is None:
        return "true"
    ((node_type, value),) = arg.items()
    if node_type == "Boolean":
        return "true" if value.get("boolval") else "false"
    return str(next(iter(value.values()), 0)).lower()


def _vacuum(fields: Fields) -> Description:
    if not fields.get("is_vacuumcmd"):
        return frozenset({_K.utility}), ("ANALYZE",)
    full = any(
        option["DefElem"]["defname"] == "full" and option_value(option["DefElem"]) in _TRUE
        for option in fields.get("options", ())
    )
    return frozenset({_K.utility}), ("VACUUM", "VACUUM FULL") if full else ("VACUUM",)


def _transaction(fields: Fields) -> Description:
    return frozenset({_K.transaction}), (TRANSACTIONS[fields["kind"]],)


_IDENTITY_SETTINGS = {"role": "ROLE", "session_authorization": "SESSION AUTHORIZATION"}


def _variable_set(fields: Fields) -> Description:
    """SET/RESET; the who-am-I settings are ``session``, named as their own commands too."""
    verb = "RESET" if fields["kind"] in ("VAR_RESET", "VAR_RESET_ALL") else "SET"
    name = fields.get("name", "").lower()
    if name in _IDENTITY_SETTINGS:
        return frozenset({_K.session}), (verb, f"{verb} {_IDENTITY_SETTINGS[name]}")
    extra = (f"SET {name.upper()}",) if name in ("transaction", "session characteristics") else ()
    return frozenset({_K.set}), (verb, *extra)


def _discard(fields: Fields) -> Description:
    """DISCARD ALL also resets the session's role (RESET ALL does not: GUC_NO_RESET_ALL)."""
    target = fields.get("target", "DISCARD_ALL").removeprefix("DISCARD_")
    kind = _K.session if target == "ALL" else _K.utility
    return frozenset({kind}), ("DISCARD", f"DISCARD {target}")


def _grant(fields: Fields) -> Description:
    verb = "GRANT" if fields.get("is_grant") else "REVOKE"
    return frozenset({_K.grant if verb == "GRANT" else _K.revoke}), (verb,)


def _grant_role(fields: Fields) -> Description:
    (kinds, (verb,)) = _grant(fields)
    return kinds | {_K.role}, (verb, f"{verb} ROLE")


def _routine(fields: Fields, verb: str, options: str) -> tuple[str, ...]:
    """CREATE/ALTER FUNCTION|PROCEDURE, and "<that> SECURITY DEFINER" when it makes one."""
    what = "PROCEDURE" if fields.get("is_procedure") else "FUNCTION"
    if "objtype" in fields:
        what = object_name(fields["objtype"])
    definer = any(
        option["DefElem"]["defname"] == "security" and option_value(option["DefElem"]) == "true"
        for option in fields.get(options, ())
    )
    command = f"{verb} {what}"
    return (command, f"{command} SECURITY DEFINER") if definer else (command,)


def _trigger(fields: Fields) -> Description:
    extra = ("CREATE CONSTRAINT TRIGGER",) if fields.get("isconstraint") else ()
    return _by_first_word("CREATE TRIGGER", *extra)


def _create_table_as(fields: Fields) -> Description:
    if fields.get("objtype") == "OBJECT_MATVIEW":
        return _by_first_word("CREATE MATERIALIZED VIEW")
    return _by_first_word("CREATE TABLE AS")


def _object_command(verb: str, type_key: str, action: str = "") -> Callable[[Fields], Description]:
    """Commands named after the object type a field holds: DROP TABLE, ALTER SCHEMA ..."""

    def describe_object(fields: Fields) -> Description:
        command = f"{verb} {object_name(fields.get(type_key, 'OBJECT_TABLE'))}"
        kinds, commands = _by_first_word(command, *([f"{command} {action}"] if action else []))
        return _with_role(kinds, fields.get(type_key)), commands

    return describe_object


def _with_role(kinds: frozenset[Kind], object_type: str | None) -> frozenset[Kind]:
    return kinds | {_K.role} if object_type == "OBJECT_ROLE" else kinds


_RENAME_PARTS = {
    "OBJECT_COLUMN": "RENAME COLUMN",
    "OBJECT_TABCONSTRAINT": "RENAME CONSTRAINT",
    "OBJECT_DOMCONSTRAINT": "RENAME CONSTRAINT",
    "OBJECT_ATTRIBUTE": "RENAME ATTRIBUTE",
}


def _rename(fields: Fields) -> Description:
    """ALTER <object> ... RENAME; a column or constraint is renamed on its table (or type)."""
    renamed = fields["renameType"]
    owner = fields.get("relationType", "OBJECT_TABLE") if renamed in _RENAME_PARTS else renamed
    if renamed == "OBJECT_DOMCONSTRAINT":
        owner = "OBJECT_DOMAIN"
    command = f"ALTER {object_name(owner)}"
    kinds, commands = _by_first_word(command, f"{command} {_RENAME_PARTS.get(renamed, 'RENAME')}")
    return _with_role(kinds, renamed), commands


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def subcommand(cmd: Fields) -> str:
    """One ALTER TABLE action in SQL's words: AT_DropColumn -> DROP COLUMN."""
    subtype = cmd["subtype"]
    if subtype == "AT_ColumnDefault" and "def" not in cmd:
        return "DROP DEFAULT"
    if subtype in SUBCOMMANDS:
        return SUBCOMMANDS[subtype]
    return _CAMEL.sub(" ", subtype.removeprefix("AT_")).upper()


def _alter_table(fields: Fields) -> Description:
    command = f"ALTER {object_name(fields.get('objtype', 'OBJECT_TABLE'))}"
    actions = [f"{command} {subcommand(cmd['AlterTableCmd'])}" for cmd in fields.get("cmds", ())]
    return _by_first_word(command, *actions)


_SPECIAL: dict[str, Callable[[Fields], Description]] = {
    "SelectStmt": _select,
    "InsertStmt": _insert,
    "MergeStmt": _merge,
    "ExplainStmt": _explain,
    "VacuumStmt": _vacuum,
    "TransactionStmt": _transaction,
    "VariableSetStmt": _variable_set,
    "DiscardStmt": _discard,
    "GrantStmt": _grant,
    "GrantRoleStmt": _grant_role,
    "AlterDefaultPrivilegesStmt": lambda fields: _by_first_word("ALTER DEFAULT PRIVILEGES"),
    "FetchStmt": lambda fields: _by_first_word("MOVE" if fields.get("ismove") else "FETCH"),
    "DeallocateStmt": lambda fields: _by_first_word(
        "DEALLOCATE", *(["DEALLOCATE ALL"] if fields.get("isall") else [])
    ),
    "CreateFunctionStmt": lambda fields: _by_first_word(*_routine(fields, "CREATE", "options")),
    "AlterFunctionStmt": lambda fields: _by_first_word(*_routine(fields, "ALTER", "actions")),
    "CreateTrigStmt": _trigger,
    "CreateTableAsStmt": _create_table_as,
    "DefineStmt": _object_command("CREATE", "kind"),
    "DropStmt": _object_command("DROP", "removeType"),
    "AlterOwnerStmt": _object_command("ALTER", "objectType", "OWNER TO"),
    "AlterObjectSchemaStmt": _object_command("ALTER", "objectType", "SET SCHEMA"),
    "AlterObjectDependsStmt": _object_command("ALTER", "objectType", "DEPENDS ON EXTENSION"),
    "AlterTableMoveAllStmt": _object_command("ALTER", "objtype", "SET TABLESPACE"),
    "RenameStmt": _rename,
    "AlterTableStmt": _alter_table,
}
