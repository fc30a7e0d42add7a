"""Hub88 as its published Operator API shapes the requests and statuses: rollbacks and
balance requests carry no currency, wins must name a bet that stands, and a wrong
currency is a currency error, not a token error."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.providers.test_hub88_protocol import send, tx, world
from tests.support.providers import GatewayWorld


def _without_currency(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "currency"}


def _bet(w: GatewayWorld, tid: str, amount: int) -> dict[str, Any]:
    token = w.session("hub88", "p1", "EUR")
    return send(w, "transaction/bet", tx(tid, amount, token=token))


def test_a_rollback_without_a_currency_voids_its_bet_in_the_players_currency(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        assert _bet(w, "b1", 1_000_000)["status"] == "RS_OK"
        body = _without_currency(tx("rb1", reference_transaction_uuid="b1"))
        del body["amount"]
        answer = send(w, "transaction/rollback", body)
        assert answer["status"] == "RS_OK", answer
        assert answer["currency"] == "EUR" and answer["balance"] == 10_000 * 1_000
        assert w.balance("p1") == 10_000
        assert w.kept() == []


def test_a_rollback_without_a_currency_finds_the_wallet_of_its_bet_among_several(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        w.open_player("p1", "USD", 5_000)
        usd = w.session("hub88", "p1", "USD")
        bet = tx("b1", 100_000, token=usd, currency="USD")
        assert send(w, "transaction/bet", bet)["status"] == "RS_OK"
        body = _without_currency(tx("rb1", reference_transaction_uuid="b1"))
        answer = send(w, "transaction/rollback", body)
        assert answer["status"] == "RS_OK", answer
        assert answer["currency"] == "USD"
        assert w.balance("p1", "USD") == 5_000 and w.balance("p1", "EUR") == 10_000


def test_a_balance_request_without_a_currency_answers_in_the_sessions_currency(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        token = w.session("hub88", "p1", "EUR")
        body = {"user": "p1", "request_uuid": "req-bal", "token": token, "game_code": "g"}
        answer = send(w, "user/balance", body)
        assert answer == {
            "user": "p1",
            "request_uuid": "req-bal",
            "status": "RS_OK",
            "currency": "EUR",
            "balance": 10_000 * 1_000,
        }
        assert w.kept() == []


def test_a_win_for_a_bet_never_seen_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        win = tx("w1", 700_000, reference_transaction_uuid="nobody-bet")
        answer = send(w, "transaction/win", win)
        assert answer["status"] == "RS_ERROR_TRANSACTION_DOES_NOT_EXIST", answer
        assert w.balance("p1") == 10_000
        assert w.events() == []


def test_a_win_for_a_rolled_back_bet_is_refused_and_moves_nothing(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        assert _bet(w, "b1", 1_000_000)["status"] == "RS_OK"
        rollback = tx("rb1", reference_transaction_uuid="b1")
        assert send(w, "transaction/rollback", rollback)["status"] == "RS_OK"
        events = len(w.events())
        win = tx("w1", 700_000, reference_transaction_uuid="b1")
        answer = send(w, "transaction/win", win)
        assert answer["status"] == "RS_ERROR_TRANSACTION_ROLLED_BACK", answer
        assert w.balance("p1") == 10_000
        assert len(w.events()) == events


def test_a_win_for_a_bet_that_stands_is_paid(tmp_path: Path) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        assert _bet(w, "b1", 1_000_000)["status"] == "RS_OK"
        win = tx("w1", 700_000, reference_transaction_uuid="b1")
        assert send(w, "transaction/win", win)["status"] == "RS_OK"
        assert w.balance("p1") == 10_000 - 1_000 + 700


def test_a_bet_in_another_currency_than_its_session_is_a_currency_error_not_a_token_error(
    tmp_path: Path,
) -> None:
    with world(tmp_path) as w:
        w.open_player("p1", "EUR", 10_000)
        token = w.session("hub88", "p1", "EUR")
        bet = tx("b1", 100_000, token=token, currency="USD")
        answer = send(w, "transaction/bet", bet)
        assert answer["status"] == "RS_ERROR_WRONG_CURRENCY", answer
        assert w.balance("p1") == 10_000
        assert json.dumps(answer).count("RS_ERROR_INVALID_TOKEN") == 0
