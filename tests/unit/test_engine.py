"""The pure ledger engine: which result code each request gets, and in which order."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.kernel.limits import LedgerLimits
from tally.kernel.money import INT64_MAX
from tally.ledger import engine
from tally.ledger.model import (
    Account,
    AccountFlags,
    AccountResultCode,
    Balance,
    OwnerKind,
    PendingStatus,
    ResultCode,
    Transfer,
    TransferKind,
    TransferRequest,
)

R = ResultCode
A = AccountResultCode
NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
LIMITS = LedgerLimits()
WALLET = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CREDIT_LINE = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS


def acc(aid: str, currency: str = "EUR", flags: AccountFlags = AccountFlags.NONE) -> Account:
    return Account(aid, OwnerKind.OPERATOR, "op", currency, "float", flags)


def req(tid: str = "t", dr: str = "a", cr: str = "b", amount: Any = 10, **kw: Any):
    kw.setdefault("currency", "EUR")
    kw.setdefault("code", "bet")
    return TransferRequest(tid, dr, cr, amount, **kw)


def state(*accounts: Account, balances: dict[str, Balance] | None = None, transfers=()):
    balances = balances or {}
    return engine.LedgerState(
        accounts={a.id: a for a in accounts},
        balances={a.id: balances.get(a.id, Balance()) for a in accounts},
        transfers={t.id: t for t in transfers},
    )


def decide(st_: engine.LedgerState, *requests: TransferRequest, now: datetime = NOW, due=()):
    results, changes = engine.apply_batch([list(requests)], st_, now, LIMITS, due=due)
    return [r.code for r in results[0]], changes


def funded() -> engine.LedgerState:
    return state(
        acc("a", flags=WALLET),
        acc("b"),
        acc("line", flags=CREDIT_LINE),
        acc("y", "JPY"),
        balances={"a": Balance(credits_posted=100)},
    )


def pending_transfer(
    tid: str = "p", amount: int = 50, status: PendingStatus = PendingStatus.PENDING, **kw: Any
) -> Transfer:
    return Transfer(
        id=tid,
        kind=TransferKind.PENDING,
        debit_account_id="a",
        credit_account_id="b",
        amount=amount,
        currency="EUR",
        code="hold",
        occurred_at=NOW,
        recorded_at=NOW,
        status=status,
        **kw,
    )


# -- result codes -------------------------------------------------------------------------
def test_only_ok_and_exists_mean_the_effect_is_in_the_ledger() -> None:
    assert {c for c in ResultCode if c.ok} == {R.OK, R.EXISTS}
    assert {c for c in AccountResultCode if c.ok} == {A.OK, A.EXISTS}


def test_the_transient_codes_are_those_that_may_pass_later_unchanged() -> None:
    assert {c for c in ResultCode if c.transient} == {
        R.DEBIT_ACCOUNT_NOT_FOUND,
        R.CREDIT_ACCOUNT_NOT_FOUND,
        R.PENDING_TRANSFER_NOT_FOUND,
        R.EXCEEDS_CREDITS,
        R.EXCEEDS_DEBITS,
        R.LINKED_EVENT_FAILED,
    }
    assert R.EXCEEDS_CREDITS.slug == "exceeds_credits"


def test_result_codes_are_numbered_densely_in_check_order() -> None:
    assert [int(c) for c in ResultCode] == list(range(len(ResultCode)))


# -- validation order: a request with several faults gets the earliest code ---------------
# Each fault is independent of the others and has the code it would get on its own.
FAULTS: dict[str, tuple[dict[str, Any], ResultCode]] = {
    "id_empty": ({"id": ""}, R.ID_MUST_NOT_BE_EMPTY),
    "id_long": ({"id": "x" * 129}, R.ID_TOO_LONG),
    "amount_float": ({"amount": 10.0}, R.AMOUNT_MUST_BE_INTEGER),
    "amount_zero": ({"amount": 0}, R.AMOUNT_MUST_BE_POSITIVE),
    "amount_negative": ({"amount": -1}, R.AMOUNT_MUST_BE_POSITIVE),
    "amount_huge": ({"amount": INT64_MAX + 1}, R.AMOUNT_TOO_LARGE),
    "debit_empty": ({"debit_account_id": ""}, R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY),
    "credit_empty": ({"credit_account_id": ""}, R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY),
    "same_account": ({"credit_account_id": "a"}, R.ACCOUNTS_MUST_BE_DIFFERENT),
    "currency_empty": ({"currency": ""}, R.CURRENCY_MUST_NOT_BE_EMPTY),
    "currency_unknown": ({"currency": "XXX"}, R.CURRENCY_UNKNOWN),
    "code_empty": ({"code": ""}, R.CODE_MUST_NOT_BE_EMPTY),
    "code_long": ({"code": "c" * 65}, R.CODE_TOO_LONG),
    "pending_id": ({"pending_id": "p"}, R.PENDING_ID_MUST_BE_EMPTY),
    "timeout": ({"timeout_s": 5}, R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER),
    "naive_time": ({"occurred_at": datetime(2026, 1, 1)}, R.OCCURRED_AT_MUST_BE_AWARE),
    "metadata": ({"metadata": {"": "x"}}, R.METADATA_INVALID),
}
# Faults that set the same field cannot be combined.
GROUPS = [
    ["id_empty", "id_long"],
    ["amount_float", "amount_zero", "amount_negative", "amount_huge"],
    ["debit_empty", "credit_empty", "same_account"],
    ["currency_empty", "currency_unknown"],
    ["code_empty", "code_long"],
    ["pending_id"],
    ["timeout"],
    ["naive_time"],
    ["metadata"],
]


@st.composite
def faulty_requests(draw: st.DrawFn) -> tuple[TransferRequest, ResultCode]:
    chosen = [draw(st.sampled_from([None, *group])) for group in GROUPS]
    chosen = [c for c in chosen if c is not None]
    fields: dict[str, Any] = {}
    for name in chosen:
        fields.update(FAULTS[name][0])
    expected = min((FAULTS[n][1] for n in chosen), default=R.OK)
    return replace(req(), **fields), expected


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_each_fault_on_its_own_gets_its_own_code(name: str) -> None:
    fields, code = FAULTS[name]
    assert engine.validate_request(replace(req(), **fields), LIMITS) is code


@settings(max_examples=300, deadline=None)
@given(faulty_requests())
def test_a_request_with_several_faults_gets_the_earliest_code(
    case: tuple[TransferRequest, ResultCode],
) -> None:
    request, expected = case
    assert engine.validate_request(request, LIMITS) is expected
    # The same holds inside a batch, whatever the state: validation comes first.
    existing = Transfer("t", TransferKind.SINGLE, "a", "b", 99, "EUR", "x", NOW, NOW)
    codes, changes = decide(funded() if expected else state(), request)
    if expected is not R.OK:
        assert codes == [expected]
        assert changes.created == [] and changes.balances == {}
        codes, _ = decide(replace(funded(), transfers={"t": existing}), request)
        assert codes == [expected]


def test_a_post_with_an_amount_but_nothing_else_is_valid() -> None:
    request = TransferRequest("f", amount=5, kind=TransferKind.POST, pending_id="p")
    assert engine.validate_request(request, LIMITS) is R.OK
    no_amount = TransferRequest("f", kind=TransferKind.VOID, pending_id="p")
    assert engine.validate_request(no_amount, LIMITS) is R.OK


def test_a_pending_transfer_may_carry_a_timeout_up_to_the_limit() -> None:
    base = req(kind=TransferKind.PENDING)
    assert engine.validate_request(replace(base, timeout_s=30 * 86_400), LIMITS) is R.OK
    over = replace(base, timeout_s=30 * 86_400 + 1)
    assert engine.validate_request(over, LIMITS) is R.TIMEOUT_OUT_OF_RANGE
    assert engine.validate_request(replace(base, timeout_s=1.5), LIMITS) is R.TIMEOUT_OUT_OF_RANGE


def test_a_kind_that_is_not_a_transfer_kind_is_refused() -> None:
    assert engine.validate_request(req(kind="single"), LIMITS) is R.KIND_UNKNOWN  # type: ignore[arg-type]


def test_a_followup_naming_itself_as_its_pending_transfer_is_refused() -> None:
    request = TransferRequest("f", kind=TransferKind.POST, pending_id="f")
    assert engine.validate_request(request, LIMITS) is R.PENDING_ID_MUST_BE_DIFFERENT
    missing = TransferRequest("f", kind=TransferKind.VOID)
    assert engine.validate_request(missing, LIMITS) is R.PENDING_ID_MUST_NOT_BE_EMPTY


# -- decisions that need state, in order --------------------------------------------------
@pytest.mark.parametrize(
    ("request_", "code"),
    [
        # Both accounts unknown: the debit side is named first.
        (req(dr="ghost1", cr="ghost2"), R.DEBIT_ACCOUNT_NOT_FOUND),
        # Unknown credit account beats a currency that matches nothing.
        (req(cr="ghost", currency="USD"), R.CREDIT_ACCOUNT_NOT_FOUND),
        # Accounts of different currencies beat a transfer currency matching neither.
        (req(cr="y", currency="USD"), R.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY),
        (req(currency="JPY"), R.TRANSFER_CURRENCY_MUST_MATCH_ACCOUNTS),
        # An overdraft on a wallet into a full credit line: the debit rule comes first.
        (req(cr="line", amount=101), R.EXCEEDS_CREDITS),
        (req(dr="b", cr="line", amount=1), R.EXCEEDS_DEBITS),
        (req(amount=100), R.OK),
    ],
)
def test_state_checks_run_in_code_order(request_: TransferRequest, code: ResultCode) -> None:
    assert decide(funded(), request_)[0] == [code]


def test_an_overflow_is_reported_before_a_balance_rule() -> None:
    full = {"a": Balance(debits_posted=INT64_MAX - 5, credits_posted=INT64_MAX - 5)}
    st_ = state(acc("a", flags=WALLET), acc("b"), balances=full)
    assert decide(st_, req(amount=10))[0] == [R.OVERFLOWS_DEBITS]
    st_ = state(acc("a"), acc("b"), balances={"b": Balance(credits_posted=INT64_MAX)})
    assert decide(st_, req(amount=1))[0] == [R.OVERFLOWS_CREDITS]
    # Pending plus posted together may not pass the 64-bit range either.
    st_ = state(acc("a"), acc("b"), balances={"a": Balance(debits_pending=INT64_MAX)})
    assert decide(st_, req(amount=1))[0] == [R.OVERFLOWS_DEBITS]


def test_a_reused_id_is_judged_before_the_accounts_are_looked_up() -> None:
    existing = Transfer("t", TransferKind.SINGLE, "a", "b", 10, "EUR", "bet", NOW, NOW)
    st_ = replace(state(), transfers={"t": existing})
    assert decide(st_, req(dr="ghost"))[0] == [R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID]
    assert decide(st_, req())[0] == [R.EXISTS]


def test_a_reused_id_differing_in_everything_names_the_earliest_field() -> None:
    existing = Transfer("t", TransferKind.SINGLE, "a", "b", 10, "EUR", "bet", NOW, NOW)
    everything = TransferRequest(
        "t", "c", "d", 11, "USD", "win", TransferKind.PENDING, "", 5, NOW, "e", {"k": "v"}
    )
    assert engine.compare_existing(everything, existing) is R.EXISTS_WITH_DIFFERENT_KIND
    fields = [
        ("debit_account_id", "c", R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
        ("credit_account_id", "d", R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
        ("amount", 11, R.EXISTS_WITH_DIFFERENT_AMOUNT),
        ("currency", "USD", R.EXISTS_WITH_DIFFERENT_CURRENCY),
        ("code", "win", R.EXISTS_WITH_DIFFERENT_CODE),
        ("pending_id", "p", R.EXISTS_WITH_DIFFERENT_PENDING_ID),
        ("timeout_s", 5, R.EXISTS_WITH_DIFFERENT_TIMEOUT),
        ("occurred_at", NOW + timedelta(1), R.EXISTS_WITH_DIFFERENT_OCCURRED_AT),
        ("event_ref", "e", R.EXISTS_WITH_DIFFERENT_EVENT_REF),
        ("metadata", {"k": "v"}, R.EXISTS_WITH_DIFFERENT_METADATA),
    ]
    request = req()
    assert engine.compare_existing(request, existing) is R.EXISTS
    # Change fields from the last to the first: the answer always names the earliest.
    for field, value, code in reversed(fields):
        request = replace(request, **{field: value})
        assert engine.compare_existing(request, existing) is code


@pytest.mark.parametrize(
    ("status", "followup", "code"),
    [
        (PendingStatus.PENDING, dict(amount=51), R.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        # Too large an amount is reported before the transfer's state.
        (PendingStatus.POSTED, dict(amount=51), R.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        (
            PendingStatus.POSTED,
            dict(debit_account_id="b"),
            R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        ),
        (PendingStatus.VOIDED, dict(currency="USD"), R.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY),
        (PendingStatus.POSTED, {}, R.PENDING_TRANSFER_ALREADY_POSTED),
        (PendingStatus.VOIDED, {}, R.PENDING_TRANSFER_ALREADY_VOIDED),
        (PendingStatus.EXPIRED, {}, R.PENDING_TRANSFER_EXPIRED),
        (PendingStatus.PENDING, {}, R.OK),
    ],
)
def test_a_followup_is_checked_against_its_pending_transfer_in_code_order(
    status: PendingStatus, followup: dict[str, Any], code: ResultCode
) -> None:
    st_ = replace(funded(), transfers={"p": pending_transfer(status=status)})
    st_.balances["a"] = Balance(debits_pending=50, credits_posted=100)
    st_.balances["b"] = Balance(credits_pending=50)
    request = TransferRequest("f", kind=TransferKind.POST, pending_id="p", **followup)
    assert decide(st_, request)[0] == [code]


def test_a_followup_of_a_transfer_that_is_not_pending_is_refused() -> None:
    single = Transfer("s", TransferKind.SINGLE, "a", "b", 10, "EUR", "bet", NOW, NOW)
    st_ = replace(funded(), transfers={"s": single})
    request = TransferRequest("f", kind=TransferKind.VOID, pending_id="s")
    assert decide(st_, request)[0] == [R.PENDING_TRANSFER_NOT_PENDING]
    assert decide(funded(), replace(request, pending_id="none"))[0] == [
        R.PENDING_TRANSFER_NOT_FOUND
    ]


def test_a_post_after_the_timeout_expires_the_reservation_in_the_same_decision() -> None:
    st_ = replace(funded(), transfers={"p": pending_transfer(timeout_s=10)})
    st_.balances["a"] = Balance(debits_pending=50, credits_posted=100)
    st_.balances["b"] = Balance(credits_pending=50)
    later = NOW + timedelta(seconds=10)
    request = TransferRequest("f", kind=TransferKind.POST, pending_id="p")
    codes, changes = decide(st_, request, now=later)
    assert codes == [R.PENDING_TRANSFER_EXPIRED]
    assert changes.resolved["p"].status is PendingStatus.EXPIRED
    assert changes.resolved["p"].resolved_at == later
    assert changes.balances["a"] == Balance(credits_posted=100)
    assert changes.balances["b"] == Balance()
    # One microsecond earlier it was still good.
    st_ = replace(funded(), transfers={"p": pending_transfer(timeout_s=10)})
    st_.balances["a"] = Balance(debits_pending=50, credits_posted=100)
    st_.balances["b"] = Balance(credits_pending=50)
    assert decide(st_, request, now=later - timedelta(microseconds=1))[0] == [R.OK]


def test_due_pending_transfers_are_expired_before_the_batch_is_decided() -> None:
    p = pending_transfer(amount=100, timeout_s=1)
    st_ = replace(funded(), transfers={})
    st_.balances["a"] = Balance(debits_pending=100, credits_posted=100)
    st_.balances["b"] = Balance(credits_pending=100)
    # With the reservation released, the wallet can pay 100 again.
    codes, changes = decide(st_, req(amount=100), now=NOW + timedelta(seconds=1), due=[p])
    assert codes == [R.OK]
    assert changes.resolved["p"].status is PendingStatus.EXPIRED
    assert changes.balances["a"] == Balance(debits_posted=100, credits_posted=100)


def test_a_due_transfer_resolved_meanwhile_is_left_alone() -> None:
    p = pending_transfer(amount=100, timeout_s=1)
    posted = replace(p, status=PendingStatus.POSTED, resolved_at=NOW)
    st_ = replace(funded(), transfers={"p": posted})
    _, changes = decide(st_, now=NOW + timedelta(seconds=5), due=[p])
    assert changes.resolved == {} and changes.balances == {}


# -- what a batch writes ------------------------------------------------------------------
def test_a_refused_request_changes_nothing_but_is_recorded_as_a_rejection() -> None:
    st_ = funded()
    bad = req(amount=101)
    codes, changes = decide(st_, bad)
    assert codes == [R.EXCEEDS_CREDITS]
    assert (changes.created, changes.resolved, changes.balances) == ([], {}, {})
    [rejection] = changes.rejections
    assert (rejection.transfer_id, rejection.code, rejection.request) == ("t", codes[0], bad)
    assert rejection.rejected_at == NOW
    assert st_.balances["a"] == Balance(credits_posted=100)


def test_exists_is_not_a_rejection() -> None:
    existing = Transfer("t", TransferKind.SINGLE, "a", "b", 10, "EUR", "bet", NOW, NOW)
    _, changes = decide(replace(funded(), transfers={"t": existing}), req())
    assert changes.rejections == [] and changes.created == []


def test_deciding_the_same_batch_twice_from_the_same_state_gives_the_same_answer() -> None:
    requests = [req("1", amount=60), req("2", amount=60), req("3", dr="b", cr="a", amount=5)]
    first = engine.apply_batch([requests], funded(), NOW, LIMITS)
    second = engine.apply_batch([requests], funded(), NOW, LIMITS)
    assert first[0] == second[0]
    assert first[1].balances == second[1].balances
    assert [r.code for r in first[0][0]] == [R.OK, R.EXCEEDS_CREDITS, R.OK]


def test_a_later_submission_sees_what_an_earlier_one_in_the_batch_did() -> None:
    results, _ = engine.apply_batch(
        [[req("1", amount=100)], [req("2", amount=1)], [req("1", amount=100)]],
        funded(),
        NOW,
        LIMITS,
    )
    assert [r[0].code for r in results] == [R.OK, R.EXCEEDS_CREDITS, R.EXISTS]


# -- linked chains ------------------------------------------------------------------------
def test_a_chain_failing_late_undoes_balances_and_resolutions_of_its_earlier_members() -> None:
    st_ = replace(funded(), transfers={"p": pending_transfer()})
    st_.balances["a"] = Balance(debits_pending=50, credits_posted=100)
    st_.balances["b"] = Balance(credits_pending=50)
    before = {k: v.copy() for k, v in st_.balances.items()}
    chain = [
        TransferRequest("f", kind=TransferKind.POST, pending_id="p", linked=True),
        replace(req("x", amount=10), linked=True),
        req("y", amount=1_000),
    ]
    codes, changes = decide(st_, *chain)
    assert codes == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]
    assert changes.created == [] and changes.resolved == {}
    assert {k: v for k, v in changes.balances.items() if v != before[k]} == {}
    assert st_.transfers["p"].status is PendingStatus.PENDING
    assert set(st_.transfers) == {"p"}
    assert [r.code for r in changes.rejections] == codes


def test_a_single_request_that_opens_a_chain_and_ends_the_submission_is_refused() -> None:
    codes, changes = decide(funded(), replace(req(), linked=True))
    assert codes == [R.LINKED_EVENT_CHAIN_OPEN]
    assert changes.balances == {}


def test_two_chains_in_one_submission_stand_or_fall_on_their_own() -> None:
    codes, _ = decide(
        funded(),
        replace(req("1", amount=10), linked=True),
        req("2", amount=10),
        replace(req("3", amount=10), linked=True),
        req("4", amount=1_000),
        req("5", amount=10),
    )
    assert codes == [R.OK, R.OK, R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS, R.OK]


def test_a_chain_member_with_invalid_input_names_its_own_fault() -> None:
    codes, _ = decide(funded(), replace(req("1"), linked=True), req("2", amount=0))
    assert codes == [R.LINKED_EVENT_FAILED, R.AMOUNT_MUST_BE_POSITIVE]


# -- accounts -----------------------------------------------------------------------------
def test_an_invalid_account_is_refused_by_its_fault_before_any_comparison() -> None:
    existing = {"a": acc("a")}
    bad = replace(acc("a", "XXX"), purpose="")
    results, new = engine.decide_accounts([bad], existing, LIMITS)
    assert [r.code for r in results] == [A.CURRENCY_UNKNOWN]
    assert new == []


def test_account_comparison_names_the_earliest_difference() -> None:
    existing = acc("a")
    other = Account("a", OwnerKind.PARTNER, "x", "USD", "fees", WALLET, {"k": "v"})
    assert engine.compare_account(other, existing) is A.EXISTS_WITH_DIFFERENT_OWNER
    other = replace(other, owner_kind=existing.owner_kind, owner_id=existing.owner_id)
    assert engine.compare_account(other, existing) is A.EXISTS_WITH_DIFFERENT_CURRENCY
    other = replace(other, currency="EUR")
    assert engine.compare_account(other, existing) is A.EXISTS_WITH_DIFFERENT_PURPOSE
    other = replace(other, purpose="float")
    assert engine.compare_account(other, existing) is A.EXISTS_WITH_DIFFERENT_FLAGS
    other = replace(other, flags=AccountFlags.NONE)
    assert engine.compare_account(other, existing) is A.EXISTS_WITH_DIFFERENT_METADATA
    assert engine.compare_account(replace(other, metadata={}), existing) is A.EXISTS


def test_an_owner_kind_that_is_not_known_is_refused() -> None:
    bad = replace(acc("a"), owner_kind="bank")  # type: ignore[arg-type]
    assert engine.validate_account(bad, LIMITS) is A.OWNER_KIND_UNKNOWN


@pytest.mark.parametrize(
    "metadata",
    [
        {f"k{i}": "v" for i in range(33)},
        {"k": "v" * 513},
        {"k" * 65: "v"},
        {"k": 1},
    ],
)
def test_metadata_beyond_its_limits_is_refused(metadata: dict[str, Any]) -> None:
    assert engine.validate_account(replace(acc("a"), metadata=metadata), LIMITS) is (
        A.METADATA_INVALID
    )
    assert engine.validate_request(req(metadata=metadata), LIMITS) is R.METADATA_INVALID


def test_a_replayed_chain_with_a_new_member_answers_no_member_ok() -> None:
    existing = Transfer("1", TransferKind.SINGLE, "a", "b", 10, "EUR", "bet", NOW, NOW)
    st_ = replace(funded(), transfers={"1": existing})
    codes, changes = decide(st_, replace(req("1"), linked=True), req("2"))
    assert codes == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED]
    assert changes.created == [] and "2" not in st_.transfers
    assert all(not (r.code.ok) for r in changes.rejections) and len(changes.rejections) == 2


def test_a_chain_repeating_its_own_id_fails_without_claiming_the_transfer_exists() -> None:
    st_ = funded()
    codes, changes = decide(st_, replace(req("1"), linked=True), req("1"))
    assert codes == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED]
    assert changes.created == [] and "1" not in st_.transfers
    assert len(changes.rejections) == 2


def test_a_chain_failing_on_an_id_committed_before_it_may_say_so() -> None:
    existing = Transfer("0", TransferKind.SINGLE, "a", "b", 10, "EUR", "bet", NOW, NOW)
    st_ = replace(funded(), transfers={"0": existing})
    results, _ = engine.apply_batch([[replace(req("1"), linked=True), req("0")]], st_, NOW, LIMITS)
    assert [r.code for r in results[0]] == [R.LINKED_EVENT_FAILED, R.EXISTS]
    assert results[0][1].transfer == existing
