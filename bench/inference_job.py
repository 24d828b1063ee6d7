"""A whole InferenceJob through Celery and the database against the engine alone, in one run.

Frames are ingested into a survey; the engine scores them directly (model loaded, warmed up),
then a real Celery worker (gpu queue, solo pool, warmed up on one other frame) runs an
InferenceJob over the same frames: chunks from the broker, frames read through the storage API,
score grids, queue items with context crops and counters written to the database. The ratio
says what orchestration, storage and queue writes cost. The last line printed is JSON.

    python bench/inference_job.py --quick     # about a minute on 2 cores
    python bench/inference_job.py --frames 8 --size 6000x4000
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import _django  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--size", default=None, help="WxH (default 6000x4000; quick: 1792x896)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--chunk", type=int, default=4)
    args = ap.parse_args()
    n = args.frames or (4 if args.quick else 8)
    width, height = map(int, (args.size or ("1792x896" if args.quick else "6000x4000")).split("x"))

    data_dir = _django.setup("bearsite-jobbench-")
    if args.device:
        os.environ["BEARSITE_DEVICE"] = args.device
    import io

    import torch
    from django.conf import settings

    from inference import services
    from inference.engine.checkpoint import (
        Checkpoint,
        build_model,
        load_checkpoint,
        save_checkpoint,
    )
    from inference.engine.predictor import Predictor
    from inference.models import InferenceJob
    from labeling import services as labeling_services
    from labeling.models import IngestBatch, Survey

    frames_dir = Path(tempfile.mkdtemp(prefix="bearsite-jobbench-frames-"))
    subprocess.run(
        [sys.executable, str(HERE / "inference.py"), "--make-frames", str(frames_dir),
         "--frames", str(n + 1), "--size", f"{width}x{height}"],
        check=True,
    )
    paths = sorted(frames_dir.glob("frame_*.jpg"))
    warm_path, paths = paths[0], paths[1:]

    def ingest(name: str, files: list[Path]) -> Survey:
        survey = Survey.objects.create(name=name, gsd_cm=2.4)
        batch = labeling_services.batch_create(
            target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.FOLDER, survey=survey,
            enqueue=False,
            files=[labeling_services.IncomingFile(name=p.name, fileobj=io.BytesIO(p.read_bytes())) for p in files],
        )
        for item in batch.items.all():
            labeling_services.item_ingest(item_id=item.pk)
        assert survey.images.count() == len(files)
        return survey

    warm_survey = ingest("warm-up", [warm_path])
    survey = ingest("measured", paths)
    torch.manual_seed(0)
    ckpt_path = data_dir / "model.pt"
    save_checkpoint(Checkpoint(state_dict=build_model().state_dict(), init="random"), ckpt_path)
    version = services.model_register(checkpoint_path=ckpt_path, name="bench", review_threshold=0.5)
    min_overlap = survey.min_tile_overlap_px

    # The engine alone, from the same JPEG files to score grids.
    predictor = Predictor(load_checkpoint(ckpt_path), device=args.device, batch_size=settings.BEARSITE_INFER_BATCH)
    list(predictor.predict_files([warm_path], min_overlap=min_overlap))
    t = time.perf_counter()
    results = list(predictor.predict_files(paths, min_overlap=min_overlap))
    engine_s = time.perf_counter() - t
    tiles = sum(r.scores.grid.size for r in results)
    engine_tps = tiles / engine_s
    del predictor
    print(f"engine: {tiles} tiles in {engine_s:.1f} s = {engine_tps:.1f} tiles/s", flush=True)

    # The same frames as a job through a real worker.
    env = dict(os.environ, BEARSITE_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1")
    log = (data_dir / "worker.log").open("wb")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bearsite", "worker", "-Q", "gpu,cpu", "--pool", "solo",
         "--loglevel", "WARNING", "-n", f"bench-{os.getpid()}@%h"],
        cwd=HERE.parent, env=env, stdout=log, stderr=subprocess.STDOUT,
    )

    def run_job(target: Survey, timeout: float) -> tuple[InferenceJob, float]:
        job = services.job_create(survey=target, model_version=version, chunk_size=args.chunk)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < timeout:
            job.refresh_from_db()
            if job.is_finished:
                return job, time.perf_counter() - t0
            time.sleep(0.05)
        raise SystemExit(f"job {job.pk} did not finish; worker log in {data_dir / 'worker.log'}")

    try:
        run_job(warm_survey, 600)  # the worker loads the model once, here
        job, job_s = run_job(survey, 1800)
    finally:
        worker.terminate()
        worker.wait(30)
    job_tps = job.tiles_scored / job_s
    print(f"job: {job.tiles_scored} tiles in {job_s:.1f} s = {job_tps:.1f} tiles/s "
          f"({job.frames_done} frames, {job.get_status_display()})", flush=True)
    print(json.dumps({
        "frames": n,
        "frame_size": f"{width}x{height}",
        "tiles": tiles,
        "engine_tiles_per_s": round(engine_tps, 2),
        "job_tiles_per_s": round(job_tps, 2),
        "ratio_job_to_engine": round(job_tps / engine_tps, 3),
        "device": job.device,
        "precision": job.precision,
        "broker": "redis" if settings.REDIS_URL else "filesystem",
        "database": settings.DATABASES["default"]["ENGINE"].rsplit(".", 1)[-1],
    }))


if __name__ == "__main__":
    main()
