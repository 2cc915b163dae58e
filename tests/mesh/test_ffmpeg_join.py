"""Joining encoded parts by stream copy: every frame, in order, whatever the paths hold (the concat list is
quoted), and no listing left behind."""

from __future__ import annotations

from mesh.ffmpeg import join_video, run_ffmpeg_sync
from mesh.media import probe


async def test_parts_with_quotes_in_their_paths_are_joined_whole(tmp_path):
    folder = tmp_path / "it's here"
    folder.mkdir()
    parts = []
    for index, seconds in enumerate((1, 2)):
        part = folder / f"part '{index}'.mp4"
        run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", f"testsrc2=s=64x64:r=10:d={seconds}",
                         "-c:v", "libx264", str(part)], timeout=60)
        parts.append(part)
    joined = await join_video(parts, folder / "joined.mp4", timeout=60)
    assert probe(joined).frame_count == 30
    assert sorted(path.name for path in folder.iterdir()) == ["joined.mp4", "part '0'.mp4", "part '1'.mp4"]
