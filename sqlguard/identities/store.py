"""The identities store: a YAML file of people, their groups, SCRAM verifiers and expiries.

It holds verifiers, never passwords, but a verifier still allows offline guessing, so the
file is written 0600. Writes are atomic (temporary file in the same directory, fsync,
``os.replace``, fsync of the directory): a crash leaves the old file or the new, never half
of one. ``update_people`` holds a lock file across read-modify-write so two admins' commands
cannot lose each other's changes. Reading is strict: an unknown field or a wrong type is an
error naming the file, line and field, because a typo here silently changes who gets in.

File format::

    version: 1
    people:
      alice:
        groups: [analysts]
        verifier: SCRAM-SHA-256$4096:<salt>$<StoredKey>:<ServerKey>
        upstream_role: sqlguard_analysts
        databases: [app]          # "*" means any database
        expires_at: '2026-12-31T18:00:00Z'   # null: never
        task: OPS-123
        granted_by: bob
        revoked: false
        temporary_groups:
          - {group: dba, until: '2026-06-01T12:00:00Z', task: OPS-124, granted_by: bob}
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import yaml

from sqlguard.identities.records import (
    FORMAT_VERSION,
    Person,
    StoreFormatError,
    TemporaryGroup,
    person_from_yaml,
)

__all__ = [
    "Person",
    "StoreFormatError",
    "TemporaryGroup",
    "load_people",
    "save_people",
    "update_people",
]
_HEADER = "# sqlguard identities store: written by `sqlguard user`/`sqlguard grant`.\n"


class _LineLoader(yaml.SafeLoader):
    """Safe loading that remembers each mapping's key lines and refuses duplicate keys."""


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise StoreFormatError(f"line {line}: duplicate key {key!r} (first on {seen[key]})")
        seen[key] = line
    # Keys as YAML wrote them (validation reports a key that is not a string).
    mapping = cast(dict[str, Any], loader.construct_mapping(node, deep=True))
    mapping["__lines__"] = {str(key): line for key, line in seen.items()}
    mapping["__line__"] = node.start_mark.line + 1
    return mapping


_LineLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


def load_people(path: Path) -> dict[str, Person]:
    """Everyone in the store at ``path`` (an absent file is an empty store), strictly checked."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as exc:
        raise StoreFormatError(f"cannot read identities store {path}: {exc}") from None
    try:
        document = yaml.load(text, Loader=_LineLoader)  # a SafeLoader subclass
    except StoreFormatError as exc:
        raise StoreFormatError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise StoreFormatError(f"{path}: not valid YAML: {exc}") from None
    return _people(document, path)


def _people(document: Any, path: Path) -> dict[str, Person]:
    if document is None:
        return {}
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        raise StoreFormatError(f"{path}: expected a mapping with 'version: {FORMAT_VERSION}'")
    unknown = set(document) - {"version", "people", "__lines__", "__line__"}
    if unknown:
        raise StoreFormatError(f"{path}: unknown top-level field(s): {', '.join(sorted(unknown))}")
    raw = document.get("people") or {}
    if not isinstance(raw, dict):
        raise StoreFormatError(f"{path}: 'people' must be a mapping of name to person")
    lines = raw.get("__lines__", {})
    return {
        name: person_from_yaml(name, fields, f"{path}:{lines.get(name, '?')}")
        for name, fields in raw.items()
        if name not in ("__lines__", "__line__")
    }


def save_people(path: Path, people: dict[str, Person]) -> None:
    """Replace the store atomically with ``people`` (file mode 0600, durable once returned)."""
    document = {
        "version": FORMAT_VERSION,
        "people": {name: people[name].to_yaml() for name in sorted(people)},
    }
    data = _HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    directory = path.parent if str(path.parent) else Path(".")
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=directory)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            os.fchmod(file.fileno(), 0o600)
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def update_people(
    path: Path, change: Callable[[dict[str, Person]], dict[str, Person]]
) -> dict[str, Person]:
    """Load, apply ``change``, save, all under an exclusive lock on ``<path>.lock``."""
    with _locked(path):
        people = change(load_people(path))
        save_people(path, people)
        return people


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    lock_path = path.with_name(path.name + ".lock")
    descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)  # closing releases the lock


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (on Linux a directory can be fsynced)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
