"""One page of a listing, and the one keyset-pagination rule every store follows.

A listing is ordered by an integer key that only grows (a row's ``seq`` or ``id``, or an
in-memory position plus one). The cursor of the next page is the key of the last item shown,
written in decimal; the next page holds the items whose key is greater. A store asks for one
row more than the page (``fetch_size``) so that it knows whether another page follows
without counting, and ``page_from_rows`` turns those rows into the page. Keyset rather than
offset pagination: a page stays correct while rows are appended behind it.

Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

# Keys are 63-bit integers in every store; 18 digits is the longest that always fits.
CURSOR_MAX_DIGITS = 18


class InvalidCursor(ValueError):
    """A cursor that no page of ours ever handed out: refused, never read as the first page."""

    def __init__(self, cursor: str) -> None:
        super().__init__(
            f"invalid cursor {cursor[:40]!r}: expected the next_cursor of a previous page "
            f"(1 to {CURSOR_MAX_DIGITS} decimal digits)"
        )
        self.cursor = cursor


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None


def decode_cursor(cursor: str | None) -> int:
    """The key after which the page starts: 0 (before every key) without a cursor."""
    if not cursor:
        return 0
    # isascii: str.isdigit also accepts other scripts' digits, which no cursor of ours has.
    if len(cursor) > CURSOR_MAX_DIGITS or not (cursor.isascii() and cursor.isdigit()):
        raise InvalidCursor(cursor)
    return int(cursor)


def encode_cursor(key: int) -> str:
    return str(key)


def fetch_size(limit: int) -> int:
    """Rows to fetch for a page of ``limit`` items: one more tells whether another follows.

    A page holds at least one item, so that paging always makes progress.
    """
    return max(1, limit) + 1


def page_from_rows(
    rows: Sequence[R], limit: int, *, key: Callable[[R], int], item: Callable[[R], T]
) -> Page[T]:
    """The page of ``limit`` items from ``rows`` (in key order, at most ``fetch_size(limit)``
    of them): the next cursor is the key of the last item shown, if a row is left over."""
    shown = rows[: max(1, limit)]
    more = len(rows) > len(shown)
    return Page([item(r) for r in shown], encode_cursor(key(shown[-1])) if more else None)


__all__ = [
    "CURSOR_MAX_DIGITS",
    "InvalidCursor",
    "Page",
    "decode_cursor",
    "encode_cursor",
    "fetch_size",
    "page_from_rows",
]
