"""Evolution Gaming One Wallet API (casino wallet side, "evo-std-rest" v1): the endpoints
Evolution's live casino calls on the casino's wallet.

What this adapter follows:

- Every call is a JSON ``POST`` with ``?authToken=<api token>`` in the query string; the
  token is compared in constant time with the secret ``auth_token``.
- ``/check``: ``{"sid", "userId", "channel", "uuid"}``: is this session alive? Answer
  ``{"status": "OK", "sid", "uuid"}`` (the same sid: Tally's sids are signed and live for
  the whole game session, so none needs replacing).
- ``/balance``: ``{"sid", "userId", "currency", "game", "uuid"}``.
- ``/debit``: ``{"sid", "userId", "currency", "game": {"id", "type", "details": {"table":
  {"id", "vid"}}}, "transaction": {"id", "refId", "amount"}, "uuid"}``: the stake.
- ``/credit``: the same envelope; ``transaction.refId`` names the debit it settles (an
  amount of 0 is a lost bet).
- ``/cancel``: the same envelope; ``transaction.id`` and ``refId`` are the debit's: Evolution
  cancels a debit it got no answer to.
- ``/promo_payout``: ``{"sid", "userId", "currency", "game", "promoTransaction": {"type",
  "id", "amount"}, "uuid"}``: free-round and promotion payouts, paid as a bonus win (a
  ``JackpotWin`` as a jackpot win).
- Amounts: JSON decimal numbers in currency units (``5.5`` EUR); parsed as Decimal, never a
  float; a digit finer than the currency's minor unit is refused, never rounded.
- Answers: HTTP 200 ``{"status", "balance", "bonus", "uuid"}`` with ``balance`` rendered
  exactly from minor units and ``bonus`` 0 (Tally keeps no bonus money).

Identities: ``refId`` is the bet's identity in Tally: the debit is the bet ``refId``, its
credit the win ``refId`` (one credit per bet), its cancel the rollback ``refId``. Credit and
cancel carry it, so the wallet finds the bet whichever id they were given.

Sessions: ``/check``, ``/balance`` and ``/debit`` carry the ``sid``, which the gateway checks
(INVALID_SID when it is not a live Tally session of that player). ``/credit``, ``/cancel``
and ``/promo_payout`` settle play that was already accepted; Evolution sends them after
the game session may have ended, so their ``sid`` is not checked (the api token is).

Statuses implemented: OK, TEMPORARY_ERROR (the wallet could not commit now: Evolution
retries), INVALID_TOKEN_ID (wrong or missing authToken, or an address not allowed),
INVALID_SID, INVALID_PARAMETER (malformed request, excess precision, unknown player or
currency, a currency other than the sid's), BET_DOES_NOT_EXIST (credit or cancel of a
debit never seen: a cancel is remembered, so that debit is cancelled if it arrives late),
BET_ALREADY_EXIST (a debit whose id was seen before, with the same or other content:
Evolution does not retry debits, so a repeat is a duplicate), BET_ALREADY_SETTLED (a
credit or debit for a bet already cancelled, a cancel after the credit, another credit
with other content),
INSUFFICIENT_FUNDS, FINAL_ERROR_ACTION_FAILED (the ledger refused for good; also a debit
of a game or provider suspended by a risk playbook: One Wallet has no "game disabled"
status), UNKNOWN_ERROR.
Not produced: ACCOUNT_LOCKED and FATAL_ERROR_CLOSE_USER_SESSION (Tally's wallet has no
account lock or forced logout).

Retries: Evolution does not retry a debit (it cancels it); it retries credits and cancels
until answered. A repeated credit or cancel is answered from the wallet's idempotency
(the first result, nothing moves twice); a repeated debit is BET_ALREADY_EXIST.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Mapping
from decimal import Decimal, DecimalException
from typing import Any

from tally.events.model import EventKind
from tally.kernel.currency import is_known
from tally.kernel.money import MoneyError, decimal_to_minor, format_amount
from tally.providers.base import Credentials, Inbound, Outbound, Refusal
from tally.providers.rendering import render
from tally.quarantine.inputs import Reason
from tally.wallet.model import CallKind, OpStatus, WalletAnswer, WalletCall, WalletError, WalletOp

TOKEN_PARAM = "authToken"  # noqa: S105 - the query parameter's name, not a secret
TEXT_MAX = 128  # an id, sid or name longer than this is refused
CALLS = ("check", "balance", "debit", "credit", "cancel", "promo_payout")
_SESSION_CHECKED = frozenset({"check", "balance", "debit"})
_JACKPOT_PROMOS = frozenset({"JackpotWin"})

OK = "OK"
_ERRORS: dict[WalletError | Reason, str] = {
    WalletError.UNKNOWN_PLAYER: "INVALID_PARAMETER",
    WalletError.WRONG_CURRENCY: "INVALID_PARAMETER",
    WalletError.INVALID_SESSION: "INVALID_SID",
    WalletError.INSUFFICIENT_FUNDS: "INSUFFICIENT_FUNDS",
    WalletError.UNKNOWN_REFERENCE: "BET_DOES_NOT_EXIST",
    WalletError.ALREADY_ROLLED_BACK: "BET_ALREADY_SETTLED",
    WalletError.ALREADY_SETTLED: "BET_ALREADY_SETTLED",
    WalletError.CANCELLED: "BET_ALREADY_SETTLED",
    WalletError.REFUSED: "FINAL_ERROR_ACTION_FAILED",
    WalletError.UNAVAILABLE: "TEMPORARY_ERROR",
    # One Wallet has no "game disabled" status: a refusal for good, which Evolution does
    # not retry (it cancels the debit), is the nearest.
    WalletError.GAME_DISABLED: "FINAL_ERROR_ACTION_FAILED",
    Reason.BAD_SIGNATURE: "INVALID_TOKEN_ID",
    Reason.FORBIDDEN: "INVALID_TOKEN_ID",
    Reason.MALFORMED: "INVALID_PARAMETER",
    Reason.OUT_OF_RANGE: "INVALID_PARAMETER",
}
# A conflict means another thing per call: a debit's id reused, or a second credit.
_CONFLICTS = {"debit": "BET_ALREADY_EXIST"}
STATUSES = frozenset(
    {
        OK,
        "TEMPORARY_ERROR",
        "INVALID_TOKEN_ID",
        "INVALID_SID",
        "ACCOUNT_LOCKED",
        "FATAL_ERROR_CLOSE_USER_SESSION",
        "UNKNOWN_ERROR",
        "INVALID_PARAMETER",
        "BET_DOES_NOT_EXIST",
        "BET_ALREADY_EXIST",
        "BET_ALREADY_SETTLED",
        "INSUFFICIENT_FUNDS",
        "FINAL_ERROR_ACTION_FAILED",
    }
)


def _bad(detail: str) -> Refusal:
    return Refusal(Reason.MALFORMED, detail)


def _no_constants(name: str) -> Any:
    # json.loads would otherwise turn NaN and Infinity into floats.
    raise ValueError(f"{name} is not a number")


def _load(body: bytes) -> dict[str, Any]:
    # Decimal itself refuses exponents beyond its limits (1E+99999999999999999999), and
    # a deep enough nesting exhausts the parser's recursion: both are malformed input.
    try:
        data = json.loads(body, parse_float=Decimal, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError, DecimalException) as exc:
        raise _bad(f"body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _bad("body must be a JSON object")
    return data


def _text(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)  # some ids arrive as numbers
    if not isinstance(value, str) or (required and not value) or len(value) > TEXT_MAX:
        raise _bad(f"{name} must be a non-empty string of at most {TEXT_MAX} characters")
    return value


def _object(data: Mapping[str, Any], name: str, *, required: bool = True) -> Mapping[str, Any]:
    value = data.get(name)
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise _bad(f"{name} must be an object")
    return value


def _amount(value: object, currency: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | Decimal):
        raise _bad("amount must be a decimal number")
    try:
        return decimal_to_minor(Decimal(value), currency)
    except MoneyError as exc:
        raise Refusal(Reason.OUT_OF_RANGE, exc.detail) from None


def _uuid_of(body: bytes) -> str:
    """The request's uuid for a refusal's answer, when the body has a readable one."""
    try:
        data = _load(body)
        return _text(data, "uuid")
    except Refusal:
        return ""


class EvolutionAdapter:
    protocol = (
        "Evolution Gaming One Wallet API v1 "
        "(casino wallet: check, balance, debit, credit, cancel, promo_payout)"
    )
    secret_names = ("auth_token",)

    def __init__(self, name: str = "evolution") -> None:
        self.name = name

    # -- verify -----------------------------------------------------------------------------
    def verify(self, inbound: Inbound, credentials: Credentials) -> None:
        token = credentials.get("auth_token")
        if not token:
            raise Refusal(Reason.BAD_SIGNATURE, "no auth_token configured for this provider")
        given = inbound.query.get(TOKEN_PARAM, "")
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise Refusal(Reason.BAD_SIGNATURE, "authToken does not match")

    # -- parse ------------------------------------------------------------------------------
    def parse(self, inbound: Inbound) -> WalletCall:
        action = inbound.action.strip("/")
        if action not in CALLS:
            raise _bad(f"unknown call {action!r}")
        data = _load(inbound.body)
        uuid = _text(data, "uuid")
        player = _text(data, "userId")
        checked = action in _SESSION_CHECKED
        sid = _text(data, "sid", required=checked)
        echo = {"uuid": uuid, "call": action, "sid": sid}
        if action == "check":
            return WalletCall(CallKind.AUTHENTICATE, player, session=sid, echo=echo)
        currency = _text(data, "currency")
        if not is_known(currency):
            raise Refusal(Reason.OUT_OF_RANGE, f"unknown currency {currency!r}")
        game = _object(data, "game", required=action in ("debit", "credit", "cancel"))
        round_id = _text(game, "id", required=False) if game else ""
        table = _object(_object(game, "details", required=False), "table", required=False)
        call = WalletCall(
            CallKind.BALANCE,
            player,
            currency,
            game=_text(table, "id", required=False) if table else "",
            game_type=_text(game, "type", required=False) if game else "",
            session=sid if checked else "",
            request_id=uuid,
            echo=echo,
        )
        if action == "balance":
            return call
        if action == "promo_payout":
            return self._promo(call, data, currency, round_id)
        tx = _object(data, "transaction")
        tx_id, ref = _text(tx, "id"), _text(tx, "refId")
        amount = _amount(tx.get("amount"), currency)
        if action == "debit":
            op = WalletOp(EventKind.BET, ref, amount, round_id=round_id)
        elif action == "credit":
            op = WalletOp(EventKind.WIN, ref, amount, round_id=round_id, ref_bet=ref, settles=ref)
        else:
            op = WalletOp(EventKind.ROLLBACK, ref, 0, round_id=round_id, ref_tx=ref, settles=ref)
        return WalletCall(
            CallKind.TRANSACT,
            call.player,
            call.currency,
            game=call.game,
            game_type=call.game_type,
            session=call.session,
            request_id=uuid,
            ops=(op,),
            echo={**echo, "transaction": tx_id},
        )

    def _promo(
        self, call: WalletCall, data: Mapping[str, Any], currency: str, round_id: str
    ) -> WalletCall:
        promo = _object(data, "promoTransaction")
        kind = _text(promo, "type")
        promo_id = _text(promo, "id")
        amount = _amount(promo.get("amount"), currency)
        won = EventKind.JACKPOT_WIN if kind in _JACKPOT_PROMOS else EventKind.BONUS_WIN
        op = WalletOp(won, f"promo:{promo_id}", amount, round_id=round_id or promo_id)
        return WalletCall(
            CallKind.TRANSACT,
            call.player,
            call.currency,
            game=call.game,
            game_type=call.game_type,
            request_id=call.request_id,
            ops=(op,),
            echo=call.echo,
        )

    # -- answer -----------------------------------------------------------------------------
    def answer(self, answer: WalletAnswer, credentials: Credentials) -> Outbound:
        echo = answer.call.echo
        call, uuid = echo.get("call", ""), echo.get("uuid", "")
        status = self._status(answer, call)
        fields: list[tuple[str, str]] = [("status", json.dumps(status))]
        if call == "check" and status == OK:
            fields.append(("sid", json.dumps(answer.session or echo.get("sid", ""))))
        elif is_known(answer.currency) and answer.error not in _NO_BALANCE:
            # Rendered from minor units as a JSON number with the currency's digits.
            fields.append(("balance", format_amount(answer.balance, answer.currency)))
            fields.append(("bonus", format_amount(0, answer.currency)))
        fields.append(("uuid", json.dumps(uuid)))
        return _render(fields)

    @staticmethod
    def _status(answer: WalletAnswer, call: str) -> str:
        if answer.error is WalletError.CONFLICT:
            return _CONFLICTS.get(call, "BET_ALREADY_SETTLED")
        if answer.error is not None:
            return _ERRORS.get(answer.error, "UNKNOWN_ERROR")
        for outcome in answer.outcomes:
            if call == "debit" and outcome.status is OpStatus.REPEATED:
                # Evolution never retries a debit (it cancels one it got no answer to), so
                # a debit with a known id is a duplicate: BET_ALREADY_EXIST, nothing taken
                # twice. Had the first answer been lost, Evolution's cancel refunds it.
                return "BET_ALREADY_EXIST"
            if outcome.status is OpStatus.UNKNOWN_REFERENCE:
                # A cancel that came before its debit: answered as Evolution documents,
                # remembered by the wallet so the late debit is cancelled.
                return "BET_DOES_NOT_EXIST"
            if outcome.status is OpStatus.CANCELLED:
                return "BET_ALREADY_SETTLED"  # the debit's cancel arrived first
        return OK

    def refuse(self, inbound: Inbound, refusal: Refusal, credentials: Credentials) -> Outbound:
        status = _ERRORS.get(refusal.reason, "UNKNOWN_ERROR")
        return _render(
            [("status", json.dumps(status)), ("uuid", json.dumps(_uuid_of(inbound.body)))]
        )


_NO_BALANCE = frozenset(
    {WalletError.UNKNOWN_PLAYER, WalletError.WRONG_CURRENCY, WalletError.INVALID_SESSION}
)


def _render(fields: list[tuple[str, str]]) -> Outbound:
    """A JSON object from already-encoded values (so amounts stay exact decimal numbers)."""
    return Outbound(200, render(fields))
