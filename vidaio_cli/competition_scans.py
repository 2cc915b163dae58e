"""The subnet's content scans of a solution repository (competition spec §2.4): one function per rule, each
reporting the file and, where the rule looks at text, the line.

"Executable scope" is every source or opaque file and every Dockerfile, except the two canonical SDK files."""

from __future__ import annotations

import ast
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

from vidaio_cli.competition_tree import PREFLIGHT, REVIEW, SDK, Finding, Repository, line_of

MAX_LINE_BYTES = 1000
MAX_STATEMENTS_PER_LINE = 12
MIN_ENCODED_CONSTANT = 128
SOURCE_SUFFIXES = frozenset({".bash", ".cjs", ".js", ".jsx", ".mjs", ".ps1", ".py", ".pyw", ".sh", ".ts", ".tsx",
                             ".zsh"})
OPAQUE_SUFFIXES = frozenset({".class", ".dll", ".dylib", ".enc", ".exe", ".jar", ".jsc", ".obf", ".packed", ".pyd",
                             ".pye", ".pyc", ".pyo", ".pyz", ".so", ".wasm"})
PYTHON_SUFFIXES = frozenset({".py", ".pyw"})
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1"
SECRET = re.compile(rb"github_pat_[A-Za-z0-9_]{20,}|ghp_[A-Za-z0-9]{20,}|AKIA[0-9A-Z]{16}"
                    rb"|-----BEGIN (?:RSA |EC |OPENSSH )?PRIVATE KEY-----")
OBFUSCATOR = re.compile(rb"__pyarmor__|pyarmor_runtime|pytransform|cython_runtime|nuitka", re.IGNORECASE)
DYNAMIC = re.compile(rb"\b(?:eval|exec)\s*\(")
REMOTE_DOWNLOAD = re.compile(rb"(?:requests|httpx)\.(?:get|post)|urllib\.request"
                             rb"|(?:^|[;&|])\s*(?:curl|wget)\s+https?://", re.MULTILINE | re.IGNORECASE)
DECODERS = frozenset({"a2b_base64", "b16decode", "b32decode", "b64decode", "b85decode", "loads", "decode",
                      "decodebytes", "decompress", "fromhex", "unhexlify"})
QUALIFIED_DECODERS = {"loads": ("cloudpickle", "marshal", "pickle"), "decode": ("codecs",)}


def in_executable_scope(relative: str) -> bool:
    name = relative.rsplit("/", 1)[-1]
    suffix = Path(name).suffix.lower()
    return relative not in (PREFLIGHT, SDK) and (
        suffix in SOURCE_SUFFIXES or suffix in OPAQUE_SUFFIXES or name.lower().startswith("dockerfile"))


def _executable_sources(repo: Repository) -> Iterator[tuple[str, bytes]]:
    for relative in repo.files:
        if in_executable_scope(relative):
            yield relative, repo.read(relative)


def check_lfs_pointers(repo: Repository) -> list[Finding]:
    findings = []
    for relative, path in repo.files.items():
        with path.open("rb") as handle:
            if handle.read(len(LFS_POINTER)) == LFS_POINTER:
                findings.append(Finding("GIT_LFS_POINTER", relative, "a Git LFS pointer, not the file", 1))
    return findings


def check_committed_secrets(repo: Repository) -> list[Finding]:
    """Names the line only: the matched text is a credential and is never printed."""
    findings = []
    for relative in repo.files:
        data = repo.read(relative)
        findings += [Finding("COMMITTED_SECRET", relative, "a token or private key", line_of(data, match.start()))
                     for match in SECRET.finditer(data)]
    return findings


def check_python_parses(repo: Repository) -> list[Finding]:
    findings = []
    for relative in repo.files:
        if Path(relative).suffix.lower() in PYTHON_SUFFIXES:
            try:
                ast.parse(repo.read(relative), filename=relative)
            except (SyntaxError, ValueError) as exc:
                findings.append(Finding("INVALID_PYTHON", relative, str(exc), getattr(exc, "lineno", None)))
    return findings


def check_encrypted_archives(repo: Repository) -> list[Finding]:
    findings = []
    for relative, path in repo.files.items():
        if Path(relative).suffix.lower() in (".zip", ".jar"):
            try:
                with zipfile.ZipFile(path) as archive:
                    encrypted = any(info.flag_bits & 0x1 for info in archive.infolist())
            except zipfile.BadZipFile:
                continue
            if encrypted:
                findings.append(Finding("ENCRYPTED_ARCHIVE", relative, "an archive with encrypted entries"))
    return findings


def check_obfuscation_markers(repo: Repository) -> list[Finding]:
    findings = []
    for relative, data in _executable_sources(repo):
        if Path(relative).suffix.lower() in OPAQUE_SUFFIXES:
            findings.append(Finding("OBFUSCATION_REVIEW", relative, "a compiled or opaque file"))
        findings += [Finding("OBFUSCATION_REVIEW", relative, f"mentions {match.group().decode()}",
                             line_of(data, match.start())) for match in OBFUSCATOR.finditer(data)]
    return findings


def check_dynamic_execution(repo: Repository) -> list[Finding]:
    return [Finding("DYNAMIC_EXECUTION", relative, f"{match.group().decode()!r} (comments and strings count too)",
                    line_of(data, match.start()))
            for relative, data in _executable_sources(repo) for match in DYNAMIC.finditer(data)]


def check_remote_downloads(repo: Repository) -> list[Finding]:
    return [Finding("REMOTE_DOWNLOAD_REVIEW", relative, f"{match.group().decode().strip()!r}",
                    line_of(data, match.start()), REVIEW)
            for relative, data in _executable_sources(repo) for match in REMOTE_DOWNLOAD.finditer(data)]


def check_long_lines(repo: Repository) -> list[Finding]:
    findings = []
    for relative, data in _executable_sources(repo):
        if Path(relative).suffix.lower() not in SOURCE_SUFFIXES:
            continue
        if b"\0" in data:
            findings.append(Finding("OBFUSCATION_REVIEW", relative, "a NUL byte", line_of(data, data.index(b"\0"))))
        findings += [Finding("OBFUSCATION_REVIEW", relative, f"a line of {len(line):,} bytes (limit {MAX_LINE_BYTES})",
                             number) for number, line in enumerate(data.split(b"\n"), 1)
                     if len(line.rstrip(b"\r")) > MAX_LINE_BYTES]
    return findings


def _decoder_name(call: ast.Call) -> str | None:
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    if name not in DECODERS:
        return None
    owners = QUALIFIED_DECODERS.get(name)
    if owners is not None:
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name) else None
        return name if owner in owners else None
    return name


def check_python_obfuscation(repo: Repository) -> list[Finding]:
    findings = []
    for relative, data in _executable_sources(repo):
        if Path(relative).suffix.lower() not in PYTHON_SUFFIXES:
            continue
        try:
            tree = ast.parse(data)
        except (SyntaxError, ValueError):
            continue  # INVALID_PYTHON
        per_line: dict[int, int] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.stmt):
                per_line[node.lineno] = per_line.get(node.lineno, 0) + 1
            elif isinstance(node, ast.Call) and node.args and (name := _decoder_name(node)):
                first = node.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str | bytes) \
                        and len(first.value) >= MIN_ENCODED_CONSTANT:
                    findings.append(Finding("OBFUSCATION_REVIEW", relative, f"{name}() of a long constant",
                                            node.lineno))
        findings += [Finding("OBFUSCATION_REVIEW", relative, f"{count} statements on one line", line)
                     for line, count in sorted(per_line.items()) if count > MAX_STATEMENTS_PER_LINE]
    return findings


def check_env_files(repo: Repository) -> list[Finding]:
    """The SDK preflight's rule (common_preflight.py:282-285), not the validator's: the SDK refuses to export."""
    names = {relative: relative.rsplit("/", 1)[-1] for relative in repo.files}
    return [Finding("ENV_FILE_NOT_ALLOWED", relative, "environment files must not be committed")
            for relative, name in names.items()
            if name != ".env.template" and (name == ".env" or name.startswith(".env."))]

