"""Properties of what mutes an alert: silences and inhibitions never drop a critical alert
for another key, and nothing muted is ever deleted."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from tally.adapters.memory.backoffice import MemoryBackofficeStore
from tally.adapters.memory.risk import MemoryAlertStore
from tally.audit.chain import Sealer
from tally.audit.service import Auditing
from tally.kernel.alerts import AlertSignal, Severity
from tally.kernel.clock import FixedClock
from tally.risk.alerts import AlertService
from tally.risk.alerts_model import (
    DEFAULT_RULES,
    OUTAGE_KIND,
    Alert,
    AlertStatus,
    Matcher,
    Silence,
    muted_by,
)
from tally.risk.ports import AlertFilter

T = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
PROVIDERS = ("acme", "beta", "gamma")
REGIONS = ("eu", "us", "")
KINDS = (OUTAGE_KIND, "risk.rtp_drift", "risk.volume_drop", "payouts.reservation_expired")

alerts = st.builds(
    lambda i, kind, n, sev, provider, region, status: Alert(
        id=i,
        kind=kind,
        key=f"k{n}",
        severity=sev,
        status=status,
        cause="c",
        opened_at=T,
        updated_at=T,
        last_seen_at=T,
        provider=provider,
        region=region,
    ),
    st.integers(1, 10_000),
    st.sampled_from(KINDS),
    st.integers(0, 8),
    st.sampled_from(list(Severity)),
    st.sampled_from(PROVIDERS),
    st.sampled_from(REGIONS),
    st.sampled_from(list(AlertStatus)),
)


@st.composite
def key_silences(draw: st.DrawFn) -> list[Silence]:
    """Silences each made for one key (plus anything else they like to narrow by)."""
    out = []
    for sid in range(draw(st.integers(0, 4))):
        extra = draw(
            st.lists(
                st.builds(
                    Matcher,
                    st.sampled_from(("provider", "region", "kind", "severity")),
                    st.sampled_from((*PROVIDERS, "eu", "us", "risk.*", "critical", "*")),
                ),
                max_size=2,
            )
        )
        key = f"k{draw(st.integers(0, 8))}"
        out.append(
            Silence(sid + 1, "u", "r", (Matcher("key", key), *extra), T, T + timedelta(hours=1), T)
        )
    return out


@settings(max_examples=200, deadline=None)
@given(st.lists(alerts, max_size=12, unique_by=lambda a: a.id), key_silences(), alerts)
def test_a_silence_never_mutes_a_critical_alert_for_a_key_it_does_not_name(
    others: list[Alert], silences: list[Silence], alert: Alert
) -> None:
    named = {m.value for s in silences for m in s.matchers if m.dimension == "key"}
    reason = muted_by(alert, others, silences, DEFAULT_RULES, T + timedelta(minutes=1))
    if alert.severity is Severity.CRITICAL and alert.key not in named:
        assert not reason.startswith("silence:")
    if reason.startswith("silence:"):
        (s,) = [s for s in silences if f"silence:{s.id}" == reason]
        assert all(m.matches(alert.labels()) for m in s.matchers)


@settings(max_examples=200, deadline=None)
@given(st.lists(alerts, max_size=12, unique_by=lambda a: a.id), alerts)
def test_an_inhibition_mutes_only_what_an_active_outage_of_as_severe_explains(
    others: list[Alert], alert: Alert
) -> None:
    reason = muted_by(alert, others, [], DEFAULT_RULES, T)
    explaining = [
        o
        for o in others
        if o.id != alert.id
        and o.kind == OUTAGE_KIND
        and o.status.active
        and o.provider == alert.provider
        and o.region
        and o.region == alert.region
        and o.severity.order >= alert.severity.order
    ]
    target = alert.kind.startswith(("risk.rtp", "risk.volume"))
    assert bool(reason) == (target and bool(explaining))
    if reason:
        assert int(reason.removeprefix("inhibited:")) in {o.id for o in explaining}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(KINDS),
            st.integers(0, 5),
            st.sampled_from(list(Severity)),
            st.sampled_from(PROVIDERS),
        ),
        min_size=1,
        max_size=20,
    ),
    st.sampled_from(PROVIDERS),
)
def test_muting_never_deletes_an_alert_and_every_unmuted_critical_is_delivered(
    signals: list[tuple[str, int, Severity, str]], silenced_provider: str
) -> None:
    from tally.risk.delivery import Sink, SinkKind, Sinks

    trail = MemoryBackofficeStore(Sealer(b"k" * 32))
    hook = Sink("ops", SinkKind.WEBHOOK, "http://h.example/", "s", Severity.INFO)
    service = AlertService(MemoryAlertStore(), trail, FixedClock(T), sinks=Sinks([hook]))
    service.silence(
        [Matcher("provider", silenced_provider), Matcher("severity", "info")],
        "noisy",
        T + timedelta(hours=1),
        Auditing(trail, "user:u"),
    )
    for kind, n, sev, provider in signals:
        service.signal(
            AlertSignal(kind, f"{provider}:{n}", sev, "c", T, provider=provider, region="eu")
        )
    kept = service.store.alerts(AlertFilter(), limit=1000)
    assert {(a.kind, a.key) for a in kept} == {(k, f"{p}:{n}") for k, n, _, p in signals}
    delivered = {d.alert_id for d in service.store.deliveries(limit=10_000)}
    for a in kept:
        if a.severity is Severity.CRITICAL and not service.muted(a, T):
            assert a.id in delivered
