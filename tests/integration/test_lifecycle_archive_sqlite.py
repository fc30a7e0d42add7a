"""Archives of the embedded store (ADR 0023): create, verify, tamper, restore.

A real ledger file is written by the ledger store; a period of it is archived; the
archive verifies; each kind of tampering (a row changed, removed, added, reordered, the
manifest edited, the signature swapped, a file added) is named; a restore into a new
SQLite file holds the same rows and the same seal.
"""

from __future__ import annotations

import base64
import gzip
import json
import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.adapters.archive_dir import ArchiveDirReading, ArchiveDirSink
from tally.adapters.sqlite.ledger import SqliteLedgerStore
from tally.adapters.sqlite.lifecycle import SqlitePartitionSource, SqliteRestoreTarget
from tally.exports.bundle import MANIFEST, SIGNATURE
from tally.kernel.clock import FixedClock
from tally.ledger.model import Account, OwnerKind, TransferRequest
from tally.lifecycle.archive import INDEX, ROWS, Partition
from tally.lifecycle.seal import TRANSFERS, Period
from tally.lifecycle.service import ArchiveService
from tally.security.signing import Signer, new_private_key_pem
from tests.conftest import START

ACCOUNTS = [
    Account("a0", OwnerKind.OPERATOR, "o0", "EUR", "test"),
    Account("a1", OwnerKind.OPERATOR, "o1", "EUR", "test"),
    Account("j0", OwnerKind.OPERATOR, "o0", "JPY", "test"),
    Account("j1", OwnerKind.OPERATOR, "o1", "JPY", "test"),
]
PERIOD = Period.parse("2026-01")


def _ledger(path: Path) -> tuple[int, int]:
    """30 EUR transfers in January, 10 JPY ones, 5 in February; the January totals."""
    store = SqliteLedgerStore(path)
    try:
        store.create_accounts(ACCOUNTS, START)
        jan = [TransferRequest(f"e{i}", "a0", "a1", 100 + i, "EUR", "t") for i in range(30)]
        jan += [TransferRequest(f"j{i}", "j0", "j1", 1000 * (i + 1), "JPY", "t") for i in range(10)]
        store.apply([jan], START)
        feb = [TransferRequest(f"f{i}", "a1", "a0", 7, "EUR", "t") for i in range(5)]
        store.apply([feb], START + timedelta(days=40))
    finally:
        store.close()
    return sum(100 + i for i in range(30)), sum(1000 * (i + 1) for i in range(10))


@pytest.fixture
def signer() -> Signer:
    return Signer(new_private_key_pem())


@pytest.fixture
def service(signer: Signer) -> ArchiveService:
    return ArchiveService(signer.sign, signer.public_pem(), FixedClock(START + timedelta(days=90)))


@pytest.fixture
def archived(tmp_path: Path, service: ArchiveService) -> Path:
    db = tmp_path / "tally.sqlite"
    _ledger(db)
    out = tmp_path / "archive"
    service.archive(
        SqlitePartitionSource(db),
        TRANSFERS,
        Partition("transfers", PERIOD.name, PERIOD.start, PERIOD.end),
        ArchiveDirSink(out),
    )
    return out


def _lines(archive: Path) -> list[bytes]:
    return gzip.decompress((archive / ROWS).read_bytes()).splitlines()


def _rewrite(archive: Path, lines: list[bytes]) -> None:
    (archive / ROWS).write_bytes(gzip.compress(b"".join(line + b"\n" for line in lines)))


def _problems(service: ArchiveService, archive: Path, pem: bytes | None = None) -> list[str]:
    return service.verify(ArchiveDirReading(archive), pem).problems


def test_a_period_is_archived_with_its_figures_and_verifies(
    tmp_path: Path, service: ArchiveService, signer: Signer
) -> None:
    db = tmp_path / "tally.sqlite"
    eur, jpy = _ledger(db)
    out = tmp_path / "archive"
    done = service.archive(
        SqlitePartitionSource(db),
        TRANSFERS,
        Partition("transfers", PERIOD.name, PERIOD.start, PERIOD.end),
        ArchiveDirSink(out),
    )
    assert done.seal.rows == 40  # February's five stay out
    assert {c: (s.debits, s.credits) for c, s in done.seal.sums.items()} == {
        "EUR": (eur, eur),
        "JPY": (jpy, jpy),
    }
    manifest = json.loads((out / MANIFEST).read_bytes())
    assert manifest["partition"]["name"] == "transfers/2026-01"
    assert manifest["seal"]["sums"]["EUR"] == {"debits": str(eur), "credits": str(eur)}
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [ROWS, INDEX, MANIFEST, SIGNATURE, "signing_key.pub.pem"]
    )
    result = service.verify(ArchiveDirReading(out), signer.public_pem())
    assert result.ok, result.problems
    assert result.found == done.seal
    # The rows file is plain gzip'd JSON Lines any tool reads.
    first = json.loads(_lines(out)[0])
    assert first[1] == "e0"
    assert first[5] == 100


def test_a_changed_row_is_named(archived: Path, service: ArchiveService) -> None:
    lines = _lines(archived)
    row = json.loads(lines[4])
    row[5] += 1
    lines[4] = json.dumps(row, separators=(",", ":")).encode()
    _rewrite(archived, lines)
    problems = _problems(service, archived)
    assert f"{ROWS}: SHA-256 differs from the manifest (changed)" in problems
    assert f"{ROWS}: row seq={row[0]} was changed" in problems
    assert any("EUR sums" in p for p in problems)


def test_a_removed_row_is_named(archived: Path, service: ArchiveService) -> None:
    lines = _lines(archived)
    gone = json.loads(lines[7])[0]
    _rewrite(archived, lines[:7] + lines[8:])
    problems = _problems(service, archived)
    assert f"{ROWS}: row seq={gone} was removed" in problems
    assert f"{ROWS}: row count: sealed 40, found 39" in problems


def test_an_added_row_is_named(archived: Path, service: ArchiveService) -> None:
    lines = _lines(archived)
    extra = json.loads(lines[-1])
    extra[0] = 10_000
    extra[1] = "forged"
    _rewrite(archived, [*lines, json.dumps(extra, separators=(",", ":")).encode()])
    problems = _problems(service, archived)
    assert f"{ROWS}: row seq=10000 was added (not in the seal)" in problems


def test_reordered_rows_are_named(archived: Path, service: ArchiveService) -> None:
    lines = _lines(archived)
    a, b = json.loads(lines[2])[0], json.loads(lines[3])[0]
    lines[2], lines[3] = lines[3], lines[2]
    _rewrite(archived, lines)
    problems = _problems(service, archived)
    assert f"{ROWS}: rows were reordered: row seq={b} stands where row seq={a} was sealed" in (
        problems
    )
    assert f"{ROWS}: key {b} follows {a} (not in key order)" not in problems
    assert f"{ROWS}: key {a} follows {b} (not in key order)" in problems
    # Same rows, same sums: only the order (the chain) tells.
    assert not any("sums" in p for p in problems)


def test_an_edited_manifest_fails_its_signature(archived: Path, service: ArchiveService) -> None:
    manifest = json.loads((archived / MANIFEST).read_bytes())
    manifest["seal"]["rows"] = 41
    (archived / MANIFEST).write_bytes(json.dumps(manifest).encode())
    problems = _problems(service, archived)
    assert len(problems) == 1
    assert problems[0].startswith(f"{SIGNATURE}: the signature does not verify")


def test_a_manifest_re_signed_with_another_key_fails_against_the_real_one(
    archived: Path, service: ArchiveService, signer: Signer
) -> None:
    forger = Signer(new_private_key_pem())
    manifest = (archived / MANIFEST).read_bytes()
    (archived / SIGNATURE).write_bytes(base64.b64encode(forger.sign(manifest)))
    (archived / "signing_key.pub.pem").write_bytes(forger.public_pem())
    assert _problems(service, archived) == []  # consistent in itself...
    problems = _problems(service, archived, signer.public_pem())
    assert problems and "does not verify" in problems[0]  # ...but not the signer's


def test_rows_and_index_both_changed_are_caught_though_not_named(
    archived: Path, service: ArchiveService
) -> None:
    lines = _lines(archived)
    _rewrite(archived, lines[1:])
    (archived / INDEX).write_bytes(gzip.compress(b""))
    problems = _problems(service, archived)
    assert f"{INDEX}: SHA-256 differs from the manifest (changed)" in problems
    assert any("cannot be named" in p for p in problems)
    assert f"{ROWS}: row count: sealed 40, found 39" in problems


def test_an_added_file_and_a_cut_file_are_named(archived: Path, service: ArchiveService) -> None:
    (archived / "extra.csv").write_text("x\n")
    data = (archived / ROWS).read_bytes()
    (archived / ROWS).write_bytes(data[: len(data) // 2])
    problems = _problems(service, archived)
    assert "extra.csv: not listed in the manifest (added)" in problems
    assert any(p.startswith(f"{ROWS}: cannot be read to the end") for p in problems)


def test_a_restore_into_a_scratch_file_holds_the_rows_and_the_seal(
    tmp_path: Path, archived: Path, service: ArchiveService
) -> None:
    scratch = tmp_path / "restored.sqlite"
    target = SqliteRestoreTarget(scratch)
    try:
        result = service.restore(ArchiveDirReading(archived), target)
    finally:
        target.close()
    assert result.ok, result.problems
    assert result.found == result.seal
    original = sqlite3.connect(tmp_path / "tally.sqlite")
    restored = sqlite3.connect(scratch)
    cols = ", ".join(TRANSFERS.names)
    want = original.execute(
        f"SELECT {cols} FROM transfers WHERE recorded_at < ? ORDER BY seq",
        (int(PERIOD.end.timestamp() * 1_000_000),),
    ).fetchall()
    assert restored.execute(f"SELECT {cols} FROM transfers ORDER BY seq").fetchall() == want
    # And the restored file, archived again, seals to the very same head.
    again = service.seal(
        SqlitePartitionSource(scratch),
        TRANSFERS,
        Partition("transfers", PERIOD.name, PERIOD.start, PERIOD.end),
    )
    assert again == result.seal
    original.close()
    restored.close()


def test_a_tampered_archive_is_not_restored_silently(
    tmp_path: Path, archived: Path, service: ArchiveService
) -> None:
    lines = _lines(archived)
    _rewrite(archived, lines[:-1])
    target = SqliteRestoreTarget(tmp_path / "r.sqlite")
    try:
        result = service.restore(ArchiveDirReading(archived), target)
    finally:
        target.close()
    assert not result.ok
    assert any("was removed" in p for p in result.problems)


def test_the_cli_verifies_and_names_problems_with_exit_codes(
    tmp_path: Path, archived: Path, signer: Signer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tally.entrypoints.cli import app

    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path / "data"))
    key = tmp_path / "pub.pem"
    key.write_bytes(signer.public_pem())
    runner = CliRunner()
    ok = runner.invoke(app, ["archive", "verify", str(archived), "--public-key", str(key)])
    assert ok.exit_code == 0, ok.output
    assert "verified" in ok.output
    lines = _lines(archived)
    _rewrite(archived, lines[:3] + lines[4:])
    bad = runner.invoke(app, ["archive", "verify", str(archived), "--public-key", str(key)])
    assert bad.exit_code == 1
    assert "was removed" in bad.output
    missing = runner.invoke(app, ["archive", "verify", str(tmp_path / "nope")])
    assert missing.exit_code == 2
