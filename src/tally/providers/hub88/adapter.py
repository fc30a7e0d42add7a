"""Hub88 Operator API: the wallet endpoints an operator implements for Hub88.

What this adapter follows (Hub88's operator wallet API):

- JSON ``POST`` to ``/user/info``, ``/user/balance``, ``/transaction/bet``,
  ``/transaction/win``, ``/transaction/rollback``.
- Every request is signed by Hub88: header ``X-Hub88-Signature`` = base64 RSA signature
  (PKCS#1 v1.5, SHA-256) of the raw body, checked with Hub88's public key (secret
  ``hub88_public_key``, PEM). Answers are signed the same way with the operator's private
  key (secret ``operator_private_key``, PEM) when one is configured.
- Fields: ``user``, ``token``, ``request_uuid``, ``transaction_uuid``,
  ``supplier_transaction_id``, ``round``, ``round_closed``, ``reward_uuid``, ``is_free``,
  ``is_aggregated``, ``game_code``, ``currency``, ``bet``, ``amount``, ``meta``,
  ``reference_transaction_uuid`` (win: the bet; rollback: the transaction rolled back).
  ``currency`` is required on bets and wins; rollbacks and ``/user/balance`` carry none
  (the wallet takes the session's, or the rolled-back transaction's).
- Amounts: integers in 1/100,000 of the currency unit (1 EUR = 100000). Converted to the
  currency's minor units exactly; a value that is not a whole number of minor units is
  refused (``out_of_range``), never rounded. Currencies with more than five decimals
  (BTC) cannot be answered in this unit and are refused as a wrong currency.
- Answers: ``{"user", "request_uuid", "currency", "balance", "status": "RS_OK"}`` with the
  balance in 1/100,000 units (``/user/info`` also ``country``).
- Statuses implemented: RS_OK; RS_ERROR_NOT_ENOUGH_MONEY; RS_ERROR_INVALID_SIGNATURE (also
  an address not allowed); RS_ERROR_INVALID_TOKEN (a token Tally never issued, or another
  player's); RS_ERROR_TOKEN_EXPIRED; RS_ERROR_WRONG_CURRENCY; RS_ERROR_WRONG_SYNTAX
  (malformed JSON or a missing field); RS_ERROR_WRONG_TYPES (a field of the wrong type,
  an amount out of range); RS_ERROR_DUPLICATE_TRANSACTION (a transaction_uuid reused with
  other content); RS_ERROR_TRANSACTION_DOES_NOT_EXIST (a rollback of a transaction never
  seen: remembered, so that bet, arriving later, is void and answered RS_OK with the
  balance untouched; and a win whose bet was never applied); RS_ERROR_TRANSACTION_ROLLED_BACK
  (a win whose bet was rolled back); RS_ERROR_UNKNOWN (unknown player, a refusal for good,
  or the wallet could not commit now: Hub88 retries). Not produced: RS_ERROR_INVALID_GAME (a
  game or provider suspended by a risk playbook). Not produced: RS_ERROR_INVALID_PARTNER,
  RS_ERROR_USER_DISABLED (Tally has no such rules yet).
- Retries: Hub88 retries win and rollback until answered; a bet with no answer is rolled
  back. A repeated request is answered from the wallet's idempotency.
- Sessions: ``/user/info``, ``/user/balance`` and ``/transaction/bet`` carry the player's
  ``token``, checked by the gateway; wins and rollbacks settle accepted play and may come
  after the session ended, so their token is not checked (the signature is).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from tally.events.model import EventKind
from tally.kernel.currency import is_known, scale_of
from tally.providers.base import Credentials, Inbound, Outbound, Refusal
from tally.quarantine.inputs import Reason
from tally.wallet.model import CallKind, OpStatus, WalletAnswer, WalletCall, WalletError, WalletOp

SIGNATURE_HEADER = "x-hub88-signature"
UNIT_DECIMALS = 5  # Hub88 amounts are in 1/100,000 of the currency unit
AMOUNT_MAX = 10**17  # in Hub88 units; larger is refused
TEXT_MAX = 128
CALLS = ("user/info", "user/balance", "transaction/bet", "transaction/win", "transaction/rollback")
_SESSION_CHECKED = frozenset({"user/info", "user/balance", "transaction/bet"})
_NO_CURRENCY = frozenset({"user/info", "user/balance", "transaction/rollback"})
_ERRORS: dict[WalletError | Reason, str] = {
    WalletError.INSUFFICIENT_FUNDS: "RS_ERROR_NOT_ENOUGH_MONEY",
    WalletError.UNKNOWN_PLAYER: "RS_ERROR_UNKNOWN",
    WalletError.WRONG_CURRENCY: "RS_ERROR_WRONG_CURRENCY",
    WalletError.INVALID_SESSION: "RS_ERROR_INVALID_TOKEN",
    WalletError.CONFLICT: "RS_ERROR_DUPLICATE_TRANSACTION",
    WalletError.UNAVAILABLE: "RS_ERROR_UNKNOWN",
    WalletError.REFUSED: "RS_ERROR_UNKNOWN",
    WalletError.BAD_AMOUNT: "RS_ERROR_WRONG_TYPES",
    WalletError.GAME_DISABLED: "RS_ERROR_INVALID_GAME",
    WalletError.UNKNOWN_REFERENCE: "RS_ERROR_TRANSACTION_DOES_NOT_EXIST",
    WalletError.ALREADY_ROLLED_BACK: "RS_ERROR_TRANSACTION_ROLLED_BACK",
    Reason.BAD_SIGNATURE: "RS_ERROR_INVALID_SIGNATURE",
    Reason.FORBIDDEN: "RS_ERROR_INVALID_SIGNATURE",
    Reason.MALFORMED: "RS_ERROR_WRONG_SYNTAX",
    Reason.OUT_OF_RANGE: "RS_ERROR_WRONG_TYPES",
}


def _bad(detail: str, reason: Reason = Reason.MALFORMED) -> Refusal:
    return Refusal(reason, detail)


def _text(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value) or len(value) > TEXT_MAX:
        raise _bad(f"{name} must be a string of 1 to {TEXT_MAX} characters", Reason.MALFORMED)
    return value


def to_minor(units: object, currency: str) -> int:
    """Hub88 units (1/100,000) as the currency's minor units, exactly."""
    if isinstance(units, bool) or not isinstance(units, int):
        raise _bad("amounts are integers of 1/100,000 units", Reason.OUT_OF_RANGE)
    if units < 0 or units > AMOUNT_MAX:
        raise _bad(f"amount {units} is out of range", Reason.OUT_OF_RANGE)
    step = int(10 ** (UNIT_DECIMALS - scale_of(currency)))
    if units % step:
        raise _bad(
            f"amount {units} is not a whole number of {currency} minor units", Reason.OUT_OF_RANGE
        )
    return units // step


def to_units(minor: int, currency: str) -> int:
    return minor * int(10 ** (UNIT_DECIMALS - scale_of(currency)))


class Hub88Adapter:
    protocol = "Hub88 Operator API (wallet: user/info, user/balance, transaction/*; RSA)"
    secret_names = ("hub88_public_key", "operator_private_key")

    def __init__(self, name: str = "hub88") -> None:
        self.name = name
        # The PEMs last parsed (parsing costs more than verifying or signing).
        self._keys: dict[str, rsa.RSAPrivateKey] = {}
        self._public: dict[str, PublicKeyTypes] = {}

    # -- verify -----------------------------------------------------------------------------
    def verify(self, inbound: Inbound, credentials: Credentials) -> None:
        pem = credentials.get("hub88_public_key")
        if not pem:
            raise Refusal(Reason.BAD_SIGNATURE, "no hub88_public_key configured")
        try:
            key = self._public.get(pem) or serialization.load_pem_public_key(pem.encode())
            self._public = {pem: key}
            signature = base64.b64decode(inbound.headers.get(SIGNATURE_HEADER, ""), validate=True)
        except (ValueError, binascii.Error) as exc:
            raise Refusal(Reason.BAD_SIGNATURE, f"signature or key unreadable: {exc}") from None
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refusal(Reason.BAD_SIGNATURE, "hub88_public_key is not an RSA key")
        try:
            key.verify(signature, inbound.body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise Refusal(Reason.BAD_SIGNATURE, "X-Hub88-Signature does not match") from None

    # -- parse ------------------------------------------------------------------------------
    def parse(self, inbound: Inbound) -> WalletCall:
        call = inbound.action.strip("/")
        if call not in CALLS:
            raise _bad(f"unknown call {call!r}")
        try:
            data = json.loads(inbound.body)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise _bad(f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise _bad("body must be a JSON object")
        user = _text(data, "user")
        request_uuid = _text(data, "request_uuid")
        token = _text(data, "token", required=call in _SESSION_CHECKED and call != "user/info")
        # Hub88's rollback and balance requests name no currency: the wallet takes the
        # session's (balance) or the rolled-back transaction's (rollback) instead.
        currency = _text(data, "currency", required=call not in _NO_CURRENCY).upper()
        if currency and (not is_known(currency) or scale_of(currency) > UNIT_DECIMALS):
            raise Refusal(
                Reason.OUT_OF_RANGE,
                f"currency {currency!r} cannot be settled in 1/100,000 units",
                code="RS_ERROR_WRONG_CURRENCY",
            )
        echo = {"call": call, "request_uuid": request_uuid, "user": user}
        session = token if call in _SESSION_CHECKED else ""
        if call in ("user/info", "user/balance"):
            kind = CallKind.AUTHENTICATE if call == "user/info" else CallKind.BALANCE
            return WalletCall(kind, user, currency, session=session, echo=echo)
        tx = _text(data, "transaction_uuid")
        round_id = _text(data, "round", required=False)
        game = _text(data, "game_code", required=False)
        if call == "transaction/rollback":
            op = WalletOp(
                EventKind.ROLLBACK,
                tx,
                0,
                round_id,
                ref_tx=_text(data, "reference_transaction_uuid"),
                ref_kinds=(EventKind.BET, EventKind.WIN),
            )
        else:
            if not currency:
                raise _bad("currency must be a string of 1 to 128 characters")
            amount = to_minor(data.get("amount"), currency)
            if call == "transaction/bet":
                op = WalletOp(EventKind.BET, tx, amount, round_id)
            else:
                is_free = data.get("is_free") is True
                bet = _text(data, "reference_transaction_uuid", required=False)
                op = WalletOp(
                    EventKind.BONUS_WIN if is_free else EventKind.WIN,
                    tx,
                    amount,
                    round_id,
                    ref_bet=bet,
                    # A win settles the bet it names: one never applied or rolled back
                    # is refused (RS_ERROR_TRANSACTION_DOES_NOT_EXIST / _ROLLED_BACK). A
                    # free-round win's bet may be of no amount, which moves no money and
                    # leaves nothing to check against: it is not checked.
                    settles="" if is_free else bet,
                )
        ops = [op]
        if data.get("round_closed") is True and round_id:
            ops.append(WalletOp(EventKind.ROUND_END, f"{round_id}:end", 0, round_id))
        return WalletCall(
            CallKind.TRANSACT, user, currency, game, session=session, ops=tuple(ops), echo=echo
        )

    # -- answer -----------------------------------------------------------------------------
    def answer(self, answer: WalletAnswer, credentials: Credentials) -> Outbound:
        echo = answer.call.echo
        status = self._status(answer)
        body: dict[str, Any] = {
            "user": echo.get("user", answer.call.player),
            "request_uuid": echo.get("request_uuid", ""),
            "status": status,
        }
        if status == "RS_OK" or status == "RS_ERROR_NOT_ENOUGH_MONEY":
            if answer.currency and is_known(answer.currency):
                body["currency"] = answer.currency
                body["balance"] = to_units(answer.balance, answer.currency)
            if echo.get("call") == "user/info":
                body["country"] = ""
        return self._signed(body, credentials)

    @staticmethod
    def _status(answer: WalletAnswer) -> str:
        if answer.error is WalletError.INVALID_SESSION and "expired" in answer.detail:
            return "RS_ERROR_TOKEN_EXPIRED"
        if answer.error is not None:
            return _ERRORS.get(answer.error, "RS_ERROR_UNKNOWN")
        if any(o.status is OpStatus.UNKNOWN_REFERENCE for o in answer.outcomes):
            return "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
        return "RS_OK"

    def refuse(self, inbound: Inbound, refusal: Refusal, credentials: Credentials) -> Outbound:
        try:
            data = json.loads(inbound.body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            data = {}
        known = data if isinstance(data, dict) else {}
        body = {
            "user": known.get("user") if isinstance(known.get("user"), str) else "",
            "request_uuid": known.get("request_uuid")
            if isinstance(known.get("request_uuid"), str)
            else "",
            "status": refusal.code
            if refusal.code.startswith("RS_")
            else _ERRORS.get(refusal.reason, "RS_ERROR_UNKNOWN"),
        }
        return self._signed(body, credentials)

    def _signed(self, body: Mapping[str, Any], credentials: Credentials) -> Outbound:
        raw = json.dumps(body, separators=(",", ":")).encode()
        pem = credentials.get("operator_private_key")
        if not pem:
            return Outbound(200, raw)
        key = self._keys.get(pem)
        if key is None:  # parsing a PEM costs more than signing: keep the last one
            loaded = serialization.load_pem_private_key(pem.encode(), password=None)
            assert isinstance(loaded, rsa.RSAPrivateKey), "operator_private_key must be RSA"
            self._keys = {pem: loaded}
            key = loaded
        signature = key.sign(raw, padding.PKCS1v15(), hashes.SHA256())
        return Outbound(
            200, raw, headers={"X-Hub88-Signature": base64.b64encode(signature).decode()}
        )
