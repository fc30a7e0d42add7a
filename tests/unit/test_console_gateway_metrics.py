"""The console reads the gateway's callbacks per provider from its Prometheus text."""

from __future__ import annotations

from tally.app.metrics import Metrics
from tally.entrypoints.console.gateway_metrics import parse


def test_callbacks_refusals_and_latency_per_provider() -> None:
    m = Metrics()
    for status, seconds in ((200, 0.010), (200, 0.030), (401, 0.002)):
        m.observe_request("/providers/acme", "POST", status, seconds)
    m.observe_request("/providers/zeta", "POST", 500, 0.5)
    m.observe_request("/v1/accounts/{account_id}", "GET", 200, 0.1)  # not a callback
    found = parse(m.render().decode())
    assert set(found) == {"acme", "zeta"}
    acme = found["acme"]
    assert (acme.callbacks, acme.refused, acme.seconds_count) == (3, 1, 3)
    assert abs(acme.seconds_sum - 0.042) < 1e-9
    assert (found["zeta"].callbacks, found["zeta"].refused) == (1, 1)
