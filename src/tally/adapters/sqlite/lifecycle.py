"""The data lifecycle on the embedded store: partitions read, scratch restores, online
backups of the whole file, the ledger's consistency checks, retention's deletes."""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tally.adapters.sqlite.connection import (
    connect,
    connect_copy,
    connect_read_only,
    immediate,
)
from tally.adapters.sqlite.ledger import migrate
from tally.kernel.clock import from_micros, to_micros
from tally.lifecycle.archive import Partition
from tally.lifecycle.seal import EVENT_LOG, TRANSFERS, Period, Seal, SealBuilder, TableSpec

BackupMethod = Literal["api", "vacuum"]


def utc_now() -> datetime:
    return datetime.now(UTC)


def _select(spec: TableSpec) -> str:
    return f"SELECT {', '.join(spec.names)} FROM {spec.name}"


def _read_only(path: Path) -> sqlite3.Connection:
    if not path.exists():
        raise FileNotFoundError(f"no SQLite file at {path}")
    return connect_read_only(path)


class SqlitePartitionSource:
    """Rows of one period of a table of the SQLite file, read in one read transaction
    (WAL: the writers go on; the rows are those of one instant)."""

    kind = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path

    def batches(self, spec: TableSpec, partition: Partition, size: int) -> Iterator[list[Any]]:
        with closing(_read_only(self.path)) as conn:
            conn.execute("BEGIN")
            cur = conn.execute(
                f"{_select(spec)} WHERE {spec.time} >= ? AND {spec.time} < ? ORDER BY {spec.key}",
                (to_micros(partition.start), to_micros(partition.end)),
            )
            while batch := cur.fetchmany(size):
                yield batch
            conn.execute("COMMIT")

    def periods(self, spec: TableSpec) -> tuple[int, int] | None:
        """The first and last instant (microseconds) the table holds, if any rows."""
        with closing(_read_only(self.path)) as conn:
            row = conn.execute(f"SELECT MIN({spec.time}), MAX({spec.time}) FROM {spec.name}")
            lo, hi = row.fetchone()
        return None if lo is None else (int(lo), int(hi))


class SqliteRestoreTarget:
    """A new SQLite file that an archive is loaded into."""

    def __init__(self, path: Path) -> None:
        if path.exists():
            raise FileExistsError(f"{path} exists: a restore writes a new file")
        self.path = path
        self._conn = connect(path, synchronous="NORMAL")

    def create(self, spec: TableSpec) -> None:
        cols = ", ".join(
            f"{n} {'INTEGER' if t == 'int' else 'TEXT'}" + (" PRIMARY KEY" if n == spec.key else "")
            for n, t in spec.columns
        )
        self._conn.execute(f"CREATE TABLE {spec.name} ({cols})")

    def insert(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        marks = ", ".join("?" * len(spec.columns))
        with closing(self._conn.cursor()) as cur:
            cur.execute("BEGIN")
            cur.executemany(f"INSERT INTO {spec.name} VALUES ({marks})", rows)
            cur.execute("COMMIT")

    def batches(self, spec: TableSpec, size: int) -> Iterator[list[Any]]:
        cur = self._conn.execute(f"{_select(spec)} ORDER BY {spec.key}")
        while batch := cur.fetchmany(size):
            yield batch

    def close(self) -> None:
        self._conn.close()


# -- online backup -------------------------------------------------------------------------


def backup_file(source: Path, dest: Path, method: BackupMethod = "api") -> float:
    """Copy the live file ``source`` to the new file ``dest`` as of one instant; seconds taken.

    "api": SQLite's online backup API in one step (``pages=-1``): it reads every page
    inside one read transaction, so the copy is of one instant, and in WAL mode the
    writers carry on meanwhile (a stepwise backup would restart whenever another
    connection writes, and under steady traffic might never end). "vacuum": ``VACUUM
    INTO``, which rebuilds the file compacted, also inside one read transaction.
    """
    if dest.exists():
        raise FileExistsError(f"{dest} exists: a backup writes a new file")
    started = time.perf_counter()
    with closing(_read_only(source)) as src:
        if method == "vacuum":
            src.execute("VACUUM INTO ?", (str(dest),))
        else:
            with closing(connect_copy(dest)) as out:
                src.backup(out, pages=-1)
    with closing(connect_copy(dest)) as out:
        # The copy stands alone: one file, no WAL beside it.
        out.execute("PRAGMA journal_mode=DELETE")
    return time.perf_counter() - started


def integrity_problems(path: Path) -> list[str]:
    with closing(_read_only(path)) as conn:
        rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
    return [] if rows == ["ok"] else [f"SQLite integrity_check: {r}" for r in rows[:20]]


def ledger_problems(path: Path) -> list[str]:
    """The ledger's own consistency in a (copied) file: every currency nets to zero, each
    account's stored balance equals what its transfers add up to."""
    problems: list[str] = []
    with closing(_read_only(path)) as conn:
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        if "account_balances" not in tables:
            return ["the file holds no ledger (no account_balances table)"]
        for cur, dp, dpo, cp, cpo in conn.execute(
            "SELECT d.currency, SUM(b.debits_pending), SUM(b.debits_posted),"
            " SUM(b.credits_pending), SUM(b.credits_posted)"
            " FROM account_definitions d JOIN account_balances b ON b.num = d.num"
            " GROUP BY d.currency ORDER BY d.currency"
        ):
            if (dp, dpo) != (cp, cpo):
                problems.append(
                    f"{cur} does not net to zero: debits posted {dpo} pending {dp}, "
                    f"credits posted {cpo} pending {cp}"
                )
        # Posted: single and post transfers, and what retention carried forward for the
        # transfers it archived and dropped (lifecycle_carried).
        carried = (
            "SELECT account_id, debits_posted, credits_posted FROM lifecycle_carried"
            if "lifecycle_carried" in tables
            else "SELECT '' AS account_id, 0 AS debits_posted, 0 AS credits_posted WHERE 0"
        )
        for account, stored_dp, stored_cp, moved_dp, moved_cp in conn.execute(
            f"""
            WITH carried AS ({carried}), legs AS (
                SELECT debit_account_id AS account, amount AS dp, 0 AS cp FROM transfers
                 WHERE kind IN ('single', 'post')
                UNION ALL
                SELECT credit_account_id, 0, amount FROM transfers
                 WHERE kind IN ('single', 'post')
                UNION ALL
                SELECT account_id, debits_posted, credits_posted FROM carried
            ), moved AS (SELECT account, SUM(dp) AS dp, SUM(cp) AS cp FROM legs GROUP BY account)
            SELECT d.id, b.debits_posted, b.credits_posted,
                   COALESCE(m.dp, 0), COALESCE(m.cp, 0)
            FROM account_definitions d JOIN account_balances b ON b.num = d.num
            LEFT JOIN moved m ON m.account = d.id
            WHERE b.debits_posted <> COALESCE(m.dp, 0) OR b.credits_posted <> COALESCE(m.cp, 0)
            LIMIT 20
            """
        ):
            problems.append(
                f"account {account}: stored posted balance (debits {stored_dp}, credits "
                f"{stored_cp}) differs from its transfers (debits {moved_dp}, "
                f"credits {moved_cp})"
            )
    return problems


def events_without_transfers(path: Path) -> tuple[int, str | None]:
    """Events in the log that move money (a non-zero amount) and that no transfer names
    (count, first key). The wallet writes the ledger before the log, so under callbacks
    alone this is 0 in any consistent copy; events imported from files or feeds are
    settled later and are counted here too."""
    with closing(_read_only(path)) as conn:
        n, first = conn.execute(
            "SELECT COUNT(*), MIN(e.key) FROM event_log e"
            # Amounts are decimal strings ("0.10"): non-zero when a digit other than 0 is
            # left once the zeros, the point and the sign are taken out (no float).
            " WHERE REPLACE(REPLACE(REPLACE(json_extract(e.body, '$.amount'),"
            " '0', ''), '.', ''), '-', '') <> '' AND"
            # IN (subquery): SQLite builds one ephemeral index of the refs, not a scan per event.
            " e.key NOT IN (SELECT event_ref FROM transfers WHERE event_ref IS NOT NULL)"
        ).fetchone()
    return int(n), first


class SqliteRetention:
    """Retention's side of the live file: which periods may go, and their deletion."""

    def __init__(self, path: Path) -> None:
        self.path = path
        conn = connect(path)
        try:
            # The lifecycle's migration changes the event log's trigger: the tables it
            # touches come first (each is a no-op on a file that has them).
            for component in ("ledger", "events", "lifecycle"):
                migrate(conn, component)
        finally:
            conn.close()

    def tables(self) -> tuple[TableSpec, ...]:
        return (TRANSFERS, EVENT_LOG)

    def prepare(self, spec: TableSpec, partition: Partition) -> None:
        """Nothing to do: the rows stay put until ``drop`` checks and deletes them."""

    def periods_before(self, spec: TableSpec, before: datetime, grain: str) -> list[Partition]:
        """The periods of ``spec`` with rows that end at or before ``before``."""
        with closing(_read_only(self.path)) as conn:
            (lo,) = conn.execute(f"SELECT MIN({spec.time}) FROM {spec.name}").fetchone()
            if lo is None:
                return []
            out: list[Partition] = []
            p = Period.containing(from_micros(int(lo)), grain)
            while p.end <= before:
                span = (to_micros(p.start), to_micros(p.end))
                found = conn.execute(
                    f"SELECT 1 FROM {spec.name} WHERE {spec.time} >= ? AND {spec.time} < ? LIMIT 1",
                    span,
                ).fetchone()
                if found:
                    out.append(Partition(spec.name, p.name, p.start, p.end))
                p = p.next()
        return out

    def refusal(self, spec: TableSpec, partition: Partition) -> str | None:
        """Why the partition may not leave the live file now, if it may not."""
        span = (to_micros(partition.start), to_micros(partition.end))
        where = f"{spec.time} >= ? AND {spec.time} < ?"
        with closing(_read_only(self.path)) as conn:
            if spec.name == "transfers":
                (n,) = conn.execute(
                    f"SELECT COUNT(*) FROM transfers WHERE {where} AND status = 'pending'", span
                ).fetchone()
                if n:
                    return f"{n} transfers of {partition.name} are still pending"
            if spec.name == "event_log":
                (last,) = conn.execute(
                    f"SELECT MAX(position) FROM event_log WHERE {where}", span
                ).fetchone()
                tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
                consumed = None
                if "settlement_positions" in tables:
                    (consumed,) = conn.execute(
                        "SELECT MIN(position) FROM settlement_positions"
                    ).fetchone()
                if last is not None and (consumed is None or consumed < last):
                    return (
                        f"settlement has not consumed {partition.name} yet "
                        f"(its last event is at position {last}, settlement at {consumed})"
                    )
        return None

    def drop(
        self, spec: TableSpec, partition: Partition, seal: Seal, location: str, manifest: str
    ) -> int:
        """Delete the partition's rows in one transaction, only if they are still exactly
        the sealed ones (count and chain head); returns the rows deleted."""
        conn = connect(self.path)
        try:
            with immediate(conn):
                where = f"{spec.time} >= ? AND {spec.time} < ?"
                span = (to_micros(partition.start), to_micros(partition.end))
                now = SealBuilder(spec, partition.name, keep_index=False)
                cur = conn.execute(f"{_select(spec)} WHERE {where} ORDER BY {spec.key}", span)
                while batch := cur.fetchmany(20_000):
                    now.add_rows(batch)
                if now.seal().head != seal.head or now.rows != seal.rows:
                    raise RuntimeError(
                        f"{partition.name} changed since it was archived; nothing deleted"
                    )
                if spec.name == "transfers":
                    conn.execute(
                        """
                        INSERT INTO lifecycle_carried (account_id, debits_posted, credits_posted)
                        SELECT account, SUM(dp), SUM(cp) FROM (
                            SELECT debit_account_id AS account, amount AS dp, 0 AS cp
                              FROM transfers WHERE kind IN ('single', 'post') AND """
                        + where
                        + """
                            UNION ALL
                            SELECT credit_account_id, 0, amount
                              FROM transfers WHERE kind IN ('single', 'post') AND """
                        + where
                        + """
                        ) GROUP BY account
                        ON CONFLICT (account_id) DO UPDATE SET
                            debits_posted = debits_posted + excluded.debits_posted,
                            credits_posted = credits_posted + excluded.credits_posted
                        """,
                        span + span,
                    )
                    # The per-account history index points at these rows.
                    conn.execute(
                        "DELETE FROM account_postings WHERE seq IN"
                        f" (SELECT seq FROM transfers WHERE {where})",
                        span,
                    )
                if spec.name == "event_log":
                    conn.execute(
                        "DELETE FROM event_times WHERE position IN"
                        f" (SELECT position FROM event_log WHERE {where})",
                        span,
                    )
                    conn.execute("INSERT INTO lifecycle_retention_gate (opened) VALUES (1)")
                n = conn.execute(f"DELETE FROM {spec.name} WHERE {where}", span).rowcount
                conn.execute("DELETE FROM lifecycle_retention_gate")
                assert n == seal.rows, (n, seal.rows)
                conn.execute(
                    "INSERT INTO lifecycle_archives VALUES (?, ?, ?, ?, ?, ?)",
                    (partition.name, n, seal.head, manifest, location, to_micros(utc_now())),
                )
        finally:
            conn.close()
        return n


class SqliteEmbeddedFile:
    """The live SQLite file as the backup service sees it."""

    def __init__(self, live: Path, method: BackupMethod = "api") -> None:
        self.live = live
        self.method: BackupMethod = method

    def copy_to(self, dest: Path) -> float:
        return backup_file(self.live, dest, self.method)

    def source(self, path: Path) -> SqlitePartitionSource:
        return SqlitePartitionSource(path)

    def problems(self, path: Path) -> list[str]:
        return integrity_problems(path) or ledger_problems(path)

    def write_files(self, directory: Path, files: dict[str, bytes]) -> None:
        for name, data in files.items():
            fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
