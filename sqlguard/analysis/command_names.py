"""PostgreSQL's command tags and object names, as tables (data for ``commands``).

Tags follow ``CreateCommandTag`` in PostgreSQL's ``src/backend/tcop/utility.c``; node and
enum names are libpg_query's (the server's parse nodes).
"""

from __future__ import annotations

SIMPLE = {
    "UpdateStmt": "UPDATE",
    "DeleteStmt": "DELETE",
    "CopyStmt": "COPY",
    "TruncateStmt": "TRUNCATE",
    "PrepareStmt": "PREPARE",
    "ExecuteStmt": "EXECUTE",
    "DeclareCursorStmt": "DECLARE CURSOR",
    "ClosePortalStmt": "CLOSE",
    "CallStmt": "CALL",
    "DoStmt": "DO",
    "ListenStmt": "LISTEN",
    "UnlistenStmt": "UNLISTEN",
    "NotifyStmt": "NOTIFY",
    "LoadStmt": "LOAD",
    "CheckPointStmt": "CHECKPOINT",
    "ClusterStmt": "CLUSTER",
    "ReindexStmt": "REINDEX",
    "LockStmt": "LOCK TABLE",
    "RefreshMatViewStmt": "REFRESH MATERIALIZED VIEW",
    "CommentStmt": "COMMENT",
    "SecLabelStmt": "SECURITY LABEL",
    "ConstraintsSetStmt": "SET CONSTRAINTS",
    "VariableShowStmt": "SHOW",
    "AlterSystemStmt": "ALTER SYSTEM",
    "AlterDatabaseStmt": "ALTER DATABASE",
    "AlterDatabaseSetStmt": "ALTER DATABASE",
    "AlterDatabaseRefreshCollStmt": "ALTER DATABASE",
    "CreatedbStmt": "CREATE DATABASE",
    "DropdbStmt": "DROP DATABASE",
    "CreateStmt": "CREATE TABLE",
    "CreateForeignTableStmt": "CREATE FOREIGN TABLE",
    "ViewStmt": "CREATE VIEW",
    "IndexStmt": "CREATE INDEX",
    "CreateSeqStmt": "CREATE SEQUENCE",
    "AlterSeqStmt": "ALTER SEQUENCE",
    "CreateSchemaStmt": "CREATE SCHEMA",
    "CreateExtensionStmt": "CREATE EXTENSION",
    "AlterExtensionStmt": "ALTER EXTENSION",
    "AlterExtensionContentsStmt": "ALTER EXTENSION",
    "CreatePLangStmt": "CREATE LANGUAGE",
    "RuleStmt": "CREATE RULE",
    "CreateEventTrigStmt": "CREATE EVENT TRIGGER",
    "AlterEventTrigStmt": "ALTER EVENT TRIGGER",
    "CreatePolicyStmt": "CREATE POLICY",
    "AlterPolicyStmt": "ALTER POLICY",
    "CompositeTypeStmt": "CREATE TYPE",
    "CreateEnumStmt": "CREATE TYPE",
    "CreateRangeStmt": "CREATE TYPE",
    "AlterEnumStmt": "ALTER TYPE",
    "AlterTypeStmt": "ALTER TYPE",
    "CreateDomainStmt": "CREATE DOMAIN",
    "AlterDomainStmt": "ALTER DOMAIN",
    "CreateCastStmt": "CREATE CAST",
    "CreateConversionStmt": "CREATE CONVERSION",
    "CreateOpClassStmt": "CREATE OPERATOR CLASS",
    "CreateOpFamilyStmt": "CREATE OPERATOR FAMILY",
    "AlterOpFamilyStmt": "ALTER OPERATOR FAMILY",
    "AlterOperatorStmt": "ALTER OPERATOR",
    "CreateAmStmt": "CREATE ACCESS METHOD",
    "CreateStatsStmt": "CREATE STATISTICS",
    "AlterStatsStmt": "ALTER STATISTICS",
    "CreateTransformStmt": "CREATE TRANSFORM",
    "CreateFdwStmt": "CREATE FOREIGN DATA WRAPPER",
    "AlterFdwStmt": "ALTER FOREIGN DATA WRAPPER",
    "CreateForeignServerStmt": "CREATE SERVER",
    "AlterForeignServerStmt": "ALTER SERVER",
    "CreateUserMappingStmt": "CREATE USER MAPPING",
    "AlterUserMappingStmt": "ALTER USER MAPPING",
    "DropUserMappingStmt": "DROP USER MAPPING",
    "ImportForeignSchemaStmt": "IMPORT FOREIGN SCHEMA",
    "CreateTableSpaceStmt": "CREATE TABLESPACE",
    "DropTableSpaceStmt": "DROP TABLESPACE",
    "AlterTableSpaceOptionsStmt": "ALTER TABLESPACE",
    "CreatePublicationStmt": "CREATE PUBLICATION",
    "AlterPublicationStmt": "ALTER PUBLICATION",
    "CreateSubscriptionStmt": "CREATE SUBSCRIPTION",
    "AlterSubscriptionStmt": "ALTER SUBSCRIPTION",
    "DropSubscriptionStmt": "DROP SUBSCRIPTION",
    "AlterCollationStmt": "ALTER COLLATION",
    "AlterTSDictionaryStmt": "ALTER TEXT SEARCH DICTIONARY",
    "AlterTSConfigurationStmt": "ALTER TEXT SEARCH CONFIGURATION",
}


ROLE_COMMANDS = {
    "CreateRoleStmt": "CREATE ROLE",
    "AlterRoleStmt": "ALTER ROLE",
    "AlterRoleSetStmt": "ALTER ROLE",
    "DropRoleStmt": "DROP ROLE",
    "DropOwnedStmt": "DROP OWNED",
    "ReassignOwnedStmt": "REASSIGN OWNED",
}
"""Statements that change who may do what: their kinds include ``role``."""


NOT_COMMANDS = frozenset({"ReturnStmt", "ReplicaIdentityStmt", "SetOperationStmt"})
"""Nodes named ``*Stmt`` that are parts of a statement (a routine body's RETURN, an ALTER
TABLE action), not statements of their own."""


OBJECT_NAMES = {
    "MATVIEW": "MATERIALIZED VIEW",
    "FDW": "FOREIGN DATA WRAPPER",
    "FOREIGN_SERVER": "SERVER",
    "OPCLASS": "OPERATOR CLASS",
    "OPFAMILY": "OPERATOR FAMILY",
    "TSCONFIGURATION": "TEXT SEARCH CONFIGURATION",
    "TSDICTIONARY": "TEXT SEARCH DICTIONARY",
    "TSPARSER": "TEXT SEARCH PARSER",
    "TSTEMPLATE": "TEXT SEARCH TEMPLATE",
    "STATISTIC_EXT": "STATISTICS",
    "LARGEOBJECT": "LARGE OBJECT",
    "TABCONSTRAINT": "CONSTRAINT",
    "DOMCONSTRAINT": "CONSTRAINT",
}


RELATION_OBJECTS = frozenset(
    {"OBJECT_TABLE", "OBJECT_VIEW", "OBJECT_MATVIEW", "OBJECT_INDEX", "OBJECT_SEQUENCE"}
    | {"OBJECT_FOREIGN_TABLE"}
)
"""Object types whose names are relations (pg_class), so count as tables."""


TRANSACTIONS = {
    "TRANS_STMT_BEGIN": "BEGIN",
    "TRANS_STMT_START": "START TRANSACTION",
    "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK",
    "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
    "TRANS_STMT_RELEASE": "RELEASE",
    "TRANS_STMT_ROLLBACK_TO": "ROLLBACK TO SAVEPOINT",
    "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}


SUBCOMMANDS = {
    "AT_ColumnDefault": "ALTER COLUMN SET DEFAULT",
    "AT_DropNotNull": "DROP NOT NULL",
    "AT_SetNotNull": "SET NOT NULL",
    "AT_AlterColumnType": "ALTER COLUMN TYPE",
    "AT_ChangeOwner": "OWNER TO",
    "AT_EnableRowSecurity": "ENABLE ROW LEVEL SECURITY",
    "AT_DisableRowSecurity": "DISABLE ROW LEVEL SECURITY",
    "AT_ForceRowSecurity": "FORCE ROW LEVEL SECURITY",
    "AT_NoForceRowSecurity": "NO FORCE ROW LEVEL SECURITY",
    "AT_DisableTrigAll": "DISABLE TRIGGER",
    "AT_DisableTrigUser": "DISABLE TRIGGER",
    "AT_DisableTrig": "DISABLE TRIGGER",
    "AT_EnableTrigAll": "ENABLE TRIGGER",
    "AT_EnableTrigUser": "ENABLE TRIGGER",
    "AT_EnableTrig": "ENABLE TRIGGER",
    "AT_AddInherit": "INHERIT",
    "AT_DropInherit": "NO INHERIT",
    "AT_SetUnLogged": "SET UNLOGGED",
    "AT_DropCluster": "SET WITHOUT CLUSTER",
}
