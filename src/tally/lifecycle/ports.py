"""What the lifecycle reads from and writes to: partitions, archive files, scratch stores."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from tally.lifecycle.archive import FileMeta, Partition
from tally.lifecycle.seal import TableSpec

Row = Sequence[Any]


class PartitionSource(Protocol):
    """A store's rows of one partition, in canonical form (``seal``): values in the
    spec's column order, instants as integer microseconds, ascending key."""

    @property
    def kind(self) -> str:
        """ "sqlite" or "postgres": where the rows came from, for the manifest."""
        ...

    def batches(self, spec: TableSpec, partition: Partition, size: int) -> Iterator[list[Row]]: ...


class ArchiveSink(Protocol):
    """One archive being written."""

    def write_rows(self, lines: Sequence[bytes]) -> None:
        """Append canonical lines (without newlines) to the rows file."""
        ...

    def finish_rows(self, index: bytes) -> dict[str, FileMeta]:
        """Close the rows file, write the index; every data file's SHA-256 and size."""
        ...

    def envelope(self, manifest: bytes, signature: bytes, public_pem: bytes) -> None: ...

    def abort(self) -> None:
        """Remove what was written: a half-made archive must not look like one."""
        ...


class ArchiveReading(Protocol):
    """One archive being read (from a directory, offline)."""

    def read(self, name: str) -> bytes | None:
        """A small file's bytes (the envelope), or None when it is missing."""
        ...

    def names(self) -> set[str]: ...

    def path(self, name: str) -> Path:
        """Where a (large) file of the set is, to be opened by a store."""
        ...

    def meta(self, name: str) -> FileMeta | None:
        """A file's SHA-256 and size as found on disk, or None when it is missing."""
        ...

    def row_lines(self, size: int) -> Iterator[list[bytes]]:
        """The rows file's lines (without newlines), ``size`` at a time."""
        ...

    def index(self) -> bytes: ...


class RestoreTarget(Protocol):
    """A scratch store an archive is loaded into and read back from."""

    def create(self, spec: TableSpec) -> None: ...

    def insert(self, spec: TableSpec, rows: Sequence[Row]) -> None: ...

    def batches(self, spec: TableSpec, size: int) -> Iterator[list[Row]]:
        """Every row back, in canonical form and key order."""
        ...

    def close(self) -> None: ...
