"""Wall time of bulk transfers through each target: a large result, COPY out and COPY in.

pgbench measures many small round trips; these measure the other case, where one statement
moves a million rows and the proxy's cost is per message and per byte relayed. Each transfer
is one `psql -c` run, timed from start to exit, its output thrown away (stdout is
/dev/null), so the client does the same work whichever target it talks to.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from pgbench_compare import DBNAME, BenchmarkError, Target, progress

from sqlguard.testing.postgres import SUPERUSER, PostgresCluster

SCRATCH_TABLE = "copy_scratch"
ROWS_PER_SCALE = 100_000  # pgbench_accounts rows per unit of pgbench's scale factor


@dataclass(frozen=True)
class Transfer:
    """One psql command. `stdin` feeds COPY FROM STDIN; `reset` runs before each run, untimed
    and directly on the server; `check` after it, to catch a run that moved too few rows."""

    section: str
    name: str
    sql: str
    stdin: Path | None = None
    reset: Callable[[], None] | None = None
    check: Callable[[], None] | None = None


@dataclass(frozen=True)
class Timing:
    section: str
    transfer: str
    target: str
    round: int
    seconds: float


@contextlib.contextmanager
def transfers(
    cluster: PostgresCluster, scale: int, sections: Sequence[str]
) -> Iterator[list[Transfer]]:
    """The transfers of the chosen sections ("stream", "copy"). COPY in needs a table to load
    and a file to load from: both are made directly on the server (the firewall refuses
    CREATE TABLE), the file in a temporary directory removed at the end."""
    rows = scale * ROWS_PER_SCALE
    chosen: list[Transfer] = []
    directory = Path(tempfile.mkdtemp(prefix="sqlguard-bench-copy-"))
    try:
        if "stream" in sections:
            chosen.append(
                Transfer(
                    "stream",
                    f"SELECT * FROM pgbench_accounts ({rows:,} rows)",
                    "SELECT * FROM pgbench_accounts",
                )
            )
        if "copy" in sections:
            chosen.append(
                Transfer(
                    "copy",
                    f"COPY pgbench_accounts TO STDOUT ({rows:,} rows)",
                    "COPY pgbench_accounts TO STDOUT",
                )
            )
            chosen.append(_copy_in(cluster, directory, rows))
        yield chosen
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _copy_in(cluster: PostgresCluster, directory: Path, rows: int) -> Transfer:
    data = directory / "accounts.copy"
    with data.open("wb") as out:
        _psql(
            cluster.bin("psql"),
            cluster.host,
            cluster.port,
            "COPY pgbench_accounts TO STDOUT",
            stdout=out,
            what="dumping pgbench_accounts for COPY FROM STDIN",
        )
    cluster.run_sql(f"CREATE TABLE {SCRATCH_TABLE} (LIKE pgbench_accounts)", dbname=DBNAME)

    def reset() -> None:
        cluster.run_sql(f"TRUNCATE {SCRATCH_TABLE}", dbname=DBNAME)

    def check() -> None:
        loaded = int(cluster.run_sql(f"SELECT count(*) FROM {SCRATCH_TABLE}", dbname=DBNAME))
        if loaded != rows:
            raise BenchmarkError(f"COPY FROM STDIN loaded {loaded} rows, not {rows}")

    name = f"COPY {SCRATCH_TABLE} FROM STDIN ({rows:,} rows)"
    return Transfer("copy", name, f"COPY {SCRATCH_TABLE} FROM STDIN", data, reset, check)


def measure_transfers(
    psql: Path, targets: Sequence[Target], chosen: Sequence[Transfer], rounds: int
) -> list[Timing]:
    """Targets alternate within each round, as in pgbench_compare.measure."""
    timings: list[Timing] = []
    total = len(chosen) * rounds * len(targets)
    for transfer in chosen:
        for round_ in range(1, rounds + 1):
            for target in targets:
                seconds = time_transfer(psql, target, transfer)
                timings.append(
                    Timing(transfer.section, transfer.name, target.name, round_, seconds)
                )
                progress(
                    f"[{len(timings)}/{total}] {transfer.name} round {round_} "
                    f"{target.name}: {seconds:.2f} s"
                )
    return timings


def time_transfer(psql: Path, target: Target, transfer: Transfer) -> float:
    if transfer.reset is not None:
        transfer.reset()
    what = f"{transfer.name} through {target.name}"
    with contextlib.ExitStack() as stack:
        stdin = stack.enter_context(transfer.stdin.open("rb")) if transfer.stdin else None
        started = time.perf_counter()
        _psql(
            psql,
            target.host,
            target.port,
            transfer.sql,
            stdin=stdin,
            what=what,
            diagnostics=target.diagnostics,
        )
        elapsed = time.perf_counter() - started
    if transfer.check is not None:
        transfer.check()
    return elapsed


def _psql(
    psql: Path,
    host: str,
    port: int,
    sql: str,
    what: str,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | int = subprocess.DEVNULL,
    diagnostics: Callable[[], str] = lambda: "",
) -> None:
    """-X: no ~/.psqlrc; -A -t: the cheapest output format, so psql's own formatting weighs
    as little as possible against the proxy's work."""
    command = [
        str(psql),
        "-X",
        "-q",
        "-A",
        "-t",
        "-v",
        "ON_ERROR_STOP=1",
        "-h",
        host,
        "-p",
        str(port),
        "-U",
        SUPERUSER,
        "-d",
        DBNAME,
        "-c",
        sql,
    ]
    try:
        result = subprocess.run(
            command,
            stdin=stdin or subprocess.DEVNULL,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
            timeout=900,
        )
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkError(f"{what} hung for 900 s\n{diagnostics()}") from exc
    if result.returncode != 0:
        raise BenchmarkError(
            f"{what} failed (psql exit {result.returncode}):\n{result.stderr}\n{diagnostics()}"
        )
