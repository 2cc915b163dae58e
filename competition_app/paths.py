"""Local-path rules (spec §3.3; the reference app's `_validate_local_paths`). An input must resolve, after
symlinks, to a file under the input root. An output must be an absolute `.mp4` path under the output root
with no `..`, reached through real directories only (no symlink on the way), and must not exist yet:
nothing is ever overwritten. URLs, NUL bytes and relative paths are refused outright."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath


class PathRefused(ValueError):
    """A path this service will not read or write; the item's result is null."""


def _plain_absolute(raw: str, what: str) -> PurePosixPath:
    if "\x00" in raw or "://" in raw:
        raise PathRefused(f"{what}: a local absolute path, not a URL")
    path = PurePosixPath(raw)
    if not path.is_absolute():
        raise PathRefused(f"{what}: not an absolute path")
    if ".." in path.parts:
        raise PathRefused(f"{what}: '..' is not allowed")
    return path


def _under(path: PurePosixPath, root: Path, what: str) -> PurePosixPath:
    """`path` relative to `root` (as configured, or as resolved), lexically."""
    for base in (PurePosixPath(root), PurePosixPath(root.resolve())):
        try:
            return path.relative_to(base)
        except ValueError:
            continue
    raise PathRefused(f"{what}: outside {root}")


def resolve_input(raw: str, root: Path) -> Path:
    """The real path of an input file under `root`."""
    relative = _under(_plain_absolute(raw, "input"), root, "input")
    real_root = root.resolve()
    try:
        real = (real_root / relative).resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        raise PathRefused("input: no such file") from exc
    if not real.is_relative_to(real_root):
        raise PathRefused("input: resolves outside the input root")
    if not real.is_file():
        raise PathRefused("input: not a regular file")
    return real


def resolve_output(raw: str, root: Path) -> Path:
    """Where an output will be written: a new `.mp4` file under `root`, its parents real directories."""
    path = _plain_absolute(raw, "output")
    if path.suffix.lower() != ".mp4":
        raise PathRefused("output: must end in .mp4")
    relative = _under(path, root, "output")
    if not relative.parts:
        raise PathRefused("output: is the output root itself")
    current = root.resolve()
    for part in relative.parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise PathRefused("output: passes through a symlink")
        if not current.is_dir():
            raise PathRefused("output: its directory does not exist")
    final = current / relative.name
    if os.path.lexists(final):
        raise PathRefused("output: already exists (never overwritten)")
    return final


def duplicates(outputs: list[Path | None]) -> set[Path]:
    """Output paths that more than one item names: all of those items are refused."""
    seen: set[Path] = set()
    repeated: set[Path] = set()
    for output in outputs:
        if output is not None:
            (repeated if output in seen else seen).add(output)
    return repeated
