"""The one keyset-pagination rule every store follows (tally.kernel.page)."""

from __future__ import annotations

import pytest

from tally.kernel.page import (
    CURSOR_MAX_DIGITS,
    InvalidCursor,
    Page,
    decode_cursor,
    encode_cursor,
    fetch_size,
    page_from_rows,
)


def test_no_cursor_starts_at_the_beginning() -> None:
    assert decode_cursor(None) == 0
    assert decode_cursor("") == 0


def test_a_cursor_is_the_decimal_key_of_the_last_item_shown() -> None:
    assert encode_cursor(42) == "42"
    assert decode_cursor(encode_cursor(42)) == 42


@pytest.mark.parametrize(
    "bad", ["abc", "-1", "+1", " 1", "1.0", "٣", "1" * (CURSOR_MAX_DIGITS + 1)]
)
def test_a_malformed_cursor_is_refused_with_an_error_that_names_it(bad: str) -> None:
    with pytest.raises(InvalidCursor, match="invalid cursor") as caught:
        decode_cursor(bad)
    assert isinstance(caught.value, ValueError)
    assert caught.value.cursor == bad


def test_a_store_fetches_one_row_more_than_the_page_to_know_whether_another_follows() -> None:
    assert fetch_size(10) == 11
    # A page holds at least one item, so a zero or negative limit still makes progress.
    assert fetch_size(0) == 2


def test_a_page_from_rows_keeps_limit_items_and_points_after_the_last_one_shown() -> None:
    rows = [(7, "a"), (9, "b"), (12, "c")]
    page = page_from_rows(rows, 2, key=lambda r: r[0], item=lambda r: r[1])
    assert page == Page(["a", "b"], "9")


def test_a_page_that_holds_every_remaining_row_has_no_next_cursor() -> None:
    rows = [(7, "a"), (9, "b")]
    assert page_from_rows(rows, 2, key=lambda r: r[0], item=lambda r: r[1]) == Page(
        ["a", "b"], None
    )
    assert page_from_rows([], 2, key=lambda r: r[0], item=lambda r: r[1]) == Page([], None)
