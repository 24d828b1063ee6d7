"""Score every tile of survey frames with a checkpoint's network (Django-free).

The pipeline, and why each step is there:

1. Frames are decoded once each (``decode.decode_frame``), ahead of the model, by background
   threads (PIL releases the GIL while it decodes), through a bounded window so memory stays at a
   few frames whatever the length of the list.
2. The whole decoded frame goes to the device as uint8 (a quarter of the bytes of float32); on a
   GPU it is staged in pinned memory and copied on a side stream, so the copy overlaps the
   previous frame's batches.
3. Tiles are views: ``unfold`` with step 1 exposes every 224 px window of the frame without
   copying; a batch is gathered from it by tile origins in one indexing op.
4. On the device the batch is converted to float, scaled and normalised with exactly the
   operations of torchvision's ``ToTensor`` + ``Normalize`` (so fp32 inputs are bit-identical to
   the per-tile reference), in channels-last layout, then run under bf16 autocast where the
   hardware does bf16 natively (fp32 otherwise; the choice and its reason are recorded).
5. Batches have a fixed size and take tiles from consecutive frames, so the last batch of one
   frame is filled by the next frame. On a GPU, or when compiled, the last batch is padded to the
   fixed size (stable shapes for cuDNN autotuning and ``torch.compile``); an eager CPU runs it
   as it is, since padding there costs real compute.
6. On a GPU, scores come back through pinned memory behind an event, one batch behind, so the
   GPU always has the next batch queued while the host reads the previous one.

Contract (asserted by tests/inference/test_engine_predictor.py against a per-tile PIL reference):
the score of each tile equals that of the same network, in fp32, applied to the tile cropped with
PIL and transformed with ``ToTensor`` + ``Normalize(mean, std)`` from the checkpoint, within
``FP32_ATOL`` in fp32 and ``BF16_ATOL`` in bf16, whatever the batch size.

CUDA is touched only when a ``Predictor`` is constructed (never at import), so a Celery parent
process can import this module and fork workers safely.
"""

from __future__ import annotations

import os
import platform
import time
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np

from .checkpoint import Checkpoint, load_checkpoint, model_from_checkpoint
from .decode import DecodeError, decode_frame
from .tiling import FrameTooSmall, TileGrid, plan_tiles

# Largest difference in P(bear) from the fp32 per-tile reference. fp32: the same inputs bit for
# bit; only the convolution algorithms (channels-last, batch size) change the rounding order.
FP32_ATOL = 1e-4
# bf16 keeps 8 bits of mantissa; over ResNet-50's 53 layers the logits drift by a few percent.
BF16_ATOL = 0.05

PRECISIONS = ("auto", "bf16", "fp32")


class PredictorError(RuntimeError):
    """A predictor that cannot be set up as asked (device missing, precision unsupported)."""


@dataclass
class FrameScores:
    """P(bear) for every tile of one frame.

    Invariant: ``grid.shape == (tiles.rows, tiles.cols)``, ``grid.dtype == float32``, values in
    ``[0, 1]``; ``grid[r, c]`` is the score of the pixels in ``tiles.box(r, c)``.
    """

    grid: np.ndarray
    tiles: TileGrid


@dataclass
class FrameSource:
    """A frame that is not a local path (for example a file in object storage): ``open`` is called
    in a decoding thread and must return a binary file object, which is closed after decoding."""

    name: str
    open: Callable[[], IO[bytes]]


@dataclass
class FrameResult:
    """One frame's outcome from :meth:`Predictor.predict_files`; exactly one of ``scores`` and
    ``error`` is set. ``image`` is the decoded frame when ``keep_image`` was asked (for rendering
    context crops without decoding again), else None."""

    path: str
    scores: FrameScores | None
    error: str | None
    image: np.ndarray | None
    decode_s: float = 0.0  # time a decoding thread spent on this frame
    infer_s: float = 0.0  # engine time on its tiles, shared by tile count when batches mix frames
    wait_s: float = 0.0  # time the engine sat waiting for this frame to be decoded

    @property
    def ok(self) -> bool:
        return self.error is None


# --------------------------------------------------------------------------------------------
# Device and precision


def resolve_device(device: str | None) -> str:
    """``None`` means the first GPU if there is one, else the CPU. Initialises CUDA: call it only
    in the process that will run the model."""
    import torch

    if device is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    kind = device.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        raise PredictorError(f"device {device!r} asked for, but PyTorch sees no CUDA GPU here")
    if kind not in ("cpu", "cuda"):
        raise PredictorError(f"unsupported device {device!r}; use 'cpu', 'cuda' or 'cuda:N'")
    return device


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 in hardware (AVX512-BF16, AMX, Arm BF16). Elsewhere
    oneDNN emulates bf16, which is several times slower than fp32 (measured: 2.7 vs 9.3 tiles/s
    for ResNet-50 on an AVX2 EPYC)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    if platform.machine().lower() in ("arm64", "aarch64"):
        try:
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
    return False


def resolve_precision(device: str, precision: str) -> tuple[str, str]:
    """``(precision, reason)``: ``"bf16"`` or ``"fp32"``, and why, in words worth recording."""
    import torch

    if precision not in PRECISIONS:
        raise PredictorError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    on_gpu = device.startswith("cuda")
    if on_gpu:
        native = torch.cuda.is_bf16_supported()
        where = f"GPU {torch.cuda.get_device_name(torch.device(device))}"
    else:
        native = cpu_has_native_bf16()
        where = f"CPU ({torch.backends.cpu.get_cpu_capability()})"
    if precision == "fp32":
        return "fp32", "fp32 requested"
    if precision == "bf16":
        if on_gpu and not native:
            raise PredictorError(f"bf16 requested but the {where} does not support it")
        if not native:
            return "bf16", f"bf16 requested; the {where} emulates it (slower than fp32)"
        return "bf16", f"bf16 requested; the {where} supports it natively"
    if native:
        return "bf16", f"auto: the {where} supports bf16 natively"
    return "fp32", f"auto: the {where} has no native bf16, so fp32"


# --------------------------------------------------------------------------------------------
# The predictor


@dataclass
class _Frame:
    """A frame on its way through the engine (internal)."""

    path: str
    image: np.ndarray | None = None
    error: str | None = None
    tiles: TileGrid | None = None
    decode_s: float = 0.0
    wait_s: float = 0.0
    infer_s: float = 0.0
    host: Any = None  # uint8 H x W x 3 tensor in (pinned) host memory
    device_image: Any = None
    windows: Any = None  # every tile position of device_image, as a view
    ready: Any = None  # CUDA event: the copy to the device has finished
    ys: Any = None  # tile origins, flat in (r, c) order, on the device
    xs: Any = None
    scores: np.ndarray | None = None  # flat float32, filled as batches finish
    dispatched: int = 0
    collected: int = 0

    @property
    def count(self) -> int:
        return self.tiles.count if self.tiles is not None else 0

    @property
    def done(self) -> bool:
        return self.error is not None or self.collected == self.count


@dataclass
class _Batch:
    scores: Any  # P(bear) per row: a CPU tensor (pinned, filled asynchronously on a GPU)
    done: Any = None  # CUDA event: the scores have reached the host
    parts: list[tuple[_Frame, int, int, int]] = field(default_factory=list)  # frame, start, n, row
    elapsed: float = 0.0


class Predictor:
    """A checkpoint's network, ready to score frames. Build one per worker process and reuse it.

    ``device``: ``None`` (GPU if present), ``"cpu"``, ``"cuda"``, ``"cuda:N"``.
    ``precision``: ``"auto"`` (bf16 where native, else fp32), ``"bf16"`` or ``"fp32"``; the
    resolved value is ``self.precision`` and the reason ``self.precision_reason``.
    ``batch_size``: tiles per forward pass; scores do not depend on it beyond the tolerances.
    ``compile``: ``torch.compile`` the network (worth it for long jobs, on CPU and GPU alike).
    ``decode_workers``: decoding threads (default 1 on CPU, where the model needs the cores;
    up to 8 on GPU, where decoding is the limit). ``prefetch``: frames decoded ahead (1 on CPU).
    ``num_threads``: sets torch's intra-op threads if given (default: torch's, one per core).
    """

    def __init__(
        self,
        ckpt: Checkpoint,
        *,
        device: str | None = None,
        precision: str = "auto",
        batch_size: int = 64,
        compile: bool = False,
        decode_workers: int | None = None,
        prefetch: int | None = None,
        num_threads: int | None = None,
    ) -> None:
        import torch

        if batch_size < 1:
            raise PredictorError(f"batch_size must be at least 1, not {batch_size}")
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        self.checkpoint = ckpt
        self.device = resolve_device(device)
        self.precision, self.precision_reason = resolve_precision(self.device, precision)
        self.batch_size = batch_size
        self.compiled = compile
        self.tile = ckpt.preprocessing.tile_size
        self._torch_device = torch.device(self.device)
        self._on_gpu = self._torch_device.type == "cuda"
        cores = os.cpu_count() or 1
        # A GPU outruns one decoding core several times over; a CPU needs its cores for the model.
        self.decode_workers = decode_workers or (min(8, max(1, cores - 2)) if self._on_gpu else 1)
        # Frames decoded ahead of the model: one is plenty on a CPU (decoding takes under 1 % of
        # a frame's compute there), and each costs 3 bytes per pixel (72 MB for 24 MP).
        default_prefetch = self.decode_workers + 1 if self._on_gpu else 1
        self.prefetch = max(1, prefetch if prefetch is not None else default_prefetch)
        # Stable shapes let cuDNN pick its fastest kernels once and let torch.compile compile once.
        self._pad_batches = self._on_gpu or compile
        if self._on_gpu:
            torch.backends.cudnn.benchmark = True
            if self.precision == "fp32":
                # fp32 means fp32: TF32 convolutions would break the reference tolerance.
                torch.backends.cudnn.allow_tf32 = False
                torch.backends.cuda.matmul.allow_tf32 = False
            self._copy_stream = torch.cuda.Stream(device=self._torch_device)

        self._model = _inference_network(model_from_checkpoint(ckpt), self._torch_device, compile)
        self._positive = ckpt.positive_index
        pre = ckpt.preprocessing
        # Same dtype and shape as torchvision's Normalize builds, so fp32 inputs match it bit for bit.
        self._mean = torch.as_tensor(pre.mean, dtype=torch.float32, device=self._torch_device)
        self._std = torch.as_tensor(pre.std, dtype=torch.float32, device=self._torch_device)
        self._mean = self._mean.view(1, 3, 1, 1)
        self._std = self._std.view(1, 3, 1, 1)

    @classmethod
    def from_file(cls, path: str | os.PathLike, **kwargs: Any) -> Predictor:
        """Load a checkpoint file (``checkpoint.load_checkpoint``) and build a predictor on it."""
        return cls(load_checkpoint(path), **kwargs)

    @property
    def info(self) -> dict[str, Any]:
        """What to record next to the scores so a run can be explained later."""
        import torch

        return {
            "device": self.device,
            "precision": self.precision,
            "precision_reason": self.precision_reason,
            "batch_size": self.batch_size,
            "tile": self.tile,
            "compiled": self.compiled,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "arch": self.checkpoint.arch,
            "init": self.checkpoint.init,
        }

    # ---------------------------------------------------------------- public scoring API

    def predict_array(self, image: np.ndarray, *, min_overlap: int = 0) -> FrameScores:
        """Score one decoded frame (``H x W x 3`` uint8 RGB, as from ``decode_frame``).

        Raises ``FrameTooSmall`` if the frame is smaller than a tile, ``ValueError`` for an array
        that is not an RGB uint8 image.
        """
        _check_image(image)
        # Views with negative or odd strides (np.flip, slices) become one C-contiguous block;
        # a decoded frame already is one, and is not copied.
        image = np.ascontiguousarray(image)
        frame = _Frame(path="<array>", image=image)
        frame.tiles = plan_tiles(
            image.shape[0], image.shape[1], tile=self.tile, min_overlap=min_overlap
        )
        for done in self._run(iter([frame])):
            return FrameScores(grid=done.scores.reshape(done.tiles.shape), tiles=done.tiles)
        raise AssertionError("the engine returned no frame")  # pragma: no cover

    def predict_files(
        self,
        paths: Iterable[str | os.PathLike | FrameSource],
        *,
        min_overlap: int = 0,
        keep_image: bool = False,
    ) -> Iterator[FrameResult]:
        """Score frames from files, yielding one :class:`FrameResult` per input, in input order.

        A frame that cannot be decoded, or is smaller than a tile, yields a result with ``error``
        set and the others carry on. Decoding runs ahead in background threads (at most
        ``prefetch`` frames ahead); tiles of consecutive frames share batches. Stopping the
        iteration early is safe: the decoding threads finish their current frame and stop.
        """
        decoded = self._decode_ahead(paths, min_overlap=min_overlap)
        for frame in self._run(decoded):
            scores = None
            if frame.error is None:
                scores = FrameScores(
                    grid=frame.scores.reshape(frame.tiles.shape), tiles=frame.tiles
                )
            yield FrameResult(
                path=frame.path,
                scores=scores,
                error=frame.error,
                image=frame.image if keep_image and frame.error is None else None,
                decode_s=frame.decode_s,
                infer_s=frame.infer_s,
                wait_s=frame.wait_s,
            )

    def score_normalised(self, batch: Any) -> Any:
        """P(bear) for a batch already on the device, normalised, ``N x 3 x T x T`` float32.

        The network alone, at this predictor's precision: what the benchmark calls the ceiling.
        """
        import torch

        with torch.inference_mode():
            with torch.autocast(
                device_type=self._torch_device.type,
                dtype=torch.bfloat16,
                enabled=self.precision == "bf16",
            ):
                logits = self._model(batch)
            return logits.float().softmax(dim=1)[:, self._positive]

    # ---------------------------------------------------------------- decoding ahead

    def _decode_ahead(
        self, paths: Iterable[str | os.PathLike | FrameSource], *, min_overlap: int
    ) -> Iterator[_Frame]:
        # Validate the overlap before any decoding, so a bad argument is an exception, not a
        # per-frame error repeated on every result.
        plan_tiles(self.tile, self.tile, tile=self.tile, min_overlap=min_overlap)
        pool = ThreadPoolExecutor(self.decode_workers, thread_name_prefix="bearsite-decode")
        window: deque[Future[_Frame]] = deque()
        it = iter(paths)

        def refill() -> None:
            while len(window) < self.prefetch:
                source = next(it, None)
                if source is None:
                    return
                window.append(pool.submit(self._decode_one, source, min_overlap))

        try:
            refill()
            while window:
                t0 = time.perf_counter()
                frame = window.popleft().result()
                frame.wait_s = time.perf_counter() - t0
                # Start the next decode *before* handing this frame over, so it runs while the
                # model works on this one.
                refill()
                yield frame
        finally:
            for fut in window:
                fut.cancel()
            pool.shutdown(wait=True, cancel_futures=True)

    def _decode_one(self, source: str | os.PathLike | FrameSource, min_overlap: int) -> _Frame:
        name = source.name if isinstance(source, FrameSource) else os.fspath(source)
        frame = _Frame(path=name)
        t0 = time.perf_counter()
        try:
            if isinstance(source, FrameSource):
                with source.open() as fh:
                    image = decode_frame(fh, name=name)
            else:
                image = decode_frame(source)
            frame.tiles = plan_tiles(
                image.shape[0], image.shape[1], tile=self.tile, min_overlap=min_overlap
            )
            frame.image = image
            if self._on_gpu:
                frame.host = _pinned_copy(image)
        except DecodeError as exc:
            frame.error = str(exc)
        except FrameTooSmall as exc:
            frame.error = f"{name}: {exc}"
        except OSError as exc:  # a FrameSource that cannot be opened
            frame.error = f"{name}: cannot read the file ({exc})"
        frame.decode_s = time.perf_counter() - t0
        return frame

    # ---------------------------------------------------------------- the batching engine

    def _run(self, frames: Iterator[_Frame]) -> Iterator[_Frame]:
        """Turn decoded frames into scored frames, in order, with fixed-size batches that span
        frames. At most two batches are in flight on a GPU, so reading one batch's scores back
        never leaves the GPU idle."""
        order: deque[_Frame] = deque()  # not yet yielded, in input order
        feeding: deque[_Frame] = deque()  # with tiles not yet batched
        inflight: deque[_Batch] = deque()
        waiting = 0  # tiles in `feeding` not yet batched
        for frame in frames:
            order.append(frame)
            if frame.error is None:
                self._stage(frame)
                feeding.append(frame)
                waiting += frame.count
            while waiting >= self.batch_size:
                waiting -= self._dispatch(feeding, inflight)
                while len(inflight) > 1:
                    self._collect(inflight.popleft())
            if not self._on_gpu:
                while inflight:
                    self._collect(inflight.popleft())
            while order and order[0].done:
                yield order.popleft()
        while feeding:
            self._dispatch(feeding, inflight)
        while inflight:
            self._collect(inflight.popleft())
        while order:
            yield order.popleft()

    def _stage(self, frame: _Frame) -> None:
        """Put the whole frame on the device as uint8 and plan its tile gathers."""
        import torch

        t0 = time.perf_counter()
        tiles = frame.tiles
        rr, cc = np.meshgrid(np.asarray(tiles.ys), np.asarray(tiles.xs), indexing="ij")
        origins = torch.from_numpy(np.stack([rr.ravel(), cc.ravel()]).astype(np.int64))
        if self._on_gpu:
            host = frame.host if frame.host is not None else _pinned_copy(frame.image)
            origins = origins.pin_memory()
            # Copies from pinned memory on a side stream: they overlap the batches already
            # queued, and the host never waits for the GPU here.
            with torch.cuda.stream(self._copy_stream):
                frame.device_image = host.to(self._torch_device, non_blocking=True)
                origins = origins.to(self._torch_device, non_blocking=True)
                frame.ready = torch.cuda.Event()
                frame.ready.record(self._copy_stream)
            # Made on the copy stream, used on the compute stream: tell the caching allocator,
            # so it does not recycle them while compute still reads them.
            compute = torch.cuda.current_stream(self._torch_device)
            frame.device_image.record_stream(compute)
            origins.record_stream(compute)
            frame.host = None
        else:
            frame.device_image = _as_tensor(frame.image)
        frame.ys, frame.xs = origins[0], origins[1]
        t = tiles.tile
        # Every window of the frame as a view (nothing is copied): [Y, X, t, t, 3].
        frame.windows = frame.device_image.unfold(0, t, 1).unfold(1, t, 1).permute(0, 1, 3, 4, 2)
        frame.scores = np.empty(tiles.count, dtype=np.float32)
        frame.infer_s += time.perf_counter() - t0

    def _dispatch(self, feeding: deque[_Frame], inflight: deque[_Batch]) -> int:
        """Gather up to ``batch_size`` tiles from the frames in ``feeding`` and start the network
        on them. Returns the number of real tiles in the batch."""
        import torch

        t0 = time.perf_counter()
        pieces = []
        batch = _Batch(scores=None)
        row = 0
        while feeding and row < self.batch_size:
            frame = feeding[0]
            n = min(self.batch_size - row, frame.count - frame.dispatched)
            start = frame.dispatched
            if frame.ready is not None:
                torch.cuda.current_stream(self._torch_device).wait_event(frame.ready)
                frame.ready = None
            sl = slice(start, start + n)
            # One gather per frame: [n, t, t, 3] contiguous uint8, i.e. NHWC.
            pieces.append(frame.windows[frame.ys[sl], frame.xs[sl]])
            batch.parts.append((frame, start, n, row))
            frame.dispatched += n
            row += n
            if frame.dispatched == frame.count:
                feeding.popleft()
                # The gathers hold copies; the frame's pixels are no longer needed on the device.
                frame.device_image = frame.windows = frame.ys = frame.xs = None
        real = row
        if self._pad_batches and row < self.batch_size:
            t = self.tile
            pieces.append(pieces[0].new_zeros((self.batch_size - row, t, t, 3)))
        tiles_u8 = pieces[0] if len(pieces) == 1 else torch.cat(pieces)
        scores = self.score_normalised(self._normalise(tiles_u8))[:real]
        if self._on_gpu:
            # Read back into pinned memory behind an event: collecting this batch later waits
            # for this batch alone, not for the ones queued after it.
            batch.scores = torch.empty(real, dtype=scores.dtype, pin_memory=True)
            batch.scores.copy_(scores, non_blocking=True)
            batch.done = torch.cuda.Event()
            batch.done.record()
        else:
            batch.scores = scores
        batch.elapsed = time.perf_counter() - t0
        inflight.append(batch)
        return real

    def _normalise(self, tiles_u8: Any) -> Any:
        """uint8 NHWC -> float32 NCHW in channels-last memory, as ToTensor + Normalize would."""
        x = tiles_u8.permute(0, 3, 1, 2).float()  # the permuted view *is* channels-last
        return x.div_(255).sub_(self._mean).div_(self._std)

    def _collect(self, batch: _Batch) -> None:
        """Copy a batch's scores back (waits for the GPU) and hand them to their frames."""
        t0 = time.perf_counter()
        if batch.done is not None:
            batch.done.synchronize()
        scores = batch.scores.numpy()
        elapsed = batch.elapsed + time.perf_counter() - t0
        total = sum(n for _, _, n, _ in batch.parts)
        for frame, start, n, row in batch.parts:
            frame.scores[start : start + n] = scores[row : row + n]
            frame.collected += n
            frame.infer_s += elapsed * n / total


# --------------------------------------------------------------------------------------------


def _inference_network(model: Any, device: Any, compile: bool) -> Any:
    """The network as the engine runs it: eval mode, no gradients, BatchNorm folded into the
    convolutions before it (exact up to float rounding; saves one pass over every activation),
    channels-last on ``device``; compiled if asked.

    With ``compile``, inductor's freezing treats the weights as constants, which lets it pre-pack
    them for oneDNN on CPUs (measured here: 120 vs 165 ms of CPU per tile for eager) and fold
    constants on GPUs. Compilation takes about a minute on a small CPU, once per process and
    batch shape (batches are padded to one shape when compiling).
    """
    import torch
    from torch.fx.experimental.optimization import fuse

    model = model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model = fuse(model)  # a copy with Conv+BN folded; eval mode only
    model = model.to(device, memory_format=torch.channels_last)
    if compile:
        model = torch.compile(model, options={"freezing": True})
    return model


def _check_image(image: np.ndarray) -> None:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise ValueError("a frame must be a numpy uint8 array (as decode_frame returns)")
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"a frame must be H x W x 3 RGB, not of shape {image.shape}")


def _as_tensor(image: np.ndarray) -> Any:
    """The frame as a CPU tensor sharing its memory (no copy)."""
    import torch

    if image.flags.writeable:
        return torch.from_numpy(image)
    # Decoded frames are read-only on purpose; torch warns because it cannot mark tensors
    # read-only, but the engine only ever reads them.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(image)


def _pinned_copy(image: np.ndarray) -> Any:
    """The frame in page-locked host memory, so the copy to the GPU is asynchronous."""
    import torch

    host = torch.empty(image.shape, dtype=torch.uint8, pin_memory=True)
    host.numpy()[...] = image
    return host
