"""The public evasion corpus (`shared/corpus/evasion.yaml`) as test data.

Tests offline (analysis + policy) and through the proxy read the same items, so both
decode `sql`, `sql_b64` and `sql_build` the one way the corpus defines them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = Path(__file__).resolve().parents[2].parent / "shared" / "corpus" / "evasion.yaml"


@dataclass(frozen=True, slots=True)
class CorpusItem:
    id: str
    category: str
    expected: str  # allow | deny | require_approval
    message: bytes  # the exact bytes of the simple-query message text
    postgres_rejects: bool  # PostgreSQL rejects or never parses it (NUL, invalid UTF-8)
    pg_statements: tuple[str, ...]  # the top-level statements PostgreSQL's parser sees


def load_corpus(path: Path = DEFAULT_PATH) -> list[CorpusItem]:
    """All items; an empty list when the corpus is not beside the checkout."""
    if not path.is_file():
        return []
    items = yaml.safe_load(path.read_text(encoding="utf-8"))["items"]
    return [_item(raw) for raw in items]


def _item(raw: dict[str, Any]) -> CorpusItem:
    return CorpusItem(
        id=raw["id"],
        category=raw["category"],
        expected=raw["expected"],
        message=_message(raw),
        postgres_rejects=bool(raw.get("intentionally_invalid"))
        or raw.get("pg", {}).get("grammar_valid") is not True,
        pg_statements=tuple(raw.get("pg", {}).get("statements") or ()),
    )


def _message(raw: dict[str, Any]) -> bytes:
    if "sql_b64" in raw:
        return base64.b64decode(raw["sql_b64"])
    if "sql_build" in raw:
        build = raw["sql_build"]
        return (build["prefix"] + build["unit"] * build["count"] + build["suffix"]).encode()
    return str(raw["sql"]).encode()
