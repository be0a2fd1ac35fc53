"""The rules-directory fingerprint notices edits, new files and ConfigMap symlink swaps."""

from __future__ import annotations

import os
from pathlib import Path

from sqlguard.shell.reload import rules_fingerprint


def test_edit_and_new_file_change_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("rules: []\n")
    before = rules_fingerprint(tmp_path)
    (tmp_path / "a.yaml").write_text("rules: [] # edited, longer\n")
    edited = rules_fingerprint(tmp_path)
    assert edited != before
    (tmp_path / "b.yml").write_text("rules: []\n")
    assert rules_fingerprint(tmp_path) != edited


def test_other_files_do_not_count(tmp_path: Path) -> None:
    before = rules_fingerprint(tmp_path)
    (tmp_path / "README.md").write_text("notes")
    assert rules_fingerprint(tmp_path) == before


def test_configmap_symlink_swap_changes_the_fingerprint(tmp_path: Path) -> None:
    """Kubernetes: file -> ..data/file, and ..data -> ..<timestamp> swapped by rename."""
    for version in ("v1", "v2"):
        (tmp_path / f"..{version}").mkdir()
        (tmp_path / f"..{version}" / "rules.yaml").write_text(f"# {version}\nrules: []\n")
    os.symlink("..v1", tmp_path / "..data")
    os.symlink("..data/rules.yaml", tmp_path / "rules.yaml")
    before = rules_fingerprint(tmp_path)
    os.symlink("..v2", tmp_path / "..data_tmp")
    os.replace(tmp_path / "..data_tmp", tmp_path / "..data")
    assert rules_fingerprint(tmp_path) != before


def test_missing_directory_is_empty_not_an_error(tmp_path: Path) -> None:
    assert rules_fingerprint(tmp_path / "gone") == ()
