"""The firewall's decision cost per statement with and without sqlglotc, alternating.

decision_cost.py measures one interpreter; whether sqlglotc is loaded is fixed when sqlglot
is first imported, so each variant runs in its own subprocess: as is, and through
no_sqlglotc.py. Rounds alternate the two, like the targets of the other sections.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from pgbench_compare import BenchmarkError, progress

HERE = Path(__file__).resolve().parent
COMPILED_RE = re.compile(r"compiled \(sqlglotc\): (True|False)")
ROW_RE = re.compile(r"^\| (cache (?:miss|hit)[^|]*?) \| ([0-9.]+) \|", re.MULTILINE)
WITH, WITHOUT = "with sqlglotc", "pure-Python sqlglot"


@dataclass(frozen=True)
class DecisionSample:
    """One subprocess's median over its own rounds, for one case (miss or hit)."""

    variant: str
    case: str
    round: int
    us_per_statement: float


def measure_decisions(rounds: int, statements: int) -> list[DecisionSample]:
    """Three inner rounds per subprocess: its median drops the first round's warm-up. When
    sqlglotc is not installed both variants would be pure Python, so only one runs."""
    samples: list[DecisionSample] = []
    for round_ in range(1, rounds + 1):
        compiled, cases = _run(hide_sqlglotc=False, statements=statements)
        first = WITH if compiled else f"{WITHOUT} (sqlglotc not installed)"
        samples += [DecisionSample(first, case, round_, value) for case, value in cases]
        if compiled:
            _, cases = _run(hide_sqlglotc=True, statements=statements)
            samples += [DecisionSample(WITHOUT, case, round_, value) for case, value in cases]
        latest = ", ".join(
            f"{sample.variant} {sample.case}: {sample.us_per_statement:.1f} µs"
            for sample in samples
            if sample.round == round_
        )
        progress(f"decision cost round {round_}/{rounds}: {latest}")
    return samples


def _run(hide_sqlglotc: bool, statements: int) -> tuple[bool, list[tuple[str, float]]]:
    script = [str(HERE / "decision_cost.py"), "--rounds", "3", "--statements", str(statements)]
    wrapper = [str(HERE / "no_sqlglotc.py")] if hide_sqlglotc else []
    command = [sys.executable, *wrapper, *script]
    result = subprocess.run(command, capture_output=True, text=True, timeout=900)
    if result.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)} failed:\n{result.stderr}{result.stdout}")
    compiled = COMPILED_RE.search(result.stdout)
    cases = [(case.strip(), float(value)) for case, value in ROW_RE.findall(result.stdout)]
    if compiled is None or len(cases) != 2:
        raise BenchmarkError(f"unexpected output from {' '.join(command)}:\n{result.stdout}")
    loaded = compiled.group(1) == "True"
    if hide_sqlglotc and loaded:
        raise BenchmarkError("no_sqlglotc.py did not hide sqlglotc: sqlglot.parser is compiled")
    return loaded, cases
