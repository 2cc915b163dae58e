"""The walked solution tree and the findings the competition rules report on it (competition spec §2.4)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

REJECT, REVIEW = "reject", "review"
SKIPPED_DIRS = frozenset({"__pycache__", ".competition-sdk", ".pytest_cache", ".ruff_cache"})
PREFLIGHT, SDK = "miner/common_preflight.py", "miner/competition_sdk.py"


@dataclass(frozen=True)
class Finding:
    """One rule's objection: the subnet's code, the file (relative to the root) and line when known, and why."""

    code: str
    path: str
    message: str
    line: int | None = None
    severity: str = REJECT

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        tag = "" if self.severity == REJECT else " (review)"
        return f"{self.code}{tag} {where}: {self.message}"


@dataclass
class Repository:
    """The walked tree: regular files by relative path, plus what the walk itself found (links, nested repos)."""

    root: Path
    files: dict[str, Path] = field(default_factory=dict)
    symlinks: dict[str, Path] = field(default_factory=dict)
    nested_git: list[str] = field(default_factory=list)

    def read(self, relative: str) -> bytes:
        return self.files[relative].read_bytes()


def walk(root: Path) -> Repository:
    """Every file but the root `.git` and the cache directories; symlinks are listed apart and never read."""
    repo = Repository(root=root.resolve())
    for directory, dirnames, filenames in os.walk(repo.root):
        here = Path(directory)
        for name in sorted(dirnames):
            relative = (here / name).relative_to(repo.root).as_posix()
            if (here / name).is_symlink():
                repo.symlinks[relative] = here / name
                dirnames.remove(name)
            elif name in SKIPPED_DIRS or relative == ".git":
                dirnames.remove(name)
            elif name == ".git":
                repo.nested_git.append(relative)
                dirnames.remove(name)
        for name in sorted(filenames):
            path = here / name
            relative = path.relative_to(repo.root).as_posix()
            if path.is_symlink():
                repo.symlinks[relative] = path
            elif name == ".git" and relative != ".git":
                repo.nested_git.append(relative)
            elif path.is_file():
                repo.files[relative] = path
    return repo


def line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1

