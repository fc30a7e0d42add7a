"""Evolution answers that the recorded payloads cannot show: exact decimal rendering in
each currency's digits, and TEMPORARY_ERROR when the wallet cannot commit now."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tally.kernel.clock import FixedClock
from tally.kernel.errors import RetryableError
from tally.ledger.model import TransferRequest, TransferResult
from tests.support.providers import GatewayWorld, gateway_world

TOKEN = "ZXZvLWFuc3dlcnMtdG9rZW4"
QUERY = {"authToken": TOKEN}


@pytest.fixture
def world(tmp_path: Path) -> Iterator[GatewayWorld]:
    clock = FixedClock(datetime(2026, 3, 2, 12, 0, tzinfo=UTC))
    with gateway_world(tmp_path, clock, {("evolution", "auth_token"): TOKEN}, ["evolution"]) as w:
        yield w


def _call(
    world: GatewayWorld, action: str, player: str, currency: str, amount: str = "", ref: str = ""
) -> bytes:
    sid = world.session("evolution", player, currency)
    body = f'{{"sid":"{sid}","userId":"{player}","currency":"{currency}","uuid":"u-1"'
    if amount:
        body += (
            ',"game":{"id":"g-1","type":"baccarat","details":{"table":{"id":"b-1"}}},'
            f'"transaction":{{"id":"t-{ref}","refId":"{ref}","amount":{amount}}}'
        )
    reply = world.call("evolution", action, (body + "}").encode(), {}, QUERY)
    assert reply.status == 200
    return reply.body


@pytest.mark.parametrize(
    ("currency", "deposit", "rendered"),
    [
        ("EUR", 10, '"balance":0.10,"bonus":0.00'),
        ("EUR", 123456789012, '"balance":1234567890.12,"bonus":0.00'),
        ("JPY", 1500, '"balance":1500,"bonus":0'),
        ("BTC", 1, '"balance":0.00000001,"bonus":0.00000000'),
    ],
)
def test_balances_are_rendered_exactly_as_json_numbers_with_the_currency_digits(
    world: GatewayWorld, currency: str, deposit: int, rendered: str
) -> None:
    world.open_player("p-1", currency, deposit)
    body = _call(world, "balance", "p-1", currency)
    assert rendered in body.decode(), body
    assert json.loads(body)["status"] == "OK"


def test_a_debit_in_the_currencys_smallest_unit_is_taken_exactly(world: GatewayWorld) -> None:
    world.open_player("p-1", "BTC", 100)
    body = _call(world, "debit", "p-1", "BTC", "0.00000099", "r-1")
    assert json.loads(body)["status"] == "OK"
    assert '"balance":0.00000001' in body.decode()
    assert world.balance("p-1", "BTC") == 1


@pytest.mark.parametrize(
    "amount", ["1E+400", "1E-400", "0.123", "-1.00", "1e19", "1E+999999999999999999"]
)
def test_amounts_out_of_range_or_finer_than_a_cent_are_refused_not_rounded(
    world: GatewayWorld, amount: str
) -> None:
    world.open_player("p-1", "EUR", 10_000)
    body = _call(world, "debit", "p-1", "EUR", amount, "r-1")
    assert json.loads(body) == {"status": "INVALID_PARAMETER", "uuid": "u-1"}
    assert world.kept() == ["out_of_range"]
    assert world.balance("p-1", "EUR") == 10_000
    assert world.events() == []


def test_a_wallet_that_cannot_commit_now_answers_temporary_error_so_evolution_retries(
    world: GatewayWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.open_player("p-1", "EUR", 10_000)

    def unavailable(requests: list[TransferRequest]) -> Future[list[TransferResult]]:
        raise RetryableError("ledger busy")

    with monkeypatch.context() as patch:
        patch.setattr(world.wallet.ledger, "submit", unavailable)
        body = _call(world, "debit", "p-1", "EUR", "1.00", "r-1")
    assert json.loads(body)["status"] == "TEMPORARY_ERROR"
    assert world.balance("p-1", "EUR") == 10_000
    assert world.events() == []
    # Once the wallet can commit again the retried call goes through, once.
    body = _call(world, "debit", "p-1", "EUR", "1.00", "r-1")
    assert json.loads(body)["status"] == "OK"
    assert world.balance("p-1", "EUR") == 9_900


def test_a_debit_in_another_currency_than_its_sid_is_an_invalid_parameter_not_an_invalid_sid(
    world: GatewayWorld,
) -> None:
    world.open_player("p-1", "EUR", 1_000)
    sid = world.session("evolution", "p-1", "EUR")
    body = (
        f'{{"sid":"{sid}","userId":"p-1","currency":"USD","uuid":"u-1",'
        '"game":{"id":"g-1","type":"baccarat","details":{"table":{"id":"b-1"}}},'
        '"transaction":{"id":"t-1","refId":"r-1","amount":1.00}}'
    )
    reply = world.call("evolution", "debit", body.encode(), {}, QUERY)
    assert json.loads(reply.body)["status"] == "INVALID_PARAMETER", reply.body
    assert world.balance("p-1") == 1_000


def test_a_debit_repeated_with_the_same_transaction_is_bet_already_exist_and_takes_once(
    world: GatewayWorld,
) -> None:
    # Evolution never retries a debit (it cancels one it got no answer to), so a second
    # debit with the same id is a duplicate, answered as its public implementations do.
    world.open_player("p-1", "EUR", 1_000)
    first = json.loads(_call(world, "debit", "p-1", "EUR", "2.50", "bet-1"))
    again = json.loads(_call(world, "debit", "p-1", "EUR", "2.50", "bet-1"))
    assert first["status"] == "OK"
    assert again["status"] == "BET_ALREADY_EXIST"
    assert world.balance("p-1") == 750
    assert [e.kind.value for e in world.events()] == ["bet"]
