"""How much does the sqlguard sidecar cost per statement? pgbench against three targets.

The same select-only pgbench workload runs against PostgreSQL directly, through the sidecar
and (when installed) through pgbouncer in session mode. pgbouncer is the yardstick: it is the
proxy people already accept in front of PostgreSQL, so "twice pgbouncer's overhead" says more
than an absolute number from a machine where client, proxy and server share the CPUs.

    python benchmarks/pgbench_compare.py [--seconds 10] [--rounds 3] [--clients 1,8]
        [--modes simple,extended,prepared] [--scale 10] [--targets direct,sqlguard,pgbouncer]
        [--warmup 2] [--json FILE]

`--targets` also takes `floor`: floor_proxy.py, the least a Python proxy that frames the
protocol must spend (run_all.py runs it in its pgbench section).

The table goes to stdout, progress to stderr. See benchmarks/README.md for the columns.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import os
import platform
import pwd
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from floor_proxy import FLOOR, FloorProxy

from sqlguard.testing.postgres import SUPERUSER, PostgresCluster
from sqlguard.testing.sidecar import SidecarProcess, free_port, wait_listening

RULES_DIR = Path(__file__).resolve().parents[1] / "rules"
DBNAME = "pgbench"
MODES = ("simple", "extended", "prepared")
TARGETS = ("direct", "sqlguard", "pgbouncer")
OPTIONAL_TARGETS = ("floor",)  # floor_proxy.py's framing proxy: on request
PGBOUNCER_FALLBACK = Path("/usr/sbin/pgbouncer")  # Debian installs it off a normal user's PATH
# pgbench prints the first form since PostgreSQL 14, the second before.
TPS_RE = re.compile(
    r"^tps = ([0-9.]+) \((?:without initial connection time|excluding connections establishing)\)",
    re.MULTILINE,
)
LATENCY_RE = re.compile(r"^latency average = ([0-9.]+) ms", re.MULTILINE)
TRANSACTIONS_RE = re.compile(r"^number of transactions actually processed: ([0-9]+)", re.MULTILINE)


class BenchmarkError(RuntimeError):
    """A step failed; the message carries the output needed to see why."""


@dataclass(frozen=True)
class Options:
    seconds: int
    rounds: int
    clients: tuple[int, ...]
    modes: tuple[str, ...]
    scale: int
    targets: tuple[str, ...]
    warmup: int
    json_file: Path | None


@dataclass(frozen=True)
class Target:
    """Somewhere pgbench can connect; `diagnostics` explains a failure seen only by pgbench."""

    name: str
    host: str
    port: int
    diagnostics: Callable[[], str] = field(default=lambda: "", repr=False, compare=False)


@dataclass(frozen=True)
class Workload:
    """What pgbench runs, and how many statements one of its transactions sends: per-statement
    costs are per-transaction latencies divided by that."""

    name: str
    args: tuple[str, ...]
    statements: int = 1


SELECT_ONLY = Workload("pgbench -S (select-only)", ("-S",))


@dataclass(frozen=True)
class Plan:
    """The cells to measure for one workload: every (mode, clients), `rounds` times each."""

    workload: Workload
    modes: tuple[str, ...]
    clients: tuple[int, ...]
    rounds: int
    seconds: int


@dataclass(frozen=True)
class PgbenchRun:
    """What one pgbench run reports: its tps (without connection time), its average latency and
    how many transactions it completed (what a per-transaction cost is divided by)."""

    tps: float
    latency_ms: float
    transactions: int


@dataclass(frozen=True)
class Sample:
    """One pgbench run."""

    mode: str
    clients: int
    target: str
    round: int
    tps: float
    latency_ms: float
    workload: str = SELECT_ONLY.name


@dataclass(frozen=True)
class Row:
    """Medians over the rounds of one (mode, clients, target), plus the comparisons."""

    mode: str
    clients: int
    target: str
    tps: float
    tps_min: float
    tps_max: float
    latency_ms: float
    vs_direct: float | None
    vs_pgbouncer: float | None
    added_us_vs_direct: float | None
    added_us_vs_pgbouncer: float | None


# --- command line -----------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None = None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=positive, default=10, help="duration of each run")
    parser.add_argument("--rounds", type=positive, default=3, help="runs per cell; medians")
    parser.add_argument("--clients", type=int_list, default=(1, 8), help="e.g. 1,8")
    parser.add_argument("--modes", type=choices(MODES), default=MODES, help=",".join(MODES))
    parser.add_argument("--scale", type=positive, default=10, help="pgbench -i scale factor")
    parser.add_argument(
        "--targets",
        type=choices(TARGETS + OPTIONAL_TARGETS),
        default=TARGETS,
        help=",".join(TARGETS + OPTIONAL_TARGETS),
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="seconds of untimed pgbench per target; 0: none"
    )
    parser.add_argument("--json", dest="json_file", type=Path, help="write raw results here")
    args = parser.parse_args(argv)
    return Options(**vars(args))


def positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {value}")
    return value


def int_list(text: str) -> tuple[int, ...]:
    return tuple(positive(part) for part in text.split(","))


def choices(allowed: tuple[str, ...]) -> Callable[[str], tuple[str, ...]]:
    """Keeps the canonical order whatever order the user wrote, so tables always line up."""

    def parse(text: str) -> tuple[str, ...]:
        chosen = {part.strip() for part in text.split(",")}
        unknown = chosen - set(allowed)
        if unknown:
            raise argparse.ArgumentTypeError(
                f"unknown {', '.join(sorted(unknown))}; choose from {','.join(allowed)}"
            )
        return tuple(name for name in allowed if name in chosen)

    return parse


# --- pgbouncer --------------------------------------------------------------------------------


def find_pgbouncer() -> Path | None:
    found = shutil.which("pgbouncer")
    if found:
        return Path(found)
    return PGBOUNCER_FALLBACK if os.access(PGBOUNCER_FALLBACK, os.X_OK) else None


def pgbouncer_version(binary: Path) -> str:
    result = subprocess.run([binary, "--version"], capture_output=True, text=True)
    return result.stdout.splitlines()[0] if result.stdout else "pgbouncer (unknown version)"


def _unprivileged_account() -> pwd.struct_passwd | None:
    """pgbouncer refuses to run as root, like PostgreSQL, so root lends it the postgres account."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise BenchmarkError(
            "Running as root, and pgbouncer refuses root: create a 'postgres' account "
            "(useradd --system postgres), run as a normal user, or pass --targets without it."
        ) from None


class PgBouncer:
    """A session-pooling pgbouncer whose config, log and socket live in one temp directory."""

    host = "127.0.0.1"

    def __init__(self, binary: Path, upstream_port: int, dbname: str, max_clients: int) -> None:
        self.binary = binary
        self.upstream_port = upstream_port
        self.dbname = dbname
        self.max_clients = max_clients
        self.port = free_port()
        self._account = _unprivileged_account()
        self._directory: Path | None = None
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise BenchmarkError("pgbouncer is not running")
        return self._directory

    @property
    def pid(self) -> int:
        """For reading its memory use from /proc."""
        if self._process is None:
            raise BenchmarkError("pgbouncer is not running")
        return self._process.pid

    def start(self, timeout: float = 20.0) -> Self:
        """Leaves nothing behind when it fails, like PostgresCluster.start."""
        self._directory = Path(tempfile.mkdtemp(prefix="sqlguard-pgbouncer-"))
        try:
            config = self._write_files()
            self._launch(config)
            self._wait_listening(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Idempotent. SIGTERM is pgbouncer's immediate shutdown: benchmark clients are gone."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(10)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
            self._process = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None

    def version(self) -> str:
        return pgbouncer_version(self.binary)

    def output(self) -> str:
        """Both logs: errors before the config is read only reach stderr."""
        parts = []
        for name in ("stderr.log", "pgbouncer.log"):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name} ---\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def _write_files(self) -> Path:
        directory = self.directory
        settings = {
            "listen_addr": self.host,
            "listen_port": str(self.port),
            "unix_socket_dir": "",
            "auth_type": "trust",
            "auth_file": str(directory / "userlist.txt"),
            "pool_mode": "session",
            "max_client_conn": str(self.max_clients + 10),
            "default_pool_size": str(self.max_clients),
            "logfile": str(directory / "pgbouncer.log"),
            # One log line per connection is work the other targets do not do.
            "log_connections": "0",
            "log_disconnections": "0",
        }
        database = f"{self.dbname} = host=127.0.0.1 port={self.upstream_port} dbname={self.dbname}"
        lines = ["[databases]", database, "", "[pgbouncer]"]
        lines += [f"{key} = {value}" for key, value in settings.items()]
        config = directory / "pgbouncer.ini"
        config.write_text("\n".join(lines) + "\n")
        # trust still requires the user to be listed.
        (directory / "userlist.txt").write_text(f'"{SUPERUSER}" ""\n')
        if self._account is not None:
            for path in (directory, *directory.iterdir()):
                os.chown(path, self._account.pw_uid, self._account.pw_gid)
        return config

    def _launch(self, config: Path) -> None:
        """A new session, so a Ctrl-C meant for us does not start pgbouncer's slow shutdown."""
        identity: dict[str, Any] = {}
        if self._account is not None:
            account = self._account
            identity = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}
        with (self.directory / "stderr.log").open("wb") as stderr:
            self._process = subprocess.Popen(
                [self.binary, config],
                stdout=stderr,
                stderr=stderr,
                cwd=self.directory,
                start_new_session=True,
                **identity,
            )

    def _wait_listening(self, timeout: float) -> None:
        assert self._process is not None
        failure = wait_listening(self.host, self.port, self._process, timeout)
        if failure:
            raise BenchmarkError(f"pgbouncer {failure}:\n{self.output()}")


# --- pgbench ----------------------------------------------------------------------------------


def initialize(cluster: PostgresCluster, scale: int) -> None:
    """Directly, never through the sidecar: `pgbench -i` drops tables, which the firewall
    refuses."""
    cluster.create_database(DBNAME)
    args = [
        cluster.bin("pgbench"),
        "-i",
        "-q",
        "-s",
        str(scale),
        *_connection(cluster.host, cluster.port),
    ]
    _run_pgbench(args, "pgbench -i", timeout=600)


def _connection(host: str, port: int) -> list[str]:
    return ["-h", host, "-p", str(port), "-U", SUPERUSER, DBNAME]


def run_pgbench(
    pgbench: Path,
    target: Target,
    mode: str,
    clients: int,
    seconds: int,
    workload: Workload = SELECT_ONLY,
) -> PgbenchRun:
    """One timed run. -n: the sidecar would refuse pgbench's VACUUM, and it would only make the
    first target's run slower anyway."""
    args = [pgbench, *workload.args, "-n", "-M", mode, "-c", str(clients)]
    args += ["-j", str(min(clients, 2)), "-T", str(seconds), *_connection(target.host, target.port)]
    what = f"{workload.name} -M {mode} -c {clients} against {target.name}"
    stdout = _run_pgbench(args, what, timeout=seconds + 60, diagnostics=target.diagnostics)
    return PgbenchRun(
        _parse(TPS_RE, stdout, "tps", what),
        _parse(LATENCY_RE, stdout, "latency", what),
        int(_parse(TRANSACTIONS_RE, stdout, "transaction count", what)),
    )


def _run_pgbench(
    args: Sequence[str | Path],
    what: str,
    timeout: float,
    diagnostics: Callable[[], str] = lambda: "",
) -> str:
    """pgbench exits non-zero when a client aborts; say so with everything it printed, since a
    benchmark number from a half-failed run would be a lie."""
    command = [str(arg) for arg in args]
    try:
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{what} hung for {timeout}s\n{diagnostics()}") from exc
    if result.returncode != 0:
        extra = diagnostics()
        raise BenchmarkError(
            f"{what} failed with exit code {result.returncode}: {shlex.join(command)}\n"
            f"--- stderr ---\n{result.stderr}--- stdout ---\n{result.stdout}"
            + (f"\n{extra}" if extra else "")
        )
    return result.stdout


def _parse(pattern: re.Pattern[str], stdout: str, what: str, run: str) -> float:
    match = pattern.search(stdout)
    if match is None:
        raise BenchmarkError(f"no {what} line in the output of {run}:\n{stdout}")
    return float(match.group(1))


def measure(pgbench: Path, targets: Sequence[Target], plan: Plan) -> list[Sample]:
    """Targets alternate within each round, so a burst of machine noise hits all of them alike
    instead of skewing whichever target happened to run during it."""
    samples = []
    workload = plan.workload
    cells = [(mode, clients) for mode in plan.modes for clients in plan.clients]
    total = len(cells) * plan.rounds * len(targets)
    for mode, clients in cells:
        for round_ in range(1, plan.rounds + 1):
            for target in targets:
                run = run_pgbench(pgbench, target, mode, clients, plan.seconds, workload)
                samples.append(
                    Sample(
                        mode, clients, target.name, round_, run.tps, run.latency_ms, workload.name
                    )
                )
                progress(
                    f"[{len(samples)}/{total}] {workload.name} -M {mode} -c {clients} "
                    f"round {round_} {target.name}: {run.tps:.0f} tps, {run.latency_ms:.3f} ms"
                )
    return samples


def warm_up(pgbench: Path, targets: Sequence[Target], seconds: int) -> None:
    """Fills caches (OS page cache after pgbench -i, the proxies' first connections) so the
    first timed run is not the odd one out."""
    for target in targets:
        run_pgbench(pgbench, target, "simple", 1, seconds)
        progress(f"warmed up {target.name}")


def progress(message: str) -> None:
    """Progress goes to stderr, so stdout holds only the report."""
    print(message, file=sys.stderr, flush=True)


# --- results ----------------------------------------------------------------------------------


Key = tuple[str, int, str]  # (mode, clients, target)


@dataclass(frozen=True)
class Medians:
    tps: float
    tps_min: float
    tps_max: float
    latency_ms: float


def summarize(samples: Sequence[Sample]) -> list[Row]:
    """One row per (mode, clients, target), in the order they were measured."""
    groups: dict[Key, list[Sample]] = {}
    for sample in samples:
        groups.setdefault((sample.mode, sample.clients, sample.target), []).append(sample)
    medians = {key: _medians(runs) for key, runs in groups.items()}
    return [_row(key, medians) for key in medians]


def _medians(runs: Sequence[Sample]) -> Medians:
    tps = [run.tps for run in runs]
    latency = statistics.median(run.latency_ms for run in runs)
    return Medians(statistics.median(tps), min(tps), max(tps), latency)


def _row(key: Key, medians: dict[Key, Medians]) -> Row:
    mode, clients, target = key
    own = medians[key]

    def reference(name: str) -> Medians | None:
        """None for a comparison with itself, too: "1.00" and "+0" only clutter the table."""
        return None if name == target else medians.get((mode, clients, name))

    def ratio(name: str) -> float | None:
        ref = reference(name)
        return None if ref is None else own.tps / ref.tps

    def added_us(name: str) -> float | None:
        """Only for one client: with several, latency also holds queueing for the shared CPUs,
        which is not a per-statement cost."""
        ref = reference(name)
        if ref is None or clients != 1:
            return None
        return (own.latency_ms - ref.latency_ms) * 1000

    return Row(
        mode,
        clients,
        target,
        own.tps,
        own.tps_min,
        own.tps_max,
        own.latency_ms,
        ratio("direct"),
        ratio("pgbouncer"),
        added_us("direct"),
        added_us("pgbouncer"),
    )


def render_table(rows: Sequence[Row]) -> str:
    header = [
        "mode",
        "clients",
        "target",
        "tps (median)",
        "tps min–max",
        "latency ms",
        "tps vs direct",
        "tps vs pgbouncer",
        "+µs/stmt vs direct",
        "+µs/stmt vs pgbouncer",
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * 7) + "|"]
    for row in rows:
        cells = [
            row.mode,
            str(row.clients),
            row.target,
            f"{row.tps:.0f}",
            f"{row.tps_min:.0f}–{row.tps_max:.0f}",
            f"{row.latency_ms:.3f}",
            format_optional(row.vs_direct, "{:.2f}"),
            format_optional(row.vs_pgbouncer, "{:.2f}"),
            format_optional(row.added_us_vs_direct, "{:+.0f}"),
            format_optional(row.added_us_vs_pgbouncer, "{:+.0f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_optional(value: float | None, template: str) -> str:
    """A dash for a comparison that does not apply, so the column stays aligned."""
    return "–" if value is None else template.format(value)


def describe_machine(cluster: PostgresCluster, pgbouncer: PgBouncer | None) -> dict[str, str]:
    """What a reader needs to judge the numbers: they only compare within one machine."""
    return {
        "cpus": f"{os.cpu_count()} (nproc {_nproc()})",
        "os": f"{platform.system()} {platform.release()} {platform.machine()}",
        "postgresql": cluster.run_sql("SHOW server_version").strip(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlguard speedups": ", ".join(
            f"{name} {_package_version(name)}" for name in ("sqlglot", "sqlglotc", "uvloop")
        ),
        "pgbouncer": pgbouncer.version() if pgbouncer else "not running (skipped or not asked for)",
    }


def _nproc() -> str:
    result = subprocess.run(["nproc"], capture_output=True, text=True)
    return result.stdout.strip() or "?"


def _package_version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def render_header(machine: dict[str, str], options: Options) -> str:
    lines = [
        "# pgbench: direct vs sqlguard vs pgbouncer",
        "",
        f"command: `{shlex.join(sys.orig_argv)}`",
        "",
    ]
    lines += [f"- {key}: {value}" for key, value in machine.items()]
    lines.append(
        f"- workload: pgbench -S (select-only), scale {options.scale}, {options.seconds} s per "
        f"run, {options.rounds} round(s), medians; targets alternate within each round"
    )
    return "\n".join(lines)


def write_json(
    path: Path, machine: dict[str, str], samples: Sequence[Sample], rows: Sequence[Row]
) -> None:
    report = {
        "command": sys.orig_argv,
        "machine": machine,
        "samples": [asdict(sample) for sample in samples],
        "summary": [asdict(row) for row in rows],
    }
    path.write_text(json.dumps(report, indent=2) + "\n")


# --- orchestration ----------------------------------------------------------------------------


# Given the upstream URL, a context manager that runs a sidecar for as long as it is entered.
SidecarFactory = Callable[[str], contextlib.AbstractContextManager[SidecarProcess]]


def bundled_sidecar(upstream: str) -> SidecarProcess:
    """The sidecar with the bundled rules and otherwise default settings."""
    return SidecarProcess(upstream, RULES_DIR)


def upstream_url(cluster: PostgresCluster) -> str:
    return f"postgresql://{cluster.host}:{cluster.port}/{DBNAME}"


def open_targets(
    stack: contextlib.ExitStack,
    cluster: PostgresCluster,
    names: Sequence[str],
    max_clients: int,
    start_sidecar: SidecarFactory = bundled_sidecar,
) -> tuple[list[Target], PgBouncer | None]:
    """Starts each proxy on the stack, so they stop (before the cluster) however we leave."""
    targets: list[Target] = []
    pgbouncer = None
    for name in names:
        if name == "direct":
            targets.append(Target(name, cluster.host, cluster.port))
        elif name == "sqlguard":
            sidecar = stack.enter_context(start_sidecar(upstream_url(cluster)))
            targets.append(Target(name, sidecar.host, sidecar.port, sidecar_log(sidecar)))
        elif name == "floor":
            floor = stack.enter_context(FloorProxy(cluster.port, FLOOR))
            targets.append(Target(FLOOR, floor.host, floor.port))
        else:
            pgbouncer = start_pgbouncer(stack, cluster, max_clients)
            if pgbouncer is not None:
                targets.append(Target(name, pgbouncer.host, pgbouncer.port, pgbouncer.output))
    return targets, pgbouncer


def sidecar_log(sidecar: SidecarProcess) -> Callable[[], str]:
    return lambda: f"--- sqlguard serve log ---\n{sidecar.output()[-5000:]}"


def start_pgbouncer(
    stack: contextlib.ExitStack, cluster: PostgresCluster, max_clients: int
) -> PgBouncer | None:
    """None, with a note, when pgbouncer is not installed: the other targets still run."""
    binary = find_pgbouncer()
    if binary is None:
        progress("note: no pgbouncer binary (apt-get install pgbouncer): skipping that target")
        return None
    return stack.enter_context(PgBouncer(binary, cluster.port, DBNAME, max_clients))


def run(options: Options) -> None:
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(PostgresCluster())
        progress(f"initializing pgbench data, scale {options.scale}")
        initialize(cluster, options.scale)
        targets, pgbouncer = open_targets(stack, cluster, options.targets, max(options.clients))
        machine = describe_machine(cluster, pgbouncer)
        print(render_header(machine, options), flush=True)
        pgbench = cluster.bin("pgbench")
        if options.warmup > 0:
            warm_up(pgbench, targets, options.warmup)
        plan = Plan(SELECT_ONLY, options.modes, options.clients, options.rounds, options.seconds)
        samples = measure(pgbench, targets, plan)
    rows = summarize(samples)
    print("\n" + render_table(rows))
    if options.json_file is not None:
        write_json(options.json_file, machine, samples, rows)
        progress(f"raw results written to {options.json_file}")


def main(argv: Sequence[str] | None = None) -> int:
    options = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the ExitStack stops every process either way.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        run(options)
    except KeyboardInterrupt:
        progress("interrupted; everything started was stopped")
        return 130
    except RuntimeError as error:  # BenchmarkError, the harness errors, SidecarProcess's
        progress(f"error: {error}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
