"""Temp-file sweep: remove old files under the work directories, then the oldest beyond a byte quota.

A file counts as in use, and is never touched, when either
  * it was modified less than `grace_seconds` ago (a writer is still filling it), or
  * some process holds it open: on Linux every /proc/<pid>/fd link is resolved to (device, inode).
    Processes whose fds we may not read (another user, without root) are not seen, so the grace
    period is the guard that always applies.
Only regular files are removed (symlinks are never followed); emptied subdirectories older than the
grace period are removed too, the configured roots never.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepReport:
    files_removed: int = 0
    bytes_freed: int = 0

    def __add__(self, other: SweepReport) -> SweepReport:
        return SweepReport(self.files_removed + other.files_removed, self.bytes_freed + other.bytes_freed)


@dataclass(frozen=True)
class _TempFile:
    path: Path
    size: int
    mtime: float
    identity: tuple[int, int]


def open_file_identities(proc: Path = Path("/proc")) -> set[tuple[int, int]]:
    """(st_dev, st_ino) of every file some readable process holds open."""
    held: set[tuple[int, int]] = set()
    try:
        pids = [entry for entry in os.scandir(proc) if entry.name.isdigit()]
    except OSError:
        return held
    for pid in pids:
        try:
            fds = list(os.scandir(os.path.join(pid.path, "fd")))
        except OSError:
            continue
        for fd in fds:
            try:
                info = os.stat(fd.path)
            except OSError:
                continue
            held.add((info.st_dev, info.st_ino))
    return held


def _walk(root: Path) -> tuple[list[_TempFile], list[Path]]:
    files: list[_TempFile] = []
    subdirs: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        subdirs.extend(Path(dirpath, name) for name in dirnames)
        for name in filenames:
            path = Path(dirpath, name)
            try:
                info = path.lstat()
            except OSError:
                continue
            if path.is_symlink() or not path.is_file():
                continue
            files.append(_TempFile(path, info.st_size, info.st_mtime, (info.st_dev, info.st_ino)))
    return files, subdirs


def _remove(candidate: _TempFile) -> bool:
    try:
        candidate.path.unlink()
    except FileNotFoundError:
        return False
    except OSError as exc:
        log.warning("temp file not removed", extra={"path": str(candidate.path), "error": str(exc)})
        return False
    return True


def sweep_temp(roots: list[Path], *, ttl_seconds: float, quota_bytes: int, grace_seconds: float,
               now: float | None = None) -> SweepReport:
    """One pass over `roots`: TTL first, then the byte quota (0 = none) over what is left."""
    now = time.time() if now is None else now
    existing = [root for root in roots if root.is_dir()]
    if not existing:
        return SweepReport()
    held = open_file_identities()
    files: list[_TempFile] = []
    subdirs: list[Path] = []
    for root in existing:
        found, dirs = _walk(root)
        files.extend(found)
        subdirs.extend(dirs)
    removable = [f for f in files if now - f.mtime >= grace_seconds and f.identity not in held]
    removed = SweepReport()
    kept: list[_TempFile] = []
    for candidate in removable:
        if now - candidate.mtime >= ttl_seconds and _remove(candidate):
            removed += SweepReport(1, candidate.size)
        else:
            kept.append(candidate)
    if quota_bytes:
        total = sum(f.size for f in files) - removed.bytes_freed
        for candidate in sorted(kept, key=lambda f: f.mtime):
            if total <= quota_bytes:
                break
            if _remove(candidate):
                removed += SweepReport(1, candidate.size)
                total -= candidate.size
    for directory in sorted(subdirs, key=lambda d: len(d.parts), reverse=True):
        try:
            if now - directory.stat().st_mtime >= grace_seconds:
                directory.rmdir()
        except OSError:
            continue
    if removed.files_removed:
        log.info("temp sweep", extra={"files_removed": removed.files_removed, "bytes_freed": removed.bytes_freed})
    return removed
