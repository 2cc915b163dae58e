"""The gRPC-free core: probe → decode → upscale → encode → verify, for one local file.

Three threads joined by bounded queues do the work so decoding, inference and encoding overlap and memory
stays flat: PyAV decodes frames to RGB, the engine upscales them in batches, and the encoder thread pipes
raw frames into ffmpeg. No frame touches the disk, and every decoded frame is written exactly once, so the
output has the source's exact frame count. Cancelling the coroutine stops all three within a second
(the engine checks between tiles, ffmpeg's process group is killed).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import av
import numpy as np

from mesh.errors import GateFailed, InvalidInput
from mesh.ffmpeg import FfmpegError
from mesh.gates import Gate, all_passed, failures, upscaling_gates
from mesh.media import MediaFacts, probe
from mesh.progress import ProgressFn, ProgressReporter, reporting
from upscaler_svc.encode import EncoderSettings, choose_encoder, encoder_command, rgb_matrix, start_encoder
from upscaler_svc.engine import Cancelled, Engine

log = logging.getLogger(__name__)

STOP_WAIT_SECONDS = 0.8  # how long a cancelled job waits for its threads (each checks far more often)
_END = object()


@dataclass(frozen=True)
class PipelineLimits:
    """What counts as an absurd input, and the queue/batch sizes between the three stages."""

    max_output_side: int = 8192
    min_side: int = 16  # the 10-px reflect pre-padding needs more than 10 px
    max_frames: int = 36_000
    queue_frames: int = 8
    batch_size: int = 2


@dataclass
class UpscaleOutcome:
    source: MediaFacts
    output: MediaFacts
    scale: int
    encoder: str
    engine: str
    gates: list[Gate]
    timings: dict[str, float] = field(default_factory=dict)


def check_source(facts: MediaFacts, scale: int, limits: PipelineLimits) -> None:
    """INVALID_ARGUMENT for sources the service will not upscale."""
    if min(facts.width, facts.height) < limits.min_side:
        raise InvalidInput(f"source is {facts.width}x{facts.height}: smaller than {limits.min_side} px")
    if max(facts.width, facts.height) * scale > limits.max_output_side:
        raise InvalidInput(f"source {facts.width}x{facts.height} x{scale} exceeds "
                           f"{limits.max_output_side} px")
    if facts.frame_count > limits.max_frames:
        raise InvalidInput(f"source has {facts.frame_count} frames, over the {limits.max_frames}-frame limit")


class _FrameStream:
    """The decode → infer → encode threads of one job and the state they share."""

    def __init__(self, source: MediaFacts, scale: int, engine: Engine, command: list[str], log_path: Path,
                 limits: PipelineLimits, reporter: ProgressReporter) -> None:
        self.source, self.scale, self.engine = source, scale, engine
        self.command, self.log_path = command, log_path
        self.limits, self.reporter = limits, reporter
        self.stop = threading.Event()
        self.decoded: queue.Queue = queue.Queue(maxsize=limits.queue_frames)
        self.upscaled: queue.Queue = queue.Queue(maxsize=limits.queue_frames)
        self.process = None
        self.error: BaseException | None = None
        self._process_lock = threading.Lock()

    def _put(self, q: queue.Queue, item: object) -> None:
        while not self.stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue
        raise Cancelled()

    def _get(self, q: queue.Queue) -> object:
        while not self.stop.is_set():
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue
        raise Cancelled()

    def decode(self) -> None:
        colorspace, _ = rgb_matrix(self.source)
        with av.open(str(self.source.path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                if self.stop.is_set():
                    raise Cancelled()
                rgb = frame.reformat(format="rgb24", src_colorspace=colorspace).to_ndarray()
                self._put(self.decoded, rgb)
        self._put(self.decoded, _END)

    def infer(self) -> None:
        while True:
            first = self._get(self.decoded)
            if first is _END:
                break
            batch = [first]
            ended = False
            while len(batch) < self.limits.batch_size:
                try:
                    item = self.decoded.get_nowait()
                except queue.Empty:
                    break
                if item is _END:
                    ended = True
                    break
                batch.append(item)
            for frame in self.engine.infer(np.stack(batch), self.scale, cancelled=self.stop.is_set):
                self._put(self.upscaled, frame)
            if ended:
                break
        self._put(self.upscaled, _END)

    def encode(self) -> None:
        with self._process_lock:
            if self.stop.is_set():
                raise Cancelled()
            self.process = start_encoder(self.command, self.log_path)
        try:
            while True:
                frame = self._get(self.upscaled)
                if frame is _END:
                    break
                self.process.stdin.write(memoryview(frame).cast("B"))
                self.reporter.done += 1
            self.process.stdin.close()
            self.reporter.stage("encode", message="flushing the encoder")
            code = self.process.wait()
        except (BrokenPipeError, ValueError):
            if self.stop.is_set():
                raise Cancelled() from None
            code = self.process.wait()
        if self.stop.is_set():
            raise Cancelled()
        if code != 0:
            tail = self.log_path.read_text(errors="replace")[-1500:]
            raise FfmpegError(f"encoder exited with {code}: {tail}")

    def abort(self) -> None:
        """Stop every thread and kill ffmpeg (its whole process group)."""
        self.stop.set()
        with self._process_lock:
            if self.process is not None and self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        futures = []
        for target in (self.decode, self.infer, self.encode):
            future = loop.create_future()
            futures.append(future)
            threading.Thread(target=self._guard, args=(target, loop, future), daemon=True,
                             name=f"upscale-{target.__name__}").start()
        try:
            await asyncio.gather(*futures)
        except BaseException as exc:
            self.abort()
            await asyncio.shield(asyncio.wait(futures, timeout=STOP_WAIT_SECONDS))
            for future in futures:
                if future.done():
                    future.exception()  # retrieved: the first error is the one reported
            if isinstance(exc, asyncio.CancelledError) or self.error is None:
                raise
            raise self.error from None
        finally:
            if self.process is not None and self.process.poll() is None:
                self.abort()
            if self.process is not None:
                self.process.wait()

    def _guard(self, target: Callable[[], None], loop: asyncio.AbstractEventLoop,
               future: asyncio.Future) -> None:
        try:
            target()
        except BaseException as exc:  # noqa: BLE001 - every thread failure ends the job
            if not isinstance(exc, Cancelled) and self.error is None:
                self.error = exc
            self.stop.set()
            _settle_from_thread(loop, future, exc)
        else:
            _settle_from_thread(loop, future, None)


def _settle_from_thread(loop: asyncio.AbstractEventLoop, future: asyncio.Future,
                        exc: BaseException | None) -> None:
    try:
        loop.call_soon_threadsafe(_settle, future, exc)
    except RuntimeError:
        pass  # the loop is gone: the job was cancelled and nobody waits for this thread any more


def _settle(future: asyncio.Future, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is None:
        future.set_result(None)
    else:
        future.set_exception(exc)


class UpscalePipeline:
    """Upscales local files with one loaded engine; shared by the service, the CLI and the benchmark."""

    def __init__(self, engine: Engine, *, encoder_settings: EncoderSettings | None = None,
                 limits: PipelineLimits | None = None) -> None:
        self.engine = engine
        self.encoder_settings = encoder_settings or EncoderSettings()
        self.limits = limits or PipelineLimits()

    async def run(self, source_path: Path, output_path: Path, *, scale: int, codec: str = "hevc",
                  source: MediaFacts | None = None, reporter: ProgressReporter | None = None,
                  on_progress: ProgressFn | None = None) -> UpscaleOutcome:
        """Upscale `source_path` into `output_path`, verify it against the validator's gates, and return the
        facts. Raises InvalidInput for unusable sources and GateFailed when the output would be rejected.

        `source` is the file's facts when the caller already probed it. Progress goes to `on_progress`, or
        into a caller's `reporter` whose emitting the caller runs."""
        async with reporting(reporter, on_progress) as reporter:
            return await self._run(Path(source_path), Path(output_path), scale, codec, source, reporter)

    async def _run(self, source_path: Path, output_path: Path, scale: int, codec: str,
                   source: MediaFacts | None, reporter: ProgressReporter) -> UpscaleOutcome:
        self.engine.check_scale(scale)
        # The first call probes the GPU encoders with ffmpeg: off the event loop.
        encoder = await asyncio.to_thread(choose_encoder, codec, self.encoder_settings.use_nvenc)
        if source is None:
            reporter.stage("probe")
            source = await asyncio.to_thread(probe, source_path)
        check_source(source, scale, self.limits)
        output_path.parent.mkdir(parents=True, exist_ok=True)
        # ffmpeg writes a side file that takes the output's name only once it passed the gates: a killed run
        # (ffmpeg lives in its own session and finishes the file on EOF) never leaves a short "output".
        partial = output_path.with_name(output_path.name + ".partial")
        command = encoder_command(source, scale, encoder, partial, self.encoder_settings)
        log_path = output_path.with_name(output_path.name + ".ffmpeg.log")
        reporter.stage("upscale", total=source.frame_count, unit="frames",
                       message=f"x{scale} with {self.engine.describe()}, encoding {encoder.name}")
        stream = _FrameStream(source, scale, self.engine, command, log_path, self.limits, reporter)
        try:
            await stream.run()
            reporter.stage("verify")
            output = await asyncio.to_thread(probe, partial)
            gates = upscaling_gates(source, output, scale)
            if not all_passed(gates):
                raise GateFailed(f"output failed the validator's gates: {failures(gates)}")
            os.replace(partial, output_path)
        except BaseException as exc:
            partial.unlink(missing_ok=True)
            if isinstance(exc, Cancelled):
                raise asyncio.CancelledError() from None
            if isinstance(exc, av.FFmpegError):
                raise InvalidInput(f"{source_path.name} could not be decoded: {exc}") from exc
            raise
        finally:
            log_path.unlink(missing_ok=True)
        reporter.finish()
        output = dataclasses.replace(output, path=output_path)
        return UpscaleOutcome(source, output, scale, encoder.name, self.engine.describe(), gates,
                             reporter.timings)
