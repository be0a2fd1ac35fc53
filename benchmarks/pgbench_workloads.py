"""The pgbench workloads beyond select-only: TPC-B-like writes, and texts that never repeat.

`pgbench -S` sends one statement shape, which a proxy that caches its decisions by text
sees again and again under `-M extended`/`prepared`. Applications also send writes inside
transactions (TPC-B-like) and, with literals inlined, a different text every time: the
distinct-text script mixes five shapes with random literals and runs with `-M simple`, so
each statement the sidecar sees is one it has not analysed before.
"""

from __future__ import annotations

from pathlib import Path

from pgbench_compare import Workload

# pgbench's built-in script: BEGIN; UPDATE accounts; SELECT; UPDATE tellers; UPDATE branches;
# INSERT history; END.
TPCB = Workload("pgbench TPC-B-like", ("-b", "tpcb-like"), statements=7)

DISTINCT_SCRIPT = """\
\\set aid random(1, 100000 * :scale)
\\set bid random(1, 1 * :scale)
\\set tid random(1, 10 * :scale)
\\set delta random(-5000, 5000)
SELECT abalance FROM pgbench_accounts WHERE aid = :aid;
SELECT count(*), sum(abalance) FROM pgbench_accounts WHERE aid BETWEEN :aid AND :aid + 10;
UPDATE pgbench_accounts SET abalance = abalance + :delta WHERE aid = :aid;
INSERT INTO pgbench_history (tid, bid, aid, delta, mtime)
  VALUES (:tid, :bid, :aid, :delta, CURRENT_TIMESTAMP);
SELECT b.bid, b.bbalance, a.abalance FROM pgbench_branches b
  JOIN pgbench_accounts a ON a.bid = b.bid WHERE a.aid = :aid;
"""


def distinct_texts(directory: Path, scale: int) -> Workload:
    """Writes the script into `directory`. `-s` matters: with only custom scripts pgbench sets
    :scale to 1, which would draw every aid from the first 100,000 and repeat texts sooner.
    Without BEGIN/END each statement is its own transaction, as with autocommit drivers."""
    script = directory / "distinct-texts.sql"
    script.write_text(DISTINCT_SCRIPT)
    args = ("-f", str(script), "-s", str(scale))
    return Workload("distinct texts (5 shapes)", args, statements=5)
