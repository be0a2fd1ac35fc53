"""Every performance number the project tracks, from one command, in one table.

    python benchmarks/run_all.py                 # 5 s runs, 3 rounds: about 15 minutes
    python benchmarks/run_all.py --quick         # 3 s runs, 1 round: a check that all works
    python benchmarks/run_all.py --only pgbench,idle --json results.json

Sections: pgbench (-S, three protocols, 1 and 8 clients), tpcb (pgbench's TPC-B-like
script), distinct (statements whose text never repeats), breakdown (the proxy's CPU time
per statement, one sidecar feature at a time), stream (a large result), copy (COPY out and
in), idle (memory per idle connection), decision (the firewall's cost per statement with and
without sqlglotc). The sidecar runs as in production: bundled rules, audit log and tracing
on. The table goes to stdout, progress to stderr; see benchmarks/README.md for what each row
means.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cost_breakdown
import pgbench_compare
from decision_compare import WITH, measure_decisions
from idle_memory import WARM_CONNECTIONS, ProxyFactory, measure_idle, raise_fd_limit
from pgbench_compare import (
    DBNAME,
    MODES,
    OPTIONAL_TARGETS,
    SELECT_ONLY,
    TARGETS,
    PgBouncer,
    Plan,
    Target,
    choices,
    describe_machine,
    find_pgbouncer,
    initialize,
    int_list,
    measure,
    open_targets,
    pgbouncer_version,
    positive,
    progress,
    summarize,
    upstream_url,
    warm_up,
)
from pgbench_workloads import TPCB, distinct_texts
from production_sidecar import ProductionSetup
from results_table import TableRow, compared_rows, pgbench_rows, render
from transfer_timing import measure_transfers, transfers

from sqlguard.testing.postgres import PostgresCluster

SECTIONS = ("pgbench", "tpcb", "distinct", "breakdown", "stream", "copy", "idle", "decision")
PGBENCH_SECTIONS = ("pgbench", "tpcb", "distinct")
TRANSFER_SECTIONS = ("stream", "copy")
TPCB_MODES = ("simple", "prepared")
TPCB_CLIENTS = (8,)
REPO = Path(__file__).resolve().parents[1]
# Settings --quick changes; an explicit option still wins.
DEFAULTS = {"seconds": 5, "rounds": 3, "warmup": 2, "decision_statements": 2000}
QUICK = {"seconds": 3, "rounds": 1, "warmup": 1, "decision_statements": 500}
# The breakdown's own, unless --seconds/--rounds say otherwise: CPU time per transaction
# needs no long runs, and more rounds make its medians steadier. --quick: QUICK's.
BREAKDOWN_DEFAULTS = {"seconds": 3, "rounds": 5}


@dataclass(frozen=True)
class Options(pgbench_compare.Options):
    """pgbench_compare's options, plus the sections and what only they use."""

    sections: tuple[str, ...]
    idle_connections: int
    decision_statements: int
    breakdown_seconds: int
    breakdown_rounds: int


@dataclass
class Report:
    """Rows for the table and the raw samples behind them, for --json."""

    rows: list[TableRow] = field(default_factory=list)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def add(self, section: str, rows: Sequence[TableRow], samples: Sequence[Any]) -> None:
        self.rows += rows
        self.samples.setdefault(section, []).extend(asdict(sample) for sample in samples)


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 s runs, 1 round, fewer statements")
    parser.add_argument(
        "--only", dest="sections", type=choices(SECTIONS), default=SECTIONS, help=",".join(SECTIONS)
    )
    parser.add_argument(
        "--seconds", type=positive, help="length of each pgbench run (5; breakdown 3)"
    )
    parser.add_argument("--rounds", type=positive, help="rounds per cell; medians (3; breakdown 5)")
    parser.add_argument(
        "--clients", type=int_list, default=(1, 8), help="pgbench -S and distinct-text clients"
    )
    parser.add_argument("--modes", type=choices(MODES), default=MODES, help="for pgbench -S")
    parser.add_argument(
        "--scale",
        type=positive,
        default=10,
        help="pgbench -i scale; 10 = 1M accounts, the rows streamed and copied",
    )
    parser.add_argument(
        "--targets",
        type=choices(TARGETS + OPTIONAL_TARGETS),
        default=TARGETS + OPTIONAL_TARGETS,
        help=",".join(TARGETS + OPTIONAL_TARGETS) + " (floor: in the pgbench section only)",
    )
    parser.add_argument("--warmup", type=int, help="seconds of untimed pgbench per target (2)")
    parser.add_argument("--idle-connections", type=positive, default=1000)
    parser.add_argument(
        "--decision-statements", type=positive, help="statements per decision_cost.py round (2000)"
    )
    parser.add_argument("--json", dest="json_file", type=Path, help="also write everything here")
    args = vars(parser.parse_args(argv))
    quick = args.pop("quick")
    preset = QUICK if quick else DEFAULTS
    for name, default in BREAKDOWN_DEFAULTS.items():
        explicit = args[name]
        args[f"breakdown_{name}"] = explicit or (preset[name] if quick else default)
    for name, value in preset.items():
        if args[name] is None:
            args[name] = value
    return Options(**args)


# --- sections ---------------------------------------------------------------------------------


def pgbench_sections(
    pgbench: Path,
    targets: Sequence[Target],
    floor: Sequence[Target],
    options: Options,
    scratch: Path,
    report: Report,
) -> None:
    """`floor` joins the targets of the pgbench section only: what Python costs at all is
    one comparison, not one per workload."""
    plans = {
        "pgbench": Plan(
            SELECT_ONLY, options.modes, options.clients, options.rounds, options.seconds
        ),
        "tpcb": Plan(TPCB, TPCB_MODES, TPCB_CLIENTS, options.rounds, options.seconds),
        "distinct": Plan(
            distinct_texts(scratch, options.scale),
            ("simple",),
            options.clients,
            options.rounds,
            options.seconds,
        ),
    }
    for section in PGBENCH_SECTIONS:
        if section in options.sections:
            plan = plans[section]
            chosen = [*targets, *floor] if section == "pgbench" else targets
            samples = measure(pgbench, chosen, plan)
            report.add(section, pgbench_rows(section, plan.workload, summarize(samples)), samples)


def breakdown_section(
    cluster: PostgresCluster, production: ProductionSetup, options: Options, report: Report
) -> None:
    rows, samples = cost_breakdown.measure_breakdown(
        cluster, production, options.breakdown_seconds, options.breakdown_rounds, options.warmup
    )
    report.add("breakdown", rows, samples)


def transfer_sections(
    cluster: PostgresCluster, targets: Sequence[Target], options: Options, report: Report
) -> None:
    chosen = [section for section in TRANSFER_SECTIONS if section in options.sections]
    if not chosen:
        return
    with transfers(cluster, options.scale, chosen) as work:
        timings = measure_transfers(cluster.bin("psql"), targets, work, options.rounds)
    for section in chosen:
        mine = [t for t in timings if t.section == section]
        rows = compared_rows(section, "s", [(t.transfer, t.target, t.seconds) for t in mine])
        report.add(section, rows, mine)


def idle_section(
    cluster: PostgresCluster, production: ProductionSetup, options: Options, report: Report
) -> None:
    """Fresh proxies, one per target and round (see idle_memory); direct has no proxy process
    to measure, since PostgreSQL spends a process per connection."""
    count = options.idle_connections
    proxies: dict[str, ProxyFactory] = {}
    if "sqlguard" in options.targets:
        proxies["sqlguard"] = lambda: production.sidecar(upstream_url(cluster), "idle section")
    binary = find_pgbouncer()
    if "pgbouncer" in options.targets and binary is not None:
        proxies["pgbouncer"] = lambda: PgBouncer(
            binary, cluster.port, DBNAME, count + WARM_CONNECTIONS
        )
    if not proxies:
        progress("note: idle section skipped: neither sqlguard nor pgbouncer is a target")
        return
    samples = measure_idle(cluster, proxies, count, options.rounds)
    workload = f"{count:,} idle connections (login + SELECT 1)"
    rows = compared_rows(
        "idle", "KiB", [(workload, s.target, s.kib_per_connection) for s in samples]
    )
    last = {sample.target: sample for sample in samples}
    notes = {
        target: f"RSS {s.rss_before_kib / 1024:.1f} → {s.rss_after_kib / 1024:.1f} MiB, "
        f"{s.upstream_backends} upstream backends"
        for target, s in last.items()
    }
    report.add("idle", [replace(row, note=notes[row.target]) for row in rows], samples)


def decision_section(options: Options, report: Report) -> None:
    samples = measure_decisions(options.rounds, options.decision_statements)
    rows = compared_rows(
        "decision", "µs", [(s.case, s.variant, s.us_per_statement) for s in samples]
    )
    compiled = {row.workload: row.value for row in rows if row.target == WITH}

    def note(row: TableRow) -> str:
        base = compiled.get(row.workload)
        if row.target == WITH or not base:
            return "firewall.judge() alone, no I/O"
        return f"{row.value / base:.2f}× the time with sqlglotc"

    report.add("decision", [replace(row, note=note(row)) for row in rows], samples)


# --- header and footer ------------------------------------------------------------------------


def render_header(
    machine: dict[str, str], setup: Sequence[str], options: Options, breakdown: Sequence[str]
) -> str:
    lines = ["# sqlguard performance: direct vs sqlguard vs pgbouncer", ""]
    lines += [f"command: `{' '.join(sys.orig_argv)}`", ""]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines += [f"- {line}" for line in setup]
    runs = (
        f"{options.seconds} s per pgbench run, {options.rounds} round(s), targets alternate "
        f"within each round ({', '.join(options.targets)}, ...), medians; "
        if set(options.sections) - {"breakdown"}
        else ""
    )
    lines.append(
        f"- runs: {runs}pgbench scale {options.scale}; sections: {','.join(options.sections)}"
    )
    if "pgbench" in options.sections and "floor" in options.targets:
        lines.append(
            "- python floor (pgbench section only): benchmarks/floor_proxy.py, a uvloop proxy "
            "that frames every message both ways and does nothing else; the least any "
            "pure-Python proxy of the protocol spends"
        )
    lines += [f"- {line}" for line in breakdown]
    if "idle" in options.sections:
        lines.append(
            f"- idle: {options.idle_connections} connections per target and round, a fresh "
            "proxy each time, RSS from /proc/PID/status after a 2 s settle"
        )
    if "decision" in options.sections:
        lines.append(
            f"- decision: decision_cost.py, {options.decision_statements} statements x 3 inner "
            "rounds per subprocess, with and without sqlglotc alternating"
        )
    return "\n".join(lines)


def sqlguard_revision() -> str:
    """Which code was measured: another change may be in the working tree."""
    head = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    if not head:
        return "not a git checkout"
    dirty = subprocess.run(["git", "-C", str(REPO), "diff", "--quiet", "HEAD", "--", "sqlguard"])
    return head + (" + uncommitted changes in sqlguard/" if dirty.returncode else "")


def machine_description(cluster: PostgresCluster, pgbouncer: PgBouncer | None) -> dict[str, str]:
    machine = {"sqlguard": sqlguard_revision(), **describe_machine(cluster, pgbouncer)}
    binary = find_pgbouncer()
    if pgbouncer is None and binary is not None:
        machine["pgbouncer"] = pgbouncer_version(binary)
    pgbench = subprocess.run([cluster.bin("pgbench"), "--version"], capture_output=True, text=True)
    machine["pgbench"] = pgbench.stdout.strip()
    return machine


# --- orchestration ----------------------------------------------------------------------------


def cluster_connections(options: Options) -> int:
    """PostgreSQL must take every idle connection's backend, plus pgbench's and the pools'."""
    return options.idle_connections + 200 if "idle" in options.sections else 300


def run(options: Options, report: Report) -> tuple[dict[str, Any], list[str]]:
    """Returns the header facts and the after-run checks; rows accumulate in `report`, so a
    failure part-way still leaves the rows measured so far."""
    if "idle" in options.sections:
        raise_fd_limit(2 * options.idle_connections + 1000)
    sections = set(options.sections)
    with contextlib.ExitStack() as stack:
        production = stack.enter_context(ProductionSetup(options.idle_connections + 100))
        cluster = stack.enter_context(PostgresCluster(max_connections=cluster_connections(options)))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sqlguard-bench-")))
        targets: list[Target] = []
        floor: list[Target] = []
        pgbouncer = None
        if sections & {*PGBENCH_SECTIONS, *TRANSFER_SECTIONS, "breakdown"}:
            progress(f"initializing pgbench data, scale {options.scale}")
            initialize(cluster, options.scale)
        else:
            cluster.create_database(DBNAME)
        if sections & {*PGBENCH_SECTIONS, *TRANSFER_SECTIONS}:
            targets, pgbouncer = open_targets(
                stack,
                cluster,
                [name for name in options.targets if name not in OPTIONAL_TARGETS],
                max(*options.clients, *TPCB_CLIENTS),
                lambda upstream: production.sidecar(
                    upstream, "target of the pgbench and transfer sections"
                ),
            )
        if "pgbench" in sections and "floor" in options.targets:
            floor, _ = open_targets(stack, cluster, ["floor"], 0)
        machine = machine_description(cluster, pgbouncer)
        setup = production.describe()
        breakdown = (
            cost_breakdown.describe(production, options.breakdown_seconds, options.breakdown_rounds)
            if "breakdown" in sections
            else []
        )
        print(render_header(machine, setup, options, breakdown), flush=True)
        if targets and options.warmup > 0 and sections & set(PGBENCH_SECTIONS):
            warm_up(cluster.bin("pgbench"), [*targets, *floor], options.warmup)
        pgbench_sections(cluster.bin("pgbench"), targets, floor, options, scratch, report)
        if "breakdown" in sections:
            breakdown_section(cluster, production, options, report)
        transfer_sections(cluster, targets, options, report)
        if "idle" in sections:
            idle_section(cluster, production, options, report)
        if "decision" in sections:
            decision_section(options, report)
    return {"machine": machine, "setup": setup}, production.checks()


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so every ExitStack stops what it started either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    report = Report()
    try:
        facts, checks = run(options, report)
    except KeyboardInterrupt:
        _partial(report, "interrupted; everything started was stopped")
        return 130
    except RuntimeError as error:  # BenchmarkError, the harness errors, SidecarProcess's
        _partial(report, f"error: {error}")
        return 1
    elapsed = time.monotonic() - started
    print("\n" + render(report.rows))
    print("\nchecks after the run:\n" + "\n".join(f"- {line}" for line in checks))
    print(f"\ntotal time: {elapsed / 60:.1f} min")
    if options.json_file is not None:
        _write_json(options.json_file, facts, checks, report, elapsed)
        progress(f"results written to {options.json_file}")
    return 0


def _partial(report: Report, message: str) -> None:
    """What was measured before the failure is still worth seeing, marked as partial."""
    if report.rows:
        print("\npartial results (the run did not finish):\n" + render(report.rows))
    progress(message)


def _write_json(
    path: Path, facts: dict[str, Any], checks: list[str], report: Report, elapsed: float
) -> None:
    document = {
        "command": sys.orig_argv,
        **facts,
        "seconds": round(elapsed, 1),
        "table": [asdict(row) for row in report.rows],
        "samples": report.samples,
        "checks": checks,
    }
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    sys.exit(main())
