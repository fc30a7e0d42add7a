"""Pragmatic Play: the wallet's failures map to the protocol's retry and no-retry codes.

The recorded payloads cannot make the wallet fail, so these two codes are checked at the
adapter's answer: 100 tells Pragmatic to retry, 120 tells it not to.
"""

from __future__ import annotations

import json

import pytest

from tally.providers.pragmatic import PragmaticAdapter
from tally.wallet.model import CallKind, WalletAnswer, WalletCall, WalletError


class _NoSecrets:
    def get(self, name: str) -> str | None:
        return None


@pytest.mark.parametrize(
    ("error", "code"), [(WalletError.UNAVAILABLE, 100), (WalletError.REFUSED, 120)]
)
def test_a_wallet_failure_is_answered_with_the_matching_retry_code(
    error: WalletError, code: int
) -> None:
    call = WalletCall(kind=CallKind.BALANCE, player="p1", echo={"call": "bet"})
    answer = WalletAnswer(call=call, currency="EUR", balance=0, error=error)
    reply = PragmaticAdapter().answer(answer, _NoSecrets())
    assert reply.status == 200
    assert json.loads(reply.body)["error"] == code


def test_cash_is_an_exact_decimal_number_from_minor_units() -> None:
    call = WalletCall(kind=CallKind.BALANCE, player="p1", echo={"call": "balance"})
    answer = WalletAnswer(call=call, currency="EUR", balance=1050)
    reply = PragmaticAdapter().answer(answer, _NoSecrets())
    assert b'"cash":10.50' in reply.body.replace(b" ", b"")
