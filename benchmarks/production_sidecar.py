"""The sidecar as production runs it: bundled rules, audit log on, tracing on.

A benchmark of a sidecar with its observability switched off would flatter it: every
statement is also written to the tamper-evident audit log (HMAC chain, fsync per batch) and,
with tracing on, becomes a span exported over OTLP. So each sidecar the benchmark starts gets
a config file with an `audit:` section and the OpenTelemetry environment pointing at a local
sink of its own, and the report says which of these were on and what they wrote. The
breakdown section switches them off one at a time (`sidecar(audit=..., tracing=...)`) to
price each.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

import yaml
from pgbench_compare import RULES_DIR, BenchmarkError

from sqlguard.observe.span_export import otlp_installed
from sqlguard.testing.otlp_sink import OtlpSink
from sqlguard.testing.sidecar import SidecarProcess

AUDIT_FILE = "audit.jsonl"
# When these are unset the SDK's default sampler (parentbased_always_on) keeps every span.
SAMPLER_VARIABLES = ("OTEL_TRACES_SAMPLER", "OTEL_TRACES_SAMPLER_ARG")
PROBLEM_LEVELS = ("warning", "error", "critical")
NO_EXPORTER = "exporter not installed: pip install 'sqlguard[otlp]'"


@dataclass
class SidecarReport:
    """What one sidecar wrote: evidence that auditing really ran, and any complaints it logged
    (a refused statement or a failing exporter would otherwise go unnoticed)."""

    name: str
    audit: bool = True
    tracing: bool = False
    audit_records: int = 0
    audit_bytes: int = 0
    statements: int = 0
    refused: int = 0
    log_levels: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    export_requests: int = 0
    export_bytes: int = 0

    def summary(self) -> str:
        levels = ", ".join(f"{level} {count}" for level, count in sorted(self.log_levels.items()))
        audit = (
            f"audit log {self.audit_records} records, {self.audit_bytes / 2**20:.1f} MiB, "
            f"{self.statements} statements of which {self.refused} refused"
            if self.audit
            else "audit off"
        )
        tracing = (
            f"its OTLP sink got {self.export_requests} export requests, "
            f"{self.export_bytes / 2**20:.1f} MiB of spans"
            if self.tracing
            else "tracing off"
        )
        return f"{self.name}: {audit}; {tracing}; log lines: {levels or 'none'}"


class ProductionSetup:
    """Shared by all sidecars of one benchmark run: the audit key and a temporary directory,
    removed at the end; each sidecar gets its own config, audit log and OTLP sink (so what
    each exported can be told apart)."""

    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        # Without the exporter OTEL_TRACES_EXPORTER=otlp only logs an error and leaves
        # tracing off: asking for it would misreport what ran.
        self.tracing = otlp_installed()
        self.reports: list[SidecarReport] = []
        self._root: Path | None = None

    def __enter__(self) -> Self:
        self._root = Path(tempfile.mkdtemp(prefix="sqlguard-bench-sidecar-"))
        try:
            self._make_key()
        except BaseException:
            shutil.rmtree(self._root, ignore_errors=True)
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        shutil.rmtree(self.root, ignore_errors=True)

    @property
    def root(self) -> Path:
        if self._root is None:
            raise BenchmarkError("ProductionSetup is used outside its `with` block")
        return self._root

    def describe(self) -> list[str]:
        """The header lines saying what was on."""
        lines = [
            f"sidecar: `sqlguard serve --config FILE`, bundled rules ({RULES_DIR.name}/), "
            f"max_connections {self.max_connections}, client connects as `postgres` "
            "(default group: contractors)",
            "audit log: on (every connection, login and statement; HMAC chain; fsync per batch; "
            "fail_closed), one file per sidecar in a temp dir",
        ]
        if not self.tracing:
            lines.append(f"tracing off ({NO_EXPORTER})")
        else:
            sampler = " ".join(
                f"{name}={os.environ[name]}" for name in SAMPLER_VARIABLES if name in os.environ
            )
            lines.append(
                "tracing: on, OTEL_TRACES_EXPORTER=otlp (OTLP/HTTP) to a local sink per sidecar "
                "answering 200, sampler "
                f"{sampler or 'default (parentbased_always_on: every statement a span)'}"
            )
        return lines

    @contextlib.contextmanager
    def sidecar(
        self,
        upstream: str,
        label: str = "",
        *,
        audit: bool = True,
        tracing: bool = True,
        sampler: Mapping[str, str] | None = None,
    ) -> Iterator[SidecarProcess]:
        """A running sidecar with its own config, audit log and OTLP sink; fits
        pgbench_compare's SidecarFactory. `audit`/`tracing` False switch one off (tracing is off
        anyway without the exporter); `sampler` replaces the OTEL_TRACES_SAMPLER* variables of
        our environment ({} for the SDK's default). Its report is taken when it stops, when the
        audit log is complete and the last spans are flushed."""
        number = len(self.reports) + 1
        tracing = tracing and self.tracing
        name = f"sidecar #{number}" + (f" ({label})" if label else "")
        report = SidecarReport(name, audit=audit, tracing=tracing)
        self.reports.append(report)
        directory = self.root / f"sidecar-{number}"
        directory.mkdir()
        config = self._write_config(directory, audit)
        with contextlib.ExitStack() as stack:
            sink = stack.enter_context(OtlpSink()) if tracing else None
            # Runs after the sidecar has stopped, before the sink does.
            stack.callback(_read_sink, sink, report)
            env = _environment(sink, sampler)
            process = SidecarProcess(upstream, RULES_DIR, "--config", str(config), env=env)
            stack.enter_context(process)
            try:
                yield process
            finally:
                _read_log(process.output(), report)
        _read_audit(directory, report)

    def checks(self) -> list[str]:
        """Lines for after the table: what the sidecars wrote and their sinks received."""
        lines = [report.summary() for report in self.reports]
        for report in self.reports:
            lines += [f"{report.name} logged: {problem}" for problem in report.problems]
        return lines

    def _make_key(self) -> None:
        """The way an operator makes one, so the benchmark follows the documented setup."""
        command = [sys.executable, "-m", "sqlguard", "audit", "keygen", "--out"]
        result = subprocess.run(
            [*command, str(self.root / "audit.key")], capture_output=True, text=True
        )
        if result.returncode != 0:
            raise BenchmarkError(f"sqlguard audit keygen failed:\n{result.stderr}")

    def _write_config(self, directory: Path, audit: bool) -> Path:
        settings: dict[str, object] = {"max_connections": self.max_connections}
        if audit:
            settings["audit"] = {"path": AUDIT_FILE, "key_file": str(self.root / "audit.key")}
        config = directory / "config.yaml"
        config.write_text(yaml.safe_dump(settings))
        return config


def _environment(sink: OtlpSink | None, sampler: Mapping[str, str] | None) -> dict[str, str]:
    """A sidecar's environment: ours, plus the OpenTelemetry exporter settings."""
    env = dict(os.environ)
    if sink is None:
        env["OTEL_TRACES_EXPORTER"] = "none"
        return env
    env["OTEL_TRACES_EXPORTER"] = "otlp"
    env["OTEL_EXPORTER_OTLP_ENDPOINT"] = sink.endpoint
    env["OTEL_SERVICE_NAME"] = "sqlguard-benchmark"
    if sampler is not None:
        for name in SAMPLER_VARIABLES:
            env.pop(name, None)
        env.update(sampler)
    return env


def _read_sink(sink: OtlpSink | None, report: SidecarReport) -> None:
    if sink is not None:
        report.export_requests, report.export_bytes = sink.received


def _read_log(output: str, report: SidecarReport, keep: int = 5) -> None:
    """Counts the JSON log lines by level and keeps the first few distinct complaints."""
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            entry = {"level": "unparsed", "message": line}
        if not isinstance(entry, dict):
            continue
        level = str(entry.get("level", "unparsed"))
        report.log_levels[level] += 1
        message = f"{level}: {entry.get('message', '')}"
        if entry.get("error"):  # the traceback: its last line names the exception
            message += f" [{str(entry['error']).strip().splitlines()[-1]}]"
        is_problem = level in (*PROBLEM_LEVELS, "unparsed")
        if is_problem and message not in report.problems and len(report.problems) < keep:
            report.problems.append(message[:500])


def _read_audit(directory: Path, report: SidecarReport) -> None:
    """Size of all files, statements refused (a benchmark whose statements the rules refuse
    measures error replies), and the last record's `seq`, which counts every record written.
    Substring tests, not JSON parsing: records are canonical JSON, and there are millions."""
    files = sorted(directory.glob(AUDIT_FILE + "*"))
    report.audit_bytes = sum(path.stat().st_size for path in files)
    for path in files:
        with path.open("rb") as file:
            for line in file:
                if b'"type":"statement"' in line:
                    report.statements += 1
                    report.refused += b'"decision":"deny"' in line
                    report.refused += b'"decision":"require_approval"' in line
    live = directory / AUDIT_FILE
    lines = _tail(live).splitlines() if live.exists() else []
    with contextlib.suppress(ValueError, KeyError, TypeError):
        report.audit_records = int(json.loads(lines[-1])["seq"]) if lines else 0


def _tail(path: Path, size: int = 65536) -> str:
    with path.open("rb") as file:
        file.seek(max(0, path.stat().st_size - size))
        return file.read().decode(errors="replace")
