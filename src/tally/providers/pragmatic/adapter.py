"""Pragmatic Play Seamless Wallet API: the casino operator's wallet endpoints.

What this adapter follows (Pragmatic Play's integration guide for operators):

- Every call is a form-encoded ``POST`` (``application/x-www-form-urlencoded``) to
  ``<call>.html``. ``hash`` = MD5 hex of all other parameters sorted by name and joined
  as ``name=value&name=value``, followed directly by the operator's secret key (secret
  ``secret_key``); compared in constant time. Parameters with empty values take part.
- ``authenticate.html`` (``token``, ``providerId``): who is this; answers ``userId``,
  ``currency``, ``cash``, ``bonus``, ``token``.
- ``balance.html`` (``userId``): ``currency``, ``cash``, ``bonus``.
- ``bet.html`` (``userId``, ``gameId``, ``roundId``, ``amount``, ``reference``,
  ``timestamp``, ``roundDetails``, ``token``?): the stake. A bet older than a named window
  (by its ``timestamp``) is refused with error 3, as the protocol allows.
- ``result.html`` (same, ``amount`` may be 0): the round's win. Pragmatic retries it.
- ``bonusWin.html`` (``amount``, ``reference``, ``bonusCode``): a free-round win.
- ``jackpotWin.html`` (``jackpotId``, ``amount``, ``reference``): a jackpot win.
- ``promoWin.html`` (``campaignId``, ``campaignType``, ``amount``, ``currency``,
  ``reference``): a promotion payout, as a bonus win.
- ``refund.html`` (``reference`` of the bet): the bet's stake back. A refund of a bet the
  operator never saw is answered with success, as the guide asks; it is remembered, so
  that bet, arriving later, is cancelled (answered with success, nothing taken).
- ``endRound.html`` (``gameId``, ``roundId``): the round is over.
- ``adjustment.html`` (``amount`` may be negative, ``reference``): a correction.
- Amounts: decimal strings in currency units (``"10.50"``), parsed exactly; a digit finer
  than the currency's minor unit is refused, never rounded. ``timestamp``: milliseconds
  since the epoch (UTC), the event's time.
- Answers: HTTP 200, JSON: ``{"transactionId", "currency", "cash", "bonus", "usedPromo",
  "error": 0, "description": "Success"}`` with ``cash`` an exact decimal number.

Error codes implemented: 0 success; 1 insufficient balance; 2 player not found (unknown
player or currency); 3 bet not allowed (a stale bet); 4 player authentication failed
(token invalid or expired); 5 invalid hash code (also an address not allowed); 7 bad
parameters (malformed, excess precision, a reference reused with other content); 100
internal server error (the wallet could not commit now: Pragmatic retries); 120 internal
server error, not to be retried (the ledger refused for good). 8 game not found or
disabled (a game or provider suspended by a risk playbook). Not produced: 6 player
frozen, 50 bet limit reached (Tally has no such rules yet).

Retries: a repeated request with the same ``reference`` is answered from the wallet's
idempotency with the first result. Pragmatic retries result, bonusWin, jackpotWin,
promoWin, refund and endRound until answered; a bet with no answer is refunded.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from tally.events.model import EventKind
from tally.kernel.currency import is_known
from tally.providers.base import Credentials, Inbound, Outbound, Refusal
from tally.providers.rendering import number, render, text
from tally.quarantine.inputs import Reason
from tally.wallet.model import CallKind, WalletAnswer, WalletCall, WalletError, WalletOp

CALLS = (
    "authenticate",
    "balance",
    "bet",
    "result",
    "bonusWin",
    "jackpotWin",
    "promoWin",
    "refund",
    "endRound",
    "adjustment",
)
BET_WINDOW = timedelta(minutes=10)  # a bet stamped longer ago than this is refused
PARAM_MAX = 256  # characters in a parameter value
PARAMS_MAX = 40  # parameters in one request
_MONEY_CALLS = {
    "bet": EventKind.BET,
    "result": EventKind.WIN,
    "bonusWin": EventKind.BONUS_WIN,
    "jackpotWin": EventKind.JACKPOT_WIN,
    "promoWin": EventKind.BONUS_WIN,
    "adjustment": EventKind.ADJUSTMENT,
}
_ERRORS: dict[WalletError | Reason, tuple[int, str]] = {
    WalletError.INSUFFICIENT_FUNDS: (1, "Insufficient balance"),
    WalletError.UNKNOWN_PLAYER: (2, "Player not found"),
    WalletError.WRONG_CURRENCY: (2, "Player not found"),
    WalletError.INVALID_SESSION: (4, "Player authentication failed"),
    WalletError.CONFLICT: (7, "Bad parameters: reference reused with other content"),
    WalletError.UNAVAILABLE: (100, "Internal server error"),
    WalletError.BAD_AMOUNT: (7, "Bad parameters: amount finer than the currency allows"),
    WalletError.REFUSED: (120, "Internal server error"),
    WalletError.GAME_DISABLED: (8, "Game is not found or disabled"),
    Reason.BAD_SIGNATURE: (5, "Invalid hash code"),
    Reason.FORBIDDEN: (5, "Invalid hash code"),
    Reason.STALE: (3, "Bet is not allowed"),
    Reason.MALFORMED: (7, "Bad parameters"),
    Reason.OUT_OF_RANGE: (7, "Bad parameters"),
}
_UNKNOWN = (120, "Internal server error")
_DECIMAL = re.compile(r"^-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,18})?$")


def signature(params: dict[str, str], secret: str) -> str:
    """The protocol's hash: MD5 of the sorted ``name=value`` pairs, then the secret."""
    payload = "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "hash")
    return hashlib.md5((payload + secret).encode(), usedforsecurity=False).hexdigest()


def _params(body: bytes) -> dict[str, str]:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refusal(Reason.MALFORMED, f"not a form body: {exc}") from None
    if len(pairs) > PARAMS_MAX:
        raise Refusal(Reason.MALFORMED, f"more than {PARAMS_MAX} parameters")
    params: dict[str, str] = {}
    for name, value in pairs:
        if name in params:
            raise Refusal(Reason.MALFORMED, f"{name} given twice")
        if len(value) > PARAM_MAX:
            raise Refusal(Reason.MALFORMED, f"{name} longer than {PARAM_MAX} characters")
        params[name] = value
    return params


def _need(params: dict[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise Refusal(Reason.MALFORMED, f"{name} is required")
    return value


class PragmaticAdapter:
    protocol = "Pragmatic Play Seamless Wallet API (operator side, form + MD5 hash)"
    secret_names = ("secret_key",)

    def __init__(self, name: str = "pragmatic") -> None:
        self.name = name

    def _call(self, inbound: Inbound) -> str:
        action = inbound.action.strip("/")
        call = action[: -len(".html")] if action.endswith(".html") else action
        if call not in CALLS:
            raise Refusal(Reason.MALFORMED, f"unknown call {action!r}")
        return call

    # -- verify -----------------------------------------------------------------------------
    def verify(self, inbound: Inbound, credentials: Credentials) -> None:
        secret = credentials.get("secret_key")
        if not secret:
            raise Refusal(Reason.BAD_SIGNATURE, "no secret_key configured for this provider")
        params = _params(inbound.body)
        given = params.get("hash", "").lower()
        if not hmac.compare_digest(given.encode(), signature(params, secret).encode()):
            raise Refusal(Reason.BAD_SIGNATURE, "hash does not match the parameters")

    # -- parse ------------------------------------------------------------------------------
    def parse(self, inbound: Inbound) -> WalletCall:
        call = self._call(inbound)
        params = _params(inbound.body)
        echo = {"call": call, "reference": params.get("reference", "")}
        if call == "authenticate":
            return WalletCall(CallKind.AUTHENTICATE, "", session=_need(params, "token"), echo=echo)
        player = _need(params, "userId")
        currency = params.get("currency", "").upper()
        if currency and not is_known(currency):
            raise Refusal(Reason.OUT_OF_RANGE, f"unknown currency {currency!r}")
        occurred = self._time(params)
        round_id = params.get("roundId", "")
        game = params.get("gameId", "")
        if call == "balance":
            return WalletCall(CallKind.BALANCE, player, currency, game, echo=echo)
        if call == "endRound":
            op = WalletOp(EventKind.ROUND_END, f"{_need(params, 'roundId')}:end", 0, round_id)
            return WalletCall(CallKind.TRANSACT, player, currency, game, ops=(op,), echo=echo)
        reference = _need(params, "reference")
        if call == "refund":
            op = WalletOp(EventKind.ROLLBACK, f"{reference}:refund", 0, round_id, ref_tx=reference)
            return WalletCall(
                CallKind.TRANSACT,
                player,
                currency,
                game,
                ops=(op,),
                occurred_at=occurred,
                echo=echo,
            )
        kind = _MONEY_CALLS[call]
        if call == "bet" and occurred is not None and inbound.received_at - occurred > BET_WINDOW:
            raise Refusal(Reason.STALE, f"bet stamped {occurred.isoformat()}, too long ago")
        # Amounts are in the player's currency, which the request may not name: the
        # wallet converts them exactly (or refuses them) in the currency it holds.
        amount = _need(params, "amount")
        if not _DECIMAL.match(amount) or (
            amount.startswith("-") and kind is not EventKind.ADJUSTMENT
        ):
            raise Refusal(Reason.MALFORMED, f"amount {amount!r} is not a decimal amount")
        op = WalletOp(kind, reference, 0, round_id, decimal_amount=amount)
        return WalletCall(
            CallKind.TRANSACT,
            player,
            currency,
            game,
            session=params.get("token", "") if call == "bet" else "",
            ops=(op,),
            occurred_at=occurred,
            echo=echo,
        )

    @staticmethod
    def _time(params: dict[str, str]) -> datetime | None:
        stamp = params.get("timestamp", "")
        if not stamp:
            return None
        if not stamp.isdigit() or len(stamp) > 15:
            raise Refusal(Reason.MALFORMED, "timestamp must be milliseconds since the epoch")
        return datetime.fromtimestamp(int(stamp) / 1000, tz=UTC)

    # -- answer -----------------------------------------------------------------------------
    def answer(self, answer: WalletAnswer, credentials: Credentials) -> Outbound:
        echo = answer.call.echo
        if answer.error is not None:
            code, description = _ERRORS.get(answer.error, _UNKNOWN)
            return _reply(code, description)
        fields: list[tuple[str, str]] = []
        call = echo.get("call", "")
        if call == "authenticate":
            fields += [("userId", text(answer.call.player)), ("token", text(answer.call.session))]
        moved = [o for o in answer.outcomes if o.transfer_id]
        if call not in ("authenticate", "balance", "endRound"):
            tx = moved[0].transfer_id if moved else f"{self.name}:{echo.get('reference', '')}"
            fields.append(("transactionId", text(tx)))
        if call != "refund":
            fields += [
                ("currency", text(answer.currency)),
                ("cash", number(answer.balance, answer.currency)),
                ("bonus", number(0, answer.currency)),
            ]
        if call in _MONEY_CALLS:
            fields.append(("usedPromo", number(0, answer.currency)))
        fields += [("error", "0"), ("description", text("Success"))]
        return Outbound(200, render(fields))

    def refuse(self, inbound: Inbound, refusal: Refusal, credentials: Credentials) -> Outbound:
        code, description = _ERRORS.get(refusal.reason, _UNKNOWN)
        return _reply(code, f"{description}: {refusal.detail}"[:200])


def _reply(code: int, description: str) -> Outbound:
    return Outbound(200, render([("error", str(code)), ("description", text(description))]))
