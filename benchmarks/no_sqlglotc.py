"""Run a Python script with sqlglotc's compiled modules hidden, so sqlglot runs as pure Python.

    python benchmarks/no_sqlglotc.py SCRIPT [ARGS...]

sqlglotc ships no module of its own: it drops compiled `.so` files next to sqlglot's `.py`
files, and Python's import system prefers an extension module over source in the same
directory. Uninstalling it to measure what it saves would change the environment for
everything else, and sqlglot has no switch for it, so this wrapper puts a finder in front of
the normal ones that loads every `sqlglot` module from its `.py` file instead.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import runpy
import sys
from collections.abc import Sequence
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType

PACKAGE = "sqlglot"


class SourceOnlySqlglot(importlib.abc.MetaPathFinder):
    """Finds sqlglot's modules as the path finder would, then swaps a compiled module for the
    `.py` beside it. Modules with no source (mypyc's `*__mypyc` helpers) are left alone: only
    the compiled modules import them."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if fullname != PACKAGE and not fullname.startswith(PACKAGE + "."):
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or not isinstance(spec.loader, importlib.machinery.ExtensionFileLoader):
            return spec
        assert spec.origin is not None
        source = Path(spec.origin).with_name(fullname.rpartition(".")[2] + ".py")
        if not source.exists():
            return spec
        return importlib.util.spec_from_file_location(fullname, source)


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    sys.meta_path.insert(0, SourceOnlySqlglot())
    script = sys.argv[1]
    sys.argv = sys.argv[1:]
    sys.path.insert(0, str(Path(script).resolve().parent))
    runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
