"""Prometheus metrics of the daemon, on a registry of its own.

Label values are NAS names from our own table, never addresses taken from packets, so a
flood of spoofed sources cannot blow up the series count: unknown clients are one label.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("aaa_radius_requests", "Requests answered",
                                ["nas", "method", "result"], registry=r)
        self.drops = Counter("aaa_radius_dropped", "Requests dropped without reply",
                             ["reason", "nas"], registry=r)
        self.duplicates = Counter("aaa_radius_duplicates", "Retransmissions answered from cache",
                                  ["nas"], registry=r)
        self.latency = Histogram("aaa_radius_request_seconds", "Time to answer a request",
                                 ["port"], buckets=LATENCY_BUCKETS, registry=r)
        self.view_services = Gauge("aaa_view_services", "Services in the in-memory view", registry=r)
        self.view_seq = Gauge("aaa_view_seq", "Last change-feed row applied to the view", registry=r)
        self.view_age = Gauge("aaa_view_age_seconds",
                              "Seconds since the view was last confirmed fresh", registry=r)
        self.view_errors = Counter("aaa_view_refresh_errors", "Failed view refreshes", registry=r)
        self.authlog_depth = Gauge("aaa_authlog_queue_depth", "Auth-log rows waiting", registry=r)
        self.authlog_dropped = Counter("aaa_authlog_dropped", "Auth-log rows dropped (queue full)",
                                       registry=r)
        self.authlog_written = Counter("aaa_authlog_written", "Auth-log rows written", registry=r)
        self.authlog_write = Histogram("aaa_authlog_write_seconds", "Auth-log batch write time",
                                       buckets=LATENCY_BUCKETS, registry=r)
        self.acct_requests = Counter("aaa_acct_requests", "Accounting requests received for storage",
                                     ["nas", "status"], registry=r)
        self.acct_group_size = Histogram("aaa_acct_group_size", "Records per group commit",
                                         buckets=(1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
                                         registry=r)
        self.acct_commit = Histogram("aaa_acct_commit_seconds", "Group commit time",
                                     buckets=LATENCY_BUCKETS, registry=r)
        self.acct_queue = Gauge("aaa_acct_queue_depth", "Accounting records waiting to commit",
                                registry=r)
        self.acct_journal_records = Gauge("aaa_acct_journal_records",
                                          "Records in the local journal (database away)", registry=r)
        self.acct_journal_age = Gauge("aaa_acct_journal_age_seconds",
                                      "Age of the oldest journaled record", registry=r)
        self.acct_replayed = Counter("aaa_acct_replayed", "Journal records replayed", registry=r)
        self._request_children: dict[tuple[str, str, str], Counter] = {}
        self._drop_children: dict[tuple[str, str], Counter] = {}

    def request(self, nas: str, method: str, result: str) -> None:
        key = (nas, method, result)
        child = self._request_children.get(key)
        if child is None:
            child = self._request_children[key] = self.requests.labels(*key)
        child.inc()

    def drop(self, reason: str, nas: str) -> None:
        key = (reason, nas if reason != "unknown_client" else "unknown")
        child = self._drop_children.get(key)
        if child is None:
            child = self._drop_children[key] = self.drops.labels(*key)
        child.inc()

    def duplicate(self, nas: str) -> None:
        self.duplicates.labels(nas).inc()
