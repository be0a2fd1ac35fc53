"""Every public corpus item through the proxy, simple and extended protocol: refused exactly
when the shipped rules refuse it offline, with the same rule, and the connection survives."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.firewall import Firewall
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity
from sqlguard.testing import Database
from sqlguard.testing.corpus import CorpusItem, load_corpus
from sqlguard.testing.rawclient import RawClient, Reply
from sqlguard.testing.sidecar import SidecarProcess

pytestmark = pytest.mark.integration
CORPUS = load_corpus()
USER = "corpus_contractor"  # named by no rule file: gets the default (strictest) group


@pytest.fixture(scope="module")
def client(sidecar: SidecarProcess, pg_db: Database) -> Iterator[RawClient]:
    pg_db.cluster.run_sql(f"CREATE ROLE {USER} LOGIN SUPERUSER")
    with RawClient(sidecar.host, sidecar.port, USER, pg_db.dbname) as raw:
        yield raw


@pytest.fixture(scope="module")
def offline() -> Firewall:
    return Firewall(load_rules(DEFAULT_RULES_DIR))


def refusal(reply: Reply) -> dict[str, str] | None:
    """sqlguard's refusal in a reply, if any (server errors do not count)."""
    for error in reply.errors:
        if error.get("M", "").startswith("sqlguard:"):
            return error
    return None


@pytest.mark.skipif(not CORPUS, reason="the corpus is not beside this checkout (../shared)")
@pytest.mark.parametrize("item", CORPUS, ids=[item.id for item in CORPUS])
def test_corpus_item_through_the_proxy(
    item: CorpusItem, client: RawClient, offline: Firewall, pg_db: Database
) -> None:
    expected = offline.judge(item.message, Identity(USER, pg_db.dbname, "", "127.0.0.1"))
    assert expected.refused == (item.expected != "allow"), item.id
    # A Parse carries its text as a C string: a NUL ends it (PostgreSQL then rejects the
    # leftover bytes), so messages with NUL bytes only exist as simple queries.
    senders = [client.simple] if b"\0" in item.message else [client.simple, client.extended]
    for send in senders:
        reply = send(item.message)
        got = refusal(reply)
        if expected.refused:
            assert got is not None, (item.id, send.__name__, reply.errors)
            assert got["C"] == expected.sqlstate and got["M"] == expected.message
            assert got.get("H") == expected.hint
        else:
            assert got is None, (item.id, send.__name__, got)
        if reply.status != b"I":
            client.simple(b"ROLLBACK")
    assert client.simple(b"SELECT 1").errors == []
