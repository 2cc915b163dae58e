"""`vidaio-mesh competition export`: the SDK digest gate, the solution layout, and what gets vendored.

The SDK files here are fabricated (see support.py); tests that need an export to go through accept their
digests through the `accept_fabricated_sdk` monkeypatch fixture. The app is a stand-in written to tmp."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.vidaio_cli.competition.support import FABRICATED_SDK, run_cli, standin_spec
from vidaio_cli import competition_rules
from vidaio_cli.competition_export import ExportRefused, export_solution
from vidaio_cli.competition_vendor import REPO_ROOT, VendorError, plan_vendoring


def test_export_refuses_sdk_files_whose_digest_the_spec_does_not_list(tmp_path, subnet_checkout, standin_sources):
    out = tmp_path / "solution"
    result = run_cli("competition", "export", "--subnet-repo", str(subnet_checkout), "--out", str(out),
                     "--source-root", str(standin_sources), "--source-root", str(REPO_ROOT))
    assert result.exit_code == 2
    assert "SDK_TOOL_MODIFIED miner/common_preflight.py" in result.output
    assert "is not a canonical digest" in result.output
    assert not out.exists()


def test_export_refuses_a_canonical_file_changed_by_one_byte(tmp_path, subnet_checkout, accept_fabricated_sdk,
                                                             standin_sources):
    sdk = subnet_checkout / competition_rules.SDK
    sdk.write_bytes(sdk.read_bytes() + b"\n")
    with pytest.raises(ExportRefused, match="SDK_TOOL_MODIFIED miner/competition_sdk.py"):
        export_solution(subnet_checkout, tmp_path / "solution", spec=standin_spec(standin_sources))


def test_export_refuses_a_folder_that_is_not_a_subnet_checkout(tmp_path, standin_sources):
    with pytest.raises(ExportRefused, match="not found"):
        export_solution(tmp_path, tmp_path / "solution", spec=standin_spec(standin_sources))


def test_the_export_has_the_solution_layout(exported, subnet_checkout):
    for relative in (*competition_rules.REQUIRED_FILES, "requirements.txt", *competition_rules.BUILD_INPUTS):
        assert (exported / relative).is_file(), relative
    assert json.loads((exported / "competition_solution.json").read_text()) == {
        "competition_type": "COMPRESSION", "entrypoint": "miner/modal_workers.py", "local_path_io": True,
        "preflight": "miner/common_preflight.py", "routes": ["/health", "/compress"], "schema_version": 2,
        "sdk": "miner/competition_sdk.py", "sandbox_resources": {"gpu": "L4", "cpus": 8}}
    for relative, content in FABRICATED_SDK.items():
        assert (exported / relative).read_bytes() == content == (subnet_checkout / relative).read_bytes()
    service = exported / "miner/compression"
    assert (service / "mesh/ffmpeg.py").read_bytes() == (REPO_ROOT / "mesh/ffmpeg.py").read_bytes()
    shim = ast.parse((service / "app.py").read_text())
    assert any(isinstance(node, ast.ImportFrom) and node.module == "competition_app.app" for node in shim.body)


def test_the_image_recipe_installs_ffprobe_and_pinned_requirements(exported):
    service = exported / "miner/compression"
    dockerfile = (service / "Dockerfile").read_text()
    assert "apt-get install -y --no-install-recommends ffmpeg" in dockerfile  # ffprobe for the SDK's preflight
    assert "pip install --no-cache-dir -r /app/requirements.txt" in dockerfile
    assert "COPY . /app" in dockerfile and "ENTRYPOINT" not in dockerfile and "/references" not in dockerfile
    requirements = (service / "requirements.txt").read_text().splitlines()
    assert requirements and all("==" in line for line in requirements)
    names = {line.split("==")[0].lower() for line in requirements}
    assert {"uvicorn", "imageio-ffmpeg"} <= names and not names & {"grpcio", "protobuf", "vidaio-mesh"}
    assert (exported / "requirements.txt").read_text() == (service / "requirements.txt").read_text()
    lint = subprocess.run([Path(sys.executable).parent / "hadolint", service / "Dockerfile"], capture_output=True,
                          text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr


def test_the_export_carries_no_stubs_binaries_or_long_lines(exported):
    files = [path for path in exported.rglob("*") if path.is_file()]
    assert not [path for path in files if "_pb2" in path.name or path.suffix in (".so", ".pyc", ".whl")]
    for path in files:
        text = path.read_bytes().decode("utf-8")  # no binaries: every file is text
        assert max(len(line.encode()) for line in text.splitlines() or [""]) <= 1000, path
        assert "grpc" not in text or path.name in ("common_preflight.py", "competition_sdk.py"), path


def test_the_exported_tree_passes_the_static_check(exported):
    result = run_cli("competition", "check", str(exported), "--static-only")
    assert result.exit_code == 0, result.output
    assert result.output.strip().endswith("ACCEPTED (static rules only)")


def test_the_cli_export_goes_through_and_reports_accepted(tmp_path, subnet_checkout, accept_fabricated_sdk,
                                                          standin_sources):
    out = tmp_path / "solution"
    (out / ".git").mkdir(parents=True)  # a fresh clone of the solution repository
    args = ["competition", "export", "--subnet-repo", str(subnet_checkout), "--out", str(out), "--gpu", "L40S",
            "--source-root", str(standin_sources), "--source-root", str(REPO_ROOT)]
    result = run_cli(*args)
    assert result.exit_code == 0, result.output
    assert "ACCEPTED (static rules only)" in result.output
    assert json.loads((out / "competition_solution.json").read_text())["sandbox_resources"] == {"gpu": "L40S"}
    again = run_cli(*args)
    assert again.exit_code == 2 and "not empty" in again.output
    (out / "stale.txt").write_text("from an older export")
    assert run_cli(*args, "--replace").exit_code == 0
    assert (out / ".git").is_dir() and not (out / "stale.txt").exists()
    not_an_export = tmp_path / "documents"
    not_an_export.mkdir()
    (not_an_export / "keep.txt").write_text("someone's file")
    refused = run_cli(*args[:5], str(not_an_export), *args[6:], "--replace")
    assert refused.exit_code == 2 and "clears earlier exports only" in refused.output
    assert (not_an_export / "keep.txt").is_file()


def test_sdk_extras_are_copied_byte_for_byte_and_only_when_asked(tmp_path, subnet_checkout, accept_fabricated_sdk,
                                                                  standin_sources):
    with pytest.raises(ExportRefused, match="scripts/competition_modal_build.py"):
        export_solution(subnet_checkout, tmp_path / "refused", spec=standin_spec(standin_sources),
                        with_sdk_extras=True)
    extras = {"scripts/competition_modal_build.py": b'"""Fabricated Modal build script."""\n',
              "competitions/fixtures/compression_warmup_input.mp4": bytes(range(256)),
              "competitions/fixtures/README.md": b"fabricated fixture notes\n"}
    for relative, content in extras.items():
        (subnet_checkout / relative).parent.mkdir(parents=True, exist_ok=True)
        (subnet_checkout / relative).write_bytes(content)
    plain = export_solution(subnet_checkout, tmp_path / "plain", spec=standin_spec(standin_sources))
    assert not (plain.out / "scripts").exists() and not (plain.out / "competitions").exists()
    full = export_solution(subnet_checkout, tmp_path / "full", spec=standin_spec(standin_sources),
                           with_sdk_extras=True)
    assert {relative: (full.out / relative).read_bytes() for relative in extras} == extras
    assert full.findings == []


@pytest.mark.parametrize(("gpu", "cpus"), [("H100", None), (None, 0), (None, 33)])
def test_export_refuses_sandbox_resources_the_competition_does_not_allow(tmp_path, subnet_checkout,
                                                                         accept_fabricated_sdk, standin_sources,
                                                                         gpu, cpus):
    with pytest.raises(ExportRefused, match="--gpu|--cpus"):
        export_solution(subnet_checkout, tmp_path / "solution", gpu=gpu, cpus=cpus,
                        spec=standin_spec(standin_sources))


def test_the_policy_is_set_in_the_image_and_an_unknown_one_is_refused(tmp_path, subnet_checkout,
                                                                      accept_fabricated_sdk, standin_sources):
    spec = standin_spec(standin_sources)
    with pytest.raises(ExportRefused, match="--policy"):
        export_solution(subnet_checkout, tmp_path / "refused", spec=spec, policy="fastest")
    assert not (tmp_path / "refused").exists(), "refused before the first byte"
    export_solution(subnet_checkout, tmp_path / "lean", spec=spec, policy="lean")
    assert "ENV COMPETITION_POLICY=lean" in (tmp_path / "lean/miner/compression/Dockerfile").read_text()


def test_the_default_export_runs_the_verified_search(exported):
    assert "ENV COMPETITION_POLICY=search" in (exported / "miner/compression/Dockerfile").read_text()


def _standin_importing(root, source: str):
    (root / "competition_app" / "app.py").write_text(source)
    return standin_spec(root)


def test_the_compressor_core_vendors_without_its_grpc_edge(standin_sources):
    spec = _standin_importing(standin_sources, "from compressor_svc.compressor import compress\n"
                                               "from mesh.media import probe\n")
    plan = plan_vendoring(spec)
    assert {"compressor_svc/compressor.py", "compressor_svc/search.py", "compressor_svc/__init__.py",
            "compressor_svc/data/proxy_bias.json", "mesh/media.py", "mesh/vmaf.py"} <= set(plan.files)
    edge = {"compressor_svc/servicer.py", "compressor_svc/server.py", "compressor_svc/service.py", "mesh/rpc.py",
            "mesh/telemetry.py", "mesh/embedded.py", "mesh/sources.py"}
    assert not edge & set(plan.files)
    assert not [relative for relative in plan.files if relative.startswith("mesh/v1")]
    names = {line.split("==")[0].lower() for line in plan.requirements}
    assert {"scenedetect", "av", "numpy", "imageio-ffmpeg", "uvicorn"} <= names


def test_data_beside_vendored_modules_travels_with_them(standin_sources):
    presets = standin_sources / "competition_app" / "presets"
    (presets / "tables").mkdir(parents=True)
    (presets / "__init__.py").write_text("")
    (presets / "tables" / "crf.json").write_text("{}")
    (standin_sources / "competition_app" / "__pycache__").mkdir()
    (standin_sources / "competition_app" / "__pycache__" / "app.cpython-311.pyc").write_bytes(b"\0")
    files = set(plan_vendoring(standin_spec(standin_sources)).files)
    assert {"competition_app/presets/__init__.py", "competition_app/presets/tables/crf.json"} <= files
    assert not [relative for relative in files if "__pycache__" in relative or relative.startswith("mesh/v1")]


@pytest.mark.parametrize(("source", "message"), [
    ("import mesh.rpc\n", "imports grpc"),
    ("from mesh.v1 import common_pb2\n", "imports mesh.v1"),
    ("from janitor_svc.config import JanitorSettings\n", "imports janitor_svc.config: neither vendored"),
    ("import not_a_module_anywhere\n", "neither vendored"),
    ("from mesh.no_such_module import thing\n", "not a module of the vendored packages"),
    ("def broken(:\n", "does not parse"),
])
def test_vendoring_refuses_what_the_image_cannot_import(standin_sources, source, message):
    with pytest.raises(VendorError, match=message):
        plan_vendoring(_standin_importing(standin_sources, source))


def test_the_command_group_is_listed_and_loads_lazily():
    assert "competition" in run_cli("--help").output
    listing = run_cli("competition", "--help").output
    assert "export" in listing and "check" in listing
    loaded = subprocess.run([sys.executable, "-c", "import sys, vidaio_cli.main; print(sorted(sys.modules))"],
                            capture_output=True, text=True, check=True).stdout
    assert "vidaio_cli.competition'" in loaded
    assert not [name for name in ("competition_export", "competition_vendor", "competition_rules",
                                  "competition_preflight", "packaging") if f"'{name}'" in loaded or
                f"'vidaio_cli.{name}'" in loaded]
