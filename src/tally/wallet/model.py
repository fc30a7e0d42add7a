"""The wallet's values: what a provider asks of it and what it answers, in Tally's terms.

A provider adapter turns a provider's request into a :class:`WalletCall` (in minor
units) and the wallet's :class:`WalletAnswer` back into the provider's format; the
wallet never sees a protocol. Rejections are values (:class:`OpStatus`,
:class:`WalletError`), named by each adapter in its own terms.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum

from tally.events.model import Channel, EventKind
from tally.kernel.values import value

TX_ID_MAX = 80  # a provider transaction id longer than this is refused (ledger ids <= 128)


def _no_strings() -> Mapping[str, str]:
    return {}


class CallKind(StrEnum):
    AUTHENTICATE = "authenticate"  # a session starts: who is this, what do they have
    BALANCE = "balance"
    TRANSACT = "transact"  # one or more money operations, in order


@value
class WalletOp:
    """One money operation of a call, in the currency's minor units."""

    kind: EventKind  # bet, win, jackpot_win, bonus_win, rollback, adjustment
    tx_id: str  # the provider's transaction id: with the kind, the idempotency key
    amount: int  # minor units; 0 is allowed for a zero win that ends a round
    round_id: str = ""
    # A rollback: the provider transaction it voids, and the kinds it may have been
    # (a protocol that only rolls back bets says ("bet",)).
    ref_tx: str = ""
    ref_kinds: tuple[EventKind, ...] = (EventKind.BET,)
    # A win that names the bet it settles (informational; settlement goes by round).
    ref_bet: str = ""
    ends_round: bool = False
    # For protocols that refuse a win or rollback whose bet is unknown or already settled
    # (Evolution): the bet's tx_id. A win for a bet never applied fails UNKNOWN_REFERENCE;
    # a win for a rolled-back bet fails ALREADY_ROLLED_BACK; a rollback of a bet whose win
    # (keyed by the same tx_id) was applied fails ALREADY_SETTLED. Empty: no such check.
    settles: str = ""
    # An amount in currency units ("10.50") for protocols whose request does not name the
    # currency: the wallet converts it exactly in the player's currency (refusing excess
    # precision) and uses it instead of ``amount``.
    decimal_amount: str = ""


@value
class WalletCall:
    kind: CallKind
    player: str  # the provider's user id: Tally's pseudonymous player id
    currency: str = ""  # empty: the player's only (or session's) currency
    game: str = ""
    game_type: str = ""  # when the provider names it (else the wallet's catalogue does)
    session: str = ""  # a session token the protocol carries, if any
    request_id: str = ""  # the provider's request id, echoed where the protocol wants
    ops: tuple[WalletOp, ...] = ()
    channel: Channel = Channel.WEB
    # When the provider says it happened, with the provider's own offset when it sends
    # one; None: the time we received it.
    occurred_at: datetime | None = None
    # Whatever the adapter must echo in its answer (ids, flags): opaque to the wallet.
    echo: Mapping[str, str] = field(default_factory=_no_strings)


class OpStatus(StrEnum):
    OK = "ok"  # done now
    REPEATED = "repeated"  # done before, with the same content: the first answer stands
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CONFLICT = "conflict"  # the transaction id was used before with other content
    UNKNOWN_REFERENCE = "unknown_reference"  # a rollback of a transaction never seen
    CANCELLED = "cancelled"  # a bet or win whose rollback arrived first: not applied
    ALREADY_ROLLED_BACK = "already_rolled_back"  # the original was voided before
    REFUSED = "refused"  # the ledger refused it for another reason (see detail)


@value
class OpOutcome:
    op: WalletOp
    status: OpStatus
    transfer_id: str = ""  # Tally's ledger transfer id (the protocol's "our tx id")
    processed_at: datetime | None = None  # when the ledger committed it
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status in (
            OpStatus.OK,
            OpStatus.REPEATED,
            OpStatus.UNKNOWN_REFERENCE,
            OpStatus.CANCELLED,
            OpStatus.ALREADY_ROLLED_BACK,
        )


class WalletError(StrEnum):
    """Why a call as a whole failed, for the adapter to name in its own terms."""

    UNKNOWN_PLAYER = "unknown_player"
    WRONG_CURRENCY = "wrong_currency"
    INVALID_SESSION = "invalid_session"
    INSUFFICIENT_FUNDS = "insufficient_funds"
    CONFLICT = "conflict"
    UNKNOWN_REFERENCE = "unknown_reference"
    CANCELLED = "cancelled"
    ALREADY_ROLLED_BACK = "already_rolled_back"
    ALREADY_SETTLED = "already_settled"  # a rollback of a bet that was won already
    REFUSED = "refused"
    UNAVAILABLE = "unavailable"  # the wallet could not commit now: the provider retries
    BAD_AMOUNT = "bad_amount"  # a decimal amount the player's currency cannot hold exactly
    # The game (or its provider) is suspended by a risk playbook: new play is refused in
    # the protocol's own "game disabled" terms; wins and rollbacks of accepted play pass.
    GAME_DISABLED = "game_disabled"


@value
class WalletAnswer:
    call: WalletCall
    currency: str
    balance: int  # the player's committed balance after the call, in minor units
    outcomes: tuple[OpOutcome, ...] = ()
    error: WalletError | None = None
    detail: str = ""
    session: str = ""  # a (new) session token, where the protocol hands one out
    operator: str = ""

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class Wallet:
    """A player's wallet account and what the events of its play carry."""

    player: str
    operator: str
    currency: str
    region: str = ""
    agent: str = ""

    @property
    def account_id(self) -> str:
        return wallet_account(self.player, self.currency)


def wallet_account(player: str, currency: str) -> str:
    return f"player:{player}:wallet:{currency}"


def clearing_account(operator: str, currency: str) -> str:
    return f"operator:{operator}:player_clearing:{currency}"


def deposits_account(operator: str, currency: str) -> str:
    return f"operator:{operator}:player_deposits:{currency}"
