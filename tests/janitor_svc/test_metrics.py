"""The janitor's OpenTelemetry metrics, collected in a separate process so no global provider leaks here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import asyncio, io, json, sys, time
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))

from janitor_svc.config import JanitorSettings
from janitor_svc.server import JanitorServer
from mesh.config import RedisSettings, S3Settings

async def main():
    s3 = S3Settings.model_validate_json(sys.argv[2])
    server = JanitorServer(JanitorSettings(host="127.0.0.1", port=0, health_interval_seconds=0.2),
                           RedisSettings(url=sys.argv[1]), s3)
    await server.start()
    server.store.client.put_object(s3.bucket, "m.mp4", io.BytesIO(b"x"), 1)
    await server.janitor.schedule_deletion("", "m.mp4", delay=0)
    await server.janitor.schedule_deletion("", "later.mp4", delay=600)
    deadline = time.monotonic() + 5
    while server.store.exists("m.mp4") and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    await server.stop(0)

asyncio.run(main())
found = {}
for resource in reader.get_metrics_data().resource_metrics:
    for scope in resource.scope_metrics:
        for metric in scope.metrics:
            points = list(metric.data.data_points)
            found[metric.name] = [dict(p.attributes) | {"value": getattr(p, "value", None),
                                  "count": getattr(p, "count", None)} for p in points]
print(json.dumps(found))
"""


def test_lag_outcomes_and_pending_are_recorded(redis_url, s3_settings):
    result = subprocess.run([sys.executable, "-c", SCRIPT, redis_url, s3_settings.model_dump_json()], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout.strip().splitlines()[-1])
    assert found["janitor.deletion.lag"][0]["count"] == 1
    assert {"outcome": "deleted", "value": 1, "count": None} in found["janitor.deletions"]
    assert found["janitor.pending"][0]["value"] == 1
    assert found["janitor.dead_letter"][0]["value"] == 0
