"""Seals partitions into signed archives, verifies them offline and restores them."""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import orjson

from tally.exports.bundle import MANIFEST, PUBLIC_KEY, SIGNATURE
from tally.kernel.alerts import AlertSignal, AlertSink, Severity
from tally.kernel.clock import EPOCH, Clock
from tally.lifecycle.archive import (
    ARCHIVE_FORMAT,
    BACKUP_FILE,
    BACKUP_FORMAT,
    ENVELOPE,
    INDEX,
    ROWS,
    FileMeta,
    Manifest,
    Partition,
    check_signature,
    manifest_bytes,
    sign,
)
from tally.lifecycle.ports import ArchiveReading, ArchiveSink, PartitionSource, RestoreTarget
from tally.lifecycle.seal import (
    EVENT_LOG,
    TRANSFERS,
    Period,
    RowIndex,
    Seal,
    SealBuilder,
    TableSpec,
    name_row_differences,
)
from tally.security.signing import verify_signature

# Rows read from a store, written to an archive, or loaded into a scratch store per round.
LIFECYCLE_BATCH = 20_000


@dataclass(frozen=True, slots=True)
class Archived:
    partition: Partition
    seal: Seal
    manifest: bytes


@dataclass(slots=True)
class Verification:
    """What a check found: ``problems`` empty means the archive is what was sealed."""

    partition: str = ""
    seal: Seal | None = None
    found: Seal | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


class ArchiveService:
    def __init__(
        self,
        sign_with: Callable[[bytes], bytes],
        public_pem: bytes,
        clock: Clock,
        *,
        verify: Callable[[bytes, bytes, bytes], bool] = verify_signature,
    ) -> None:
        self._sign = sign_with
        self._public_pem = public_pem
        self._clock = clock
        self._verify = verify

    def seal(self, source: PartitionSource, spec: TableSpec, partition: Partition) -> Seal:
        """A partition's seal, read from the live store (nothing written)."""
        builder = SealBuilder(spec, partition.name, keep_index=False)
        for batch in source.batches(spec, partition, LIFECYCLE_BATCH):
            builder.add_rows(batch)
        return builder.seal()

    def archive(
        self,
        source: PartitionSource,
        spec: TableSpec,
        partition: Partition,
        sink: ArchiveSink,
        *,
        actor: str = "system",
    ) -> Archived:
        builder = SealBuilder(spec, partition.name)
        try:
            for batch in source.batches(spec, partition, LIFECYCLE_BATCH):
                sink.write_rows(builder.add_rows(batch))
            if builder.out_of_order:
                prev, key = builder.out_of_order[0]
                raise AssertionError(f"{partition.name}: the store gave key {key} after {prev}")
            files = sink.finish_rows(builder.index_bytes())
            seal = builder.seal()
            manifest = manifest_bytes(
                partition=partition,
                spec=spec,
                source=source.kind,
                seal=seal,
                files=files,
                created_at=self._clock.now(),
                created_by=actor,
            )
            sink.envelope(manifest, sign(manifest, self._sign), self._public_pem)
        except BaseException:
            sink.abort()
            raise
        return Archived(partition, seal, manifest)

    # -- checking ------------------------------------------------------------------------

    def verify(self, reading: ArchiveReading, public_pem: bytes | None = None) -> Verification:
        """Check an archive offline: signature, files, then every row against the seal.

        ``public_pem``: the key the archive must be signed with; without it, the key in
        the archive is used, which proves integrity but not origin."""
        result, manifest, spec = self._open(reading, public_pem)
        if manifest is None or spec is None:
            return result
        found, _ = self._read_rows(reading, manifest, spec, result, into=None)
        result.found = found
        return result

    def restore(
        self, reading: ArchiveReading, target: RestoreTarget, public_pem: bytes | None = None
    ) -> Verification:
        """Load an archive into ``target`` and check what the target then holds against
        the seal (not only what was read from the files)."""
        result, manifest, spec = self._open(reading, public_pem)
        if manifest is None or spec is None:
            return result
        target.create(spec)
        _, read_index = self._read_rows(reading, manifest, spec, result, into=target)
        back = SealBuilder(spec, manifest.partition_name)
        for batch in target.batches(spec, LIFECYCLE_BATCH):
            back.add_rows(batch)
        restored = back.seal()
        result.found = restored
        sealed = manifest.seal
        for p in sealed.differences(restored):
            result.problems.append(f"restored store: {p}")
        if read_index is not None and restored.head != sealed.head:
            result.problems.extend(
                f"restored store: {p}"
                for p in name_row_differences(spec.key, read_index, back.index())
            )
        return result

    def signed(self, manifest: bytes) -> dict[str, bytes]:
        """The envelope of a manifest: itself, its signature, the public key."""
        return {
            MANIFEST: manifest,
            SIGNATURE: sign(manifest, self._sign),
            PUBLIC_KEY: self._public_pem,
        }

    def open_signed(
        self, reading: ArchiveReading, public_pem: bytes | None, form: str
    ) -> tuple[Verification, dict[str, Any] | None]:
        """The manifest, once its signature holds (else the problems)."""
        result = Verification()
        raw = reading.read(MANIFEST)
        pem = public_pem if public_pem is not None else reading.read(PUBLIC_KEY)
        if pem is None:
            result.problems.append(f"no public key: the archive holds no {PUBLIC_KEY}")
            return result, None
        try:
            result.problems += check_signature(raw, reading.read(SIGNATURE), pem, self._verify)
        except ValueError as exc:
            result.problems.append(f"the public key cannot be used: {exc}")
        if result.problems or raw is None:
            return result, None
        try:
            manifest = json.loads(raw)
        except ValueError:
            manifest = None
        if not isinstance(manifest, dict) or manifest.get("format") != form:
            result.problems.append(f"{MANIFEST}: signed, but not a {form} manifest")
            return result, None
        return result, manifest

    def _open(
        self, reading: ArchiveReading, public_pem: bytes | None
    ) -> tuple[Verification, Manifest | None, TableSpec | None]:
        result, raw = self.open_signed(reading, public_pem, ARCHIVE_FORMAT)
        if raw is None:
            return result, None, None
        try:
            manifest = Manifest(raw)
            spec = manifest.spec
            result.seal = manifest.seal
            result.partition = manifest.partition_name
        except (ValueError, KeyError, TypeError) as exc:
            result.problems.append(f"{MANIFEST}: signed, but not a manifest this code reads: {exc}")
            return result, None, None
        listed = manifest.files
        for name in sorted(listed):
            found = reading.meta(name)
            if found is None:
                result.problems.append(f"{name}: listed in the manifest but missing")
            elif found != listed[name]:
                result.problems.append(f"{name}: SHA-256 differs from the manifest (changed)")
        for name in sorted(reading.names() - set(listed) - {MANIFEST, SIGNATURE, PUBLIC_KEY}):
            result.problems.append(f"{name}: not listed in the manifest (added)")
        return result, manifest, spec

    def _read_rows(
        self,
        reading: ArchiveReading,
        manifest: Manifest,
        spec: TableSpec,
        result: Verification,
        into: RestoreTarget | None,
    ) -> tuple[Seal | None, RowIndex | None]:
        """Recompute the seal from the rows file, and name the rows that differ."""
        if reading.meta(ROWS) is None:
            return None, None
        builder = SealBuilder(spec, manifest.partition_name)
        try:
            for lines in reading.row_lines(LIFECYCLE_BATCH):
                rows = builder.add_lines(lines)
                if into is not None:
                    into.insert(spec, rows)
        except (OSError, EOFError, zlib.error, orjson.JSONDecodeError) as exc:
            result.problems.append(f"{ROWS}: cannot be read to the end: {exc}")
            return None, None
        found = builder.seal()
        sealed = manifest.seal
        result.problems.extend(f"{ROWS}: {p}" for p in sealed.differences(found))
        for prev, key in builder.out_of_order:
            result.problems.append(f"{ROWS}: key {key} follows {prev} (not in key order)")
        if found.head != sealed.head:
            index_ok = reading.meta(INDEX) == manifest.files.get(INDEX)
            if index_ok:
                try:
                    sealed_index = RowIndex.from_bytes(reading.index())
                except (OSError, ValueError, zlib.error) as exc:
                    result.problems.append(f"{INDEX}: cannot be read: {exc}")
                else:
                    result.problems.extend(
                        f"{ROWS}: {p}"
                        for p in name_row_differences(spec.key, sealed_index, builder.index())
                    )
            else:
                result.problems.append(
                    f"{ROWS}: the rows differ from the seal; {INDEX} was changed too, "
                    "so the rows cannot be named"
                )
        return found, builder.index()


# -- backups of the embedded store -----------------------------------------------------------

WHOLE_TABLE = "all"


def whole_table(table: str) -> Partition:
    """Every row of a table, as one partition (what a backup seals)."""
    return Partition(table, WHOLE_TABLE, EPOCH, datetime(9999, 1, 1, tzinfo=UTC))


class EmbeddedFile(Protocol):
    """The embedded store as a file: copied online, read, checked."""

    def copy_to(self, dest: Path) -> float:
        """An online, consistent copy of the live file at ``dest``; seconds taken."""
        ...

    def source(self, path: Path) -> PartitionSource: ...

    def problems(self, path: Path) -> list[str]:
        """The file's integrity and the ledger's consistency in it."""
        ...

    def write_files(self, directory: Path, files: dict[str, bytes]) -> None:
        """Write small files (an envelope) into ``directory``, durably."""
        ...


def file_meta(path: Path) -> FileMeta:
    sha = hashlib.sha256()
    size = 0
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
            size += len(chunk)
    return FileMeta(sha.hexdigest(), size)


class BackupService:
    """``tally backup``: a copy of the live SQLite file, sealed and signed; checked offline
    and restored only after the checks pass."""

    def __init__(self, archives: ArchiveService, store: EmbeddedFile, clock: Clock) -> None:
        self._archives = archives
        self._store = store
        self._clock = clock

    def _seals(self, path: Path) -> dict[str, Seal]:
        source = self._store.source(path)
        return {
            spec.name: self._archives.seal(source, spec, whole_table(spec.name))
            for spec in (TRANSFERS, EVENT_LOG)
        }

    def backup(self, directory: Path, *, method: str = "api", actor: str = "system") -> Backup:
        directory.mkdir(parents=True, exist_ok=False, mode=0o750)
        db = directory / BACKUP_FILE
        try:
            seconds = self._store.copy_to(db)
            problems = self._store.problems(db)
            if problems:
                raise RuntimeError("the copy fails its checks: " + "; ".join(problems))
            seals = self._seals(db)
            manifest = backup_manifest(
                file=file_meta(db),
                seals=seals,
                method=method,
                seconds=seconds,
                created_at=self._clock.now(),
                created_by=actor,
            )
            self._store.write_files(directory, self._archives.signed(manifest))
        except BaseException:
            shutil.rmtree(directory, ignore_errors=True)
            raise
        return Backup(directory, seals, seconds, manifest)

    def verify(self, reading: ArchiveReading, public_pem: bytes | None = None) -> Verification:
        result, manifest = self._archives.open_signed(reading, public_pem, BACKUP_FORMAT)
        if manifest is None:
            return result
        db = reading.path(BACKUP_FILE)
        listed = FileMeta(**manifest["file"])
        found = reading.meta(BACKUP_FILE)
        if found is None:
            result.problems.append(f"{BACKUP_FILE}: listed in the manifest but missing")
            return result
        if found != listed:
            result.problems.append(f"{BACKUP_FILE}: SHA-256 differs from the manifest (changed)")
        for name in sorted(reading.names() - {BACKUP_FILE, *ENVELOPE}):
            result.problems.append(f"{name}: not listed in the manifest (added)")
        self._check_copy(db, manifest, result)
        return result

    def restore(
        self, reading: ArchiveReading, dest: Path, public_pem: bytes | None = None
    ) -> Verification:
        """Verify the backup, copy its file to ``dest`` (a new file), check the copy."""
        result = self.verify(reading, public_pem)
        if not result.ok:
            return result
        if dest.exists():
            raise FileExistsError(f"{dest} exists: a restore writes a new file")
        tmp = dest.with_name(dest.name + ".restoring")
        shutil.copyfile(reading.path(BACKUP_FILE), tmp)
        manifest = json.loads(reading.read(MANIFEST) or b"{}")
        check = Verification(partition=str(dest))
        if file_meta(tmp) != FileMeta(**manifest["file"]):
            check.problems.append(f"{dest}: the restored file differs from the backup's")
        self._check_copy(tmp, manifest, check)
        if check.ok:
            tmp.replace(dest)
        else:
            tmp.unlink()
        return check

    def _check_copy(self, db: Path, manifest: dict[str, Any], result: Verification) -> None:
        try:
            result.problems.extend(self._store.problems(db))
            seals = self._seals(db)
        except Exception as exc:  # noqa: BLE001 - any failure to read the copy is a finding
            result.problems.append(f"{BACKUP_FILE}: cannot be read as a Tally store: {exc}")
            return
        for name, sealed in manifest["seals"].items():
            found = seals.get(name)
            if found is None:
                result.problems.append(f"{name}: sealed but not in the file")
                continue
            result.problems.extend(
                f"{name}: {p}" for p in Seal.from_dict(sealed).differences(found)
            )
        result.found = seals.get(TRANSFERS.name)
        result.seal = Seal.from_dict(manifest["seals"][TRANSFERS.name])


@dataclass(frozen=True, slots=True)
class Backup:
    directory: Path
    seals: dict[str, Seal]
    seconds: float
    manifest: bytes


def backup_manifest(
    *,
    file: FileMeta,
    seals: dict[str, Seal],
    method: str,
    seconds: float,
    created_at: datetime,
    created_by: str,
) -> bytes:
    manifest = {
        "format": BACKUP_FORMAT,
        "store": "sqlite",
        "method": {"api": "sqlite3 online backup API", "vacuum": "VACUUM INTO"}[method],
        "seconds": round(seconds, 3),
        "file": {"sha256": file.sha256, "bytes": file.bytes},
        "encoding": "seals over the tables' rows in the archives' canonical encoding",
        "seals": {n: s.to_dict() for n, s in sorted(seals.items())},
        "created_at": created_at.isoformat().replace("+00:00", "Z"),
        "created_by": created_by,
    }
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


# -- retention ------------------------------------------------------------------------------


class RetentionStore(Protocol):
    """The live store's side of retention."""

    def tables(self) -> tuple[TableSpec, ...]:
        """The tables retention moves out of this store."""
        ...

    def prepare(self, spec: TableSpec, partition: Partition) -> None:
        """Make the partition still before it is archived (PostgreSQL: detach it)."""
        ...

    def periods_before(self, spec: TableSpec, before: datetime, grain: str) -> list[Partition]:
        """Closed periods of a table (ending at or before ``before``) that hold rows."""
        ...

    def refusal(self, spec: TableSpec, partition: Partition) -> str | None:
        """Why a partition must stay for now (pending transfers, unsettled events)."""
        ...

    def drop(
        self, spec: TableSpec, partition: Partition, seal: Seal, location: str, manifest: str
    ) -> int:
        """Delete the partition's rows if they are still exactly the sealed ones."""
        ...


class ArchiveShelf(Protocol):
    """Where retention puts archives: one location per partition."""

    def location(self, partition: Partition) -> str: ...

    def sink(self, partition: Partition) -> ArchiveSink: ...

    def reading(self, partition: Partition) -> ArchiveReading | None:
        """The archive already there, if any."""
        ...


@dataclass(frozen=True, slots=True)
class Retained:
    partition: str
    outcome: str  # "dropped", "kept", "failed"
    rows: int
    detail: str = ""


ALERT_ARCHIVE_FAILED = "lifecycle.archive_failed"


class RetentionService:
    """Moves closed periods older than the horizon out of the live store: archive,
    verify the archive as written (read back from where it lies), and only then drop the
    rows, in one transaction that first checks they are still the sealed ones."""

    def __init__(
        self,
        archives: ArchiveService,
        source: PartitionSource,
        store: RetentionStore,
        shelf: ArchiveShelf,
        alerts: AlertSink,
        clock: Clock,
    ) -> None:
        self._archives = archives
        self._source = source
        self._store = store
        self._shelf = shelf
        self._alerts = alerts
        self._clock = clock

    def run(
        self, horizon: timedelta, *, grain: str = "month", actor: str = "system"
    ) -> list[Retained]:
        if horizon < timedelta(days=1):
            raise ValueError("the retention horizon is at least one day")
        before = self._clock.now() - horizon
        out: list[Retained] = []
        for spec in self._store.tables():
            for partition in self._store.periods_before(spec, before, grain):
                out.append(self._one(spec, partition, actor))
        return out

    def _one(self, spec: TableSpec, partition: Partition, actor: str) -> Retained:
        why = self._store.refusal(spec, partition)
        if why is not None:
            return Retained(partition.name, "kept", 0, why)
        self._store.prepare(spec, partition)
        reading = self._shelf.reading(partition)
        if reading is None:
            self._archives.archive(
                self._source, spec, partition, self._shelf.sink(partition), actor=actor
            )
            reading = self._shelf.reading(partition)
        assert reading is not None
        check = self._archives.verify(reading)
        if not check.ok or check.seal is None:
            self._alerts.signal(
                AlertSignal(
                    kind=ALERT_ARCHIVE_FAILED,
                    key=partition.name,
                    severity=Severity.CRITICAL,
                    cause=f"the archive of {partition.name} does not verify; its rows stay "
                    "in the live store until it does",
                    at=self._clock.now(),
                    evidence={"problems": "; ".join(check.problems[:5])},
                    refs=(f"partition:{partition.name}",),
                )
            )
            return Retained(partition.name, "failed", 0, "; ".join(check.problems[:5]))
        manifest = reading.read(MANIFEST) or b""
        n = self._store.drop(
            spec,
            partition,
            check.seal,
            self._shelf.location(partition),
            hashlib.sha256(manifest).hexdigest(),
        )
        self._alerts.clear(ALERT_ARCHIVE_FAILED, partition.name, self._clock.now())
        return Retained(partition.name, "dropped", n)


# -- partitions made ahead (PostgreSQL) ------------------------------------------------------


class PartitionMaintainer(Protocol):
    def ensure(self, parent: str, regions: Sequence[str], periods: Sequence[Period]) -> list[str]:
        """Create the partitions still missing; the names of those made."""
        ...

    def missing(self, parent: str, regions: Sequence[str], periods: Sequence[Period]) -> list[str]:
        """The partitions of ``periods`` that do not exist."""
        ...


ALERT_PARTITION_MISSING = "lifecycle.partition_missing"


@dataclass(frozen=True, slots=True)
class Maintained:
    made: list[str]
    missing: list[str]


class MaintenanceService:
    """`tally maintain` (and the worker, on a schedule): makes each partitioned table's
    partitions for the current period and ``ahead`` more, in every region, and alerts
    for any that is still missing, since a row for it would be refused."""

    def __init__(
        self,
        partitions: PartitionMaintainer,
        alerts: AlertSink,
        clock: Clock,
        *,
        tables: Sequence[str],
        regions: Sequence[str],
        grain: str = "month",
        ahead: int = 2,
    ) -> None:
        if ahead < 1:
            raise ValueError("partitions are made at least one period ahead")
        self._p = partitions
        self._alerts = alerts
        self._clock = clock
        self._tables = tuple(tables)
        self._regions = tuple(regions)
        self._grain = grain
        self._ahead = ahead

    def periods(self) -> list[Period]:
        p = Period.containing(self._clock.now(), self._grain)
        out = [p]
        for _ in range(self._ahead):
            p = p.next()
            out.append(p)
        return out

    def run(self, *, create: bool = True) -> Maintained:
        periods = self.periods()
        made: list[str] = []
        missing: list[str] = []
        for table in self._tables:
            if create:
                made += self._p.ensure(table, self._regions, periods)
            missing += self._p.missing(table, self._regions, periods)
        now = self._clock.now()
        for name in missing:
            self._alerts.signal(
                AlertSignal(
                    kind=ALERT_PARTITION_MISSING,
                    key=name,
                    severity=Severity.CRITICAL,
                    cause=f"partition {name} does not exist: rows for it will be refused "
                    "until `tally maintain` makes it",
                    at=now,
                    refs=(f"partition:{name}",),
                )
            )
        for table in self._tables:
            for name in set(self._expected(table, periods)) - set(missing):
                self._alerts.clear(ALERT_PARTITION_MISSING, name, now)
        return Maintained(made, missing)

    def _expected(self, table: str, periods: Sequence[Period]) -> list[str]:
        return [
            f"{table}_r_{r}_p_{p.name.replace('-', '')}" for r in self._regions for p in periods
        ]
