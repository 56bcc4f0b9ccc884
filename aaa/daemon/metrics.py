"""Prometheus metrics of the daemon, on a registry of its own.

Label values are NAS names from our own table, never addresses taken from packets, so a
flood of spoofed sources cannot blow up the series count: unknown clients are one label.
"""

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

_get_ident = threading.get_ident
LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5)


class FastCounter:
    """A labelled counter without a lock: each thread increments a dict of its own.

    prometheus-client's counters take a lock per increment; on the hot path that costs
    more than the rest of the bookkeeping. The auth reader, the reactor and the writer
    threads all count (a drop reason, say), and a shared dict's read-add-store can lose an
    increment when the interpreter switches threads inside it; per-thread dicts cannot,
    and the scrape adds them up.
    """

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self._shards: dict[int, dict[tuple[str, ...], int]] = {}  # by thread identity

    def _new_shard(self) -> dict[tuple[str, ...], int]:
        # setdefault is atomic: the one dict a thread gets is the one it keeps.
        return self._shards.setdefault(_get_ident(), {})

    def inc(self, *label_values: str) -> None:
        values = self._shards.get(_get_ident()) or self._new_shard()
        values[label_values] = values.get(label_values, 0) + 1

    def add(self, amount: int, *label_values: str) -> None:
        values = self._shards.get(_get_ident()) or self._new_shard()
        values[label_values] = values.get(label_values, 0) + amount

    @property
    def values(self) -> dict[tuple[str, ...], int]:
        """Every thread's counts added up, by label values."""
        total: dict[tuple[str, ...], int] = {}
        for shard in list(self._shards.values()):
            for label_values, value in list(shard.items()):  # a copy: others insert meanwhile
                total[label_values] = total.get(label_values, 0) + value
        return total

    def collect(self) -> Metric:
        family = CounterMetricFamily(self.name, self.documentation, labels=list(self.labels))
        for label_values, value in sorted(self.values.items()):
            family.add_metric(list(label_values), value)
        return family


class FastHistogram:
    """A labelled histogram, lock-free: each label's observer is called by one thread only
    (the auth port's by its reader, the accounting port's by the reactor)."""

    def __init__(self, name: str, documentation: str, label: str,
                 buckets: tuple[float, ...] = LATENCY_BUCKETS) -> None:
        self.name, self.documentation, self.label, self.buckets = name, documentation, label, buckets
        self.counts: dict[str, list[int]] = {}
        self.sums: dict[str, float] = {}

    def observer(self, label_value: str) -> Callable[[float], None]:
        counts = self.counts.setdefault(label_value, [0] * (len(self.buckets) + 1))
        self.sums.setdefault(label_value, 0.0)
        buckets, sums = self.buckets, self.sums

        def observe(seconds: float) -> None:
            counts[bisect_left(buckets, seconds)] += 1
            sums[label_value] += seconds

        return observe

    def collect(self) -> Metric:
        family = HistogramMetricFamily(self.name, self.documentation, labels=[self.label])
        for label_value, counts in sorted(self.counts.items()):
            cumulative, total = [], 0
            for bound, count in zip((*map(str, self.buckets), "+Inf"), counts, strict=True):
                total += count
                cumulative.append((bound, total))
            family.add_metric([label_value], cumulative, self.sums[label_value])
        return family


class _FastCollector(Collector):
    def __init__(self, metrics: list[FastCounter | FastHistogram]) -> None:
        self.metrics = metrics

    def collect(self) -> Iterator[Metric]:
        for metric in self.metrics:
            yield metric.collect()


def udp_drops(inode: int) -> int | None:
    """Datagrams the kernel dropped on the UDP socket with this inode because its receive
    buffer was full (the last column of /proc/net/udp); None when not found."""
    key = str(inode)
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            with open(table) as rows:
                for row in rows:
                    parts = row.split()
                    if len(parts) >= 13 and parts[9] == key:
                        return int(parts[-1])
        except (OSError, ValueError):
            continue
    return None


class ReceiveDrops(Collector):
    """aaa_radius_receive_drops_total{port}: the overload shed by the kernel, read at scrape
    time from the sockets' inodes (registered by the composition root)."""

    def __init__(self) -> None:
        self.sockets: dict[str, int] = {}  # port label (auth, acct) -> socket inode

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily("aaa_radius_receive_drops",
                                     "Requests dropped by the kernel: receive buffer full (overload)",
                                     labels=["port"])
        for port, inode in sorted(self.sockets.items()):
            dropped = udp_drops(inode)
            if dropped is not None:
                family.add_metric([port], dropped)
        yield family


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = FastCounter("aaa_radius_requests", "Requests answered",
                                    ("nas", "method", "result"))
        self.drops = FastCounter("aaa_radius_dropped", "Requests dropped without reply",
                                 ("reason", "nas"))
        self.duplicates = FastCounter("aaa_radius_duplicates", "Retransmissions answered from cache",
                                      ("nas",))
        self.latency = FastHistogram("aaa_radius_request_seconds", "Time to answer a request", "port")
        self.authlog_dropped = FastCounter("aaa_authlog_dropped", "Auth-log rows dropped (buffer full)",
                                           ())
        self.acct_requests = FastCounter("aaa_acct_requests", "Accounting requests received for storage",
                                         ("nas", "status"))
        r.register(_FastCollector([self.requests, self.drops, self.duplicates, self.latency,
                                   self.acct_requests, self.authlog_dropped]))
        self.receive_drops = ReceiveDrops()
        r.register(self.receive_drops)
        self.view_services = Gauge("aaa_view_services", "Services in the in-memory view", registry=r)
        self.view_seq = Gauge("aaa_view_seq", "Last change-feed row applied to the view", registry=r)
        self.view_age = Gauge("aaa_view_age_seconds",
                              "Seconds since the view was last confirmed fresh", registry=r)
        self.view_errors = Counter("aaa_view_refresh_errors", "Failed view refreshes", registry=r)
        self.view_from_snapshot = Gauge(
            "aaa_view_from_snapshot",
            "1 while the view is the local snapshot (started with the database down), not yet "
            "checked against the database", registry=r)
        self.view_snapshot_errors = Counter("aaa_view_snapshot_errors",
                                            "Failed writes of the local view snapshot", registry=r)
        self.authlog_depth = Gauge("aaa_authlog_queue_depth", "Auth-log rows waiting", registry=r)
        self.authlog_written = Counter("aaa_authlog_written", "Auth-log rows written", registry=r)
        self.acct_refused = Counter("aaa_acct_refused", "Accounting records the database refused, "
                                    "set aside in <journal>.rejected", registry=r)
        self.authlog_refused = Counter("aaa_authlog_refused", "Auth-log rows the database refused "
                                       "(dropped and logged as authlog_batch_refused)", registry=r)
        self.authlog_write = Histogram("aaa_authlog_write_seconds", "Auth-log batch write time",
                                       buckets=LATENCY_BUCKETS, registry=r)
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
        self.coa = CoaMetrics(r)

    def request(self, nas: str, method: str, result: str) -> None:
        self.requests.inc(nas, method, result)

    def drop(self, reason: str, nas: str) -> None:
        self.drops.inc(reason, nas if reason != "unknown_client" else "unknown")

    def duplicate(self, nas: str) -> None:
        self.duplicates.inc(nas)


COA_LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CoaMetrics:
    """CoA/Disconnect (RFC 5176): what the dispatcher sent and what the NAS answered."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.requests = Counter("aaa_coa_requests", "CoA/Disconnect transmissions by outcome",
                                ["nas", "type", "result"], registry=r)
        self.error_causes = Counter("aaa_coa_error_causes", "Error-Cause values in NAK answers",
                                    ["nas", "cause"], registry=r)
        self.queue = Gauge("aaa_coa_queue_depth", "CoA jobs pending or being sent", registry=r)
        self.latency = Histogram("aaa_coa_latency_seconds", "Time from a transmission to its answer",
                                 ["type"], buckets=COA_LATENCY_BUCKETS, registry=r)
        self.rejected = Counter("aaa_coa_answers_rejected",
                                "Answers ignored: forged, altered, unrelated or late", registry=r)
