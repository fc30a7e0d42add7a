"""Export bundles on disk: one directory, one file per entry."""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from pathlib import Path

# A bundle directory holds a handful of files; anything beyond this is not a bundle.
BUNDLE_MAX_FILES = 64


def write_bundle(directory: Path, files: Mapping[str, bytes]) -> None:
    directory.mkdir(parents=True, exist_ok=False, mode=0o750)
    for name, data in files.items():
        assert "/" not in name and not name.startswith("."), name
        fd = os.open(directory / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o640)
        with os.fdopen(fd, "wb") as out:
            out.write(data)


def read_bundle(directory: Path) -> dict[str, bytes]:
    """A bundle from a directory, or from a .zip archive as the API hands it out.

    Every member at any depth is read, named by its path inside the bundle ("sub/x.csv"),
    so that one the manifest does not list fails verification by name: a member skipped
    here would be a forged file nobody checked.
    """
    if directory.is_file():
        with zipfile.ZipFile(directory) as archive:
            names = archive.namelist()
            if len(names) > BUNDLE_MAX_FILES:
                raise ValueError(f"{directory} holds more than {BUNDLE_MAX_FILES} files")
            if len(set(names)) != len(names):
                twice = sorted({n for n in names if names.count(n) > 1})
                raise ValueError(f"{directory} holds {', '.join(twice)} more than once")
            return {n: archive.read(n) for n in names}
    entries = sorted(p for p in directory.rglob("*") if not p.is_dir())
    if len(entries) > BUNDLE_MAX_FILES:
        raise ValueError(f"{directory} holds more than {BUNDLE_MAX_FILES} files")
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in entries}
