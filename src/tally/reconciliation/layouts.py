"""How each provider lays out its report: its column names and kind words mapped onto
Tally's. Pure configuration; the four protocol providers are built in, and a generic
layout reads Tally's own names (the batch report format of ``tally import``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Tally's names for what a report line says. Required ones first.
REQUIRED = ("tx_id", "kind", "operator", "player", "currency", "amount", "occurred_at")
OPTIONAL = ("round_id", "ref")
FIELDS = REQUIRED + OPTIONAL
KINDS = frozenset({"bet", "win", "rollback", "jackpot_win", "bonus_win", "adjustment", "round_net"})


def _same(names: tuple[str, ...]) -> Mapping[str, str]:
    return MappingProxyType({n: n for n in names})


@dataclass(frozen=True, slots=True)
class ReportLayout:
    provider: str
    columns: Mapping[str, str]  # the provider's column -> Tally's field
    kinds: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    # Columns the provider sends that reconciliation does not need (read and ignored).
    ignored: frozenset[str] = frozenset()

    def kind(self, word: str) -> str | None:
        """Tally's kind for the provider's word, or None if it names none."""
        mapped = self.kinds.get(word, word)
        return mapped if mapped in KINDS else None


GENERIC = ReportLayout(
    "*", _same(FIELDS), ignored=frozenset({"game", "game_type", "channel", "region", "agent"})
)

BUILT_IN: Mapping[str, ReportLayout] = MappingProxyType(
    {
        "softswiss": ReportLayout(
            "softswiss",
            MappingProxyType(
                {
                    "action_id": "tx_id",
                    "action": "kind",
                    "casino_id": "operator",
                    "user_id": "player",
                    "game_id": "round_id",  # SoftSwiss calls a round a game
                    "currency": "currency",
                    "amount": "amount",
                    "created_at": "occurred_at",
                    "original_action_id": "ref",
                }
            ),
            ignored=frozenset({"game"}),
        ),
        "pragmatic": ReportLayout(
            "pragmatic",
            MappingProxyType(
                {
                    "reference": "tx_id",
                    "type": "kind",
                    "casinoId": "operator",
                    "userId": "player",
                    "roundId": "round_id",
                    "currency": "currency",
                    "amount": "amount",
                    "timestamp": "occurred_at",
                    "refundedReference": "ref",
                }
            ),
            MappingProxyType(
                {
                    "result": "win",
                    "refund": "rollback",
                    "bonusWin": "bonus_win",
                    "promoWin": "bonus_win",
                    "jackpotWin": "jackpot_win",
                }
            ),
            ignored=frozenset({"gameId"}),
        ),
        "hub88": ReportLayout(
            "hub88",
            MappingProxyType(
                {
                    "transaction_uuid": "tx_id",
                    "type": "kind",
                    "operator_id": "operator",
                    "user": "player",
                    "round": "round_id",
                    "currency": "currency",
                    "amount": "amount",
                    "created_at": "occurred_at",
                    "reference_transaction_uuid": "ref",
                }
            ),
            ignored=frozenset({"game_code"}),
        ),
        "evolution": ReportLayout(
            "evolution",
            MappingProxyType(
                {
                    "transactionId": "tx_id",
                    "type": "kind",
                    "casino": "operator",
                    "userId": "player",
                    "gameId": "round_id",
                    "currency": "currency",
                    "amount": "amount",
                    "timestamp": "occurred_at",
                    "cancelledId": "ref",
                }
            ),
            MappingProxyType(
                {"debit": "bet", "credit": "win", "cancel": "rollback", "promo_payout": "bonus_win"}
            ),
            ignored=frozenset({"table"}),
        ),
    }
)


def layout_for(provider: str, configured: Mapping[str, ReportLayout] | None = None) -> ReportLayout:
    """The provider's layout: configured, built in, or the generic one."""
    if configured and provider in configured:
        return configured[provider]
    return BUILT_IN.get(provider, GENERIC)
