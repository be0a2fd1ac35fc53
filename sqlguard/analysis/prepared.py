"""EXECUTE of a statement PREPAREd earlier in the same message gets that statement's facts.

A simple-query message runs its statements in order and stops at the first error, so an
``EXECUTE p`` after ``PREPARE p AS ...`` in the same message runs exactly the statement in
view (had the session already held a ``p``, the PREPARE would have failed and nothing after
it would run). An EXECUTE of a name not prepared in view keeps the facts PostgreSQL's tree
gives it: kinds {utility}, commands {"EXECUTE"}; policy decides what to do with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlguard.analysis.facts import Kind, StatementFacts
from sqlguard.analysis.pgtree import Reading
from sqlguard.analysis.postgres import PgStatement


def resolve_executes(
    analysed: Sequence[tuple[StatementFacts, Reading]], statements: Sequence[PgStatement]
) -> tuple[StatementFacts, ...]:
    """The facts of a message's statements, EXECUTEs of statements in view resolved."""
    bodies: dict[str, StatementFacts] = {}
    resolved = []
    for (facts, reading), pg in zip(analysed, statements, strict=True):
        for name, runs in reading.executes if not facts.is_unknown else ():
            if name in bodies:
                facts = _executing(facts, bodies[name], runs, pg.node_type == "ExecuteStmt")
        resolved.append(facts)
        _track(bodies, facts, pg)
    return tuple(resolved)


def _track(bodies: dict[str, StatementFacts], facts: StatementFacts, pg: PgStatement) -> None:
    """Remember a PREPAREd body; forget DEALLOCATEd ones."""
    if pg.node_type == "PrepareStmt" and not facts.is_unknown:
        bodies[pg.fields["name"]] = _body(facts)
    elif pg.node_type == "DeallocateStmt":
        if pg.fields.get("isall"):
            bodies.clear()
        else:
            bodies.pop(pg.fields.get("name", ""), None)


def _body(prepare: StatementFacts) -> StatementFacts:
    """The facts of a PREPARE's statement: PostgreSQL only prepares SELECT, INSERT,
    UPDATE, DELETE, MERGE and VALUES, so PREPARE's own utility kind and command come off."""
    return StatementFacts(
        text=prepare.text,
        kinds=prepare.kinds - {Kind.utility},
        tables=prepare.tables,
        unscoped=prepare.unscoped,
        functions=prepare.functions,
        commands=prepare.commands - {"PREPARE"},
        columns=prepare.columns,
        settings=prepare.settings,
    )


def _executing(
    facts: StatementFacts, body: StatementFacts, runs: bool, is_execute: bool
) -> StatementFacts:
    """``facts`` of a statement that EXECUTEs ``body`` (itself, or under EXPLAIN [ANALYZE])."""
    kinds = facts.kinds - {Kind.utility} if is_execute else facts.kinds
    return StatementFacts(
        text=facts.text,
        kinds=kinds | body.kinds if runs else facts.kinds,
        tables=facts.tables | body.tables,
        unscoped=facts.unscoped | body.unscoped if runs else facts.unscoped,
        functions=facts.functions | body.functions,
        commands=(facts.commands - {"EXECUTE"}) | body.commands if runs else facts.commands,
        columns=facts.columns | body.columns,
        settings=facts.settings | body.settings if runs else facts.settings,
        copy_endpoints=facts.copy_endpoints,
    )
