"""Seals: what a partition held, in a form that can be recomputed and compared (ADR 0023).

A partition is one table's rows of one period (and, on PostgreSQL, one region). Its seal
is the row count, the first and last key, the debit and credit sums per currency, and a
hash chain over its rows taken in a canonical order and encoding:

- order: ascending key (``seq`` for transfers, ``position`` for the event log);
- encoding: one JSON array per row, the values in the table's declared column order,
  compact (no spaces), UTF-8, integers as integers, text as strings, ``null`` for
  missing, instants as integer microseconds since the Unix epoch (UTC), so the same row
  encodes to the same bytes whichever store it came from;
- chain: each row's digest ``d_i = BLAKE2b-128(line_i)``, and the chain head
  ``h_n = BLAKE2b-256(seed || d_1 || d_2 || ... || d_n)`` with
  ``seed = BLAKE2b-512("tally-seal/1" 0x00 name)[:32]``: one running hash over the row
  digests in order. BLAKE2b itself chains: each 128-byte block (eight row digests) is
  compressed into the state the blocks before it left, so the head depends on every row
  and on their order, as a chain ``h_i = H(h_{i-1} || d_i)`` does, but the chaining runs
  in C over a whole batch instead of one Python call per row (ADR 0023: twice the rows a
  second).

The per-row digests (their first 8 bytes, beside each row's key) are the archive's index:
the chain says *whether* the rows are the sealed ones, the index says *which* row differs.

Pure: no I/O; callers hand rows in and get values back.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

SEAL_FORMAT = "tally-seal/1"
CHAIN_ALGORITHM = "blake2b-256 running hash of the seed and the blake2b-128 row digests"
# Bytes of each row digest kept in the index: enough to tell a changed row from its
# original (a 2^-64 chance of missing one), small enough that the index stays a few
# bytes a row. The chain, not the index, is what the signature vouches for.
INDEX_DIGEST_BYTES = 8
# Problems of one kind listed by key before the rest are only counted.
MAX_NAMED = 20

ColumnType = str  # "int" or "text"


@dataclass(frozen=True, slots=True)
class TableSpec:
    """A table as the lifecycle sees it: its columns in canonical order and their roles.

    ``amount``/``currency``: the money columns, when the table holds money: each row is
    one debit leg and one credit leg of that amount (a transfer), so the seal's debit and
    credit sums per currency must agree.
    """

    name: str
    columns: tuple[tuple[str, ColumnType], ...]
    key: str
    time: str
    amount: str | None = None
    currency: str | None = None
    instants: frozenset[str] = frozenset()

    def index_of(self, column: str) -> int:
        return [c for c, _ in self.columns].index(column)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)


TRANSFERS = TableSpec(
    name="transfers",
    columns=(
        ("seq", "int"),
        ("id", "text"),
        ("kind", "text"),
        ("debit_account_id", "text"),
        ("credit_account_id", "text"),
        ("amount", "int"),
        ("currency", "text"),
        ("code", "text"),
        ("pending_id", "text"),
        ("timeout_s", "int"),
        ("expires_at", "int"),
        ("status", "text"),
        ("resolved_at", "int"),
        ("occurred_at", "int"),
        ("recorded_at", "int"),
        ("event_ref", "text"),
        ("metadata", "text"),
    ),
    key="seq",
    time="recorded_at",
    amount="amount",
    currency="currency",
    instants=frozenset({"expires_at", "resolved_at", "occurred_at", "recorded_at"}),
)

EVENT_LOG = TableSpec(
    name="event_log",
    columns=(("position", "int"), ("key", "text"), ("body", "text"), ("recorded_at", "int")),
    key="position",
    time="recorded_at",
    instants=frozenset({"recorded_at"}),
)

# The ledger's refusals, partitioned by region and time on PostgreSQL (ADR 0023).
TRANSFER_REJECTIONS = TableSpec(
    name="transfer_rejections",
    columns=(
        ("seq", "int"),
        ("transfer_id", "text"),
        ("code", "int"),
        ("reason", "text"),
        ("request", "text"),
        ("rejected_at", "int"),
        ("region", "text"),
    ),
    key="seq",
    time="rejected_at",
    instants=frozenset({"rejected_at"}),
)

TABLES: Mapping[str, TableSpec] = {t.name: t for t in (TRANSFERS, EVENT_LOG, TRANSFER_REJECTIONS)}


def table_spec(name: str) -> TableSpec:
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(f"no sealable table {name!r} (known: {', '.join(TABLES)})") from None


# -- periods -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, order=True)
class Period:
    """A UTC calendar month ("2026-11") or day ("2026-11-03"): ``[start, end)``."""

    start: datetime
    end: datetime

    @classmethod
    def parse(cls, text: str) -> Period:
        try:
            if len(text) == 7:
                start = datetime.strptime(text, "%Y-%m").replace(tzinfo=UTC)
                return cls(start, _next_month(start))
            if len(text) == 10:
                start = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
                return cls(start, start + timedelta(days=1))
        except ValueError:
            pass
        raise ValueError(f"{text!r} is not a period: give a month (2026-11) or a day (2026-11-03)")

    @classmethod
    def containing(cls, when: datetime, grain: str) -> Period:
        when = when.astimezone(UTC)
        if grain == "month":
            return cls.parse(when.strftime("%Y-%m"))
        if grain == "day":
            return cls.parse(when.strftime("%Y-%m-%d"))
        raise ValueError(f"a period is a 'day' or a 'month', not {grain!r}")

    @property
    def name(self) -> str:
        if self.end - self.start == timedelta(days=1):
            return self.start.strftime("%Y-%m-%d")
        return self.start.strftime("%Y-%m")

    def next(self) -> Period:
        grain = "day" if self.end - self.start == timedelta(days=1) else "month"
        return Period.containing(self.end, grain)


def _next_month(start: datetime) -> datetime:
    return start.replace(year=start.year + (start.month == 12), month=start.month % 12 + 1)


# -- the seal ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sums:
    debits: int
    credits: int


@dataclass(frozen=True, slots=True)
class Seal:
    rows: int
    first_key: int | None
    last_key: int | None
    sums: Mapping[str, Sums]
    seed: str
    head: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "first_key": self.first_key,
            "last_key": self.last_key,
            # Amounts travel as strings: exact, whatever the reader's number type.
            "sums": {
                c: {"debits": str(s.debits), "credits": str(s.credits)}
                for c, s in sorted(self.sums.items())
            },
            "chain": {"algorithm": CHAIN_ALGORITHM, "seed": self.seed, "head": self.head},
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Seal:
        chain = d["chain"]
        if chain.get("algorithm") != CHAIN_ALGORITHM:
            raise ValueError(f"unknown chain algorithm {chain.get('algorithm')!r}")
        return cls(
            rows=int(d["rows"]),
            first_key=d["first_key"],
            last_key=d["last_key"],
            sums={c: Sums(int(s["debits"]), int(s["credits"])) for c, s in d["sums"].items()},
            seed=str(chain["seed"]),
            head=str(chain["head"]),
        )

    def differences(self, other: Seal) -> list[str]:
        """How ``other`` (recomputed) differs from this seal, one sentence each."""
        out: list[str] = []
        if other.rows != self.rows:
            out.append(f"row count: sealed {self.rows}, found {other.rows}")
        if (other.first_key, other.last_key) != (self.first_key, self.last_key):
            out.append(
                f"key range: sealed {self.first_key}..{self.last_key}, "
                f"found {other.first_key}..{other.last_key}"
            )
        for cur in sorted(set(self.sums) | set(other.sums)):
            a, b = self.sums.get(cur, Sums(0, 0)), other.sums.get(cur, Sums(0, 0))
            if a != b:
                out.append(
                    f"{cur} sums: sealed debits {a.debits} credits {a.credits}, "
                    f"found debits {b.debits} credits {b.credits}"
                )
        if other.head != self.head:
            out.append("hash chain: the rows' chain head differs from the sealed one")
        return out


def chain_seed(partition: str) -> bytes:
    return hashlib.blake2b(SEAL_FORMAT.encode() + b"\0" + partition.encode()).digest()[:32]


def encode_row(row: Sequence[Any]) -> bytes:
    """A row's canonical bytes (without the newline)."""
    return orjson.dumps(row if isinstance(row, tuple | list) else list(row))


@dataclass(slots=True)
class SealBuilder:
    """Feeds rows (in key order) into a seal and its index, batch by batch."""

    spec: TableSpec
    partition: str
    keep_index: bool = True
    rows: int = 0
    first_key: int | None = None
    last_key: int | None = None
    out_of_order: list[tuple[int, int]] = field(default_factory=list)
    _sums: dict[str, int] = field(default_factory=dict)
    _seed: bytes = b""
    _chain: Any = None
    _keys: array[int] = field(default_factory=lambda: array("q"))
    _digests: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        self._seed = chain_seed(self.partition)
        self._chain = hashlib.blake2b(self._seed, digest_size=32)

    def add_rows(self, rows: Sequence[Sequence[Any]]) -> list[bytes]:
        """Encode and seal ``rows``; returns their canonical lines (for the archive)."""
        dumps = orjson.dumps
        lines = [dumps(r) for r in rows]
        self._feed(lines, rows)
        return lines

    def add_lines(self, lines: Sequence[bytes]) -> list[Any]:
        """Seal rows already encoded (read back from an archive); returns them decoded."""
        rows: list[Any] = orjson.loads(b"[" + b",".join(lines) + b"]") if lines else []
        self._feed(lines, rows)
        return rows

    def _feed(self, lines: Sequence[bytes], rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        blake = hashlib.blake2b
        digests = [blake(line, digest_size=16).digest() for line in lines]
        self._chain.update(b"".join(digests))
        k = self.spec.index_of(self.spec.key)
        keys = [r[k] for r in rows]
        if self.keep_index:
            self._keys.extend(keys)
            self._digests += b"".join([d[:INDEX_DIGEST_BYTES] for d in digests])
        prev = self.last_key
        # Sorted and distinct is checked in C; only a batch out of order is walked to name
        # where.
        in_order = (prev is None or keys[0] > prev) and keys == sorted(set(keys))
        if not in_order:
            for key in keys:
                if prev is not None and key <= prev and len(self.out_of_order) < MAX_NAMED:
                    self.out_of_order.append((prev, key))
                prev = key
        if self.first_key is None:
            self.first_key = keys[0]
        self.last_key = keys[-1]
        self.rows += len(rows)
        if self.spec.amount is not None and self.spec.currency is not None:
            a, c = self.spec.index_of(self.spec.amount), self.spec.index_of(self.spec.currency)
            sums = self._sums
            currencies = [r[c] for r in rows]
            if len(set(currencies)) == 1:  # the common case: one currency, one C sum
                sums[currencies[0]] = sums.get(currencies[0], 0) + sum([r[a] for r in rows])
            else:
                for r in rows:
                    sums[r[c]] = sums.get(r[c], 0) + r[a]

    def seal(self) -> Seal:
        # A transfer is one debit leg and one credit leg of its amount: both sums are the
        # amounts' sum, and a seal whose two sums differ was not made by this code.
        return Seal(
            rows=self.rows,
            first_key=self.first_key,
            last_key=self.last_key,
            sums={c: Sums(v, v) for c, v in self._sums.items()},
            seed=self._seed.hex(),
            head=self._chain.copy().digest().hex(),
        )

    def index_bytes(self) -> bytes:
        """The index: n keys (int64, little-endian), then n digest prefixes."""
        keys = array("q", self._keys)
        if keys.itemsize != 8:  # pragma: no cover - every platform we run on
            raise AssertionError("int64 keys")
        return _le(keys) + bytes(self._digests)

    def index(self) -> RowIndex:
        return RowIndex(list(self._keys), bytes(self._digests))


def _le(keys: array[int]) -> bytes:
    if sys.byteorder == "big":  # pragma: no cover
        keys = array("q", keys)
        keys.byteswap()
    return keys.tobytes()


@dataclass(frozen=True, slots=True)
class RowIndex:
    keys: list[int]
    digests: bytes  # INDEX_DIGEST_BYTES per key

    @classmethod
    def from_bytes(cls, data: bytes) -> RowIndex:
        width = 8 + INDEX_DIGEST_BYTES
        if len(data) % width:
            raise ValueError("the index is not a whole number of entries")
        n = len(data) // width
        keys = array("q")
        keys.frombytes(data[: 8 * n])
        if sys.byteorder == "big":  # pragma: no cover
            keys.byteswap()
        return cls(keys.tolist(), data[8 * n :])

    def digest(self, i: int) -> bytes:
        return self.digests[i * INDEX_DIGEST_BYTES : (i + 1) * INDEX_DIGEST_BYTES]


def name_row_differences(key_name: str, sealed: RowIndex, found: RowIndex) -> list[str]:
    """Which rows were changed, removed, added or moved, by key: ``sealed`` is the
    archive's index (vouched for by the signed manifest), ``found`` the rows as read."""
    problems: list[str] = []
    at_sealed: dict[int, bytes] = {k: sealed.digest(i) for i, k in enumerate(sealed.keys)}
    seen: dict[int, int] = {}
    for k in found.keys:
        seen[k] = seen.get(k, 0) + 1

    def named(label: str, keys: Iterable[int]) -> None:
        keys = list(keys)
        for k in keys[:MAX_NAMED]:
            problems.append(f"row {key_name}={k} {label}")
        if len(keys) > MAX_NAMED:
            problems.append(f"... and {len(keys) - MAX_NAMED} more rows {label}")

    named("was removed", [k for k in sealed.keys if k not in seen])
    named("was added (not in the seal)", [k for k in found.keys if k not in at_sealed])
    named("appears more than once", sorted(k for k, n in seen.items() if n > 1))
    changed = [
        k for i, k in enumerate(found.keys) if k in at_sealed and found.digest(i) != at_sealed[k]
    ]
    named("was changed", list(dict.fromkeys(changed)))
    common = set(seen) & set(at_sealed)
    sealed_order = [k for k in sealed.keys if k in common]
    found_order = [k for k in dict.fromkeys(found.keys) if k in common]
    for expected, got in zip(sealed_order, found_order, strict=True):
        if expected != got:
            problems.append(
                f"rows were reordered: row {key_name}={got} stands where "
                f"row {key_name}={expected} was sealed"
            )
            break
    return problems
