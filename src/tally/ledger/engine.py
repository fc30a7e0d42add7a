"""The ledger's rules: given loaded state and a batch of requests, decide every result.

Pure: the store loads what the batch refers to into a :class:`LedgerState`, calls
:func:`apply_batch`, and writes the returned :class:`ChangeSet` in the same
database transaction. Because the function is deterministic, every store (memory,
SQLite, PostgreSQL) gives the same answers.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from tally.kernel.currency import is_known
from tally.kernel.limits import LedgerLimits
from tally.kernel.money import INT64_MAX
from tally.ledger.model import (
    Account,
    AccountFlags,
    AccountResult,
    AccountResultCode,
    Balance,
    OwnerKind,
    PendingStatus,
    Rejection,
    ResultCode,
    Transfer,
    TransferKind,
    TransferRequest,
    TransferResult,
)

R = ResultCode
_OK = ResultCode.OK
_EXISTS = ResultCode.EXISTS
_SINGLE = TransferKind.SINGLE
_PENDING = TransferKind.PENDING
_POST = TransferKind.POST
_VOID = TransferKind.VOID


@dataclass(slots=True)
class LedgerState:
    """What a batch needs from the store: the accounts and transfers it names."""

    accounts: dict[str, Account] = field(default_factory=dict)
    balances: dict[str, Balance] = field(default_factory=dict)
    transfers: dict[str, Transfer] = field(default_factory=dict)
    # Optional: the accounts' flags as plain ints, when the store has them at hand.
    rules: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class ChangeSet:
    """What the store must write for a batch, all in one transaction."""

    created: list[Transfer] = field(default_factory=list)
    # Pending transfers whose status changed (posted, voided, expired), by id.
    resolved: dict[str, Transfer] = field(default_factory=dict)
    # New balances of every account the batch touched, by account id.
    balances: dict[str, Balance] = field(default_factory=dict)
    rejections: list[Rejection] = field(default_factory=list)


def referenced_transfer_ids(submissions: Iterable[Sequence[TransferRequest]]) -> set[str]:
    """Transfer ids the store must load: the requests' own ids and their pending ids."""
    ids: set[str] = set()
    for requests in submissions:
        for request in requests:
            ids.add(request.id)
            if request.pending_id:
                ids.add(request.pending_id)
    return ids


def referenced_account_ids(
    submissions: Iterable[Sequence[TransferRequest]], loaded: Iterable[Transfer]
) -> set[str]:
    """Account ids the store must load (and lock): named by requests or by loaded pendings."""
    ids: set[str] = set()
    for requests in submissions:
        for request in requests:
            if request.debit_account_id:
                ids.add(request.debit_account_id)
            if request.credit_account_id:
                ids.add(request.credit_account_id)
    for transfer in loaded:
        if transfer.kind is _PENDING:
            ids.add(transfer.debit_account_id)
            ids.add(transfer.credit_account_id)
    return ids


# Balance rules as plain ints: IntFlag arithmetic is slow on the hot path.
_DEBITS_RULE = int(AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS)
_CREDITS_RULE = int(AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS)


def _rule(rules: dict[str, int], accounts: Mapping[str, Account], account_id: str) -> int:
    found = rules.get(account_id)
    if found is None:
        found = rules[account_id] = int(accounts[account_id].flags)
    return found


class _Batch:
    """Working copy of the state while one batch is decided."""

    __slots__ = (
        "_chain_start",
        "_in_chain",
        "_rules",
        "_saved_balances",
        "_saved_resolved",
        "changes",
        "limits",
        "now",
        "state",
    )

    def __init__(self, state: LedgerState, now: datetime, limits: LedgerLimits) -> None:
        self.state = state
        self.now = now
        self.limits = limits
        self.changes = ChangeSet()
        self._rules: dict[str, int] = state.rules
        self._saved_balances: dict[str, Balance] = {}
        self._saved_resolved: dict[str, Transfer] = {}
        self._chain_start = 0
        self._in_chain = False

    # -- linked chains: remember what the chain changed, so it can be undone ----------
    def begin_chain(self) -> None:
        self._in_chain = True
        self._saved_balances = {}
        self._saved_resolved = {}
        self._chain_start = len(self.changes.created)

    def end_chain(self) -> None:
        self._in_chain = False

    def undo_chain(self) -> None:
        balances = self.state.balances
        for account_id, saved in self._saved_balances.items():
            balances[account_id] = saved
            self.changes.balances[account_id] = saved
        for transfer_id, saved_transfer in self._saved_resolved.items():
            self.state.transfers[transfer_id] = saved_transfer
            self.changes.resolved.pop(transfer_id, None)
        for created in self.changes.created[self._chain_start :]:
            del self.state.transfers[created.id]
        del self.changes.created[self._chain_start :]
        self._in_chain = False

    def _writable_balance(self, account_id: str) -> Balance:
        current = self.state.balances[account_id]
        if self._in_chain and account_id not in self._saved_balances:
            # Keep the pre-chain object untouched for undo; the chain mutates a copy.
            self._saved_balances[account_id] = current
            current = self.state.balances[account_id] = current.copy()
        return current

    # -- effects ------------------------------------------------------------------------
    def create(self, transfer: Transfer) -> None:
        self.state.transfers[transfer.id] = transfer
        self.changes.created.append(transfer)

    def resolve(self, pending: Transfer, status: PendingStatus) -> None:
        if self._in_chain and pending.id not in self._saved_resolved:
            self._saved_resolved[pending.id] = pending
        resolved = replace(pending, status=status, resolved_at=self.now)
        self.state.transfers[pending.id] = resolved
        self.changes.resolved[pending.id] = resolved

    def move(
        self, debit_id: str, credit_id: str, pending_delta: int, posted_delta: int
    ) -> ResultCode:
        """Apply a balance change to both accounts, or refuse it and change nothing."""
        balances = self.state.balances
        dr = balances[debit_id]
        cr = balances[credit_id]
        dr_pending = dr.debits_pending + pending_delta
        dr_posted = dr.debits_posted + posted_delta
        cr_pending = cr.credits_pending + pending_delta
        cr_posted = cr.credits_posted + posted_delta
        if dr_pending > INT64_MAX or dr_posted > INT64_MAX or dr_pending + dr_posted > INT64_MAX:
            return R.OVERFLOWS_DEBITS
        if cr_pending > INT64_MAX or cr_posted > INT64_MAX or cr_pending + cr_posted > INT64_MAX:
            return R.OVERFLOWS_CREDITS
        if pending_delta > 0 or posted_delta > 0:
            rules = self._rules
            accounts = self.state.accounts
            if (
                dr_pending + dr_posted > dr.credits_posted
                and _rule(rules, accounts, debit_id) & _DEBITS_RULE
            ):
                return R.EXCEEDS_CREDITS
            if (
                cr_pending + cr_posted > cr.debits_posted
                and _rule(rules, accounts, credit_id) & _CREDITS_RULE
            ):
                return R.EXCEEDS_DEBITS
        if self._in_chain:
            dr = self._writable_balance(debit_id)
            cr = self._writable_balance(credit_id)
        dr.debits_pending = dr_pending
        dr.debits_posted = dr_posted
        cr.credits_pending = cr_pending
        cr.credits_posted = cr_posted
        touched = self.changes.balances
        touched[debit_id] = dr
        touched[credit_id] = cr
        return _OK


def _metadata_ok(metadata: object, limits: LedgerLimits) -> bool:
    if not isinstance(metadata, Mapping) or len(metadata) > limits.metadata_max_entries:
        return False
    for key, value in metadata.items():
        if not isinstance(key, str) or not isinstance(value, str) or not key:
            return False
        if len(key) > limits.code_max_length or len(value) > limits.metadata_max_value_length:
            return False
    return True


def validate_request(request: TransferRequest, limits: LedgerLimits) -> ResultCode:  # noqa: C901 - one flat run of checks in result-code order; splitting it would hide that order
    """Checks that need nothing but the request itself, in result-code order."""
    rid = request.id
    if not isinstance(rid, str) or not rid:
        return R.ID_MUST_NOT_BE_EMPTY
    if len(rid) > limits.id_max_length:
        return R.ID_TOO_LONG
    kind = request.kind
    if not isinstance(kind, TransferKind):
        return R.KIND_UNKNOWN
    amount = request.amount
    two_phase_followup = kind is _POST or kind is _VOID
    if amount is not None or not two_phase_followup:
        if type(amount) is not int:
            return R.AMOUNT_MUST_BE_INTEGER
        if amount <= 0:
            return R.AMOUNT_MUST_BE_POSITIVE
        if amount > INT64_MAX:
            return R.AMOUNT_TOO_LARGE
    if not two_phase_followup:
        if not request.debit_account_id:
            return R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY
        if not request.credit_account_id:
            return R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY
    if request.debit_account_id and request.debit_account_id == request.credit_account_id:
        return R.ACCOUNTS_MUST_BE_DIFFERENT
    currency = request.currency
    if not two_phase_followup and not currency:
        return R.CURRENCY_MUST_NOT_BE_EMPTY
    if currency and not is_known(currency):
        return R.CURRENCY_UNKNOWN
    if not two_phase_followup and not request.code:
        return R.CODE_MUST_NOT_BE_EMPTY
    if len(request.code) > limits.code_max_length:
        return R.CODE_TOO_LONG
    if two_phase_followup:
        if not request.pending_id:
            return R.PENDING_ID_MUST_NOT_BE_EMPTY
        if request.pending_id == rid:
            return R.PENDING_ID_MUST_BE_DIFFERENT
    elif request.pending_id:
        return R.PENDING_ID_MUST_BE_EMPTY
    if request.timeout_s:
        if kind is not _PENDING:
            return R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER
        if (
            type(request.timeout_s) is not int
            or not 0 < request.timeout_s <= limits.pending_timeout_max_s
        ):
            return R.TIMEOUT_OUT_OF_RANGE
    occurred = request.occurred_at
    if occurred is not None and (occurred.tzinfo is None or occurred.utcoffset() is None):
        return R.OCCURRED_AT_MUST_BE_AWARE
    if request.metadata and not _metadata_ok(request.metadata, limits):
        return R.METADATA_INVALID
    return R.OK


def compare_existing(request: TransferRequest, existing: Transfer) -> ResultCode:
    """A repeated id: EXISTS when the content matches what was committed, else what differs.

    Fields a follow-up (post/void) may leave empty, and ``occurred_at`` when not
    given, are compared only when the request states them.
    """
    if request.kind is not existing.kind:
        return R.EXISTS_WITH_DIFFERENT_KIND
    if request.debit_account_id and request.debit_account_id != existing.debit_account_id:
        return R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID
    if request.credit_account_id and request.credit_account_id != existing.credit_account_id:
        return R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID
    if request.amount is not None and request.amount != existing.amount:
        return R.EXISTS_WITH_DIFFERENT_AMOUNT
    if request.currency and request.currency != existing.currency:
        return R.EXISTS_WITH_DIFFERENT_CURRENCY
    if request.code and request.code != existing.code:
        return R.EXISTS_WITH_DIFFERENT_CODE
    if request.pending_id != existing.pending_id:
        return R.EXISTS_WITH_DIFFERENT_PENDING_ID
    if request.timeout_s != existing.timeout_s:
        return R.EXISTS_WITH_DIFFERENT_TIMEOUT
    if request.occurred_at is not None and request.occurred_at != existing.occurred_at:
        return R.EXISTS_WITH_DIFFERENT_OCCURRED_AT
    if request.event_ref != existing.event_ref:
        return R.EXISTS_WITH_DIFFERENT_EVENT_REF
    if dict(request.metadata) != dict(existing.metadata):
        return R.EXISTS_WITH_DIFFERENT_METADATA
    return R.EXISTS


def _apply_one(batch: _Batch, request: TransferRequest) -> TransferResult:
    code = validate_request(request, batch.limits)
    if code is not R.OK:
        return TransferResult(request.id, code)
    existing = batch.state.transfers.get(request.id)
    if existing is not None:
        code = compare_existing(request, existing)
        return TransferResult(request.id, code, existing if code is R.EXISTS else None)
    kind = request.kind
    if kind is _SINGLE or kind is _PENDING:
        return _create(batch, request)
    return _post_or_void(batch, request)


def _create(batch: _Batch, request: TransferRequest) -> TransferResult:
    """A new SINGLE (moves the amount) or PENDING (reserves it) transfer."""
    state = batch.state
    debit_id = request.debit_account_id
    credit_id = request.credit_account_id
    debit = state.accounts.get(debit_id)
    if debit is None:
        return TransferResult(request.id, R.DEBIT_ACCOUNT_NOT_FOUND)
    credit = state.accounts.get(credit_id)
    if credit is None:
        return TransferResult(request.id, R.CREDIT_ACCOUNT_NOT_FOUND)
    if debit.currency != credit.currency:
        return TransferResult(request.id, R.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY)
    if request.currency != debit.currency:
        return TransferResult(request.id, R.TRANSFER_CURRENCY_MUST_MATCH_ACCOUNTS)
    amount = request.amount
    assert amount is not None  # validate_request guarantees it for these kinds
    kind = request.kind
    if kind is _SINGLE:
        code = batch.move(debit_id, credit_id, 0, amount)
        status = None
    else:
        code = batch.move(debit_id, credit_id, amount, 0)
        status = PendingStatus.PENDING
    if code is not R.OK:
        return TransferResult(request.id, code)
    now = batch.now
    transfer = Transfer(
        id=request.id,
        kind=kind,
        debit_account_id=debit_id,
        credit_account_id=credit_id,
        amount=amount,
        currency=request.currency,
        code=request.code,
        occurred_at=request.occurred_at or now,
        recorded_at=now,
        timeout_s=request.timeout_s,
        event_ref=request.event_ref,
        metadata=request.metadata,
        status=status,
    )
    batch.create(transfer)
    return TransferResult(request.id, R.OK, transfer)


def _compare_pending(request: TransferRequest, pending: Transfer) -> ResultCode:
    """What a POST or VOID states (optional fields) must agree with its pending transfer."""
    if pending.kind is not _PENDING:
        return R.PENDING_TRANSFER_NOT_PENDING
    if request.debit_account_id and request.debit_account_id != pending.debit_account_id:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID
    if request.credit_account_id and request.credit_account_id != pending.credit_account_id:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID
    if request.currency and request.currency != pending.currency:
        return R.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY
    if request.amount is not None:
        if request.kind is _VOID and request.amount != pending.amount:
            return R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT
        if request.amount > pending.amount:
            return R.EXCEEDS_PENDING_TRANSFER_AMOUNT
    return R.OK


def _post_or_void(batch: _Batch, request: TransferRequest) -> TransferResult:
    """A POST (moves all or part of the reservation) or VOID (releases it) of a pending one."""
    pending = batch.state.transfers.get(request.pending_id)
    if pending is None:
        return TransferResult(request.id, R.PENDING_TRANSFER_NOT_FOUND)
    code = _compare_pending(request, pending)
    if code is not R.OK:
        return TransferResult(request.id, code)
    now = batch.now
    status = pending.status
    if status is PendingStatus.PENDING:
        expires_at = pending.expires_at
        if expires_at is not None and expires_at <= now:
            _expire(batch, pending)
            status = PendingStatus.EXPIRED
    if status is PendingStatus.POSTED:
        return TransferResult(request.id, R.PENDING_TRANSFER_ALREADY_POSTED)
    if status is PendingStatus.VOIDED:
        return TransferResult(request.id, R.PENDING_TRANSFER_ALREADY_VOIDED)
    if status is PendingStatus.EXPIRED:
        return TransferResult(request.id, R.PENDING_TRANSFER_EXPIRED)
    kind = request.kind
    amount = pending.amount if request.amount is None else request.amount
    posted = amount if kind is _POST else 0
    code = batch.move(pending.debit_account_id, pending.credit_account_id, -pending.amount, posted)
    if code is not R.OK:
        return TransferResult(request.id, code)
    batch.resolve(pending, PendingStatus.POSTED if kind is _POST else PendingStatus.VOIDED)
    transfer = Transfer(
        id=request.id,
        kind=kind,
        debit_account_id=pending.debit_account_id,
        credit_account_id=pending.credit_account_id,
        amount=amount,
        currency=pending.currency,
        code=request.code or pending.code,
        occurred_at=request.occurred_at or now,
        recorded_at=now,
        pending_id=pending.id,
        event_ref=request.event_ref,
        metadata=request.metadata,
    )
    batch.create(transfer)
    return TransferResult(request.id, R.OK, transfer)


def _expire(batch: _Batch, pending: Transfer) -> None:
    code = batch.move(pending.debit_account_id, pending.credit_account_id, -pending.amount, 0)
    # Releasing a reservation only lowers balances, so it cannot break a rule.
    assert code is R.OK, code
    batch.resolve(pending, PendingStatus.EXPIRED)


def _apply_submission(batch: _Batch, requests: Sequence[TransferRequest]) -> list[TransferResult]:
    results: list[TransferResult] = []
    chain: list[TransferRequest] = []
    for index, request in enumerate(requests):
        if request.linked or chain:
            chain.append(request)
            if request.linked and index < len(requests) - 1:
                continue
            results.extend(_apply_chain(batch, chain, open_=request.linked))
            chain = []
        else:
            result = _apply_one(batch, request)
            results.append(result)
    return results


def _apply_chain(
    batch: _Batch, chain: list[TransferRequest], *, open_: bool
) -> list[TransferResult]:
    if open_:
        # The last request says "linked" but nothing follows it: refuse the whole chain.
        failed_at = len(chain) - 1
        return [
            TransferResult(
                r.id, R.LINKED_EVENT_CHAIN_OPEN if i == failed_at else R.LINKED_EVENT_FAILED
            )
            for i, r in enumerate(chain)
        ]
    batch.begin_chain()
    results: list[TransferResult] = []
    # A retried chain that was committed before answers EXISTS for every member;
    # a chain that is partly new and partly existing is refused (ids were reused).
    replay = False
    for request in chain:
        result = _apply_one(batch, request)
        if not results:
            replay = result.code is R.EXISTS
        expected = R.EXISTS if replay else R.OK
        if result.code is not expected:
            failed = len(results)
            batch.undo_chain()
            out = [TransferResult(r.id, R.LINKED_EVENT_FAILED) for r in chain]
            # Never answer ok for an effect that is not in the ledger: a new member breaking
            # a replayed chain (OK, undone), or EXISTS for an id only this chain had created.
            if not result.code.ok or request.id in batch.state.transfers:
                out[failed] = result
            return out
        results.append(result)
    batch.end_chain()
    return results


def apply_batch(
    submissions: Sequence[Sequence[TransferRequest]],
    state: LedgerState,
    now: datetime,
    limits: LedgerLimits,
    *,
    due: Iterable[Transfer] = (),
) -> tuple[list[list[TransferResult]], ChangeSet]:
    """Decide a batch. ``due`` are pending transfers whose timeout has passed."""
    batch = _Batch(state, now, limits)
    for pending in due:
        current = state.transfers.get(pending.id, pending)
        if current.status is PendingStatus.PENDING:
            state.transfers[pending.id] = current
            _expire(batch, current)
    results = [_apply_submission(batch, requests) for requests in submissions]
    rejections = batch.changes.rejections
    for submission_results, requests in zip(results, submissions, strict=True):
        for result, request in zip(submission_results, requests, strict=True):
            code = result.code
            if code is not _OK and code is not _EXISTS:  # not code.ok, without the call
                rejections.append(Rejection(request.id, code, request, now))
    return results, batch.changes


def validate_account(account: Account, limits: LedgerLimits) -> AccountResultCode:
    A = AccountResultCode
    if not isinstance(account.id, str) or not account.id:
        return A.ID_MUST_NOT_BE_EMPTY
    if len(account.id) > limits.id_max_length:
        return A.ID_TOO_LONG
    if not isinstance(account.owner_kind, OwnerKind):
        return A.OWNER_KIND_UNKNOWN
    if not account.owner_id:
        return A.OWNER_ID_MUST_NOT_BE_EMPTY
    if not is_known(account.currency):
        return A.CURRENCY_UNKNOWN
    if not account.purpose:
        return A.PURPOSE_MUST_NOT_BE_EMPTY
    both = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS | AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
    if account.flags & both == both:
        return A.FLAGS_ARE_MUTUALLY_EXCLUSIVE
    if account.metadata and not _metadata_ok(account.metadata, limits):
        return A.METADATA_INVALID
    return A.OK


def compare_account(account: Account, existing: Account) -> AccountResultCode:
    A = AccountResultCode
    if (account.owner_kind, account.owner_id) != (existing.owner_kind, existing.owner_id):
        return A.EXISTS_WITH_DIFFERENT_OWNER
    if account.currency != existing.currency:
        return A.EXISTS_WITH_DIFFERENT_CURRENCY
    if account.purpose != existing.purpose:
        return A.EXISTS_WITH_DIFFERENT_PURPOSE
    if account.flags != existing.flags:
        return A.EXISTS_WITH_DIFFERENT_FLAGS
    if dict(account.metadata) != dict(existing.metadata):
        return A.EXISTS_WITH_DIFFERENT_METADATA
    return A.EXISTS


def decide_accounts(
    accounts: Sequence[Account], existing: Mapping[str, Account], limits: LedgerLimits
) -> tuple[list[AccountResult], list[Account]]:
    """Results for a batch of new accounts and the ones to insert."""
    seen: dict[str, Account] = dict(existing)
    results: list[AccountResult] = []
    new: list[Account] = []
    for account in accounts:
        code = validate_account(account, limits)
        if code is AccountResultCode.OK and account.id in seen:
            code = compare_account(account, seen[account.id])
        if code is AccountResultCode.OK:
            seen[account.id] = account
            new.append(account)
        results.append(AccountResult(account.id, code))
    return results, new
