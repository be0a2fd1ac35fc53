"""The firewall's caches: never a stale decision across identities or rule reloads."""

from __future__ import annotations

from pathlib import Path

from sqlguard.analysis.describe import Description, PendingDescription, describe
from sqlguard.analysis.parse import analyze_bytes
from sqlguard.firewall import Firewall
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity

GROUPS = """
default_group: contractors
groups:
  contractors: {members: ["contractor*"], default: deny}
  staff: {members: [ann], default: allow}
"""
DENY_SELECT = """
rules:
  - id: no-select
    applies_to: {groups: [staff]}
    match: {kinds: [select]}
    action: deny
    message: No reading today.
"""
NIGHT_ONLY = """
rules:
  - id: night-only
    applies_to: {groups: [staff]}
    match: {kinds: [select], time: {hours: ["00:00-23:59"]}}
    action: deny
    message: Timed.
"""


def rules_in(tmp_path: Path, name: str, *texts: str) -> Firewall:
    return Firewall(load_rules(_write(tmp_path / name, *texts)))


def test_identities_do_not_share_decisions(tmp_path: Path) -> None:
    firewall = rules_in(tmp_path, "r", GROUPS)
    assert not firewall.judge(b"VACUUM", Identity("ann", "db")).refused
    assert firewall.judge(b"VACUUM", Identity("contractor1", "db")).refused


def test_reload_never_serves_a_decision_of_the_old_rules(tmp_path: Path) -> None:
    firewall = rules_in(tmp_path, "old", GROUPS)
    ann = Identity("ann", "db")
    assert not firewall.judge(b"SELECT 1", ann).refused
    firewall.replace_rules(load_rules(_write(tmp_path / "new", GROUPS, DENY_SELECT)))
    assert firewall.judge(b"SELECT 1", ann).rule_id == "no-select"


def test_time_dependent_rules_are_judged_every_time(tmp_path: Path) -> None:
    firewall = rules_in(tmp_path, "timed", GROUPS, NIGHT_ONLY)
    assert firewall.rules.time_dependent
    ann = Identity("ann", "db")
    firewall.judge(b"SELECT 1", ann)
    firewall.judge(b"SELECT 1", ann)
    assert firewall._decisions.hits == 0
    assert firewall._facts.hits == 1


def test_a_new_text_of_a_known_shape_is_described_where_it_is_read(tmp_path: Path) -> None:
    """Its sanitised text and fingerprint are worked out by ``resolve`` (on the thread that
    ships the span or audit record), once, and equal a description made from scratch."""
    firewall = rules_in(tmp_path, "r", GROUPS)
    first = b"SELECT abalance FROM pgbench_accounts WHERE aid = 1"
    second = b"SELECT abalance FROM pgbench_accounts WHERE aid = 'two'"
    assert isinstance(firewall.describe(first), Description)
    pending = firewall.describe(second)
    assert isinstance(pending, PendingDescription)
    assert firewall.describe(second) is pending  # cached by text, like a description
    resolved = pending.resolve()
    assert resolved == describe(second, analyze_bytes(second)) and pending.resolve() is resolved
    assert resolved.fingerprint != firewall.describe(first).resolve().fingerprint


def _write(directory: Path, *texts: str) -> Path:
    directory.mkdir()
    for index, text in enumerate(texts):
        (directory / f"{index}.yaml").write_text(text)
    return directory
