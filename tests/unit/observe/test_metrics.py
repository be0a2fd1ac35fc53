"""SidecarMetrics: a scripted session renders to counters Prometheus' own parser reads back."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sqlguard.observe.metrics import OTHER, SidecarMetrics
from sqlguard.policy.model import Action, Decision


def decision(action: Action, rule: str) -> Decision:
    return Decision(action, rule, "message", "detail", "hint")


def samples(metrics: SidecarMetrics) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a render, keyed by name and labels, as a scraper would see them."""
    text = metrics.render().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: SidecarMetrics, name: str, **labels: str) -> float | None:
    return samples(metrics).get((name, frozenset(labels.items())))


def scripted_session(metrics: SidecarMetrics) -> None:
    metrics.connection_opened()
    metrics.connection_opened()
    metrics.login("alice", ok=True)
    metrics.login("alice", ok=False)
    metrics.statement(decision(Action.allow, "default"), 0.002, 0.00005)
    metrics.statement(decision(Action.allow, "default"), 0.004, 0.00007)
    metrics.statement(decision(Action.deny, "no-ddl"), None, 0.00003)
    metrics.statement(decision(Action.require_approval, "big-delete"), None, 0.0001)
    metrics.approval("approved")
    metrics.statement(decision(Action.allow, "big-delete"), 0.5, 0.0002)
    metrics.rules_reloaded(ok=False, version="v1")
    metrics.rules_reloaded(ok=True, version="v2")
    metrics.connection_closed()


def test_counters_match_the_session() -> None:
    metrics = SidecarMetrics(rules_version="v1")
    scripted_session(metrics)
    got = samples(metrics)
    assert (
        got[("sqlguard_statements_total", frozenset({("decision", "allow"), ("rule", "default")}))]
        == 2
    )
    assert value(metrics, "sqlguard_statements_total", decision="deny", rule="no-ddl") == 1
    assert value(metrics, "sqlguard_refusals_total", rule="no-ddl") == 1
    assert value(metrics, "sqlguard_refusals_total", rule="big-delete") == 1
    assert value(metrics, "sqlguard_refusals_total", rule="default") is None
    assert value(metrics, "sqlguard_approvals_total", outcome="approved") == 1
    assert value(metrics, "sqlguard_logins_total", user="alice", result="ok") == 1
    assert value(metrics, "sqlguard_logins_total", user="alice", result="failed") == 1
    assert value(metrics, "sqlguard_connections_active") == 1
    assert value(metrics, "sqlguard_rule_reloads_total", result="ok") == 1
    assert value(metrics, "sqlguard_rule_reloads_total", result="failed") == 1


def test_histograms_count_only_measured_durations() -> None:
    metrics = SidecarMetrics()
    scripted_session(metrics)
    assert value(metrics, "sqlguard_statement_duration_seconds_count") == 3
    assert value(metrics, "sqlguard_sidecar_overhead_seconds_count") == 5
    assert value(metrics, "sqlguard_statement_duration_seconds_bucket", le="1e-05") == 0
    assert value(metrics, "sqlguard_statement_duration_seconds_bucket", le="0.005") == 2
    assert value(metrics, "sqlguard_sidecar_overhead_seconds_bucket", le="0.0001") == 4
    assert value(metrics, "sqlguard_statement_duration_seconds_sum") == pytest.approx(0.506)


def test_exactly_one_rule_version_is_active() -> None:
    metrics = SidecarMetrics(rules_version="v1")
    assert value(metrics, "sqlguard_rules_info", version="v1") == 1
    metrics.rules_reloaded(ok=True, version="v2")
    info = [key for key in samples(metrics) if key[0] == "sqlguard_rules_info"]
    assert info == [("sqlguard_rules_info", frozenset({("version", "v2")}))]


def test_user_labels_are_capped_and_failures_never_add_one() -> None:
    metrics = SidecarMetrics(max_users=2)
    metrics.login("hunter2", ok=False)  # a password typed as the user name must not show up
    for user in ("alice", "bob", "carol", "dave"):
        metrics.login(user, ok=True)
    metrics.login("bob", ok=False)
    users = {dict(labels)["user"] for name, labels in samples(metrics) if "logins" in name}
    assert users == {"alice", "bob", OTHER}
    assert value(metrics, "sqlguard_logins_total", user=OTHER, result="ok") == 2
    assert value(metrics, "sqlguard_logins_total", user=OTHER, result="failed") == 1
    assert value(metrics, "sqlguard_logins_total", user="bob", result="failed") == 1


def test_rule_labels_are_capped() -> None:
    metrics = SidecarMetrics(max_rules=1)
    metrics.statement(decision(Action.deny, "first"), None, None)
    metrics.statement(decision(Action.deny, "second"), None, None)
    assert value(metrics, "sqlguard_refusals_total", rule="first") == 1
    assert value(metrics, "sqlguard_refusals_total", rule=OTHER) == 1


def test_live_sources_are_read_at_scrape_time() -> None:
    caches = {"facts": (3, 1), "decisions": (0, 4)}
    audit = {"depth": 7, "errors": 0, "spans": 0}
    metrics = SidecarMetrics(
        caches=lambda: caches,
        audit_queue_depth=lambda: audit["depth"],
        audit_write_errors=lambda: audit["errors"],
        spans_dropped=lambda: audit["spans"],
    )
    caches["facts"] = (5, 1)
    audit["errors"], audit["spans"] = 2, 9
    assert value(metrics, "sqlguard_cache_hits_total", cache="facts") == 5
    assert value(metrics, "sqlguard_cache_misses_total", cache="decisions") == 4
    assert value(metrics, "sqlguard_audit_queue_depth") == 7
    assert value(metrics, "sqlguard_audit_write_errors_total") == 2
    assert value(metrics, "sqlguard_spans_dropped_total") == 9


def test_a_broken_source_leaves_the_rest_of_the_scrape_intact() -> None:
    def broken() -> int:
        raise RuntimeError("audit writer gone")

    metrics = SidecarMetrics(audit_queue_depth=broken, audit_write_errors=lambda: 1)
    assert value(metrics, "sqlguard_audit_queue_depth") is None
    assert value(metrics, "sqlguard_audit_write_errors_total") == 1


def test_registries_are_private_to_each_instance() -> None:
    first, second = SidecarMetrics(), SidecarMetrics()
    first.connection_opened()
    assert value(second, "sqlguard_connections_active") == 0
