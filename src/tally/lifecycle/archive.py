"""Archives: a partition's rows, its index and its signed manifest (ADR 0023).

An archive is a directory of five files, self-describing so that it can be checked and
loaded with nothing but this format and the signer's public key:

- ``rows.jsonl.gz``: the rows in canonical encoding and order (``seal``), one a line,
  gzip-compressed (RFC 1952: any tool reads it, and Python's zlib writes it at ~100 MB/s);
- ``rows.idx.gz``: the index (each row's key and digest prefix), gzip-compressed;
- ``manifest.json``: the format, the partition, the columns and their types, the seal,
  and each file's SHA-256 and size;
- ``manifest.sig``: the manifest's Ed25519 signature (base64), made with the key that
  signs regulator exports; ``signing_key.pub.pem``: its public half, for convenience only
  (who made an archive is proved only against a key the verifier already holds).

Pure: builds and reads the manifest; the files are the adapter's business.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tally.exports.bundle import MANIFEST, PUBLIC_KEY, SIGNATURE
from tally.lifecycle.seal import Seal, TableSpec, table_spec

ARCHIVE_FORMAT = "tally-archive/1"
BACKUP_FORMAT = "tally-backup/1"
ROWS = "rows.jsonl.gz"
INDEX = "rows.idx.gz"
BACKUP_FILE = "tally.sqlite"
ENVELOPE = (MANIFEST, SIGNATURE, PUBLIC_KEY)
ENCODING = (
    "one JSON array per row, values in the order of 'columns', compact, UTF-8, "
    "instants as integer microseconds since 1970-01-01T00:00:00Z, rows in ascending key "
    "order, each followed by a newline; gzip"
)
INDEX_ENCODING = (
    "n keys as little-endian int64, then n 8-byte prefixes of each row's BLAKE2b-128 "
    "digest, in row order; gzip"
)


def _utc(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Partition:
    """One table's rows of one period (and region, where the store partitions by it)."""

    table: str
    period: str
    start: datetime
    end: datetime
    region: str = ""

    @property
    def name(self) -> str:
        return "/".join(p for p in (self.table, self.region, self.period) if p)


@dataclass(frozen=True, slots=True)
class FileMeta:
    sha256: str
    bytes: int


def manifest_bytes(
    *,
    partition: Partition,
    spec: TableSpec,
    source: str,
    seal: Seal,
    files: Mapping[str, FileMeta],
    created_at: datetime,
    created_by: str,
) -> bytes:
    manifest = {
        "format": ARCHIVE_FORMAT,
        "partition": {
            "name": partition.name,
            "table": partition.table,
            "region": partition.region,
            "period": partition.period,
            "start": _utc(partition.start),
            "end": _utc(partition.end),
        },
        "source": source,
        "columns": [[n, t] for n, t in spec.columns],
        "key": spec.key,
        "time": spec.time,
        "encoding": ENCODING,
        "index": INDEX_ENCODING,
        "seal": seal.to_dict(),
        "files": {n: {"sha256": m.sha256, "bytes": m.bytes} for n, m in sorted(files.items())},
        "created_at": _utc(created_at),
        "created_by": created_by,
    }
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


@dataclass(frozen=True, slots=True)
class Manifest:
    raw: dict[str, Any]

    @classmethod
    def parse(cls, data: bytes) -> Manifest:
        raw = json.loads(data)
        if not isinstance(raw, dict) or raw.get("format") != ARCHIVE_FORMAT:
            raise ValueError(f"not a {ARCHIVE_FORMAT} manifest")
        return cls(raw)

    @property
    def spec(self) -> TableSpec:
        spec = table_spec(self.raw["partition"]["table"])
        declared = tuple((str(n), str(t)) for n, t in self.raw["columns"])
        if declared != spec.columns or self.raw["key"] != spec.key:
            raise ValueError(f"the manifest's columns are not those of {spec.name}")
        return spec

    @property
    def partition_name(self) -> str:
        return str(self.raw["partition"]["name"])

    @property
    def seal(self) -> Seal:
        return Seal.from_dict(self.raw["seal"])

    @property
    def files(self) -> dict[str, FileMeta]:
        return {
            n: FileMeta(str(m["sha256"]), int(m["bytes"])) for n, m in self.raw["files"].items()
        }


def sign(manifest: bytes, signer: Callable[[bytes], bytes]) -> bytes:
    return base64.b64encode(signer(manifest)) + b"\n"


def check_signature(
    manifest: bytes | None,
    signature: bytes | None,
    public_pem: bytes,
    verify: Callable[[bytes, bytes, bytes], bool],
) -> list[str]:
    """Problems with the envelope; empty when the manifest is the one that was signed."""
    if manifest is None or signature is None:
        return [f"{MANIFEST} or {SIGNATURE} is missing"]
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except ValueError:
        return [f"{SIGNATURE} is not base64"]
    if not verify(public_pem, manifest, raw):
        return [
            f"{SIGNATURE}: the signature does not verify with the given public key "
            "(the manifest was edited, or signed with another key)"
        ]
    return []
