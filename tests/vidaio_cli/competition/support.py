"""Helpers for the competition export and check tests: a fabricated subnet checkout and a stand-in route service.

The real SDK files are not available here (spec §2.3 gives their digests, not their text), so the checkout holds
fabricated files; tests that need the export to go through add those files' digests to the accepted table
with monkeypatch, and say so. The stand-in app is NOT the project's competition app: it is the smallest service
that honours the route contract through a real project module (mesh.ffmpeg), so the exporter's vendoring and
the check's service run are exercised against something real without depending on the app's own package."""

from __future__ import annotations

import textwrap
from pathlib import Path

from typer.testing import CliRunner

from vidaio_cli import competition_rules
from vidaio_cli.competition_vendor import REPO_ROOT, AppSpec
from vidaio_cli.main import app

STANDIN_APP = textwrap.dedent('''
    """Stand-in competition route service for the exporter's tests; SVT-AV1 at a fixed CRF."""

    import json
    import os
    import shutil
    import tempfile
    from pathlib import Path

    from mesh.ffmpeg import run_ffmpeg

    OUTPUT_ROOT = Path(os.environ.get("COMPETITION_OUTPUT_ROOT", "/output"))


    async def _compress_one(item: dict) -> dict:
        try:
            with tempfile.TemporaryDirectory() as scratch:
                encoded = Path(scratch) / "out.mp4"
                await run_ffmpeg(["-y", "-loglevel", "error", "-i", item["input_path"], "-map", "0:v:0",
                                  "-map", "0:a?", "-c:v", "libsvtav1", "-crf", "45", "-preset", "12",
                                  "-vf", "setsar=1", "-c:a", "copy", "-movflags", "+faststart", str(encoded)])
                if os.environ.get("STANDIN_STRAY_WRITE"):
                    (OUTPUT_ROOT / "stray.txt").write_text("not assigned")
                shutil.move(encoded, item["output_path"])
            return {"output_path": item["output_path"]}
        except Exception:
            return {"output_path": None}


    async def _send(send, payload: dict) -> None:
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


    async def app(scope, receive, send):
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/health":
            await _send(send, {"status": "ok", "competition_local_io": {"remote_io_disabled": True}})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = json.loads(body)
        await _send(send, {"results": [await _compress_one(item) for item in request["items"]]})
''').lstrip()

FABRICATED_SDK = {competition_rules.PREFLIGHT: b'"""Fabricated stand-in for the subnet\'s common_preflight.py."""\n',
                  competition_rules.SDK: b'"""Fabricated stand-in for the subnet\'s competition_sdk.py."""\n'}


def run_cli(*args: str):
    return CliRunner().invoke(app, list(args))


def standin_spec(standin_root: Path) -> AppSpec:
    return AppSpec(source_roots=(standin_root, REPO_ROOT))
