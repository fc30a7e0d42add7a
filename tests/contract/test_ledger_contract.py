"""The ledger contract: every store (memory, SQLite, PostgreSQL) answers the same way.

Each test runs once per store of the ``ledger_store`` fixture. Stores are driven
directly (``create_accounts`` / ``apply``) and, where it matters, through LedgerService.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tally.kernel.clock import FixedClock
from tally.kernel.page import InvalidCursor
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
from tally.ledger.service import LedgerClosed, LedgerService
from tests.conftest import START

R = ResultCode
A = AccountResultCode
WALLET = AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS
CREDIT_LINE = AccountFlags.CREDITS_MUST_NOT_EXCEED_DEBITS
T1 = START + timedelta(minutes=1)
T2 = START + timedelta(minutes=2)
T3 = START + timedelta(minutes=3)


def account(
    aid: str,
    currency: str = "EUR",
    flags: AccountFlags = AccountFlags.NONE,
    owner: tuple[OwnerKind, str] = (OwnerKind.OPERATOR, "op1"),
    purpose: str = "float",
    metadata: dict[str, str] | None = None,
) -> Account:
    return Account(aid, owner[0], owner[1], currency, purpose, flags, metadata or {})


def single(tid: str, dr: str, cr: str, amount: Any, currency: str = "EUR", **kw: Any):
    return TransferRequest(tid, dr, cr, amount, currency, kw.pop("code", "bet"), **kw)


def pending(tid: str, dr: str, cr: str, amount: int, timeout_s: int = 0, **kw: Any):
    return single(tid, dr, cr, amount, kind=TransferKind.PENDING, timeout_s=timeout_s, **kw)


def post(tid: str, pending_id: str, amount: int | None = None, **kw: Any) -> TransferRequest:
    return TransferRequest(tid, amount=amount, kind=TransferKind.POST, pending_id=pending_id, **kw)


def void(tid: str, pending_id: str, **kw: Any) -> TransferRequest:
    return TransferRequest(tid, kind=TransferKind.VOID, pending_id=pending_id, **kw)


def apply(store: Any, *requests: TransferRequest, now: datetime = START) -> list[ResultCode]:
    [results] = store.apply([list(requests)], now)
    assert [r.id for r in results] == [q.id for q in requests]
    return [r.code for r in results]


def bal(store: Any, aid: str, at: datetime | None = None) -> tuple[int, int, int, int]:
    b = store.balance(aid, at)
    assert b is not None
    return (b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted)


def snapshot(store: Any, ids: list[str]) -> dict[str, tuple[int, int, int, int]]:
    return {a: bal(store, a) for a in ids}


def all_rejections(store: Any) -> list[Any]:
    out: list[Any] = []
    cursor = None
    while True:
        page = store.rejections(cursor=cursor, limit=2)
        out.extend(page.items)
        if page.next_cursor is None:
            return out
        cursor = page.next_cursor


def assert_nets_to_zero(store: Any) -> None:
    for currency, total in store.totals_by_currency().items():
        assert total.debits_posted == total.credits_posted, currency
        assert total.debits_pending == total.credits_pending, currency


@pytest.fixture
def store(ledger_store: Any) -> Any:
    """A store with a funded bank, two EUR wallets, a credit line and a JPY account."""
    results = ledger_store.create_accounts(
        [
            account("bank"),
            account("w1", flags=WALLET, owner=(OwnerKind.PLAYER, "p1"), purpose="wallet"),
            account("w2", flags=WALLET, owner=(OwnerKind.PLAYER, "p2"), purpose="wallet"),
            account("line", flags=CREDIT_LINE, purpose="credit_line"),
            account("jpy", currency="JPY"),
            account("jpy2", currency="JPY"),
        ],
        START,
    )
    assert [r.code for r in results] == [A.OK] * 6
    assert apply(ledger_store, single("fund-w1", "bank", "w1", 10_000)) == [R.OK]
    return ledger_store


ACCOUNTS = ["bank", "w1", "w2", "line", "jpy", "jpy2"]


# -- accounts
def test_an_account_is_created_once_and_a_repeat_answers_exists(ledger_store: Any) -> None:
    acc = account("a1", metadata={"region": "eu"})
    assert [r.code for r in ledger_store.create_accounts([acc], START)] == [A.OK]
    assert [r.code for r in ledger_store.create_accounts([acc], T1)] == [A.EXISTS]
    assert ledger_store.get_account("a1") == acc
    assert ledger_store.balance("a1") == Balance()
    assert ledger_store.get_account("nope") is None
    assert ledger_store.balance("nope") is None


@pytest.mark.parametrize(
    ("changed", "code"),
    [
        (account("a1", owner=(OwnerKind.PARTNER, "op1")), A.EXISTS_WITH_DIFFERENT_OWNER),
        (account("a1", owner=(OwnerKind.OPERATOR, "op2")), A.EXISTS_WITH_DIFFERENT_OWNER),
        (account("a1", currency="USD"), A.EXISTS_WITH_DIFFERENT_CURRENCY),
        (account("a1", purpose="fees"), A.EXISTS_WITH_DIFFERENT_PURPOSE),
        (account("a1", flags=WALLET), A.EXISTS_WITH_DIFFERENT_FLAGS),
        (account("a1", metadata={"k": "v"}), A.EXISTS_WITH_DIFFERENT_METADATA),
    ],
)
def test_an_account_id_reused_with_other_content_is_refused_and_the_first_is_kept(
    ledger_store: Any, changed: Account, code: AccountResultCode
) -> None:
    original = account("a1")
    ledger_store.create_accounts([original], START)
    assert [r.code for r in ledger_store.create_accounts([changed], T1)] == [code]
    assert ledger_store.get_account("a1") == original


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (account(""), A.ID_MUST_NOT_BE_EMPTY),
        (account("x" * 129), A.ID_TOO_LONG),
        (account("a1", owner=(OwnerKind.OPERATOR, "")), A.OWNER_ID_MUST_NOT_BE_EMPTY),
        (account("a1", currency="XXX"), A.CURRENCY_UNKNOWN),
        (account("a1", purpose=""), A.PURPOSE_MUST_NOT_BE_EMPTY),
        (account("a1", flags=WALLET | CREDIT_LINE), A.FLAGS_ARE_MUTUALLY_EXCLUSIVE),
        (account("a1", metadata={"": "v"}), A.METADATA_INVALID),
    ],
)
def test_an_invalid_account_gets_its_code_and_is_not_created(
    ledger_store: Any, bad: Account, code: AccountResultCode
) -> None:
    results = ledger_store.create_accounts([bad, account("ok")], START)
    assert [r.code for r in results] == [code, A.OK]
    assert ledger_store.get_account(bad.id) is None
    assert ledger_store.get_account("ok") is not None


def test_the_same_account_twice_in_one_call_is_created_once(ledger_store: Any) -> None:
    results = ledger_store.create_accounts([account("a1"), account("a1")], START)
    assert [r.code for r in results] == [A.OK, A.EXISTS]


# -- single transfers
def test_a_transfer_moves_money_and_is_stored_as_sent(store: Any) -> None:
    occurred = datetime(2025, 12, 31, 23, 59, 59, 123456, tzinfo=UTC)
    request = single(
        "t1", "w1", "w2", 2_500, occurred_at=occurred, event_ref="ev-1", metadata={"round": "r9"}
    )
    [result] = store.apply([[request]], T1)[0]
    assert result.code is R.OK
    assert bal(store, "w1") == (0, 2_500, 0, 10_000)
    assert bal(store, "w2") == (0, 0, 0, 2_500)
    stored = store.get_transfer("t1")
    expected = Transfer(
        id="t1",
        kind=TransferKind.SINGLE,
        debit_account_id="w1",
        credit_account_id="w2",
        amount=2_500,
        currency="EUR",
        code="bet",
        occurred_at=occurred,
        recorded_at=T1,
        event_ref="ev-1",
        metadata={"round": "r9"},
    )
    assert stored == expected
    assert result.transfer == expected
    assert_nets_to_zero(store)


@pytest.mark.parametrize(
    "text",
    ['quote " and backslash \\', "Zürich ¥ 日本 🎰", '[1, 2] {"a": null}', "tab\tnewline\n"],
)
def test_text_is_stored_exactly_as_sent(store: Any, text: str) -> None:
    """Every text a transfer carries comes back byte for byte, whatever characters it
    holds (the embedded store sends its rows to SQLite as JSON, ADR 0015)."""
    request = single(
        f"t-{text}",
        "bank",
        "w2",
        2**62,
        code=f"c-{text}"[:32],
        event_ref=f"ev-{text}",
        metadata={"note": text, text: "key"},
    )
    assert apply(store, request) == [R.OK]
    stored = store.get_transfer(f"t-{text}")
    assert stored is not None
    assert (stored.id, stored.code, stored.event_ref, dict(stored.metadata), stored.amount) == (
        f"t-{text}",
        f"c-{text}"[:32],
        f"ev-{text}",
        {"note": text, text: "key"},
        2**62,
    )
    # Refused requests are kept as sent too.
    assert apply(store, single(f"r-{text}", "bank", "ghost", 1, code="c")) == [
        R.CREDIT_ACCOUNT_NOT_FOUND
    ]
    assert [r.transfer_id for r in all_rejections(store)] == [f"r-{text}"]


def test_occurred_at_defaults_to_the_recording_time(store: Any) -> None:
    apply(store, single("t1", "w1", "w2", 1), now=T2)
    stored = store.get_transfer("t1")
    assert stored.occurred_at == T2 == stored.recorded_at


def test_replaying_a_transfer_answers_exists_and_changes_nothing(store: Any) -> None:
    request = single("t1", "w1", "w2", 700)
    assert apply(store, request, now=T1) == [R.OK]
    before = snapshot(store, ACCOUNTS)
    [[again]] = store.apply([[request]], T2)
    assert again.code is R.EXISTS
    assert again.transfer == store.get_transfer("t1")
    assert again.transfer.recorded_at == T1
    assert snapshot(store, ACCOUNTS) == before
    assert all_rejections(store) == []


def test_the_same_id_twice_in_one_submission_is_applied_once(store: Any) -> None:
    request = single("t1", "w1", "w2", 700)
    assert apply(store, request, request) == [R.OK, R.EXISTS]
    assert bal(store, "w2") == (0, 0, 0, 700)


@pytest.mark.parametrize(
    ("reused", "code"),
    [
        (pending("t1", "w1", "w2", 700), R.EXISTS_WITH_DIFFERENT_KIND),
        (single("t1", "bank", "w2", 700), R.EXISTS_WITH_DIFFERENT_DEBIT_ACCOUNT_ID),
        (single("t1", "w1", "bank", 700), R.EXISTS_WITH_DIFFERENT_CREDIT_ACCOUNT_ID),
        (single("t1", "w1", "w2", 701), R.EXISTS_WITH_DIFFERENT_AMOUNT),
        (single("t1", "w1", "w2", 700, "USD"), R.EXISTS_WITH_DIFFERENT_CURRENCY),
        (single("t1", "w1", "w2", 700, code="win"), R.EXISTS_WITH_DIFFERENT_CODE),
        (
            single("t1", "w1", "w2", 700, occurred_at=T3),
            R.EXISTS_WITH_DIFFERENT_OCCURRED_AT,
        ),
        (single("t1", "w1", "w2", 700, event_ref="x"), R.EXISTS_WITH_DIFFERENT_EVENT_REF),
        (single("t1", "w1", "w2", 700, metadata={"a": "b"}), R.EXISTS_WITH_DIFFERENT_METADATA),
    ],
)
def test_an_id_reused_with_other_content_gets_its_code_and_writes_nothing(
    store: Any, reused: TransferRequest, code: ResultCode
) -> None:
    original = single("t1", "w1", "w2", 700)
    apply(store, original, now=T1)
    before = snapshot(store, ACCOUNTS)
    assert apply(store, reused, now=T2) == [code]
    assert snapshot(store, ACCOUNTS) == before
    assert store.get_transfer("t1").amount == 700
    assert store.get_transfer("t1").code == "bet"
    [rejection] = all_rejections(store)
    assert (rejection.transfer_id, rejection.code, rejection.rejected_at) == ("t1", code, T2)


BAD_REQUESTS = [
    ("zero amount", single("b", "w1", "w2", 0), R.AMOUNT_MUST_BE_POSITIVE),
    ("negative amount", single("b", "w1", "w2", -5), R.AMOUNT_MUST_BE_POSITIVE),
    ("float amount", single("b", "w1", "w2", 5.0), R.AMOUNT_MUST_BE_INTEGER),
    ("string amount", single("b", "w1", "w2", "5"), R.AMOUNT_MUST_BE_INTEGER),
    ("bool amount", single("b", "w1", "w2", True), R.AMOUNT_MUST_BE_INTEGER),
    ("missing amount", single("b", "w1", "w2", None), R.AMOUNT_MUST_BE_INTEGER),
    ("too large", single("b", "w1", "w2", 2**63), R.AMOUNT_TOO_LARGE),
    ("unknown currency", single("b", "w1", "w2", 5, "XXX"), R.CURRENCY_UNKNOWN),
    ("empty currency", single("b", "w1", "w2", 5, ""), R.CURRENCY_MUST_NOT_BE_EMPTY),
    (
        "currency mismatch",
        single("b", "w1", "w2", 5, "USD"),
        R.TRANSFER_CURRENCY_MUST_MATCH_ACCOUNTS,
    ),
    (
        "accounts differ in currency",
        single("b", "bank", "jpy", 5),
        R.ACCOUNTS_MUST_HAVE_THE_SAME_CURRENCY,
    ),
    ("same account twice", single("b", "w1", "w1", 5), R.ACCOUNTS_MUST_BE_DIFFERENT),
    ("unknown debit account", single("b", "ghost", "w2", 5), R.DEBIT_ACCOUNT_NOT_FOUND),
    ("unknown credit account", single("b", "w1", "ghost", 5), R.CREDIT_ACCOUNT_NOT_FOUND),
    ("empty debit account", single("b", "", "w2", 5), R.DEBIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY),
    ("empty credit account", single("b", "w1", "", 5), R.CREDIT_ACCOUNT_ID_MUST_NOT_BE_EMPTY),
    ("overdraft", single("b", "w1", "w2", 10_001), R.EXCEEDS_CREDITS),
    ("credit line exceeded", single("b", "bank", "line", 1), R.EXCEEDS_DEBITS),
    ("empty id", single("", "w1", "w2", 5), R.ID_MUST_NOT_BE_EMPTY),
    ("empty code", single("b", "w1", "w2", 5, code=""), R.CODE_MUST_NOT_BE_EMPTY),
    (
        "naive occurred_at",
        single("b", "w1", "w2", 5, occurred_at=datetime(2026, 1, 1)),
        R.OCCURRED_AT_MUST_BE_AWARE,
    ),
    (
        "timeout on single",
        single("b", "w1", "w2", 5, timeout_s=60),
        R.TIMEOUT_RESERVED_FOR_PENDING_TRANSFER,
    ),
    (
        "pending id on single",
        single("b", "w1", "w2", 5, pending_id="p"),
        R.PENDING_ID_MUST_BE_EMPTY,
    ),
    ("post of nothing", post("b", "ghost"), R.PENDING_TRANSFER_NOT_FOUND),
    ("post of a single", post("b", "fund-w1"), R.PENDING_TRANSFER_NOT_PENDING),
    ("post without pending id", post("b", ""), R.PENDING_ID_MUST_NOT_BE_EMPTY),
    ("post of itself", post("b", "b"), R.PENDING_ID_MUST_BE_DIFFERENT),
]


@pytest.mark.parametrize(
    ("request_", "code"), [(r, c) for _, r, c in BAD_REQUESTS], ids=[n for n, _, _ in BAD_REQUESTS]
)
def test_bad_input_gets_its_specific_code_writes_nothing_and_is_kept_with_its_reason(
    store: Any, request_: TransferRequest, code: ResultCode
) -> None:
    before = snapshot(store, ACCOUNTS)
    [[result]] = store.apply([[request_]], T1)
    assert result.code is code
    assert result.transfer is None
    assert not code.ok
    assert snapshot(store, ACCOUNTS) == before
    if isinstance(request_.id, str) and request_.id:
        assert store.get_transfer(request_.id) is None
    assert store.account_transfers("w2").items == []
    [rejection] = all_rejections(store)
    assert rejection.code is code
    assert rejection.transfer_id == request_.id
    assert rejection.rejected_at == T1
    assert rejection.request.debit_account_id == request_.debit_account_id
    assert rejection.request.kind == request_.kind
    assert_nets_to_zero(store)


def test_a_wallet_pays_out_exactly_what_it_holds_and_not_one_unit_more(store: Any) -> None:
    assert apply(store, single("t1", "w1", "w2", 10_000)) == [R.OK]
    assert bal(store, "w1") == (0, 10_000, 0, 10_000)
    assert apply(store, single("t2", "w1", "w2", 1)) == [R.EXCEEDS_CREDITS]
    assert R.EXCEEDS_CREDITS.transient


def test_a_credit_line_takes_credits_only_up_to_its_debits(store: Any) -> None:
    assert apply(store, single("d", "line", "bank", 300)) == [R.OK]
    assert apply(store, single("c1", "bank", "line", 300)) == [R.OK]
    assert apply(store, single("c2", "bank", "line", 1)) == [R.EXCEEDS_DEBITS]
    assert bal(store, "line") == (0, 300, 0, 300)


def test_a_refused_request_may_succeed_later_unchanged_when_its_code_is_transient(
    store: Any,
) -> None:
    request = single("t1", "w2", "bank", 50)
    assert apply(store, request) == [R.EXCEEDS_CREDITS]
    apply(store, single("top-up", "bank", "w2", 50))
    assert apply(store, request) == [R.OK]
    assert [r.code for r in all_rejections(store)] == [R.EXCEEDS_CREDITS]


def test_a_jpy_transfer_moves_whole_yen(store: Any) -> None:
    assert apply(store, single("y", "jpy", "jpy2", 1500, "JPY")) == [R.OK]
    assert bal(store, "jpy2") == (0, 0, 0, 1500)
    assert store.totals_by_currency()["JPY"] == Balance(0, 1500, 0, 1500)


def test_totals_by_currency_add_up_beyond_the_64_bit_range_of_one_account(
    ledger_store: Any,
) -> None:
    big = 2**63 - 1
    names = ["b1", "b2", "a1", "a2"]
    ledger_store.create_accounts([account(n, currency="ETH") for n in names], START)
    requests = [single("t1", "b1", "a1", big, "ETH"), single("t2", "b2", "a2", big, "ETH")]
    assert apply(ledger_store, *requests) == [R.OK, R.OK]
    assert apply(ledger_store, single("t3", "b1", "a1", 1, "ETH")) == [R.OVERFLOWS_DEBITS]
    assert ledger_store.totals_by_currency()["ETH"] == Balance(0, 2 * big, 0, 2 * big)


def test_good_and_bad_requests_in_one_batch_are_decided_independently(store: Any) -> None:
    results = store.apply(
        [
            [single("a", "w1", "w2", 1), single("b", "w1", "w2", 0)],
            [single("c", "w1", "ghost", 1), single("d", "w1", "w2", 2)],
        ],
        T1,
    )
    assert [[r.code for r in rs] for rs in results] == [
        [R.OK, R.AMOUNT_MUST_BE_POSITIVE],
        [R.CREDIT_ACCOUNT_NOT_FOUND, R.OK],
    ]
    assert bal(store, "w2") == (0, 0, 0, 3)
    assert [r.transfer_id for r in all_rejections(store)] == ["b", "c"]


# -- two-phase transfers
def test_a_pending_transfer_reserves_and_a_full_post_moves_it(store: Any) -> None:
    assert apply(store, pending("p", "w1", "w2", 4_000), now=T1) == [R.OK]
    assert bal(store, "w1") == (4_000, 0, 0, 10_000)
    assert bal(store, "w2") == (0, 0, 4_000, 0)
    assert store.get_transfer("p").status is PendingStatus.PENDING
    assert apply(store, post("p-post", "p"), now=T2) == [R.OK]
    assert bal(store, "w1") == (0, 4_000, 0, 10_000)
    assert bal(store, "w2") == (0, 0, 0, 4_000)
    posted = store.get_transfer("p")
    assert (posted.status, posted.resolved_at) == (PendingStatus.POSTED, T2)
    follow = store.get_transfer("p-post")
    assert (follow.kind, follow.amount, follow.pending_id) == (TransferKind.POST, 4_000, "p")
    assert (follow.debit_account_id, follow.credit_account_id) == ("w1", "w2")
    assert_nets_to_zero(store)


def test_a_partial_post_moves_the_part_and_releases_the_rest(store: Any) -> None:
    apply(store, pending("p", "w1", "w2", 4_000))
    assert apply(store, post("p-post", "p", 1_500)) == [R.OK]
    assert bal(store, "w1") == (0, 1_500, 0, 10_000)
    assert bal(store, "w2") == (0, 0, 0, 1_500)
    assert store.get_transfer("p-post").amount == 1_500


def test_a_void_releases_the_reservation(store: Any) -> None:
    apply(store, pending("p", "w1", "w2", 4_000))
    assert apply(store, void("p-void", "p"), now=T1) == [R.OK]
    assert bal(store, "w1") == (0, 0, 0, 10_000)
    assert bal(store, "w2") == (0, 0, 0, 0)
    assert store.get_transfer("p").status is PendingStatus.VOIDED
    assert store.get_transfer("p-void").amount == 4_000


def test_a_reservation_counts_against_a_wallet_until_it_is_released(store: Any) -> None:
    apply(store, pending("p", "w1", "w2", 9_000))
    assert apply(store, single("t", "w1", "w2", 1_001)) == [R.EXCEEDS_CREDITS]
    assert apply(store, pending("p2", "w1", "w2", 1_001)) == [R.EXCEEDS_CREDITS]
    apply(store, void("v", "p"))
    assert apply(store, single("t", "w1", "w2", 1_001)) == [R.OK]


@pytest.mark.parametrize(
    ("first", "second", "code"),
    [
        (post("f1", "p"), post("f2", "p"), R.PENDING_TRANSFER_ALREADY_POSTED),
        (post("f1", "p"), void("f2", "p"), R.PENDING_TRANSFER_ALREADY_POSTED),
        (void("f1", "p"), post("f2", "p"), R.PENDING_TRANSFER_ALREADY_VOIDED),
        (void("f1", "p"), void("f2", "p"), R.PENDING_TRANSFER_ALREADY_VOIDED),
    ],
)
def test_a_resolved_pending_transfer_cannot_be_resolved_again(
    store: Any, first: TransferRequest, second: TransferRequest, code: ResultCode
) -> None:
    apply(store, pending("p", "w1", "w2", 4_000))
    assert apply(store, first, now=T1) == [R.OK]
    before = snapshot(store, ACCOUNTS)
    assert apply(store, second, now=T2) == [code]
    assert snapshot(store, ACCOUNTS) == before
    assert store.get_transfer("f2") is None
    assert apply(store, first, now=T2) == [R.EXISTS]


@pytest.mark.parametrize(
    ("followup", "code"),
    [
        (post("f", "p", 4_001), R.EXCEEDS_PENDING_TRANSFER_AMOUNT),
        (void("f", "p", amount=3_999), R.PENDING_TRANSFER_HAS_DIFFERENT_AMOUNT),
        (
            post("f", "p", debit_account_id="bank"),
            R.PENDING_TRANSFER_HAS_DIFFERENT_DEBIT_ACCOUNT_ID,
        ),
        (
            post("f", "p", credit_account_id="bank"),
            R.PENDING_TRANSFER_HAS_DIFFERENT_CREDIT_ACCOUNT_ID,
        ),
        (post("f", "p", currency="USD"), R.PENDING_TRANSFER_HAS_DIFFERENT_CURRENCY),
        (post("f", "p", 0), R.AMOUNT_MUST_BE_POSITIVE),
    ],
)
def test_a_followup_that_does_not_match_its_pending_transfer_is_refused(
    store: Any, followup: TransferRequest, code: ResultCode
) -> None:
    apply(store, pending("p", "w1", "w2", 4_000))
    before = snapshot(store, ACCOUNTS)
    assert apply(store, followup) == [code]
    assert snapshot(store, ACCOUNTS) == before
    assert store.get_transfer("p").status is PendingStatus.PENDING


def test_a_pending_transfer_expires_after_its_timeout_when_the_ledger_next_applies(
    store: Any, clock: FixedClock
) -> None:
    apply(store, pending("p", "w1", "w2", 4_000, timeout_s=60), now=clock.now())
    assert store.get_transfer("p").expires_at == START + timedelta(seconds=60)
    clock.advance(timedelta(seconds=59))
    apply(store, now=clock.now())
    assert store.get_transfer("p").status is PendingStatus.PENDING
    clock.advance(timedelta(seconds=1))
    apply(store, now=clock.now())  # an empty submission still expires what is due
    expired = store.get_transfer("p")
    assert (expired.status, expired.resolved_at) == (PendingStatus.EXPIRED, clock.now())
    assert bal(store, "w1") == (0, 0, 0, 10_000)
    assert bal(store, "w2") == (0, 0, 0, 0)
    assert apply(store, post("f", "p"), now=clock.now()) == [R.PENDING_TRANSFER_EXPIRED]
    assert apply(store, void("g", "p"), now=clock.now()) == [R.PENDING_TRANSFER_EXPIRED]
    assert_nets_to_zero(store)


def test_a_post_arriving_after_the_timeout_finds_the_transfer_expired(
    store: Any, clock: FixedClock
) -> None:
    apply(store, pending("p", "w1", "w2", 4_000, timeout_s=1), now=clock.now())
    clock.advance(timedelta(seconds=5))
    assert apply(store, post("f", "p"), now=clock.now()) == [R.PENDING_TRANSFER_EXPIRED]
    assert store.get_transfer("p").status is PendingStatus.EXPIRED
    assert bal(store, "w1") == (0, 0, 0, 10_000)
    assert store.get_transfer("f") is None


def test_a_pending_transfer_without_timeout_never_expires(store: Any) -> None:
    apply(store, pending("p", "w1", "w2", 4_000))
    apply(store, now=START + timedelta(days=400))
    assert store.get_transfer("p").status is PendingStatus.PENDING
    assert store.get_transfer("p").expires_at is None


def test_a_timeout_beyond_the_limit_is_refused(store: Any) -> None:
    assert apply(store, pending("p", "w1", "w2", 1, timeout_s=30 * 86_400 + 1)) == [
        R.TIMEOUT_OUT_OF_RANGE
    ]
    assert apply(store, pending("p", "w1", "w2", 1, timeout_s=-1)) == [R.TIMEOUT_OUT_OF_RANGE]


# -- linked chains
def chain(*requests: TransferRequest) -> list[TransferRequest]:
    """Link every request to the next one (the last closes the chain)."""
    last = len(requests) - 1
    return [TransferRequest(**{**_fields(r), "linked": i < last}) for i, r in enumerate(requests)]


def _fields(r: TransferRequest) -> dict[str, Any]:
    return {f: getattr(r, f) for f in TransferRequest.__slots__}


def test_a_linked_chain_commits_as_a_whole(store: Any) -> None:
    links = chain(single("c1", "w1", "w2", 100), single("c2", "w2", "bank", 60))
    assert apply(store, *links) == [R.OK, R.OK]
    assert bal(store, "w2") == (0, 60, 0, 100)


def test_a_failing_link_fails_the_whole_chain_and_writes_nothing(store: Any) -> None:
    before = snapshot(store, ACCOUNTS)
    links = chain(
        single("c1", "w1", "w2", 100),
        pending("c2", "bank", "w2", 5),
        single("c3", "w2", "bank", 500),  # w2 holds only 100: overdraft
        single("c4", "bank", "w1", 1),
    )
    assert apply(store, *links) == [
        R.LINKED_EVENT_FAILED,
        R.LINKED_EVENT_FAILED,
        R.EXCEEDS_CREDITS,
        R.LINKED_EVENT_FAILED,
    ]
    assert snapshot(store, ACCOUNTS) == before
    assert [store.get_transfer(t) for t in ("c1", "c2", "c3", "c4")] == [None] * 4
    assert {r.transfer_id: r.code for r in all_rejections(store)} == {
        "c1": R.LINKED_EVENT_FAILED,
        "c2": R.LINKED_EVENT_FAILED,
        "c3": R.EXCEEDS_CREDITS,
        "c4": R.LINKED_EVENT_FAILED,
    }
    # The same chain, once w2 can pay, goes through.
    apply(store, single("top", "bank", "w2", 400))
    assert apply(store, *links) == [R.OK] * 4


def test_a_failed_chain_leaves_earlier_and_later_requests_of_the_submission_alone(
    store: Any,
) -> None:
    requests = [
        single("before", "bank", "w2", 10),
        *chain(single("c1", "w2", "bank", 5), single("c2", "w1", "w1", 5)),
        single("after", "bank", "w2", 20),
    ]
    assert apply(store, *requests) == [
        R.OK,
        R.LINKED_EVENT_FAILED,
        R.ACCOUNTS_MUST_BE_DIFFERENT,
        R.OK,
    ]
    assert bal(store, "w2") == (0, 0, 0, 30)


def test_a_failed_chain_undoes_a_post_it_made_and_the_pending_stays_open(store: Any) -> None:
    apply(store, pending("p", "w1", "w2", 4_000))
    links = chain(post("f", "p"), single("boom", "w2", "bank", 999_999))
    assert apply(store, *links) == [R.LINKED_EVENT_FAILED, R.EXCEEDS_CREDITS]
    assert store.get_transfer("p").status is PendingStatus.PENDING
    assert bal(store, "w1") == (4_000, 0, 0, 10_000)
    assert apply(store, post("f", "p")) == [R.OK]


def test_a_chain_naming_the_same_id_twice_fails_and_claims_nothing(store: Any) -> None:
    links = chain(single("c1", "w1", "w2", 100), single("c1", "w1", "w2", 100))
    assert apply(store, *links) == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED]
    assert store.get_transfer("c1") is None
    assert bal(store, "w2") == (0, 0, 0, 0)


def test_a_chain_left_open_at_the_end_of_the_submission_is_refused(store: Any) -> None:
    open_chain = [
        TransferRequest(**{**_fields(single("c1", "w1", "w2", 1)), "linked": True}),
        TransferRequest(**{**_fields(single("c2", "w1", "w2", 1)), "linked": True}),
    ]
    assert apply(store, *open_chain) == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_CHAIN_OPEN]
    assert bal(store, "w2") == (0, 0, 0, 0)


def test_replaying_a_committed_chain_answers_exists_for_every_member(store: Any) -> None:
    links = chain(single("c1", "w1", "w2", 100), single("c2", "w2", "bank", 60))
    apply(store, *links, now=T1)
    before = snapshot(store, ACCOUNTS)
    assert apply(store, *links, now=T2) == [R.EXISTS, R.EXISTS]
    assert snapshot(store, ACCOUNTS) == before


def test_a_chain_mixing_committed_and_new_ids_is_refused(store: Any) -> None:
    apply(store, single("c1", "w1", "w2", 100), now=T1)
    before = snapshot(store, ACCOUNTS)
    links = chain(single("c1", "w1", "w2", 100), single("c2", "w2", "bank", 60))
    # c2 is new but its chain was committed before without it: nothing of it may stick,
    # and no member may be answered OK.
    assert apply(store, *links, now=T2) == [R.LINKED_EVENT_FAILED, R.LINKED_EVENT_FAILED]
    assert store.get_transfer("c2") is None
    assert snapshot(store, ACCOUNTS) == before
    assert [(r.transfer_id, r.code) for r in all_rejections(store)] == [
        ("c1", R.LINKED_EVENT_FAILED),
        ("c2", R.LINKED_EVENT_FAILED),
    ]


def test_a_chain_whose_later_member_was_committed_before_is_refused(store: Any) -> None:
    apply(store, single("top", "bank", "w2", 60), single("c2", "w2", "bank", 60), now=T1)
    links = chain(single("c1", "w1", "w2", 100), single("c2", "w2", "bank", 60))
    # c2 really is in the ledger, so it may say so; c1 must not commit without it.
    assert apply(store, *links, now=T2) == [R.LINKED_EVENT_FAILED, R.EXISTS]
    assert store.get_transfer("c1") is None
    assert bal(store, "w1") == (0, 0, 0, 10_000)


# -- history, listing, owners, rejections
def test_the_balance_at_a_past_instant_counts_only_what_was_recorded_by_then(
    store: Any,
) -> None:
    apply(store, single("t1", "w1", "w2", 100), now=T1)
    apply(store, pending("p", "w1", "w2", 40), now=T2)
    apply(store, post("f", "p", 30), now=T3)
    before = START - timedelta(microseconds=1)
    assert bal(store, "w2", before) == (0, 0, 0, 0)
    assert bal(store, "w1", START) == (0, 0, 0, 10_000)
    assert bal(store, "w2", T1 - timedelta(microseconds=1)) == (0, 0, 0, 0)
    assert bal(store, "w2", T1) == (0, 0, 0, 100)
    assert bal(store, "w2", T2) == (0, 0, 40, 100)
    assert bal(store, "w1", T2 + timedelta(seconds=30)) == (40, 100, 0, 10_000)
    assert bal(store, "w2", T3) == (0, 0, 0, 130)
    assert bal(store, "w2", T3 + timedelta(days=1)) == bal(store, "w2")
    assert bal(store, "w1", T3) == bal(store, "w1")


def test_the_balance_at_a_past_instant_shows_a_reservation_until_it_expired(
    store: Any, clock: FixedClock
) -> None:
    apply(store, pending("p", "w1", "w2", 40, timeout_s=10), now=T1)
    apply(store, now=T2)
    assert bal(store, "w1", T1) == (40, 0, 0, 10_000)
    assert bal(store, "w1", T2) == (0, 0, 0, 10_000)


def test_account_transfers_come_oldest_first_a_page_at_a_time(store: Any) -> None:
    ids = []
    for i in range(7):
        ids.append(f"t{i}")
        # Unrelated transfers in between must not appear in w2's list.
        apply(store, single(f"t{i}", "w1", "w2", i + 1), single(f"x{i}", "bank", "w1", 1))
    pages = []
    cursor = None
    while True:
        page = store.account_transfers("w2", cursor=cursor, limit=3)
        pages.append([t.id for t in page.items])
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == [ids[:3], ids[3:6], ids[6:]]
    everything = store.account_transfers("w1", limit=100)
    assert [t.id for t in everything.items][:3] == ["fund-w1", "t0", "x0"]
    assert len(everything.items) == 15
    assert everything.next_cursor is None


def test_a_page_that_ends_exactly_at_the_last_transfer_has_no_next_cursor(store: Any) -> None:
    apply(store, single("t1", "w1", "w2", 1), single("t2", "w1", "w2", 1))
    page = store.account_transfers("w2", limit=2)
    assert [t.id for t in page.items] == ["t1", "t2"]
    assert page.next_cursor is None
    assert store.account_transfers("nobody").items == []


@pytest.mark.parametrize("bad", ["abc", "-1", "1" * 19])
def test_a_malformed_cursor_is_refused_by_both_listings(store: Any, bad: str) -> None:
    with pytest.raises(InvalidCursor):
        store.account_transfers("w2", cursor=bad)
    with pytest.raises(InvalidCursor):
        store.rejections(cursor=bad)


def test_balances_by_owner_lists_the_owners_accounts_by_id(store: Any) -> None:
    store.create_accounts(
        [
            account("w1-usd", currency="USD", owner=(OwnerKind.PLAYER, "p1"), purpose="wallet"),
            account("w0", owner=(OwnerKind.PLAYER, "p1"), purpose="bonus"),
        ],
        START,
    )
    apply(store, single("t1", "w1", "w0", 25))
    found = store.balances_by_owner(OwnerKind.PLAYER, "p1")
    assert [(a.id, b) for a, b in found] == [
        ("w0", Balance(0, 0, 0, 25)),
        ("w1", Balance(0, 25, 0, 10_000)),
        ("w1-usd", Balance()),
    ]
    assert [a.id for a, _ in store.balances_by_owner(OwnerKind.PLAYER, "p1", "USD")] == ["w1-usd"]
    assert store.balances_by_owner(OwnerKind.OPERATOR, "p1") == []


def test_balances_by_owners_reads_several_owners_accounts_at_once(store: Any) -> None:
    store.create_accounts(
        [
            account("w1-usd", currency="USD", owner=(OwnerKind.PLAYER, "p1"), purpose="wallet"),
            account("w3", owner=(OwnerKind.PLAYER, "p3"), purpose="wallet"),
            account("op", owner=(OwnerKind.OPERATOR, "p1"), purpose="float"),
        ],
        START,
    )
    apply(store, single("t1", "w1", "w3", 25))
    found = store.balances_by_owners(OwnerKind.PLAYER, ["p3", "p1", "nobody"])
    assert [a.id for a, _ in found] == ["w1", "w1-usd", "w3"]
    assert dict((a.id, b) for a, b in found)["w3"] == Balance(0, 0, 0, 25)
    assert found == [
        *store.balances_by_owner(OwnerKind.PLAYER, "p1"),
        *store.balances_by_owner(OwnerKind.PLAYER, "p3"),
    ]
    assert store.balances_by_owners(OwnerKind.PLAYER, []) == []


def test_balances_reads_the_accounts_named_in_one_go_and_leaves_unknown_ones_out(
    store: Any,
) -> None:
    apply(store, single("t1", "w1", "w2", 25), pending("t2", "w1", "w2", 5))
    found = store.balances(["w2", "ghost", "w1", "w2"])
    assert found == {"w1": store.balance("w1"), "w2": store.balance("w2")}
    assert found["w1"] == Balance(5, 25, 0, 10_000)
    assert found["w2"] == Balance(0, 0, 5, 25)
    assert store.balances([]) == {}


def test_rejections_are_listed_in_order_a_page_at_a_time(store: Any) -> None:
    for i in range(5):
        apply(store, single(f"r{i}", "w1", "ghost", 1), now=START + timedelta(seconds=i))
    first = store.rejections(limit=2)
    assert [r.transfer_id for r in first.items] == ["r0", "r1"]
    assert first.next_cursor is not None
    everything = all_rejections(store)
    assert [r.transfer_id for r in everything] == [f"r{i}" for i in range(5)]
    assert everything[4].rejected_at == START + timedelta(seconds=4)
    assert everything[4].request == single("r4", "w1", "ghost", 1)
    assert store.rejections(limit=5).next_cursor is None


def test_a_rejection_keeps_the_request_as_received_even_with_odd_types(store: Any) -> None:
    apply(store, single("odd", "w1", "w2", 5.5))
    [rejection] = all_rejections(store)
    assert rejection.code is R.AMOUNT_MUST_BE_INTEGER
    assert rejection.request.id == "odd"
    assert str(rejection.request.amount) == "5.5"


# -- through the ledger service
def test_many_threads_each_get_their_own_results_in_order(store: Any, clock: FixedClock) -> None:
    threads_n, per_thread = 8, 25
    store.create_accounts(
        [account(f"src{n}") for n in range(threads_n)]
        + [account(f"dst{n}", flags=WALLET) for n in range(threads_n)],
        START,
    )
    outcomes: dict[int, list[list[tuple[str, ResultCode]]]] = {}
    with LedgerService(store, clock) as service:

        def worker(n: int) -> None:
            got = []
            for i in range(per_thread):
                requests = [
                    single(f"{n}-{i}-a", f"src{n}", f"dst{n}", i + 1),
                    single(f"{n}-{i}-b", f"dst{n}", f"src{n}", 10_000),  # always overdraws
                ]
                got.append([(r.id, r.code) for r in service.transfer(requests)])
            outcomes[n] = got

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(threads_n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for n in range(threads_n):
        assert outcomes[n] == [
            [(f"{n}-{i}-a", R.OK), (f"{n}-{i}-b", R.EXCEEDS_CREDITS)] for i in range(per_thread)
        ]
        expected = sum(range(1, per_thread + 1))
        assert bal(store, f"dst{n}") == (0, 0, 0, expected)
    assert service.stats.transfers == threads_n * per_thread * 2
    assert_nets_to_zero(store)


def test_the_service_reads_what_the_store_holds(store: Any, clock: FixedClock) -> None:
    with LedgerService(store, clock) as service:
        [result] = service.transfer([single("t1", "w1", "w2", 5)])
        assert result.code is R.OK
        assert service.get_transfer("t1") == result.transfer
        assert service.balance("w2") == Balance(0, 0, 0, 5)
        assert service.balances(["w2"]) == {"w2": Balance(0, 0, 0, 5)}
        assert service.account("w2") == store.get_account("w2")
        assert [t.id for t in service.account_transfers("w2").items] == ["t1"]
        assert [a.id for a, _ in service.balances_by_owner(OwnerKind.PLAYER, "p2")] == ["w2"]
        service.transfer([single("t2", "w1", "w2", 0)])
        assert [r.transfer_id for r in service.rejections().items] == ["t2"]
        assert [r.code for r in service.create_accounts([account("new")])] == [A.OK]


def test_the_service_expires_pending_transfers_when_the_clock_has_moved(
    store: Any, clock: FixedClock
) -> None:
    with LedgerService(store, clock) as service:
        service.transfer([pending("p", "w1", "w2", 4_000, timeout_s=30)])
        clock.advance(timedelta(seconds=31))
        assert [r.code for r in service.transfer([post("f", "p")])] == [R.PENDING_TRANSFER_EXPIRED]
    assert store.get_transfer("p").status is PendingStatus.EXPIRED
    assert bal(store, "w1") == (0, 0, 0, 10_000)


def test_stop_drains_what_was_submitted_and_then_refuses_more(
    store: Any, clock: FixedClock
) -> None:
    service = LedgerService(store, clock).start()
    futures = [service.submit([single(f"t{i}", "bank", "w2", 1)]) for i in range(50)]
    service.stop()
    assert all(f.done() for f in futures)
    assert [f.result()[0].code for f in futures] == [R.OK] * 50
    assert bal(store, "w2") == (0, 0, 0, 50)
    with pytest.raises(LedgerClosed):
        service.submit([single("late", "bank", "w2", 1)])
