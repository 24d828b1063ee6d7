"""Ingest throughput against a plain full decode of the same files, in one run.

Writes N synthetic 6000 x 4000 JPEGs, then alternates rounds of (a) a plain full decode of every
file (``Image.open().load()``) and (b) the real ingest service (store in storage, checks, SHA-256,
EXIF, thumbnail, rows) into a fresh survey. Prints medians; the last line is JSON.

    python bench/ingest.py --quick        # about 30 s on 2 cores
    python bench/ingest.py --frames 100   # the memory goal: peak RSS while ingesting 100 frames
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _django  # noqa: E402


def write_frames(folder: Path, n: int, width: int, height: int) -> None:
    base = _django.synthetic_frame(width, height, seed=0)
    for i in range(n):
        # Shift the same texture per frame: distinct files (distinct SHA-256) without paying
        # for a new synthetic frame each time.
        frame = base if i == 0 else base.rotate(0, translate=(i * 7 % 97, i * 13 % 89))
        frame.save(folder / f"frame_{i:04d}.jpg", "JPEG", quality=90)

def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--width", type=int, default=6000)
    ap.add_argument("--height", type=int, default=4000)
    ap.add_argument("--write-frames", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.write_frames:
        write_frames(Path(args.write_frames), args.frames, args.width, args.height)
        return
    n = args.frames or (6 if args.quick else 100)
    rounds = args.rounds or (3 if args.quick else 3)

    _django.setup()
    from PIL import Image

    from labeling import services
    from labeling.models import BatchItem, IngestBatch, Survey

    work = Path(tempfile.mkdtemp(prefix="bearsite-ingest-"))
    t0 = time.perf_counter()
    # Frames are drawn in a child process so that their float arrays do not count in this
    # process's peak memory, which must be ingest's alone.
    subprocess.run(
        [sys.executable, __file__, "--write-frames", str(work), "--frames", str(n),
         "--width", str(args.width), "--height", str(args.height)],
        check=True,
    )
    paths = sorted(work.glob("frame_*.jpg"))
    size_mb = sum(p.stat().st_size for p in paths) / n / 1e6
    print(f"{n} frames of {args.width}x{args.height}, {size_mb:.1f} MB each, written in "
          f"{time.perf_counter() - t0:.1f} s", flush=True)
    for p in paths:  # warm the page cache for both contenders alike
        p.read_bytes()

    decode_rates, ingest_rates = [], []
    for r in range(rounds):
        t = time.perf_counter()
        for p in paths:
            with Image.open(p) as im:
                im.load()
        decode_rates.append(n / (time.perf_counter() - t))

        survey = Survey.objects.create(name=f"bench-{r}-{time.time()}", gsd_cm=2.4)
        t = time.perf_counter()
        batch = services.batch_create(
            target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.FOLDER, survey=survey,
            enqueue=False,
        )
        for p in paths:
            with p.open("rb") as fh:
                item = services.batch_add_file(
                    batch=batch,
                    incoming=services.IncomingFile(name=p.name, fileobj=fh, size=p.stat().st_size),
                )
            services.item_ingest(item_id=item.pk)
        services.batch_finish_if_done(batch_id=batch.pk)
        ingest_rates.append(n / (time.perf_counter() - t))
        ok = batch.items.filter(status=BatchItem.Status.INGESTED).count()
        assert ok == n, f"only {ok} of {n} frames ingested"
        print(f"round {r + 1}: decode {decode_rates[-1]:.2f} img/s, ingest {ingest_rates[-1]:.2f} img/s",
              flush=True)

    ingest = statistics.median(ingest_rates)
    decode = statistics.median(decode_rates)
    print(json.dumps({
        "frames": n,
        "frame_size": f"{args.width}x{args.height}",
        "rounds": rounds,
        "images_per_s": round(ingest, 2),
        "decode_only_images_per_s": round(decode, 2),
        "ratio_ingest_to_decode": round(ingest / decode, 3),
        "peak_rss_mb": round(_django.peak_rss_mb(), 1),
    }))

if __name__ == "__main__":
    main()
