"""The subnet's static validation of a competition solution repository (competition spec §2.4), one function per
rule, with the subnet's codes, so `vidaio-mesh competition check` rejects locally what the validator would reject.

Written from the spec's description of `RepositoryStaticValidator.validate` (validation.py:257-717 at fea3779);
where a rule names a line, the finding carries it. Only the SDK preflight's `.env` rule is added on top. This module
holds the layout, descriptor and SDK-digest rules; competition_scans holds the content scans."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from vidaio_cli import competition_scans as scans
from vidaio_cli.competition_tree import PREFLIGHT, REJECT, SDK, Finding, Repository, walk

__all__ = ["PREFLIGHT", "SDK", "Finding", "validate", "verdict"]

ACCEPTED, REVIEW_REQUIRED, REJECTED = "ACCEPTED", "REVIEW_REQUIRED", "REJECTED"
MAX_FILE_BYTES = 50_000_000
MAX_REPOSITORY_BYTES = 2_000_000_000

DESCRIPTOR = "competition_solution.json"
REQUIRED_FILES = (DESCRIPTOR, "miner/modal_workers.py", "miner/compression/app.py", PREFLIGHT, SDK)
ROOT_LOCKFILES = ("requirements.txt", "uv.lock", "poetry.lock")
BUILD_INPUTS = ("miner/compression/Dockerfile", "miner/compression/requirements.txt")
# Spec §2.3 quotes only HEAD's blob of each file; the validator accepts older ones the spec does not list, which
# this project therefore refuses (an operator with an older checkout updates it rather than guessing).
ACCEPTED_SDK_DIGESTS: dict[str, frozenset[str]] = {
    PREFLIGHT: frozenset({"24aa66310bc226d81f6ef2505a878e363ff1da7fb59818aa472c6f8fe3e1eb4f"}),
    SDK: frozenset({"1e82059a3c5a556c4243a227c630e4c6779025347aef6de413389c92f42f87b7"}),
}
ALLOWED_GPUS = ("L4", "L40S", "RTX-PRO-6000")  # config.py:22; every manifest so far lists all three
MAX_CPU_CORES = 32


def check_submodules(repo: Repository) -> list[Finding]:
    if (repo.root / ".gitmodules").exists():
        return [Finding("SUBMODULE_NOT_ALLOWED", ".gitmodules", "submodules are not cloned by the validator")]
    return []


def check_symlinks(repo: Repository) -> list[Finding]:
    findings = []
    for relative, path in repo.symlinks.items():
        target = path.resolve()
        if not target.exists():
            findings.append(Finding("BROKEN_SYMLINK", relative, "the link does not resolve"))
        elif not target.is_relative_to(repo.root):
            findings.append(Finding("PATH_ESCAPE", relative, "the link resolves outside the repository"))
    return findings


def check_nested_repositories(repo: Repository) -> list[Finding]:
    return [Finding("NESTED_REPOSITORY", relative, "a .git below the root") for relative in repo.nested_git]


def check_file_sizes(repo: Repository) -> list[Finding]:
    return [Finding("FILE_TOO_LARGE", relative, f"{path.stat().st_size:,} bytes (limit {MAX_FILE_BYTES:,})")
            for relative, path in repo.files.items() if path.stat().st_size > MAX_FILE_BYTES]


def check_repository_size(repo: Repository) -> list[Finding]:
    total = sum(path.stat().st_size for path in repo.files.values())
    if total > MAX_REPOSITORY_BYTES:
        return [Finding("REPOSITORY_TOO_LARGE", ".", f"{total:,} bytes (limit {MAX_REPOSITORY_BYTES:,})")]
    return []


def check_required_files(repo: Repository) -> list[Finding]:
    findings = [Finding("REQUIRED_FILE_MISSING", relative, "required by the solution layout")
                for relative in REQUIRED_FILES if relative not in repo.files]
    if not any(name in repo.files for name in ROOT_LOCKFILES):
        findings.append(Finding("REQUIRED_FILE_MISSING", "requirements.txt",
                                f"one of {', '.join(ROOT_LOCKFILES)} is required at the root"))
    # Not a static-validation code: the image build fails with BUILD_INPUT_INVALID without these (build.py:238-248).
    findings += [Finding("BUILD_INPUT_INVALID", relative, "the image builder needs it")
                 for relative in BUILD_INPUTS if relative not in repo.files]
    return findings


def _descriptor_problem(descriptor: object) -> tuple[str, str] | None:
    """The first failing rule of spec §2.2, in the validator's order."""
    if not isinstance(descriptor, dict):
        return "INVALID_SOLUTION_DESCRIPTOR", "not a JSON object"
    if descriptor.get("competition_type") != "COMPRESSION" or type(descriptor.get("schema_version")) is not int \
            or descriptor.get("schema_version") != 2:
        return "INVALID_SOLUTION_DESCRIPTOR", "competition_type must be COMPRESSION and schema_version the integer 2"
    routes = descriptor.get("routes")
    if not isinstance(routes, list) or "/health" not in routes or "/compress" not in routes:
        return "REQUIRED_ROUTE_MISSING", "routes must list /health and /compress"
    expected = (("local_path_io", True), ("entrypoint", "miner/modal_workers.py"), ("preflight", PREFLIGHT),
                ("sdk", SDK))
    for key, value in expected:
        if descriptor.get(key) != value or type(descriptor.get(key)) is not type(value):
            return "INVALID_SOLUTION_DESCRIPTOR", f"{key} must be {json.dumps(value)}"
    if "sandbox_resources" in descriptor:
        return _sandbox_problem(descriptor["sandbox_resources"])
    return None


def _sandbox_problem(resources: object) -> tuple[str, str] | None:
    code = "INVALID_SOLUTION_DESCRIPTOR"
    if not isinstance(resources, dict) or not resources or set(resources) - {"gpu", "cpus"}:
        return code, "sandbox_resources must be a non-empty object with keys gpu and/or cpus"
    if "gpu" in resources and resources["gpu"] not in ALLOWED_GPUS:
        return code, f"sandbox_resources.gpu must be one of {', '.join(ALLOWED_GPUS)}"
    cpus = resources.get("cpus", 1)
    if type(cpus) is not int or not 1 <= cpus <= MAX_CPU_CORES:
        return code, f"sandbox_resources.cpus must be an integer from 1 to {MAX_CPU_CORES}"
    return None


def check_solution_descriptor(repo: Repository) -> list[Finding]:
    if DESCRIPTOR not in repo.files:
        return []  # reported by check_required_files
    try:
        descriptor = json.loads(repo.read(DESCRIPTOR).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return [Finding("INVALID_SOLUTION_DESCRIPTOR", DESCRIPTOR, f"not UTF-8 JSON: {exc}")]
    problem = _descriptor_problem(descriptor)
    return [Finding(problem[0], DESCRIPTOR, problem[1])] if problem else []


def sdk_digest_problem(relative: str, data: bytes) -> str | None:
    digest = hashlib.sha256(data).hexdigest()
    if digest in ACCEPTED_SDK_DIGESTS[relative]:
        return None
    return f"sha256 {digest} is not a canonical digest; copy the file unmodified from the subnet's checkout"


def check_sdk_digests(repo: Repository) -> list[Finding]:
    findings = []
    for relative in ACCEPTED_SDK_DIGESTS:
        problem = sdk_digest_problem(relative, repo.read(relative)) if relative in repo.files else None
        if problem:
            findings.append(Finding("SDK_TOOL_MODIFIED", relative, problem))
    return findings


RULES: tuple[Callable[[Repository], list[Finding]], ...] = (
    check_submodules, check_symlinks, check_nested_repositories, check_file_sizes, check_repository_size,
    check_required_files, check_solution_descriptor, check_sdk_digests, scans.check_lfs_pointers,
    scans.check_committed_secrets, scans.check_python_parses, scans.check_encrypted_archives,
    scans.check_obfuscation_markers, scans.check_dynamic_execution, scans.check_remote_downloads,
    scans.check_long_lines, scans.check_python_obfuscation, scans.check_env_files,
)


def validate(root: Path) -> list[Finding]:
    """Every finding of every rule over the tree at `root`."""
    repo = walk(root)
    return [finding for rule in RULES for finding in rule(repo)]


def verdict(findings: list[Finding]) -> str:
    if any(finding.severity == REJECT for finding in findings):
        return REJECTED
    return REVIEW_REQUIRED if findings else ACCEPTED

