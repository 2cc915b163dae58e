"""`python -m janitor_svc` as a real process: JSON logs, SERVING once Redis and S3 answer, SIGTERM drains."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from mesh.embedded import free_port
from mesh.healthcheck import NotServing, check, wait_serving

ROOT = Path(__file__).resolve().parents[2]


def test_process_serves_then_drains_on_sigterm(redis_url, s3_settings):
    port = free_port()
    env = {**os.environ, "REDIS_URL": redis_url, "S3_ENDPOINT": s3_settings.endpoint,
           "S3_ACCESS_KEY": s3_settings.access_key, "S3_SECRET_KEY": s3_settings.secret_key,
           "S3_BUCKET": s3_settings.bucket, "JANITOR_HOST": "127.0.0.1", "JANITOR_PORT": str(port),
           "JANITOR_DRAIN_SECONDS": "1", "OTEL_SDK_DISABLED": "true"}
    process = subprocess.Popen([sys.executable, "-m", "janitor_svc"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        try:
            wait_serving(f"127.0.0.1:{port}", timeout=20, alive=lambda: process.poll() is None)
        except NotServing as exc:
            raise AssertionError(f"{exc}:\n{process.stdout.read() if process.poll() is not None else ''}") from None
        assert check(f"127.0.0.1:{port}", "mesh.v1.Janitor") == "SERVING"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    records = [json.loads(line) for line in process.stdout.read().splitlines() if line.startswith("{")]
    messages = [record["message"] for record in records]
    assert "listening" in messages and "draining" in messages
    assert all(record["service"] == "janitor" for record in records)
