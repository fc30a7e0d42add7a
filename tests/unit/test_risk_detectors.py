"""Each risk detector on hand-built streams: what it must say, and what it must not."""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest

from tally.kernel.alerts import AlertSignal, Severity
from tally.risk.detectors.behaviour import (
    BONUS_ABUSE,
    BONUS_RING,
    ROLLBACK_STORM,
    SUBTREE_SHIFT,
    BehaviourLimits,
    BonusAbuse,
    RollbackStorm,
    SubtreeShift,
)
from tally.risk.detectors.model import HOUR, WEEK, Clear, Said, WatchEvent
from tally.risk.detectors.rtp import (
    RTP_DRIFT,
    WIN_OUTLIER,
    ConfigRefused,
    GameRtp,
    RtpLimits,
    RtpWatch,
    volatility_of,
)
from tally.risk.detectors.settlement import PERIOD_SHIFT, WeekOverWeek
from tally.risk.detectors.volume import DROP, LATE, SURGE, VolumeWatch

T0 = 1_773_000_000 - 1_773_000_000 % WEEK  # a week boundary, so hours line up
_ids = itertools.count(1)


def ev(
    kind: str,
    at: int,
    amount: int = 100,
    *,
    round_id: str = "",
    provider: str = "p1",
    region: str = "eu",
    player: str = "pl1",
    game: str = "g1",
    agent: str = "a1",
    operator: str = "op1",
    occurred: int | None = None,
) -> WatchEvent:
    n = next(_ids)
    return WatchEvent(
        f"{provider}:t{n}:{kind}",
        kind,
        provider,
        operator,
        player,
        game,
        round_id or f"r{n}",
        amount,
        "EUR",
        region,
        agent,
        at,
        at if occurred is None else occurred,
    )


def signals(out: list[Said], kind: str) -> list[AlertSignal]:
    return [s for s in out if isinstance(s, AlertSignal) and s.kind == kind]


def clears(out: list[Said], kind: str) -> list[Clear]:
    return [s for s in out if isinstance(s, Clear) and s.kind == kind]


# -- RTP --------------------------------------------------------------------------------


@pytest.mark.parametrize("rtp", ["0", "-0.5", "1.0001", "96"])
def test_a_certified_rtp_outside_zero_to_one_is_refused_when_saved(rtp: str) -> None:
    with pytest.raises(ConfigRefused, match=r"in \(0, 1\]"):
        GameRtp("g1", Decimal(rtp), Decimal("2"))


def test_an_rtp_of_exactly_one_and_a_positive_volatility_are_accepted() -> None:
    assert GameRtp("g1", Decimal("1"), Decimal("0.1")).certified_rtp == 1
    with pytest.raises(ConfigRefused, match="volatility"):
        GameRtp("g1", Decimal("0.9"), Decimal("0"))
    with pytest.raises(ConfigRefused, match="names its game"):
        GameRtp("", Decimal("0.9"), Decimal("1"))


def test_volatility_of_the_simulators_win_law_is_rtp_times_root_of_two_over_h_minus_one() -> None:
    # rtp 0.96, hit rate 0.5: sqrt(2/0.5 - 1) = sqrt(3) = 1.7320508 -> 1.6628
    assert volatility_of(Decimal("0.96"), Decimal("0.5")) == Decimal("1.6628")


def _rounds(watch: RtpWatch, out: list[Said], n: int, pays: int, at: int = T0) -> None:
    for i in range(n):
        rid = f"round{next(_ids)}"
        watch.observe(ev("bet", at + i, 100, round_id=rid), out)
        if pays:
            watch.observe(ev("win", at + i, pays, round_id=rid), out)


def test_a_game_paying_its_certified_rtp_never_alerts() -> None:
    watch = RtpWatch([GameRtp("g1", Decimal("0.96"), Decimal("0.5"))], RtpLimits(window_bets=50))
    out: list[Said] = []
    _rounds(watch, out, 1_000, 96)
    assert out == []


def test_drift_alerts_only_after_two_windows_outside_the_band_and_clears_inside() -> None:
    # 50 bets of 100, vol 0.5: half-width = 3.2905 * 0.5 / sqrt(50) = 0.2327.
    # A game paying 1.3 is outside [0.727, 1.193].
    watch = RtpWatch([GameRtp("g1", Decimal("0.96"), Decimal("0.5"))], RtpLimits(window_bets=50))
    out: list[Said] = []
    _rounds(watch, out, 50, 130)
    assert signals(out, RTP_DRIFT) == []  # one window is a one-in-a-thousand chance
    _rounds(watch, out, 50, 130)
    (alert,) = signals(out, RTP_DRIFT)
    assert alert.key == "g1" and alert.severity is Severity.CRITICAL
    assert alert.evidence["observed_rtp"] == "1.3"
    assert float(alert.evidence["band_high"]) == pytest.approx(0.96 + 0.23268, abs=1e-4)
    # money at risk: this window's returns 6,500 against 0.96 * 5,000 = 4,800
    assert alert.money_at_risk == 1_700 and alert.currency == "EUR"
    _rounds(watch, out, 50, 96)
    assert [c.key for c in clears(out, RTP_DRIFT)] == ["g1"]


def test_a_window_outside_then_one_inside_resets_the_streak() -> None:
    watch = RtpWatch([GameRtp("g1", Decimal("0.96"), Decimal("0.5"))], RtpLimits(window_bets=50))
    out: list[Said] = []
    for pays in (130, 96, 130, 96, 130):
        _rounds(watch, out, 50, pays)
    assert signals(out, RTP_DRIFT) == []


def test_a_game_paying_too_little_is_a_warning() -> None:
    watch = RtpWatch([GameRtp("g1", Decimal("0.96"), Decimal("0.5"))], RtpLimits(window_bets=50))
    out: list[Said] = []
    _rounds(watch, out, 100, 50)
    (alert,) = signals(out, RTP_DRIFT)
    assert alert.severity is Severity.WARNING


def test_a_win_over_the_certified_cap_is_an_outlier_at_once() -> None:
    watch = RtpWatch([GameRtp("g1", Decimal("0.96"), Decimal("2"), max_win_multiplier=500)])
    out: list[Said] = []
    watch.observe(ev("bet", T0, 10, round_id="r-big"), out)
    watch.observe(ev("win", T0 + 2, 5_000, round_id="r-big"), out)  # exactly 500x: fine
    assert out == []
    watch.observe(ev("bet", T0, 10, round_id="r-huge"), out)
    watch.observe(ev("win", T0 + 2, 7_000, round_id="r-huge"), out)
    (alert,) = signals(out, WIN_OUTLIER)
    assert alert.key == "round:r-huge" and alert.money_at_risk == 2_000


def test_the_rtp_watch_takes_back_its_state() -> None:
    games = [GameRtp("g1", Decimal("0.96"), Decimal("0.5"))]
    first = RtpWatch(games, RtpLimits(window_bets=50))
    out: list[Said] = []
    _rounds(first, out, 60, 130)
    second = RtpWatch(games, RtpLimits(window_bets=50))
    second.load(first.state())
    _rounds(first, out, 40, 130)
    again: list[Said] = []
    _rounds(second, again, 40, 130)
    assert [s.key for s in signals(again, RTP_DRIFT)] == [s.key for s in signals(out, RTP_DRIFT)]


# -- volume -----------------------------------------------------------------------------


def _minutes(
    watch: VolumeWatch,
    out: list[Said],
    start: int,
    minutes: int,
    per_minute: dict[str, int],
    region: str = "eu",
) -> int:
    for m in range(start, start + minutes):
        at = T0 + m * 60
        watch.tick(at, out)
        for provider, n in per_minute.items():
            for i in range(n):
                watch.observe(ev("bet", at + i % 60, provider=provider, region=region), out)
    return start + minutes


def test_one_providers_silence_in_a_region_is_a_drop_within_a_minute() -> None:
    watch = VolumeWatch()
    out: list[Said] = []
    m = _minutes(watch, out, 0, 45, {"p1": 20, "p2": 20, "p3": 20})
    assert out == []
    m = _minutes(watch, out, m, 2, {"p2": 20, "p3": 20})
    (alert,) = signals(out, DROP)
    assert alert.key == "eu|p1" and alert.provider == "p1" and alert.region == "eu"
    # The first silent minute closes at the tick of minute m - 1; P(0 | 20) = 2e-9.
    assert alert.at.timestamp() == T0 + (m - 1) * 60
    m = _minutes(watch, out, m, 3, {"p1": 20, "p2": 20, "p3": 20})
    assert [c.key for c in clears(out, DROP)] == ["eu|p1"]


def test_a_lull_that_every_provider_of_the_region_shares_is_not_a_drop() -> None:
    watch = VolumeWatch()
    out: list[Said] = []
    m = _minutes(watch, out, 0, 45, {"p1": 20, "p2": 20, "p3": 20})
    _minutes(watch, out, m, 5, {"p1": 2, "p2": 2, "p3": 2})
    assert signals(out, DROP) == []


def test_too_few_bets_to_tell_is_not_a_drop() -> None:
    watch = VolumeWatch()
    out: list[Said] = []
    m = _minutes(watch, out, 0, 45, {"p1": 1, "p2": 20})
    _minutes(watch, out, m, 5, {"p2": 20})  # P(0 in 5 | 5) = 0.007: could be chance
    assert signals(out, DROP) == []


def test_a_region_tripling_its_traffic_is_a_surge() -> None:
    watch = VolumeWatch()
    out: list[Said] = []
    m = _minutes(watch, out, 0, 45, {"p1": 20, "p2": 20})
    _minutes(watch, out, m, 2, {"p1": 60, "p2": 60})
    assert sorted(a.key for a in signals(out, SURGE)) == ["eu|p1", "eu|p2"]


def test_a_burst_of_events_recorded_long_after_they_occurred_is_a_late_batch() -> None:
    watch = VolumeWatch()
    out: list[Said] = []
    watch.tick(T0, out)
    for i in range(25):
        watch.observe(ev("bet", T0 + 5, occurred=T0 + 5 - 3_600 + i), out)
    watch.tick(T0 + 60, out)
    (alert,) = signals(out, LATE)
    assert alert.key == "eu|p1" and alert.evidence["late_events"] == "25"
    watch.tick(T0 + 120, out)
    assert [c.key for c in clears(out, LATE)] == ["eu|p1"]


def test_hourly_figures_are_kept_as_the_forecasts_series() -> None:
    watch = VolumeWatch()
    out: list[Said] = []
    watch.tick(T0, out)
    watch.observe(ev("bet", T0 + 10, 300, player="a"), out)
    watch.observe(ev("bet", T0 + 20, 200, player="b"), out)
    watch.observe(ev("win", T0 + 30, 450, player="a"), out)
    watch.tick(T0 + HOUR, out)
    hour = str(T0 // HOUR)
    assert watch.history["turnover|eu|p1|EUR"][hour] == 500.0
    assert watch.history["ggr|eu|p1|EUR"][hour] == 50.0
    assert watch.history["players|eu|p1"][hour] == 2.0
    assert watch.history["bets|eu|p1"][hour] == 2.0


class _Corridor:
    def interval(self, series: str, hour: int) -> tuple[float, float, float] | None:
        return (1_000.0, 900.0, 1_100.0) if series.startswith("turnover") else None


def test_an_hour_outside_the_widened_forecast_corridor_is_said_and_then_cleared() -> None:
    watch = VolumeWatch(_Corridor())
    out: list[Said] = []
    watch.tick(T0, out)
    watch.observe(ev("bet", T0 + 10, 1_140), out)  # inside 1,000 ± 100 * 1.5
    watch.tick(T0 + HOUR, out)
    assert out == []
    watch.observe(ev("bet", T0 + HOUR + 10, 1_200), out)
    watch.tick(T0 + 2 * HOUR, out)
    (alert,) = [s for s in out if isinstance(s, AlertSignal)]
    assert alert.key == "turnover|eu|p1|EUR" and alert.evidence["high"] == "1150"
    watch.observe(ev("bet", T0 + 2 * HOUR + 10, 1_000), out)
    watch.tick(T0 + 3 * HOUR, out)
    assert [c.key for c in out if isinstance(c, Clear)] == ["turnover|eu|p1|EUR"]


# -- behaviour --------------------------------------------------------------------------


def _storm_minutes(
    watch: RollbackStorm, out: list[Said], start: int, minutes: int, bets: int, rollbacks: int
) -> int:
    for m in range(start, start + minutes):
        at = T0 + m * 60
        watch.tick(at, out)
        for _ in range(bets):
            watch.observe(ev("bet", at), out)
        for _ in range(rollbacks):
            watch.observe(ev("rollback", at + 5), out)
    return start + minutes


def test_the_usual_rollbacks_are_no_storm_and_a_burst_is_one() -> None:
    watch = RollbackStorm()
    out: list[Said] = []
    m = _storm_minutes(watch, out, 0, 100, 100, 1)  # 1% of bets, the learnt share
    assert out == []
    m = _storm_minutes(watch, out, m, 2, 100, 30)
    (alert,) = signals(out, ROLLBACK_STORM)
    assert alert.key == "eu|p1" and alert.severity is Severity.CRITICAL
    assert alert.evidence["rollbacks"] == "30"
    _storm_minutes(watch, out, m, 5, 100, 1)
    assert [c.key for c in clears(out, ROLLBACK_STORM)] == ["eu|p1"]


def test_a_storm_does_not_teach_itself_as_normal() -> None:
    watch = RollbackStorm()
    out: list[Said] = []
    m = _storm_minutes(watch, out, 0, 50, 100, 1)
    watch.tick(T0 + m * 60, out)  # the last calm minute closes and is learnt
    share = watch.share
    _storm_minutes(watch, out, m, 10, 100, 40)
    assert watch.share == share


def test_a_player_winning_bonuses_far_above_the_population_is_flagged_and_two_are_a_ring() -> None:
    watch = BonusAbuse(BehaviourLimits(window_rounds=10))
    out: list[Said] = []
    at = T0
    # The population: 2% of rounds end in a bonus.
    for i in range(5_000):
        player = f"pop{i % 50}"
        watch.observe(ev("bet", at, player=player, agent="calm"), out)
        if (i // 50) % 50 == i % 50:  # each player's bonus comes once in 50 of its rounds
            watch.observe(ev("bonus_win", at, 500, player=player, agent="calm"), out)
    assert out == []
    for player in ("ring1", "ring2"):
        for i in range(10):
            watch.observe(ev("bet", at, player=player, agent="store9"), out)
            if i % 10 < 7:
                watch.observe(ev("bonus_win", at, 1_000, player=player, agent="store9"), out)
    flagged = signals(out, BONUS_ABUSE)
    assert [a.key for a in flagged] == ["player:ring1", "player:ring2"]
    assert flagged[0].money_at_risk == 7_000
    (ring,) = signals(out, BONUS_RING)
    assert ring.key == "agent:store9" and ring.severity is Severity.CRITICAL
    assert ring.evidence["players"] == "ring1,ring2"


def test_a_subtree_whose_margin_collapses_is_a_shift() -> None:
    watch = SubtreeShift(BehaviourLimits(subtree_warmup_hours=5))
    out: list[Said] = []
    for h in range(30):
        at = T0 + h * HOUR
        watch.tick(at, out)
        pays = 96 if h < 20 else 300  # the subtree starts winning three times its stakes
        for i in range(100):
            watch.observe(ev("bet", at + i, 100, round_id=f"s{h}-{i}"), out)
            watch.observe(ev("win", at + i, pays, round_id=f"s{h}-{i}"), out)
    (alert,) = signals(out, SUBTREE_SHIFT)
    assert alert.key == "a1|EUR"
    # sd of an hour's margin: 3.0 * sqrt(100 * 100²) / 10,000 = 0.3; z = (-2 - 0.04) / 0.3
    # = -6.8; the CUSUM's low side: 6.3 after the first bad hour, 12.6 (> 10) after the
    # second, which closes at hour 22.
    assert alert.at.timestamp() == T0 + 22 * HOUR
    assert alert.evidence["learnt"] == "0.04"  # a shift under way is not learnt


# -- settlement -------------------------------------------------------------------------


def _hour(watch: WeekOverWeek, out: list[Said], at: int, bets: int, stake: int) -> None:
    watch.tick(at, out)
    for i in range(bets):
        watch.observe(ev("bet", at + i, stake, round_id=f"h{at}-{i}"), out)
        watch.observe(ev("win", at + i, stake * 96 // 100, round_id=f"h{at}-{i}"), out)


def test_an_hour_like_the_same_hour_last_week_is_quiet_and_a_doubled_one_is_not() -> None:
    watch = WeekOverWeek({"g1": 1.0})
    out: list[Said] = []
    _hour(watch, out, T0, 100, 100)
    _hour(watch, out, T0 + WEEK, 104, 100)  # turnover 10,400 vs 10,000
    _hour(watch, out, T0 + WEEK + HOUR, 0, 0)
    assert out == []
    # Band for turnover: z(0.99999) * sqrt(Σs² now + then) = 4.4172 * sqrt(1e6 + 1e6) = 6,247
    _hour(watch, out, T0 + 2 * WEEK, 200, 100)
    _hour(watch, out, T0 + 2 * WEEK + HOUR, 0, 0)
    (alert,) = signals(out, PERIOD_SHIFT)
    assert alert.key == "p1|op1|eu|EUR"
    assert alert.evidence["turnover"] == "20000" and alert.evidence["turnover_last_week"] == "10400"
    assert float(alert.evidence["band"]) == pytest.approx(
        4.41717 * (1_040_000 + 2_000_000) ** 0.5, rel=1e-4
    )
    assert alert.money_at_risk == 9_600


def test_the_settlement_watch_forgets_what_is_more_than_a_week_old() -> None:
    watch = WeekOverWeek()
    out: list[Said] = []
    for h in range(3 * 24 * 7):
        _hour(watch, out, T0 + h * HOUR, 1, 100)
    assert len(watch.past) <= 24 * 7 + 1


# -- the learnt detector ---------------------------------------------------------------


def test_half_space_trees_flag_a_window_unlike_the_population_once_warmed_up() -> None:
    from tally.risk.detectors.learned import LearnedBehaviour, LearnedLimits

    watch = LearnedBehaviour(LearnedLimits(warmup_windows=300, forest_window=100, threshold=0.9))
    out: list[Said] = []
    for w in range(600):
        player = f"pop{w % 40}"
        for i in range(10):
            rid = f"n{w}-{i}"
            watch.observe(ev("bet", T0, 100, round_id=rid, player=player), out)
            if i % 3 == 0:
                watch.observe(ev("win", T0, 250, round_id=rid, player=player), out)
            if w % 5 == 0 and i == 0:
                watch.observe(ev("bonus_win", T0, 100, round_id=rid, player=player), out)
    assert signals(out, BONUS_ABUSE) == []
    for i in range(10):
        rid = f"abuse-{i}"
        watch.observe(ev("bet", T0, 100, round_id=rid, player="bot"), out)
        watch.observe(ev("bonus_win", T0, 900, round_id=rid, player="bot"), out)
    (alert,) = signals(out, BONUS_ABUSE)
    # The window closes on its tenth bet, before that round's bonus: 9 of 10.
    assert alert.key == "player:bot" and float(alert.evidence["bonus"]) == 0.9
