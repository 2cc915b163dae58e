"""The run half of `vidaio-mesh competition check`: the exported service under uvicorn on loopback, called the way
the SDK's warm-up calls it (competition spec §3.4), with the warm-up's output checks.

It runs with this machine's Python and packages, not the image: it shows that the vendored tree imports and
serves on its own (the service folder is the working directory and PYTHONPATH is cleared, so a module that was
not vendored fails to import) and that the route contract holds; the image build is the subnet's to check.
Codes are the subnet's where it has one (spec §3.3, §3.4, §5.1); HEALTH_CHECK_FAILED and SERVICE_EXITED are this
check's own."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from vidaio_cli.competition_rules import Finding

SERVICE = "miner/compression/app.py"
WARMUP_NAME = "compression_warmup_input.mp4"
WARMUP_OUTPUT = "sdk-preflight/compression-warmup-input.mp4"
# `python3 -m uvicorn app:app`, minus editable-install finders: setuptools' finder would otherwise serve a module
# missing from the vendored `mesh/` from this checkout, and the check would pass a tree the image cannot import.
LAUNCHER = ("import sys; sys.meta_path[:] = [finder for finder in sys.meta_path "
            "if not str(getattr(finder, '__module__', '')).startswith('__editable__')]; "
            "import uvicorn; uvicorn.main()")


def make_warmup_clip(path: Path) -> Path:
    """The fixture's twin: 5 s of testsrc2 at 320x180, 24 fps, silent H.264."""
    from mesh.ffmpeg import run_ffmpeg_sync

    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=24:duration=5",
                     "-c:v", "libx264", "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(path)], timeout=120)
    return path


def warmup_request(input_path: Path, output_path: Path) -> dict:
    """A batch of one, as the SDK sends it: no codec_mode and no target_bitrate keys, so CRF is the default."""
    return {"competition_id": "sdk-preflight", "hotkey": "sdk-local-miner",
            "batch_id": f"batch-{secrets.token_hex(12)}",
            "items": [{"evaluation_id": "compression-warmup-input", "input_path": str(input_path),
                       "output_path": str(output_path), "codec": "AV1", "vmaf_threshold": 90.0}]}


@contextlib.contextmanager
def _service(service_dir: Path, port: int, env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-c", LAUNCHER, "app:app", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=service_dir, env=env, stdout=sink, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            yield proc
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-1500:].strip() if log.exists() else ""


def _wait_healthy(client: httpx.Client, proc: subprocess.Popen, log: Path, timeout: float) -> list[Finding]:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return [Finding("SERVICE_EXITED", SERVICE, f"uvicorn exited with {proc.returncode}: {_tail(log)}")]
        try:
            answer = client.get("/health", timeout=5)
            body = answer.json() if answer.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            last = type(exc).__name__
            time.sleep(0.5)
            continue
        if isinstance(body, dict) and body.get("status") == "ok":
            local_io = body.get("competition_local_io")
            if isinstance(local_io, dict) and local_io.get("remote_io_disabled") is True:
                return []
            return [Finding("HEALTH_CHECK_FAILED", SERVICE,
                            'the SDK also needs "competition_local_io": {"remote_io_disabled": true}')]
        last = f"HTTP {answer.status_code} {answer.text[:200]!r}"
        time.sleep(0.5)
    return [Finding("HEALTH_CHECK_FAILED", SERVICE, f"/health not ok within {timeout:.0f} s ({last})")]


def _response_findings(answer: httpx.Response, expected: Path) -> list[Finding]:
    if answer.status_code != 200:
        return [Finding("SANDBOX_EXEC_FAILED", SERVICE, f"HTTP {answer.status_code}: every item would fail")]
    try:
        body = answer.json()
    except ValueError:
        return [Finding("BATCH_EXECUTION_FAILED", SERVICE, "the response is not JSON")]
    if not isinstance(body, dict) or set(body) != {"results"} or not isinstance(body["results"], list):
        return [Finding("BATCH_EXECUTION_FAILED", SERVICE, f'the response must be exactly {{"results": [...]}}, '
                                                           f"got {str(body)[:200]}")]
    results = body["results"]
    if len(results) != 1:
        return [Finding("COMPRESSION_RESPONSE_ITEMS_MISMATCH", SERVICE, f"{len(results)} results for 1 item")]
    if not isinstance(results[0], dict) or set(results[0]) != {"output_path"}:
        return [Finding("BATCH_EXECUTION_FAILED", SERVICE, f"each result must be exactly {{'output_path': ...}}, "
                                                           f"got {str(results[0])[:200]}")]
    if not results[0]["output_path"]:
        return [Finding("CONTENDER_OUTPUT_MISSING", SERVICE, "output_path is null: the item failed")]
    if results[0]["output_path"] != str(expected):
        return [Finding("OUTPUT_PATH_MISMATCH", SERVICE, f"{results[0]['output_path']} is not {expected}")]
    if not expected.is_file():
        return [Finding("CONTENDER_OUTPUT_MISSING", SERVICE, f"{expected} was reported but not written")]
    return []


def output_findings(source: Path, output: Path) -> list[Finding]:
    """The SDK warm-up's checks on the output (spec §3.4), with the validator's structural codes (§5.1)."""
    from mesh.errors import InvalidInput
    from mesh.media import probe

    try:
        src, out = probe(source), probe(output)
    except InvalidInput as exc:
        return [Finding("OUTPUT_CODEC_INVALID", SERVICE, f"the output is not a readable video: {exc}")]
    checks = (
        ("OUTPUT_CODEC_INVALID", out.codec == "av1", f"codec {out.codec}, not av1"),
        ("OUTPUT_CONTAINER_INVALID", "mp4" in out.container, f"container {out.container}, not mp4"),
        ("OUTPUT_DIMENSIONS_CHANGED", (out.width, out.height) == (src.width, src.height),
         f"{out.width}x{out.height}, source {src.width}x{src.height}"),
        ("OUTPUT_NOT_SMALLER", out.size_bytes < src.size_bytes, f"{out.size_bytes:,} >= {src.size_bytes:,} bytes"),
        ("OUTPUT_DURATION_CHANGED", abs(out.duration - src.duration) <= max(0.2, 0.02 * src.duration),
         f"{out.duration:.3f} s, source {src.duration:.3f} s"),
        ("OUTPUT_FRAME_COUNT_CHANGED", abs(out.frame_count - src.frame_count) <= 2,
         f"{out.frame_count} frames, source {src.frame_count}"),
        ("OUTPUT_PIXEL_FORMAT_INVALID", out.pix_fmt.startswith("yuv"), f"pix_fmt {out.pix_fmt}"),
        ("OUTPUT_ASPECT_RATIO_CHANGED", out.sample_aspect_ratio in ("", "1:1"), f"SAR {out.sample_aspect_ratio}"),
    )
    return [Finding(code, SERVICE, message) for code, passed, message in checks if not passed]


def _digest(path: Path) -> str | None:
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


def run_preflight(solution: Path, *, health_timeout: float = 300, compress_timeout: float = 180) -> list[Finding]:
    """Start the service, wait for /health, send the warm-up batch, and check what it wrote and left alone."""
    from mesh.embedded import free_port

    service_dir = solution / "miner" / "compression"
    if not (service_dir / "app.py").is_file():
        return [Finding("REQUIRED_FILE_MISSING", SERVICE, "nothing to run")]
    with tempfile.TemporaryDirectory(prefix="competition-preflight-") as scratch:
        work = Path(scratch)
        inputs, outputs = work / "evaluation-inputs", work / "output"
        inputs.mkdir()
        source = make_warmup_clip(inputs / WARMUP_NAME)
        source_digest = _digest(source)
        expected = outputs / WARMUP_OUTPUT
        expected.parent.mkdir(parents=True)
        env = {**os.environ, "DISABLE_REMOTE_IO": "true", "COMPETITION_INPUT_ROOT": str(inputs),
               "COMPETITION_OUTPUT_ROOT": str(outputs), "MINER_CLEANUP_ENABLED": "false",
               "MINER_STORAGE_CLEANUP_ENABLED": "false", "PYTHONNOUSERSITE": "1", "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("PYTHONPATH", None)
        port = free_port()
        log = work / "service.log"
        with _service(service_dir, port, env, log) as proc, \
                httpx.Client(base_url=f"http://127.0.0.1:{port}", trust_env=False) as client:
            findings = _wait_healthy(client, proc, log, health_timeout)
            if findings:
                return findings
            try:
                answer = client.post("/compress", json=warmup_request(source, expected), timeout=compress_timeout)
            except httpx.TimeoutException:
                return [Finding("SANDBOX_EXEC_TIMEOUT", SERVICE, f"no answer within {compress_timeout:.0f} s")]
            except httpx.HTTPError as exc:
                return [Finding("SANDBOX_EXEC_FAILED", SERVICE, f"{type(exc).__name__}: {_tail(log)}")]
        findings = _response_findings(answer, expected)
        if not findings:
            findings = output_findings(source, expected)
        findings += [Finding("UNEXPECTED_OUTPUT_WRITE", SERVICE, f"{path.relative_to(outputs)} written under /output")
                     for path in sorted(outputs.rglob("*")) if path.is_file() and path != expected]
        if _digest(source) != source_digest:
            findings.append(Finding("INPUT_WAS_REMOVED", SERVICE, "the input was removed or altered"))
        return findings
