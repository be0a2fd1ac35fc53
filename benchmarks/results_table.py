"""One markdown table for every section: medians, spread, and ratios to direct and pgbouncer.

The sections measure different things (transactions per second, seconds, KiB, µs), so each
row names its unit and which way is better, and a ratio is always "this row's value ÷ the
reference's value" in that unit: for tps below 1 is worse, for seconds or KiB above 1 is.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from pgbench_compare import Row, Workload, format_optional

# unit -> (column text, value format)
UNITS: dict[str, tuple[str, str]] = {
    "tps": ("tps ↑", "{:,.0f}"),
    "s": ("s ↓", "{:.2f}"),
    "KiB": ("KiB/conn ↓", "{:.1f}"),
    "µs": ("µs/stmt ↓", "{:.1f}"),
    "cpu": ("CPU µs/stmt ↓", "{:.1f}"),
}
HEADER = (
    "section",
    "workload",
    "target",
    "median",
    "unit",
    "min–max",
    "÷ direct",
    "÷ pgbouncer",
    "+µs/stmt vs direct",
    "+µs/stmt vs pgbouncer",
    "note",
)
Measurement = tuple[str, str, float]  # (workload, target, value)


@dataclass(frozen=True)
class TableRow:
    section: str
    workload: str
    target: str
    value: float
    unit: str
    low: float
    high: float
    vs_direct: float | None = None
    vs_pgbouncer: float | None = None
    added_us_vs_direct: float | None = None
    added_us_vs_pgbouncer: float | None = None
    note: str = ""


def pgbench_rows(section: str, workload: Workload, rows: Sequence[Row]) -> list[TableRow]:
    """pgbench_compare's rows, with added latency per statement rather than per transaction:
    a TPC-B transaction holds seven statements, and the sidecar's cost is per statement."""

    def per_statement(value: float | None) -> float | None:
        return None if value is None else value / workload.statements

    table = []
    for row in rows:
        note = f"latency {row.latency_ms:.3f} ms"
        if workload.statements > 1:
            note += f"; {row.tps * workload.statements:,.0f} stmt/s"
        table.append(
            TableRow(
                section,
                f"{workload.name} -M {row.mode} -c {row.clients}",
                row.target,
                row.tps,
                "tps",
                row.tps_min,
                row.tps_max,
                row.vs_direct,
                row.vs_pgbouncer,
                per_statement(row.added_us_vs_direct),
                per_statement(row.added_us_vs_pgbouncer),
                note,
            )
        )
    return table


def compared_rows(
    section: str,
    unit: str,
    measurements: Sequence[Measurement],
) -> list[TableRow]:
    """Medians per (workload, target), in the order first measured, each divided by direct's
    and pgbouncer's median for the same workload (not by itself: "1.00" only clutters)."""
    groups: dict[tuple[str, str], list[float]] = {}
    for workload, target, value in measurements:
        groups.setdefault((workload, target), []).append(value)
    medians = {key: statistics.median(values) for key, values in groups.items()}

    def ratio(workload: str, target: str, reference: str) -> float | None:
        base = None if reference == target else medians.get((workload, reference))
        return None if not base else medians[(workload, target)] / base

    return [
        TableRow(
            section,
            workload,
            target,
            medians[(workload, target)],
            unit,
            min(values),
            max(values),
            ratio(workload, target, "direct"),
            ratio(workload, target, "pgbouncer"),
        )
        for (workload, target), values in groups.items()
    ]


def render(rows: Sequence[TableRow]) -> str:
    lines = [
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join(["---"] * 3 + ["---:"] + ["---"] + ["---:"] * 5 + ["---"]) + "|",
    ]
    for row in rows:
        unit, template = UNITS[row.unit]
        cells = [
            row.section,
            row.workload,
            row.target,
            template.format(row.value),
            unit,
            f"{template.format(row.low)}–{template.format(row.high)}",
            format_optional(row.vs_direct, "{:.2f}"),
            format_optional(row.vs_pgbouncer, "{:.2f}"),
            format_optional(row.added_us_vs_direct, "{:+.0f}"),
            format_optional(row.added_us_vs_pgbouncer, "{:+.0f}"),
            row.note,
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
