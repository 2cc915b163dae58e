"""The domain tables, each in one place: codec families and their aliases, the subnet's upscaling task
types and scales, and the encoders both media services drive (quality knob, presets, ffmpeg arguments).

CPU encoders (libsvtav1, libx265, libx264, libvpx-vp9) always exist in imageio-ffmpeg's build. NVENC is
used only where `mesh.ffmpeg.nvenc_available` proves the encoder opens on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass

from mesh.errors import InvalidInput
from mesh.ffmpeg import nvenc_available

CODEC_FAMILIES = ("av1", "hevc", "h264", "vp9")
CODEC_ALIASES = {"h265": "hevc", "x265": "hevc", "libx265": "hevc", "avc": "h264", "x264": "h264",
                 "libx264": "h264", "libsvtav1": "av1", "svtav1": "av1", "libvpx-vp9": "vp9"}
# Rate-control modes the subnet's compression tasks name (VBR and CBR carry a target bitrate).
RATE_MODES = ("CRF", "VBR", "CBR")
# What the subnet asks upscalers to deliver.
UPSCALE_CODECS = ("hevc", "av1")
# The subnet's upscaling task types and their scale factors.
TASK_SCALES = {"SD2HD": 2, "HD24K": 2, "SD24K": 4, "4K28K": 2}


# Relative time one real-size compression item needs, by codec family (720p on 2 cores, like 4K on a 16-core
# miner): x265 keeps fewer cores busy than SVT-AV1 and its encode is the longer (docs/figures.md), and a
# high threshold needs a slower preset to reach it above the validator's 1.25x ratio gate.
COMPRESSION_TIME_WEIGHTS = {"av1": 1.0, "hevc": 1.25, "h264": 0.8, "vp9": 1.2}
HIGH_THRESHOLD = 93.0
HIGH_THRESHOLD_TIME_WEIGHT = 1.2


def compression_time_weight(codec: str, threshold: float) -> float:
    """How much of a synapse's time this item should get, relative to an SVT-AV1 item below 93; an unknown
    codec weighs 1 (the service refuses it anyway)."""
    name = CODEC_ALIASES.get(codec.strip().lower(), codec.strip().lower())
    weight = COMPRESSION_TIME_WEIGHTS.get(name, 1.0)
    return weight * (HIGH_THRESHOLD_TIME_WEIGHT if threshold >= HIGH_THRESHOLD else 1.0)


def normalize_codec(codec: str, offered: tuple[str, ...] = CODEC_FAMILIES) -> str:
    """'AV1', 'h265', 'HEVC', 'avc' ... -> one of `offered`; INVALID_ARGUMENT otherwise."""
    name = codec.strip().lower()
    name = CODEC_ALIASES.get(name, name)
    if name not in offered:
        raise InvalidInput(f"unsupported codec {codec!r} (one of {', '.join(offered)})")
    return name


def resolve_scale(task_type: str | None, scale: int | None) -> int:
    """The scale of a subnet task type (SD24K x4, the others x2) or a plain scale of 2 or 4."""
    if task_type:
        key = task_type.upper()
        if key not in TASK_SCALES:
            raise InvalidInput(f"unknown task type {task_type!r}: use one of {', '.join(TASK_SCALES)}")
        if scale and scale != TASK_SCALES[key]:
            raise InvalidInput(f"scale {scale} contradicts task type {key} (x{TASK_SCALES[key]})")
        return TASK_SCALES[key]
    if scale not in (2, 4):
        raise InvalidInput(f"scale must be 2 or 4 (or give a task type), got {scale}")
    return scale


@dataclass(frozen=True)
class Encoder:
    """One ffmpeg encoder and how to drive its constant-quality mode.

    `q` is the encoder's quality parameter (CRF or CQ): higher means smaller and worse. `presets` run from
    slowest (smallest files) to fastest, with `preset_cost` the encode time relative to `default_preset`.
    `vmaf_slope` (VMAF-NEG per q step, negative) and `size_slope` (d ln bytes per q step) seed the search
    before two probes have measured the real curve; `guess` maps a VMAF-NEG target to a first q.
    `chunk_threads`, when set, is how many threads one encode of a long clip keeps busy: the clip is then
    cut into chunks encoded side by side (one per that many threads) and joined by stream copy.
    """

    codec: str
    name: str
    hardware: bool
    q_min: float
    q_max: float
    q_step: float
    presets: tuple[str, ...]
    preset_cost: tuple[float, ...]
    default_preset: str
    vmaf_slope: float
    size_slope: float
    guess_at_89: float
    guess_per_point: float
    chunk_threads: int | None = None

    def guess(self, target: float) -> float:
        """A first q for VMAF-NEG `target`, from typical 30 fps content at this encoder's default preset."""
        return self.clamp(self.guess_at_89 - (target - 89) * self.guess_per_point)

    def clamp(self, q: float) -> float:
        snapped = round(q / self.q_step) * self.q_step
        return round(min(self.q_max, max(self.q_min, snapped)), 4)

    def cost(self, preset: str) -> float:
        return self.preset_cost[self.presets.index(preset)]

    def args(self, q: float, preset: str, *, threads: int, tuned: bool = True,
             max_kbps: int | None = None) -> list[str]:
        """Output options for one constant-quality encode at `q` with `preset`.

        `tuned` adds the options we found to give more VMAF-NEG per bit; without it the encoder runs on
        its defaults (what ab-av1 or a stock miner would run). `max_kbps` caps the bitrate (capped CRF:
        q wherever the cap allows, less quality where it binds).
        """
        if preset not in self.presets:
            raise ValueError(f"{self.name} has no preset {preset!r}")
        args = _ARGS[self.name](self, q, preset, threads, tuned)
        if max_kbps:
            args = _cap(self, args, max_kbps)
        return args


# HEVC in MP4 as `hvc1` (parameter sets in the sample entry), the tag players and Apple tools expect.
HEVC_MP4_TAG = ["-tag:v", "hvc1"]


def _svtav1(enc: Encoder, q: float, preset: str, threads: int, tuned: bool) -> list[str]:
    params = f"crf={q:g}:lp={threads}"
    return ["-c:v", "libsvtav1", "-preset", preset, "-svtav1-params", params]


def _x265(enc: Encoder, q: float, preset: str, threads: int, tuned: bool) -> list[str]:
    params = f"log-level=error:info=0:pools={threads}"
    if tuned:
        params += ":psy-rd=0:psy-rdoq=0"
    return ["-c:v", "libx265", "-preset", preset, "-crf", f"{q:g}", "-profile:v", "main",
            "-x265-params", params, *HEVC_MP4_TAG]


def _x264(enc: Encoder, q: float, preset: str, threads: int, tuned: bool) -> list[str]:
    return ["-c:v", "libx264", "-preset", preset, "-crf", f"{q:g}", "-profile:v", "high",
            "-threads", str(threads)]


def _vp9(enc: Encoder, q: float, preset: str, threads: int, tuned: bool) -> list[str]:
    return ["-c:v", "libvpx-vp9", "-crf", f"{int(q)}", "-b:v", "0", "-deadline", "good", "-cpu-used", preset,
            "-row-mt", "1", "-threads", str(threads), "-profile:v", "0"]


def _nvenc(enc: Encoder, q: float, preset: str, threads: int, tuned: bool) -> list[str]:
    profile = ["-profile:v", "main"] if enc.codec in ("hevc", "av1") else ["-profile:v", "high"]
    tag = HEVC_MP4_TAG if enc.codec == "hevc" else []
    return ["-c:v", enc.name, "-preset", preset, "-tune", "hq", "-rc", "vbr", "-cq", f"{q:g}", "-b:v", "0",
            *profile, *tag]


def _cap(enc: Encoder, args: list[str], max_kbps: int) -> list[str]:
    """SVT-AV1 takes its cap in its own parameters (`mbr`); x265 as VBV; the others as ffmpeg's rate options."""
    if enc.name == "libsvtav1":
        at = args.index("-svtav1-params") + 1
        return [*args[:at], f"{args[at]}:mbr={max_kbps}", *args[at + 1:]]
    if enc.name == "libx265":
        at = args.index("-x265-params") + 1
        return [*args[:at], f"{args[at]}:vbv-maxrate={max_kbps}:vbv-bufsize={2 * max_kbps}", *args[at + 1:]]
    return [*args, "-maxrate", f"{max_kbps}k", "-bufsize", f"{2 * max_kbps}k"]


_ARGS = {"libsvtav1": _svtav1, "libx265": _x265, "libx264": _x264, "libvpx-vp9": _vp9,
         "av1_nvenc": _nvenc, "hevc_nvenc": _nvenc, "h264_nvenc": _nvenc}

_X26X_PRESETS = ("slow", "medium", "fast", "veryfast", "superfast", "ultrafast")
_NVENC_PRESETS = ("p7", "p6", "p5", "p4", "p3", "p2", "p1")
_NVENC_COST = (2.5, 1.8, 1.3, 1.0, 0.8, 0.7, 0.6)

CPU_ENCODERS = {
    # Costs and slopes measured at 720p on 2 cores (docs/figures.md, "The real round"): preset 10 is the
    # fastest offered, since 12 (run as 11) saves 8 % of the time and loses ~1 VMAF-NEG point at equal size;
    # 8 takes 1.8x as long as 10 and gains ~1.4 points more; sizes fall ~10 % per CRF step. Preset 9 takes
    # 0.72 of 8's time and keeps most of its efficiency (grainy 720p: q 30 VMAF-NEG 93.31 at ratio 1.52, where
    # 8 gives 93.13 at 1.58 and 10 needs ratio ~1.1 for 93).
    "av1": Encoder("av1", "libsvtav1", False, 1, 63, 0.25, ("4", "5", "6", "7", "8", "9", "10"),
                   (2.7, 2.2, 1.85, 1.35, 1.0, 0.72, 0.57), "8", -0.77, -0.1, 45, 2.5),
    # x265 at its fast presets keeps ~1.15 of 2 cores busy at 720p (21 s for 900 frames; two halves side
    # by side: 11-16 s), hence chunks; superfast takes 1.43x and veryfast 2.25x ultrafast's time. VMAF
    # slopes (SVT-AV1 -0.77, x265 -1.26 at VMAF 90): the mean of the full-clip pairs in
    # compressor_svc/data/proxy_bias.json.
    "hevc": Encoder("hevc", "libx265", False, 0, 51, 0.25, _X26X_PRESETS, (3.2, 1.0, 0.9, 0.68, 0.43, 0.3),
                    "medium", -1.26, -0.11, 28, 1.0, chunk_threads=1),
    "h264": Encoder("h264", "libx264", False, 0, 51, 0.25, _X26X_PRESETS, (1.6, 1.0, 0.7, 0.4, 0.3, 0.2),
                    "medium", -1.6, -0.11, 25, 1.0),
    "vp9": Encoder("vp9", "libvpx-vp9", False, 0, 63, 1, ("1", "2", "3", "4", "5"),
                   (2.2, 1.5, 1.2, 1.0, 0.9), "4", -0.6, -0.05, 42, 2.0),
}

NVENC_ENCODERS = {
    "av1": Encoder("av1", "av1_nvenc", True, 1, 63, 0.25, _NVENC_PRESETS, _NVENC_COST, "p5",
                   -0.8, -0.05, 38, 2.0),
    "hevc": Encoder("hevc", "hevc_nvenc", True, 1, 51, 0.25, _NVENC_PRESETS, _NVENC_COST, "p5",
                    -1.4, -0.1, 28, 1.0),
    "h264": Encoder("h264", "h264_nvenc", True, 1, 51, 0.25, _NVENC_PRESETS, _NVENC_COST, "p5",
                    -1.4, -0.1, 25, 1.0),
}


def select_encoder(codec: str, *, allow_hardware: bool = True) -> Encoder:
    """NVENC for `codec` when it really opens here (and is allowed), else the CPU encoder."""
    family = normalize_codec(codec)
    hardware = NVENC_ENCODERS.get(family)
    if allow_hardware and hardware is not None and nvenc_available(hardware.name):
        return hardware
    return CPU_ENCODERS[family]
