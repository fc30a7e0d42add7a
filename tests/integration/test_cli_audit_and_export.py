"""The command line: first admin, audit verification with tampering, signed exports."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tally.app.bootstrap import build_app, build_backoffice
from tally.app.settings import Settings
from tally.audit.chain import AuditEntry
from tally.entrypoints.cli import app as cli
from tally.ledger.model import Account, AccountFlags, OwnerKind, TransferRequest

runner = CliRunner()
PASSWORD = "a long enough password"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TALLY_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("TALLY_LOG_LEVEL", "WARNING")
    for name in ("TALLY_MODE", "TALLY_SQLITE_PATH", "TALLY_KEYS_DIR", "TALLY_AUDIT_KEY"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def tally(*args: str, input: str | None = None):
    return runner.invoke(cli, list(args), input=input)


def make_users(n: int) -> None:
    for i in range(n):
        r = tally("users", "create", f"op{i}", "--role", "operations", input=f"{PASSWORD}\n" * 2)
        assert r.exit_code == 0, r.output


def test_the_first_admin_is_created_from_the_command_line_and_audited(env: Path):
    r = tally("users", "create", "root", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0, r.output
    assert "created user root" in r.output
    r = tally("audit", "verify")
    assert r.exit_code == 0 and "1 records verified" in r.output


def test_keys_are_generated_once_with_owner_only_permissions(env: Path):
    make_users(1)
    keys = sorted((env / "keys").iterdir())
    assert [k.name for k in keys] == [
        "audit.key",
        "export_signing_ed25519.pem",
        "pseudonym.key",
        "secret.key",
    ]
    assert all(k.stat().st_mode & 0o777 == 0o600 for k in keys)


def _tamper(env: Path, *statements: str) -> None:
    conn = sqlite3.connect(env / "tally.sqlite")
    # Someone with write access to the file can drop the append-only triggers.
    conn.execute("DROP TRIGGER audit_records_no_update")
    conn.execute("DROP TRIGGER audit_records_no_delete")
    for s in statements:
        conn.execute(s)
    conn.commit()
    conn.close()


def _verify_fails_naming(seq: int, finding: str) -> None:
    r = tally("audit", "verify")
    assert r.exit_code == 1
    rows = [line.split("│")[1:3] for line in r.output.splitlines() if line.count("│") >= 3]
    found = {(a.strip(), b.strip()) for a, b in rows}
    assert (str(seq), finding) in found, r.output


def test_the_audit_table_refuses_updates_and_deletes(env: Path):
    make_users(1)
    conn = sqlite3.connect(env / "tally.sqlite")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit_records SET actor = 'x'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit_records")


def test_an_edited_record_is_detected(env: Path):
    make_users(4)
    _tamper(env, 'UPDATE audit_records SET after = \'{"roles":["admin"]}\' WHERE seq = 2')
    _verify_fails_naming(2, "edited")


def test_a_deleted_record_is_detected(env: Path):
    make_users(4)
    _tamper(env, "DELETE FROM audit_records WHERE seq = 2")
    _verify_fails_naming(3, "deleted")


def test_an_inserted_record_is_detected(env: Path):
    make_users(4)
    _tamper(
        env,
        "UPDATE audit_records SET seq = seq + 100 WHERE seq >= 3",
        "UPDATE audit_records SET seq = seq - 99 WHERE seq >= 100",
        "INSERT INTO audit_records SELECT 3, 'user:mallory', action, target, at, source, before,"
        " after, detail, (SELECT hash FROM audit_records WHERE seq = 2), lower(hex(randomblob(32)))"
        " FROM audit_records WHERE seq = 2",
        "UPDATE audit_head SET seq = seq + 1",
    )
    _verify_fails_naming(3, "inserted")


def test_reordered_records_are_detected(env: Path):
    make_users(4)
    _tamper(
        env,
        "UPDATE audit_records SET seq = -2 WHERE seq = 2",
        "UPDATE audit_records SET seq = 2 WHERE seq = 3",
        "UPDATE audit_records SET seq = 3 WHERE seq = -2",
    )
    _verify_fails_naming(2, "reordered")


def test_a_cut_off_tail_is_detected(env: Path):
    make_users(4)
    _tamper(env, "DELETE FROM audit_records WHERE seq = 4")
    _verify_fails_naming(4, "truncated")


def test_a_wiped_trail_beside_users_is_detected(env: Path):
    make_users(2)
    _tamper(env, "DELETE FROM audit_records", "DELETE FROM audit_head")
    r = tally("audit", "verify")
    assert r.exit_code == 1, r.output
    assert "truncated" in r.output and "users" in r.output


def test_a_trail_rolled_back_to_a_saved_copy_fails_against_an_exports_anchor(env: Path):
    make_users(2)
    saved = (env / "tally.sqlite").read_bytes()  # a copy of the file, taken quietly
    # ... more happens, and is anchored by an export's signed manifest.
    r = tally("users", "create", "late", "--role", "operations", input=f"{PASSWORD}\n" * 2)
    assert r.exit_code == 0, r.output
    bundle = _export(env)
    head = json.loads((bundle / "manifest.json").read_text())["audit_head"]
    assert head["seq"] == 3
    assert tally("audit", "verify", "--anchor-bundle", str(bundle)).exit_code == 0
    # The copy is put back: its records and sealed head agree with each other.
    for leftover in env.glob("tally.sqlite-*"):
        leftover.unlink()
    (env / "tally.sqlite").write_bytes(saved)
    assert tally("audit", "verify").exit_code == 0  # the file alone cannot tell
    for how in (["--anchor-bundle", str(bundle)], ["--anchor", f"{head['seq']}:{head['hash']}"]):
        r = tally("audit", "verify", *how)
        assert r.exit_code == 1, r.output
        assert "truncated" in r.output and "cut back" in r.output


def test_a_malformed_anchor_is_refused_with_a_message(env: Path):
    make_users(1)
    r = tally("audit", "verify", "--anchor", "3:nothex")
    assert r.exit_code == 2 and "SEQ:HASH" in r.output


def _seed_ledger(env: Path) -> None:
    settings = Settings.from_env({"TALLY_DATA_DIR": str(env)})
    with build_app(settings) as app:
        app.ledger.create_accounts(
            [
                Account("platform:cash:EUR", OwnerKind.PLATFORM, "platform", "EUR", "cash"),
                Account(
                    "player:alice-42:EUR",
                    OwnerKind.PLAYER,
                    "alice-42",
                    "EUR",
                    "wallet",
                    AccountFlags.DEBITS_MUST_NOT_EXCEED_CREDITS,
                ),
                Account("operator:op1:house:EUR", OwnerKind.OPERATOR, "op1", "EUR", "house"),
            ]
        )
        app.ledger.transfer(
            [
                TransferRequest(
                    "dep-1", "platform:cash:EUR", "player:alice-42:EUR", 10_00, "EUR", "deposit"
                ),
                TransferRequest(
                    "bet-1", "player:alice-42:EUR", "operator:op1:house:EUR", 2_50, "EUR", "bet"
                ),
            ]
        )


def _export(env: Path, *extra: str) -> Path:
    out = env / "bundle"
    now = datetime.now(UTC)
    r = tally(
        "export",
        "period",
        "--start",
        (now - timedelta(days=300)).isoformat(),
        "--end",
        (now + timedelta(days=1)).isoformat(),
        "--out",
        str(out),
        *extra,
    )
    assert r.exit_code == 0, r.output
    return out


def test_an_export_verifies_offline_with_the_public_key(env: Path):
    make_users(1)
    _seed_ledger(env)
    bundle = _export(env)
    pub = env / "exporter.pub.pem"
    pub.write_bytes((bundle / "signing_key.pub.pem").read_bytes())
    r = tally("export", "verify", str(bundle), "--public-key", str(pub))
    assert r.exit_code == 0, r.output
    transfers = json.loads((bundle / "transfers.json").read_text())
    assert [(t["id"], t["amount"]) for t in transfers] == [("dep-1", "10.00"), ("bet-1", "2.50")]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["counts"] == {
        "transfers": 2,
        "accounts": 3,
        "audit_records": 1,
        "statements": 0,
    }


def test_player_identifiers_never_leave_in_an_export(env: Path):
    _seed_ledger(env)
    bundle = _export(env)
    for f in bundle.iterdir():
        assert b"alice-42" not in f.read_bytes(), f.name
    accounts = json.loads((bundle / "accounts.json").read_text())
    player = next(a for a in accounts if a["owner_kind"] == "player")
    assert player["owner_id"].startswith("ps_")


def test_no_member_of_an_export_carries_any_players_id_in_any_field(env: Path):
    _seed_ledger(env)
    players = ["alice-42", "bob-7"]  # bob has a wallet but moved no money in the period
    settings = Settings.from_env({"TALLY_DATA_DIR": str(env)})
    with build_app(settings) as app:
        app.ledger.create_accounts(
            [Account("player:bob-7:EUR", OwnerKind.PLAYER, "bob-7", "EUR", "wallet")]
        )
        app.ledger.transfer(
            [
                TransferRequest(
                    "deposit:alice-42-EUR-initial",
                    "platform:cash:EUR",
                    "player:alice-42:EUR",
                    5_00,
                    "EUR",
                    "deposit",
                )
            ]
        )
        bo = build_backoffice(app)
        try:
            for player in players:
                bo.audit.record(
                    AuditEntry(
                        actor="system",
                        action="wallet.opened",
                        target=f"wallet:player:{player}:EUR",
                        at=datetime.now(UTC),
                        source="cli",
                        after={"player": player, "note": f"opened for {player} by op1"},
                        detail={"account": f"player:{player}:EUR", "players": [player]},
                    )
                )
        finally:
            bo.close()
    bundle = _export(env)
    for member in sorted(bundle.rglob("*")):
        data = member.read_bytes()
        for player in players:
            assert player.encode() not in data, f"{player} in {member.name}"
    transfers = json.loads((bundle / "transfers.json").read_text())
    accounts = json.loads((bundle / "accounts.json").read_text())
    alice = next(a["id"] for a in accounts if a["owner_kind"] == "player")
    deposit = next(t for t in transfers if t["id"].startswith("deposit:"))
    assert deposit["credit_account_id"] == alice and deposit["id"].endswith("-EUR-initial")
    audit = json.loads((bundle / "audit.json").read_text())
    opened = [r for r in audit if r["action"] == "wallet.opened"]
    assert opened[0]["target"] == f"wallet:{alice}"  # the same pseudonym as in accounts
    # Operators are not players: their ids are kept.
    assert "op1" in opened[0]["after"]["note"]
    r = tally("audit", "verify")
    assert r.exit_code == 0, r.output


def test_an_export_for_one_owner_holds_only_its_transfers(env: Path):
    _seed_ledger(env)
    bundle = _export(env, "--owner", "operator:op1")
    transfers = json.loads((bundle / "transfers.json").read_text())
    assert [t["id"] for t in transfers] == ["bet-1"]


@pytest.mark.parametrize(
    "tamper",
    ["edit_csv", "edit_manifest", "drop_file", "add_file", "wrong_key"],
)
def test_a_tampered_bundle_fails_verification(env: Path, tamper: str):
    _seed_ledger(env)
    bundle = _export(env)
    pub = env / "exporter.pub.pem"
    pub.write_bytes((bundle / "signing_key.pub.pem").read_bytes())
    if tamper == "edit_csv":
        path = bundle / "transfers.csv"
        path.write_text(path.read_text().replace("2.50", "0.25"))
    elif tamper == "edit_manifest":
        path = bundle / "manifest.json"
        path.write_text(path.read_text().replace('"transfers": 2', '"transfers": 1'))
    elif tamper == "drop_file":
        (bundle / "audit.json").unlink()
    elif tamper == "add_file":
        (bundle / "extra.csv").write_text("id\n1\n")
    else:
        from tally.security.signing import Signer, new_private_key_pem

        pub.write_bytes(Signer(new_private_key_pem()).public_pem())
    r = tally("export", "verify", str(bundle), "--public-key", str(pub))
    assert r.exit_code == 1, r.output


def test_exports_are_audited(env: Path):
    _seed_ledger(env)
    _export(env)
    r = tally("audit", "verify")
    assert r.exit_code == 0 and "1 records verified" in r.output


def test_a_lost_totp_device_and_a_lock_out_are_fixed_from_the_command_line(env: Path):
    r = tally("users", "create", "root", "--role", "admin", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert r.exit_code == 0
    assert tally("users", "reset-mfa", "root").exit_code == 0
    assert tally("users", "unlock", "root").exit_code == 0
    assert tally("users", "unlock", "ghost").exit_code == 1
    listed = tally("users", "list")
    assert "root" in listed.output and "admin" in listed.output
    r = tally("audit", "verify")
    assert r.exit_code == 0 and "3 records verified" in r.output


def test_an_export_of_an_impossible_period_is_refused_with_a_message(env: Path):
    r = tally(
        "export",
        "period",
        "--start",
        "2026-02-01T00:00:00Z",
        "--end",
        "2026-01-01T00:00:00Z",
        "--out",
        str(env / "b"),
    )
    assert r.exit_code == 1 and "after its start" in r.output
    assert not (env / "b").exists()


def test_a_bundle_directory_with_a_file_in_a_subfolder_fails_verification_naming_it(env: Path):
    _seed_ledger(env)
    bundle = _export(env)
    (bundle / "more").mkdir()
    (bundle / "more" / "accounts.csv").write_text("id\nforged\n")
    r = tally("export", "verify", str(bundle))
    assert r.exit_code == 1, r.output
    assert "more/accounts.csv" in r.output and "not listed" in r.output


def test_a_bundle_without_its_public_key_and_no_key_given_is_refused_with_a_message(env: Path):
    _seed_ledger(env)
    bundle = _export(env)
    (bundle / "signing_key.pub.pem").unlink()
    r = tally("export", "verify", str(bundle))
    assert r.exit_code == 2, r.output
    assert r.exception is None or isinstance(r.exception, SystemExit)
    assert "--public-key" in r.output and "Traceback" not in r.output
