"""The data lifecycle on PostgreSQL (ADR 0023): the ledger's refusals partitioned by
region then month, partitions made ahead by the maintenance job, a row with no partition
refused and alerted, and a closed partition detached concurrently, archived, verified,
dropped, and restored into a scratch database with the same seal."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from tally.adapters.archive_dir import ArchiveDirReading, ArchiveDirShelf
from tally.adapters.postgres.connection import connect_kwargs
from tally.adapters.postgres.ledger import PostgresLedgerStore
from tally.adapters.postgres.lifecycle import (
    PostgresPartitions,
    PostgresPartitionSource,
    PostgresRestoreTarget,
    PostgresRetention,
)
from tally.kernel.alerts import AlertSignal
from tally.kernel.clock import FixedClock
from tally.kernel.errors import PermanentError, RetryableError
from tally.ledger.model import Account, OwnerKind, ResultCode, TransferRequest
from tally.lifecycle.seal import Period
from tally.lifecycle.service import (
    ALERT_PARTITION_MISSING,
    ArchiveService,
    MaintenanceService,
    RetentionService,
)
from tally.security.signing import Signer, new_private_key_pem
from tests.conftest import PG_DSN

pytestmark = pytest.mark.postgres

JAN = datetime(2026, 1, 15, 12, tzinfo=UTC)
MAR = datetime(2026, 3, 15, 12, tzinfo=UTC)
JUNE = datetime(2026, 6, 15, 12, tzinfo=UTC)


@dataclass
class Alerts:
    raised: list[AlertSignal] = field(default_factory=list)
    cleared: list[tuple[str, str]] = field(default_factory=list)

    def signal(self, alert: AlertSignal) -> None:
        self.raised.append(alert)

    def clear(self, kind: str, key: str, at: datetime) -> None:
        self.cleared.append((kind, key))


def _conn(schema: str) -> psycopg.Connection[object]:
    return psycopg.connect(PG_DSN, autocommit=True, **connect_kwargs(schema))


def _reject(schema: str, tid: str, at: datetime, region: str | None = None) -> None:
    with _conn(schema) as conn:
        if region:
            conn.execute("SELECT set_config('tally.region', %s, false)", (region,))
        conn.execute(
            "INSERT INTO transfer_rejections (transfer_id, code, reason, request, rejected_at)"
            " VALUES (%s, 3, 'test', '{}', %s)",
            (tid, at),
        )


def _count(schema: str, table: str) -> int:
    with _conn(schema) as conn:
        row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def partitioned(pg_schema: str) -> Iterator[tuple[str, PostgresPartitions]]:
    parts = PostgresPartitions(PG_DSN, schema=pg_schema)
    with _conn(pg_schema) as conn:
        from tally.adapters.postgres.ledger import migrate

        migrate(conn, "ledger")
        # Refusals written before partitioning: the migration must carry them over.
        for i in range(3):
            conn.execute(
                "INSERT INTO transfer_rejections (transfer_id, code, reason, request,"
                " rejected_at) VALUES (%s, 3, 'before', '{}', %s)",
                (f"old{i}", JAN + timedelta(hours=i)),
            )
    assert parts.install() == [1, 2]
    yield pg_schema, parts


def test_partitioning_keeps_the_rows_already_there(
    partitioned: tuple[str, PostgresPartitions],
) -> None:
    schema, parts = partitioned
    assert _count(schema, "transfer_rejections") == 3
    assert [(r, p.name) for r, p, _ in parts.leaves("transfer_rejections")] == [
        ("global", "2026-01")
    ]
    assert _count(schema, "transfer_rejections_r_global_p_202601") == 3
    with _conn(schema) as conn:
        kind = conn.execute(
            "SELECT relkind FROM pg_class WHERE oid = 'transfer_rejections'::regclass"
        ).fetchone()
        defaults = conn.execute(
            "SELECT COUNT(*) FROM pg_partitioned_table WHERE partdefid <> 0"
        ).fetchone()
    assert kind == ("p",)  # partitioned
    assert defaults == (0,)  # and no catch-all anywhere


def test_maintenance_makes_partitions_ahead_per_region_and_rows_find_theirs(
    partitioned: tuple[str, PostgresPartitions],
) -> None:
    schema, parts = partitioned
    alerts = Alerts()
    job = MaintenanceService(
        parts,
        alerts,
        FixedClock(MAR),
        tables=["transfer_rejections"],
        regions=["global", "eu"],
        ahead=2,
    )
    done = job.run()
    assert sorted(done.made) == sorted(
        [
            "transfer_rejections_r_eu",
            *(
                f"transfer_rejections_r_{r}_p_{m}"
                for r in ("global", "eu")
                for m in ("202603", "202604", "202605")
            ),
        ]
    )
    assert done.missing == [] and alerts.raised == []
    assert job.run().made == []  # idempotent
    _reject(schema, "x-eu", MAR, region="eu")
    _reject(schema, "x-global", MAR + timedelta(days=31))
    assert _count(schema, "transfer_rejections_r_eu_p_202603") == 1
    assert _count(schema, "transfer_rejections_r_global_p_202604") == 1


def test_a_row_with_no_partition_is_refused_and_the_gap_alerted(
    partitioned: tuple[str, PostgresPartitions],
) -> None:
    schema, parts = partitioned
    later = datetime(2027, 1, 10, tzinfo=UTC)
    with pytest.raises(psycopg.errors.CheckViolation, match="no partition of relation"):
        _reject(schema, "nowhere", later)
    assert _count(schema, "transfer_rejections") == 3  # nothing went anywhere
    alerts = Alerts()
    job = MaintenanceService(
        parts, alerts, FixedClock(later), tables=["transfer_rejections"], regions=["global"]
    )
    found = job.run(create=False)
    assert found.missing == [f"transfer_rejections_r_global_p_2027{m}" for m in ("01", "02", "03")]
    assert [(a.kind, a.key) for a in alerts.raised] == [
        (ALERT_PARTITION_MISSING, name) for name in found.missing
    ]
    job.run()  # makes them, and clears the alerts
    assert {k for _, k in alerts.cleared} >= set(found.missing)
    _reject(schema, "now-somewhere", later)
    assert _count(schema, "transfer_rejections_r_global_p_202701") == 1


def test_the_ledger_writes_its_refusals_into_the_partitions(
    partitioned: tuple[str, PostgresPartitions],
) -> None:
    schema, parts = partitioned
    parts.ensure("transfer_rejections", ["global"], [])  # the region partition only
    store = PostgresLedgerStore(PG_DSN, schema=schema)
    try:
        store.create_accounts([Account("a", OwnerKind.OPERATOR, "o", "EUR", "t")], JAN)
        results = store.apply([[TransferRequest("t1", "a", "missing", 5, "EUR", "t")]], JAN)
        assert results[0][0].code is not ResultCode.OK
        page = store.rejections(limit=10)
        assert [r.transfer_id for r in page.items][-1] == "t1"
    finally:
        store.close()
    assert _count(schema, "transfer_rejections_r_global_p_202601") == 4


@pytest.fixture
def scratch_db() -> Iterator[str]:
    name = f"tally_restore_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    base, _, _ = PG_DSN.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_a_closed_partition_is_detached_archived_verified_dropped_and_restores(
    partitioned: tuple[str, PostgresPartitions], tmp_path: Path, scratch_db: str
) -> None:
    schema, parts = partitioned
    parts.ensure("transfer_rejections", ["global"], [])
    for i in range(50):
        _reject(schema, f"jan{i}", JAN + timedelta(minutes=i))
    MaintenanceService(
        parts, Alerts(), FixedClock(MAR), tables=["transfer_rejections"], regions=["global"]
    ).run()
    _reject(schema, "march", MAR)
    signer = Signer(new_private_key_pem())
    clock = FixedClock(datetime(2026, 4, 20, tzinfo=UTC))
    archives = ArchiveService(signer.sign, signer.public_pem(), clock)
    alerts = Alerts()
    retention = RetentionService(
        archives,
        PostgresPartitionSource(PG_DSN, schema=schema),
        PostgresRetention(parts),
        ArchiveDirShelf(tmp_path / "archives"),
        alerts,
        clock,
    )
    done = retention.run(timedelta(days=45))  # before March 6th: January only
    assert [(r.partition, r.outcome, r.rows) for r in done] == [
        ("transfer_rejections/global/2026-01", "dropped", 53)
    ]
    with _conn(schema) as conn:
        gone = conn.execute("SELECT to_regclass('transfer_rejections_r_global_p_202601')")
        assert gone.fetchone() == (None,)
        kept = conn.execute("SELECT partition, rows FROM lifecycle_archives").fetchall()
    assert kept == [("transfer_rejections/global/2026-01", 53)]
    assert _count(schema, "transfer_rejections") == 1  # March's stays
    where = tmp_path / "archives" / "transfer_rejections" / "global" / "2026-01"
    check = archives.verify(ArchiveDirReading(where), signer.public_pem())
    assert check.ok and check.found is not None and check.found.rows == 53
    target = PostgresRestoreTarget(scratch_db)
    try:
        restored = archives.restore(ArchiveDirReading(where), target, signer.public_pem())
    finally:
        target.close()
    assert restored.ok, restored.problems
    assert restored.found == check.seal
    with psycopg.connect(scratch_db) as conn:
        ids = [r[0] for r in conn.execute("SELECT transfer_id FROM transfer_rejections")]
    assert sorted(ids) == sorted([f"old{i}" for i in range(3)] + [f"jan{i}" for i in range(50)])
    assert alerts.raised == []


def test_tally_maintain_installs_makes_ahead_and_reports(
    scratch_db: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from tally.entrypoints.cli import app

    # A database of its own: the command works on the DSN's default schema.
    monkeypatch.setenv("TALLY_MODE", "scaled")
    monkeypatch.setenv("TALLY_PG_DSN", scratch_db)
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path / "data"))
    runner = CliRunner()
    done = runner.invoke(app, ["maintain", "--install", "--region", "eu", "--ahead", "1"])
    assert done.exit_code == 0, done.output
    assert "made transfer_rejections_r_eu" in done.output
    parts = PostgresPartitions(scratch_db)
    assert {r for r, _, _ in parts.leaves("transfer_rejections")} == {"eu"}
    assert len(parts.leaves("transfer_rejections")) == 2  # this month and the next
    again = runner.invoke(app, ["maintain", "--region", "eu", "--region", "us", "--check"])
    assert again.exit_code == 1
    assert "missing transfer_rejections_r_us_p_" in again.output


ACCOUNTS = [
    Account("a", OwnerKind.OPERATOR, "o", "EUR", "t"),
    Account("b", OwnerKind.OPERATOR, "p", "EUR", "t"),
]


def test_transfers_are_partitioned_and_an_id_stays_unique_across_partitions(
    partitioned: tuple[str, PostgresPartitions],
) -> None:
    schema, parts = partitioned
    parts.ensure("transfers", ["global"], [Period.parse("2026-01"), Period.parse("2026-03")])
    store = PostgresLedgerStore(PG_DSN, schema=schema)
    try:
        store.create_accounts(ACCOUNTS, JAN)
        [[first]] = store.apply([[TransferRequest("t1", "a", "b", 5, "EUR", "t")]], JAN)
        assert first.code is ResultCode.OK
        # The same id two months later: the ledger finds it in January's partition.
        [[again]] = store.apply([[TransferRequest("t1", "a", "b", 5, "EUR", "t")]], MAR)
        assert again.code is ResultCode.EXISTS
        [[other]] = store.apply([[TransferRequest("t2", "a", "b", 7, "EUR", "t")]], MAR)
        assert other.code is ResultCode.OK
        # A transfer for a month with no partition is refused, and nothing moves.
        with pytest.raises(PermanentError, match="no partition of relation"):
            store.apply([[TransferRequest("t3", "a", "b", 9, "EUR", "t")]], JUNE)
        assert store.balance("b", JUNE).credits_posted == 12
    finally:
        store.close()
    assert _count(schema, "transfers_r_global_p_202601") == 1
    assert _count(schema, "transfers_r_global_p_202603") == 1
    # Below the ledger, the database itself refuses the same id in another partition.
    with _conn(schema) as conn, pytest.raises(psycopg.errors.UniqueViolation):
        conn.execute(
            "INSERT INTO transfers (id, kind, debit_account_id, credit_account_id, amount,"
            " currency, code, occurred_at, recorded_at) VALUES"
            " ('t1', 'single', 'a', 'b', 1, 'EUR', 't', %s, %s)",
            (MAR, MAR),
        )


def test_a_transfers_partition_is_archived_dropped_and_its_ids_stay_taken(
    partitioned: tuple[str, PostgresPartitions], tmp_path: Path
) -> None:
    schema, parts = partitioned
    parts.ensure("transfers", ["global"], [Period.parse("2026-01"), Period.parse("2026-03")])
    store = PostgresLedgerStore(PG_DSN, schema=schema)
    try:
        store.create_accounts(ACCOUNTS, JAN)
        jan = [TransferRequest(f"j{i}", "a", "b", 10 + i, "EUR", "t") for i in range(20)]
        assert all(r.code is ResultCode.OK for r in store.apply([jan], JAN)[0])
        store.apply([[TransferRequest("m1", "b", "a", 3, "EUR", "t")]], MAR)
    finally:
        store.close()
    signer = Signer(new_private_key_pem())
    clock = FixedClock(datetime(2026, 4, 20, tzinfo=UTC))
    archives = ArchiveService(signer.sign, signer.public_pem(), clock)
    retention = RetentionService(
        archives,
        PostgresPartitionSource(PG_DSN, schema=schema),
        PostgresRetention(parts),
        ArchiveDirShelf(tmp_path / "archives"),
        Alerts(),
        clock,
    )
    done = {r.partition: r for r in retention.run(timedelta(days=45))}
    assert (done["transfers/global/2026-01"].outcome, done["transfers/global/2026-01"].rows) == (
        "dropped",
        20,
    )
    where = tmp_path / "archives" / "transfers" / "global" / "2026-01"
    check = archives.verify(ArchiveDirReading(where), signer.public_pem())
    assert check.ok and check.found is not None
    assert {c: s.debits for c, s in check.found.sums.items()} == {"EUR": sum(range(10, 30))}
    assert _count(schema, "transfers") == 1
    assert _count(schema, "transfer_keys") == 21  # the archived ids are still taken
    store = PostgresLedgerStore(PG_DSN, schema=schema)
    try:
        with pytest.raises(RetryableError):
            store.apply([[TransferRequest("j0", "a", "b", 10, "EUR", "t")]], MAR)
    finally:
        store.close()


def test_the_cli_restores_an_archive_into_a_scratch_database(
    partitioned: tuple[str, PostgresPartitions],
    scratch_db: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from typer.testing import CliRunner

    from tally.entrypoints.cli import app

    schema, _ = partitioned
    signer = Signer(new_private_key_pem())
    archives = ArchiveService(signer.sign, signer.public_pem(), FixedClock(MAR))
    jan = Period.parse("2026-01")
    out = tmp_path / "rejections-jan"
    from tally.adapters.archive_dir import ArchiveDirSink
    from tally.lifecycle.archive import Partition
    from tally.lifecycle.seal import TRANSFER_REJECTIONS

    done = archives.archive(
        PostgresPartitionSource(PG_DSN, schema=schema),
        TRANSFER_REJECTIONS,
        Partition("transfer_rejections", jan.name, jan.start, jan.end, "global"),
        ArchiveDirSink(out),
    )
    assert done.seal.rows == 3
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path / "data"))
    key = tmp_path / "pub.pem"
    key.write_bytes(signer.public_pem())
    runner = CliRunner()
    ran = runner.invoke(
        app,
        ["archive", "restore", str(out), "--postgres", scratch_db, "--public-key", str(key)],
    )
    assert ran.exit_code == 0, ran.output
    assert "3 rows" in ran.output
    with psycopg.connect(scratch_db) as conn:
        row = conn.execute("SELECT COUNT(*) FROM transfer_rejections").fetchone()
    assert row == (3,)
    both = runner.invoke(app, ["archive", "restore", str(out)])
    assert both.exit_code == 2
