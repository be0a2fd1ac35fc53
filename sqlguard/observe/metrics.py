"""Prometheus metrics for one sidecar, fed by cheap calls from the proxy and read on scrape.

Every ``SidecarMetrics`` owns its own ``CollectorRegistry`` (never the process-global one),
so tests, and several sidecars in one process, do not see each other's numbers.

Metric names (Prometheus conventions: counters end in ``_total``, durations in ``_seconds``):

=========================================  ========  =============================================
``sqlguard_statements_total``              counter   messages judged, by ``decision`` and ``rule``
``sqlguard_refusals_total``                counter   refused messages (deny, approval), by ``rule``
``sqlguard_approvals_total``               counter   approval token checks, by ``outcome``
``sqlguard_logins_total``                  counter   logins, by ``user`` and ``result`` (ok/failed)
``sqlguard_connections_active``            gauge     client connections open now
``sqlguard_statement_duration_seconds``    histogram statement time as the client sees it
``sqlguard_sidecar_overhead_seconds``      histogram the part of it the sidecar adds
``sqlguard_rule_reloads_total``            counter   rule reloads, by ``result`` (ok/failed)
``sqlguard_rules_info``                    info      the active rule set ``version`` (one series)
``sqlguard_cache_hits_total``              counter   parse/decision cache hits, by ``cache``
``sqlguard_cache_misses_total``            counter   parse/decision cache misses, by ``cache``
``sqlguard_audit_queue_depth``             gauge     audit records waiting to be written
``sqlguard_audit_write_errors_total``      counter   audit records that failed to be written
``sqlguard_alert_failures_total``          counter   alerts the webhook never received
``sqlguard_spans_dropped_total``           counter   finished spans never handed to the exporter
=========================================  ========  =============================================

Label cardinality is bounded, because every distinct label value is a series Prometheus keeps
forever: each label admits a fixed number of distinct values and counts newcomers beyond that
as ``(other)``. A user name becomes a label value only after a *successful* login: failed
logins carry whatever name a client invents (a scanner's dictionary, or a password typed into
the user field), so failures of names never seen to log in are counted as ``(other)``.

Cache and audit values are owned elsewhere (the firewall's caches, the audit writer); a custom
collector reads them through callables at scrape time instead of copying them on every change.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import accumulate
from typing import Any, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Info
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from sqlguard.policy.model import Decision

log = logging.getLogger("sqlguard.metrics")

T = TypeVar("T")

OTHER = "(other)"
"""The label value for everything beyond a label's cap (parenthesised: no plausible name)."""

CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4
"""The media type of ``SidecarMetrics.render()``: the classic text format every scraper reads."""

# From 10 µs (a cached decision) to 10 s (a slow query): the range the sidecar can see.
LATENCY_BUCKETS = (
    *(1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3),
    *(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)

CacheStats = Callable[[], Mapping[str, tuple[int, int]]]
"""Reads the caches live: cache name -> (hits, misses), both monotonic."""


class LabelCap:
    """Admits at most ``limit`` distinct values of one label; later newcomers become ``(other)``.

    >>> cap = LabelCap(1)
    >>> cap.admit("alice"), cap.admit("bob"), cap.known("alice"), cap.known("carol")
    ('alice', '(other)', 'alice', '(other)')
    """

    def __init__(self, limit: int) -> None:
        self._seen: set[str] = set()
        self._limit = limit

    def admit(self, value: str) -> str:
        """The value itself if it has a series or there is room for one, else ``(other)``."""
        if value not in self._seen and len(self._seen) < self._limit:
            self._seen.add(value)
        return self.known(value)

    def known(self, value: str) -> str:
        """The value itself only if it already has a series: never adds one."""
        return value if value in self._seen else OTHER


class SidecarMetrics:
    """The sidecar's metrics; the recording methods are cheap and do no I/O.

    >>> from sqlguard.policy.model import Action
    >>> metrics = SidecarMetrics()
    >>> metrics.statement(Decision(Action.deny, "no-ddl", "m", "d", "h"), None, 0.0001)
    >>> b'sqlguard_refusals_total{rule="no-ddl"} 1.0' in metrics.render()
    True
    """

    def __init__(
        self,
        *,
        rules_version: str | None = None,
        caches: CacheStats | None = None,
        audit_queue_depth: Callable[[], int] | None = None,
        audit_write_errors: Callable[[], int] | None = None,
        spans_dropped: Callable[[], int] | None = None,
        max_users: int = 200,
        max_rules: int = 1000,
    ) -> None:
        self.registry = CollectorRegistry()
        self._users = LabelCap(max_users)
        self._rules = LabelCap(max_rules)
        self._outcomes = LabelCap(32)
        self._statement_counters: dict[tuple[object, str], Any] = {}
        self._define_traffic()
        self._define_rules(rules_version)
        self.registry.register(
            _LiveCollector(caches, audit_queue_depth, audit_write_errors, spans_dropped)
        )

    def _counter(self, name: str, documentation: str, *labels: str) -> Counter:
        return Counter(name, documentation, labels, registry=self.registry)

    def _histogram(self, name: str, documentation: str) -> LoopHistogram:
        histogram = LoopHistogram(name, documentation, LATENCY_BUCKETS)
        self.registry.register(histogram)
        return histogram

    def _define_traffic(self) -> None:
        self._statements = self._counter(
            "sqlguard_statements", "Messages judged, by decision and rule.", "decision", "rule"
        )
        self._refusals = self._counter(
            "sqlguard_refusals", "Messages refused (deny or approval needed), by rule.", "rule"
        )
        self._approvals = self._counter(
            "sqlguard_approvals", "Approval token checks, by outcome.", "outcome"
        )
        self._logins = self._counter(
            "sqlguard_logins", "Client logins, by user and result (ok/failed).", "user", "result"
        )
        self._alert_failures = Counter(
            "sqlguard_alert_failures",
            "Alerts that could not be delivered (queue full or webhook failing).",
            registry=self.registry,
        )
        self._connections = Gauge(
            "sqlguard_connections_active", "Client connections open now.", registry=self.registry
        )
        self._duration = self._histogram(
            "sqlguard_statement_duration_seconds", "Statement time as the client sees it."
        )
        self._overhead = self._histogram(
            "sqlguard_sidecar_overhead_seconds", "The part of the statement time the sidecar adds."
        )

    def _define_rules(self, rules_version: str | None) -> None:
        self._reloads = self._counter(
            "sqlguard_rule_reloads", "Rule reloads, by result (ok/failed).", "result"
        )
        self._rules_info = Info(
            "sqlguard_rules", "The active rule set version.", registry=self.registry
        )
        if rules_version is not None:
            self._rules_info.info({"version": rules_version})

    def statement(
        self, decision: Decision, duration_s: float | None, overhead_s: float | None
    ) -> None:
        """One judged message; a duration is None when it was not measured (e.g. refused)."""
        key = (decision.action, decision.rule_id)
        counter = self._statement_counters.get(key)
        if counter is None:  # labels() takes a lock and builds a key: once per pair
            rule = self._rules.admit(decision.rule_id)
            counter = self._statements.labels(decision.action.value, rule)
            if len(self._statement_counters) < 4096:
                self._statement_counters[key] = counter
        counter.inc()
        if decision.refused:
            self._refusals.labels(self._rules.admit(decision.rule_id)).inc()
        if duration_s is not None:
            self._duration.observe(duration_s)
        if overhead_s is not None:
            self._overhead.observe(overhead_s)

    def statement_duration(self, duration_s: float) -> None:
        """A statement's result is complete, `duration_s` after it went upstream."""
        self._duration.observe(duration_s)

    def alert_failed(self) -> None:
        """An alert was dropped: the webhook kept failing or its queue was full."""
        self._alert_failures.inc()

    def approval(self, outcome: str) -> None:
        """One approval token check: e.g. approved, invalid, expired, replayed."""
        self._approvals.labels(self._outcomes.admit(outcome)).inc()

    def login(self, user: str, ok: bool) -> None:
        """One login; only a successful one can give a user name its own series."""
        label = self._users.admit(user) if ok else self._users.known(user)
        self._logins.labels(label, "ok" if ok else "failed").inc()

    def connection_opened(self) -> None:
        self._connections.inc()

    def connection_closed(self) -> None:
        self._connections.dec()

    def rules_reloaded(self, ok: bool, version: str) -> None:
        """A reload attempt; ``version`` is the active one afterwards (the old one if it failed)."""
        self._reloads.labels("ok" if ok else "failed").inc()
        self._rules_info.info({"version": version})

    def render(self) -> bytes:
        """The text exposition format (media type ``CONTENT_TYPE``)."""
        return generate_latest(self.registry)


class LoopHistogram(Collector):
    """A histogram observed only from the event loop's thread: a bisect and two additions
    instead of prometheus-client's per-bucket loop and locks (two observations per
    statement, measured at about 4 µs each). A scrape from another thread copies the counts
    in one step under the GIL, so its buckets are always cumulative (the sum may be one
    observation apart).

    >>> histogram = LoopHistogram("t_seconds", "Test.", (0.1, 1.0))
    >>> for value in (0.05, 0.1, 0.5, 7.0):
    ...     histogram.observe(value)
    >>> [(s.labels.get("le"), s.value) for s in next(iter(histogram.collect())).samples]
    [('0.1', 2), ('1.0', 3), ('+Inf', 4), (None, 4), (None, 7.65)]
    """

    def __init__(self, name: str, documentation: str, bounds: tuple[float, ...]) -> None:
        self._name, self._documentation = name, documentation
        self._bounds = bounds
        self._counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self._sum = 0.0
        self._labels = [floatToGoString(bound) for bound in bounds] + ["+Inf"]

    def observe(self, value: float) -> None:
        self._counts[bisect_left(self._bounds, value)] += 1
        self._sum += value

    def collect(self) -> Iterable[Metric]:
        counts, total = list(self._counts), self._sum
        cumulative = list(accumulate(counts))
        family = HistogramMetricFamily(
            self._name,
            self._documentation,
            buckets=list(zip(self._labels, cumulative, strict=True)),
            sum_value=total,
        )
        yield family


class _LiveCollector(Collector):
    """Reads values owned elsewhere at scrape time; a failing source skips only its metrics."""

    def __init__(
        self,
        caches: CacheStats | None,
        queue_depth: Callable[[], int] | None,
        write_errors: Callable[[], int] | None,
        spans_dropped: Callable[[], int] | None,
    ) -> None:
        self._caches = caches
        self._queue_depth = queue_depth
        self._write_errors = write_errors
        self._spans_dropped = spans_dropped

    def collect(self) -> Iterable[Metric]:
        yield from self._cache_families()
        depth = _read(self._queue_depth)
        if depth is not None:
            yield GaugeMetricFamily(
                "sqlguard_audit_queue_depth", "Audit records waiting to be written.", depth
            )
        errors = _read(self._write_errors)
        if errors is not None:
            yield CounterMetricFamily(
                "sqlguard_audit_write_errors", "Audit records that failed to be written.", errors
            )
        dropped = _read(self._spans_dropped)
        if dropped is not None:
            yield CounterMetricFamily(
                "sqlguard_spans_dropped",
                "Finished spans dropped: the exporter fell behind or was down.",
                dropped,
            )

    def _cache_families(self) -> Iterable[Metric]:
        stats = _read(self._caches)
        if stats is None:
            return
        hits = CounterMetricFamily("sqlguard_cache_hits", "Cache hits, by cache.", labels=["cache"])
        misses = CounterMetricFamily(
            "sqlguard_cache_misses", "Cache misses, by cache.", labels=["cache"]
        )
        for name, (hit, miss) in sorted(stats.items()):
            hits.add_metric([name], hit)
            misses.add_metric([name], miss)
        yield hits
        yield misses


def _read(source: Callable[[], T] | None) -> T | None:
    """Call a live source; a broken one must not take the whole scrape down with it."""
    if source is None:
        return None
    try:
        return source()
    except Exception:
        log.exception("a metrics source failed; its metrics are left out of this scrape")
        return None
