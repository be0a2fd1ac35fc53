"""Decision cost per statement: analysis + policy, on cache misses and cache hits.

A realistic mix of what applications and people send (pgbench's statements, ORM-style
reads with joins, scoped writes, transaction control, a few refusals). A miss is a text
never seen before (fresh literals every time, as `pgbench -M simple` sends); a hit is a
text seen before. Run: `python benchmarks/decision_cost.py [--rounds 5] [--statements 2000]`.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import random
import statistics
import time
from collections.abc import Callable

from sqlguard.config import DEFAULT_RULES_DIR
from sqlguard.firewall import Firewall
from sqlguard.policy.loader import load_rules
from sqlguard.policy.model import Identity

IDENTITY = Identity("app_user", "shop", "checkout", "10.0.0.7")

TEMPLATES: list[Callable[[int], str]] = [
    lambda n: f"SELECT abalance FROM pgbench_accounts WHERE aid = {n}",
    lambda n: f"UPDATE pgbench_accounts SET abalance = abalance + {n % 5000} WHERE aid = {n}",
    lambda n: (
        f"INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
        f"VALUES ({n % 10}, 1, {n}, {n % 5000}, CURRENT_TIMESTAMP)"
    ),
    lambda n: (
        "SELECT o.id, o.total, c.name FROM orders o JOIN customers c ON c.id = o.customer_id "
        f"WHERE o.placed_at > now() - interval '{n % 30} days' AND c.id = {n} "
        "ORDER BY o.id LIMIT 50"
    ),
    lambda n: f"DELETE FROM sessions WHERE user_id = {n} AND expires_at < now()",
    lambda n: "BEGIN",
    lambda n: "COMMIT",
    lambda n: (
        f"SELECT count(*) FROM orders WHERE customer_id IN (SELECT id FROM customers "
        f"WHERE email LIKE 'user{n}%')"
    ),
    lambda n: f"DELETE FROM orders WHERE {n} = {n}",  # refused: tautological WHERE
    lambda n: f"DROP TABLE tmp_{n}",  # refused
]


def mix(count: int, seed: int) -> list[bytes]:
    """`count` statements with fresh literals, in a shuffled but reproducible order."""
    rng = random.Random(seed)
    return [TEMPLATES[i % len(TEMPLATES)](rng.randrange(1, 10**9)).encode() for i in range(count)]


def per_statement_us(firewall: Firewall, texts: list[bytes]) -> float:
    started = time.perf_counter_ns()
    for text in texts:
        firewall.judge(text, IDENTITY)
    return (time.perf_counter_ns() - started) / len(texts) / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--statements", type=int, default=2000)
    args = parser.parse_args()
    rules = load_rules(DEFAULT_RULES_DIR)
    misses, hits = [], []
    for round_ in range(args.rounds):
        firewall = Firewall(rules)
        texts = mix(args.statements, seed=round_)
        misses.append(per_statement_us(firewall, texts))
        hits.append(per_statement_us(firewall, texts[: len(texts) // 2]))
    print(f"sqlglot {importlib.metadata.version('sqlglot')}, compiled (sqlglotc): {_compiled()}")
    print(f"rules version {rules.version}; {args.statements} statements x {args.rounds} rounds")
    print("| case | µs per statement (median) | min | max |\n|---|---:|---:|---:|")
    for name, values in (("cache miss (new text)", misses), ("cache hit (seen text)", hits)):
        median = statistics.median(values)
        print(f"| {name} | {median:.1f} | {min(values):.1f} | {max(values):.1f} |")


def _compiled() -> bool:
    import sqlglot.parser

    return sqlglot.parser.__file__.endswith(".so")


if __name__ == "__main__":
    main()
