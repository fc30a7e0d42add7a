"""``tally serve`` answers over HTTPS when given a certificate and key."""

from __future__ import annotations

import datetime as dt
import os
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_the_server_speaks_tls(tmp_path: Path):
    cert, key = _self_signed(tmp_path)
    port = _free_port()
    env = {**os.environ, "TALLY_DATA_DIR": str(tmp_path), "TALLY_LOG_LEVEL": "WARNING"}
    env.pop("TALLY_MODE", None)
    tally = Path(sys.executable).with_name("tally")
    args = ["serve", "--port", str(port), "--tls-cert", str(cert), "--tls-key", str(key)]
    trust = ssl.create_default_context(cafile=str(cert))
    proc = subprocess.Popen([str(tally), *args], env=env)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = httpx.get(f"https://localhost:{port}/health", verify=trust, timeout=1)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "the server exited"
                assert time.monotonic() < deadline, "the server did not come up"
                time.sleep(0.2)
        assert r.json() == {"status": "ok"}
        assert (
            httpx.get(f"https://localhost:{port}/v1/users", verify=trust, timeout=2).status_code
            == 401
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
