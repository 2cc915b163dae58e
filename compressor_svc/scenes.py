"""Scene splitting: PySceneDetect's ContentDetector on a small proxy of the source.

Decoding a 4K source through OpenCV at full size is the slow part of scene detection; ffmpeg writes a
~192-px-wide proxy once (same frames, same order) and PySceneDetect reads that instead. Scenes shorter
than `min_frames` are merged into a neighbour, and the count is capped so the search stays affordable.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from scenedetect import ContentDetector, detect

from mesh.ffmpeg import run_ffmpeg

PROXY_WIDTH = 192


@dataclass(frozen=True)
class Scene:
    """Frames [start, end) of the source."""

    index: int
    start: int
    end: int

    @property
    def frames(self) -> int:
        return self.end - self.start


def merge_boundaries(cuts: list[int], frame_count: int, *, min_frames: int, max_scenes: int) -> list[Scene]:
    """Scenes from cut frames: drop cuts that leave a scene under `min_frames`, then merge the shortest
    neighbours until at most `max_scenes` remain."""
    bounds = [0]
    for cut in sorted(set(cuts)):
        if min_frames <= cut - bounds[-1] and frame_count - cut >= min_frames:
            bounds.append(cut)
    bounds.append(frame_count)
    while len(bounds) - 1 > max(1, max_scenes):
        lengths = [bounds[i + 1] - bounds[i - 1] for i in range(1, len(bounds) - 1)]
        del bounds[1 + lengths.index(min(lengths))]
    return [Scene(i, start, end) for i, (start, end) in enumerate(zip(bounds, bounds[1:]))]


async def make_proxy(source: Path, dest: Path, *, timeout: float | None = None) -> Path:
    """A small intra-coded copy of `source` with the same frames, for fast scene analysis."""
    await run_ffmpeg(["-y", "-loglevel", "error", "-i", str(source), "-an", "-sn", "-dn",
                      "-fps_mode", "passthrough",
                      "-vf", f"scale={PROXY_WIDTH}:-2:flags=fast_bilinear", "-c:v", "libx264", "-preset",
                      "ultrafast", "-qp", "0", "-g", "1", str(dest)], timeout=timeout)
    return dest


async def detect_scenes(source: Path, frame_count: int, workdir: Path, *, min_frames: int, max_scenes: int,
                        threshold: float = 27.0, timeout: float | None = None) -> list[Scene]:
    """Split `source` (with `frame_count` frames) into scenes; a clip without cuts is one scene."""
    if frame_count < 2 * min_frames or max_scenes <= 1:
        return [Scene(0, 0, frame_count)]
    proxy = await make_proxy(source, workdir / "scene-proxy.mp4", timeout=timeout)
    detector = ContentDetector(threshold=threshold, min_scene_len=min_frames)
    found = await asyncio.to_thread(detect, str(proxy), detector, backend="pyav")
    proxy.unlink(missing_ok=True)
    cuts = [start.frame_num for start, _ in found[1:]]
    return merge_boundaries(cuts, frame_count, min_frames=min_frames, max_scenes=max_scenes)
