"""Seals (ADR 0023): the figures by hand, the chain by an independent computation, and
every kind of tampering named by key."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tally.lifecycle.seal import (
    EVENT_LOG,
    TRANSFERS,
    Period,
    RowIndex,
    Seal,
    SealBuilder,
    Sums,
    name_row_differences,
)


def transfer(seq: int, amount: int, currency: str, tid: str = "") -> tuple[object, ...]:
    return (
        seq,
        tid or f"t{seq}",
        "single",
        "player:p1:" + currency,
        "operator:o1:" + currency,
        amount,
        currency,
        "bet",
        None,
        0,
        None,
        None,
        None,
        1_764_547_200_000_000 + seq,
        1_764_547_200_000_000 + seq,
        f"sw:{seq}:bet",
        None,
    )


def sealed(rows: list[tuple[object, ...]], name: str = "transfers/2025-12") -> SealBuilder:
    b = SealBuilder(TRANSFERS, name)
    b.add_rows(rows)
    return b


def test_a_seal_counts_rows_and_sums_each_currency_by_hand() -> None:
    rows = [transfer(1, 150, "EUR"), transfer(2, 1, "JPY"), transfer(3, 50, "EUR")]
    seal = sealed(rows).seal()
    assert seal.rows == 3
    assert (seal.first_key, seal.last_key) == (1, 3)
    # 150 + 50 EUR, 1 JPY; each transfer is a debit leg and a credit leg of its amount.
    assert seal.sums == {"EUR": Sums(200, 200), "JPY": Sums(1, 1)}


def test_the_chain_is_what_an_independent_computation_of_the_stated_recipe_gives() -> None:
    rows = [transfer(1, 150, "EUR"), transfer(2, 7, "EUR", tid="é-ünicode")]
    seal = sealed(rows, "transfers/2025-12").seal()
    # Recomputed from the ADR's words, with the standard library's JSON, not orjson.
    seed = hashlib.blake2b(b"tally-seal/1\0transfers/2025-12").digest()[:32]
    chained = seed
    for r in rows:
        line = json.dumps(list(r), separators=(",", ":"), ensure_ascii=False).encode()
        chained += hashlib.blake2b(line, digest_size=16).digest()
    h = hashlib.blake2b(chained, digest_size=32).digest()
    assert seal.head == h.hex()


def test_the_same_rows_fed_in_other_batches_give_the_same_seal() -> None:
    rows = [transfer(i, i * 3 + 1, "EUR") for i in range(1, 50)]
    whole = sealed(rows).seal()
    b = SealBuilder(TRANSFERS, "transfers/2025-12")
    for i in range(0, len(rows), 7):
        b.add_rows(rows[i : i + 7])
    assert b.seal() == whole


def test_a_seal_depends_on_the_partition_it_names() -> None:
    rows = [transfer(1, 1, "EUR")]
    a, b = sealed(rows, "transfers/2025-12"), sealed(rows, "transfers/2026-01")
    assert a.seal().head != b.seal().head


def test_a_seal_survives_its_json_form_and_names_each_difference() -> None:
    a = sealed([transfer(1, 150, "EUR"), transfer(2, 5, "EUR")]).seal()
    assert Seal.from_dict(json.loads(json.dumps(a.to_dict()))) == a
    b = sealed([transfer(1, 150, "EUR")]).seal()
    found = a.differences(b)
    assert any(p.startswith("row count: sealed 2, found 1") for p in found)
    assert any("EUR sums: sealed debits 155 credits 155, found debits 150" in p for p in found)
    assert any("hash chain" in p for p in found)
    assert a.differences(a) == []


def test_an_event_log_seal_has_no_money_sums() -> None:
    b = SealBuilder(EVENT_LOG, "event_log/2025-12")
    b.add_rows([(1, "k1", '{"amount": 5}', 10), (2, "k2", "{}", 11)])
    assert b.seal().rows == 2
    assert b.seal().sums == {}


def test_periods_are_utc_months_and_days() -> None:
    p = Period.parse("2025-12")
    assert (p.start, p.end) == (datetime(2025, 12, 1, tzinfo=UTC), datetime(2026, 1, 1, tzinfo=UTC))
    assert p.next().name == "2026-01"
    d = Period.parse("2024-02-29")
    assert d.end == datetime(2024, 3, 1, tzinfo=UTC)
    assert d.name == "2024-02-29"
    with pytest.raises(ValueError, match="is not a period"):
        Period.parse("2025-13")


def index_of(rows: list[tuple[object, ...]]) -> RowIndex:
    return RowIndex.from_bytes(sealed(rows).index_bytes())


BASE = [transfer(i, 100 + i, "EUR") for i in range(1, 9)]


@pytest.mark.parametrize(
    ("tamper", "named"),
    [
        (lambda rs: [*rs[:3], transfer(4, 999, "EUR"), *rs[4:]], ["row seq=4 was changed"]),
        (lambda rs: rs[:5] + rs[6:], ["row seq=6 was removed"]),
        (lambda rs: [*rs, transfer(99, 1, "EUR")], ["row seq=99 was added (not in the seal)"]),
        (
            lambda rs: [rs[0], rs[2], rs[1], *rs[3:]],
            ["rows were reordered: row seq=3 stands where row seq=2 was sealed"],
        ),
        (lambda rs: [*rs[:2], rs[2], rs[2], *rs[3:]], ["row seq=3 appears more than once"]),
    ],
)
def test_each_kind_of_tampering_is_named_by_key(tamper: object, named: list[str]) -> None:
    sealed_index = index_of(BASE)
    found = sealed(tamper(list(BASE)))  # type: ignore[operator]
    assert name_row_differences("seq", sealed_index, found.index()) == named
    assert found.seal().head != sealed(BASE).seal().head


@settings(max_examples=60, deadline=None)
@given(
    amounts=st.lists(
        st.tuples(st.integers(1, 10**12), st.sampled_from(["EUR", "USD", "JPY"])),
        min_size=2,
        max_size=40,
    ),
    data=st.data(),
)
def test_any_single_change_to_any_row_is_named_and_breaks_the_chain(
    amounts: list[tuple[int, str]], data: st.DataObject
) -> None:
    rows = [transfer(i + 1, a, c) for i, (a, c) in enumerate(amounts)]
    at = data.draw(st.integers(0, len(rows) - 1))
    field = data.draw(st.sampled_from([1, 5, 6, 15]))  # id, amount, currency, event_ref
    changed = list(rows[at])
    changed[field] = changed[field] + 1 if isinstance(changed[field], int) else f"{changed[field]}x"
    tampered = [*rows[:at], tuple(changed), *rows[at + 1 :]]
    found = sealed(tampered)
    assert name_row_differences("seq", index_of(rows), found.index()) == [
        f"row seq={at + 1} was changed"
    ]
    assert found.seal().head != sealed(rows).seal().head
    # Sums per currency still add up to the hand total of what is there now.
    total: dict[str, int] = {}
    for r in tampered:
        total[str(r[6])] = total.get(str(r[6]), 0) + int(r[5])  # type: ignore[call-overload]
    assert {c: s.debits for c, s in found.seal().sums.items()} == total
