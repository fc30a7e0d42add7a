"""The data lifecycle on PostgreSQL (ADR 0023): partitions by region then time, made
ahead by `tally maintain`; partitions read in canonical form; detached concurrently,
archived, verified, then dropped; scratch databases for restores."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from tally.adapters.postgres.connection import connect, connect_kwargs
from tally.adapters.postgres.ledger import migrate
from tally.lifecycle.archive import Partition
from tally.lifecycle.seal import (
    TRANSFER_REJECTIONS,
    TRANSFERS,
    Period,
    Seal,
    SealBuilder,
    TableSpec,
)

REGION = re.compile(r"^[a-z0-9_]{1,20}$")
# The partitioned tables and the column their time partitions range over.
PARTITIONED: dict[str, TableSpec] = {
    TRANSFERS.name: TRANSFERS,
    TRANSFER_REJECTIONS.name: TRANSFER_REJECTIONS,
}
# Rows fetched per round trip from a server-side cursor.
FETCH = 20_000


def check_region(region: str) -> str:
    if not REGION.match(region):
        raise ValueError(f"a region is 1-20 of a-z, 0-9 and _, not {region!r}")
    return region


def region_table(parent: str, region: str) -> str:
    return f"{parent}_r_{check_region(region)}"


def leaf_table(parent: str, region: str, period: Period) -> str:
    return f"{region_table(parent, region)}_p_{period.name.replace('-', '')}"


def _period_of(suffix: str) -> Period:
    if len(suffix) == 6:
        return Period.parse(f"{suffix[:4]}-{suffix[4:]}")
    return Period.parse(f"{suffix[:4]}-{suffix[4:6]}-{suffix[6:]}")


def _select(spec: TableSpec, table: str) -> sql.Composed:
    cols = [
        sql.SQL("(extract(epoch FROM {c}) * 1000000)::bigint").format(c=sql.Identifier(n))
        if n in spec.instants
        else sql.Identifier(n)
        for n in spec.names
    ]
    return sql.SQL("SELECT {cols} FROM {t}").format(
        cols=sql.SQL(", ").join(cols), t=sql.Identifier(table)
    )


class PostgresPartitions:
    """Partitions of the partitioned tables: made ahead, listed, detached, dropped."""

    kind = "postgres"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self.dsn = dsn
        self._kwargs = connect_kwargs(schema)

    def _connect(self) -> psycopg.Connection[Any]:
        return connect(self.dsn, autocommit=True, **self._kwargs)

    def install(self) -> list[int]:
        """Apply the ledger's migrations, then the lifecycle's (partitioning)."""
        with self._connect() as conn:
            migrate(conn, "ledger")
            return migrate(conn, "lifecycle")

    def leaves(self, parent: str) -> list[tuple[str, Period, str]]:
        """(region, period, table) of every time partition attached under ``parent``."""
        with self._connect() as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
                " JOIN pg_inherits j ON j.inhrelid = i.inhparent"
                " WHERE j.inhparent = %s::regclass ORDER BY c.relname",
                (parent,),
            ).fetchall()
        out: list[tuple[str, Period, str]] = []
        prefix = f"{parent}_r_"
        for (name,) in rows:
            region, _, suffix = name[len(prefix) :].rpartition("_p_")
            out.append((region, _period_of(suffix), name))
        return out

    def ensure(self, parent: str, regions: Sequence[str], periods: Sequence[Period]) -> list[str]:
        """Create the region partitions and the time partitions still missing; the new ones."""
        spec = PARTITIONED[parent]
        made: list[str] = []
        with self._connect() as conn:
            for region in regions:
                rt = region_table(parent, region)
                exists = conn.execute("SELECT to_regclass(%s)", (rt,)).fetchone()
                if exists is None or exists[0] is None:
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {rt} PARTITION OF {p} FOR VALUES IN ({r})"
                            " PARTITION BY RANGE ({time})"
                        ).format(
                            rt=sql.Identifier(rt),
                            p=sql.Identifier(parent),
                            r=sql.Literal(region),
                            time=sql.Identifier(spec.time),
                        )
                    )
                    made.append(rt)
                for period in periods:
                    leaf = leaf_table(parent, region, period)
                    exists = conn.execute("SELECT to_regclass(%s)", (leaf,)).fetchone()
                    if exists is not None and exists[0] is not None:
                        continue
                    conn.execute(
                        sql.SQL(
                            "CREATE TABLE {leaf} PARTITION OF {rt} FOR VALUES FROM ({a}) TO ({b})"
                        ).format(
                            leaf=sql.Identifier(leaf),
                            rt=sql.Identifier(rt),
                            a=sql.Literal(period.start),
                            b=sql.Literal(period.end),
                        )
                    )
                    made.append(leaf)
        return made

    def missing(self, parent: str, regions: Sequence[str], periods: Sequence[Period]) -> list[str]:
        """The time partitions of ``periods`` that are not attached."""
        have = {(r, p.name) for r, p, _ in self.leaves(parent)}
        return [
            leaf_table(parent, r, p) for r in regions for p in periods if (r, p.name) not in have
        ]

    def detach(self, parent: str, region: str, period: Period) -> bool:
        """Detach a time partition without blocking writers of the others (CONCURRENTLY,
        which runs outside any transaction); False when it was detached already."""
        leaf = leaf_table(parent, region, period)
        rt = region_table(parent, region)
        with self._connect() as conn:
            attached = conn.execute(
                "SELECT 1 FROM pg_inherits WHERE inhrelid = to_regclass(%s)"
                " AND inhparent = to_regclass(%s)",
                (leaf, rt),
            ).fetchone()
            if attached is None:
                return False
            conn.execute(
                sql.SQL("ALTER TABLE {rt} DETACH PARTITION {leaf} CONCURRENTLY").format(
                    rt=sql.Identifier(rt), leaf=sql.Identifier(leaf)
                )
            )
        return True


class PostgresPartitionSource:
    """A partition's rows in canonical form: a time partition's table when the partition
    names a region (attached or detached), else the table's rows of the period."""

    kind = "postgres"

    def __init__(self, dsn: str, *, schema: str | None = None) -> None:
        self.dsn = dsn
        self._kwargs = connect_kwargs(schema)

    def batches(self, spec: TableSpec, partition: Partition, size: int) -> Iterator[list[Any]]:
        with connect(self.dsn, **self._kwargs) as conn, conn.transaction():
            if partition.region:
                table = leaf_table(spec.name, partition.region, Period.parse(partition.period))
                query = sql.SQL("{s} ORDER BY {k}").format(
                    s=_select(spec, table), k=sql.Identifier(spec.key)
                )
                params: tuple[Any, ...] = ()
            else:
                query = sql.SQL("{s} WHERE {t} >= %s AND {t} < %s ORDER BY {k}").format(
                    s=_select(spec, spec.name),
                    t=sql.Identifier(spec.time),
                    k=sql.Identifier(spec.key),
                )
                params = (partition.start, partition.end)
            with conn.cursor(name="lifecycle_rows") as cur:
                cur.execute(query, params)
                while batch := cur.fetchmany(size):
                    yield batch


class PostgresRetention:
    """Retention's side of PostgreSQL: closed time partitions past the horizon are
    detached concurrently before they are archived, and dropped once it verifies."""

    def __init__(self, partitions: PostgresPartitions) -> None:
        self._p = partitions

    def tables(self) -> tuple[TableSpec, ...]:
        return tuple(PARTITIONED.values())

    def periods_before(self, spec: TableSpec, before: datetime, grain: str) -> list[Partition]:
        return [
            Partition(spec.name, period.name, period.start, period.end, region)
            for region, period, _ in self._p.leaves(spec.name)
            if period.end <= before
        ] + self._detached(spec, before)

    def _detached(self, spec: TableSpec, before: datetime) -> list[Partition]:
        """Partitions detached by an earlier run that stopped before dropping them."""
        with self._p._connect() as conn:
            rows = conn.execute(
                "SELECT c.relname FROM pg_class c WHERE c.relname LIKE %s AND c.relkind = 'r'"
                " AND c.relnamespace = (SELECT oid FROM pg_namespace"
                "  WHERE nspname = current_schema())"
                " AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)",
                (f"{spec.name}\\_r\\_%\\_p\\_%",),
            ).fetchall()
        out: list[Partition] = []
        prefix = f"{spec.name}_r_"
        for (name,) in rows:
            region, _, suffix = name[len(prefix) :].rpartition("_p_")
            period = _period_of(suffix)
            if period.end <= before:
                out.append(Partition(spec.name, period.name, period.start, period.end, region))
        return out

    def refusal(self, spec: TableSpec, partition: Partition) -> str | None:
        if spec.name != TRANSFERS.name:
            return None
        leaf = leaf_table(spec.name, partition.region, Period.parse(partition.period))
        with self._p._connect() as conn:
            row = conn.execute(
                sql.SQL("SELECT COUNT(*) FROM {t} WHERE status = 'pending'").format(
                    t=sql.Identifier(leaf)
                )
            ).fetchone()
        n = int(row[0]) if row else 0
        return f"{n} transfers of {partition.name} are still pending" if n else None

    def prepare(self, spec: TableSpec, partition: Partition) -> None:
        self._p.detach(spec.name, partition.region, Period.parse(partition.period))

    def drop(
        self, spec: TableSpec, partition: Partition, seal: Seal, location: str, manifest: str
    ) -> int:
        leaf = leaf_table(spec.name, partition.region, Period.parse(partition.period))
        with self._p._connect() as conn, conn.transaction():
            # Detached, nobody writes it; lock it all the same and check it is still
            # exactly what was sealed before it goes.
            conn.execute(sql.SQL("LOCK TABLE {t}").format(t=sql.Identifier(leaf)))
            now = SealBuilder(spec, partition.name, keep_index=False)
            with conn.cursor(name="lifecycle_check") as cur:
                cur.execute(
                    sql.SQL("{s} ORDER BY {k}").format(
                        s=_select(spec, leaf), k=sql.Identifier(spec.key)
                    )
                )
                while batch := cur.fetchmany(FETCH):
                    now.add_rows(batch)
            if now.rows != seal.rows or now.seal().head != seal.head:
                raise RuntimeError(f"{partition.name} changed since it was archived; kept")
            conn.execute(sql.SQL("DROP TABLE {t}").format(t=sql.Identifier(leaf)))
            conn.execute(
                "INSERT INTO lifecycle_archives VALUES (%s, %s, %s, %s, %s, now())",
                (partition.name, seal.rows, seal.head, manifest, location),
            )
        return seal.rows


class PostgresRestoreTarget:
    """A scratch PostgreSQL database (already created, empty) an archive is loaded into."""

    def __init__(self, dsn: str) -> None:
        self._conn = connect(dsn, autocommit=True, **connect_kwargs(None))

    def create(self, spec: TableSpec) -> None:
        cols = sql.SQL(", ").join(
            sql.SQL("{n} {t}").format(
                n=sql.Identifier(n), t=sql.SQL("bigint" if t == "int" else "text")
            )
            for n, t in spec.columns
        )
        self._conn.execute(
            sql.SQL("CREATE TABLE {t} ({cols}, PRIMARY KEY ({k}))").format(
                t=sql.Identifier(spec.name), cols=cols, k=sql.Identifier(spec.key)
            )
        )

    def insert(self, spec: TableSpec, rows: Sequence[Sequence[Any]]) -> None:
        with (
            self._conn.cursor() as cur,
            cur.copy(sql.SQL("COPY {t} FROM STDIN").format(t=sql.Identifier(spec.name))) as copy,
        ):
            for r in rows:
                copy.write_row(r)

    def batches(self, spec: TableSpec, size: int) -> Iterator[list[Any]]:
        with self._conn.cursor() as cur:
            cur.execute(
                sql.SQL("SELECT {c} FROM {t} ORDER BY {k}").format(
                    c=sql.SQL(", ").join(sql.Identifier(n) for n in spec.names),
                    t=sql.Identifier(spec.name),
                    k=sql.Identifier(spec.key),
                )
            )
            while batch := cur.fetchmany(size):
                yield batch

    def close(self) -> None:
        self._conn.close()
