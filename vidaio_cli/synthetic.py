"""Deterministic, content-rich test clips made from ffmpeg's lavfi sources, so tests and the demo run
without the real development clips (`../shared/data/clips`).

Each clip is one or more "scenes" joined by hard cuts. A scene layers seeded lavfi sources (perlin,
mandelbrot, life, cellauto, gradients, testsrc2, smptehdbars) into something with real structure and
motion: an aerial contour-map landscape under a panning camera with a test-card billboard swinging across
it, Perlin clouds with a fractal kite, a Mandelbrot zoom, testsrc2 under a slow zoom with Game-of-Life
lights, cellular-automaton foliage; then seeded temporal film grain on top. The content was tuned on the
metrics that matter here, not on looks: validator-style x2/x4 upscales and VMAF-NEG-targeted compressions
of the landscape score like the real 720p clips do (see `_landscape`), and the int8 calibration test needs
the natural-looking scenes (hard-edged cellular patterns quantise badly: ~21 dB instead of ~40).

The same spec always gives the same bytes for a given ffmpeg build (every source and the grain are seeded,
the encoder's thread count is fixed). The files are H.264 High yuv420p with a short AAC tone, like the real
clips, encoded with the imageio-ffmpeg binary (`mesh.ffmpeg`). ffmpeg gets an argument list, never a shell
string, and only validated numbers from the spec end up in the filter graph.

    python -m vidaio_cli.synthetic OUT_DIR            # the test set (TEST_CLIPS)
    python -m vidaio_cli.synthetic OUT_DIR --demo     # the demo's clip (DEMO_CLIP)
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from mesh.ffmpeg import run_ffmpeg_sync

SCENES = ("landscape", "clouds", "fractal", "city", "garden")
ENCODER_THREADS = 4  # fixed, so the same spec gives the same bytes on any machine (with this ffmpeg build)
RENDER_PIXELS = 640 * 360  # larger clips are drawn at this size and scaled up


@dataclass(frozen=True)
class ClipSpec:
    """One synthetic clip: `scenes` play back to back (hard cuts between them), `seconds` in all."""

    name: str
    width: int
    height: int
    fps: str  # an ffmpeg rate: "30", "25", "30000/1001"
    seconds: float
    scenes: tuple[str, ...] = ("landscape",)
    seed: int = 1
    grain: int = 4  # temporal film-grain strength (ffmpeg `noise` alls)
    crf: int = 23  # about what 720p web video gets
    square_pixels: bool = True  # False: no sample aspect ratio in the file (as in some real uploads)

    @property
    def rate(self) -> Fraction:
        return Fraction(self.fps)

    @property
    def rate_text(self) -> str:
        """The rate as ffmpeg reads it, rebuilt from the parsed number ("30000/1001", "30")."""
        return str(self.rate)

    @property
    def frames(self) -> int:
        return max(1, round(self.seconds * self.rate))

    def __post_init__(self) -> None:
        if Path(self.name).name != self.name or not self.name.endswith(".mp4") or self.name.startswith("."):
            raise ValueError(f"{self.name!r}: a plain .mp4 file name, please")
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"{self.name}: {self.width}x{self.height} must be even and at least 16x16")
        if not 0 < self.seconds <= 600 or not 0 < self.rate <= 240:
            raise ValueError(f"{self.name}: {self.seconds} s at {self.fps} fps is out of range")
        unknown = [scene for scene in self.scenes if scene not in SCENES]
        if not self.scenes or unknown:
            raise ValueError(f"{self.name}: scenes must be some of {SCENES}, got {self.scenes}")
        if len(self.scenes) > self.frames:
            raise ValueError(f"{self.name}: {self.frames} frames cannot hold {len(self.scenes)} scenes")
        if not 0 <= self.grain <= 100 or not 0 <= self.crf <= 51 or self.seed < 0:
            raise ValueError(f"{self.name}: grain, crf or seed out of range")


def _even(value: float) -> int:
    return max(2, int(round(value / 2)) * 2)


# Palettes of similar luma contrast for the landscape's contour map (val: its grey level): coast, desert, forest.
_PALETTES = (
    ("clip(val*1.2-50,0,255)", "clip(val*0.8+30,0,255)", "clip(210-val*0.7,0,255)"),
    ("clip(val*0.7+80,0,255)", "clip(val*0.75+40,0,255)", "clip(val*0.5+10,0,255)"),
    ("clip(val*0.5+10,0,255)", "clip(val*0.8+40,0,255)", "clip(val*0.4+20,0,255)"),
)


def _landscape(w: int, h: int, r: str, seed: int, tag: str) -> str:
    """An aerial view: a contour map of Perlin terrain (fields, water and hills with crisp, slightly soft
    boundaries, like real objects' edges) under a camera that pans and drifts, with a billboard showing
    SMPTE bars swinging across it. Edges at the scales a x2/x4 upscaler restores, rigid motion and flat
    high-contrast patches make validator-style tasks on it behave like real footage: SD24K upscales of
    144p references score VMAF ~55-65, and the compressor reaches VMAF-NEG 93 well above ratio 1.25."""
    bw, bh = _even(w * 1.3), _even(h * 1.3)
    sw, sh = _even(w / 1.8), _even(h / 1.8)
    red, green, blue = _PALETTES[seed % len(_PALETTES)]
    return (
        f"perlin=s={_even(bw / 4)}x{_even(bh / 4)}:r={r}:octaves=3:persistence=0.5:xscale=2:yscale=2:tscale=0.03:"
        f"random_mode=seed:seed={seed},format=gray,eq=contrast=2.6,scale={bw}x{bh}:flags=bicubic,"
        f"lut=y='floor(val/64)*64+32',gblur=sigma=0.8,format=rgb24,lutrgb=r='{red}':g='{green}':b='{blue}',"
        f"format=gbrp,"
        f"crop={w}:{h}:x='(iw-ow)*(0.5+0.45*sin(t*0.45+{seed}))':y='(ih-oh)*(0.5+0.4*cos(t*0.31))'[{tag}bg];"
        f"smptehdbars=s={sw}x{sh}:r={r},format=gbrp[{tag}sign];"
        f"[{tag}bg][{tag}sign]overlay=x='(W-w)/2+(W-w)/2*sin(t*0.6+{seed})':y='(H-h)/2+(H-h)/3*sin(t*0.9)':"
        f"shortest=1"
    )


def _clouds(w: int, h: int, r: str, seed: int, tag: str) -> str:
    """Perlin clouds over a coloured gradient, seen by a camera that pans and drifts; a small zooming
    fractal "kite" crosses the frame. Texture at every scale: hard for upscalers (SD24K VMAF ~45-50)."""
    bw, bh = _even(w * 1.3), _even(h * 1.3)
    kw, kh = _even(w / 4), _even(h / 4)
    return (
        f"perlin=s={_even(bw / 3)}x{_even(bh / 3)}:r={r}:octaves=6:persistence=0.72:xscale=2.5:yscale=2.5:"
        f"tscale=0.25:random_mode=seed:seed={seed},format=gray,eq=contrast=2.4:brightness=0.05,"
        f"scale={bw}x{bh}:flags=bicubic,format=gbrp[{tag}tex];"
        f"gradients=s={bw}x{bh}:r={r}:seed={seed}:n=3:c0=0x2a4d8f:c1=0xc8a060:c2=0x3c7a3a:speed=0.004,"
        f"format=gbrp[{tag}col];"
        f"[{tag}tex][{tag}col]blend=all_mode=softlight,"
        f"crop={w}:{h}:x='(iw-ow)*(0.5+0.45*sin(t*0.45+{seed}))':y='(ih-oh)*(0.5+0.4*cos(t*0.31))'[{tag}bg];"
        f"mandelbrot=s={kw}x{kh}:r={r}:maxiter=200:start_scale=2.5:end_scale=0.05:end_pts=600,"
        f"format=gbrp[{tag}kite];"
        f"[{tag}bg][{tag}kite]overlay=x='mod(t*{w / 7:.1f}+{seed * 37 % w},{w + kw})-{kw}':"
        f"y='{h * 0.55:.1f}+{h * 0.2:.1f}*sin(t*1.1)':shortest=1"
    )


def _fractal(w: int, h: int, r: str, seed: int, tag: str) -> str:
    """A Mandelbrot zoom with a drifting hue, a morphing boundary and soft cloud shading."""
    return (
        f"mandelbrot=s={_even(w / 2)}x{_even(h / 2)}:r={r}:maxiter=400:start_x=-0.7436447860:"
        f"start_y=0.1318252536:start_scale=2.8:end_scale=0.02:end_pts={900 + seed * 13}:morphamp=0.05,"
        f"scale={w}x{h}:flags=bicubic,hue=h='t*25+{seed * 40}':s=0.8,format=gbrp[{tag}m];"
        f"perlin=s={_even(w / 4)}x{_even(h / 4)}:r={r}:octaves=4:persistence=0.5:xscale=2:yscale=2:tscale=0.4:"
        f"random_mode=seed:seed={seed + 7},format=gray,scale={w}x{h}:flags=bicubic,format=gbrp[{tag}p];"
        f"[{tag}m][{tag}p]blend=all_mode=overlay:all_opacity=0.6"
    )


def _city(w: int, h: int, r: str, seed: int, tag: str) -> str:
    """testsrc2's moving shapes and counter under a slow zoom, with Game-of-Life "windows" flickering."""
    return (
        f"testsrc2=s={w}x{h}:r={r},format=gbrp,"
        f"zoompan=z='1.05+0.25*(1-cos(on/{max(1, seed)}/40))':x='iw/2-iw/zoom/2+iw/40*sin(on/25)':"
        f"y='ih/2-ih/zoom/2':d=1:s={w}x{h}:fps={r}[{tag}t];"
        f"life=s={_even(w / 16)}x{_even(h / 16)}:r=6:seed={seed}:ratio=0.3:mold=20:life_color=0xfff0b0:"
        f"death_color=0x101828:mold_color=0x406080,fps={r},scale={w}x{h}:flags=bicubic,gblur=sigma=2,"
        f"format=gbrp[{tag}l];"
        f"[{tag}t][{tag}l]blend=all_mode=screen:all_opacity=0.3"
    )


def _garden(w: int, h: int, r: str, seed: int, tag: str) -> str:
    """Cellular-automaton "foliage" over radial light, with Perlin wind and a slow pan."""
    bw = _even(w * 1.2)
    return (
        f"cellauto=s={_even(bw / 4)}x{_even(h / 4)}:r=10:rule=30:seed={seed}:ratio=0.5:full=1,fps={r},"
        f"scale={bw}x{h}:flags=bicubic,gblur=sigma=0.7,format=gbrp[{tag}c];"
        f"gradients=s={bw}x{h}:r={r}:seed={seed}:type=radial:n=3:c0=0x1d3b12:c1=0x7fbf4d:c2=0xe8d890:"
        f"speed=0.01,format=gbrp[{tag}g];"
        f"perlin=s={_even(bw / 4)}x{_even(h / 4)}:r={r}:octaves=5:persistence=0.6:xscale=3:yscale=3:tscale=0.5:"
        f"random_mode=seed:seed={seed + 3},format=gray,scale={bw}x{h}:flags=bicubic,format=gbrp[{tag}p];"
        f"[{tag}c][{tag}g]blend=all_mode=multiply:all_opacity=0.6[{tag}cg];"
        f"[{tag}cg][{tag}p]blend=all_mode=softlight,crop={w}:{h}:x='(iw-ow)*(0.5+0.5*sin(t*0.6))':y=0"
    )


_RECIPES = {"landscape": _landscape, "clouds": _clouds, "fractal": _fractal, "city": _city, "garden": _garden}


def filter_graph(spec: ClipSpec) -> str:
    """The -filter_complex graph for `spec`: one chain per scene, frame-exact, concatenated into [v]."""
    counts = [spec.frames // len(spec.scenes)] * len(spec.scenes)
    counts[-1] += spec.frames - sum(counts)
    chains, labels = [], []
    for index, (scene, frames) in enumerate(zip(spec.scenes, counts, strict=True)):
        tag = f"s{index}"
        seed = spec.seed * 101 + index * 17
        # Scenes are drawn at no more than RENDER_PIXELS and scaled up (a soft lens); the grain is full size.
        shrink = max(1.0, (spec.width * spec.height / RENDER_PIXELS) ** 0.5)
        rw, rh = _even(spec.width / shrink), _even(spec.height / shrink)
        recipe = _RECIPES[scene](rw, rh, spec.rate_text, seed, tag)
        upscale = f"scale={spec.width}x{spec.height}:flags=bicubic," if (rw, rh) != (spec.width, spec.height) else ""
        grain = f"noise=alls={spec.grain}:allf=t+u:all_seed={seed}," if spec.grain else ""
        chains.append(f"{recipe},trim=end_frame={frames},setpts=PTS-STARTPTS,format=yuv420p,{upscale}{grain}"
                      f"setsar={1 if spec.square_pixels else 0}[{tag}]")
        labels.append(f"[{tag}]")
    join = f"{''.join(labels)}concat=n={len(labels)}:v=1:a=0[v]" if len(labels) > 1 else f"{labels[0]}null[v]"
    return ";".join([*chains, join])


def make_clip(spec: ClipSpec, directory: Path) -> Path:
    """Render `spec` into `directory / spec.name` (written under a temporary name, then renamed)."""
    directory.mkdir(parents=True, exist_ok=True)
    dest = directory / spec.name
    partial = directory / f".partial-{spec.name}"
    seconds = f"{float(spec.frames / spec.rate):.6f}"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-filter_complex", filter_graph(spec),
                     "-f", "lavfi", "-i", f"sine=frequency={220 + 20 * (spec.seed % 12)}:sample_rate=44100",
                     "-map", "[v]", "-map", "0:a", "-t", seconds, "-frames:v", str(spec.frames), "-r", spec.rate_text,
                     "-c:v", "libx264", "-preset", "superfast", "-crf", str(spec.crf), "-profile:v", "high",
                     "-pix_fmt", "yuv420p", "-g", str(max(1, round(spec.rate))), "-threads", str(ENCODER_THREADS),
                     "-c:a", "aac", "-b:a", "64k", "-movflags", "+faststart", "-f", "mp4", str(partial)],
                    timeout=600)
    partial.replace(dest)
    return dest


def make_clips(directory: Path, specs: Iterable[ClipSpec], *, workers: int | None = None) -> dict[str, Path]:
    """Render every spec not already in `directory` (a few at a time, largest first); return name -> path."""
    specs = list(specs)
    missing = sorted((spec for spec in specs if not (directory / spec.name).is_file()),
                     key=lambda spec: spec.width * spec.height * spec.frames, reverse=True)
    with ThreadPoolExecutor(max_workers=max(1, min(len(missing) or 1, workers or os.cpu_count() or 1))) as pool:
        list(pool.map(lambda spec: make_clip(spec, directory), missing))
    return {spec.name: directory / spec.name for spec in specs}


# The test set: the names, sizes and rates the tests rely on (tests/conftest.py `clips_dir`), each only as
# long as the tests need (test_score_command trims 0.4 s from up to 8 s into HD_CLIP). HD_CLIP has a hard cut
# at 4.5 s and, like the real 720p clip it stands in for, no sample aspect ratio (a reference cut from it
# fails the SAR gate). The compressor tests join SCENE_CLIP and SMALL_CLIP back to back (the one hard cut
# they count), so each of those is a single scene. NTSC_CLIP calibrates int8 and BUSY_CLIP's first frames
# check it, so both start with natural-looking scenes.
HD_CLIP = ClipSpec("synth_hd_1280x720_30fps.mp4", 1280, 720, "30", 9.0, ("landscape", "landscape"), seed=1,
                   square_pixels=False)
SCENE_CLIP = ClipSpec("synth_scene_1280x720_30fps.mp4", 1280, 720, "30", 2.5, ("fractal",), seed=2)
SMALL_CLIP = ClipSpec("synth_small_320x240_30fps.mp4", 320, 240, "30", 2.5, ("clouds",), seed=3)
NTSC_CLIP = ClipSpec("synth_sd_480x360_29.97fps.mp4", 480, 360, "30000/1001", 2.0, ("clouds", "fractal"), seed=4)
LOW_FPS_CLIP = ClipSpec("synth_sd_480x360_14.99fps.mp4", 480, 360, "15000/1001", 4.0, ("city",), seed=5)
PAL_CLIP = ClipSpec("synth_sd_480x360_25fps.mp4", 480, 360, "25", 1.0, ("fractal",), seed=6)
BUSY_CLIP = ClipSpec("synth_busy_480x360_30fps.mp4", 480, 360, "30", 2.0, ("clouds", "garden"), seed=7, grain=10,
                     crf=20)
PORTRAIT_CLIP = ClipSpec("synth_portrait_406x720_30fps.mp4", 406, 720, "30", 1.0, ("landscape",), seed=8)
TEST_CLIPS = (HD_CLIP, SCENE_CLIP, SMALL_CLIP, NTSC_CLIP, LOW_FPS_CLIP, PAL_CLIP, BUSY_CLIP, PORTRAIT_CLIP)

# What `vidaio-mesh demo` plays when no real clip is around: 10 s of HD with two hard cuts.
DEMO_CLIP = ClipSpec("synth_demo_1280x720_30fps.mp4", 1280, 720, "30", 10.0, ("landscape",) * 3,
                     seed=85, square_pixels=False)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--demo", action="store_true", help="only the demo's clip")
    args = parser.parse_args(argv)
    for spec in (DEMO_CLIP,) if args.demo else TEST_CLIPS:
        started = time.monotonic()
        path = make_clip(spec, args.out_dir)
        print(f"{path}  {spec.width}x{spec.height}  {spec.fps} fps  {spec.frames} frames  "
              f"{time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
