"""`vidaio-mesh up` as a real process (checked with grpcurl), and `vidaio-mesh health` against a real janitor."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import typer
from typer.testing import CliRunner

from mesh.embedded import free_port
from mesh.healthcheck import NotServing, check, wait_serving
from vidaio_cli import infra

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _descendants(pid: int) -> set[int]:
    """Every live process below `pid`, read from /proc."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _grpcurl(*args: str) -> str:
    result = subprocess.run([str(BIN / "grpcurl"), "-plaintext", *args], capture_output=True, text=True, timeout=20)
    assert result.returncode == 0, result.stderr
    return result.stdout


def _wait_serving(up: subprocess.Popen, address: str, within: float) -> None:
    try:
        wait_serving(address, timeout=within, alive=lambda: up.poll() is None, poll_seconds=0.2)
    except NotServing as exc:
        raise AssertionError(f"{exc} under `vidaio-mesh up`:\n{up.stdout.read() if up.poll() is not None else ''}") \
            from None


def test_up_serves_restarts_and_ctrl_c_leaves_nothing_behind(tmp_path):
    port = free_port()
    env = {**os.environ, "TMPDIR": str(tmp_path), "COLUMNS": "200", "OTEL_SDK_DISABLED": "true"}
    up = subprocess.Popen([str(BIN / "vidaio-mesh"), "up", "--janitor-port", str(port)], env=env, cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    address = f"127.0.0.1:{port}"
    try:
        _wait_serving(up, address, within=60)
        assert '"status": "SERVING"' in _grpcurl(address, "grpc.health.v1.Health/Check")
        assert "mesh.v1.Janitor" in _grpcurl(address, "list").split()
        janitors = [pid for pid in _descendants(up.pid)
                    if b"janitor_svc" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(janitors) == 1
        os.kill(janitors[0], signal.SIGKILL)
        _wait_serving(up, address, within=60)  # a restart under a loaded CI machine can take 20 s
        children = _descendants(up.pid)
        assert janitors[0] not in children
        assert len(children) >= 3, "expected Valkey, SeaweedFS and the janitor under `up`"
        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=30) == 0
    finally:
        if up.poll() is None:
            up.kill()
            up.wait()
    output = up.stdout.read()
    assert "janitor" in output and "SERVING" in output
    assert "janitor restarted" in output
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in children if _alive(pid)], "children outlived `vidaio-mesh up`"
    assert check(address, timeout=1) == "UNREACHABLE"
    assert not list(tmp_path.glob("vidaio-mesh-*")), "the temp data directory was left behind"


def test_health_prints_each_service_and_fails_unless_all_serve(janitor_address, monkeypatch):
    monkeypatch.setenv("JANITOR_ADDR", janitor_address)
    monkeypatch.setenv("UPSCALER_ADDR", f"127.0.0.1:{free_port()}")
    monkeypatch.setenv("COMPRESSOR_ADDR", janitor_address)
    app = typer.Typer()
    infra.register(app)
    result = CliRunner().invoke(app, ["health", "--timeout", "2"], terminal_width=200)
    assert result.exit_code == 1
    rows = {line.split("│")[1].strip(): line for line in result.stdout.splitlines() if line.count("│") >= 3}
    assert "SERVING" in rows["janitor"] and "NOT_SERVING" not in rows["janitor"]
    assert "UNREACHABLE" in rows["upscaler"]
    assert "UNKNOWN_SERVICE" in rows["compressor"], "the janitor's port must not pass as the compressor"
