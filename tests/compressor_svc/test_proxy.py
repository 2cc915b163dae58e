"""Real-size search on a proxy: the windows, and the bias correction fitted from kept measurements."""

from __future__ import annotations

import json
import statistics

from compressor_svc.assemble import encode_args
from compressor_svc.context import JobContext
from compressor_svc.job import CompressJob, CompressOptions, Targets
from compressor_svc.planning import Clock, CostModel
from compressor_svc.proxy import (
    BIAS_DATA,
    WINDOW_FRAMES,
    WINDOWS,
    ProxyCorrection,
    build_proxy,
    correction,
    first_aim,
    probe_proxy,
    proxy_frames,
    window_starts,
    worth_it,
)
from compressor_svc.scenes import Scene
from mesh.codecs import select_encoder
from mesh.ffmpeg import run_ffmpeg, run_ffmpeg_sync
from mesh.media import probe
from mesh.progress import ProgressReporter
from mesh.vmaf import measure


def test_windows_spread_over_the_whole_clip():
    starts = window_starts(900)
    assert len(starts) == WINDOWS and starts[0] == 0 and starts[-1] + WINDOW_FRAMES == 900
    gaps = {b - a for a, b in zip(starts, starts[1:])}
    assert max(gaps) - min(gaps) <= 1, "evenly spaced, so each source of a permuted clip is sampled"
    assert proxy_frames(900) == WINDOWS * WINDOW_FRAMES
    assert not worth_it(300) and worth_it(900), "short clips are searched whole"


def test_the_first_probe_aims_less_far_over_high_targets():
    """A constant margin in distortion space: ~3 VMAF-NEG points over a T-85 target, ~1 over a T-93 one (a
    first probe 3 points over 95.5 lands where nothing passes the ratio gate on grain)."""
    margins = [first_aim(target) - target for target in (88.0, 91.7, 95.5)]
    assert 2.8 <= margins[0] <= 3.1 and 1.0 <= margins[2] <= 1.4
    assert margins[0] > margins[1] > margins[2] > 0


def test_the_correction_is_fitted_from_the_kept_measurements():
    data = json.loads(BIAS_DATA.read_text(encoding="utf-8"))
    pairs = [(pair["proxy"], pair["full"]) for pair in data["pairs"]]
    assert len(pairs) >= 8 and data["measured"], "the data behind the correction is kept with the code"
    assert {pair["codec"] for pair in data["pairs"]} >= {"av1", "hevc"}
    fitted = correction()
    assert fitted == ProxyCorrection.fit(pairs), "the service uses exactly what the data gives"
    covered = sum(abs(full - (proxy + fitted.bias)) <= fitted.spread + 1e-9 for proxy, full in pairs)
    assert covered / len(pairs) >= 0.9, "the margin covers nine in ten measured errors"
    raw_error = statistics.mean(abs(full - proxy) for proxy, full in pairs)
    corrected_error = statistics.mean(abs(full - proxy - fitted.bias) for proxy, full in pairs)
    assert corrected_error <= raw_error, "the correction does not make the readings worse"


def test_fit_of_a_known_bias():
    pairs = [(80.0 + i, 81.5 + i + (0.2 if i % 2 else -0.2)) for i in range(10)]
    fitted = ProxyCorrection.fit(pairs)
    assert abs(fitted.bias - 1.5) <= 0.2 and fitted.spread <= 0.21 and fitted.pairs == 10


async def test_the_proxy_reads_close_to_the_full_measurement(tmp_path):
    """On a clip the service has never seen, the corrected proxy reading lands near the validator's number."""
    clip = tmp_path / "clip.mp4"
    run_ffmpeg_sync(["-y", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc2=s=192x108:r=30:d=16", "-f", "lavfi",
                     "-i", "mandelbrot=s=192x108:r=30", "-filter_complex",
                     "[0:v][1:v]blend=all_mode=average:shortest=1,noise=alls=6:allf=t,format=yuv420p",
                     "-frames:v", "480", "-c:v", "libx264", "-crf", "18", str(clip)], timeout=120)
    job, options = CompressJob(89, "av1"), CompressOptions(allow_hardware=False)
    encoder = select_encoder("av1", allow_hardware=False)
    ctx = JobContext(source_path=clip, source=probe(clip), workdir=tmp_path, job=job, options=options,
                     targets=Targets.of(job, options), clock=Clock(600), costs=CostModel(encoder, 2), encoder=encoder,
                     reporter=ProgressReporter())
    proxy = await build_proxy(ctx)
    assert proxy.frames == WINDOWS * WINDOW_FRAMES and probe(proxy.path).frame_count == proxy.frames
    reading, _, _ = await probe_proxy(ctx, proxy, 40, "10")
    full_path = tmp_path / "full.mp4"
    await run_ffmpeg(encode_args(ctx, Scene(0, 0, 480), 40, "10", full_path))
    full = (await measure(full_path, clip, models=("vmaf_neg",))).vmaf_neg
    fix = correction()
    assert abs(full - (reading + fix.bias)) <= fix.spread + 1.0, (reading, full, fix)
