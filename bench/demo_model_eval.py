"""The demo model against the demo survey's ground truth: recall and false positives per frame.

    python bench/demo_model_eval.py --fresh      # what `make run` does, timed, in a throw-away
                                                 # data folder: make_demo_survey + demo_model
    python bench/demo_model_eval.py              # the active model of BEARSITE_DATA_DIR's site

Figures (see training/demo.py for the rule): on the held-out frames (the fixed validation split
by frame, never trained on) and, for comparison, on the training frames; the threshold is the
model's review threshold (the one reaching the target recall on the validation tiles). With
``--fresh`` also the seconds taken by training and by training + scoring the survey. Goal:
recall >= 0.95 with under 1 false positive per frame. The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="run make_demo_survey + demo_model in a throw-away folder",
    )
    parser.add_argument(
        "--version", type=int, default=None, help="model version id (default: the active one)"
    )
    parser.add_argument("--survey", default="Demo survey")
    parser.add_argument("--ground-truth", default=None)
    args = parser.parse_args()

    if args.fresh:
        from bench._django import setup

        data = setup(prefix="bearsite-bench-demo-")
    else:
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bearsite.settings")
        import django

        django.setup()
        data = None
    from django.conf import settings
    from django.core.management import call_command

    from inference.models import ModelVersion
    from labeling.models import Survey
    from training.demo import evaluate_against_ground_truth
    from training.models import TrainingRun

    timings = {}
    if args.fresh:
        t0 = time.perf_counter()
        call_command("make_demo_survey", stdout=io.StringIO())
        timings["make_demo_survey_s"] = round(time.perf_counter() - t0, 1)
        t0 = time.perf_counter()
        call_command("demo_model", stdout=sys.stdout)
        timings["demo_model_s"] = round(time.perf_counter() - t0, 1)
    survey = Survey.objects.get(name=args.survey)
    version = (
        ModelVersion.objects.get(pk=args.version)
        if args.version
        else ModelVersion.objects.get(status=ModelVersion.Status.ACTIVE)
    )
    gt = (
        Path(args.ground_truth) if args.ground_truth else Path(settings.DATA_DIR) / "demo" / "seed0"
    )
    report = evaluate_against_ground_truth(survey=survey, version=version, ground_truth_dir=gt)
    run = TrainingRun.objects.filter(produced_version=version).first()
    held, seen = report["heldout"], report["training_frames"]
    print(f"model {version.name} (#{version.pk}), threshold {report['threshold']:.4f}")
    for label, f in (("held-out frames", held), ("training frames", seen)):
        print(
            f"  {label:16s}: {f['frames']:2d} frames, bears {f['found']}/{f['bears']} found "
            f"(recall {f['recall'] if f['recall'] is None else round(f['recall'], 3)}), "
            f"{f['false_positives']} false positives = {f['fp_per_frame']:.2f} per frame"
        )
    if report["unscored_frames"]:
        print(f"  not scored by this model: {len(report['unscored_frames'])} frames")
    result = {
        "bench": "demo_model_eval",
        "model_version": version.pk,
        "base_init": run.base_init if run else None,
        "threshold": report["threshold"],
        "heldout_recall": held["recall"],
        "heldout_fp_per_frame": held["fp_per_frame"],
        "heldout_bears": held["bears"],
        "heldout_frames": held["frames"],
        "training_frames_recall": seen["recall"],
        "training_frames_fp_per_frame": seen["fp_per_frame"],
        "goal_met": bool(
            held["recall"] is not None and held["recall"] >= 0.95 and held["fp_per_frame"] < 1
        ),
        "train_seconds": (run.heldout_eval or {}).get("train_seconds") if run else None,
        "demo_model_cpu_seconds": (run.heldout_eval or {}).get("cpu_seconds") if run else None,
        **timings,
        "machine": f"{platform.machine()} {os.cpu_count()} cpus",
        "data_dir": str(data) if data else str(settings.DATA_DIR),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
