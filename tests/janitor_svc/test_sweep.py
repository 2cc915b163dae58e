"""The temp-file sweep on a real directory tree: TTL, byte quota, and files in use left alone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from janitor_svc.sweep import open_file_identities, sweep_temp

NOW = time.time()


def _file(path: Path, size: int, age_seconds: float) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"v" * size)
    stamp = NOW - age_seconds
    os.utime(path, (stamp, stamp))
    return path


def test_files_older_than_the_ttl_go_and_younger_ones_stay(tmp_path):
    old = _file(tmp_path / "job1" / "frames.bin", 300, age_seconds=7200)
    young = _file(tmp_path / "job2" / "frames.bin", 200, age_seconds=600)
    report = sweep_temp([tmp_path], ttl_seconds=3600, quota_bytes=0, grace_seconds=60, now=NOW)
    assert (report.files_removed, report.bytes_freed) == (1, 300)
    assert not old.exists() and young.exists()
    assert tmp_path.is_dir()


def test_the_oldest_files_go_until_the_quota_holds(tmp_path):
    files = [_file(tmp_path / f"f{age}.bin", 100, age_seconds=age) for age in (500, 400, 300, 200)]
    report = sweep_temp([tmp_path], ttl_seconds=3600, quota_bytes=250, grace_seconds=60, now=NOW)
    assert (report.files_removed, report.bytes_freed) == (2, 200)
    assert [f.exists() for f in files] == [False, False, True, True]


def test_files_in_use_are_never_touched(tmp_path):
    held = _file(tmp_path / "held.bin", 100, age_seconds=7200)
    writing = _file(tmp_path / "writing.bin", 100, age_seconds=5)
    stale = _file(tmp_path / "stale.bin", 100, age_seconds=7200)
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; f = open(sys.argv[1], 'rb'); "
                               "print('open', flush=True); time.sleep(60)", str(held)],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "open"
        assert (held.stat().st_dev, held.stat().st_ino) in open_file_identities()
        report = sweep_temp([tmp_path], ttl_seconds=60, quota_bytes=1, grace_seconds=60, now=NOW)
    finally:
        holder.kill()
        holder.wait()
    assert report.files_removed == 1
    assert held.exists() and writing.exists() and not stale.exists()


def test_symlinks_are_not_followed_and_empty_old_dirs_are_pruned(tmp_path):
    outside = _file(tmp_path / "outside" / "precious.mp4", 100, age_seconds=7200)
    root = tmp_path / "work"
    (root / "job").mkdir(parents=True)
    (root / "link.mp4").symlink_to(outside)
    (root / "linkdir").symlink_to(outside.parent, target_is_directory=True)
    empty = root / "job" / "empty"
    empty.mkdir()
    os.utime(empty, (NOW - 7200, NOW - 7200))
    report = sweep_temp([root], ttl_seconds=60, quota_bytes=1, grace_seconds=60, now=NOW)
    assert report.files_removed == 0
    assert outside.exists() and (root / "link.mp4").is_symlink()
    assert not empty.exists() and root.is_dir()


def test_missing_directories_are_ignored(tmp_path):
    report = sweep_temp([tmp_path / "not-there"], ttl_seconds=1, quota_bytes=0, grace_seconds=0, now=NOW)
    assert report.files_removed == 0
