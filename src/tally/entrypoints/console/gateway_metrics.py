"""The gateway's own metrics, read from its Prometheus endpoint (``tally gateway
--metrics-port``): callbacks per second, mean latency and refusals per provider.

The gateway runs in its own process; the console reads what the gateway exports, as
Prometheus does, from the address given in TALLY_CONSOLE_GATEWAY_METRICS.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tally.entrypoints.console import overview as ov

CALLBACK_PREFIX = "/providers/"


@dataclass(frozen=True, slots=True)
class ProviderSample:
    callbacks: float = 0.0
    refused: float = 0.0  # answered 4xx or 5xx
    seconds_sum: float = 0.0
    seconds_count: float = 0.0


def parse(text: str) -> dict[str, ProviderSample]:
    """Per provider, from the gateway's tally_http_requests and tally_http_request_seconds."""
    calls: dict[str, list[float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            route = sample.labels.get("route", "")
            if not route.startswith(CALLBACK_PREFIX):
                continue
            provider = route[len(CALLBACK_PREFIX) :]
            acc = calls.setdefault(provider, [0.0, 0.0, 0.0, 0.0])
            if sample.name == "tally_http_requests_total":
                acc[0] += sample.value
                if sample.labels.get("status", "200")[:1] in ("4", "5"):
                    acc[1] += sample.value
            elif sample.name == "tally_http_request_seconds_sum":
                acc[2] += sample.value
            elif sample.name == "tally_http_request_seconds_count":
                acc[3] += sample.value
    return {p: ProviderSample(*v) for p, v in sorted(calls.items())}


class GatewayMetrics:
    def __init__(self, url: str, timeout_s: float = 0.5) -> None:
        self.url = url
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._last: tuple[float, dict[str, ProviderSample]] | None = None
        self._rates: dict[str, float] = {}

    def read(self) -> dict[str, ProviderSample] | None:
        try:
            response = httpx.get(self.url, timeout=self.timeout_s)
            response.raise_for_status()
            found = parse(response.text)
        except (httpx.HTTPError, ValueError):
            return None
        now = time.monotonic()
        with self._lock:
            if self._last is not None and now - self._last[0] > 0.2:
                elapsed = now - self._last[0]
                before = self._last[1]
                self._rates = {
                    p: max(0.0, s.callbacks - before.get(p, ProviderSample()).callbacks) / elapsed
                    for p, s in found.items()
                }
            if self._last is None or now - self._last[0] > 0.2:
                self._last = (now, found)
        return found

    def table(self) -> ov.Table:
        found = self.read()
        rows: list[list[ov.Cell]] = []
        for provider, s in (found or {}).items():
            mean_ms = 1000 * s.seconds_sum / s.seconds_count if s.seconds_count else 0.0
            base = f"g.{provider}"
            rows.append(
                [
                    ov.Cell("", provider, numeric=False),
                    ov.Cell(f"{base}.rate", f"{self._rates.get(provider, 0.0):.1f}"),
                    ov.Cell(f"{base}.total", f"{s.callbacks:.0f}"),
                    ov.Cell(f"{base}.refused", f"{s.refused:.0f}"),
                    ov.Cell(f"{base}.latency", f"{mean_ms:.2f}"),
                ]
            )
        empty = "the gateway's metrics could not be read" if found is None else "no callbacks yet"
        return ov.Table(
            "providers",
            "Provider callbacks (gateway)",
            ("provider", "callbacks/s", "callbacks", "refused", "mean latency ms"),
            rows,
            empty=empty,
        )
