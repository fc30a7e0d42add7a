"""Online backups of the embedded store (ADR 0023): taken while the wallet takes
callbacks from many threads, each backup verifies, restores to a file whose ledger nets
to zero and whose event log and ledger agree; a tampered backup is named."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from tally.adapters.archive_dir import ArchiveDirReading
from tally.adapters.sqlite.lifecycle import (
    SqliteEmbeddedFile,
    events_without_transfers,
    ledger_problems,
)
from tally.events.model import EventKind
from tally.exports.bundle import MANIFEST
from tally.kernel.clock import FixedClock
from tally.lifecycle.archive import BACKUP_FILE
from tally.lifecycle.service import ArchiveService, BackupService
from tally.security.signing import Signer, new_private_key_pem
from tally.wallet.model import CallKind, WalletCall, WalletOp
from tests.support.providers import gateway_world

PROVIDER = "acme"
PLAYERS = [f"p{i}" for i in range(40)]
THREADS = 8
CALLS_PER_THREAD = 150


def _services(live: Path, method: str = "api") -> tuple[BackupService, Signer]:
    from tests.conftest import START

    signer = Signer(new_private_key_pem())
    clock = FixedClock(START + timedelta(days=1))
    archives = ArchiveService(signer.sign, signer.public_pem(), clock)
    store = SqliteEmbeddedFile(live, "vacuum" if method == "vacuum" else "api")
    return BackupService(archives, store, clock), signer


def _call(thread: int, i: int) -> WalletCall:
    player = PLAYERS[(thread * 7 + i) % len(PLAYERS)]
    tx = f"w{thread}-{i}"
    ops = (
        WalletOp(EventKind.BET, tx + "-bet", 10 + i % 9),
        WalletOp(EventKind.WIN, tx + "-win", (i % 3) * 7),
    )
    return WalletCall(CallKind.TRANSACT, player, "EUR", ops=ops)


def _totals(path: Path) -> tuple[int, int, int]:
    """(transfers, events, sum of player balances) in a file."""
    conn = sqlite3.connect(path)
    try:
        transfers = conn.execute("SELECT COUNT(*) FROM transfers").fetchone()[0]
        events = conn.execute("SELECT COUNT(*) FROM event_log").fetchone()[0]
        players = conn.execute(
            "SELECT SUM(b.credits_posted - b.debits_posted) FROM account_definitions d"
            " JOIN account_balances b ON b.num = d.num WHERE d.owner_kind = 'player'"
        ).fetchone()[0]
    finally:
        conn.close()
    return transfers, events, players


@pytest.mark.parametrize("method", ["api", "vacuum"])
def test_backups_taken_under_concurrent_callbacks_restore_consistent(
    tmp_path: Path, method: str
) -> None:
    from tests.conftest import START

    with gateway_world(tmp_path, FixedClock(START), {}, {PROVIDER: "softswiss"}) as w:
        for p in PLAYERS:
            w.open_player(p, "EUR", 1_000_000)
        live = tmp_path / "tally.sqlite"
        backups, signer = _services(live, method)
        errors: list[BaseException] = []
        go = threading.Event()

        def traffic(thread: int) -> None:
            try:
                go.wait()
                for i in range(CALLS_PER_THREAD):
                    answer = w.wallet.handle(PROVIDER, _call(thread, i), "{}")
                    assert answer.error is None, answer
            except BaseException as exc:  # noqa: BLE001 - the main thread reports it
                errors.append(exc)

        threads = [threading.Thread(target=traffic, args=(t,)) for t in range(THREADS)]
        for t in threads:
            t.start()
        go.set()
        taken: list[Path] = []
        # Back up again and again while the callbacks go on.
        while any(t.is_alive() for t in threads) and len(taken) < 6:
            out = tmp_path / f"backup-{len(taken)}"
            backups.backup(out, method=method)
            taken.append(out)
        for t in threads:
            t.join()
        assert not errors, errors
        final = _totals(live)

    assert taken
    in_flight = 0
    for out in taken:
        result = backups.verify(ArchiveDirReading(out), signer.public_pem())
        assert result.ok, (out, result.problems)
        restored = tmp_path / f"{out.name}.sqlite"
        again = backups.restore(ArchiveDirReading(out), restored, signer.public_pem())
        assert again.ok, again.problems
        assert ledger_problems(restored) == []  # nets to zero; balances = their transfers
        assert events_without_transfers(restored) == (0, None)  # log agrees with ledger
        transfers, events, players = _totals(restored)
        manifest = json.loads((out / MANIFEST).read_bytes())
        assert manifest["seals"]["transfers"]["rows"] == transfers
        assert manifest["seals"]["event_log"]["rows"] == events
        # Each callback: a bet and a win event; players' money only went down by stakes.
        assert events % 2 == 0
        assert players <= 1_000_000 * len(PLAYERS)
        if 0 < events < final[1]:
            in_flight += 1
    # All calls' events made it to the live file: 2 a call.
    assert final[1] == THREADS * CALLS_PER_THREAD * 2
    assert in_flight >= 1, "no backup was taken while the callbacks were still coming"


@pytest.fixture
def one_backup(tmp_path: Path) -> tuple[Path, BackupService, Signer]:
    from tests.conftest import START

    with gateway_world(tmp_path, FixedClock(START), {}, {PROVIDER: "softswiss"}) as w:
        for p in PLAYERS[:5]:
            w.open_player(p, "EUR", 10_000)
        for i in range(20):
            w.wallet.handle(PROVIDER, _call(0, i), "{}")
    backups, signer = _services(tmp_path / "tally.sqlite")
    out = tmp_path / "backup"
    backups.backup(out)
    return out, backups, signer


def test_a_changed_backup_file_is_named(one_backup: tuple[Path, BackupService, Signer]) -> None:
    out, backups, signer = one_backup
    conn = sqlite3.connect(out / BACKUP_FILE)
    conn.execute("UPDATE transfers SET amount = amount + 1 WHERE seq = 3")
    conn.commit()
    conn.close()
    problems = backups.verify(ArchiveDirReading(out), signer.public_pem()).problems
    assert f"{BACKUP_FILE}: SHA-256 differs from the manifest (changed)" in problems
    assert any(p.startswith("transfers: hash chain") for p in problems)
    assert any("stored posted balance" in p for p in problems)  # the ledger check too
    restored = out.parent / "r.sqlite"
    assert not backups.restore(ArchiveDirReading(out), restored).ok
    assert not restored.exists()


def test_an_edited_backup_manifest_fails_its_signature(
    one_backup: tuple[Path, BackupService, Signer],
) -> None:
    out, backups, signer = one_backup
    manifest = json.loads((out / MANIFEST).read_bytes())
    manifest["seals"]["transfers"]["rows"] += 1
    (out / MANIFEST).write_text(json.dumps(manifest))
    problems = backups.verify(ArchiveDirReading(out), signer.public_pem()).problems
    assert len(problems) == 1 and "does not verify" in problems[0]


def test_a_restore_never_overwrites_a_file(
    tmp_path: Path, one_backup: tuple[Path, BackupService, Signer]
) -> None:
    out, backups, _ = one_backup
    existing = tmp_path / "there.sqlite"
    existing.write_bytes(b"keep me")
    with pytest.raises(FileExistsError):
        backups.restore(ArchiveDirReading(out), existing)
    assert existing.read_bytes() == b"keep me"


def test_an_event_whose_transfer_is_missing_is_counted(
    tmp_path: Path, one_backup: tuple[Path, BackupService, Signer]
) -> None:
    out, backups, _ = one_backup
    restored = tmp_path / "r.sqlite"
    assert backups.restore(ArchiveDirReading(out), restored).ok
    assert events_without_transfers(restored) == (0, None)
    conn = sqlite3.connect(restored)
    (ref,) = conn.execute(
        "SELECT event_ref FROM transfers WHERE event_ref LIKE '%-bet:bet' ORDER BY seq LIMIT 1"
    ).fetchone()
    conn.execute("DELETE FROM transfers WHERE event_ref = ?", (ref,))
    conn.commit()
    conn.close()
    assert events_without_transfers(restored) == (1, ref)


def test_the_cli_backs_up_verifies_and_restores(
    tmp_path: Path, one_backup: tuple[Path, BackupService, Signer], monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from tally.entrypoints.cli import app

    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TALLY_SQLITE_PATH", str(tmp_path / "tally.sqlite"))
    runner = CliRunner()
    made = runner.invoke(app, ["backup", "create", "--out", str(tmp_path / "b2")])
    assert made.exit_code == 0, made.output
    assert "transfers" in made.output
    checked = runner.invoke(app, ["backup", "verify", str(tmp_path / "b2")])
    assert checked.exit_code == 0, checked.output
    back = runner.invoke(
        app, ["backup", "restore", str(tmp_path / "b2"), "--to", str(tmp_path / "r2.sqlite")]
    )
    assert back.exit_code == 0, back.output
    assert ledger_problems(tmp_path / "r2.sqlite") == []
    (tmp_path / "b2" / "stray.txt").write_text("?")
    bad = runner.invoke(app, ["backup", "verify", str(tmp_path / "b2")])
    assert bad.exit_code == 1
    assert "stray.txt: not listed in the manifest (added)" in bad.output
