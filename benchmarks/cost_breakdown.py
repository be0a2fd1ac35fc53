"""What each sidecar feature costs per statement: the proxy's CPU time per pgbench transaction.

tps and latency hold everything a statement waits for: a free core (pgbench, PostgreSQL and
the proxy share them), PostgreSQL, pgbench itself. The CPU time the proxy spends per
transaction (utime + stime from /proc/PID/stat before and after a run, divided by the
transactions pgbench processed; for the sidecar, its helper processes' too, the audit writer
and the span exporter, shown apart in the note since they run beside the event loop, not on
it; so is the event loop thread's own share, the part no other core can take over) counts
only the proxy's own work, so the targets' figures can be subtracted to price one
feature at a time: the sidecar bare, with the audit log, with every statement traced and with
1% of traces sampled, next to pgbouncer in session mode and to floor_proxy.py twice, as a
uvloop byte forwarder and as a proxy that frames every message (the least a firewall in
Python must do): the sidecar's distance from pgbouncer splits into what Python costs at all
and what sqlguard's own work adds. Each configuration is its own
`sqlguard serve` process, so one's CPU time is never mixed with another's. It still moves
with the speed of the cores themselves (a VM's host busy elsewhere), hence medians over
rounds, as in the other sections.
"""

from __future__ import annotations

import contextlib
import os
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from floor_proxy import FLOOR, FORWARDER, FloorProxy
from pgbench_compare import (
    BenchmarkError,
    Target,
    progress,
    run_pgbench,
    sidecar_log,
    start_pgbouncer,
    upstream_url,
    warm_up,
)
from production_sidecar import NO_EXPORTER, ProductionSetup
from results_table import TableRow, compared_rows

from sqlguard.testing.postgres import PostgresCluster

SECTION = "breakdown"
MODES = ("simple", "prepared")
CLIENTS = 1  # one client: no queueing for the CPUs in the latency, one connection per run
PGBOUNCER = "pgbouncer"
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")
ONE_PERCENT = {"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0.01"}


@dataclass(frozen=True)
class Variant:
    """One sidecar configuration. `base` is the target it adds one feature to: the row's
    "+ over base" in the note is that feature's price."""

    name: str
    base: str
    audit: bool
    tracing: bool
    sampler: Mapping[str, str] = field(default_factory=dict)


VARIANTS = (
    Variant("sqlguard bare", FLOOR, audit=False, tracing=False),
    Variant("sqlguard + audit", "sqlguard bare", audit=True, tracing=False),
    Variant("sqlguard + audit + tracing", "sqlguard + audit", audit=True, tracing=True),
    Variant(
        "sqlguard + audit + tracing 1%",
        "sqlguard + audit",
        audit=True,
        tracing=True,
        sampler=ONE_PERCENT,
    ),
)
REFERENCES = {FORWARDER: PGBOUNCER, FLOOR: FORWARDER}  # floor_proxy.py without / with framing
BASES = {**REFERENCES, **{variant.name: variant.base for variant in VARIANTS}}


@dataclass(frozen=True)
class Metered:
    """A target and the process whose CPU time is its cost."""

    target: Target
    pid: int


@dataclass(frozen=True)
class CpuSample:
    """One pgbench run against one target."""

    mode: str
    target: str
    round: int
    transactions: int
    cpu_seconds: float
    cpu_us_per_statement: float
    latency_ms: float
    tps: float
    helpers_us_per_statement: float = 0.0
    loop_us_per_statement: float = 0.0


def cpu_seconds(pid: int, thread: int | None = None) -> float:
    """utime + stime of the whole process (all its threads: the audit sender's and the span
    shipper's too), or of one of its threads (the main thread's id is the process id)."""
    path = f"/proc/{pid}/stat" if thread is None else f"/proc/{pid}/task/{thread}/stat"
    try:
        fields = _stat_fields(Path(path).read_text())
    except OSError as error:
        raise BenchmarkError(f"cannot read the CPU time of process {pid}: {error}") from error
    return (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND


def children_cpu_seconds(pid: int) -> float:
    """utime + stime of the live child processes of `pid` (the sidecar's audit writer and
    span exporter)."""
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = _stat_fields(stat.read_text())
        except OSError:
            continue  # a process that ended meanwhile
        if int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / TICKS_PER_SECOND
    return total


def _stat_fields(stat: str) -> list[str]:
    """The fields after the command name, which may hold spaces, so they count from the ')'
    that closes it: ppid is field 4, utime and stime fields 14 and 15."""
    return stat[stat.rindex(")") + 2 :].split()


def describe(production: ProductionSetup, seconds: int, rounds: int) -> list[str]:
    """Header lines: how the section measures, what its targets are and what it skips."""
    lines = [
        f"{SECTION}: pgbench -S -c {CLIENTS} -M {'/'.join(MODES)}, {seconds} s per run, "
        f"{rounds} round(s), the target order reversed every other round, medians; value: CPU "
        "time (utime+stime from /proc/PID/stat) of the proxy process, with the sidecar's helper "
        "processes (audit writer, span exporter), per transaction processed",
        f"{SECTION} targets: pgbouncer (session mode), floor_proxy.py as a byte forwarder "
        f"({FORWARDER}) and framing every message ({FLOOR}), then a `sqlguard serve` each: bare "
        "(bundled rules, no audit, OTEL_TRACES_EXPORTER=none), + audit (the audit log above), "
        "+ audit + tracing (OTLP to its own local sink, default sampler: every statement a "
        "span), + audit + tracing 1% (OTEL_TRACES_SAMPLER=parentbased_traceidratio, "
        "OTEL_TRACES_SAMPLER_ARG=0.01); the tracing rows need sqlguard[otlp]",
    ]
    if production.tracing:
        lines.append(
            f"{SECTION} tracing 1%: the sampler decides per trace, and a statement's span is a "
            "child of its connection's: with one connection per run, a run has all its "
            "statements sampled (1 run in 100) or none; the checks show what each sink got"
        )
    else:
        lines.append(f"{SECTION}: tracing rows skipped ({NO_EXPORTER})")
    return lines


def measure_breakdown(
    cluster: PostgresCluster, production: ProductionSetup, seconds: int, rounds: int, warmup: int
) -> tuple[list[TableRow], list[CpuSample]]:
    """Its own proxies, stopped when the section ends."""
    with contextlib.ExitStack() as stack:
        targets = _open(stack, cluster, production)
        pgbench = cluster.bin("pgbench")
        if warmup > 0:
            warm_up(pgbench, [metered.target for metered in targets], warmup)
        samples = _measure(pgbench, targets, seconds, rounds)
    return breakdown_rows(samples), samples


def _open(
    stack: contextlib.ExitStack, cluster: PostgresCluster, production: ProductionSetup
) -> list[Metered]:
    targets = []
    pgbouncer = start_pgbouncer(stack, cluster, CLIENTS)
    if pgbouncer is not None:
        targets.append(Metered(Target(PGBOUNCER, pgbouncer.host, pgbouncer.port), pgbouncer.pid))
    for name in REFERENCES:
        proxy = stack.enter_context(FloorProxy(cluster.port, name))
        targets.append(Metered(Target(name, proxy.host, proxy.port), proxy.pid))
    for variant in VARIANTS:
        if variant.tracing and not production.tracing:
            progress(f"note: {variant.name} skipped ({NO_EXPORTER})")
            continue
        sidecar = stack.enter_context(
            production.sidecar(
                upstream_url(cluster),
                f"{SECTION}: {variant.name}",
                audit=variant.audit,
                tracing=variant.tracing,
                sampler=variant.sampler,
            )
        )
        target = Target(variant.name, sidecar.host, sidecar.port, sidecar_log(sidecar))
        targets.append(Metered(target, sidecar.pid))
    return targets


def _measure(
    pgbench: Path, targets: Sequence[Metered], seconds: int, rounds: int
) -> list[CpuSample]:
    """Every other round runs the targets in reverse, so none always follows the same one."""
    samples: list[CpuSample] = []
    total = len(MODES) * rounds * len(targets)
    for mode in MODES:
        for round_ in range(1, rounds + 1):
            order = targets if round_ % 2 else list(reversed(targets))
            for metered in order:
                pid = metered.pid
                before = cpu_seconds(pid), children_cpu_seconds(pid), cpu_seconds(pid, pid)
                run = run_pgbench(pgbench, metered.target, mode, CLIENTS, seconds)
                children = children_cpu_seconds(pid) - before[1]
                spent = cpu_seconds(pid) - before[0] + children
                loop = cpu_seconds(pid, pid) - before[2]
                per_statement = spent * 1e6 / run.transactions
                name = metered.target.name
                samples.append(
                    CpuSample(
                        mode,
                        name,
                        round_,
                        run.transactions,
                        spent,
                        per_statement,
                        run.latency_ms,
                        run.tps,
                        children * 1e6 / run.transactions,
                        loop * 1e6 / run.transactions,
                    )
                )
                progress(
                    f"[{len(samples)}/{total}] {SECTION} -M {mode} round {round_} {name}: "
                    f"{per_statement:.1f} CPU µs/stmt, latency {run.latency_ms * 1000:.0f} µs"
                )
    return samples


def breakdown_rows(samples: Sequence[CpuSample]) -> list[TableRow]:
    """CPU µs per statement with its spread and ÷ pgbouncer; the +µs columns hold CPU time
    (the row's unit) added over pgbouncer, the note the latency and the row's own feature's
    price: the CPU time over the target that lacks just that feature."""
    workloads = {mode: f"pgbench -S -M {mode} -c {CLIENTS}" for mode in MODES}
    rows = compared_rows(
        SECTION,
        "cpu",
        [(workloads[s.mode], s.target, s.cpu_us_per_statement) for s in samples],
    )
    cpu = {(row.workload, row.target): row.value for row in rows}

    def medians(value: Callable[[CpuSample], float]) -> dict[tuple[str, str], float]:
        groups: dict[tuple[str, str], list[float]] = {}
        for sample in samples:
            groups.setdefault((workloads[sample.mode], sample.target), []).append(value(sample))
        return {key: statistics.median(values) for key, values in groups.items()}

    latency = medians(lambda sample: sample.latency_ms * 1000)
    helpers = medians(lambda sample: sample.helpers_us_per_statement)
    loop = medians(lambda sample: sample.loop_us_per_statement)

    def over(row: TableRow, reference: str, values: dict[tuple[str, str], float]) -> float | None:
        base = None if reference == row.target else values.get((row.workload, reference))
        return None if base is None else values[(row.workload, row.target)] - base

    def note(row: TableRow) -> str:
        key = (row.workload, row.target)
        text = f"latency {latency[key]:.0f} µs"
        added_latency = over(row, PGBOUNCER, latency)
        if added_latency is not None:
            text += f" ({added_latency:+.0f} vs pgbouncer)"
        base = BASES.get(row.target, PGBOUNCER)
        step = over(row, base, cpu)
        if base != PGBOUNCER and step is not None:
            text += f"; {step:+.1f} CPU µs over {base}"
        if row.target not in (PGBOUNCER, *REFERENCES):
            text += f"; of its CPU µs, {loop[key]:.1f} on its event loop thread"
        if helpers[key] >= 0.05:
            text += f", {helpers[key]:.1f} in its helper processes"
        return text

    return [
        replace(row, added_us_vs_pgbouncer=over(row, PGBOUNCER, cpu), note=note(row))
        for row in rows
    ]
