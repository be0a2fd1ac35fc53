"""TLS on both sides, with certificates the tests make: clients to the sidecar (SSLRequest
and PostgreSQL 17's direct TLS with ALPN), and the sidecar to a PostgreSQL server with ssl=on.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import psycopg
import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.identities.records import Person
from sqlguard.identities.scram import make_verifier
from sqlguard.identities.store import save_people
from sqlguard.testing import TEST_ROLES, Database, PostgresCluster
from sqlguard.testing.certs import CertFiles, issue, make_ca
from sqlguard.testing.postgres import PostgresHarnessError
from sqlguard.testing.sidecar import SidecarProcess, passthrough_upstream
from sqlguard.wire import messages as m

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, CertFiles]:
    """Two CAs: the sidecar's certificate is signed by `ca`; `other` signs nothing we use."""
    directory = tmp_path_factory.mktemp("pki")
    ca = make_ca(subdirectory(directory, "ca"))
    other = make_ca(subdirectory(directory, "other"))
    server = issue(ca, directory, "sidecar", ["localhost", "127.0.0.1"])
    return {"ca": ca, "other": other, "sidecar": server}


def subdirectory(parent: Path, name: str) -> Path:
    path = parent / name
    path.mkdir()
    return path


def write_config(directory: Path, body: str) -> Path:
    config = directory / "sqlguard.yaml"
    config.write_text(body)
    return config


@pytest.fixture(scope="module")
def tls_sidecar(
    pki: dict[str, CertFiles], pg_db: Database, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[SidecarProcess]:
    directory = tmp_path_factory.mktemp("tls-sidecar")
    cert, key = pki["sidecar"].cert, pki["sidecar"].key
    config = write_config(directory, f"tls:\n  cert: {cert}\n  key: {key}\n")
    extra = ("--config", str(config))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        yield sidecar


def dsn(sidecar: SidecarProcess, db: Database, **params: str) -> str:
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"postgresql://postgres@localhost:{sidecar.port}/{db.dbname}?{query}"


def test_psycopg_require_and_verify_full(
    tls_sidecar: SidecarProcess, pg_db: Database, pki: dict[str, CertFiles]
) -> None:
    with psycopg.connect(dsn(tls_sidecar, pg_db, sslmode="require")) as conn:
        assert conn.pgconn.ssl_in_use
        assert conn.execute("SELECT 1").fetchone() == (1,)
    verify = {"sslmode": "verify-full", "sslrootcert": str(pki["ca"].cert)}
    with psycopg.connect(dsn(tls_sidecar, pg_db, **verify)) as conn:
        assert conn.pgconn.ssl_in_use
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("COPY (SELECT 1) TO PROGRAM 'id'")  # the firewall works over TLS


def test_a_wrong_ca_fails_verification(
    tls_sidecar: SidecarProcess, pg_db: Database, pki: dict[str, CertFiles]
) -> None:
    wrong = {"sslmode": "verify-full", "sslrootcert": str(pki["other"].cert)}
    with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
        psycopg.connect(dsn(tls_sidecar, pg_db, **wrong))


def test_psql_and_asyncpg_over_tls(
    tls_sidecar: SidecarProcess, pg_db: Database, pki: dict[str, CertFiles]
) -> None:
    url = dsn(tls_sidecar, pg_db, sslmode="verify-full", sslrootcert=str(pki["ca"].cert))
    out = subprocess.run(
        ["psql", url, "-AtXc", "SELECT 42"], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "42"

    async def asyncpg_query() -> int:
        context = ssl.create_default_context(cafile=str(pki["ca"].cert))
        conn = await asyncpg.connect(
            host="localhost", port=tls_sidecar.port, user="postgres",
            database=pg_db.dbname, ssl=context,
        )  # fmt: skip
        try:
            return int(await conn.fetchval("SELECT 7"))
        finally:
            await conn.close()

    assert asyncio.run(asyncpg_query()) == 7


def test_direct_tls_with_alpn(
    tls_sidecar: SidecarProcess, pg_db: Database, pki: dict[str, CertFiles]
) -> None:
    """PostgreSQL 17's sslnegotiation=direct (psycopg's bundled libpq is new enough)."""
    if psycopg.pq.version() < 170000:
        pytest.skip("this libpq predates sslnegotiation=direct (PostgreSQL 17)")
    params = {"sslmode": "verify-full", "sslrootcert": str(pki["ca"].cert)}
    with psycopg.connect(dsn(tls_sidecar, pg_db, sslnegotiation="direct", **params)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def _direct_tls_socket(port: int, ca: Path, alpn: list[str] | None) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(ca))
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)
    return context.wrap_socket(raw, server_hostname="localhost")


def test_direct_tls_without_alpn_is_refused(
    tls_sidecar: SidecarProcess, pg_db: Database, pki: dict[str, CertFiles]
) -> None:
    with _direct_tls_socket(tls_sidecar.port, pki["ca"].cert, None) as conn:
        conn.sendall(m.StartupMessage(3, 0, {"user": "postgres"}).encode())
        answer = conn.recv(4096)
    assert answer[:1] == b"E" and b"ALPN" in answer
    with _direct_tls_socket(tls_sidecar.port, pki["ca"].cert, ["postgresql"]) as conn:
        conn.sendall(
            m.StartupMessage(3, 0, {"user": "postgres", "database": pg_db.dbname}).encode()
        )
        assert conn.recv(4096)[:1] == b"R"  # AuthenticationOk (trust)


def test_bytes_after_ssl_request_are_refused(tls_sidecar: SidecarProcess) -> None:
    """Plaintext sent before the handshake must not be read as if it were encrypted."""
    ssl_request = b"\x00\x00\x00\x08\x04\xd2\x16\x2f"
    with socket.create_connection(("127.0.0.1", tls_sidecar.port), timeout=10) as sock:
        sock.sendall(ssl_request + m.StartupMessage(3, 0, {"user": "postgres"}).encode())
        answer = sock.recv(4096)
    assert answer[:1] == b"E" and b"unencrypted data after SSL request" in answer


def test_garbage_instead_of_a_handshake_keeps_the_sidecar_serving(
    tls_sidecar: SidecarProcess, pg_db: Database
) -> None:
    with socket.create_connection(("127.0.0.1", tls_sidecar.port), timeout=10) as sock:
        sock.sendall(b"\x00\x00\x00\x08\x04\xd2\x16\x2f")
        assert sock.recv(1) == b"S"
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n" * 10)
        sock.recv(4096)  # an alert, then the close
    with psycopg.connect(dsn(tls_sidecar, pg_db, sslmode="require")) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_required_tls_refuses_plaintext_clients(
    pki: dict[str, CertFiles], pg_db: Database, tmp_path: Path
) -> None:
    cert, key = pki["sidecar"].cert, pki["sidecar"].key
    config = write_config(tmp_path, f"tls:\n  cert: {cert}\n  key: {key}\n  required: true\n")
    extra = ("--config", str(config))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        with pytest.raises(psycopg.OperationalError, match="accepts only TLS"):
            psycopg.connect(dsn(sidecar, pg_db, sslmode="disable"))
        with psycopg.connect(dsn(sidecar, pg_db, sslmode="prefer")) as conn:
            assert conn.pgconn.ssl_in_use


def test_certificates_reload_on_sighup(
    pki: dict[str, CertFiles], pg_db: Database, tmp_path: Path
) -> None:
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    shutil.copy(pki["sidecar"].cert, cert)
    shutil.copy(pki["sidecar"].key, key)
    config = write_config(tmp_path, f"tls:\n  cert: {cert}\n  key: {key}\n")
    with SidecarProcess(
        passthrough_upstream(pg_db), DEFAULT_RULES_DIR, "--config", str(config)
    ) as sidecar:
        old = {"sslmode": "verify-full", "sslrootcert": str(pki["ca"].cert)}
        psycopg.connect(dsn(sidecar, pg_db, **old)).close()
        renewed = issue(pki["other"], subdirectory(tmp_path, "renewed"), "sidecar")
        shutil.copy(renewed.cert, cert)
        shutil.copy(renewed.key, key)
        sidecar.reload()
        new = {"sslmode": "verify-full", "sslrootcert": str(pki["other"].cert)}
        deadline = time.monotonic() + 10
        while True:
            try:
                psycopg.connect(dsn(sidecar, pg_db, **new)).close()
                break
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(dsn(sidecar, pg_db, **old))
        assert "TLS certificates reloaded" in sidecar.output()


# ---- sidecar to upstream ---------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_cluster(pki: dict[str, CertFiles], tmp_path_factory: pytest.TempPathFactory):
    directory = tmp_path_factory.mktemp("pg-tls")
    server = issue(pki["ca"], directory, "postgres", ["localhost", "127.0.0.1"])
    try:
        cluster = PostgresCluster(tls=server).start()
    except PostgresHarnessError as exc:
        if "SSL is not supported by this build" in str(exc):
            pytest.skip(f"this PostgreSQL server was built without OpenSSL: {exc}")
        raise
    yield cluster
    cluster.stop()


def upstream_config(directory: Path, mode: str, ca: Path | None) -> Path:
    body = f"upstream_tls:\n  mode: {mode}\n" + (f"  ca: {ca}\n" if ca else "")
    return write_config(directory, body)


def upstream_url(cluster: PostgresCluster) -> str:
    return f"postgresql://localhost:{cluster.port}/postgres"


@pytest.mark.parametrize("mode", ["require", "verify-ca", "verify-full"])
def test_upstream_tls_modes(
    tls_cluster: PostgresCluster, pki: dict[str, CertFiles], tmp_path: Path, mode: str
) -> None:
    config = upstream_config(tmp_path, mode, None if mode == "require" else pki["ca"].cert)
    with (
        SidecarProcess(upstream_url(tls_cluster), DEFAULT_RULES_DIR, "--config", str(config)) as sc,
        psycopg.connect(sc.dsn("postgres", dbname="postgres")) as conn,
    ):
        row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
        assert row == (True,)


def test_passthrough_scram_with_a_tls_upstream(
    tls_cluster: PostgresCluster, pki: dict[str, CertFiles], tmp_path: Path
) -> None:
    """Over TLS, libpq binds to the certificate it sees (the sidecar's); PostgreSQL would
    check its own and refuse: sqlguard says why and what to do instead."""
    cert, key = pki["sidecar"].cert, pki["sidecar"].key
    config = write_config(
        tmp_path, f"tls:\n  cert: {cert}\n  key: {key}\nupstream_tls:\n  mode: require\n"
    )
    with SidecarProcess(
        upstream_url(tls_cluster), DEFAULT_RULES_DIR, "--config", str(config)
    ) as sc:
        dsn = sc.dsn("scram_user", "scram_pw", "postgres") + "?sslmode=require"
        with pytest.raises(psycopg.OperationalError) as failure:
            psycopg.connect(dsn)  # channel_binding=prefer, libpq's default
        assert "SCRAM channel binding cannot pass through the sidecar" in str(failure.value)
        with psycopg.connect(dsn + "&channel_binding=disable") as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)
        # Plaintext to the sidecar: the upstream's -PLUS offer is not passed on, or libpq
        # would take it for a man in the middle and give up.
        plaintext = sc.dsn("scram_user", "scram_pw", "postgres") + "?sslmode=disable"
        with psycopg.connect(plaintext) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("scram_user",)


def test_managed_login_to_a_tls_upstream_binds_to_its_certificate(
    tls_cluster: PostgresCluster, tmp_path: Path
) -> None:
    """Over TLS PostgreSQL offers SCRAM-SHA-256-PLUS and sqlguard takes it for its own login
    as the mapped role (unit-tested); PostgreSQL hashes its certificate itself, so this
    login succeeds only if sqlguard computed the same tls-server-end-point data."""
    person = Person(
        "alice", ("staff",), make_verifier("alice-pw"), "scram_user", ("*",),
        datetime.now(UTC) + timedelta(days=1), "OPS-1", "dana",
    )  # fmt: skip
    save_people(tmp_path / "identities.yaml", {"alice": person})
    (tmp_path / "scram.secret").write_text(TEST_ROLES["scram_user"][1] + "\n")
    config = write_config(
        tmp_path,
        "identities:\n  store: identities.yaml\n  upstream_roles:\n"
        "    scram_user: {password_file: scram.secret}\n"
        "upstream_tls:\n  mode: require\n",
    )
    with SidecarProcess(
        upstream_url(tls_cluster), DEFAULT_RULES_DIR, "--config", str(config)
    ) as sc:
        with psycopg.connect(sc.dsn("alice", "alice-pw", "postgres")) as conn:
            row = conn.execute(
                "SELECT current_user, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
            ).fetchone()
        assert row == ("scram_user", True)


def test_upstream_with_the_wrong_ca_is_refused_clearly(
    tls_cluster: PostgresCluster, pki: dict[str, CertFiles], tmp_path: Path
) -> None:
    config = upstream_config(tmp_path, "verify-full", pki["other"].cert)
    with SidecarProcess(
        upstream_url(tls_cluster), DEFAULT_RULES_DIR, "--config", str(config)
    ) as sc:
        with pytest.raises(psycopg.OperationalError) as failure:
            psycopg.connect(sc.dsn("postgres", dbname="postgres"))
        message = str(failure.value)
        assert "could not connect to the upstream" in message
        assert "certificate verify failed" in message


def test_upstream_without_tls_is_refused_when_required(pg_db: Database, tmp_path: Path) -> None:
    config = upstream_config(tmp_path, "require", None)
    upstream = f"postgresql://localhost:{pg_db.cluster.port}/{pg_db.dbname}"
    with (
        SidecarProcess(upstream, DEFAULT_RULES_DIR, "--config", str(config)) as sc,
        pytest.raises(psycopg.OperationalError, match="does not accept TLS"),
    ):
        psycopg.connect(sc.dsn("postgres", dbname=pg_db.dbname))


def test_the_login_audit_record_names_the_tls_version(
    pki: dict[str, CertFiles], pg_db: Database, tmp_path: Path
) -> None:
    cert, key = pki["sidecar"].cert, pki["sidecar"].key
    (tmp_path / "audit.key").write_bytes(os.urandom(32))
    config = write_config(
        tmp_path,
        f"tls:\n  cert: {cert}\n  key: {key}\naudit:\n  path: audit.jsonl\n  key_file: audit.key\n",
    )
    extra = ("--config", str(config))
    with SidecarProcess(passthrough_upstream(pg_db), DEFAULT_RULES_DIR, *extra) as sidecar:
        psycopg.connect(dsn(sidecar, pg_db, sslmode="require")).close()
        psycopg.connect(dsn(sidecar, pg_db, sslmode="disable")).close()
    logins = [
        record
        for record in map(json.loads, (tmp_path / "audit.jsonl").read_text().splitlines())
        if record["type"] == "login"
    ]
    tls, plain = (record.get("tls") for record in logins)
    assert tls in ("TLSv1.2", "TLSv1.3") and plain is None
