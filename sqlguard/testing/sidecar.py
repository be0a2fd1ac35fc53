"""Run `sqlguard serve` as a subprocess, the way users run it (tests and benchmarks)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Self
from urllib.parse import quote

if TYPE_CHECKING:
    from sqlguard.testing.postgres import Database


def passthrough_upstream(db: Database) -> str:
    """The --upstream URL for a test database: no credentials, clients log in as themselves."""
    return f"postgresql://{db.cluster.host}:{db.cluster.port}/{db.dbname}"


def wait_listening(
    host: str, port: int, process: subprocess.Popen[bytes], timeout: float
) -> str | None:
    """Poll until a child process accepts connections; else say why it did not."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return "exited early"
        try:
            socket.create_connection((host, port), timeout=0.2).close()
            return None
        except OSError:
            time.sleep(0.05)
    return f"did not listen within {timeout}s"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class SidecarProcess:
    """A `sqlguard serve` child process listening on a free loopback port."""

    host = "127.0.0.1"

    def __init__(
        self,
        upstream: str,
        rules_dir: Path | None = None,
        *extra: str,
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = free_port()
        self.env = env
        self.upstream = upstream
        self.rules_dir = rules_dir
        self.extra = extra
        self.log = Path(tempfile.mkstemp(prefix="sqlguard-", suffix=".log")[1])
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> Self:
        args = [sys.executable, "-m", "sqlguard", "serve", "--listen", f"{self.host}:{self.port}"]
        args += ["--upstream", self.upstream, *self.extra]
        if self.rules_dir is not None:
            args += ["--rules", str(self.rules_dir)]
        with self.log.open("wb") as log:
            self._process = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, env=self.env
            )
        failure = wait_listening(self.host, self.port, self._process, timeout)
        if failure:
            output = self.output()
            self.stop()
            raise RuntimeError(f"sqlguard serve {failure}:\n{output}")
        return self

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None
        self.log.unlink(missing_ok=True)

    def reload(self) -> None:
        assert self._process is not None
        os.kill(self._process.pid, signal.SIGHUP)

    @property
    def pid(self) -> int:
        assert self._process is not None, "the sidecar is not running"
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def dsn(self, user: str = "postgres", password: str | None = None, dbname: str = "") -> str:
        auth = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"
