"""Exports over the API: a signed zip that verifies offline; refused periods."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from typer.testing import CliRunner

from tally.audit.chain import Anchor
from tally.entrypoints.cli import app as cli
from tests.integration.apiworld import World

PERIOD = {"start": "2025-12-01T00:00:00Z", "end": "2026-12-01T00:00:00+01:00"}


def test_an_export_downloaded_from_the_api_verifies_offline(world: World, tmp_path: Path):
    r = world.client.post("/v1/exports", json=PERIOD, headers=world.headers("finance"))
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    archive = tmp_path / "export.zip"
    archive.write_bytes(r.content)
    names = set(zipfile.ZipFile(io.BytesIO(r.content)).namelist())
    assert {"manifest.json", "manifest.sig", "transfers.csv", "audit.json"} <= names
    pub = tmp_path / "pub.pem"
    pub.write_bytes(world.bo.signer.public_pem())
    result = CliRunner().invoke(cli, ["export", "verify", str(archive), "--public-key", str(pub)])
    assert result.exit_code == 0, result.output
    record = world.bo.audit.page(action="export.created").items[-1]
    assert record.entry.actor == "user:" + world.user_ids["finance"]
    assert record.entry.after and record.entry.after["transfers"] == 4


def test_a_tampered_zip_fails_verification(world: World, tmp_path: Path):
    r = world.client.post("/v1/exports", json=PERIOD, headers=world.headers("auditor"))
    files = dict(
        (n, zipfile.ZipFile(io.BytesIO(r.content)).read(n))
        for n in zipfile.ZipFile(io.BytesIO(r.content)).namelist()
    )
    files["transfers.json"] = files["transfers.json"].replace(b"12.34", b"1.23")
    archive = tmp_path / "tampered.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name, data in files.items():
            out.writestr(name, data)
    pub = tmp_path / "pub.pem"
    pub.write_bytes(world.bo.signer.public_pem())
    result = CliRunner().invoke(cli, ["export", "verify", str(archive), "--public-key", str(pub)])
    assert result.exit_code == 1
    assert "transfers.json" in result.output


def test_an_owner_filtered_export_and_refused_periods(world: World):
    h = world.headers("admin")
    ok = world.client.post("/v1/exports", json={**PERIOD, "owner": "partner:pa"}, headers=h)
    manifest = zipfile.ZipFile(io.BytesIO(ok.content)).read("manifest.json")
    assert b'"transfers": 1' in manifest
    backwards = {"start": PERIOD["end"], "end": PERIOD["start"]}
    r = world.client.post("/v1/exports", json=backwards, headers=h)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_period")
    too_long = {"start": "2020-01-01T00:00:00Z", "end": "2026-01-01T00:00:00Z"}
    assert world.client.post("/v1/exports", json=too_long, headers=h).status_code == 422
    naive = {"start": "2026-01-01T00:00:00", "end": "2026-01-02T00:00:00Z"}
    assert world.client.post("/v1/exports", json=naive, headers=h).status_code == 422


def test_the_audit_head_is_published_in_each_manifest_and_in_the_metrics(world: World):
    r = world.client.post("/v1/exports", json=PERIOD, headers=world.headers("finance"))
    manifest = json.loads(zipfile.ZipFile(io.BytesIO(r.content)).read("manifest.json"))
    records = list(world.bo.store.iter_audit())
    # The head as it was when the bundle was made (the export's own record comes after).
    before = records[-2]
    assert manifest["audit_head"] == {"seq": before.seq, "hash": before.hash}
    text = world.client.get("/metrics", headers=world.headers("key_ops")).text
    head = world.bo.store.audit_head()
    assert head is not None and head.seq == records[-1].seq
    assert f'tally_audit_head_seq{{hash="{head.hash}"}} {float(head.seq)}' in text
    assert world.bo.audit.verify([Anchor(before.seq, before.hash)])[1] == []


def test_a_zip_with_a_forged_member_in_a_subfolder_fails_verification_naming_it(
    world: World, tmp_path: Path
):
    r = world.client.post("/v1/exports", json=PERIOD, headers=world.headers("auditor"))
    source = zipfile.ZipFile(io.BytesIO(r.content))
    archive = tmp_path / "forged.zip"
    with zipfile.ZipFile(archive, "w") as out:
        for name in source.namelist():
            out.writestr(name, source.read(name))
        out.writestr("extra/deeper/transfers.csv", b"id\nforged\n")
    pub = tmp_path / "pub.pem"
    pub.write_bytes(world.bo.signer.public_pem())
    result = CliRunner().invoke(cli, ["export", "verify", str(archive), "--public-key", str(pub)])
    assert result.exit_code == 1, result.output
    assert "extra/deeper/transfers.csv" in result.output
    assert "not listed" in result.output
