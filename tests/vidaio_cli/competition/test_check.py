"""`vidaio-mesh competition check`: each static rule of spec §2.4 on a tree that otherwise passes, a deliberately
broken export, and the full check (static rules plus the stand-in service under uvicorn on the warm-up clip).

Every tree starts as a real export of the stand-in app (fabricated SDK files accepted by monkeypatch, see
support.py), so a finding can only come from the change the test makes."""

from __future__ import annotations

import json
import re
import zipfile

import pytest

from tests.vidaio_cli.competition.support import run_cli
from vidaio_cli import competition_rules
from vidaio_cli.competition_rules import ACCEPTED, REJECTED, REVIEW_REQUIRED, validate, verdict
from vidaio_cli.competition_vendor import REPO_ROOT

SERVICE = "miner/compression"


def _codes(findings) -> set[str]:
    return {finding.code for finding in findings}


def test_a_broken_export_is_rejected_with_each_code_file_and_line(exported):
    app = exported / SERVICE / "competition_app/app.py"
    lines = app.read_text().splitlines()
    lines.insert(2, "TABLE = " + repr("x" * 1200))
    app.write_text("\n".join(lines) + "\n")
    ffmpeg = exported / SERVICE / "mesh/ffmpeg.py"
    ffmpeg.write_text(ffmpeg.read_text() + "\n\ndef run(code):\n    exec(code)\n")
    exec_line = len(ffmpeg.read_text().splitlines())
    result = run_cli("competition", "check", str(exported), "--static-only")
    assert result.exit_code == 1
    assert re.search(rf"^OBFUSCATION_REVIEW {SERVICE}/competition_app/app.py:3: a line of 1,2\d\d bytes",
                     result.output, re.MULTILINE), result.output
    assert f"DYNAMIC_EXECUTION {SERVICE}/mesh/ffmpeg.py:{exec_line}: 'exec('" in result.output
    assert result.output.strip().endswith("REJECTED (static rules only)")


def test_the_full_check_runs_the_exported_service_and_accepts_it(exported):
    result = run_cli("competition", "check", str(exported), "--health-timeout", "60", "--compress-timeout", "120")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "ACCEPTED (static rules and the warm-up run)"


def test_the_full_check_reports_a_write_outside_the_assigned_output(exported, monkeypatch):
    monkeypatch.setenv("STANDIN_STRAY_WRITE", "1")  # the stand-in then writes /output/stray.txt too
    result = run_cli("competition", "check", str(exported), "--health-timeout", "60", "--compress-timeout", "120")
    assert result.exit_code == 1
    assert f"UNEXPECTED_OUTPUT_WRITE {SERVICE}/app.py: stray.txt written under /output" in result.output


def test_the_full_check_imports_only_the_vendored_tree(exported):
    """A vendored module that goes missing fails the run even though this checkout (and its editable install)
    still has it: the image would have nothing else to import from."""
    (exported / SERVICE / "mesh/lanes.py").unlink()
    assert verdict(validate(exported)) == ACCEPTED  # no static rule sees it
    result = run_cli("competition", "check", str(exported), "--health-timeout", "60")
    assert result.exit_code == 1
    assert f"SERVICE_EXITED {SERVICE}/app.py: uvicorn exited" in result.output
    assert "cannot import name 'lanes'" in result.output


def _descriptor(exported, **changes):
    path = exported / "competition_solution.json"
    document = json.loads(path.read_text())
    document.update(changes)
    path.write_text(json.dumps(document))


@pytest.mark.parametrize(("changes", "code"), [
    ({"schema_version": "2"}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"competition_type": "UPSCALING"}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"routes": ["/health"]}, "REQUIRED_ROUTE_MISSING"),
    ({"local_path_io": 1}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"entrypoint": "miner/compression/app.py"}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"sandbox_resources": {"gpu": "H100"}}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"sandbox_resources": {"cpus": True}}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"sandbox_resources": {"cpus": 33}}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"sandbox_resources": {}}, "INVALID_SOLUTION_DESCRIPTOR"),
    ({"sandbox_resources": {"gpu": "L4", "memory": 64}}, "INVALID_SOLUTION_DESCRIPTOR"),
])
def test_descriptor_rules(exported, changes, code):
    _descriptor(exported, **changes)
    findings = validate(exported)
    assert [(f.code, f.path) for f in findings] == [(code, "competition_solution.json")]


def test_an_extra_descriptor_key_is_accepted(exported):
    _descriptor(exported, note="extra keys are not rejected")
    assert validate(exported) == []


def test_layout_rules(exported):
    (exported / "miner/modal_workers.py").unlink()
    (exported / "requirements.txt").unlink()
    (exported / SERVICE / "Dockerfile").unlink()
    (exported / "competition_solution.json").write_bytes(b"\xff not json")
    found = {(f.code, f.path) for f in validate(exported)}
    assert found == {("REQUIRED_FILE_MISSING", "miner/modal_workers.py"),
                     ("REQUIRED_FILE_MISSING", "requirements.txt"),
                     ("BUILD_INPUT_INVALID", f"{SERVICE}/Dockerfile"),
                     ("INVALID_SOLUTION_DESCRIPTOR", "competition_solution.json")}


def test_an_sdk_file_that_is_not_canonical_is_rejected(exported):
    sdk = exported / competition_rules.SDK
    sdk.write_bytes(sdk.read_bytes().replace(b"Fabricated", b"Edited"))
    assert [(f.code, f.path) for f in validate(exported)] == [("SDK_TOOL_MODIFIED", competition_rules.SDK)]


def test_tree_rules(exported, tmp_path):
    (exported / ".gitmodules").write_text("")
    (exported / "vendor/.git").mkdir(parents=True)
    (exported / "escape.txt").symlink_to(tmp_path / "subnet-outside.txt")
    (tmp_path / "subnet-outside.txt").write_text("outside")
    (exported / "dangling").symlink_to(exported / "nowhere")
    (exported / "inside").symlink_to(exported / "README.md")
    (exported / ".git").mkdir()  # the root .git is skipped
    (exported / ".git" / "x.so").write_bytes(b"\0")
    found = {(f.code, f.path) for f in validate(exported)}
    assert found == {("SUBMODULE_NOT_ALLOWED", ".gitmodules"), ("NESTED_REPOSITORY", "vendor/.git"),
                     ("PATH_ESCAPE", "escape.txt"), ("BROKEN_SYMLINK", "dangling")}


def test_size_rules(exported, monkeypatch):
    monkeypatch.setattr(competition_rules, "MAX_FILE_BYTES", 1000)  # the real limits are 50 MB and 2 GB
    monkeypatch.setattr(competition_rules, "MAX_REPOSITORY_BYTES", 5000)
    (exported / "big.bin").write_bytes(b"\1" * 1001)
    found = {(f.code, f.path) for f in validate(exported)}
    assert ("FILE_TOO_LARGE", "big.bin") in found and ("REPOSITORY_TOO_LARGE", ".") in found


def test_content_rules_report_file_and_line_and_never_the_secret(exported):
    token = "ghp_" + "Q7" * 15
    (exported / "notes.md").write_text(f"first line\nkey = {token}\n")
    (exported / "model.bin").write_text("version https://git-lfs.github.com/spec/v1\noid sha256:00\n")
    (exported / "broken.py").write_text("ok = 1\ndef (:\n")
    (exported / "tool.so").write_bytes(b"\x7fELF")
    (exported / "packed.py").write_text("import base64\nBLOB = base64.b64decode(" + repr("A" * 200) + ")\n")
    (exported / "dense.py").write_text("a = 1; " * 13 + "\n")
    (exported / "train.py").write_text('"""Loads weights."""\n\nmodel = None\nmodel.eval()\n')
    (exported / "nul.sh").write_bytes(b"echo one\necho \0two\n")
    (exported / "Dockerfile.extra").write_text("FROM scratch\n# built with Nuitka\n")
    with zipfile.ZipFile(exported / "secret.zip", "w") as archive:
        archive.writestr("payload.txt", b"ciphertext")
    data = bytearray((exported / "secret.zip").read_bytes())
    data[data.index(b"PK\x01\x02") + 8] |= 0x1  # the central directory's "encrypted" flag (zipfile cannot encrypt)
    (exported / "secret.zip").write_bytes(bytes(data))
    (exported / ".env").write_text("X=1\n")
    (exported / ".env.template").write_text("X=\n")
    findings = validate(exported)
    found = {(f.code, f.path, f.line) for f in findings}
    assert {("COMMITTED_SECRET", "notes.md", 2), ("GIT_LFS_POINTER", "model.bin", 1),
            ("INVALID_PYTHON", "broken.py", 2), ("OBFUSCATION_REVIEW", "tool.so", None),
            ("OBFUSCATION_REVIEW", "packed.py", 2), ("OBFUSCATION_REVIEW", "dense.py", 1),
            ("DYNAMIC_EXECUTION", "train.py", 4), ("OBFUSCATION_REVIEW", "nul.sh", 2),
            ("OBFUSCATION_REVIEW", "Dockerfile.extra", 2), ("ENCRYPTED_ARCHIVE", "secret.zip", None),
            ("ENV_FILE_NOT_ALLOWED", ".env", None)} == found
    assert token not in "\n".join(map(str, findings))
    assert verdict(findings) == REJECTED


def test_remote_downloads_need_review_but_a_plain_run_wget_does_not(exported):
    dockerfile = exported / SERVICE / "Dockerfile"
    dockerfile.write_text(dockerfile.read_text() + "RUN wget https://example.org/a.tar\n")
    assert validate(exported) == []
    dockerfile.write_text(dockerfile.read_text() + "RUN true && curl https://example.org/b.tar\n")
    (exported / SERVICE / "fetch.py").write_text("import httpx\n\nhttpx.get\n")
    findings = validate(exported)
    assert {(f.code, f.path, f.line) for f in findings} == {
        ("REMOTE_DOWNLOAD_REVIEW", f"{SERVICE}/Dockerfile", len(dockerfile.read_text().splitlines())),
        ("REMOTE_DOWNLOAD_REVIEW", f"{SERVICE}/fetch.py", 3)}
    assert verdict(findings) == REVIEW_REQUIRED
    result = run_cli("competition", "check", str(exported), "--static-only")
    assert result.exit_code == 1 and "REVIEW_REQUIRED" in result.output


@pytest.mark.skipif(not (REPO_ROOT / "competition_app" / "app.py").is_file(),
                    reason="the project's competition_app is not in this checkout yet (it arrives with its own branch)")
def test_the_project_route_service_exports_and_passes_the_full_check(tmp_path, subnet_checkout, accept_fabricated_sdk):
    """The real app with the default package list: vendored, statically accepted, and serving the warm-up clip."""
    out = tmp_path / "entry"
    result = run_cli("competition", "export", "--subnet-repo", str(subnet_checkout), "--out", str(out))
    assert result.exit_code == 0, result.output
    assert (out / SERVICE / "compressor_svc/compressor.py").is_file()
    checked = run_cli("competition", "check", str(out), "--health-timeout", "120", "--compress-timeout", "600")
    assert checked.exit_code == 0, checked.output
    assert checked.output.strip() == "ACCEPTED (static rules and the warm-up run)"
