"""Offline validation of what CI cannot run: the compose file, the Dockerfiles and the PM2 file."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import compose
import pytest

from tests.conftest import REPO_ROOT

DEPLOY = REPO_ROOT / "deploy"
BIN = Path(sys.executable).parent
MESH_SERVICES = ("janitor", "upscaler", "compressor", "gateway")


@pytest.fixture(scope="module")
def compose_config() -> dict:
    """The compose file as the real Compose v2 binary resolves it."""
    binary = Path(compose.__file__).parent / "docker-compose"
    quiet = subprocess.run([binary, "-f", DEPLOY / "compose.yml", "config", "-q"], capture_output=True, text=True)
    assert quiet.returncode == 0, quiet.stderr
    resolved = subprocess.run([binary, "-f", DEPLOY / "compose.yml", "config", "--format", "json"],
                              capture_output=True, text=True, check=True)
    return json.loads(resolved.stdout)


def test_compose_matches_the_compose_spec_schema() -> None:
    result = subprocess.run([BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec",
                             DEPLOY / "compose.yml"], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_runs_the_infrastructure_and_every_service(compose_config: dict) -> None:
    services = compose_config["services"]
    assert {"minio", "minio-init", "redis", "jaeger", *MESH_SERVICES} <= set(services)
    assert "--appendonly" in services["redis"]["command"], "Redis must persist schedules and jobs (AOF)"
    assert any(port["target"] == 16686 for port in services["jaeger"]["ports"])
    gpu = services["upscaler"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["driver"] == "nvidia" and "gpu" in gpu["capabilities"]
    assert any(volume["target"].endswith(":ro") or volume.get("read_only")
               for volume in services["gateway"]["volumes"]), "wallets must be mounted read-only"


@pytest.mark.parametrize("name", MESH_SERVICES)
def test_each_mesh_service_has_a_grpc_health_check_and_healthy_dependencies(compose_config: dict, name: str) -> None:
    service = compose_config["services"][name]
    assert service["healthcheck"]["test"][:4] == ["CMD", "python", "-m", "mesh.healthcheck"]
    assert service["restart"] == "unless-stopped"
    conditions = {dep["condition"] for dep in service["depends_on"].values()}
    assert "service_healthy" in conditions
    assert service["environment"]["OTEL_EXPORTER_OTLP_ENDPOINT"].startswith("http://jaeger:4317")
    assert service["environment"]["OTEL_SERVICE_NAME"] == name


@pytest.mark.parametrize("dockerfile", sorted((DEPLOY / "docker").glob("*.Dockerfile")), ids=lambda p: p.name)
def test_dockerfile_passes_hadolint_and_runs_as_non_root(dockerfile: Path) -> None:
    result = subprocess.run([BIN / "hadolint", dockerfile], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    text = dockerfile.read_text()
    assert text.count("FROM ") >= 2, "multi-stage build"
    assert "USER 10001" in text


def test_pm2_ecosystem_sends_sigterm_to_every_service() -> None:
    node = shutil.which("node")
    assert node, "node is part of this machine image (PM2 runs on it)"
    script = f"const c=require({json.dumps(str(DEPLOY / 'ecosystem.config.js'))});console.log(JSON.stringify(c.apps))"
    apps = json.loads(subprocess.run([node, "-e", script], capture_output=True, text=True, check=True).stdout)
    assert {app["name"] for app in apps} == set(MESH_SERVICES)
    assert all(app["kill_signal"] == "SIGTERM" and app["autorestart"] for app in apps)


def test_only_the_gateway_gets_the_competition_pat(tmp_path: Path) -> None:
    """deploy/gateway-secrets.env (docs/deploy.md, "Entering the compression competition") reaches the gateway's
    environment and no other service's."""
    shutil.copy(DEPLOY / "compose.yml", tmp_path / "compose.yml")
    (tmp_path / "gateway-secrets.env").write_text("MINER_COMPETITION_GITHUB_PAT=github_pat_test\n")
    binary = Path(compose.__file__).parent / "docker-compose"
    resolved = subprocess.run([binary, "-f", tmp_path / "compose.yml", "config", "--format", "json"],
                              capture_output=True, text=True, check=True)
    services = json.loads(resolved.stdout)["services"]
    holders = {name for name, service in services.items()
               if "MINER_COMPETITION_GITHUB_PAT" in (service.get("environment") or {})}
    assert holders == {"gateway"}
    assert services["gateway"]["environment"]["MINER_COMPETITION_GITHUB_PAT"] == "github_pat_test"
