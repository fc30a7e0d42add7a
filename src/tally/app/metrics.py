"""Prometheus metrics of one process, in its own registry (no import-time globals)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    start_http_server,
)

from tally.audit.chain import AuditHead


@dataclass(frozen=True, slots=True)
class ProcessState:
    """What the process holds at a scrape (counts, not money)."""

    quarantine_open: int = 0
    settlement_lag: int = 0
    writer_queue: int = 0
    stores_up: dict[str, bool] = field(default_factory=dict)


LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tally_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tally_http_request_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.commit_latency = Histogram(
            "tally_ledger_commit_seconds",
            "Ledger group-commit latency",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.committed = Counter(
            "tally_ledger_committed_transfers",
            "Transfers committed by the ledger writer",
            registry=self.registry,
        )
        self.audit_head = Gauge(
            "tally_audit_head_seq",
            "The audit chain's head: its sequence number, labelled with its hash. Scraped "
            "and kept elsewhere, it anchors `tally audit verify --anchor SEQ:HASH`.",
            ["hash"],
            registry=self.registry,
        )
        self._audit_head: Callable[[], AuditHead | None] | None = None
        # What the process holds, read at each scrape (publish_state): the console's
        # application and infrastructure layers, and the alerting rules, read these.
        self.quarantine_open = Gauge(
            "tally_input_quarantine_open",
            "Refused inputs kept in the input quarantine and not yet re-driven or dismissed",
            registry=self.registry,
        )
        self.settlement_lag = Gauge(
            "tally_settlement_lag_events",
            "Events in the event log that settlement has not settled yet",
            registry=self.registry,
        )
        self.writer_queue = Gauge(
            "tally_ledger_writer_queue",
            "Submissions waiting for the ledger writer",
            registry=self.registry,
        )
        self.store_up = Gauge(
            "tally_store_up",
            "1 when the store answers, 0 when it does not",
            ["store"],
            registry=self.registry,
        )
        # process_resident_memory_bytes and friends (Linux).
        ProcessCollector(registry=self.registry)
        self._state: Callable[[], ProcessState] | None = None

    def publish_state(self, read: Callable[[], ProcessState]) -> None:
        """Read the process's state with ``read`` at every scrape and publish it."""
        self._state = read

    def publish_audit_head(self, read: Callable[[], AuditHead | None]) -> None:
        """Read the audit chain's head with ``read`` at every scrape and publish it."""
        self._audit_head = read

    def observe_commit(self, transfers: int, seconds: float) -> None:
        self.committed.inc(transfers)
        self.commit_latency.observe(seconds)

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route, method).observe(seconds)

    def render(self) -> bytes:
        if self._audit_head is not None:
            head = self._audit_head()
            self.audit_head.clear()  # one head at a time: the old hash's series ends
            if head is not None:
                self.audit_head.labels(head.hash).set(head.seq)
        if self._state is not None:
            state = self._state()
            self.quarantine_open.set(state.quarantine_open)
            self.settlement_lag.set(state.settlement_lag)
            self.writer_queue.set(state.writer_queue)
            for store, up in state.stores_up.items():
                self.store_up.labels(store).set(1 if up else 0)
        return generate_latest(self.registry)


def serve_metrics(metrics: Metrics, port: int, host: str = "127.0.0.1") -> Callable[[], None]:
    """``metrics`` in Prometheus' text format over HTTP on a port of their own, from a
    thread (for a process with no HTTP API of its own, such as a gateway's core behind its
    fronts). Local only by default: a scraper on the host, not the public. Returns the
    function that stops it."""
    server, thread = start_http_server(port, addr=host, registry=metrics.registry)

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join()

    return stop
